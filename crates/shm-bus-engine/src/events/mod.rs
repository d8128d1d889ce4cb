//! Events and listeners, numba's `numba.core.event` model, across
//! processes.
//!
//! An [`Event`] has a *kind* (a string such as `"app:compile"`), a status
//! ([`EventStatus::Start`] or [`EventStatus::End`]), data (bytes) and,
//! for a failed END, a failure text. [`Listener`]s register for a kind in
//! a [`Listeners`] registry and are told of every event of that kind
//! (`on_start` / `on_end`). A span is a START followed by an END:
//! [`trigger_event`] emits both around a block, and marks the END failed
//! when the block panics.
//!
//! ```
//! use shm_bus_engine::events::{self, TimingListener};
//! use std::sync::Arc;
//!
//! let timer = Arc::new(TimingListener::new());
//! {
//!     let _installed = events::install_listener("doc:work", timer.clone())?;
//!     let _span = events::trigger_event("doc:work", b"job 7")?;
//!     std::thread::sleep(std::time::Duration::from_millis(2));
//! } // END emitted, then the listener uninstalled
//! assert!(timer.duration().unwrap() >= std::time::Duration::from_millis(2));
//! # Ok::<(), shm_bus_engine::events::EventError>(())
//! ```
//!
//! ## Across processes
//!
//! An [`EventBridge`] connects a registry to a bus: every event broadcast
//! in this process is published on `EventEngine.Internal.Event.<kind>`,
//! and events broadcast by other processes' bridges are delivered to the
//! listeners here, with their origin's pid and timestamps (so a
//! [`TimingListener`] in one process times a span emitted in another by
//! the emitter's clock: `CLOCK_MONOTONIC` is host-wide).
//!
//! ## The bus's own events
//!
//! A bridge also watches the bus's membership and emits, to its registry
//! only (every bridge sees the same shared tables, so they are not
//! forwarded):
//!
//! - [`SUBSCRIBER_KIND`]: START when a subscriber attaches; END when it
//!   detaches, marked failed ("lost") when its process died.
//! - [`PRODUCER_KIND`]: the same for producers.
//! - [`LAG_KIND`]: an END each time a subscriber misses events (Overwrite
//!   policy), with the number missed.
//! - [`GROUP_MEMBER_KIND`]: START when a member joins a worker group; END
//!   when it leaves, marked failed ("lost") when its process died.
//! - [`REDELIVERY_KIND`]: an END each time a worker group hands out again
//!   events whose member died before finishing them (at-least-once), with
//!   how many; [`LOSS_KIND`] the same for events dropped (at-most-once).
//!
//! Their data decodes with [`Event::lifecycle`]. Kinds starting with
//! `shm-bus:` are reserved for these.

mod bridge;
mod event;
mod listeners;
mod registry;

pub use bridge::{BridgeStats, EVENT_TOPIC_PREFIX, EventBridge};
pub use event::{
    Event, EventError, EventStatus, GROUP_MEMBER_KIND, LAG_KIND, LIFECYCLE_KINDS, LOSS_KIND,
    Lifecycle, PRODUCER_KIND, REDELIVERY_KIND, RESERVED_PREFIX, Role, SUBSCRIBER_KIND,
    validate_kind,
};
pub use listeners::{RecordingListener, TimingListener};
pub(crate) use registry::Forward;
pub use registry::{Installed, Listener, Listeners, Trigger};

use std::sync::Arc;

// ------------------------------------------- the process-wide registry

/// [`Listeners::register`] on the global registry.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn register(kind: &str, listener: Arc<dyn Listener>) -> Result<(), EventError> {
    Listeners::global().register(kind, listener)
}

/// [`Listeners::unregister`] on the global registry.
pub fn unregister<L: Listener + ?Sized>(kind: &str, listener: &Arc<L>) -> bool {
    Listeners::global().unregister(kind, listener)
}

/// [`Listeners::broadcast`] on the global registry.
pub fn broadcast(event: &Event) {
    Listeners::global().broadcast(event)
}

/// [`Listeners::start_event`] on the global registry.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn start_event(kind: &str, data: impl Into<Vec<u8>>) -> Result<(), EventError> {
    Listeners::global().start_event(kind, data)
}

/// [`Listeners::end_event`] on the global registry.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn end_event(
    kind: &str,
    data: impl Into<Vec<u8>>,
    failure: Option<&str>,
) -> Result<(), EventError> {
    Listeners::global().end_event(kind, data, failure)
}

/// [`Listeners::trigger_event`] on the global registry.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn trigger_event(kind: &str, data: impl Into<Vec<u8>>) -> Result<Trigger<'static>, EventError> {
    Listeners::global().trigger_event(kind, data)
}

/// [`Listeners::install_listener`] on the global registry.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn install_listener<L: Listener + 'static>(
    kind: &str,
    listener: Arc<L>,
) -> Result<Installed<'static, L>, EventError> {
    Listeners::global().install_listener(kind, listener)
}

/// Installs a new [`RecordingListener`] for `kind` on the global registry
/// (numba's `install_recorder`).
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn install_recorder(kind: &str) -> Result<Installed<'static, RecordingListener>, EventError> {
    install_listener(kind, Arc::new(RecordingListener::new()))
}

/// Installs a new [`TimingListener`] for `kind` on the global registry
/// (numba's `install_timer`).
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn install_timer(kind: &str) -> Result<Installed<'static, TimingListener>, EventError> {
    install_listener(kind, Arc::new(TimingListener::new()))
}
