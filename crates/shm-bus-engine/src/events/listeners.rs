//! The two listeners numba ships: [`RecordingListener`] and
//! [`TimingListener`].

use std::sync::Mutex;
use std::time::Duration;

use super::{Event, Listener};
use crate::lock;

/// Keeps every event it is told of, with the time it was told (ns since
/// the Unix epoch), in order (numba's `RecordingListener`).
#[derive(Debug, Default)]
pub struct RecordingListener {
    buffer: Mutex<Vec<(u64, Event)>>,
}

impl RecordingListener {
    /// An empty recorder.
    pub fn new() -> RecordingListener {
        RecordingListener::default()
    }

    /// The events so far, with when each was received.
    pub fn buffer(&self) -> Vec<(u64, Event)> {
        lock(&self.buffer).clone()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.buffer).iter().map(|(_, e)| e.clone()).collect()
    }

    /// How many events were recorded.
    pub fn len(&self) -> usize {
        lock(&self.buffer).len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        lock(&self.buffer).is_empty()
    }

    /// Forgets the events recorded so far.
    pub fn clear(&self) {
        lock(&self.buffer).clear();
    }

    fn record(&self, event: &Event) {
        lock(&self.buffer).push((shm_bus_core::clock::wall_ns(), event.clone()));
    }
}

impl Listener for RecordingListener {
    fn on_start(&self, event: &Event) {
        self.record(event);
    }
    fn on_end(&self, event: &Event) {
        self.record(event);
    }
}

#[derive(Debug, Default)]
struct Timing {
    depth: u32,
    started_ns: u64,
    total: Option<Duration>,
}

/// Measures the time between a START and its END, by the events' own
/// monotonic timestamps (so a span emitted in another process is timed by
/// its emitter's clock, not by delivery delays). Nested spans of the same
/// kind count once (the outermost); several spans add up (numba's
/// `TimingListener`). An END with no START is ignored.
#[derive(Debug, Default)]
pub struct TimingListener {
    state: Mutex<Timing>,
}

impl TimingListener {
    /// A listener that has timed nothing yet.
    pub fn new() -> TimingListener {
        TimingListener::default()
    }

    /// Whether at least one span has ended.
    pub fn done(&self) -> bool {
        lock(&self.state).total.is_some()
    }

    /// The total time of the spans that ended; `None` until one has.
    pub fn duration(&self) -> Option<Duration> {
        lock(&self.state).total
    }
}

impl Listener for TimingListener {
    fn on_start(&self, event: &Event) {
        let mut s = lock(&self.state);
        if s.depth == 0 {
            s.started_ns = event.monotonic_ns();
        }
        s.depth += 1;
    }

    fn on_end(&self, event: &Event) {
        let mut s = lock(&self.state);
        if s.depth == 0 {
            return;
        }
        s.depth -= 1;
        if s.depth == 0 {
            let span = Duration::from_nanos(event.monotonic_ns().saturating_sub(s.started_ns));
            s.total = Some(s.total.unwrap_or_default() + span);
        }
    }
}
