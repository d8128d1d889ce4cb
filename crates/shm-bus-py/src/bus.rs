//! The low-level bus for Python: `Bus`, `Publisher`, `Subscriber`,
//! `Sample`, `Loan`.

use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};
use shm_bus_core::delivery::AnyPolicy;
use shm_bus_core::{
    Bus, BusConfig, GroupInfo, GroupMode, GroupOptions, GroupRemoval, Policy, RecvError, Sample,
    Start, Subscriber,
};

use crate::codec::Encoded;
use crate::errors::{Empty, bus_error};
use crate::ffi::Exported;
use crate::port::{PubState, SLICE, SameThread, lock_pub, put_bytes, recv_error_in, topic_text};

/// `GroupOptions` from Python arguments.
pub(crate) fn group_options(mode: &str, claim_batch: u32) -> PyResult<GroupOptions> {
    let mode: GroupMode = mode.parse().map_err(PyValueError::new_err)?;
    if claim_batch == 0 {
        return Err(PyValueError::new_err("claim_batch must be at least 1"));
    }
    Ok(GroupOptions { mode, claim_batch })
}

/// Pattern arguments: `str`s or `Topic`s.
pub(crate) fn pattern_texts(patterns: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if patterns.is_instance_of::<PyString>() {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "patterns must be a list or tuple of patterns, not one str",
        ));
    }
    let mut out = Vec::new();
    for p in patterns.try_iter()? {
        out.push(topic_text(&p?)?.to_cow()?.into_owned());
    }
    Ok(out)
}

fn group_dict<'py>(py: Python<'py>, g: &GroupInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("slot", g.slot)?;
    d.set_item("name", &g.name)?;
    d.set_item("mode", g.mode.as_str())?;
    d.set_item("patterns", &g.patterns)?;
    let members = PyList::empty(py);
    for m in &g.members {
        let md = PyDict::new(py);
        md.set_item("slot", m.slot)?;
        md.set_item("pid", m.pid)?;
        md.set_item("name", &m.name)?;
        md.set_item("alive", m.alive)?;
        md.set_item("adopted", m.adopted)?;
        md.set_item("claimed", m.claimed)?;
        md.set_item("done", m.done)?;
        md.set_item("busy", m.busy)?;
        members.append(md)?;
    }
    d.set_item("members", members)?;
    d.set_item("redelivered", g.redelivered)?;
    d.set_item("lost", g.lost)?;
    d.set_item("lagged", g.lagged)?;
    d.set_item("claimed", g.claimed)?;
    d.set_item("done", g.done)?;
    d.set_item("claims", g.claims)?;
    d.set_item("backlog", g.backlog)?;
    d.set_item("removing", g.removing)?;
    d.set_item("created_ns", g.created_ns)?;
    Ok(d)
}

pub(crate) fn config_from(ring_bytes: Option<u64>, policy: Option<&str>) -> PyResult<BusConfig> {
    let mut config = BusConfig::default();
    if let Some(r) = ring_bytes {
        config = config.with_ring_bytes(r);
    }
    if let Some(p) = policy {
        config = config.with_policy(match p {
            "block" => Policy::Block,
            "overwrite" => Policy::Overwrite,
            other => {
                return Err(PyValueError::new_err(format!(
                    "policy must be 'block' or 'overwrite', not {other:?}"
                )));
            }
        });
    }
    Ok(config)
}

/// A bus: one shared-memory segment `/dev/shm/shm-bus.NAME`.
#[pyclass(module = "shm_bus._native", name = "Bus", frozen)]
pub(crate) struct PyBus {
    bus: Bus,
}

/// The configuration keywords of `Bus.create` / `open_or_create`.
#[derive(Default, Clone, Copy)]
struct Sizes {
    max_groups: Option<u32>,
    max_group_members: Option<u32>,
}

#[allow(clippy::too_many_arguments)]
fn full_config(
    ring_bytes: Option<u64>,
    max_producers: Option<u32>,
    max_subscribers: Option<u32>,
    max_topics: Option<u32>,
    policy: Option<&str>,
    history_bytes: Option<u64>,
    sizes: Sizes,
) -> PyResult<BusConfig> {
    let mut c = config_from(ring_bytes, policy)?;
    if let Some(n) = sizes.max_groups {
        c = c.with_max_groups(n);
    }
    if let Some(n) = sizes.max_group_members {
        c = c.with_max_group_members(n);
    }
    if let Some(n) = max_producers {
        c = c.with_max_producers(n);
    }
    if let Some(n) = max_subscribers {
        c = c.with_max_subscribers(n);
    }
    if let Some(n) = max_topics {
        c = c.with_max_topics(n);
    }
    if let Some(n) = history_bytes {
        c = c.with_history_bytes(n);
    }
    Ok(c)
}

