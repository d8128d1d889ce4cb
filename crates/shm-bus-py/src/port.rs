//! [`BusPort`]: the bus side of a Python `EventEngine` (its publisher, its
//! subscriber to `**`, the dispatch loop with a per-topic route cache).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use shm_bus_core::delivery::AnyPolicy;
use shm_bus_core::{
    Bus, BusError, GroupOptions, PublishError, Publisher, RecvError, Sample, Subscriber, TopicId,
};

use crate::codec::{self, Encoded};
use crate::errors::{Empty, Full, bus_error, publish_error};
use crate::ffi::ManagedBuffer;

/// How long one wait lasts before signals are checked and the GIL is
/// taken back.
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// The dispatch loop lets other threads take the GIL after this many
/// events handled in a row.
const GIL_OFFER_EVERY: u32 = 16;

/// Set by the module's last `atexit` hook: the interpreter is about to
/// finalize, and every thread still running besides the main one is a
/// daemon thread. Such a thread must not take the GIL again: CPython would
/// end it with `pthread_exit`, unwinding through Rust frames, which aborts
/// the process. A thread coming back from (or starting) a wait parks
/// instead, and goes away with the process.
static FINALIZING: AtomicBool = AtomicBool::new(false);
/// Threads between releasing the GIL for a wait and having it back.
static WAITERS: AtomicUsize = AtomicUsize::new(0);
/// Of which parked for good (see [`FINALIZING`]).
static PARKED: AtomicUsize = AtomicUsize::new(0);

/// Called from the package's last `atexit` hook (see [`FINALIZING`]).
#[pyfunction]
pub(crate) fn _interpreter_exiting() {
    FINALIZING.store(true, Ordering::SeqCst);
}

/// Threads inside a wait that have not parked: the `atexit` hook lets
/// them take the GIL (and park on their next wait) until this is 0, so
/// none is left waiting for the GIL when the interpreter finalizes.
#[pyfunction]
pub(crate) fn _unparked_waiters() -> usize {
    WAITERS
        .load(Ordering::SeqCst)
        .saturating_sub(PARKED.load(Ordering::SeqCst))
}

fn park_if_finalizing() {
    if !FINALIZING.load(Ordering::SeqCst) {
        return;
    }
    // SAFETY: getpid/gettid have no preconditions.
    if unsafe { libc::gettid() == libc::getpid() } {
        return; // the main thread finalizes; it never parks
    }
    PARKED.fetch_add(1, Ordering::SeqCst);
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `py.detach(f)`, except that a thread waiting while the interpreter
/// finalizes parks (see [`FINALIZING`]).
pub(crate) fn detach<T: Send, F: FnOnce() -> T + Send>(py: Python<'_>, f: F) -> T {
    WAITERS.fetch_add(1, Ordering::SeqCst);
    let r = py.detach(|| {
        park_if_finalizing();
        let r = f();
        park_if_finalizing();
        r
    });
    WAITERS.fetch_sub(1, Ordering::SeqCst);
    r
}

/// Buses a view of whose ring memory may outlive its handler. A view
/// derived from a handler's memoryview (a slice, a numpy array over it)
/// cannot be revoked by CPython's buffer protocol; keeping the mapping
/// until the process exits means such a view can at worst read bytes a
/// producer rewrote, never unmapped memory. A bus is added when such a
/// view was detected, or at the start of dispatch when this interpreter's
/// layout could not be probed (then escapes cannot be seen).
static KEEP_MAPPED: Mutex<Vec<Bus>> = Mutex::new(Vec::new());

pub(crate) fn keep_mapped(bus: &Bus) {
    let mut keep = KEEP_MAPPED.lock().unwrap_or_else(|e| e.into_inner());
    if !keep.iter().any(|b| b.name() == bus.name()) {
        keep.push(bus.clone());
    }
}

/// The topic of a `put`: a `str`, or any object with a `value` str
/// attribute (the package's `Topic`).
pub(crate) fn topic_text<'py>(topic: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    if let Ok(s) = topic.cast::<PyString>() {
        return Ok(s.clone());
    }
    let v = topic.getattr("value")?;
    Ok(v.cast_into::<PyString>()?)
}

