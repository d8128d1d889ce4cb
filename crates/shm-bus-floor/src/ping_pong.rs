//! The latency floor: a cache-line ping-pong between two parties.
//!
//! # Layout
//!
//! ```text
//! offset 0      the word Ping writes and Echo reads   (u64, its own 128-byte line pair)
//! offset 128    the word Echo writes and Ping reads   (u64, its own 128-byte line pair)
//! ```
//!
//! A word holds the sequence number last sent in its direction, plus one
//! (0: nothing sent yet). Each side stores into its own word with Release
//! and spins on the other's with Acquire, so a round trip is two cache-line
//! transfers and nothing else. The roles are symmetric: [`Side`] only says
//! which word is whose.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{AttachError, LINE, check_region};

/// Bytes of memory a ping-pong needs: two words, each on its own 128-byte
/// pair of cache lines.
pub const PING_PONG_BYTES: usize = 2 * LINE;

/// Which end of a ping-pong a handle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Writes the word at offset 0, reads the one at 128 (by convention
    /// the side that starts each round trip).
    Ping,
    /// Writes the word at offset 128, reads the one at 0.
    Echo,
}

/// One end of a ping-pong.
pub struct PingPong<O> {
    base: NonNull<u8>,
    /// Offset of the word this side writes.
    out: usize,
    /// Offset of the word this side reads.
    inp: usize,
    /// The value last seen in `inp`.
    last: u64,
    /// Keeps the memory alive.
    _owner: O,
}

// SAFETY: a ping-pong end only makes atomic accesses to the region, from
// whichever thread it runs on; the pointer stays valid as long as
// `_owner`, which moves with it (hence `O: Send`).
unsafe impl<O: Send> Send for PingPong<O> {}

impl<O> PingPong<O> {
    /// The `side` end of the ping-pong at `base`, keeping `owner` (which
    /// keeps the memory mapped) until it is dropped.
    ///
    /// # Errors
    ///
    /// [`AttachError::Misaligned`] when `base` is not 64-byte aligned;
    /// [`AttachError::TooSmall`] when `len <` [`PING_PONG_BYTES`].
    ///
    /// # Safety
    ///
    /// `base` points to `len` bytes that stay valid for reads and writes
    /// for as long as `owner` lives, and whose first [`PING_PONG_BYTES`]
    /// are accessed by others (in any process) only atomically (as by
    /// another `PingPong`) while this one lives.
    ///
    /// For the ping-pong to work (not for soundness): those bytes were
    /// zero before the first end was made, and each side has one end.
    pub unsafe fn new(
        base: NonNull<u8>,
        len: usize,
        side: Side,
        owner: O,
    ) -> Result<PingPong<O>, AttachError> {
        check_region(base, len, PING_PONG_BYTES)?;
        let (out, inp) = match side {
            Side::Ping => (0, LINE),
            Side::Echo => (LINE, 0),
        };
        Ok(PingPong {
            base,
            out,
            inp,
            last: 0,
            _owner: owner,
        })
    }

    #[inline]
    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is 0 or LINE: inside the region (`new` checked
        // `len >= PING_PONG_BYTES`), 8-byte aligned (64-aligned base), only
        // accessed atomically (the contract of `new`), kept mapped by
        // `_owner` for as long as `self` lives.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Sends `seq` (any value but `u64::MAX`, which reads as "nothing
    /// sent").
    #[inline]
    pub fn send(&mut self, seq: u64) {
        // Release: pairs with the Acquire load in the other end's
        // `try_recv`.
        self.word(self.out)
            .store(seq.wrapping_add(1), Ordering::Release);
    }

    /// Polls once: what the other end sent last, if it changed since the
    /// last poll.
    #[inline]
    pub fn try_recv(&mut self) -> Option<u64> {
        // Acquire: pairs with the Release store in the other end's `send`.
        let v = self.word(self.inp).load(Ordering::Acquire);
        if v != self.last {
            self.last = v;
            Some(v.wrapping_sub(1))
        } else {
            None
        }
    }
}
