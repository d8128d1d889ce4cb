//! Timers (PyEventEngine's `EventEngineEx.get_timer`): threads that put a
//! [`TimerTick`] on a timer topic while the engine is active.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use shm_bus_topic::Topic;

use crate::dispatch::lock;
use crate::engine::Inner;
use crate::error::EngineError;
use crate::wait::Wait;
use shm_bus_core::BusError;

/// The second timer's topic: a tick on every wall-clock second.
pub const SECOND_TIMER_TOPIC: &str = "EventEngine.Internal.Timer.Second";
/// The minute timer's topic: a tick on every wall-clock minute.
pub const MINUTE_TIMER_TOPIC: &str = "EventEngine.Internal.Timer.Minute";
/// Prefix of interval timers' topics: `EventEngine.Internal.Timer.<interval>`,
/// where `<interval>` is whole seconds as a plain number (`5`, as
/// PyEventEngine names an integer interval), else milliseconds (`250ms`),
/// microseconds (`1500us`) or nanoseconds (`333ns`), whichever is whole
/// (a topic part cannot hold PyEventEngine's `0.25`: `.` separates parts).
pub const TIMER_TOPIC_PREFIX: &str = "EventEngine.Internal.Timer.";

/// The payload of a timer's event; read it with
/// [`Message::as_pod`](super::Message::as_pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C)]
pub struct TimerTick {
    /// When the tick was due, ns since the Unix epoch (a wall-clock
    /// boundary for the second and minute timers).
    pub scheduled_ns: u64,
    /// When it was sent, ns since the Unix epoch.
    pub fired_ns: u64,
    /// The timer's interval in ns.
    pub interval_ns: u64,
    /// Ticks this timer has sent, this one included.
    pub count: u64,
}

/// The topic of the timer with `interval`.
pub(crate) fn timer_topic(interval: Duration) -> String {
    if interval == Duration::from_secs(1) {
        return SECOND_TIMER_TOPIC.into();
    }
    if interval == Duration::from_secs(60) {
        return MINUTE_TIMER_TOPIC.into();
    }
    let ns = interval.as_nanos();
    let part = if ns % 1_000_000_000 == 0 {
        format!("{}", ns / 1_000_000_000)
    } else if ns % 1_000_000 == 0 {
        format!("{}ms", ns / 1_000_000)
    } else if ns % 1_000 == 0 {
        format!("{}us", ns / 1_000)
    } else {
        format!("{ns}ns")
    };
    format!("{TIMER_TOPIC_PREFIX}{part}")
}

struct Running {
    interval: Duration,
    topic: Topic,
    handle: Option<JoinHandle<()>>,
}

/// An engine's timers.
#[derive(Default)]
pub(crate) struct Timers {
    /// Set (and notified) when the engine is dropped.
    stop: Arc<(Mutex<bool>, Condvar)>,
    running: Mutex<Vec<Running>>,
}

impl Timers {
    pub(crate) fn topics(&self) -> Vec<Topic> {
        lock(&self.running)
            .iter()
            .map(|r| r.topic.clone())
            .collect()
    }