#[pymethods]
impl PyBus {
    /// Creates bus `name`; `BusError` if it exists.
    #[staticmethod]
    #[pyo3(signature = (name, *, ring_bytes=None, max_producers=None, max_subscribers=None,
                        max_topics=None, policy=None, history_bytes=None, max_groups=None,
                        max_group_members=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        name: &str,
        ring_bytes: Option<u64>,
        max_producers: Option<u32>,
        max_subscribers: Option<u32>,
        max_topics: Option<u32>,
        policy: Option<&str>,
        history_bytes: Option<u64>,
        max_groups: Option<u32>,
        max_group_members: Option<u32>,
    ) -> PyResult<PyBus> {
        let c = full_config(
            ring_bytes,
            max_producers,
            max_subscribers,
            max_topics,
            policy,
            history_bytes,
            Sizes {
                max_groups,
                max_group_members,
            },
        )?;
        Ok(PyBus {
            bus: Bus::create(name, c).map_err(bus_error)?,
        })
    }

    /// Opens the existing bus `name`; `BusError` if it does not exist.
    #[staticmethod]
    fn open(name: &str) -> PyResult<PyBus> {
        Ok(PyBus {
            bus: Bus::open(name).map_err(bus_error)?,
        })
    }

    /// Opens bus `name`, creating it with this configuration if absent
    /// (`BusError` if it exists with a smaller one); with no keyword, an
    /// existing bus is opened as it is.
    #[staticmethod]
    #[pyo3(signature = (name, *, ring_bytes=None, max_producers=None, max_subscribers=None,
                        max_topics=None, policy=None, history_bytes=None, max_groups=None,
                        max_group_members=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_or_create(
        name: &str,
        ring_bytes: Option<u64>,
        max_producers: Option<u32>,
        max_subscribers: Option<u32>,
        max_topics: Option<u32>,
        policy: Option<&str>,
        history_bytes: Option<u64>,
        max_groups: Option<u32>,
        max_group_members: Option<u32>,
    ) -> PyResult<PyBus> {
        let c = full_config(
            ring_bytes,
            max_producers,
            max_subscribers,
            max_topics,
            policy,
            history_bytes,
            Sizes {
                max_groups,
                max_group_members,
            },
        )?;
        let nothing_asked = ring_bytes.is_none()
            && max_producers.is_none()
            && max_subscribers.is_none()
            && max_topics.is_none()
            && policy.is_none()
            && history_bytes.is_none()
            && max_groups.is_none()
            && max_group_members.is_none();
        let bus = if nothing_asked {
            // nothing asked of the configuration: an existing bus as it is
            Bus::open(name).or_else(|_| Bus::open_or_create(name, c))
        } else {
            Bus::open_or_create(name, c)
        };
        Ok(PyBus {
            bus: bus.map_err(bus_error)?,
        })
    }

    /// Removes bus `name` (processes attached keep their mapping and see
    /// it as removed).
    #[staticmethod]
    fn remove(name: &str) -> PyResult<()> {
        Bus::remove(name).map_err(bus_error)
    }

    #[getter]
    fn name(&self) -> &str {
        self.bus.name()
    }

    /// Whether the bus was removed.
    #[getter]
    fn removed(&self) -> bool {
        self.bus.is_removed()
    }

    /// The configuration, as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.bus.config();
        let d = PyDict::new(py);
        d.set_item("ring_bytes", c.ring_bytes)?;
        d.set_item("max_producers", c.max_producers)?;
        d.set_item("max_subscribers", c.max_subscribers)?;
        d.set_item("max_topics", c.max_topics)?;
        d.set_item("policy", c.policy.as_str())?;
        d.set_item("history_bytes", c.history_bytes)?;
        d.set_item("max_groups", c.max_groups)?;
        d.set_item("max_group_members", c.max_group_members)?;
        d.set_item("max_payload", c.max_payload())?;
        Ok(d)
    }

    /// A publisher named `name`.
    fn publisher(&self, name: &str) -> PyResult<PyPublisher> {
        Ok(PyPublisher {
            publisher: PubState::new(self.bus.publisher(name).map_err(bus_error)?),
        })
    }

    /// A subscriber named `name`, subscribed to `patterns`; with
    /// `from_oldest`, it starts with what the rings retain.
    #[pyo3(signature = (name, patterns = Vec::new(), from_oldest = false))]
    fn subscriber(
        &self,
        name: &str,
        patterns: Vec<String>,
        from_oldest: bool,
    ) -> PyResult<PySubscriber> {
        let start = if from_oldest {
            Start::Oldest
        } else {
            Start::Now
        };
        let mut sub = self.bus.subscriber_from(name, start).map_err(bus_error)?;
        for p in &patterns {
            sub.subscribe(p).map_err(bus_error)?;
        }
        Ok(PySubscriber::new(sub))
    }

    /// Joins worker group `group` as member `name` (creating the group
    /// with `patterns` and `mode` if it does not exist; empty `patterns`
    /// take an existing group's). Each event matching the group's
    /// patterns goes to exactly one live member. The member is a
    /// `Subscriber` whose samples it holds unfinished until its next
    /// receive, `sample.done()` (or the end of a `with sample:` block),
    /// the sample being collected, or `close()`.
    #[pyo3(signature = (group, name, patterns = None, mode = "at-least-once", claim_batch = 8))]
    fn group_member(
        &self,
        group: &str,
        name: &str,
        patterns: Option<&Bound<'_, PyAny>>,
        mode: &str,
        claim_batch: u32,
    ) -> PyResult<PySubscriber> {
        let patterns = match patterns {
            Some(p) => pattern_texts(p)?,
            None => Vec::new(),
        };
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        let options = group_options(mode, claim_batch)?;
        let sub = self
            .bus
            .group_member_with::<AnyPolicy>(group, name, &refs, options)
            .map_err(bus_error)?;
        Ok(PySubscriber::new(sub))
    }

    /// Removes worker group `group`: `(outcome, pids)`, outcome one of
    /// `"removed"`, `"not-found"`, `"in-use"` (live members remain, their
    /// pids; nothing changed: pass `force=True`) and `"evicted"` (forced:
    /// the live members' next receives raise `GroupRemoved`).
    #[pyo3(signature = (group, force = false))]
    fn remove_group(&self, group: &str, force: bool) -> PyResult<(&'static str, Vec<u32>)> {
        Ok(
            match self.bus.remove_group(group, force).map_err(bus_error)? {
                GroupRemoval::NotFound => ("not-found", Vec::new()),
                GroupRemoval::Removed => ("removed", Vec::new()),
                GroupRemoval::InUse(pids) => ("in-use", pids),
                GroupRemoval::Evicted(pids) => ("evicted", pids),
            },
        )
    }

    /// Every worker group of the bus, as dicts.
    fn groups<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.bus
            .groups()
            .iter()
            .map(|g| group_dict(py, g))
            .collect()
    }

    /// `[(role, slot, pid, name, alive)]` for every attached member.
    fn members(&self) -> Vec<(String, u32, u32, String, bool)> {
        let m = self.bus.members();
        let mut out = Vec::new();
        for p in m.producers.iter() {
            out.push((
                "producer".into(),
                p.slot,
                p.pid,
                p.name.clone(),
                p.is_alive(),
            ));
        }
        for s in m.subscribers.iter() {
            out.push((
                "subscriber".into(),
                s.slot,
                s.pid,
                s.name.clone(),
                s.is_alive(),
            ));
        }
        out
    }

    fn __repr__(&self) -> String {
        format!("<Bus {:?}>", self.bus.name())
    }
}

