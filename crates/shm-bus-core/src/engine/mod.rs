//! [`EventEngine`]: PyEventEngine's engine, across processes.
//!
//! An engine receives events, and fires the handlers registered on their
//! topics. It runs over a bus (events from every process attached to it;
//! handlers in one process fire for events put in another), or in-process
//! with no segment at all (the same API, over a bounded queue).
//!
//! ```
//! use shm_bus_core::engine::{EventEngine, Handler, Wait};
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//!
//! let engine = EventEngine::new(1024); // in-process; EventEngine::with_bus for a bus
//! let seen = Arc::new(AtomicU64::new(0));
//! let counter = seen.clone();
//! engine.register_handler(
//!     "md.{venue}.AAPL.(trade|quote)",
//!     Handler::new(move |m| {
//!         assert_eq!(m.capture("venue"), Some("XNAS"));
//!         counter.fetch_add(m.payload().len() as u64, Ordering::Relaxed);
//!     }),
//!     false,
//! )?;
//! engine.put("md.XNAS.AAPL.trade", b"189.98", Wait::default())?;
//! engine.dispatch_pending()?; // or engine.start() for a dispatch thread
//! assert_eq!(seen.load(Ordering::Relaxed), 6);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Hooks
//!
//! Handlers live in hooks, one per topic or pattern. An event fires its
//! *exact hook* (the hook on its literal topic) first, then every
//! *generic hook* (a pattern) that matches it, in the order the hooks were
//! registered; within a hook, handlers run in registration order. A
//! handler on a pattern receives the pattern's captures.
//!
//! ## Dispatch cost
//!
//! The engine keeps, per topic id, the handlers an event on that topic
//! fires: the hooks are consulted (through a trie, not a scan) once per
//! topic id after each registration change, and after that dispatch is an
//! array index, however many patterns are registered.
//!
//! ## Failures
//!
//! A handler that panics is caught, logged (`tracing`) and counted in its
//! statistics and the engine's; dispatch goes on. Registration changes
//! made while an event is being dispatched (from a handler or another
//! thread) apply from the next event on.
//!
//! ## Over a bus
//!
//! The engine attaches one publisher (for `put`) and one subscriber that
//! receives every event on the bus, as PyEventEngine's queue receives every
//! put: `get` returns any event, and events with no matching hook are
//! dropped by dispatch. Payloads are handed to handlers in place, borrowed
//! from the ring (under the Overwrite policy they are copied first and
//! checked, so a handler never sees a torn payload). A `put` from inside a
//! handler never blocks on the engine's own dispatch: where it would have
//! to wait, it answers [`PublishError::Full`] at once.

mod dispatch;
mod hook;
mod message;
mod queue;
mod timer;

pub(crate) use dispatch::lock as dispatch_lock;
pub(crate) use hook::panic_text;
pub use hook::{EventHook, Handler, HandlerFn, HandlerStats};
pub use message::{Message, OwnedMessage};
pub use timer::{MINUTE_TIMER_TOPIC, SECOND_TIMER_TOPIC, TIMER_TOPIC_PREFIX, TimerTick};

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shm_bus_topic::{Topic, TopicError};

use crate::bus::Bus;
use crate::config::BusConfig;
use crate::error::{BusError, PublishError, RecvError};
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;
use dispatch::{Registry, Router, lock};
use message::AlignedBytes;
use queue::{LocalQueue, PopError};

/// How long the dispatch loop waits for an event before re-checking
/// whether it was deactivated.
const DISPATCH_SLICE: Duration = Duration::from_millis(50);

/// How `put` waits for room and `get` for an event (PyEventEngine's
/// `block`, `max_spin` and `timeout`).
///
/// - `block: false`: answer at once (`Full` / `Empty`).
/// - `block: true`: try `max_spin` more times, spinning, then sleep until
///   it can proceed or `timeout` (`None`: for ever) runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Whether to wait at all.
    pub block: bool,
    /// Retries (spinning) before sleeping.
    pub max_spin: u32,
    /// Longest wait; `None` waits for ever.
    pub timeout: Option<Duration>,
}

