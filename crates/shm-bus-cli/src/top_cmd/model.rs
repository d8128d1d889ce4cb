//! What `top` shows, computed from two readings of the bus's counters
//! ([`Probe`]s) some time apart: a [`Snapshot`] with rates. Plain data,
//! so the view can be tested on a known state.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Value, json};
use shm_bus_core::{Bus, BusInfo, GroupInfo, Policy, RingTopics, TopicId};

use crate::bus_cmd::holding_back;
use crate::time::{now_ns, ns_since_epoch};

/// One reading of a bus: its `info()`, its worker groups and, per producer
/// slot, a walk of the records its ring gained since the previous reading.
pub(crate) struct Probe {
    pub at: Instant,
    pub info: BusInfo,
    pub groups: Vec<GroupInfo>,
    /// Walk per producer id (index = id).
    pub walks: Vec<Option<RingTopics>>,
}

impl Probe {
    /// Reads `bus`; ring walks start where `prev`'s ended (for slots still
    /// held by the same process generation).
    pub(crate) fn take(bus: &Bus, prev: Option<&Probe>) -> Probe {
        let info = bus.info();
        let groups = bus.groups();
        let at = Instant::now();
        let mut walks = vec![None; bus.config().max_producers as usize];
        for p in &info.producers {
            let since = prev.and_then(|prev| {
                let same = prev
                    .info
                    .producers
                    .iter()
                    .any(|q| q.id == p.id && q.generation == p.generation);
                same.then(|| prev.walks.get(p.id as usize)?.as_ref().map(|w| w.to))
                    .flatten()
            });
            if let Some(slot) = walks.get_mut(p.id as usize) {
                *slot = bus.ring_topics(p.id, since);
            }
        }
        Probe {
            at,
            info,
            groups,
            walks,
        }
    }
}

/// A producer row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ProducerRow {
    pub id: u32,
    pub pid: u32,
    pub name: String,
    pub alive: bool,
    pub attached: bool,
    /// Records per second since the previous reading (`None` on the first).
    pub msgs_per_sec: Option<f64>,
    /// Ring bytes per second (headers, payloads and padding).
    pub bytes_per_sec: Option<f64>,
    pub published: u64,
    /// The sequence number of the next record.
    pub sequence: u64,
    /// Unread bytes of the slowest subscriber over the ring size, 0..=1.
    pub ring_fill: f64,
    pub unread_bytes: u64,
    pub full_waits: u64,
    pub full_waits_per_sec: Option<f64>,
}

/// A subscriber row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SubscriberRow {
    pub id: u32,
    pub pid: u32,
    pub name: String,
    pub alive: bool,
    pub msgs_per_sec: Option<f64>,
    pub received: u64,
    pub lag_bytes: u64,
    pub lag_messages: Option<u64>,
    pub lagged: u64,
    pub sleeping: bool,
    pub holding_back: bool,
}

/// A worker group row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GroupRow {
    pub slot: u32,
    pub name: String,
    pub mode: String,
    pub patterns: Vec<String>,
    /// Member slots held by a live process of their own.
    pub live_members: usize,
    pub members: Vec<MemberRow>,
    pub claimed: u64,
    pub done: u64,
    /// Events claimed / finished per second, by all members.
    pub claimed_per_sec: Option<f64>,
    pub done_per_sec: Option<f64>,
    /// Records not yet finished by the group.
    pub backlog: u64,
    pub redelivered: u64,
    pub lost: u64,
    pub lagged: u64,
    pub claims: u64,
    /// No live member, unfinished records, block policy: it holds the
    /// producers back with nobody to move it.
    pub stalled: bool,
    pub removing: bool,
}

/// A member row of a group.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct MemberRow {
    pub slot: u32,
    pub pid: u32,
    pub name: String,
    pub alive: bool,
    pub adopted: bool,
    /// Its member left alive with unfinished events (waiting for adoption).
    pub departed: bool,
    pub busy: bool,
    pub claimed: u64,
    pub done: u64,
    pub done_per_sec: Option<f64>,
}

/// A topic row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TopicRow {
    pub topic: String,
    /// Records per second over all producers.
    pub rate: f64,
    /// Whether the rate is scaled from part of the records (a producer
    /// wrote more than half a ring between readings).
    pub estimated: bool,
}

/// Everything one frame shows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Snapshot {
    pub bus: String,
    pub layout_version: u32,
    pub policy: String,
    pub segment_bytes: u64,
    pub ring_bytes: u64,
    pub uptime_secs: u64,
    pub arena_used: Option<u64>,
    pub arena_capacity: Option<u64>,
    /// Seconds between the two readings (`None`: one reading, no rates).
    pub interval_secs: Option<f64>,
    pub removed: bool,
    pub producers: Vec<ProducerRow>,
    pub subscribers: Vec<SubscriberRow>,
    pub groups: Vec<GroupRow>,
    pub topics: Vec<TopicRow>,
}

