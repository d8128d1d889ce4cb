//! [`EventBridge`]: carries a [`Listeners`] registry's events over a bus,
//! and turns the bus's membership changes into events.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shm_bus_alloc::ProcessId;

use super::{
    Event, EventError, EventStatus, Forward, LAG_KIND, Lifecycle, Listeners, PRODUCER_KIND, Role,
    SUBSCRIBER_KIND,
};
use shm_bus_core::{Bus, Member, PublishError, Publisher, RecvError, SlotState, Subscriber};

use crate::lock;

/// Events travel on `EventEngine.Internal.Event.<kind>`.
pub const EVENT_TOPIC_PREFIX: &str = "EventEngine.Internal.Event.";

/// How long the bridge thread waits for an event before looking at the
/// bus's membership again.
const POLL: Duration = Duration::from_millis(20);
/// How often membership (and liveness) is checked.
const SCAN_EVERY: Duration = Duration::from_millis(50);
/// How long forwarding an event may wait for ring space before the event
/// is dropped (and counted): `broadcast` must not stall its caller.
const FORWARD_WAIT: Duration = Duration::from_millis(100);

/// An event as it travels (postcard); the kind is the topic's suffix.
#[derive(Serialize, Deserialize)]
struct Wire<'a> {
    status: EventStatus,
    #[serde(borrow)]
    data: &'a [u8],
    failure: Option<&'a str>,
    pid: u32,
    wall_ns: u64,
    monotonic_ns: u64,
}

/// What a bridge has done ([`EventBridge::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Local events published on the bus.
    pub forwarded: u64,
    /// Local events dropped: no ring space within 100 ms, or too large.
    pub dropped: u64,
    /// Events from other processes delivered here.
    pub received: u64,
    /// Lifecycle events emitted here.
    pub lifecycle: u64,
}

struct BridgeState {
    bus: Bus,
    listeners: Listeners,
    publisher: Mutex<Publisher>,
    producer_id: u32,
    stop: AtomicBool,
    forwarded: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    lifecycle: AtomicU64,
}