/// A publisher and the topic ids of the `str` objects last put through
/// it (keyed by identity: a literal or a `Topic`'s cached value is the
/// same object on every call, so the common `put` neither encodes the
/// string nor hashes it).
pub(crate) struct PubState {
    pub(crate) publisher: Publisher,
    ids: Vec<(Py<PyString>, TopicId)>,
}

/// How many `str` objects a publisher remembers the topic id of.
const ID_CACHE: usize = 64;

impl PubState {
    pub(crate) fn new(publisher: Publisher) -> Mutex<PubState> {
        Mutex::new(PubState {
            publisher,
            ids: Vec::new(),
        })
    }

    fn topic_id(&mut self, topic: &Bound<'_, PyString>) -> PyResult<TopicId> {
        if let Some((_, id)) = self.ids.iter().find(|(s, _)| s.as_ptr() == topic.as_ptr()) {
            return Ok(*id);
        }
        let id = self
            .publisher
            .topic_id(&topic.to_cow()?)
            .map_err(bus_error)?;
        if self.ids.len() >= ID_CACHE {
            self.ids.remove(0);
        }
        self.ids.push((topic.clone().unbind(), id));
        Ok(id)
    }
}

pub(crate) fn lock_pub(m: &Mutex<PubState>) -> std::sync::MutexGuard<'_, PubState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Publishes `payload` on `topic`: once without waiting, then (if `block`
/// and allowed) in slices with the GIL released, checking signals.
pub(crate) fn put_bytes(
    py: Python<'_>,
    publisher: &Mutex<PubState>,
    topic: &Bound<'_, PyString>,
    encoded: &Encoded,
    block: bool,
    timeout: f64,
    may_block: bool,
) -> PyResult<u64> {
    let payload = encoded.bytes(py);
    let mut id = None;
    let first = match publisher.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(mut p) = first {
        let tid = p.topic_id(topic)?;
        id = Some(tid);
        match p.publisher.try_publish(&tid, payload) {
            Ok(seq) => return Ok(seq),
            Err(PublishError::Full) => {}
            Err(e) => return Err(publish_error(e)),
        }
    }
    if !block || !may_block {
        if !may_block && block {
            return Err(Full::new_err(
                "the ring is full and this put runs on the engine's own dispatch thread \
                 (waiting would wait for itself)",
            ));
        }
        if id.is_some() {
            return Err(Full::new_err("the ring is full"));
        }
    }
    let id = match id {
        Some(id) => id,
        None => {
            // another thread holds the publisher (it may be waiting for
            // room): wait for it without the GIL
            let text = topic.to_cow()?.into_owned();
            let r = detach(py, || lock_pub(publisher).publisher.topic_id(&text));
            r.map_err(bus_error)?
        }
    };
    if !block {
        let r = detach(py, || {
            lock_pub(publisher).publisher.try_publish(&id, payload)
        });
        return r.map_err(publish_error);
    }
    let deadline = (timeout > 0.0).then(|| Instant::now() + Duration::from_secs_f64(timeout));
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Full::new_err(format!(
                        "the ring stayed full for {timeout} s"
                    )));
                }
                left.min(SLICE)
            }
        };
        let result = detach(py, || {
            lock_pub(publisher)
                .publisher
                .publish_timeout(&id, payload, slice)
        });
        match result {
            Ok(seq) => return Ok(seq),
            Err(PublishError::Full) => py.check_signals()?,
            Err(e) => return Err(publish_error(e)),
        }
    }
}

/// A message taken off the bus by `get` (owned).
struct Taken {
    topic: String,
    payload: Vec<u8>,
    sequence: u64,
    redelivered: bool,
}

fn take(sample: &Sample<'_>) -> Taken {
    Taken {
        topic: sample.topic().to_owned(),
        payload: sample.payload().to_vec(),
        sequence: sample.sequence(),
        redelivered: sample.redelivered(),
    }
}

/// Handlers of one hook as the route cache holds them.
struct RouteHook {
    hook: Py<PyAny>,
    /// A plain `EventHook` (not a subclass): handlers are called here.
    fast: bool,
    captures: Py<PyDict>,
}

struct Route {
    topic: Py<PyAny>,
    hooks: Vec<RouteHook>,
}

