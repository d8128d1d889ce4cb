//! # shm-bus
//!
//! Pattern-routed, zero-copy, crash-safe events between cooperating OS
//! processes on one Linux host, through one POSIX shared-memory segment:
//! no broker, no socket hop, no payload copy.
//!
//! This facade re-exports the workspace's crates:
//!
//! - [`topic`]: the topic language (parse, match with captures, format,
//!   `SubscriptionIndex`).
//! - [`alloc`]: the shared-memory segment, typed offsets, the arena
//!   allocator and `ByteMap`.
#![warn(missing_docs)]

pub use shm_bus_alloc as alloc;
pub use shm_bus_topic as topic;
pub use shm_bus_topic::{MatchResult, SubscriptionIndex, Topic, TopicError, TopicId};
