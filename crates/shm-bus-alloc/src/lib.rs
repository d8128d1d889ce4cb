//! The ground every shared structure of shm-bus stands on: the POSIX
//! shared-memory segment (create, open, validate, unlink), typed
//! segment-relative offsets, an arena allocator usable from several
//! processes at once, and `ByteMap`, the open-addressing hash map that
//! interns topics.
//!
//! TODO-DOCS
#![warn(missing_docs)]
// Under loom only the algorithms are built; the segment code is not.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod segment;
#[cfg(not(loom))]
pub use segment::{
    Arena, DEFAULT_OPEN_TIMEOUT, HEADER_SIZE, Initializer, LAYOUT_VERSION, MAGIC,
    MIN_SEGMENT_SIZE, RawBytes, ROOT_SLOTS, STATE_INITIALIZING, STATE_READY, STATE_UNINIT,
    Segment, SegmentBuilder, CONFIG_CAPACITY, layout,
};

mod arena;
mod bytemap;
mod error;
mod liveness;
mod lock;
mod mem;
mod offset;
mod os;
mod sync;

pub use arena::{ArenaStats, ClassStats, BLOCK_HEADER, MAX_ALIGN, NUM_CLASSES, class_of, class_size};
pub use bytemap::{Insert, MapHeader, MapStats};
#[cfg(not(loom))]
pub use bytemap::{ByteMap, Iter};
pub use error::{Error, Result};
pub use liveness::ProcessId;
pub use offset::{Offset, ShmSafe};

#[cfg(loom)]
pub mod model;