/// Publishes raw bytes on exact topics.
#[pyclass(module = "shm_bus._native", name = "Publisher", frozen)]
pub(crate) struct PyPublisher {
    publisher: Mutex<PubState>,
}

fn buffer_arg(data: &Bound<'_, PyAny>) -> PyResult<Encoded> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(Encoded::Bytes(b.clone().unbind()));
    }
    Exported::get(data).map(Encoded::Verbatim).ok_or_else(|| {
        pyo3::exceptions::PyTypeError::new_err(
            "data must support the buffer protocol and be C-contiguous (bytes, bytearray, \
             memoryview, numpy array)",
        )
    })
}

#[pymethods]
impl PyPublisher {
    /// Publishes `data` (any C-contiguous buffer) on the exact `topic`;
    /// waits for room unless `block=False` (then `Full`), or at most
    /// `timeout` seconds (> 0). Returns the sequence number.
    #[pyo3(signature = (topic, data, block = true, timeout = 0.0))]
    fn publish(
        &self,
        py: Python<'_>,
        topic: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
        block: bool,
        timeout: f64,
    ) -> PyResult<u64> {
        let topic = topic_text(topic)?;
        let encoded = buffer_arg(data)?;
        put_bytes(py, &self.publisher, &topic, &encoded, block, timeout, true)
    }

