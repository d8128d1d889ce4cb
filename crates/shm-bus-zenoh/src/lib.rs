//! A bridge between an shm-bus bus and [Zenoh](https://zenoh.io): events on
//! the local bus that match `--export` patterns are put on Zenoh, and Zenoh
//! samples matching `--import` patterns are published into the bus with
//! their original topics, by the bridge's own producer. Two buses on two
//! hosts, each with a bridge, then behave as one for the bridged topics.
//!
//! - [`mapping`]: topic ↔ key expression (`.` ↔ `/`, escapes, wildcards).
//! - [`meta`]: the attachment every exported sample carries (source,
//!   export sequence, producer, producer sequence, timestamp).
//! - [`bridge`]: the running bridge, its loop guard and its counters.
//!
//! The binary `shm-bus-zenoh` wraps [`Bridge`]; `docs/DISTRIBUTED.md`
//! describes deployments and failure behaviour.
#![warn(missing_docs)]

pub mod bridge;
pub mod mapping;
pub mod meta;

pub use bridge::{Bridge, BridgeConfig, BridgeError, Stats};
#[doc(hidden)]
pub mod load;