/// The bus side of an engine. Python's `EventEngine` drives it.
#[pyclass(module = "shm_bus._native")]
pub(crate) struct BusPort {
    bus: Bus,
    publisher: Mutex<PubState>,
    /// Attached at construction unless `receive=False` (a put-only engine
    /// has none, so it never holds the bus's producers back).
    subscriber: Mutex<Option<Subscriber>>,
    name: String,
    receive: bool,
    /// The worker group the engine's receiving side is a member of, with
    /// its patterns and options; `None`: a subscriber to `**`.
    group: Option<(String, Vec<String>, GroupOptions)>,
    /// Whether the event being dispatched was redelivered (set before its
    /// handlers run; read by handlers through `EventEngine.redelivered`).
    redelivered: AtomicBool,
    /// Bumped by `invalidate` after every registration change.
    generation: AtomicU64,
    /// Whether `run` keeps dispatching.
    active: AtomicBool,
    /// The OS thread dispatching (`run`), 0 if none: a `put` from it must
    /// not wait for room (its own dispatch frees the room).
    dispatcher: AtomicU64,
    handled_views: AtomicU64,
    escaped_views: AtomicU64,
}

thread_local! {
    static THREAD_KEY: u8 = const { 0 };
}

/// A number unique to the calling thread while it lives (the address of
/// a thread-local).
fn thread_key() -> u64 {
    THREAD_KEY.with(|k| k as *const u8 as u64)
}

impl BusPort {
    /// The group was removed: the engine deactivates, and `run` raises
    /// `GroupRemoved` (nothing more will arrive).
    fn group_gone(&self) -> PyErr {
        self.active.store(false, Ordering::SeqCst);
        recv_error_in(
            RecvError::GroupRemoved,
            self.group.as_ref().map(|(g, _, _)| g.as_str()),
        )
    }

    fn attach_locked(&self, slot: &mut Option<Subscriber>) -> PyResult<()> {
        if slot.is_none() {
            if !self.receive {
                return Err(PyRuntimeError::new_err(
                    "this engine was made with receive=False: it only puts (no get, run or start)",
                ));
            }
            let sub = match &self.group {
                Some((group, patterns, options)) => {
                    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
                    self.bus
                        .group_member_with::<AnyPolicy>(group, &self.name, &refs, *options)
                        .map_err(bus_error)?
                }
                None => {
                    let mut sub = self.bus.subscriber(&self.name).map_err(bus_error)?;
                    sub.subscribe("**").map_err(|e: BusError| bus_error(e))?;
                    sub
                }
            };
            *slot = Some(sub);
        }
        Ok(())
    }