impl Wait {
    /// The default number of spinning retries.
    pub const DEFAULT_MAX_SPIN: u32 = 1000;

    /// Block for ever (after spinning). The default.
    pub const fn blocking() -> Wait {
        Wait {
            block: true,
            max_spin: Wait::DEFAULT_MAX_SPIN,
            timeout: None,
        }
    }

    /// Answer at once.
    pub const fn non_blocking() -> Wait {
        Wait {
            block: false,
            max_spin: 0,
            timeout: None,
        }
    }

    /// Block at most `timeout` (after spinning).
    pub const fn timeout(timeout: Duration) -> Wait {
        Wait {
            block: true,
            max_spin: Wait::DEFAULT_MAX_SPIN,
            timeout: Some(timeout),
        }
    }

    /// The same, with `max_spin` retries before sleeping.
    pub const fn with_max_spin(self, max_spin: u32) -> Wait {
        Wait { max_spin, ..self }
    }
}

impl Default for Wait {
    fn default() -> Wait {
        Wait::blocking()
    }
}

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A topic or pattern does not parse.
    #[error(transparent)]
    InvalidTopic(#[from] TopicError),
    /// `register_hook`: the topic already has a hook (nothing changed).
    #[error("a hook is already registered on `{topic}`")]
    HookExists {
        /// The topic.
        topic: String,
    },
    /// `unregister_hook`: no hook on that topic.
    #[error("no hook is registered on `{topic}`")]
    NoHook {
        /// The topic.
        topic: String,
    },
    /// `start`, `run` or `dispatch_pending` while the engine is already
    /// dispatching (in a thread or a `run`).
    #[error("the engine is already dispatching")]
    AlreadyRunning,
    /// `run` on an engine that is not active (call `activate`, or use
    /// `start`).
    #[error("the engine is not active: call activate() before run(), or use start()")]
    NotActive,
    /// `start`, `run` or `dispatch_pending` on an engine made with
    /// [`EventEngine::publisher_only`].
    #[error("this engine only sends (EventEngine::publisher_only): it has nothing to dispatch")]
    SendOnly,
    /// Attaching to the bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The dispatch or timer thread could not be spawned.
    #[error("could not spawn a thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Why `get` returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing arrived within the wait.
    #[error("no event available")]
    Empty,
    /// Overwrite policy: `n` events were overwritten before they were
    /// read; the next `get` continues with the oldest retained event.
    #[error("lagged: {0} events were overwritten before they were read")]
    Lagged(u64),
    /// A producer's ring is damaged; it is skipped from now on.
    #[error("corrupt ring: {what}")]
    Corrupt {
        /// What was wrong.
        what: &'static str,
    },
    /// The engine is dispatching (its dispatch loop owns the queue).
    #[error("the engine is dispatching: get() is for engines that are not running")]
    Dispatching,
    /// The engine only sends ([`EventEngine::publisher_only`]).
    #[error("this engine only sends (EventEngine::publisher_only): it receives nothing")]
    SendOnly,
}

/// Engine-wide counters ([`EventEngine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Events dispatched (whether or not a hook matched).
    pub dispatched: u64,
    /// Of which no handler matched.
    pub unhandled: u64,
    /// Handler calls.
    pub handler_calls: u64,
    /// Handler calls that panicked.
    pub handler_failures: u64,
    /// Events missed through lag (Overwrite policy).
    pub lagged: u64,
}

#[derive(Default)]
struct Counters {
    dispatched: AtomicU64,
    unhandled: AtomicU64,
    handler_calls: AtomicU64,
    handler_failures: AtomicU64,
    lagged: AtomicU64,
}

/// The bus side of an engine.
struct BusTransport {
    bus: Bus,
    publisher: Mutex<Publisher>,
    /// `None` for a publisher-only engine.
    subscriber: Option<Mutex<Subscriber>>,
}

enum Transport {
    Local(LocalQueue),
    Bus(Box<BusTransport>),
}

