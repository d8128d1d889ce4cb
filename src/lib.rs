//! # shm-bus
//!
//! Pattern-routed, zero-copy, crash-safe events between cooperating OS
//! processes on one Linux host, through one POSIX shared-memory segment:
//! no broker, no socket hop, no payload copy.
//!
//! ```no_run
//! use shm_bus::{Bus, BusConfig};
//!
//! // Process A
//! let bus = Bus::open_or_create("quotes", BusConfig::default())?;
//! let mut publisher = bus.publisher("feed")?;
//! publisher.publish("md.XNAS.AAPL.trade", b"189.98")?;
//!
//! // Process B
//! let bus = Bus::open_or_create("quotes", BusConfig::default())?;
//! let mut worker = bus.subscriber("worker")?;
//! worker.subscribe("md.{venue}.AAPL.(trade|quote)")?;
//! let sample = worker.recv()?;
//! println!("{} {:?}", sample.topic(), sample.payload());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The workspace's crates, re-exported:
//!
//! - [`topic`]: the topic language (parse, match with captures, format,
//!   `SubscriptionIndex`).
//! - [`alloc`]: the shared-memory segment, typed offsets, the arena
//!   allocator and `ByteMap`.
//! - [`core`](mod@core): the bus — `Bus`, `Publisher`, `Subscriber`, `Sample`,
//!   and worker groups (`Bus::group_member`: each event to one member).
//! - [`engine`]: PyEventEngine's `EventEngine` (hooks, handlers, timers),
//!   over a bus or in-process.
//! - [`events`]: numba's events and listeners, carried between processes,
//!   and the bus's own lifecycle events.
#![warn(missing_docs)]

pub use shm_bus_alloc as alloc;
pub use shm_bus_core as core;
pub use shm_bus_core::{
    Bus, BusConfig, BusError, GroupInfo, GroupMode, GroupOptions, GroupRemoval, Loan, PayloadError,
    Policy, PublishError, Publisher, RecvError, Sample, Subscriber,
};
pub use shm_bus_engine as engine;
pub use shm_bus_engine::events;
pub use shm_bus_topic as topic;
pub use shm_bus_topic::{MatchResult, SubscriptionIndex, Topic, TopicError, TopicId};