    fn resolve<'py>(
        &self,
        py: Python<'py>,
        resolver: &Bound<'py, PyAny>,
        literal: &str,
        hook_type: &Bound<'py, PyAny>,
    ) -> PyResult<Route> {
        let resolved = resolver.call1((literal,))?;
        let (topic, hooks): (Bound<'py, PyAny>, Bound<'py, PyList>) = resolved.extract()?;
        let mut out = Vec::with_capacity(hooks.len());
        for item in hooks.iter() {
            let (hook, captures): (Bound<'py, PyAny>, Bound<'py, PyDict>) = item.extract()?;
            let fast = hook.get_type().is(hook_type);
            out.push(RouteHook {
                hook: hook.unbind(),
                fast,
                captures: captures.unbind(),
            });
        }
        let _ = py;
        Ok(Route {
            topic: topic.unbind(),
            hooks: out,
        })
    }

    /// Fires every hook the sample routes to.
    #[allow(clippy::too_many_arguments)]
    fn dispatch<'py>(
        &self,
        py: Python<'py>,
        sample: &Sample<'_>,
        routes: &mut Vec<Option<Route>>,
        generation: &mut u64,
        resolver: &Bound<'py, PyAny>,
        hook_type: &Bound<'py, PyAny>,
        make_payload: &Bound<'py, PyAny>,
        on_error: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        // Relaxed: read by handlers on this thread (`EventEngine.redelivered`).
        self.redelivered
            .store(sample.redelivered(), Ordering::Relaxed);
        // Acquire: pairs with the Release in `invalidate`.
        let current = self.generation.load(Ordering::Acquire);
        if current != *generation {
            routes.clear();
            *generation = current;
        }
        let i = sample.topic_id().index();
        if routes.get(i).is_none_or(|r| r.is_none()) {
            let route = self.resolve(py, resolver, sample.topic(), hook_type)?;
            if i >= routes.len() {
                routes.resize_with(i + 1, || None);
            }
            routes[i] = Some(route);
        }
        let Some(Some(route)) = routes.get(i) else {
            return Ok(());
        };
        if route.hooks.is_empty() {
            return Ok(());
        }
        let decoded = codec::decode(py, sample.payload(), false)?;
        if !decoded.views.is_empty() {
            self.handled_views.fetch_add(1, Ordering::Relaxed);
        }
        let topic = route.topic.bind(py);
        let mut result = Ok(());
        for rh in &route.hooks {
            let hook = rh.hook.bind(py);
            let r = if rh.fast {
                fire_fast(py, hook, topic, &decoded, rh.captures.bind(py), on_error)
            } else {
                make_payload
                    .call1((
                        topic,
                        &decoded.args,
                        decoded.kwargs_dict(py),
                        sample.sequence(),
                    ))
                    .and_then(|msg| hook.call_method1("trigger", (msg,)))
                    .map(drop)
            };
            if let Err(e) = r {
                result = Err(e);
                break;
            }
        }
        // The ring bytes may be rewritten once the sample drops: every
        // view handed out is released now, so a kept one raises. A view
        // derived from it (a slice, numpy.frombuffer) cannot be revoked:
        // that is detected (the managed buffer still has exports) and
        // reported.
        let mbufs: Vec<ManagedBuffer> = decoded.views.iter().map(ManagedBuffer::of).collect();
        let mut escaped = false;
        for view in decoded.views.iter().rev() {
            if view.call_method0(pyo3::intern!(py, "release")).is_err() {
                escaped = true;
            }
        }
        if mbufs.iter().any(|m| m.exports().is_some_and(|n| n > 0)) {
            escaped = true;
        }
        if escaped {
            keep_mapped(&self.bus);
            self.escaped_views.fetch_add(1, Ordering::Relaxed);
            let _ = on_error.call1((
                py.None(),
                format!(
                    "a handler of `{}` kept a view derived from its payload memoryview (a slice, \
                     numpy.frombuffer, ...); it cannot be revoked and will see bytes rewritten by \
                     later events: copy what you keep (bytes(mv), numpy.array(mv))",
                    sample.topic()
                ),
            ));
        }
        result
    }
}

/// Calls a plain hook's handlers (`hook._handlers`: a list of
/// `(fn, with_topic, with_captures)`) the way `EventHook.trigger` does;
/// a failing handler goes to `hook._handler_failed`.
fn fire_fast<'py>(
    py: Python<'py>,
    hook: &Bound<'py, PyAny>,
    topic: &Bound<'py, PyAny>,
    decoded: &codec::Decoded<'py>,
    captures: &Bound<'py, PyDict>,
    _on_error: &Bound<'py, PyAny>,
) -> PyResult<()> {
    let handlers = hook.getattr(pyo3::intern!(py, "_handlers"))?;
    let handlers = handlers.cast::<PyList>()?;
    let no_kwargs = decoded.kwargs.as_ref().is_none_or(|k| k.is_empty());
    for entry in handlers.iter() {
        let entry = entry.cast::<PyTuple>()?;
        let f = entry.get_item(0)?;
        let with_topic = entry.get_item(1)?.is_truthy()?;
        let with_captures = entry.get_item(2)?.is_truthy()?;
        let result = if !with_topic && !with_captures {
            // the callee gets its own **kwargs dict: ours is not exposed
            match &decoded.kwargs {
                Some(k) if !no_kwargs => f.call(&decoded.args, Some(k)),
                _ => f.call1(&decoded.args),
            }
        } else {
            let kw = match &decoded.kwargs {
                Some(k) => k.copy()?,
                None => PyDict::new(py),
            };
            if with_topic {
                kw.set_item(pyo3::intern!(py, "topic"), topic)?;
            }
            if with_captures {
                kw.set_item(pyo3::intern!(py, "captures"), captures.copy()?)?;
            }
            f.call(&decoded.args, Some(&kw))
        };
        if let Err(err) = result {
            hook.call_method1(
                pyo3::intern!(py, "_handler_failed"),
                (
                    f,
                    with_topic,
                    &decoded.args,
                    decoded.kwargs_dict(py),
                    topic,
                    err,
                ),
            )?;
        }
    }
    Ok(())
}