pub(crate) struct Inner {
    transport: Transport,
    registry: Mutex<Registry>,
    /// Bumped (Release) after every registration change.
    generation: AtomicU64,
    router: Mutex<Router>,
    /// Whether dispatch loops and timers run. A plain flag that publishes
    /// no data: every access is SeqCst (stores in `activate`/`deactivate`,
    /// loads in the dispatch loop, `is_active` and the timers), so all
    /// threads see one order of switches; it is read once per dispatch
    /// slice and per tick, so the strength costs nothing measurable.
    active: AtomicBool,
    /// Someone (a `run`, the thread, a `dispatch_pending`) is dispatching.
    /// SeqCst like `active`: the CAS in `Claim::take` pairs with the store
    /// in `Claim::drop`; the data the dispatcher uses is behind mutexes.
    dispatching: AtomicBool,
    counters: Counters,
    timers: timer::Timers,
    /// The dispatch thread `start` spawned (if any).
    thread: Mutex<Option<JoinHandle<()>>>,
}

thread_local! {
    /// The engine this thread is dispatching for (its `Inner` address), so
    /// a `put` from a handler knows it must not wait on its own dispatch.
    static DISPATCHING_FOR: Cell<usize> = const { Cell::new(0) };
}

/// PyEventEngine's `EventEngine`, over a bus or in-process. See the
/// [module docs](self).
///
/// Dropping the engine stops it (its dispatch thread and timers are
/// joined) and detaches it from the bus.
pub struct EventEngine {
    inner: Arc<Inner>,
    /// Only the engine made by a constructor stops it when dropped (not
    /// the ones `EngineHandle::upgrade` makes).
    owner: bool,
}

/// A weak handle to an engine, for handlers that need to reach it (to put
/// events, register handlers, or stop it) without keeping it alive.
#[derive(Clone)]
pub struct EngineHandle(Weak<Inner>);

impl EngineHandle {
    /// The engine, if it still exists. Dropping the returned value does
    /// not stop the engine (only the original owner's drop does).
    pub fn upgrade(&self) -> Option<EventEngine> {
        self.0.upgrade().map(|inner| EventEngine {
            inner,
            owner: false,
        })
    }
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineHandle")
    }
}

impl std::fmt::Debug for EventEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("EventEngine");
        match &self.inner.transport {
            Transport::Local(q) => d.field("capacity", &q.capacity()),
            Transport::Bus(b) => d.field("bus", &b.bus.name()),
        };
        d.field("active", &self.is_active())
            .field("hooks", &lock(&self.inner.registry).hooks().count())
            .finish()
    }
}

impl EventEngine {
    fn from_transport(transport: Transport) -> EventEngine {
        EventEngine {
            inner: Arc::new(Inner {
                transport,
                registry: Mutex::default(),
                generation: AtomicU64::new(0),
                router: Mutex::default(),
                active: AtomicBool::new(false),
                dispatching: AtomicBool::new(false),
                counters: Counters::default(),
                timers: timer::Timers::default(),
                thread: Mutex::new(None),
            }),
            owner: true,
        }
    }

    /// An in-process engine over a bounded queue of `capacity` events (no
    /// segment; PyEventEngine's model). Topic ids come from a table of the
    /// engine's own, holding up to [`BusConfig::default`]'s `max_topics`
    /// topics; payloads are limited to its `max_payload`.
    pub fn new(capacity: usize) -> EventEngine {
        let config = BusConfig::default();
        EventEngine::from_transport(Transport::Local(LocalQueue::new(
            capacity,
            config.max_topics as usize,
            config.max_payload(),
        )))
    }

    /// An engine over `bus`: it attaches a publisher and a subscriber named
    /// `name` (shown by `shm-bus inspect`) and receives every event on the
    /// bus from now on, including those put before it starts dispatching.
    ///
    /// Like any subscriber under the Block policy, an engine that does not
    /// dispatch (or `get`) holds the bus's producers back once it is a
    /// ring behind; a process that only sends should use
    /// [`publisher_only`](Self::publisher_only).
    ///
    /// # Errors
    /// [`EngineError::Bus`] with `TooManyProducers` / `TooManySubscribers`.
    pub fn with_bus(bus: &Bus, name: &str) -> Result<EventEngine, EngineError> {
        let publisher = bus.publisher(name)?;
        let mut subscriber = bus.subscriber(name)?;
        subscriber.subscribe("**")?;
        Ok(EventEngine::over(bus, publisher, Some(subscriber)))
    }