    /// A loan of `size` bytes for `topic`: fill `loan.buffer`, then
    /// `commit()` (or leave a `with` block). The buffer is a private
    /// bytearray copied into the ring at commit (see docs/PYTHON.md).
    fn loan(&self, topic: &Bound<'_, PyAny>, size: usize) -> PyResult<PyLoan> {
        let topic = topic_text(topic)?.unbind();
        let max = lock_pub(&self.publisher).publisher.max_payload();
        if size > max {
            return Err(PyValueError::new_err(format!(
                "a loan of {size} bytes exceeds the bus's maximum payload of {max}"
            )));
        }
        Python::attach(|py| {
            Ok(PyLoan {
                topic,
                buffer: Some(PyByteArray::new(py, &vec![0u8; size]).unbind()),
            })
        })
    }

    /// Commits a loan (what `Loan.commit` calls).
    #[pyo3(signature = (loan, block = true, timeout = 0.0))]
    fn commit(
        &self,
        py: Python<'_>,
        loan: &Bound<'_, PyLoan>,
        block: bool,
        timeout: f64,
    ) -> PyResult<u64> {
        let mut l = loan.borrow_mut();
        let Some(buf) = l.buffer.take() else {
            return Err(PyRuntimeError::new_err("this loan was already committed"));
        };
        let topic = l.topic.clone_ref(py);
        drop(l);
        let encoded = buffer_arg(buf.bind(py).as_any())?;
        put_bytes(
            py,
            &self.publisher,
            topic.bind(py),
            &encoded,
            block,
            timeout,
            true,
        )
    }

    /// The producer slot: the `producer` of the samples it publishes.
    #[getter]
    fn id(&self) -> u32 {
        lock_pub(&self.publisher).publisher.id()
    }

    /// The largest payload this bus accepts.
    #[getter]
    fn max_payload(&self) -> usize {
        lock_pub(&self.publisher).publisher.max_payload()
    }

    /// Bytes of this publisher's ring not yet read by the slowest
    /// subscriber.
    #[getter]
    fn backlog(&self) -> u64 {
        lock_pub(&self.publisher).publisher.backlog()
    }
}

/// Bytes being prepared for one record.
#[pyclass(module = "shm_bus._native", name = "Loan")]
pub(crate) struct PyLoan {
    topic: Py<PyString>,
    buffer: Option<Py<PyByteArray>>,
}

#[pymethods]
impl PyLoan {
    /// A writable memoryview of the loan's bytes.
    #[getter]
    fn buffer<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.buffer {
            Some(b) => py
                .import("builtins")?
                .getattr("memoryview")?
                .call1((b.bind(py),)),
            None => Err(PyRuntimeError::new_err("this loan was already committed")),
        }
    }

    #[getter]
    fn topic(&self, py: Python<'_>) -> Py<PyString> {
        self.topic.clone_ref(py)
    }

    #[getter]
    fn committed(&self) -> bool {
        self.buffer.is_none()
    }
}

/// A subscriber, and for a worker-group member the sample of the event
/// it holds unfinished (the last one it handed to Python).
///
/// A core `Sample` borrows its `Subscriber` mutably, and an event of a
/// group is finished when its sample is dropped; to hand a group event to
/// Python without finishing it, the sample is kept here next to the
/// subscriber it borrows. The subscriber lives in its own heap allocation
/// (a raw pointer, so that moving the `Receiver` asserts nothing about
/// it), and every access to it goes through this type, which drops the
/// held sample first.
struct Receiver {
    /// Borrows `*sub`; always dropped before `sub` is touched or freed.
    held: Option<Held>,
    /// From `Box::into_raw`; freed in `Drop`.
    sub: NonNull<Subscriber>,
    /// Numbers the group samples handed out (see [`Held::receipt`]).
    receipts: u64,
    /// `(received, lagged, redelivered)` as of the last time nothing was
    /// held: what the counters say while an event is held.
    stats: (u64, u64, u64),
}

