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
//!
//! Their data decodes with [`Event::lifecycle`]. Kinds starting with
//! `shm-bus:` are reserved for these.

mod bridge;
mod listeners;

pub use bridge::{BridgeStats, EVENT_TOPIC_PREFIX, EventBridge};
pub use listeners::{RecordingListener, TimingListener};

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use serde::{Deserialize, Serialize};
use shm_bus_topic::Topic;

use shm_bus_core::BusError;

use crate::lock;

/// Subscribers attaching (START) and detaching or dying (END).
pub const SUBSCRIBER_KIND: &str = "shm-bus:subscriber";
/// Producers attaching (START) and detaching or dying (END).
pub const PRODUCER_KIND: &str = "shm-bus:producer";
/// A subscriber missed events (an END; the count is in
/// [`Lifecycle::count`]).
pub const LAG_KIND: &str = "shm-bus:lag";
/// The prefix reserved for the bus's own kinds.
pub const RESERVED_PREFIX: &str = "shm-bus:";

/// START or END.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventStatus {
    /// A span begins.
    Start,
    /// A span ends (or a point event happened).
    End,
}

/// One event. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    kind: Arc<str>,
    status: EventStatus,
    data: Vec<u8>,
    failure: Option<String>,
    pid: u32,
    wall_ns: u64,
    monotonic_ns: u64,
}

impl Event {
    /// An event of `kind`, stamped now in this process.
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn new(
        kind: &str,
        status: EventStatus,
        data: impl Into<Vec<u8>>,
    ) -> Result<Event, EventError> {
        validate_kind(kind)?;
        Ok(Event::unchecked(kind, status, data.into()))
    }

    pub(crate) fn unchecked(kind: &str, status: EventStatus, data: Vec<u8>) -> Event {
        Event {
            kind: kind.into(),
            status,
            data,
            failure: None,
            pid: std::process::id(),
            wall_ns: shm_bus_core::clock::wall_ns(),
            monotonic_ns: shm_bus_core::clock::monotonic_ns(),
        }
    }

    /// The same event marked failed, with `failure` describing why.
    pub fn with_failure(mut self, failure: impl Into<String>) -> Event {
        self.failure = Some(failure.into());
        self
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// START or END.
    pub fn status(&self) -> EventStatus {
        self.status
    }

    /// Whether it is a START.
    pub fn is_start(&self) -> bool {
        self.status == EventStatus::Start
    }

    /// Whether it is an END.
    pub fn is_end(&self) -> bool {
        self.status == EventStatus::End
    }

    /// Whether it carries a failure.
    pub fn is_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Its data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Its data as UTF-8 text, if it is.
    pub fn data_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }

    /// What failed (numba's `exc_details`): a panic's message, or the text
    /// given to [`Trigger::fail`] / [`end_event`].
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The process that emitted it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When it was emitted, ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.wall_ns
    }

    /// When it was emitted, ns of `CLOCK_MONOTONIC` (the same clock in
    /// every process of the host; what [`TimingListener`] uses).
    pub fn monotonic_ns(&self) -> u64 {
        self.monotonic_ns
    }

    /// For the bus's own kinds, what happened.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        if !self.kind.starts_with(RESERVED_PREFIX) {
            return None;
        }
        postcard::from_bytes(&self.data).ok()
    }
}

/// The role of a slot in a lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A subscriber slot.
    Subscriber,
    /// A producer (publisher) slot.
    Producer,
}

/// The data of the bus's own events ([`SUBSCRIBER_KIND`],
/// [`PRODUCER_KIND`], [`LAG_KIND`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The bus.
    pub bus: String,
    /// Subscriber or producer.
    pub role: Role,
    /// Its slot (the producer id samples carry, or the subscriber id).
    pub slot: u32,
    /// The owning process.
    pub pid: u32,
    /// The name it attached with.
    pub name: String,
    /// For [`LAG_KIND`], events missed since the last lag event; else 0.
    pub count: u64,
}