impl Snapshot {
    /// The frame of `cur`, with rates against `prev` if given.
    pub(crate) fn new(prev: Option<&Probe>, cur: &Probe, removed: bool) -> Snapshot {
        let info = &cur.info;
        let dt = prev.map(|p| {
            cur.at
                .saturating_duration_since(p.at)
                .as_secs_f64()
                .max(1e-6)
        });
        let holding = holding_back(info);
        let ring = info.config.ring_bytes;
        let producers = info
            .producers
            .iter()
            .map(|p| {
                let before = prev.and_then(|prev| {
                    prev.info
                        .producers
                        .iter()
                        .find(|q| q.id == p.id && q.generation == p.generation)
                });
                let rate = |f: &dyn Fn(&shm_bus_core::ProducerInfo) -> u64| {
                    Some(f(p).saturating_sub(f(before?)) as f64 / dt?)
                };
                ProducerRow {
                    id: p.id,
                    pid: p.pid,
                    name: p.name.clone(),
                    alive: p.alive,
                    attached: p.attached,
                    msgs_per_sec: rate(&|x| x.published),
                    bytes_per_sec: rate(&|x| x.tail),
                    published: p.published,
                    sequence: p.next_seq,
                    ring_fill: (p.unread_bytes as f64 / ring as f64).min(1.0),
                    unread_bytes: p.unread_bytes,
                    full_waits: p.full_waits,
                    full_waits_per_sec: rate(&|x| x.full_waits),
                }
            })
            .collect();
        let subscribers = info
            .subscribers
            .iter()
            .map(|s| {
                let before = prev.and_then(|prev| {
                    prev.info
                        .subscribers
                        .iter()
                        .find(|q| q.id == s.id && q.pid == s.pid && q.name == s.name)
                });
                SubscriberRow {
                    id: s.id,
                    pid: s.pid,
                    name: s.name.clone(),
                    alive: s.alive,
                    msgs_per_sec: before
                        .and_then(|b| Some(s.received.saturating_sub(b.received) as f64 / dt?)),
                    received: s.received,
                    lag_bytes: s.lag_bytes,
                    lag_messages: s.lag_messages,
                    lagged: s.lagged,
                    sleeping: s.sleeping,
                    holding_back: holding.contains(&s.id),
                }
            })
            .collect();
        let groups = cur
            .groups
            .iter()
            .map(|g| group_row(g, prev, dt, info.config.policy))
            .collect();
        let topics = match (prev, dt) {
            (Some(prev), Some(dt)) => topic_rates(prev, cur, dt),
            _ => Vec::new(),
        };
        Snapshot {
            bus: info.name.clone(),
            layout_version: info.layout_version,
            policy: info.config.policy.as_str().to_owned(),
            segment_bytes: info.segment_bytes,
            ring_bytes: ring,
            uptime_secs: now_ns().saturating_sub(ns_since_epoch(info.created_at)) / 1_000_000_000,
            arena_used: info.arena.as_ref().map(|a| a.used),
            arena_capacity: info.arena.as_ref().map(|a| a.capacity),
            interval_secs: dt,
            removed,
            producers,
            subscribers,
            groups,
            topics,
        }
    }