impl Forward for BridgeState {
    fn forward(&self, event: &Event) {
        let wire = Wire {
            status: event.status,
            data: &event.data,
            failure: event.failure.as_deref(),
            pid: event.pid,
            wall_ns: event.wall_ns,
            monotonic_ns: event.monotonic_ns,
        };
        let topic = format!("{EVENT_TOPIC_PREFIX}{}", event.kind());
        let result = postcard::to_stdvec(&wire)
            .map_err(PublishError::from)
            .and_then(|bytes| lock(&self.publisher).publish_timeout(&topic, &bytes, FORWARD_WAIT));
        // Relaxed: statistics only.
        match result {
            Ok(_) => self.forwarded.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                tracing::warn!(kind = event.kind(), error = %e, "event not forwarded to the bus");
                self.dropped.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Connects a [`Listeners`] registry to a bus (see the
/// [module docs](super)): local events go out, other processes' events
/// come in, and the bus's membership changes become
/// [`SUBSCRIBER_KIND`] / [`PRODUCER_KIND`] / [`LAG_KIND`] events.
///
/// It attaches one publisher and one subscriber (named `events`) and runs
/// one thread; dropping it stops the thread and detaches.
pub struct EventBridge {
    shared: Arc<BridgeState>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EventBridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBridge")
            .field("bus", &self.shared.bus.name())
            .field("stats", &self.stats())
            .finish()
    }
}

impl EventBridge {
    /// Bridges the process-wide registry ([`Listeners::global`]) to `bus`.
    ///
    /// # Errors
    /// [`EventError::Bus`] (no free producer or subscriber slot),
    /// [`EventError::Spawn`].
    pub fn connect(bus: &Bus) -> Result<EventBridge, EventError> {
        EventBridge::connect_with(bus, Listeners::global())
    }

    /// Bridges `listeners` to `bus`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(bus: &Bus, listeners: &Listeners) -> Result<EventBridge, EventError> {
        let publisher = bus.publisher("events")?;
        let mut subscriber = bus.subscriber("events")?;
        subscriber.subscribe(&format!("{EVENT_TOPIC_PREFIX}**"))?;
        let shared = Arc::new(BridgeState {
            bus: bus.clone(),
            listeners: listeners.clone(),
            producer_id: publisher.id(),
            publisher: Mutex::new(publisher),
            stop: AtomicBool::new(false),
            forwarded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lifecycle: AtomicU64::new(0),
        });
        // The membership as it is now is the baseline: only changes from
        // here on are events.
        let monitor = Monitor::baseline(bus);
        let forward: Arc<dyn Forward> = shared.clone();
        listeners.add_forward(Arc::downgrade(&forward));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("shm-bus-events".into())
            .spawn(move || bridge_loop(&thread_shared, subscriber, monitor))
            .map_err(EventError::Spawn)?;
        Ok(EventBridge {
            shared,
            thread: Some(thread),
        })
    }

    /// What the bridge has done so far.
    pub fn stats(&self) -> BridgeStats {
        let s = &self.shared;
        // Relaxed: statistics only.
        BridgeStats {
            forwarded: s.forwarded.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            lifecycle: s.lifecycle.load(Ordering::Relaxed),
        }
    }
}

impl Drop for EventBridge {
    fn drop(&mut self) {
        // Relaxed: the join below synchronises; the thread polls the flag
        // at least every `POLL`.
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bridge_loop(shared: &BridgeState, mut subscriber: Subscriber, mut monitor: Monitor) {
    let mut last_scan = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        match subscriber.recv_timeout(POLL) {
            Ok(sample) => {
                if sample.producer() != shared.producer_id {
                    if let Some(event) = decode(sample.topic(), sample.payload()) {
                        // Relaxed: statistics only.
                        shared.received.fetch_add(1, Ordering::Relaxed);
                        shared.listeners.deliver(&event);
                    } else {
                        tracing::warn!(
                            topic = sample.topic(),
                            "undecodable event on the bus skipped"
                        );
                    }
                }
            }
            Err(RecvError::Timeout | RecvError::Empty) => {}
            Err(e) => tracing::warn!(error = %e, "event bridge receive"),
        }
        if last_scan.elapsed() >= SCAN_EVERY {
            last_scan = Instant::now();
            for event in monitor.scan(&shared.bus) {
                // Relaxed: statistics only.
                shared.lifecycle.fetch_add(1, Ordering::Relaxed);
                shared.listeners.deliver(&event);
            }
        }
    }
}

fn decode(topic: &str, payload: &[u8]) -> Option<Event> {
    let kind = topic.strip_prefix(EVENT_TOPIC_PREFIX)?;
    let wire: Wire<'_> = postcard::from_bytes(payload).ok()?;
    Some(Event {
        kind: kind.into(),
        status: wire.status,
        data: wire.data.to_vec(),
        failure: wire.failure.map(str::to_owned),
        pid: wire.pid,
        wall_ns: wire.wall_ns,
        monotonic_ns: wire.monotonic_ns,
    })
}

// ----------------------------------------------------------- membership

/// One occupied slot as last seen.
#[derive(Clone)]
struct Seen {
    token: u64,
    generation: u64,
    pid: u32,
    name: String,
    lagged: u64,
    /// Its death was already announced.
    lost: bool,
}

/// A slot as seen in a members snapshot: `None` unless ACTIVE with its
/// owner's fields written.
fn seen(member: Member) -> Option<Seen> {
    if member.state != SlotState::Active || !member.complete {
        return None;
    }
    Some(Seen {
        token: member.token,
        generation: member.generation,
        pid: member.pid,
        name: member.name,
        lagged: member.lagged,
        lost: false,
    })
}

struct Monitor {
    subscribers: Vec<Option<Seen>>,
    producers: Vec<Option<Seen>>,
}

impl Monitor {
    fn read(bus: &Bus) -> (Vec<Option<Seen>>, Vec<Option<Seen>>) {
        let members = bus.members();
        let subscribers = members.subscribers.into_iter().map(seen).collect();
        let producers = members
            .producers
            .into_iter()
            .map(|m| {
                // A producer's generation is written after its claim; it is
                // identified by its token alone.
                seen(m).map(|seen| Seen {
                    generation: 0,
                    ..seen
                })
            })
            .collect();
        (subscribers, producers)
    }

    fn baseline(bus: &Bus) -> Monitor {
        let (subscribers, producers) = Monitor::read(bus);
        Monitor {
            subscribers,
            producers,
        }
    }

    /// Compares the slots with what was seen last time; returns the events.
    fn scan(&mut self, bus: &Bus) -> Vec<Event> {
        let (subscribers, producers) = Monitor::read(bus);
        let mut events = Vec::new();
        let mut reap = false;
        for (role, kind, was, now) in [
            (
                Role::Subscriber,
                SUBSCRIBER_KIND,
                &mut self.subscribers,
                subscribers,
            ),
            (
                Role::Producer,
                PRODUCER_KIND,
                &mut self.producers,
                producers,
            ),
        ] {
            for (slot, (was, now)) in was.iter_mut().zip(now).enumerate() {
                let event = |kind: &str, status, seen: &Seen, count| {
                    let data = Lifecycle {
                        bus: bus.name().to_owned(),
                        role,
                        slot: slot as u32,
                        pid: seen.pid,
                        name: seen.name.clone(),
                        count,
                    };
                    Event::unchecked(kind, status, postcard::to_stdvec(&data).unwrap_or_default())
                };
                let same = matches!((&*was, &now), (Some(a), Some(b)) if a.token == b.token && a.generation == b.generation);
                if !same {
                    if let Some(old) = was.take() {
                        if !old.lost {
                            let mut end = event(kind, EventStatus::End, &old, 0);
                            if ProcessId::token_is_dead(old.token) {
                                end = end.with_failure(format!("process {} died", old.pid));
                            }
                            events.push(end);
                        }
                    }
                    if let Some(new) = now {
                        events.push(event(kind, EventStatus::Start, &new, 0));
                        // It may have lagged already before this scan.
                        if new.lagged > 0 {
                            events.push(event(LAG_KIND, EventStatus::End, &new, new.lagged));
                        }
                        *was = Some(new);
                    }
                    continue;
                }
                let (Some(seen), Some(now)) = (was.as_mut(), now) else {
                    continue;
                };
                if now.lagged > seen.lagged {
                    events.push(event(
                        LAG_KIND,
                        EventStatus::End,
                        &now,
                        now.lagged - seen.lagged,
                    ));
                    seen.lagged = now.lagged;
                }
                if !seen.lost && ProcessId::token_is_dead(seen.token) {
                    seen.lost = true;
                    reap = true;
                    let end = event(kind, EventStatus::End, seen, 0)
                        .with_failure(format!("process {} died", seen.pid));
                    events.push(end);
                }
            }
        }
        if reap {
            // Whoever notices a dead peer frees its slot.
            bus.reap();
        }
        events
    }
}