/// Why an event operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The kind is empty, cannot travel as a topic part, or uses the
    /// reserved `shm-bus:` prefix for something the bus does not emit.
    #[error("invalid event kind `{kind}`: {reason}")]
    InvalidKind {
        /// The kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// Connecting a bridge to the bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The bridge thread could not be spawned.
    #[error("could not spawn the bridge thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Checks that `kind` can be used: non-empty, and such that
/// `EventEngine.Internal.Event.<kind>` is an exact topic (no `.`-empty
/// parts, wildcards, ranges or regexes); `shm-bus:` kinds must be the
/// bus's own.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn validate_kind(kind: &str) -> Result<(), EventError> {
    let invalid = |reason: String| EventError::InvalidKind {
        kind: kind.into(),
        reason,
    };
    if kind.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if kind.starts_with(RESERVED_PREFIX)
        && ![SUBSCRIBER_KIND, PRODUCER_KIND, LAG_KIND].contains(&kind)
    {
        return Err(invalid(format!(
            "the `{RESERVED_PREFIX}` prefix is reserved for {SUBSCRIBER_KIND}, {PRODUCER_KIND} and {LAG_KIND}"
        )));
    }
    match Topic::parse(&format!("{EVENT_TOPIC_PREFIX}{kind}")) {
        Ok(t) if t.is_exact() => Ok(()),
        Ok(_) => Err(invalid(
            "it contains a wildcard, range, regex or `**` part".into(),
        )),
        Err(e) => Err(invalid(e.to_string())),
    }
}

/// Told of the events of the kinds it is registered for (numba's
/// `Listener`). Called from whichever thread broadcasts (or a bridge's
/// thread for events from other processes), so it must be `Send + Sync`.
pub trait Listener: Send + Sync {
    /// A START event.
    fn on_start(&self, event: &Event);
    /// An END event.
    fn on_end(&self, event: &Event);
    /// Dispatches on the status (override to see both in one place).
    fn notify(&self, event: &Event) {
        match event.status() {
            EventStatus::Start => self.on_start(event),
            EventStatus::End => self.on_end(event),
        }
    }
}

/// Sends local events elsewhere (a bridge to a bus).
pub(crate) trait Forward: Send + Sync {
    fn forward(&self, event: &Event);
}

/// Listeners by kind, in registration order.
type ByKind = HashMap<Box<str>, Vec<Arc<dyn Listener>>>;

#[derive(Default)]
struct Registry {
    by_kind: RwLock<ByKind>,
    forwards: Mutex<Vec<Weak<dyn Forward>>>,
}

