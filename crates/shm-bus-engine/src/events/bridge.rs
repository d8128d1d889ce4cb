//! [`EventBridge`]: carries a [`Listeners`] registry's events over a bus,
//! and turns the bus's membership changes into events.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shm_bus_alloc::ProcessId;

use super::{
    Event, EventError, EventStatus, Forward, GROUP_MEMBER_KIND, LAG_KIND, LOSS_KIND, Lifecycle,
    Listeners, PRODUCER_KIND, REDELIVERY_KIND, Role, SUBSCRIBER_KIND,
};
use shm_bus_core::{
    Bus, GroupInfo, GroupMemberInfo, Member, PublishError, Publisher, RecvError, SlotState,
    Subscriber,
};

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
/// [`SUBSCRIBER_KIND`] / [`PRODUCER_KIND`] / [`LAG_KIND`] events, its
/// worker groups' changes [`GROUP_MEMBER_KIND`] / [`REDELIVERY_KIND`] /
/// [`LOSS_KIND`] events.
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
    /// Worker groups by group slot.
    groups: BTreeMap<u32, SeenGroup>,
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
        let groups = bus
            .groups()
            .iter()
            .map(|g| (g.slot, SeenGroup::baseline(g)))
            .collect();
        Monitor {
            subscribers,
            producers,
            groups,
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
                        group: None,
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
        reap |= self.scan_groups(bus, &mut events);
        if reap {
            // Whoever notices a dead peer frees its slot.
            bus.reap();
        }
        events
    }

    /// Compares the worker groups with what was seen last time, adding the
    /// events to `events`; returns whether a member was found dead.
    fn scan_groups(&mut self, bus: &Bus, events: &mut Vec<Event>) -> bool {
        let mut dead = false;
        let mut was = std::mem::take(&mut self.groups);
        for info in bus.groups() {
            let mut seen = match was.remove(&info.slot) {
                Some(g) if g.is(&info) => g,
                other => {
                    // A group in a slot that was free, or that another
                    // group held (removed, then this one created).
                    if let Some(old) = other {
                        old.gone(bus, events);
                    }
                    SeenGroup::fresh(&info)
                }
            };
            dead |= seen.scan(bus, &info, events);
            self.groups.insert(info.slot, seen);
        }
        // Groups removed since: their members' ENDs, if not told yet.
        for old in was.into_values() {
            old.gone(bus, events);
        }
        dead
    }
}

// -------------------------------------------------------- worker groups

/// A group member slot as last seen.
struct SeenMember {
    pid: u32,
    name: String,
    /// Its END was emitted: it left, or died (its slot may stay in use
    /// until another member adopts the work it left).
    gone: bool,
}

impl SeenMember {
    fn of(m: &GroupMemberInfo) -> SeenMember {
        SeenMember {
            pid: m.pid,
            name: m.name.clone(),
            gone: false,
        }
    }

    /// Whether the slot is not held by its own live process any more: it
    /// died or left with work unfinished (`!alive`), or another member
    /// took its work over (`adopted`).
    fn has_gone(m: &GroupMemberInfo) -> bool {
        !m.alive || m.adopted
    }
}

/// A worker group as last seen.
struct SeenGroup {
    slot: u32,
    name: String,
    created_ns: u64,
    redelivered: u64,
    lost: u64,
    /// By member slot.
    members: BTreeMap<u32, SeenMember>,
}

impl SeenGroup {
    /// The group as it is now, without events: the bridge's baseline.
    fn baseline(info: &GroupInfo) -> SeenGroup {
        SeenGroup {
            members: info
                .members
                .iter()
                .map(|m| {
                    let mut seen = SeenMember::of(m);
                    seen.gone = SeenMember::has_gone(m);
                    (m.slot, seen)
                })
                .collect(),
            ..SeenGroup::fresh(info)
        }
    }