#[pymethods]
impl BusPort {
    /// Attaches to bus `bus` (created with `ring_bytes` etc. when absent
    /// and `create`) as publisher and subscriber `name`; with `group`, the
    /// receiving side is a member `name` of that worker group (joined or
    /// created with `patterns`, `mode`, `claim_batch`).
    #[new]
    #[pyo3(signature = (bus, name, create = true, ring_bytes = None, policy = None, receive = true,
                        group = None, patterns = None, mode = "at-least-once", claim_batch = 8))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bus: &str,
        name: &str,
        create: bool,
        ring_bytes: Option<u64>,
        policy: Option<&str>,
        receive: bool,
        group: Option<String>,
        patterns: Option<&Bound<'_, PyAny>>,
        mode: &str,
        claim_batch: u32,
    ) -> PyResult<BusPort> {
        let group = match group {
            Some(g) => {
                if !receive {
                    return Err(pyo3::exceptions::PyValueError::new_err(
                        "a worker-group engine receives: group= and receive=False exclude each other",
                    ));
                }
                let patterns = match patterns {
                    Some(p) => crate::bus::pattern_texts(p)?,
                    None => Vec::new(),
                };
                Some((g, patterns, crate::bus::group_options(mode, claim_batch)?))
            }
            None if patterns.is_some() => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "patterns= is for a worker-group engine (group=...); an engine over a bus \
                     receives every event",
                ));
            }
            None => None,
        };
        let config = crate::bus::config_from(ring_bytes, policy)?;
        let bus = if !create {
            Bus::open(bus)
        } else if ring_bytes.is_none() && policy.is_none() {
            // nothing asked of the configuration: an existing bus as it is
            Bus::open(bus).or_else(|_| Bus::open_or_create(bus, config))
        } else {
            Bus::open_or_create(bus, config)
        }
        .map_err(bus_error)?;
        let publisher = bus.publisher(name).map_err(bus_error)?;
        let port = BusPort {
            bus,
            publisher: PubState::new(publisher),
            subscriber: Mutex::new(None),
            name: name.to_owned(),
            receive,
            group,
            redelivered: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            active: AtomicBool::new(false),
            dispatcher: AtomicU64::new(0),
            handled_views: AtomicU64::new(0),
            escaped_views: AtomicU64::new(0),
        };
        if receive {
            port.attach()?;
        }
        Ok(port)
    }

    /// Attaches the engine's subscriber (to `**`) if it is not yet:
    /// from then on it receives every event put on the bus.
    fn attach(&self) -> PyResult<()> {
        let mut guard = match self.subscriber.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // a dispatch loop or get holds it: it is attached
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        self.attach_locked(&mut guard)
    }

    /// Whether the engine receives (`receive=True`).
    #[getter]
    fn receives(&self) -> bool {
        self.receive
    }

    /// Whether the subscriber is attached.
    #[getter]
    fn attached(&self) -> bool {
        match self.subscriber.try_lock() {
            Ok(g) => g.is_some(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().is_some(),
            Err(TryLockError::WouldBlock) => true,
        }
    }

    #[getter]
    fn bus_name(&self) -> &str {
        self.bus.name()
    }

    /// The worker group, for a group engine; else None.
    #[getter]
    fn group(&self) -> Option<&str> {
        self.group.as_ref().map(|(g, _, _)| g.as_str())
    }

    /// Whether the event being dispatched (read from a handler) was
    /// handed out before to a group member that died before its handlers
    /// returned.
    #[getter]
    fn redelivered(&self) -> bool {
        self.redelivered.load(Ordering::Relaxed)
    }

    /// The bus's ring size in bytes.
    #[getter]
    fn capacity(&self) -> u64 {
        self.bus.config().ring_bytes
    }

    /// Bytes of this engine's ring not yet read by the slowest subscriber.
    #[getter]
    fn occupied(&self) -> u64 {
        lock_pub(&self.publisher).publisher.backlog()
    }

    #[getter]
    fn max_payload(&self) -> usize {
        self.bus.config().max_payload()
    }

    /// Events whose payload was handed to handlers as memoryviews, and
    /// how many of those had an export that outlived the handler.
    #[getter]
    fn view_stats(&self) -> (u64, u64) {
        (
            self.handled_views.load(Ordering::Relaxed),
            self.escaped_views.load(Ordering::Relaxed),
        )
    }

    /// Registrations changed: routes are resolved again.
    fn invalidate(&self) {
        // Release: pairs with the Acquire load in `dispatch`.
        self.generation.fetch_add(1, Ordering::Release);
    }

    #[getter]
    fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    /// Sends `args` / `kwargs` on the exact `topic`. `ValueError` for a
    /// pattern or invalid topic, `Full` when there was no room in time.
    #[pyo3(signature = (topic, args, kwargs, block = true, timeout = 0.0))]
    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        block: bool,
        timeout: f64,
    ) -> PyResult<u64> {
        let topic = topic_text(topic)?;
        let encoded = codec::encode(py, args, kwargs)?;
        let may_block = self.dispatcher.load(Ordering::Relaxed) != thread_key();
        put_bytes(
            py,
            &self.publisher,
            &topic,
            &encoded,
            block,
            timeout,
            may_block,
        )
    }

    /// `put(topic, *args, block=True, max_spin=65535, timeout=0.0, **kwargs)`.
    #[pyo3(signature = (topic, *args, block = true, max_spin = 65535, timeout = 0.0, **kwargs))]
    #[allow(clippy::too_many_arguments)] // PyEventEngine's Python signature
    fn put(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        block: bool,
        max_spin: u64,
        timeout: f64,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<u64> {
        let _ = max_spin;
        self.publish(py, topic, args, kwargs, block, timeout)
    }

    /// Takes the next event: `(topic_literal, args, kwargs, sequence,
    /// redelivered)`, memoryviews over private copies. `Empty` when none
    /// came in time. A group engine's event is finished once copied.
    #[pyo3(signature = (block = true, timeout = 0.0))]
    #[allow(clippy::type_complexity)]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: f64,
    ) -> PyResult<(String, Bound<'py, PyTuple>, Bound<'py, PyDict>, u64, bool)> {
        let group = self.group.as_ref().map(|(g, _, _)| g.as_str());
        let mut guard = match self.subscriber.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err(
                    "the engine is dispatching (run/start): get() would take its events",
                ));
            }
        };
        self.attach_locked(&mut guard)?;
        let Some(sub) = guard.as_mut() else {
            return Err(PyRuntimeError::new_err("no subscriber"));
        };
        let deadline = (timeout > 0.0).then(|| Instant::now() + Duration::from_secs_f64(timeout));
        let mut taken = match sub.try_recv() {
            Ok(s) => Some(take(&s)),
            Err(RecvError::Empty) => None,
            Err(e) => return Err(recv_error_in(e, group)),
        };
        while taken.is_none() {
            if !block {
                return Err(Empty::new_err("no event available"));
            }
            let slice = match deadline {
                None => SLICE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Empty::new_err(format!("no event within {timeout} s")));
                    }
                    left.min(SLICE)
                }
            };
            let got = detach(py, || match sub.recv_timeout(slice) {
                Ok(s) => Ok(Some(take(&s))),
                Err(RecvError::Timeout | RecvError::Empty) => Ok(None),
                Err(e) => Err(e),
            });
            taken = got.map_err(|e| recv_error_in(e, group))?;
            py.check_signals()?;
        }
        let t = taken.expect("loop ends with an event");
        let decoded = codec::decode(py, &t.payload, true)?;
        let kwargs = decoded.kwargs_dict(py);
        Ok((t.topic, decoded.args, kwargs, t.sequence, t.redelivered))
    }

    /// Dispatches until `set_active(False)` (or the bus is removed):
    /// `resolver(literal) -> (topic, [(hook, captures)])` is asked once
    /// per topic after each `invalidate`; plain `hook_type` hooks have
    /// their handlers called here, other hooks get
    /// `hook.trigger(make_payload(topic, args, kwargs, seq))`;
    /// `on_error(None, text)` logs. The GIL is released while waiting;
    /// signals are checked every slice (Ctrl-C in the main thread). A
    /// group engine's event is finished when its handlers have returned;
    /// `GroupRemoved` is raised (the engine deactivated) when its group is
    /// removed.
    fn run(
        &self,
        py: Python<'_>,
        resolver: &Bound<'_, PyAny>,
        hook_type: &Bound<'_, PyAny>,
        make_payload: &Bound<'_, PyAny>,
        on_error: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let mut guard = match self.subscriber.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyRuntimeError::new_err("the engine is already dispatching"));
            }
        };
        if !crate::ffi::detects_derived_views() {
            keep_mapped(&self.bus);
        }
        self.attach_locked(&mut guard)?;
        let Some(sub) = guard.as_mut() else {
            return Err(PyRuntimeError::new_err("no subscriber"));
        };
        self.dispatcher.store(thread_key(), Ordering::Relaxed);
        let _reset = ResetOnDrop(&self.dispatcher);
        let mut routes: Vec<Option<Route>> = Vec::new();
        let mut generation = u64::MAX;
        let resolver = resolver.clone().unbind();
        let hook_type = hook_type.clone().unbind();
        let make_payload = make_payload.clone().unbind();
        let on_error = on_error.clone().unbind();
        let report = |py: Python<'_>, e: PyErr| {
            let _ = on_error.bind(py).call1((py.None(), e.to_string()));
        };
        while self.active.load(Ordering::SeqCst) {
            // Drain what is ready, holding the GIL (handlers run Python
            // anyway; the GIL is offered to other threads every 256).
            let mut n = 0u32;
            loop {
                match sub.try_recv() {
                    Ok(sample) => {
                        if let Err(e) = self.dispatch(
                            py,
                            &sample,
                            &mut routes,
                            &mut generation,
                            resolver.bind(py),
                            hook_type.bind(py),
                            make_payload.bind(py),
                            on_error.bind(py),
                        ) {
                            report(py, e);
                        }
                    }
                    Err(RecvError::Empty) => break,
                    Err(RecvError::BusRemoved) => {
                        report(py, recv_error(RecvError::BusRemoved));
                        self.active.store(false, Ordering::SeqCst);
                        return Ok(());
                    }
                    Err(RecvError::GroupRemoved) => return Err(self.group_gone()),
                    Err(e) => {
                        report(py, recv_error(e));
                        break;
                    }
                }
                n += 1;
                if n % GIL_OFFER_EVERY == 0 {
                    detach(py, || {});
                    py.check_signals()?;
                    if !self.active.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                }
            }
            py.check_signals()?;
            // Wait with the GIL released; dispatch what arrives once it is
            // taken back (the sample comes out of `detach`, which runs the
            // closure on this thread).
            let waiting: &mut Subscriber = &mut *sub;
            let received = detach(py, move || SameThread(waiting.recv_timeout(SLICE))).0;
            match received {
                Ok(sample) => {
                    if let Err(e) = self.dispatch(
                        py,
                        &sample,
                        &mut routes,
                        &mut generation,
                        resolver.bind(py),
                        hook_type.bind(py),
                        make_payload.bind(py),
                        on_error.bind(py),
                    ) {
                        report(py, e);
                    }
                }
                Err(RecvError::Timeout | RecvError::Empty) => {}
                Err(RecvError::BusRemoved) => {
                    report(py, recv_error(RecvError::BusRemoved));
                    self.active.store(false, Ordering::SeqCst);
                    return Ok(());
                }
                Err(RecvError::GroupRemoved) => return Err(self.group_gone()),
                Err(e) => report(py, recv_error(e)),
            }
        }
        Ok(())
    }
}

/// A value made inside a `detach` closure and used after it returns.
/// `detach` runs its closure on the calling thread, so the value (a
/// sample borrowing this thread's subscriber) never changes threads; the
/// `Send` bound `detach` asks for exists to keep GIL-bound objects out of
/// the closure, and a sample holds none.
pub(crate) struct SameThread<T>(pub(crate) T);

// SAFETY: see above: a `SameThread` is only created in a `detach` closure
// and consumed by the same thread right after `detach` returns.
unsafe impl<T> Send for SameThread<T> {}

struct ResetOnDrop<'a>(&'a AtomicU64);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

pub(crate) fn recv_error(e: RecvError) -> PyErr {
    recv_error_in(e, None)
}

/// [`recv_error`] for a receiver that is a member of `group`.
pub(crate) fn recv_error_in(e: RecvError, group: Option<&str>) -> PyErr {
    match e {
        RecvError::Empty | RecvError::Timeout => Empty::new_err(e.to_string()),
        RecvError::GroupRemoved => crate::errors::group_removed(group),
        other => crate::errors::BusError::new_err(other.to_string()),
    }
}
