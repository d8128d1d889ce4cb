//! [`EventEngine`]: the public API (hooks, running, put/get, timers).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use shm_bus_core::{Bus, BusConfig, GroupOptions, PublishError, Publisher, Subscriber};
use shm_bus_topic::Topic;

use crate::dispatch::{Registry, Router, lock};
use crate::error::{EngineError, EngineStats, GetError};
use crate::hook::{EventHook, Handler};
use crate::message::OwnedMessage;
use crate::queue::LocalQueue;
use crate::run::Claim;
use crate::timer;
use crate::transport::{BusTransport, Transport};
use crate::wait::Wait;

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) dispatched: AtomicU64,
    pub(crate) unhandled: AtomicU64,
    pub(crate) handler_calls: AtomicU64,
    pub(crate) handler_failures: AtomicU64,
    pub(crate) lagged: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    pub(crate) registry: Mutex<Registry>,
    /// Bumped (Release) after every registration change.
    pub(crate) generation: AtomicU64,
    pub(crate) router: Mutex<Router>,
    /// Whether dispatch loops and timers run. A plain flag that publishes
    /// no data: every access is SeqCst (stores in `activate`/`deactivate`,
    /// loads in the dispatch loop, `is_active` and the timers), so all
    /// threads see one order of switches; it is read once per dispatch
    /// slice and per tick, so the strength costs nothing measurable.
    pub(crate) active: AtomicBool,
    /// Someone (a `run`, the thread, a `dispatch_pending`) is dispatching.
    /// SeqCst like `active`: the CAS in `Claim::take` pairs with the store
    /// in `Claim::drop`; the data the dispatcher uses is behind mutexes.
    pub(crate) dispatching: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) timers: timer::Timers,
    /// The dispatch thread `start` spawned (if any).
    pub(crate) thread: Mutex<Option<JoinHandle<()>>>,
}

thread_local! {
    /// The engine this thread is dispatching for (its `Inner` address), so
    /// a `put` from a handler knows it must not wait on its own dispatch.
    pub(crate) static DISPATCHING_FOR: Cell<usize> = const { Cell::new(0) };
}