    /// The `--json` form.
    pub(crate) fn to_json(&self) -> Value {
        let r = |x: Option<f64>| x.map(|v| (v * 10.0).round() / 10.0);
        json!({
            "bus": self.bus,
            "layout_version": self.layout_version,
            "policy": self.policy,
            "segment_bytes": self.segment_bytes,
            "ring_bytes": self.ring_bytes,
            "uptime_secs": self.uptime_secs,
            "arena": {"used": self.arena_used, "capacity": self.arena_capacity},
            "interval_secs": self.interval_secs.map(|s| (s * 1e6).round() / 1e6),
            "removed": self.removed,
            "producers": self.producers.iter().map(|p| json!({
                "id": p.id,
                "pid": p.pid,
                "name": p.name,
                "alive": p.alive,
                "attached": p.attached,
                "msgs_per_sec": r(p.msgs_per_sec),
                "bytes_per_sec": r(p.bytes_per_sec),
                "published": p.published,
                "sequence": p.sequence,
                "ring_fill": (p.ring_fill * 1e4).round() / 1e4,
                "unread_bytes": p.unread_bytes,
                "full_waits": p.full_waits,
                "full_waits_per_sec": r(p.full_waits_per_sec),
            })).collect::<Vec<_>>(),
            "subscribers": self.subscribers.iter().map(|s| json!({
                "id": s.id,
                "pid": s.pid,
                "name": s.name,
                "alive": s.alive,
                "msgs_per_sec": r(s.msgs_per_sec),
                "received": s.received,
                "lag_bytes": s.lag_bytes,
                "lag_messages": s.lag_messages,
                "lagged": s.lagged,
                "sleeping": s.sleeping,
                "holding_back": s.holding_back,
            })).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(|g| json!({
                "slot": g.slot,
                "name": g.name,
                "mode": g.mode,
                "patterns": g.patterns,
                "live_members": g.live_members,
                "members": g.members.iter().map(|m| json!({
                    "slot": m.slot,
                    "pid": m.pid,
                    "name": m.name,
                    "alive": m.alive,
                    "adopted": m.adopted,
                    "departed": m.departed,
                    "busy": m.busy,
                    "claimed": m.claimed,
                    "done": m.done,
                    "done_per_sec": r(m.done_per_sec),
                })).collect::<Vec<_>>(),
                "claimed": g.claimed,
                "done": g.done,
                "claimed_per_sec": r(g.claimed_per_sec),
                "done_per_sec": r(g.done_per_sec),
                "backlog": g.backlog,
                "redelivered": g.redelivered,
                "lost": g.lost,
                "lagged": g.lagged,
                "claims": g.claims,
                "stalled": g.stalled,
                "removing": g.removing,
            })).collect::<Vec<_>>(),
            "topics": self.topics.iter().map(|t| json!({
                "topic": t.topic,
                "rate": (t.rate * 10.0).round() / 10.0,
                "estimated": t.estimated,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A group's row, with rates against the same group (same slot, same
/// creation) in `prev`.
fn group_row(g: &GroupInfo, prev: Option<&Probe>, dt: Option<f64>, policy: Policy) -> GroupRow {
    let before = prev.and_then(|p| {
        p.groups
            .iter()
            .find(|q| q.slot == g.slot && q.created_ns == g.created_ns)
    });
    let per_sec = |now: u64, then: Option<u64>| Some(now.saturating_sub(then?) as f64 / dt?);
    let live_members = g.members.iter().filter(|m| m.alive && !m.adopted).count();
    let members = g
        .members
        .iter()
        .map(|m| {
            let then = before.and_then(|b| {
                b.members
                    .iter()
                    .find(|q| q.slot == m.slot && q.pid == m.pid && q.name == m.name)
            });
            MemberRow {
                slot: m.slot,
                pid: m.pid,
                name: m.name.clone(),
                alive: m.alive,
                adopted: m.adopted,
                departed: m.departed,
                busy: m.busy,
                claimed: m.claimed,
                done: m.done,
                done_per_sec: per_sec(m.done, then.map(|t| t.done)),
            }
        })
        .collect();
    GroupRow {
        slot: g.slot,
        name: g.name.clone(),
        mode: g.mode.as_str().to_owned(),
        patterns: g.patterns.clone(),
        live_members,
        members,
        claimed: g.claimed,
        done: g.done,
        claimed_per_sec: per_sec(g.claimed, before.map(|b| b.claimed)),
        done_per_sec: per_sec(g.done, before.map(|b| b.done)),
        backlog: g.backlog,
        redelivered: g.redelivered,
        lost: g.lost,
        lagged: g.lagged,
        claims: g.claims,
        stalled: policy == Policy::Block && g.backlog > 0 && live_members == 0 && !g.removing,
        removing: g.removing,
    }
}

/// Records per second per topic between two readings, from the ring
/// walks: exact when a walk covered everything its producer wrote, else
/// the walked records' topic shares scaled to the producer's count.
/// Busiest first.
fn topic_rates(prev: &Probe, cur: &Probe, dt: f64) -> Vec<TopicRow> {
    let names: HashMap<TopicId, &str> = cur
        .info
        .topics
        .iter()
        .map(|(id, t)| (*id, t.as_str()))
        .collect();
    let mut rates: HashMap<TopicId, (f64, bool)> = HashMap::new();
    for p in &cur.info.producers {
        let Some(Some(walk)) = cur.walks.get(p.id as usize) else {
            continue;
        };
        let Some(before) = prev
            .info
            .producers
            .iter()
            .find(|q| q.id == p.id && q.generation == p.generation)
        else {
            continue;
        };
        if prev.walks.get(p.id as usize).is_none_or(Option::is_none) || walk.records == 0 {
            continue;
        }
        let published = p.published.saturating_sub(before.published);
        let (scale, estimated) = if walk.skipped && published > walk.records {
            (published as f64 / walk.records as f64, true)
        } else {
            (1.0, false)
        };
        for (id, n) in &walk.counts {
            let e = rates.entry(*id).or_insert((0.0, false));
            e.0 += *n as f64 * scale / dt;
            e.1 |= estimated;
        }
    }
    let mut rows: Vec<TopicRow> = rates
        .into_iter()
        .map(|(id, (rate, estimated))| TopicRow {
            topic: names
                .get(&id)
                .map_or_else(|| format!("#{}", id.0), |t| (*t).to_owned()),
            rate,
            estimated,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.rate
            .total_cmp(&a.rate)
            .then_with(|| a.topic.cmp(&b.topic))
    });
    rows
}
