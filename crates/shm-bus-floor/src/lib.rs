//! The bare shared-memory **floors** that shm-bus is measured against,
//! defined once for `shm-bus bench` (`crates/shm-bus-cli`) and the
//! side-by-side comparison (`compare/`), so that their "shm-bus / floor"
//! ratios mean the same thing.
//!
//! A floor is what moving the same messages costs through shared memory
//! between the same processes with no library in the way:
//!
//! - [`ring`], the **throughput** floor: a ring of fixed 64-byte-aligned
//!   slots whose first word is the slot's commit flag. The producer writes
//!   the payload, then stores the flag (Release); consumers poll the flag
//!   of their next slot, so no shared tail counter bounces between cores.
//!   Each consumer publishes its head on its own lines every 1/64 of the
//!   ring and whenever it has caught up; the producer caches the slowest
//!   head. One producer, 1 to [`MAX_CONSUMERS`] consumers.
//! - [`ping_pong`], the **latency** floor: a cache-line ping-pong, one
//!   word per direction, each on its own 128-byte pair of cache lines.
//! - [`lines`], the latency floor for messages that move more than one
//!   cache line: the same ping-pong, each message writing `lines - 1` data
//!   lines before its flag, as a bus message whose record and next header
//!   span two or three lines does (compare/ measures it with two).
//! - `segment` (feature `segment`): all three, placed in an
//!   `shm-bus-alloc` segment behind safe constructors (what `shm-bus
//!   bench` uses).
//!
//! The example `lines` (`cargo run --release -p shm-bus-floor --example
//! lines`) measures [`lines`] with one, two and three lines per message,
//! interleaved between two processes.
//!
//! # Memory
//!
//! The floors live in a raw memory region that the caller maps (a POSIX
//! shared-memory object, a segment, or heap memory in tests) and hands
//! over as a base pointer and a length through an `unsafe` constructor,
//! together with an *owner* value (usually the mapping itself) that the
//! handle keeps until it is dropped: the memory must stay valid while the
//! owner lives. The constructors check what can be checked (alignment,
//! length, indices) and return [`AttachError`]; their `# Safety` sections
//! list the rest. [`RingLayout::bytes`], [`PING_PONG_BYTES`] and
//! [`LINES_PING_PONG_BYTES`] say how much memory to map. The region must
//! be zero before the first handle over it is made (a fresh `ftruncate`d
//! object is).
//!
//! # Example
//!
//! ```
//! use std::ptr::NonNull;
//! use shm_bus_floor::{Consumer, Producer, RingLayout};
//!
//! // 64-byte messages, a 4 KiB ring, one consumer. In a benchmark the
//! // memory is a shared mapping and the consumer runs in another process.
//! let layout = RingLayout::new(64, 4096, 1)?;
//! let mut mem = vec![0u128; layout.bytes().div_ceil(16) + 4];
//! let skew = mem.as_ptr().align_offset(64);
//! let base = NonNull::new(mem[skew..].as_mut_ptr().cast::<u8>()).unwrap();
//! let len = (mem.len() - skew) * 16;
//! // SAFETY: `mem` (zeroed) outlives both handles, which are its only
//! // users, with one layout and one producer.
//! let (mut tx, mut rx) = unsafe {
//!     (
//!         Producer::new(base, len, layout, ())?,
//!         Consumer::new(base, len, layout, 0, ())?,
//!     )
//! };
//! assert_eq!(rx.try_recv(), None);
//! assert!(tx.try_send(&[7; 64]));
//! assert_eq!(rx.try_recv(), Some(0)); // the message's sequence number
//! # drop((tx, rx));
//! # drop(mem);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::fmt;
use std::ptr::NonNull;

pub mod lines;
pub mod ping_pong;
pub mod ring;
#[cfg(feature = "segment")]
pub mod segment;
#[cfg(test)]
mod tests;

pub use lines::{
    LINES_AREA_BYTES, LINES_PING_PONG_BYTES, LinesPingPong, MAX_LINES, PingPongEnd, TornMessage,
};
pub use ping_pong::{PING_PONG_BYTES, PingPong, Side};
pub use ring::{Consumer, HEADS_BYTES, MAX_CONSUMERS, Producer, RingLayout, SLOT_ALIGN};

/// Control words sit 128 bytes apart: two cache lines, so that the
/// adjacent-line prefetcher does not make neighbours share a line.
pub const LINE: usize = 128;

/// Why a [`RingLayout`] cannot exist. Nothing was allocated or touched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// Messages shorter than 8 bytes: every message carries an 8-byte
    /// sequence number (its slot's commit flag).
    PayloadTooSmall {
        /// The message size asked for.
        size: usize,
    },
    /// A ring with no consumer: the producer would have no head to wait on.
    NoConsumers,
    /// More consumers than heads fit in the header ([`MAX_CONSUMERS`]).
    TooManyConsumers {
        /// The number asked for.
        consumers: usize,
        /// [`MAX_CONSUMERS`].
        max: usize,
    },
    /// The ring's bytes do not fit in `usize`.
    TooLarge,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::PayloadTooSmall { size } => write!(
                f,
                "floor ring messages of {size} bytes: at least 8 (a sequence number)"
            ),
            LayoutError::NoConsumers => write!(f, "a floor ring needs at least one consumer"),
            LayoutError::TooManyConsumers { consumers, max } => {
                write!(f, "{consumers} consumers for a floor ring: at most {max}")
            }
            LayoutError::TooLarge => write!(f, "floor ring too large for this address space"),
        }
    }
}

impl std::error::Error for LayoutError {}

/// Why a handle could not be made over a memory region. Nothing in the
/// region was accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// The base address is not a multiple of `align`.
    Misaligned {
        /// The base address.
        addr: usize,
        /// The alignment the floor needs ([`SLOT_ALIGN`]).
        align: usize,
    },
    /// The region is shorter than the layout needs.
    TooSmall {
        /// Bytes given.
        len: usize,
        /// Bytes needed ([`RingLayout::bytes`], [`PING_PONG_BYTES`]).
        needed: usize,
    },
    /// A consumer index outside the layout's consumers.
    NoSuchConsumer {
        /// The index asked for.
        index: usize,
        /// The layout's number of consumers.
        consumers: usize,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Misaligned { addr, align } => {
                write!(f, "floor memory at {addr:#x} is not {align}-byte aligned")
            }
            AttachError::TooSmall { len, needed } => {
                write!(f, "floor memory of {len} bytes: the floor needs {needed}")
            }
            AttachError::NoSuchConsumer { index, consumers } => write!(
                f,
                "floor ring consumer {index} does not exist (the ring has {consumers})"
            ),
        }
    }
}

impl std::error::Error for AttachError {}

/// Checks what a constructor can check about `base`/`len`.
fn check_region(base: NonNull<u8>, len: usize, needed: usize) -> Result<(), AttachError> {
    let addr = base.as_ptr() as usize;
    if addr % SLOT_ALIGN != 0 {
        return Err(AttachError::Misaligned {
            addr,
            align: SLOT_ALIGN,
        });
    }
    if len < needed {
        return Err(AttachError::TooSmall { len, needed });
    }
    Ok(())
}
