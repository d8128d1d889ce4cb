//! The arena API of a segment: [`Arena`] (allocate and free from any
//! process) and [`Initializer`] (what the creator's init closure gets).
//! The allocator itself is `crate::arena`.

use super::{ROOT_SLOTS, Segment};
use crate::arena::ArenaStats;
use crate::error::{Error, Result};
use crate::offset::{Offset, ShmSafe};

/// Given to the init closure of [`SegmentBuilder::create`](crate::SegmentBuilder::create): the arena of the
/// segment under construction and its root slots.
pub struct Initializer<'s> {
    pub(super) seg: &'s Segment,
    pub(super) roots: [u64; ROOT_SLOTS],
}

impl<'s> Initializer<'s> {
    /// The segment being initialised (for [`Segment::resolve`]).
    pub fn segment(&self) -> &'s Segment {
        self.seg
    }
    /// Its arena.
    pub fn arena(&self) -> Arena<'s> {
        self.seg.arena()
    }
    /// The configuration bytes passed to the builder.
    pub fn config(&self) -> &'s [u8] {
        &self.seg.config
    }
    /// Records `off` in root slot `index` (`0..ROOT_SLOTS`); openers read it
    /// with [`Segment::root`]. `off` must lie in the arena.
    pub fn set_root<T>(&mut self, index: usize, off: Offset<T>) -> Result<()> {
        if index >= ROOT_SLOTS {
            return Err(Error::InvalidArgument("root index out of range"));
        }
        if off.get() < self.seg.arena_offset || off.get() >= self.seg.size || off.get() % 8 != 0 {
            return Err(Error::BadOffset {
                offset: off.get(),
                len: 0,
                align: 8,
            });
        }
        self.roots[index] = off.get();
        Ok(())
    }
}

/// The arena of a segment: allocate and free from any process. Obtain with
/// [`Segment::arena`] or [`Initializer::arena`].
#[derive(Clone, Copy, Debug)]
pub struct Arena<'s> {
    pub(super) seg: &'s Segment,
}

impl<'s> Arena<'s> {
    /// Allocates `size` bytes aligned to `align` (a power of two, at most
    /// [`MAX_ALIGN`](crate::MAX_ALIGN)). The content is unspecified (garbage);
    /// use the typed helpers for initialised memory.
    ///
    /// Errors: [`Error::OutOfMemory`], [`Error::InvalidArgument`],
    /// [`Error::Corrupt`] (a damaged free list is reported, never followed).
    pub fn alloc(&self, size: u64, align: u64) -> Result<Offset<u8>> {
        self.seg.arena_core().alloc(size, align).map(Offset::new)
    }

    /// Frees the block at `off`, as returned by an `alloc*` method of this
    /// arena (from any process).
    ///
    /// Errors: [`Error::InvalidFree`] for double frees and offsets that are
    /// not blocks; the arena is unchanged.
    pub fn free<T>(&self, off: Offset<T>) -> Result<()> {
        self.seg.arena_core().free(off.get())
    }

    /// Usable bytes of the live block at `off` (at least what was asked).
    pub fn block_size<T>(&self, off: Offset<T>) -> Result<u64> {
        self.seg.arena_core().block_size(off.get())
    }

    /// Statistics, read without taking the lock.
    pub fn stats(&self) -> Result<ArenaStats> {
        self.seg.arena_core().stats()
    }

    /// Takes the lock (recovering a dead holder's operation) and verifies
    /// every free list and counter; returns the statistics.
    pub fn check(&self) -> Result<ArenaStats> {
        self.seg.arena_core().check()
    }

    /// Allocates room for a `T` and moves `value` into it.
    pub fn alloc_value<T: ShmSafe>(&self, value: T) -> Result<Offset<T>> {
        let off = self.alloc(size_of::<T>() as u64, align_of::<T>() as u64)?;
        let raw = self.seg.bytes(off, size_of::<T>() as u64)?;
        // SAFETY: the block was just allocated, so no other party knows its
        // offset yet; it is in bounds and aligned for T (alloc honours
        // align_of::<T>()).
        unsafe { (raw.as_ptr() as *mut T).write(value) };
        Ok(off.cast())
    }

    /// Allocates `[T; n]` (at least one byte) with every byte explicitly set
    /// to zero (a valid `T` for every `ShmSafe` type).
    pub fn alloc_array_zeroed<T: ShmSafe>(&self, n: u64) -> Result<Offset<T>> {
        let bytes = n
            .checked_mul(size_of::<T>() as u64)
            .ok_or(Error::OutOfMemory {
                requested: u64::MAX,
            })?;
        let off = self.alloc(bytes, align_of::<T>() as u64)?;
        let raw = self.seg.bytes(off, bytes)?;
        // SAFETY: freshly allocated, exclusively ours, in bounds (checked).
        unsafe { raw.as_ptr().write_bytes(0, raw.len()) };
        Ok(off.cast())
    }

    /// Allocates a zeroed `T`.
    pub fn alloc_zeroed<T: ShmSafe>(&self) -> Result<Offset<T>> {
        self.alloc_array_zeroed(1)
    }

    /// Allocates `[T; n]` with element `i` set to `f(i)`.
    pub fn alloc_array_with<T: ShmSafe>(
        &self,
        n: u64,
        mut f: impl FnMut(u64) -> T,
    ) -> Result<Offset<T>> {
        let off: Offset<T> = self.alloc_array_zeroed(n)?;
        for i in 0..n {
            let elem = off.element(i).ok_or(Error::OutOfMemory {
                requested: u64::MAX,
            })?;
            let raw = self.seg.bytes(elem.cast(), size_of::<T>() as u64)?;
            // SAFETY: inside our fresh block, aligned (array of T at an
            // aligned base), no other party knows the block yet.
            unsafe { (raw.as_ptr() as *mut T).write(f(i)) };
        }
        Ok(off)
    }

    /// Testing aid for crash-recovery tests, not part of the API: takes the
    /// allocator lock, makes part of an allocation's journaled stores, calls
    /// `stall` (which is expected never to return, e.g. to wait for
    /// SIGKILL) and, should it return, abandons the lock as a dead process
    /// would.
    #[doc(hidden)]
    pub fn __stall_holding_lock(&self, stores: usize, stall: impl FnOnce()) -> Result<()> {
        self.seg.arena_core().stall_mid_carve(stores, stall)
    }

    /// The segment this arena belongs to.
    pub fn segment(&self) -> &'s Segment {
        self.seg
    }
}
