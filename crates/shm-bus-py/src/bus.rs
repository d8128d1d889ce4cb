//! The low-level bus for Python: `Bus`, `Publisher`, `Subscriber`,
//! `Sample`, `Loan`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};
use shm_bus_core::{Bus, BusConfig, Policy, RecvError, Start, Subscriber};

use crate::codec::Encoded;
use crate::errors::{Empty, bus_error};
use crate::ffi::Exported;
use crate::port::{PubState, SLICE, lock_pub, put_bytes, recv_error, topic_text};

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

#[allow(clippy::too_many_arguments)]
fn full_config(
    ring_bytes: Option<u64>,
    max_producers: Option<u32>,
    max_subscribers: Option<u32>,
    max_topics: Option<u32>,
    policy: Option<&str>,
    history_bytes: Option<u64>,
) -> PyResult<BusConfig> {
    let mut c = config_from(ring_bytes, policy)?;
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
                        max_topics=None, policy=None, history_bytes=None))]
    fn create(
        name: &str,
        ring_bytes: Option<u64>,
        max_producers: Option<u32>,
        max_subscribers: Option<u32>,
        max_topics: Option<u32>,
        policy: Option<&str>,
        history_bytes: Option<u64>,
    ) -> PyResult<PyBus> {
        let c = full_config(
            ring_bytes,
            max_producers,
            max_subscribers,
            max_topics,
            policy,
            history_bytes,
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
                        max_topics=None, policy=None, history_bytes=None))]
    fn open_or_create(
        name: &str,
        ring_bytes: Option<u64>,
        max_producers: Option<u32>,
        max_subscribers: Option<u32>,
        max_topics: Option<u32>,
        policy: Option<&str>,
        history_bytes: Option<u64>,
    ) -> PyResult<PyBus> {
        let c = full_config(
            ring_bytes,
            max_producers,
            max_subscribers,
            max_topics,
            policy,
            history_bytes,
        )?;
        let nothing_asked = ring_bytes.is_none()
            && max_producers.is_none()
            && max_subscribers.is_none()
            && max_topics.is_none()
            && policy.is_none()
            && history_bytes.is_none();
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
        Ok(PySubscriber {
            sub: Mutex::new(sub),
        })
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

/// Receives the events matching its patterns.
#[pyclass(module = "shm_bus._native", name = "Subscriber", frozen)]
pub(crate) struct PySubscriber {
    sub: Mutex<Subscriber>,
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
    data: Py<PyBytes>,
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

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.data.bind(py).clone()
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.data.bind(py).as_bytes().len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<Sample {} seq={} len={}>",
            self.topic,
            self.sequence,
            self.data.bind(py).as_bytes().len()
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
        data: s.payload().to_vec(),
    }
}

impl PySubscriber {
    fn receive(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        block: bool,
    ) -> PyResult<Option<PySample>> {
        let mut guard = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        let sub: &mut Subscriber = &mut guard;
        let mut got = match sub.try_recv() {
            Ok(s) => Some(received(&s)),
            Err(RecvError::Empty) => None,
            Err(e) => return Err(recv_error(e)),
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
            let r = crate::port::detach(py, || match sub.recv_timeout(slice) {
                Ok(s) => Ok(Some(received(&s))),
                Err(RecvError::Timeout | RecvError::Empty) => Ok(None),
                Err(e) => Err(e),
            });
            got = r.map_err(recv_error)?;
            py.check_signals()?;
        }
        Ok(got.map(|r| PySample {
            topic: r.topic,
            topic_id: r.topic_id,
            captures: r.captures,
            producer: r.producer,
            sequence: r.sequence,
            timestamp: r.timestamp,
            data: PyBytes::new(py, &r.data).unbind(),
        }))
    }
}

#[pymethods]
impl PySubscriber {
    /// Adds a pattern; returns whether it was new.
    fn subscribe(&self, pattern: &str) -> PyResult<bool> {
        self.sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .subscribe(pattern)
            .map_err(bus_error)
    }

    /// Removes a pattern; returns whether it was there.
    fn unsubscribe(&self, pattern: &str) -> PyResult<bool> {
        self.sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .unsubscribe(pattern)
            .map_err(bus_error)
    }

    /// The patterns, in subscription order.
    #[getter]
    fn patterns(&self) -> Vec<String> {
        self.sub
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .patterns()
            .iter()
            .map(|t| t.to_string())
            .collect()
    }

    /// The next sample, waiting as long as it takes (GIL released;
    /// Ctrl-C interrupts).
    fn recv(&self, py: Python<'_>) -> PyResult<PySample> {
        self.receive(py, None, true)?
            .ok_or_else(|| Empty::new_err("no event available"))
    }

    /// The next sample, or `None` after `timeout` seconds.
    fn recv_timeout(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<PySample>> {
        self.receive(py, Some(timeout), true)
    }

    /// The next sample if one is ready, else `None`.
    fn try_recv(&self, py: Python<'_>) -> PyResult<Option<PySample>> {
        self.receive(py, None, false)
    }

    /// Events received, and records missed through lag.
    #[getter]
    fn counters(&self) -> (u64, u64) {
        let s = self.sub.lock().unwrap_or_else(|e| e.into_inner());
        (s.received(), s.lagged())
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<PySample> {
        self.recv(py)
    }
}
