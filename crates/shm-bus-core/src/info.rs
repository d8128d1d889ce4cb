//! [`Bus::info`]: a snapshot of a bus for people and tools.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use shm_bus_alloc::{ArenaStats, ProcessId};
use shm_bus_topic::TopicId;

use crate::bus::Bus;
use crate::config::BusConfig;
use crate::members::SlotState;

impl Bus {
    /// A snapshot of the bus for people and tools (`shm-bus inspect`),
    /// built on [`Bus::members`] plus each slot's counters and the ring
    /// positions.
    pub fn info(&self) -> BusInfo {
        let sh = &self.shared;
        let seg = &sh.seg;
        let members = self.members();
        let mask = sh.producer_mask();
        // The Acquire loads below pair with the Release stores in
        // `publish_progress` (tail, next_seq) and `publish_cursor`. A
        // snapshot for people: words of different slots are not read at
        // one instant.
        let producers: Vec<ProducerInfo> = members
            .producers
            .into_iter()
            .filter(|m| mask & (1 << m.slot) != 0 || m.state != SlotState::Free)
            .map(|m| {
                let slot = sh.producer(m.slot as usize);
                let attached = m.state == SlotState::Active;
                ProducerInfo {
                    id: m.slot,
                    pid: m.pid,
                    alive: attached && m.is_alive(),
                    name: m.name,
                    attached,
                    // Relaxed: statistics.
                    published: slot.published.load(Ordering::Relaxed),
                    tail: slot.tail.load(Ordering::Acquire),
                    next_seq: slot.next_seq.load(Ordering::Acquire),
                    full_waits: slot.full_waits.load(Ordering::Relaxed),
                    generation: m.generation,
                    last_publish_ns: sh.wall_ns(slot.last_publish.load(Ordering::Relaxed)),
                }
            })
            .collect();
        let subscribers = members
            .subscribers
            .into_iter()
            .filter(|m| m.state != SlotState::Free)
            .map(|m| {
                let s = m.slot as usize;
                let slot = sh.subscriber(s);
                let lag_bytes = producers
                    .iter()
                    .map(|p| {
                        p.tail
                            .saturating_sub(sh.cursor(s, p.id as usize).load(Ordering::Acquire))
                    })
                    .sum();
                SubscriberInfo {
                    id: m.slot,
                    pid: m.pid,
                    alive: !ProcessId::token_is_dead(m.token),
                    name: m.name,
                    // Relaxed: statistics.
                    received: slot.received.load(Ordering::Relaxed),
                    lagged: m.lagged,
                    lag_bytes,
                    last_active_ns: slot.last_active_ns.load(Ordering::Relaxed),
                }
            })
            .collect();
        BusInfo {
            name: self.name().to_owned(),
            segment_bytes: seg.size(),
            layout_version: seg.layout_version(),
            created_by: seg.creator(),
            created_at: seg.created_at(),
            config: sh.config,
            max_payload: sh.config.max_payload(),
            arena: seg.arena().stats().ok(),
            topics: self.topics().map(|t| t.entries()).unwrap_or_default(),
            producers,
            subscribers,
        }
    }
}

/// A snapshot of a bus ([`Bus::info`]).
#[derive(Debug, Clone)]
pub struct BusInfo {
    /// Bus name.
    pub name: String,
    /// Segment size in bytes.
    pub segment_bytes: u64,
    /// Segment layout version.
    pub layout_version: u32,
    /// The creating process.
    pub created_by: ProcessId,
    /// When it was created.
    pub created_at: SystemTime,
    /// Its configuration.
    pub config: BusConfig,
    /// Largest payload.
    pub max_payload: usize,
    /// Arena statistics (`None` if unreadable).
    pub arena: Option<ArenaStats>,
    /// Interned topics.
    pub topics: Vec<(TopicId, String)>,
    /// Producer slots that hold a producer or ever did.
    pub producers: Vec<ProducerInfo>,
    /// Subscriber slots in use (live or dead, not yet reaped).
    pub subscribers: Vec<SubscriberInfo>,
}

/// One producer slot.
#[derive(Debug, Clone)]
pub struct ProducerInfo {
    /// Slot index (the producer id carried by samples).
    pub id: u32,
    /// Owner pid (last one, if detached).
    pub pid: u32,
    /// Owner's name.
    pub name: String,
    /// Whether a process holds the slot.
    pub attached: bool,
    /// Whether that process is alive.
    pub alive: bool,
    /// Records published through the slot.
    pub published: u64,
    /// Ring position one past the last committed record.
    pub tail: u64,
    /// Sequence number of the next record.
    pub next_seq: u64,
    /// Times a publish found the ring full.
    pub full_waits: u64,
    /// Times the slot was claimed.
    pub generation: u64,
    /// Last publish, ns since the epoch.
    pub last_publish_ns: u64,
}

/// One subscriber slot.
#[derive(Debug, Clone)]
pub struct SubscriberInfo {
    /// Slot index.
    pub id: u32,
    /// Owner pid.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// Whether the owner is alive.
    pub alive: bool,
    /// Samples received.
    pub received: u64,
    /// Records missed through lag (Overwrite policy).
    pub lagged: u64,
    /// Bytes not yet read, over all producers' rings.
    pub lag_bytes: u64,
    /// Last time it received or polled, ns since the epoch.
    pub last_active_ns: u64,
}
