//! Where the algorithms' memory lives.
//!
//! The robust lock, the arena and the `ByteMap` are written against [`Mem`]:
//! a byte-addressed space of 8-byte atomic words plus raw byte ranges. The
//! segment implements it over its mapping; [`HeapMem`] implements it over
//! ordinary heap memory for unit tests and loom models.

use crate::sync::AtomicU64;

/// A byte-addressed memory space. Addresses are `u64` offsets.
pub trait Mem {
    /// The atomic word at `off`, or `None` when `off` is not 8-aligned or
    /// `off + 8` is out of bounds. Never panics.
    fn word(&self, off: u64) -> Option<&AtomicU64>;

    /// A raw pointer to `len` bytes at `off`, or `None` when out of bounds.
    /// The bytes may be shared with other threads and processes: callers
    /// synchronise access through atomics in the same space.
    fn bytes(&self, off: u64, len: u64) -> Option<*mut u8>;
}

/// Heap-backed [`Mem`]: word offsets `0..8 * words`, byte ranges at
/// `BYTES_BASE..BYTES_BASE + bytes`.
#[cfg(any(test, loom))]
pub struct HeapMem {
    words: Vec<AtomicU64>,
    bytes: Box<[std::cell::UnsafeCell<u8>]>,
}

#[cfg(any(test, loom))]
// SAFETY: the words are atomics; the byte area is only accessed through raw
// pointers whose users synchronise through those atomics (the same contract
// as shared memory).
unsafe impl Sync for HeapMem {}

#[cfg(any(test, loom))]
impl HeapMem {
    /// Where the byte area starts in the address space.
    pub const BYTES_BASE: u64 = 1 << 40;

    /// `words` words, each pre-filled with `fill` (garbage, to catch code that
    /// relies on zeroed memory), and `bytes` bytes of `0xA5`.
    pub fn new(words: usize, bytes: usize, fill: u64) -> Self {
        HeapMem {
            words: (0..words).map(|_| AtomicU64::new(fill)).collect(),
            bytes: (0..bytes)
                .map(|_| std::cell::UnsafeCell::new(0xA5))
                .collect(),
        }
    }
}

#[cfg(any(test, loom))]
impl Mem for HeapMem {
    fn word(&self, off: u64) -> Option<&AtomicU64> {
        if off % 8 != 0 {
            return None;
        }
        self.words.get(usize::try_from(off / 8).ok()?)
    }

    fn bytes(&self, off: u64, len: u64) -> Option<*mut u8> {
        let start = off.checked_sub(Self::BYTES_BASE)?;
        let end = start.checked_add(len)?;
        if end > self.bytes.len() as u64 {
            return None;
        }
        Some(self.bytes.as_ptr().wrapping_add(start as usize) as *mut u8)
    }
}