    /// Stops every timer thread and waits for it.
    pub(crate) fn stop_all(&self) {
        *lock(&self.stop.0) = true;
        self.stop.1.notify_all();
        let handles: Vec<_> = lock(&self.running)
            .iter_mut()
            .filter_map(|r| r.handle.take())
            .collect();
        for h in handles {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// When a timer fires: on wall-clock multiples of the interval (second,
/// minute), or at `start + k × interval`.
#[derive(Clone, Copy)]
enum Schedule {
    Aligned { interval: u128 },
    From { start: u128, interval: u128 },
}

impl Schedule {
    /// The first firing time strictly after `now` (ns since the epoch).
    fn next_after(self, now: u128) -> u128 {
        match self {
            Schedule::Aligned { interval } => (now / interval + 1) * interval,
            Schedule::From { start, interval } => {
                if start > now {
                    start
                } else {
                    start + ((now - start) / interval + 1) * interval
                }
            }
        }
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub(crate) fn get_timer(
    inner: &Arc<Inner>,
    interval: Duration,
    activate_time: Option<SystemTime>,
) -> Result<Topic, EngineError> {
    if interval.is_zero() {
        return Err(EngineError::Bus(BusError::InvalidConfig(
            "a timer interval must be longer than zero".into(),
        )));
    }
    let mut running = lock(&inner.timers.running);
    if let Some(r) = running.iter().find(|r| r.interval == interval) {
        return Ok(r.topic.clone());
    }
    let topic = Topic::parse(&timer_topic(interval))?;
    let iv = interval.as_nanos();
    let schedule = if interval == Duration::from_secs(1) || interval == Duration::from_secs(60) {
        Schedule::Aligned { interval: iv }
    } else {
        let start = match activate_time {
            Some(t) => t
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            None => now_ns() + iv,
        };
        Schedule::From {
            start,
            interval: iv,
        }
    };
    let weak = Arc::downgrade(inner);
    let stop = inner.timers.stop.clone();
    let literal = topic.as_str().to_owned();
    let handle = std::thread::Builder::new()
        .name(format!(
            "shm-bus-timer-{}",
            timer_topic(interval).trim_start_matches(TIMER_TOPIC_PREFIX)
        ))
        .spawn(move || tick_loop(weak, stop, literal, schedule, interval))
        .map_err(EngineError::Spawn)?;
    running.push(Running {
        interval,
        topic: topic.clone(),
        handle: Some(handle),
    });
    Ok(topic)
}

fn tick_loop(
    engine: Weak<Inner>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    topic: String,
    schedule: Schedule,
    interval: Duration,
) {
    let mut next = schedule.next_after(now_ns());
    let mut count = 0u64;
    // A tick that finds no room within this is dropped (and logged): a
    // timer must not fall behind its own schedule.
    let wait = Wait::timeout(interval.min(Duration::from_millis(100))).with_max_spin(0);
    loop {
        {
            let (flag, cv) = &*stop;
            let mut stopped = lock(flag);
            loop {
                if *stopped {
                    return;
                }
                let now = now_ns();
                if now >= next {
                    break;
                }
                let left = Duration::from_nanos((next - now).min(u64::MAX as u128) as u64);
                stopped = cv
                    .wait_timeout(stopped, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        let fired = now_ns();
        let Some(inner) = engine.upgrade() else {
            return;
        };
        if inner.active.load(std::sync::atomic::Ordering::SeqCst) {
            count += 1;
            let tick = TimerTick {
                scheduled_ns: next as u64,
                fired_ns: fired as u64,
                interval_ns: interval.as_nanos() as u64,
                count,
            };
            inner.put_tick(&topic, &tick, wait);
        }
        drop(inner);
        // Ticks missed while suspended are skipped, not sent in a burst.
        next = schedule.next_after(fired.max(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_topics_follow_pyeventengine_names() {
        assert_eq!(timer_topic(Duration::from_secs(1)), SECOND_TIMER_TOPIC);
        assert_eq!(timer_topic(Duration::from_secs(60)), MINUTE_TIMER_TOPIC);
        assert_eq!(
            timer_topic(Duration::from_secs(5)),
            "EventEngine.Internal.Timer.5"
        );
        assert_eq!(
            timer_topic(Duration::from_millis(250)),
            "EventEngine.Internal.Timer.250ms"
        );
        assert_eq!(
            timer_topic(Duration::from_micros(1500)),
            "EventEngine.Internal.Timer.1500us"
        );
        assert_eq!(
            timer_topic(Duration::from_nanos(333)),
            "EventEngine.Internal.Timer.333ns"
        );
        for d in [1, 59, 61, 3600] {
            assert!(
                Topic::parse(&timer_topic(Duration::from_secs(d)))
                    .unwrap()
                    .is_exact()
            );
        }
    }

    #[test]
    fn schedules_align_and_skip() {
        let s = Schedule::Aligned { interval: 1_000 };
        assert_eq!(s.next_after(0), 1_000);
        assert_eq!(s.next_after(999), 1_000);
        assert_eq!(s.next_after(1_000), 2_000);
        let f = Schedule::From {
            start: 5_000,
            interval: 300,
        };
        assert_eq!(f.next_after(10), 5_000);
        assert_eq!(f.next_after(5_000), 5_300);
        assert_eq!(f.next_after(5_301), 5_600);
    }
}