    /// An engine over `bus` that only sends (`put`, `publish`, timers): no
    /// subscriber, so it never holds producers back. Registering handlers
    /// works, but `start`, `run` and `dispatch_pending` answer
    /// [`EngineError::SendOnly`] and `get` [`GetError::SendOnly`].
    ///
    /// # Errors
    /// [`EngineError::Bus`] with `TooManyProducers`.
    pub fn publisher_only(bus: &Bus, name: &str) -> Result<EventEngine, EngineError> {
        let publisher = bus.publisher(name)?;
        Ok(EventEngine::over(bus, publisher, None))
    }

    fn over(bus: &Bus, publisher: Publisher, subscriber: Option<Subscriber>) -> EventEngine {
        EventEngine::from_transport(Transport::Bus(Box::new(BusTransport {
            bus: bus.clone(),
            publisher: Mutex::new(publisher),
            subscriber: subscriber.map(Mutex::new),
        })))
    }

    fn receives(&self) -> Result<(), EngineError> {
        match &self.inner.transport {
            Transport::Bus(b) if b.subscriber.is_none() => Err(EngineError::SendOnly),
            _ => Ok(()),
        }
    }

    /// The bus, for an engine over one.
    pub fn bus(&self) -> Option<&Bus> {
        match &self.inner.transport {
            Transport::Bus(b) => Some(&b.bus),
            Transport::Local(_) => None,
        }
    }

