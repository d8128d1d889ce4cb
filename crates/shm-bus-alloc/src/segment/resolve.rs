//! From offsets to memory: typed references into the arena
//! ([`Segment::resolve`]), raw byte ranges ([`RawBytes`]), and the word
//! access the allocator algorithms use ([`Mem`]).

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use super::Segment;
use crate::error::{Error, Result};
use crate::mem::Mem;
use crate::offset::{Offset, ShmSafe};

impl Segment {
    fn check_range(&self, off: u64, len: u64, align: u64) -> Result<()> {
        let bad = Error::BadOffset {
            offset: off,
            len,
            align,
        };
        let end = off.checked_add(len).ok_or(Error::BadOffset {
            offset: off,
            len,
            align,
        })?;
        if off < self.arena_offset || end > self.size || off % align != 0 {
            return Err(bad);
        }
        Ok(())
    }

    /// Resolves `off` to a shared reference, after checking that the whole
    /// `T` lies inside the arena and `off` is aligned for `T`.
    ///
    /// Only shared references are handed out: types in the segment mutate
    /// through atomics.
    pub fn resolve<T: ShmSafe>(&self, off: Offset<T>) -> Result<&T> {
        self.check_range(off.get(), size_of::<T>() as u64, align_of::<T>() as u64)?;
        // SAFETY: in bounds of the live mapping and aligned (checked above);
        // T is ShmSafe, so any bytes there are a valid T and sharing it
        // across threads and processes is sound; the mapping outlives &self.
        Ok(unsafe { &*(self.map.as_ptr().add(off.get() as usize) as *const T) })
    }

    /// Resolves `count` consecutive `T`s starting at `off`, with the same
    /// checks as [`Segment::resolve`].
    pub fn resolve_slice<T: ShmSafe>(&self, off: Offset<T>, count: u64) -> Result<&[T]> {
        let len = count
            .checked_mul(size_of::<T>() as u64)
            .ok_or(Error::BadOffset {
                offset: off.get(),
                len: u64::MAX,
                align: align_of::<T>() as u64,
            })?;
        self.check_range(off.get(), len, align_of::<T>() as u64)?;
        // SAFETY: as in `resolve`, for `count` elements (range checked).
        Ok(unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(off.get() as usize) as *const T,
                count as usize,
            )
        })
    }

    /// A raw byte range inside the arena (e.g. a ring's payload area),
    /// bounds-checked. See [`RawBytes`] for the rules of its use.
    pub fn bytes(&self, off: Offset<u8>, len: u64) -> Result<RawBytes<'_>> {
        self.check_range(off.get(), len, 1)?;
        // SAFETY: off is inside the mapping (checked), so the pointer is in
        // bounds and non-null (the mapping base is non-null).
        let ptr = unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(off.get() as usize)) };
        Ok(RawBytes {
            ptr,
            len: len as usize,
            _seg: PhantomData,
        })
    }
}

impl Mem for Segment {
    fn word(&self, off: u64) -> Option<&AtomicU64> {
        if off % 8 != 0 || off.checked_add(8)? > self.size {
            return None;
        }
        // SAFETY: 8-aligned and in bounds of the live mapping; AtomicU64 is
        // valid for any bits and meant for shared mutation.
        Some(unsafe { &*(self.map.as_ptr().add(off as usize) as *const AtomicU64) })
    }

    fn bytes(&self, off: u64, len: u64) -> Option<*mut u8> {
        if off.checked_add(len)? > self.size {
            return None;
        }
        Some(self.map.as_mut_ptr().wrapping_add(off as usize))
    }
}

/// A bounds-checked raw byte range inside the segment, valid while the
/// [`Segment`] it came from is alive.
///
/// The bytes are shared with every process that maps the segment, so this
/// type hands out only a raw pointer. Reading or writing through it is the
/// caller's `unsafe` responsibility: a protocol (e.g. a ring's tail published
/// with Release and read with Acquire) must guarantee that no byte is
/// written by one party while another reads or writes it.
#[derive(Clone, Copy, Debug)]
pub struct RawBytes<'s> {
    ptr: NonNull<u8>,
    len: usize,
    _seg: PhantomData<&'s Segment>,
}

impl RawBytes<'_> {
    /// Start of the range in this process's mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

// SAFETY: RawBytes is a pointer into a shared mapping that is itself Sync;
// it grants no access by itself (every access is the caller's unsafe code).
unsafe impl Send for RawBytes<'_> {}
// SAFETY: as above.
unsafe impl Sync for RawBytes<'_> {}