struct Held {
    /// Kept for its `Drop`, which finishes the event.
    _sample: Sample<'static>,
    /// Which Python `Sample` it belongs to: only that one's `done()`
    /// finishes it.
    receipt: u64,
}

// SAFETY: a `Receiver` owns its subscriber (which is `Send`) and the
// sample borrowing it; they only ever move between threads together
// (behind the `PySubscriber`'s mutex). A sample's payload pointer points
// into the bus mapping or the subscriber's own copy buffer, neither of
// which is tied to a thread.
unsafe impl Send for Receiver {}

impl Receiver {
    fn new(sub: Subscriber) -> Receiver {
        let stats = (sub.received(), sub.lagged(), sub.redelivered());
        Receiver {
            held: None,
            sub: NonNull::from(Box::leak(Box::new(sub))),
            receipts: 0,
            stats,
        }
    }

    /// Finishes the held event, if any.
    fn finish(&mut self) {
        if self.held.take().is_some() {
            let s = self.sub();
            self.stats = (s.received(), s.lagged(), s.redelivered());
        }
    }

    /// The subscriber, the held event finished first (a sample borrows
    /// it mutably).
    fn sub(&mut self) -> &mut Subscriber {
        drop(self.held.take());
        // SAFETY: `sub` came from `Box::into_raw` and is freed only in
        // `Drop`; nothing borrows it now (the held sample was just
        // dropped), and the returned borrow is tied to `&mut self`.
        unsafe { self.sub.as_mut() }
    }

    /// The subscriber, for a receive whose sample may be kept in `held`.
    ///
    /// # Safety
    /// Nothing may borrow the subscriber while the returned reference (or
    /// a sample made from it) is used: `held` is `None`, and no reference
    /// from an earlier call is alive. The reference must not outlive the
    /// `Receiver` (a sample made from it may only be kept in `held`).
    unsafe fn sub_unbound(&mut self) -> &'static mut Subscriber {
        debug_assert!(self.held.is_none());
        // SAFETY: as the caller promises; the allocation lives until
        // `Drop`, which drops `held` first.
        unsafe { &mut *self.sub.as_ptr() }
    }

    fn stats(&mut self) -> (u64, u64, u64) {
        if self.held.is_some() {
            return self.stats;
        }
        let s = self.sub();
        (s.received(), s.lagged(), s.redelivered())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.held.take());
        // SAFETY: from `Box::into_raw` in `new`, freed once, here, after
        // the sample borrowing it was dropped.
        drop(unsafe { Box::from_raw(self.sub.as_ptr()) });
    }
}

/// Receives the events matching its patterns; or, made by
/// `Bus.group_member`, its share of a worker group's events.
#[pyclass(module = "shm_bus._native", name = "Subscriber", frozen)]
pub(crate) struct PySubscriber {
    /// `None` once closed.
    inner: Mutex<Option<Receiver>>,
    /// The worker group, for a member.
    group: Option<String>,
    /// A member's patterns (the group's: they do not change).
    group_patterns: Vec<String>,
}

/// One received event; its payload is a private copy, valid as long as
/// the sample.
#[pyclass(module = "shm_bus._native", name = "Sample", frozen)]
pub(crate) struct PySample {
    #[pyo3(get)]
    topic: String,
    #[pyo3(get)]
    topic_id: u32,
    captures: Vec<(String, String)>,
    #[pyo3(get)]
    producer: u32,
    #[pyo3(get)]
    sequence: u64,
    /// Wall-clock nanoseconds since the Unix epoch when it was published.
    #[pyo3(get)]
    timestamp: u64,
    /// Worker groups: handed out before to a member that died before
    /// finishing it (at-least-once). Always False for a plain subscriber.
    #[pyo3(get)]
    redelivered: bool,
    data: Py<PyBytes>,
    /// A group member's sample: the member and the receipt of the event
    /// it holds for this sample.
    owner: Option<(Py<PySubscriber>, u64)>,
}