/// A registry of listeners by kind. Cheap to clone (a shared handle).
/// [`Listeners::global`] is the process-wide one the free functions of
/// this module use.
#[derive(Clone, Default)]
pub struct Listeners(Arc<Registry>);

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<String> = read(&self.0.by_kind)
            .keys()
            .map(|k| k.to_string())
            .collect();
        f.debug_struct("Listeners").field("kinds", &kinds).finish()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Listeners run without the lock held, so it is never poisoned while
    // half-updated.
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// Compares listeners by address (closures and listeners have no other
/// identity).
fn same<L: ?Sized>(a: &Arc<dyn Listener>, b: &Arc<L>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl Listeners {
    /// An empty registry of its own.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// The process-wide registry.
    pub fn global() -> &'static Listeners {
        static GLOBAL: OnceLock<Listeners> = OnceLock::new();
        GLOBAL.get_or_init(Listeners::new)
    }

    /// Registers `listener` for `kind` (numba's `register`).
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn register(&self, kind: &str, listener: Arc<dyn Listener>) -> Result<(), EventError> {
        validate_kind(kind)?;
        write(&self.0.by_kind)
            .entry(kind.into())
            .or_default()
            .push(listener);
        Ok(())
    }

    /// Removes `listener` from `kind` (the same `Arc`). Returns whether it
    /// was registered.
    pub fn unregister<L: Listener + ?Sized>(&self, kind: &str, listener: &Arc<L>) -> bool {
        let mut by_kind = write(&self.0.by_kind);
        let Some(list) = by_kind.get_mut(kind) else {
            return false;
        };
        let Some(i) = list.iter().position(|l| same(l, listener)) else {
            return false;
        };
        list.remove(i);
        if list.is_empty() {
            by_kind.remove(kind);
        }
        true
    }

    /// The kinds with listeners.
    pub fn kinds(&self) -> Vec<String> {
        read(&self.0.by_kind)
            .keys()
            .map(|k| k.to_string())
            .collect()
    }

    /// Tells the listeners of `event`'s kind, here and (through bridges)
    /// in the other processes on the bus (numba's `broadcast`). A
    /// listener that panics is logged and skipped.
    pub fn broadcast(&self, event: &Event) {
        self.deliver(event);
        if event.kind().starts_with(RESERVED_PREFIX) {
            return;
        }
        let forwards: Vec<Arc<dyn Forward>> = {
            let mut forwards = lock(&self.0.forwards);
            forwards.retain(|f| f.strong_count() > 0);
            forwards.iter().filter_map(Weak::upgrade).collect()
        };
        for f in forwards {
            f.forward(event);
        }
    }

    /// Tells the listeners here only.
    pub(crate) fn deliver(&self, event: &Event) {
        let listeners: Vec<Arc<dyn Listener>> = match read(&self.0.by_kind).get(event.kind()) {
            Some(list) => list.clone(),
            None => return,
        };
        for l in listeners {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| l.notify(event))) {
                tracing::error!(
                    kind = event.kind(),
                    panic = crate::panic_text(&*panic),
                    "event listener panicked"
                );
            }
        }
    }

    pub(crate) fn add_forward(&self, forward: Weak<dyn Forward>) {
        lock(&self.0.forwards).push(forward);
    }

    /// Broadcasts a START of `kind` (numba's `start_event`).
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn start_event(&self, kind: &str, data: impl Into<Vec<u8>>) -> Result<(), EventError> {
        self.broadcast(&Event::new(kind, EventStatus::Start, data)?);
        Ok(())
    }

    /// Broadcasts an END of `kind`, failed if `failure` is given (numba's
    /// `end_event`).
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn end_event(
        &self,
        kind: &str,
        data: impl Into<Vec<u8>>,
        failure: Option<&str>,
    ) -> Result<(), EventError> {
        let mut event = Event::new(kind, EventStatus::End, data)?;
        if let Some(f) = failure {
            event = event.with_failure(f);
        }
        self.broadcast(&event);
        Ok(())
    }

    /// Broadcasts a START now and an END when the returned guard drops
    /// (numba's `trigger_event`); the END is marked failed if the guard
    /// drops during a panic, or after [`Trigger::fail`].
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn trigger_event(
        &self,
        kind: &str,
        data: impl Into<Vec<u8>>,
    ) -> Result<Trigger<'_>, EventError> {
        let data = data.into();
        self.start_event(kind, data.clone())?;
        Ok(Trigger {
            listeners: self,
            kind: kind.into(),
            data,
            failure: None,
        })
    }

    /// Registers `listener` for `kind` until the returned guard drops
    /// (numba's `install_listener`). The guard derefs to the listener.
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn install_listener<L: Listener + 'static>(
        &self,
        kind: &str,
        listener: Arc<L>,
    ) -> Result<Installed<'_, L>, EventError> {
        self.register(kind, listener.clone())?;
        Ok(Installed {
            listeners: self,
            kind: kind.into(),
            listener,
        })
    }
}

/// A span in progress ([`trigger_event`]): its END is broadcast on drop.
#[must_use = "the END event is emitted when the guard drops"]
pub struct Trigger<'a> {
    listeners: &'a Listeners,
    kind: String,
    data: Vec<u8>,
    failure: Option<String>,
}

impl Trigger<'_> {
    /// Marks the span failed: its END will carry `failure`.
    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failure = Some(failure.into());
    }
}

impl Drop for Trigger<'_> {
    fn drop(&mut self) {
        let mut event =
            Event::unchecked(&self.kind, EventStatus::End, std::mem::take(&mut self.data));
        if let Some(f) = self.failure.take() {
            event = event.with_failure(f);
        } else if std::thread::panicking() {
            event = event.with_failure("panicked");
        }
        self.listeners.broadcast(&event);
    }
}

/// A listener installed for a scope ([`install_listener`]).
#[must_use = "the listener is uninstalled when the guard drops"]
pub struct Installed<'a, L: Listener + 'static> {
    listeners: &'a Listeners,
    kind: String,
    listener: Arc<L>,
}

impl<L: Listener + 'static> Installed<'_, L> {
    /// The listener.
    pub fn listener(&self) -> &Arc<L> {
        &self.listener
    }
}

impl<L: Listener + 'static> std::ops::Deref for Installed<'_, L> {
    type Target = L;
    fn deref(&self) -> &L {
        &self.listener
    }
}

impl<L: Listener + 'static> Drop for Installed<'_, L> {
    fn drop(&mut self) {
        self.listeners.unregister(&self.kind, &self.listener);
    }
}

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
