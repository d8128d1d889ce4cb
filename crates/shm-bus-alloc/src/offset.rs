//! Typed segment-relative offsets and the marker trait for what may live in
//! the segment.

use std::fmt;
use std::marker::PhantomData;

/// Types that may be placed in (and read from) the shared segment.
///
/// # Safety
///
/// Implementors promise that the type:
/// - is `#[repr(C)]` or `#[repr(transparent)]` (a layout every process built
///   from the same source agrees on) and has no implicit padding;
/// - contains no pointers, references, file descriptors, heap handles or
///   anything else whose meaning is private to one process;
/// - is valid for **every** bit pattern (the segment may be damaged or
///   written by a foreign program, and resolving an offset must never
///   create an invalid value) — atomics of integers and arrays of them
///   qualify, `bool`, enums and `char` do not;
/// - has no `Drop` glue that matters (it is never dropped in place);
/// - is `Sync`: it is shared by reference across threads and processes, so
///   any mutation goes through atomics or another interior-mutability
///   scheme that is sound across processes;
/// - has **no plain (non-atomic) field**: every byte is inside an atomic
///   (or an `UnsafeCell` with a cross-process protocol). Any other process
///   may store to any word of the segment at any time, so a `&u64` (or a
///   `&Offset<T>`, or a `&ProcessId`) into shared memory would assert
///   immutability that nothing enforces — undefined behaviour the moment
///   another process writes that word through an atomic. Shared words are
///   atomics only; plain integers are read out of atomics by value.
///
/// This is why plain integers, [`Offset`] and
/// [`ProcessId`](crate::ProcessId) do **not** implement this trait:
///
/// ```compile_fail
/// fn shm_safe<T: shm_bus_alloc::ShmSafe>() {}
/// shm_safe::<u64>();
/// ```
///
/// ```compile_fail
/// fn shm_safe<T: shm_bus_alloc::ShmSafe>() {}
/// shm_safe::<shm_bus_alloc::Offset<u8>>();
/// ```
///
/// ```compile_fail
/// fn shm_safe<T: shm_bus_alloc::ShmSafe>() {}
/// shm_safe::<shm_bus_alloc::ProcessId>();
/// ```
///
/// ```
/// fn shm_safe<T: shm_bus_alloc::ShmSafe>() {}
/// shm_safe::<std::sync::atomic::AtomicU64>();
/// shm_safe::<[std::sync::atomic::AtomicU32; 4]>();
/// ```
///
/// Pair every implementation with [`assert_layout!`](crate::assert_layout)
/// so a change of size or alignment breaks the build instead of the layout.
pub unsafe trait ShmSafe: Sized + Sync + 'static {}

/// Compile-time size and alignment assertion for a type stored in the
/// segment: `assert_layout!(MyType, size = 64, align = 8);`.
#[macro_export]
macro_rules! assert_layout {
    ($t:ty, size = $size:expr, align = $align:expr) => {
        const _: () = {
            assert!(::core::mem::size_of::<$t>() == $size, "size changed");
            assert!(::core::mem::align_of::<$t>() == $align, "alignment changed");
        };
    };
}

// Plain integers are deliberately absent (see the trait docs): a `&u64`
// into memory another process mutates is undefined behaviour.
#[cfg(not(loom))]
mod atomics {
    use super::ShmSafe;
    use std::sync::atomic::*;
    macro_rules! shm_safe_atomics {
        ($($t:ty),*) => {$(
            // SAFETY: an atomic integer: same size and bit validity as its
            // integer (any bit pattern is valid), no pointers, fixed layout,
            // Sync, and every access is an atomic operation, so concurrent
            // stores from other processes are not data races.
            unsafe impl ShmSafe for $t {}
        )*};
    }
    shm_safe_atomics!(
        AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicI8, AtomicI16, AtomicI32, AtomicI64
    );
}
// SAFETY: an array of ShmSafe elements has no padding between elements, is
// valid for every bit pattern when the elements are, and is Sync.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// A typed offset from the start of the segment: where a `T` lives.
///
/// Offsets, not pointers, are what the segment stores: every process maps
/// the segment at its own address. An `Offset<T>` is resolved only through
/// [`Segment::resolve`](crate::Segment::resolve), which checks bounds and
/// alignment. Offset `0` is the header, never a valid arena object, so it
/// doubles as "none" in stored fields.
#[repr(transparent)]
pub struct Offset<T> {
    raw: u64,
    _type: PhantomData<fn() -> T>,
}

#[cfg(not(loom))]
crate::assert_layout!(Offset<u64>, size = 8, align = 8);

// No `ShmSafe` for `Offset<T>`: it is a plain `u64`. Offsets stored in the
// segment live in `AtomicU64` words and are read by value
// (`Offset::new(word.load(..))`).

impl<T> Offset<T> {
    /// The "no object" offset (`0`, the header's first byte).
    pub const NULL: Offset<T> = Offset::new(0);

    /// Wraps a raw byte offset. Nothing is checked until it is resolved.
    pub const fn new(raw: u64) -> Self {
        Offset {
            raw,
            _type: PhantomData,
        }
    }

    /// The raw byte offset from the segment base.
    pub const fn get(self) -> u64 {
        self.raw
    }

    /// Whether this is [`Offset::NULL`].
    pub const fn is_null(self) -> bool {
        self.raw == 0
    }

    /// The same position, viewed as another type (checked again on resolve).
    pub const fn cast<U>(self) -> Offset<U> {
        Offset::new(self.raw)
    }

    /// The offset `bytes` further on, or `None` on overflow.
    pub const fn byte_add(self, bytes: u64) -> Option<Self> {
        match self.raw.checked_add(bytes) {
            Some(raw) => Some(Offset::new(raw)),
            None => None,
        }
    }

    /// The offset of element `index` of an array of `T` starting here, or
    /// `None` on overflow.
    pub const fn element(self, index: u64) -> Option<Self> {
        match index.checked_mul(size_of::<T>() as u64) {
            Some(b) => self.byte_add(b),
            None => None,
        }
    }
}

impl<T> Clone for Offset<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Offset<T> {}
impl<T> PartialEq for Offset<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for Offset<T> {}
impl<T> std::hash::Hash for Offset<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state)
    }
}
impl<T> PartialOrd for Offset<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Offset<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.raw.cmp(&other.raw)
    }
}

impl<T> fmt::Debug for Offset<T> {
    /// `Offset<shm_bus_alloc::bytemap::MapHeader>(0x1040)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Offset<{}>({:#x})", std::any::type_name::<T>(), self.raw)
    }
}

impl<T> fmt::Display for Offset<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.raw)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn debug_is_readable() {
        let o: Offset<u32> = Offset::new(0x1040);
        assert_eq!(format!("{o:?}"), "Offset<u32>(0x1040)");
        assert_eq!(o.element(2).unwrap().get(), 0x1048);
        assert!(Offset::<u8>::NULL.is_null());
        assert_eq!(Offset::<u64>::new(u64::MAX).byte_add(1), None);
    }
}