impl PySample {
    /// Finishes this sample's event if its member still holds it.
    /// `wait`: take the member's lock even if another thread holds it
    /// (releasing the GIL meanwhile); otherwise give up when it is busy
    /// (whoever holds it finishes held events before receiving).
    fn finish(&self, py: Python<'_>, wait: bool) {
        let Some((member, receipt)) = &self.owner else {
            return;
        };
        let member = member.get();
        let guard = match member.inner.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) if wait => Some(lock_detached(py, &member.inner)),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(mut g) = guard {
            if let Some(r) = g.as_mut() {
                if r.held.as_ref().is_some_and(|h| h.receipt == *receipt) {
                    r.finish();
                }
            }
        }
    }
}

impl Drop for PySample {
    fn drop(&mut self) {
        if self.owner.is_some() {
            // A sample garbage-collected while its event is held finishes
            // it (the core's rule: an event is finished when its sample is
            // dropped). Without waiting: a destructor must not block.
            Python::attach(|py| self.finish(py, false));
        }
    }
}

#[pymethods]
impl PySample {
    /// What the pattern's wildcards captured.
    #[getter]
    fn captures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.captures {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// A read-only memoryview of the payload.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("builtins")?
            .getattr("memoryview")?
            .call1((self.data.bind(py),))
    }

    /// Worker groups: finishes the event now (else the member's next
    /// receive, `close()`, or this sample being collected does). Nothing
    /// for a plain subscriber's sample, or one already finished.
    fn done(&self, py: Python<'_>) {
        self.finish(py, true);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The end of a `with` block finishes the event (as `done()`).
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> bool {
        self.finish(py, true);
        false
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.data.bind(py).clone()
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.data.bind(py).as_bytes().len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<Sample {} seq={} len={}{}>",
            self.topic,
            self.sequence,
            self.data.bind(py).as_bytes().len(),
            if self.redelivered { " redelivered" } else { "" }
        )
    }
}

struct Received {
    topic: String,
    topic_id: u32,
    captures: Vec<(String, String)>,
    producer: u32,
    sequence: u64,
    timestamp: u64,
    redelivered: bool,
    data: Vec<u8>,
}

fn received(s: &shm_bus_core::Sample<'_>) -> Received {
    Received {
        topic: s.topic().to_owned(),
        topic_id: s.topic_id().0,
        captures: s.captures(),
        producer: s.producer(),
        sequence: s.sequence(),
        timestamp: s.timestamp_ns(),
        redelivered: s.redelivered(),
        data: s.payload().to_vec(),
    }
}

/// Locks `m`, releasing the GIL while another thread holds it (that
/// thread may be waiting for the GIL itself).
fn lock_detached<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    match m.try_lock() {
        Ok(g) => g,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            crate::port::detach(py, || {
                SameThread(m.lock().unwrap_or_else(|e| e.into_inner()))
            })
            .0
        }
    }
}

impl PySubscriber {
    fn new(sub: Subscriber) -> PySubscriber {
        let group = sub.group().map(str::to_owned);
        let group_patterns = if group.is_some() {
            sub.patterns().iter().map(|t| t.to_string()).collect()
        } else {
            Vec::new()
        };
        PySubscriber {
            inner: Mutex::new(Some(Receiver::new(sub))),
            group,
            group_patterns,
        }
    }

    /// Runs `f` on the receiver (the GIL released while waiting for it).
    fn with<R>(&self, py: Python<'_>, f: impl FnOnce(&mut Receiver) -> R) -> PyResult<R> {
        let mut guard = lock_detached(py, &self.inner);
        match guard.as_mut() {
            Some(r) => Ok(f(r)),
            None => Err(PyRuntimeError::new_err("this subscriber was closed")),
        }
    }