/// PyEventEngine's `EventEngine`, over a bus or in-process. See the
/// [crate docs](crate).
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
            Transport::Bus(b) => d.field("bus", &b.bus.name()).field("group", &b.group),
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

    /// An engine over `bus` whose receiving side is a member `name` of
    /// worker group `group` ([`Bus::group_member`]): each event matching
    /// the group's patterns is dispatched by exactly one engine of the
    /// group (handlers fire once per event across the group), and an
    /// event whose engine died before its handlers returned is dispatched
    /// again by another, flagged [`Message::redelivered`](crate::Message::redelivered)
    /// (at-least-once) — the engine's `put`s go to the whole bus as usual.
    /// `patterns` must be the group's, or empty to take them; the first
    /// member creates the group (at-least-once, claims of 8 events: see
    /// [`with_group_options`](Self::with_group_options)).
    ///
    /// An event is finished when its handlers have returned (a handler
    /// that panics counts as returned: it is caught and counted), or, for
    /// [`get`](Self::get), when it has been copied out. Events the engine
    /// has claimed but not dispatched yet (up to the claim batch) stay
    /// its own while it is stopped; dropping the engine hands them to
    /// another member.
    ///
    /// # Errors
    /// [`EngineError::Bus`] with the errors of [`Bus::group_member`] and
    /// `TooManyProducers`.
    pub fn with_group(
        bus: &Bus,
        group: &str,
        name: &str,
        patterns: &[&str],
    ) -> Result<EventEngine, EngineError> {
        EventEngine::with_group_options(bus, group, name, patterns, GroupOptions::default())
    }

    /// [`with_group`](Self::with_group) with the group's mode (fixed by
    /// whoever creates the group: at-most-once drops the event a dead
    /// engine was dispatching instead of redelivering it) and the claim
    /// batch ([`Bus::group_member_with`]).
    ///
    /// # Errors
    /// As [`with_group`](Self::with_group), plus
    /// [`GroupModeMismatch`](shm_bus_core::BusError::GroupModeMismatch).
    pub fn with_group_options(
        bus: &Bus,
        group: &str,
        name: &str,
        patterns: &[&str],
        options: GroupOptions,
    ) -> Result<EventEngine, EngineError> {
        let subscriber = bus.group_member_with(group, name, patterns, options)?;
        let publisher = bus.publisher(name)?;
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
        let group = subscriber
            .as_ref()
            .and_then(|s| s.group().map(str::to_owned));
        EventEngine::from_transport(Transport::Bus(Box::new(BusTransport {
            bus: bus.clone(),
            publisher: Mutex::new(publisher),
            subscriber: subscriber.map(Mutex::new),
            group,
            group_removed: AtomicBool::new(false),
        })))
    }

    fn receives(&self) -> Result<(), EngineError> {
        match &self.inner.transport {
            Transport::Bus(b) if b.subscriber.is_none() => Err(EngineError::SendOnly),
            Transport::Bus(b) => b.removed_error().map_or(Ok(()), Err),
            Transport::Local(_) => Ok(()),
        }
    }

    /// The error the dispatch loop ended with, if it ended because the
    /// engine's worker group was removed.
    fn ended(&self) -> Result<(), EngineError> {
        match &self.inner.transport {
            Transport::Bus(b) => b.removed_error().map_or(Ok(()), Err),
            Transport::Local(_) => Ok(()),
        }
    }

    /// The worker group whose member the engine is
    /// ([`with_group`](Self::with_group)), if it is one.
    pub fn group(&self) -> Option<&str> {
        match &self.inner.transport {
            Transport::Bus(b) => b.group.as_deref(),
            Transport::Local(_) => None,
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
    /// [`EngineError::Spawn`], [`EngineError::GroupRemoved`] (a group
    /// engine whose group was removed).
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
    /// [`EngineError::SendOnly`]; [`EngineError::GroupRemoved`] when it
    /// stopped because the engine's worker group was removed.
    pub fn run(&self) -> Result<(), EngineError> {
        self.receives()?;
        if !self.is_active() {
            return Err(EngineError::NotActive);
        }
        let _claim = Claim::take(&self.inner)?;
        self.inner.run_loop();
        self.ended()
    }

    /// Dispatches every event that is ready now, in the calling thread,
    /// and returns how many were dispatched (whether or not the engine is
    /// active). For single-threaded programs and tests.
    ///
    /// # Errors
    /// [`EngineError::AlreadyRunning`], [`EngineError::SendOnly`];
    /// [`EngineError::GroupRemoved`] once the engine's worker group was
    /// removed (when that ends a call that dispatched events, the call
    /// returns their count and the next one the error).
    pub fn dispatch_pending(&self) -> Result<u64, EngineError> {
        self.receives()?;
        let _claim = Claim::take(&self.inner)?;
        let mut n = 0;
        while self.inner.dispatch_one(Wait::non_blocking()) {
            n += 1;
        }
        if n == 0 {
            self.ended()?;
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
    /// [`Message::as_pod`](crate::Message::as_pod).
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
    /// [`Message::decode`](crate::Message::decode).
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
    /// [`GetError::SendOnly`], [`GetError::BusRemoved`],
    /// [`GetError::GroupRemoved`].
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

    /// A timer publishing a [`TimerTick`](crate::TimerTick) every `interval` while the
    /// engine is active, and the topic it publishes on (PyEventEngine's
    /// `get_timer`): 1 s → [`SECOND_TIMER_TOPIC`](crate::SECOND_TIMER_TOPIC), ticking on every
    /// wall-clock second; 60 s → [`MINUTE_TIMER_TOPIC`](crate::MINUTE_TIMER_TOPIC), on every
    /// wall-clock minute; any other interval →
    /// `EventEngine.Internal.Timer.<interval>` (see [`TimerTick`](crate::TimerTick)),
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