    /// A group seen for the first time after the baseline: everything in
    /// it is news (members, redeliveries already counted).
    fn fresh(info: &GroupInfo) -> SeenGroup {
        SeenGroup {
            slot: info.slot,
            name: info.name.clone(),
            created_ns: info.created_ns,
            redelivered: 0,
            lost: 0,
            members: BTreeMap::new(),
        }
    }

    /// Whether `info` is this group (not another one created in its slot).
    fn is(&self, info: &GroupInfo) -> bool {
        self.created_ns == info.created_ns && self.name == info.name
    }

    fn member_event(&self, bus: &Bus, status: EventStatus, slot: u32, m: &SeenMember) -> Event {
        let data = Lifecycle {
            bus: bus.name().to_owned(),
            role: Role::GroupMember,
            slot,
            pid: m.pid,
            name: m.name.clone(),
            count: 0,
            group: Some(self.name.clone()),
        };
        let event = Event::unchecked(
            GROUP_MEMBER_KIND,
            status,
            postcard::to_stdvec(&data).unwrap_or_default(),
        );
        if status == EventStatus::End && !process_running(m.pid) {
            event.with_failure(format!("process {} died", m.pid))
        } else {
            event
        }
    }

    fn count_event(&self, bus: &Bus, kind: &str, count: u64) -> Event {
        let data = Lifecycle {
            bus: bus.name().to_owned(),
            role: Role::Group,
            slot: self.slot,
            pid: 0,
            name: self.name.clone(),
            count,
            group: Some(self.name.clone()),
        };
        Event::unchecked(
            kind,
            EventStatus::End,
            postcard::to_stdvec(&data).unwrap_or_default(),
        )
    }

    /// The group is gone: the END of every member not told yet.
    fn gone(self, bus: &Bus, events: &mut Vec<Event>) {
        for (slot, m) in &self.members {
            if !m.gone {
                events.push(self.member_event(bus, EventStatus::End, *slot, m));
            }
        }
    }

    /// Compares the group with `info`, adding the events; returns whether
    /// a member was found dead.
    fn scan(&mut self, bus: &Bus, info: &GroupInfo, events: &mut Vec<Event>) -> bool {
        let mut dead = false;
        let mut was = std::mem::take(&mut self.members);
        for m in &info.members {
            let mut seen = match was.remove(&m.slot) {
                Some(s) if s.pid == m.pid && s.name == m.name => s,
                other => {
                    // A free slot taken, or a slot another member held
                    // (it left or was reaped, and this one joined).
                    if let Some(old) = other.filter(|o| !o.gone) {
                        events.push(self.member_event(bus, EventStatus::End, m.slot, &old));
                    }
                    let new = SeenMember::of(m);
                    events.push(self.member_event(bus, EventStatus::Start, m.slot, &new));
                    new
                }
            };
            if !seen.gone && SeenMember::has_gone(m) {
                seen.gone = true;
                let end = self.member_event(bus, EventStatus::End, m.slot, &seen);
                dead |= end.is_failed();
                events.push(end);
            }
            self.members.insert(m.slot, seen);
        }
        // Slots freed since: their members left (or died with nothing
        // unfinished and were reaped).
        for (slot, old) in was {
            if !old.gone {
                events.push(self.member_event(bus, EventStatus::End, slot, &old));
            }
        }
        // After the members: a death comes before the redelivery it causes.
        if info.redelivered > self.redelivered {
            let n = info.redelivered - self.redelivered;
            events.push(self.count_event(bus, REDELIVERY_KIND, n));
            self.redelivered = info.redelivered;
        }
        if info.lost > self.lost {
            events.push(self.count_event(bus, LOSS_KIND, info.lost - self.lost));
            self.lost = info.lost;
        }
        dead
    }
}

/// Whether process `pid` runs (not gone, not a zombie): tells a member
/// that died from one that left with work unfinished, which a groups
/// snapshot does not (both are "not alive"). By pid alone: reuse of the
/// pid within one scan interval would be taken for the member.
fn process_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)` (comm may hold
    // any byte, parentheses included).
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X' | 'x'))
}