    fn receive(
        slf: &Bound<'_, Self>,
        timeout: Option<f64>,
        block: bool,
    ) -> PyResult<Option<PySample>> {
        let py = slf.py();
        let this = slf.get();
        let mut guard = lock_detached(py, &this.inner);
        let Some(r) = guard.as_mut() else {
            return Err(PyRuntimeError::new_err("this subscriber was closed"));
        };
        // A member holds one event at a time: the previous one is
        // finished before the next is taken.
        r.finish();
        let group = this.group.as_deref();
        let hold = group.is_some();
        // Keeps the sample (a group member's event stays unfinished) or
        // drops it, and returns its copy.
        let keep = |r: &mut Receiver, s: Sample<'static>| -> (Received, u64) {
            let got = received(&s);
            if hold {
                r.receipts += 1;
                let receipt = r.receipts;
                r.held = Some(Held {
                    _sample: s,
                    receipt,
                });
                (got, receipt)
            } else {
                drop(s);
                (got, 0)
            }
        };
        // SAFETY: nothing borrows the subscriber (`finish` dropped the held
        // sample); the sample is dropped or kept in `held` by `keep`.
        let first = unsafe { r.sub_unbound() }.try_recv();
        let mut got = match first {
            Ok(s) => Some(keep(r, s)),
            Err(RecvError::Empty) => None,
            Err(e) => return Err(recv_error_in(e, group)),
        };
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        while got.is_none() && block {
            let slice = match deadline {
                None => SLICE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    left.min(SLICE)
                }
            };
            // SAFETY: as above: the last receive gave no sample.
            let sub = unsafe { r.sub_unbound() };
            let res = crate::port::detach(py, move || SameThread(sub.recv_timeout(slice))).0;
            got = match res {
                Ok(s) => Some(keep(r, s)),
                Err(RecvError::Timeout | RecvError::Empty) => None,
                Err(e) => return Err(recv_error_in(e, group)),
            };
            py.check_signals()?;
        }
        drop(guard);
        Ok(got.map(|(r, receipt)| PySample {
            topic: r.topic,
            topic_id: r.topic_id,
            captures: r.captures,
            producer: r.producer,
            sequence: r.sequence,
            timestamp: r.timestamp,
            redelivered: r.redelivered,
            data: PyBytes::new(py, &r.data).unbind(),
            owner: hold.then(|| (slf.clone().unbind(), receipt)),
        }))
    }
}

#[pymethods]
impl PySubscriber {
    /// Adds a pattern; returns whether it was new. (A group member's
    /// patterns are the group's: `BusError`.)
    fn subscribe(&self, py: Python<'_>, pattern: &str) -> PyResult<bool> {
        self.with(py, |r| r.sub().subscribe(pattern))?
            .map_err(bus_error)
    }

    /// Removes a pattern; returns whether it was there.
    fn unsubscribe(&self, py: Python<'_>, pattern: &str) -> PyResult<bool> {
        self.with(py, |r| r.sub().unsubscribe(pattern))?
            .map_err(bus_error)
    }

    /// The patterns, in subscription order (a group member's: the
    /// group's).
    #[getter]
    fn patterns(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        if self.group.is_some() {
            return Ok(self.group_patterns.clone());
        }
        self.with(py, |r| {
            r.sub().patterns().iter().map(|t| t.to_string()).collect()
        })
    }

    /// The worker group, for a member made by `Bus.group_member`; else
    /// None.
    #[getter]
    fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// The next sample, waiting as long as it takes (GIL released;
    /// Ctrl-C interrupts).
    fn recv(slf: &Bound<'_, Self>) -> PyResult<PySample> {
        Self::receive(slf, None, true)?.ok_or_else(|| Empty::new_err("no event available"))
    }

    /// The next sample, or `None` after `timeout` seconds.
    fn recv_timeout(slf: &Bound<'_, Self>, timeout: f64) -> PyResult<Option<PySample>> {
        Self::receive(slf, Some(timeout), true)
    }

    /// The next sample if one is ready, else `None`.
    fn try_recv(slf: &Bound<'_, Self>) -> PyResult<Option<PySample>> {
        Self::receive(slf, None, false)
    }

    /// Events received (for a group member: finished), and records
    /// missed through lag.
    #[getter]
    fn counters(&self, py: Python<'_>) -> PyResult<(u64, u64)> {
        self.with(py, |r| {
            let (received, lagged, _) = r.stats();
            (received, lagged)
        })
    }

    /// Worker groups: samples this member was handed that were
    /// redelivered (0 for a plain subscriber).
    #[getter]
    fn redelivered(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |r| r.stats().2)
    }

    /// Finishes the held event (a member's) and detaches: a member leaves
    /// its group (events it claimed and had not handed out go to another
    /// member). Further receives raise RuntimeError. Idempotent.
    fn close(&self, py: Python<'_>) {
        let receiver = lock_detached(py, &self.inner).take();
        drop(receiver);
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<PySample> {
        Self::recv(slf)
    }

    fn __repr__(&self) -> String {
        match &self.group {
            Some(g) => format!("<Subscriber group={g:?}>"),
            None => "<Subscriber>".to_owned(),
        }
    }
}