    /// A weak handle, for handlers that need to reach the engine.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle(Arc::downgrade(&self.inner))
    }

    // ------------------------------------------------------------ hooks

    fn changed(&self) {
        // Release: pairs with the Acquire load in `Router::dispatch`.
        self.inner.generation.fetch_add(1, Ordering::Release);
    }

    /// Registers `handler` on `topic` (an exact topic or a pattern),
    /// creating the hook if needed. With `deduplicate`, a handler already
    /// registered on that topic is not added again. Returns whether it
    /// was added.
    ///
    /// # Errors
    /// [`EngineError::InvalidTopic`].
    pub fn register_handler(
        &self,
        topic: &str,
        handler: impl Into<Handler>,
        deduplicate: bool,
    ) -> Result<bool, EngineError> {
        let topic = Topic::parse(topic)?;
        let handler = handler.into();
        let mut registry = lock(&self.inner.registry);
        let added = registry.update(&topic, |hook| hook.add_handler(handler, deduplicate));
        self.changed();
        Ok(added)
    }

    /// Removes the first registration of `handler` on `topic`; a hook left
    /// empty is removed. Returns whether it was registered.
    ///
    /// # Errors
    /// [`EngineError::InvalidTopic`].
    pub fn unregister_handler(&self, topic: &str, handler: &Handler) -> Result<bool, EngineError> {
        let topic = Topic::parse(topic)?;
        let mut registry = lock(&self.inner.registry);
        if registry.get(&topic).is_none() {
            return Ok(false);
        }
        let removed = registry.update(&topic, |hook| hook.remove_handler(handler));
        self.changed();
        Ok(removed)
    }

    /// Registers a whole hook.
    ///
    /// # Errors
    /// [`EngineError::HookExists`] if its topic already has one.
    pub fn register_hook(&self, hook: EventHook) -> Result<(), EngineError> {
        let topic = hook.topic().to_string();
        if !lock(&self.inner.registry).insert(hook) {
            return Err(EngineError::HookExists { topic });
        }
        self.changed();
        Ok(())
    }

    /// Removes the hook on `topic` and returns it.
    ///
    /// # Errors
    /// [`EngineError::InvalidTopic`], [`EngineError::NoHook`].
    pub fn unregister_hook(&self, topic: &str) -> Result<EventHook, EngineError> {
        let parsed = Topic::parse(topic)?;
        let hook = lock(&self.inner.registry).remove(&parsed);
        match hook {
            Some(hook) => {
                self.changed();
                Ok(hook)
            }
            None => Err(EngineError::NoHook {
                topic: parsed.to_string(),
            }),
        }
    }

    /// The hook on `topic` (a copy; its statistics are live).
    ///
    /// # Errors
    /// [`EngineError::InvalidTopic`].
    pub fn get_hook(&self, topic: &str) -> Result<Option<EventHook>, EngineError> {
        let topic = Topic::parse(topic)?;
        Ok(lock(&self.inner.registry).get(&topic).cloned())
    }

    /// Every hook, in registration order (copies).
    pub fn event_hooks(&self) -> Vec<EventHook> {
        lock(&self.inner.registry).hooks().cloned().collect()
    }

    /// The topics that have hooks, in registration order.
    pub fn topics(&self) -> Vec<Topic> {
        lock(&self.inner.registry)
            .hooks()
            .map(|h| h.topic().clone())
            .collect()
    }

    /// `(topic, hook)` pairs, in registration order.
    pub fn items(&self) -> Vec<(Topic, EventHook)> {
        lock(&self.inner.registry)
            .hooks()
            .map(|h| (h.topic().clone(), h.clone()))
            .collect()
    }

    /// Removes every hook and handler (queued events stay queued).
    pub fn clear(&self) {
        lock(&self.inner.registry).clear();
        self.changed();
    }

    // ---------------------------------------------------------- running

    /// Lets `run` and the dispatch thread process events.
    pub fn activate(&self) {
        self.inner.active.store(true, Ordering::SeqCst);
    }

    /// Makes `run` and the dispatch thread return after the event being
    /// dispatched (if any); timers stop ticking. Does not wait.
    pub fn deactivate(&self) {
        self.inner.active.store(false, Ordering::SeqCst);
        if let Transport::Local(q) = &self.inner.transport {
            q.wake_all();
        }
    }

    /// Whether the engine is active.
    pub fn is_active(&self) -> bool {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Whether a dispatch loop (`run` or the thread) is running.
    pub fn is_running(&self) -> bool {
        self.inner.dispatching.load(Ordering::SeqCst)
    }

    /// Activates the engine and dispatches in a thread of its own until
    /// [`stop`](Self::stop) (or drop).
    ///
    /// # Errors
    /// [`EngineError::AlreadyRunning`], [`EngineError::SendOnly`],
    /// [`EngineError::Spawn`].
    pub fn start(&self) -> Result<(), EngineError> {
        self.receives()?;
        let mut thread = lock(&self.inner.thread);
        if let Some(old) = thread.take() {
            // A previous thread told to stop from one of its handlers.
            if old.is_finished() || !self.is_running() {
                let _ = old.join();
            } else {
                *thread = Some(old);
                return Err(EngineError::AlreadyRunning);
            }
        }
        let claim = Claim::take(&self.inner)?;
        self.activate();
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("shm-bus-engine".into())
            .spawn(move || {
                let _claim = claim;
                inner.run_loop();
            });
        match spawned {
            Ok(handle) => {
                *thread = Some(handle);
                Ok(())
            }
            Err(e) => Err(EngineError::Spawn(e)),
        }
    }

    /// Deactivates the engine and waits for its dispatch thread to
    /// finish (not when called from a handler on that thread: then the
    /// thread finishes after the handler returns).
    pub fn stop(&self) {
        self.deactivate();
        let handle = lock(&self.inner.thread).take();
        if let Some(handle) = handle {
            if handle.thread().id() == std::thread::current().id() {
                *lock(&self.inner.thread) = Some(handle);
            } else {
                let _ = handle.join();
            }
        }
    }

    /// Dispatches in the calling thread while the engine is active (until
    /// [`deactivate`](Self::deactivate), from a handler or another thread).
    ///
    /// # Errors
    /// [`EngineError::NotActive`], [`EngineError::AlreadyRunning`],
    /// [`EngineError::SendOnly`].
    pub fn run(&self) -> Result<(), EngineError> {
        self.receives()?;
        if !self.is_active() {
            return Err(EngineError::NotActive);
        }
        let _claim = Claim::take(&self.inner)?;
        self.inner.run_loop();
        Ok(())
    }

    /// Dispatches every event that is ready now, in the calling thread,
    /// and returns how many were dispatched (whether or not the engine is
    /// active). For single-threaded programs and tests.
    ///
    /// # Errors
    /// [`EngineError::AlreadyRunning`], [`EngineError::SendOnly`].
    pub fn dispatch_pending(&self) -> Result<u64, EngineError> {
        self.receives()?;
        let _claim = Claim::take(&self.inner)?;
        let mut n = 0;
        while self.inner.dispatch_one(Wait::non_blocking()) {
            n += 1;
        }
        Ok(n)
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> EngineStats {
        let c = &self.inner.counters;
        // Relaxed: independent counters, for reporting.
        EngineStats {
            dispatched: c.dispatched.load(Ordering::Relaxed),
            unhandled: c.unhandled.load(Ordering::Relaxed),
            handler_calls: c.handler_calls.load(Ordering::Relaxed),
            handler_failures: c.handler_failures.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
        }
    }

    // ------------------------------------------------------- put / get

    /// Sends `payload` on the exact `topic`, waiting for room as `wait`
    /// says. Over a bus, every engine (and subscriber) on the bus receives
    /// it. Returns its sequence number.
    ///
    /// # Errors
    /// [`PublishError::Full`] when there was no room within the wait;
    /// [`PublishError::PayloadTooLarge`]; [`PublishError::Topic`] for an
    /// invalid topic, a pattern, or a full topic table.
    pub fn put(&self, topic: &str, payload: &[u8], wait: Wait) -> Result<u64, PublishError> {
        let may_block = !self.inner.dispatching_here();
        match &self.inner.transport {
            Transport::Local(q) => q.push(topic, payload, wait, may_block),
            Transport::Bus(b) => b.put(topic, payload, wait, may_block),
        }
    }

    /// Sends a plain-old-data value, which handlers view in place with
    /// [`Message::as_pod`].
    ///
    /// # Errors
    /// As [`put`](Self::put).
    pub fn put_pod<T: bytemuck::Pod>(
        &self,
        topic: &str,
        value: &T,
        wait: Wait,
    ) -> Result<u64, PublishError> {
        self.put(topic, bytemuck::bytes_of(value), wait)
    }

    /// Sends a serde value (postcard), which handlers decode with
    /// [`Message::decode`].
    ///
    /// # Errors
    /// As [`put`](Self::put), plus [`PublishError::Encode`].
    pub fn publish<T: serde::Serialize>(
        &self,
        topic: &str,
        value: &T,
        wait: Wait,
    ) -> Result<u64, PublishError> {
        let bytes = postcard::to_stdvec(value)?;
        self.put(topic, &bytes, wait)
    }

    /// Takes the next event off the engine without dispatching it,
    /// waiting as `wait` says.
    ///
    /// # Errors
    /// [`GetError::Empty`], [`GetError::Lagged`], [`GetError::Corrupt`],
    /// [`GetError::Dispatching`] while a dispatch loop runs,
    /// [`GetError::SendOnly`].
    pub fn get(&self, wait: Wait) -> Result<OwnedMessage, GetError> {
        if self.is_running() {
            return Err(GetError::Dispatching);
        }
        match &self.inner.transport {
            Transport::Local(q) => q.pop(wait, || true).map_err(|_| GetError::Empty),
            Transport::Bus(b) => b.get(wait),
        }
    }

    /// How many events fit: the queue's capacity in-process; over a bus,
    /// the bytes of the engine's producer ring (`put` waits when the
    /// slowest subscriber is that far behind).
    pub fn capacity(&self) -> usize {
        match &self.inner.transport {
            Transport::Local(q) => q.capacity(),
            Transport::Bus(b) => b.bus.config().ring_bytes as usize,
        }
    }

    /// How much of [`capacity`](Self::capacity) is taken: queued events
    /// in-process; over a bus, bytes of the engine's ring not yet read by
    /// the slowest subscriber (as last published by the subscribers).
    pub fn occupied(&self) -> usize {
        match &self.inner.transport {
            Transport::Local(q) => q.len(),
            Transport::Bus(b) => lock(&b.publisher).backlog() as usize,
        }
    }

    /// The largest payload `put` accepts.
    pub fn max_payload(&self) -> usize {
        match &self.inner.transport {
            Transport::Local(q) => q.max_payload(),
            Transport::Bus(b) => b.bus.config().max_payload(),
        }
    }

    // ----------------------------------------------------------- timers

    /// A timer publishing a [`TimerTick`] every `interval` while the
    /// engine is active, and the topic it publishes on (PyEventEngine's
    /// `get_timer`): 1 s → [`SECOND_TIMER_TOPIC`], ticking on every
    /// wall-clock second; 60 s → [`MINUTE_TIMER_TOPIC`], on every
    /// wall-clock minute; any other interval →
    /// `EventEngine.Internal.Timer.<interval>` (see [`TimerTick`]),
    /// ticking at `activate_time + k × interval` (default: now +
    /// interval). Asking again for the same interval returns the same
    /// topic without a second timer. Register handlers on the topic to
    /// receive the ticks.
    ///
    /// # Errors
    /// [`EngineError::Spawn`]; an `interval` of zero is
    /// [`EngineError::Bus`] with `InvalidConfig`.
    pub fn get_timer(
        &self,
        interval: Duration,
        activate_time: Option<std::time::SystemTime>,
    ) -> Result<Topic, EngineError> {
        timer::get_timer(&self.inner, interval, activate_time)
    }

    /// The topics of the timers running, in creation order.
    pub fn timers(&self) -> Vec<Topic> {
        self.inner.timers.topics()
    }
}

impl Drop for EventEngine {
    fn drop(&mut self) {
        if self.owner {
            self.stop();
            self.inner.timers.stop_all();
        }
    }
}

/// The right to dispatch, held by whoever runs the dispatch loop.
struct Claim(Arc<Inner>);

impl Claim {
    fn take(inner: &Arc<Inner>) -> Result<Claim, EngineError> {
        inner
            .dispatching
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .map_err(|_| EngineError::AlreadyRunning)?;
        Ok(Claim(inner.clone()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.dispatching.store(false, Ordering::SeqCst);
    }
}

impl Inner {
    fn dispatching_here(&self) -> bool {
        DISPATCHING_FOR.with(|d| d.get() == self as *const Inner as usize)
    }

    fn run_loop(&self) {
        while self.active.load(Ordering::SeqCst) {
            self.dispatch_one(Wait::timeout(DISPATCH_SLICE).with_max_spin(0));
        }
    }

    /// Receives one event (waiting as `wait` says) and dispatches it.
    /// Returns whether an event was received.
    fn dispatch_one(&self, wait: Wait) -> bool {
        let previous = DISPATCHING_FOR.with(|d| d.replace(self as *const Inner as usize));
        let mut router = lock(&self.router);
        let got = match &self.transport {
            Transport::Local(q) => match q.pop(wait, || self.active.load(Ordering::SeqCst)) {
                Ok(m) => {
                    self.fire(&mut router, m.as_message());
                    true
                }
                Err(PopError::Empty | PopError::Woken) => false,
            },
            Transport::Bus(b) => b.dispatch_one(self, &mut router, wait),
        };
        DISPATCHING_FOR.with(|d| d.set(previous));
        got
    }

    #[inline]
    fn fire(&self, router: &mut Router, message: Message<'_>) {
        let outcome = router.dispatch(&self.registry, &self.generation, message);
        let c = &self.counters;
        // Relaxed: statistics only.
        c.dispatched.fetch_add(1, Ordering::Relaxed);
        if outcome.calls == 0 {
            c.unhandled.fetch_add(1, Ordering::Relaxed);
        } else {
            c.handler_calls
                .fetch_add(u64::from(outcome.calls), Ordering::Relaxed);
            if outcome.failures != 0 {
                c.handler_failures
                    .fetch_add(u64::from(outcome.failures), Ordering::Relaxed);
            }
        }
    }

    fn lagged(&self, n: u64) {
        // Relaxed: statistics only.
        self.counters.lagged.fetch_add(n, Ordering::Relaxed);
        tracing::warn!(missed = n, "event engine lagged behind the bus");
    }

    /// Puts an event from a timer thread (never waits long: a tick that
    /// finds no room within `wait` is dropped and logged).
    fn put_tick(&self, topic: &str, tick: &TimerTick, wait: Wait) {
        let bytes = bytemuck::bytes_of(tick);
        let r = match &self.transport {
            Transport::Local(q) => q.push(topic, bytes, wait, true),
            Transport::Bus(b) => b.put(topic, bytes, wait, true),
        };
        if let Err(e) = r {
            tracing::warn!(topic, error = %e, "timer tick dropped");
        }
    }
}

impl BusTransport {
    fn put(
        &self,
        topic: &str,
        payload: &[u8],
        wait: Wait,
        may_block: bool,
    ) -> Result<u64, PublishError> {
        let mut publisher = lock(&self.publisher);
        let mut spins = 0;
        loop {
            match publisher.try_publish(topic, payload) {
                Err(PublishError::Full) => {}
                other => return other,
            }
            if !wait.block || !may_block {
                return Err(PublishError::Full);
            }
            if spins >= wait.max_spin {
                break;
            }
            spins += 1;
            std::hint::spin_loop();
        }
        match wait.timeout {
            None => publisher.publish(topic, payload),
            Some(t) => publisher.publish_timeout(topic, payload, t),
        }
    }

    fn get(&self, wait: Wait) -> Result<OwnedMessage, GetError> {
        let Some(sub) = &self.subscriber else {
            return Err(GetError::SendOnly);
        };
        let mut sub = lock(sub);
        let deadline = wait.timeout.map(|t| Instant::now() + t);
        let mut spins = 0;
        loop {
            let received = if !wait.block || spins < wait.max_spin {
                spins += 1;
                sub.try_recv()
            } else {
                match deadline {
                    None => sub.recv(),
                    Some(d) => sub.recv_timeout(d.saturating_duration_since(Instant::now())),
                }
            };
            match received {
                Ok(sample) => {
                    // Under Overwrite the sample is already a validated
                    // copy (a rewritten record is reported as lag instead).
                    return Ok(OwnedMessage {
                        topic: sample.topic().into(),
                        topic_id: sample.topic_id(),
                        payload: AlignedBytes::copy_from(sample.payload()),
                        producer: Some(sample.producer()),
                        sequence: sample.sequence(),
                        timestamp_ns: sample.timestamp_ns(),
                    });
                }
                Err(RecvError::Empty) if wait.block => std::hint::spin_loop(),
                Err(RecvError::Empty | RecvError::Timeout) => return Err(GetError::Empty),
                Err(RecvError::Lagged(n)) => return Err(GetError::Lagged(n)),
                Err(RecvError::Corrupt { what }) => return Err(GetError::Corrupt { what }),
            }
        }
    }

    fn dispatch_one(&self, inner: &Inner, router: &mut Router, wait: Wait) -> bool {
        let Some(sub) = &self.subscriber else {
            return false;
        };
        let mut sub = lock(sub);
        let received = if !wait.block {
            sub.try_recv()
        } else {
            sub.recv_timeout(wait.timeout.unwrap_or(DISPATCH_SLICE))
        };
        match received {
            Ok(sample) => {
                // The payload is borrowed in the ring (Block) or a copy the
                // subscriber validated (Overwrite): handlers never see a
                // torn payload.
                let message = Message {
                    topic: sample.topic(),
                    topic_id: sample.topic_id(),
                    captures: &[],
                    payload: sample.payload(),
                    producer: Some(sample.producer()),
                    sequence: sample.sequence(),
                    timestamp: sample.stamp(),
                    clock: Some(&self.bus),
                };
                inner.fire(router, message);
                true
            }
            Err(RecvError::Lagged(n)) => {
                inner.lagged(n);
                true
            }
            Err(RecvError::Corrupt { what }) => {
                tracing::error!(what, "event engine: corrupt ring skipped");
                true
            }
            Err(_) => false,
        }
    }
}
