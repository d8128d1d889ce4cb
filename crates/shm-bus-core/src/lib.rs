//! The bus itself: the shared topic table, one single-producer /
//! multi-consumer ring per producer, publish and receive (zero copy under
//! the Block policy, validated copies under Overwrite), waiting and waking,
//! liveness, reaping, and snapshots of who is attached ([`Bus::members`],
//! [`Bus::info`]).
//!
//! It is **not** the EventEngine or the events (`shm-bus-engine`, built on
//! this crate's public API), nor the segment and allocator underneath
//! (`shm-bus-alloc`), nor the topic language (`shm-bus-topic`).
//!
//! ## Where to start reading
//!
//! [`Bus`] (`bus.rs`) for an example and how a bus is made and opened;
//! then the ring protocol in `src/ring/mod.rs` (crate-private: its module
//! docs are the spec; its loom and Miri models are in `tests/loom_ring.rs`
//! and `src/ring/tests.rs`); then [`Publisher`] (`publisher.rs`) and
//! [`Subscriber`] (`subscriber.rs`, receiving in `receive.rs`, samples in
//! `sample.rs`); [`delivery`] says what a sample's payload is under each
//! policy. `shared.rs` holds what every handle resolves once at open;
//! `layout.rs` the types that live in the segment.
//!
//! ## Damage
//!
//! Every word read from the segment is checked before it indexes, sizes
//! or bounds a loop: a damaged bus answers a typed error
//! ([`BusError::Corrupt`], [`RecvError::Corrupt`], …) or is treated as
//! absent, never a panic or a hang (`tests/damage.rs` sweeps every
//! management word). Processes are assumed to cooperate: a peer that
//! scribbles over a ring while others read it can make them read wrong
//! bytes, not crash.
//!
//! ## Crash safety
//!
//! - A dead subscriber never blocks a producer: a blocked publisher (and
//!   `Bus::reap`) recognises it by pid and start time and frees its slot.
//! - A producer killed mid-write leaves nothing torn: records become
//!   visible only when their stamp (written last) is stored; its committed
//!   records stay readable and a new producer continues its ring.
//!
//! ## Waiting
//!
//! Receivers spin for a tunable time, then sleep on a futex word in the
//! segment; a publisher makes a wake syscall only when someone sleeps.
#![warn(missing_docs)]
// Under loom only the protocol (`ring`, `slots`, `sync`) is built.
#![cfg_attr(loom, allow(dead_code))]

mod sync;

#[cfg(not(loom))]
mod bus;
#[cfg(not(loom))]
pub mod clock;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
pub mod delivery;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod futex;
// The claim protocol is internal; its loom models reach it under
// `--cfg loom`, where nothing else is built.
#[cfg(not(loom))]
mod group;
#[cfg(loom)]
#[path = "group/protocol.rs"]
pub mod group_protocol;
#[cfg(not(loom))]
mod info;
#[cfg(not(loom))]
mod layout;
#[cfg(not(loom))]
mod loan;
#[cfg(not(loom))]
mod members;
#[cfg(not(loom))]
pub mod payload;
#[cfg(not(loom))]
mod publisher;
#[cfg(not(loom))]
mod receive;
// The ring protocol is internal; loom models (tests/loom_*.rs) reach it
// under `--cfg loom`, where nothing else is built, and the
// `instructions_ring` bench under the `ring-internals` feature (not a
// public API: hidden, unversioned).
#[cfg(any(loom, feature = "ring-internals"))]
#[doc(hidden)]
pub mod ring;
#[cfg(not(any(loom, feature = "ring-internals")))]
mod ring;
#[cfg(not(loom))]
mod sample;
#[cfg(not(loom))]
mod shared;
#[cfg(any(loom, feature = "ring-internals"))]
#[doc(hidden)]
pub mod slots;
#[cfg(not(any(loom, feature = "ring-internals")))]
mod slots;
#[cfg(not(loom))]
mod subscriber;
#[cfg(not(loom))]
mod topics;
// Waking sleepers; its loom model reaches it under `--cfg loom`.
#[cfg(loom)]
pub mod wake;
#[cfg(not(loom))]
mod wake;

#[cfg(not(loom))]
pub use bus::{Bus, ReapReport};
#[cfg(not(loom))]
pub use config::{
    BusConfig, MAX_GROUP_MEMBERS, MAX_GROUPS, MAX_PRODUCERS, MAX_RING_BYTES, MAX_SUBSCRIBERS,
    MAX_TOPIC_LEN, MAX_TOPICS, MIN_RING_BYTES, Policy,
};
#[cfg(not(loom))]
pub use error::{BusError, PayloadError, PublishError, RecvError};
#[cfg(not(loom))]
pub use group::{
    GroupInfo, GroupMemberInfo, GroupMode, GroupOptions, GroupRemoval, check_group_name,
};
#[cfg(not(loom))]
pub use info::{BusInfo, ProducerInfo, RingTopics, SubscriberInfo};
#[cfg(not(loom))]
pub use layout::NAME_BYTES;
#[cfg(not(loom))]
pub use loan::{Loan, LoanOf, OwnedLoan, OwnedLoanError};
#[cfg(not(loom))]
pub use members::{Member, Members, SlotState};
#[cfg(not(loom))]
pub use publisher::{AsTopic, Publisher};
#[cfg(not(loom))]
pub use sample::Sample;
#[cfg(not(loom))]
pub use subscriber::{Start, Subscriber};
#[cfg(not(loom))]
pub use topics::ShmTopicTable;

pub use shm_bus_topic::TopicId;
