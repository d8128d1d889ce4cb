//! [`Bus::info`]: a snapshot of a bus for people and tools.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use shm_bus_alloc::{ArenaStats, ProcessId};
use shm_bus_topic::TopicId;

use crate::bus::Bus;
use crate::config::{BusConfig, Policy};
use crate::members::SlotState;
use crate::ring::{self, Peek};
use crate::shared::Shared;
use crate::slots::{SLOT_ACTIVE, slot_state};

impl Bus {
    /// A snapshot of the bus for people and tools (`shm-bus inspect`),
    /// built on [`Bus::members`] plus each slot's counters and the ring
    /// positions.
    pub fn info(&self) -> BusInfo {
        let sh = &self.shared;
        let seg = &sh.seg;
        let members = self.members();
        let mask = sh.producer_mask();
        // The progress snapshot pairs with `publish_progress`, the cursor
        // loads with `publish_cursor` (Acquire / Release). A
        // snapshot for people: words of different slots are not read at
        // one instant.
        let producers: Vec<ProducerInfo> = members
            .producers
            .into_iter()
            .filter(|m| mask & (1 << m.slot) != 0 || m.state != SlotState::Free)
            .map(|m| {
                let slot = sh.producer(m.slot as usize);
                let attached = m.state == SlotState::Active;
                let walked = progress(sh, m.slot as usize);
                let last_publish = walked
                    .last_timestamp
                    // Relaxed: statistics.
                    .unwrap_or_else(|| slot.last_publish.load(Ordering::Relaxed));
                ProducerInfo {
                    id: m.slot,
                    pid: m.pid,
                    alive: attached && m.is_alive(),
                    name: m.name,
                    attached,
                    // Every record through this slot carries the next
                    // sequence number, from 0, across owners.
                    published: walked.seq,
                    tail: walked.tail,
                    next_seq: walked.seq,
                    // Relaxed: statistics.
                    full_waits: slot.full_waits.load(Ordering::Relaxed),
                    generation: m.generation,
                    last_publish_ns: sh.wall_ns(last_publish),
                    unread_bytes: unread_bytes(sh, m.slot as usize, walked.tail),
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
                let lag_messages = producers
                    .iter()
                    .map(|p| lag_records(sh, s, p.id as usize))
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
                    // Relaxed: a statistic (1 while counted as asleep).
                    sleeping: slot.sleeping.load(Ordering::Relaxed) == 1,
                    lag_messages,
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
    /// Bytes of the ring between the slowest subscriber counted by the
    /// producer (live, or dead and not reaped yet) and the tail: how full
    /// the ring is for a block-policy producer (it waits when a record
    /// does not fit in `ring_bytes - history_bytes - unread_bytes`). 0 when
    /// nobody subscribes.
    pub unread_bytes: u64,
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
    /// Whether it is asleep on the bus's futex, waiting for records.
    pub sleeping: bool,
    /// Records not yet read, over all producers' rings: each ring's next
    /// sequence number minus the sequence number of the record at the
    /// subscriber's cursor (records of every topic, matching or not, as
    /// for `lag_bytes`). `None` when a ring could not tell (the record
    /// at the cursor was overwritten under the overwrite policy, or is
    /// damaged).
    pub lag_messages: Option<u64>,
}

/// What one walk over a producer's ring found ([`Bus::ring_topics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingTopics {
    /// Ring position where the walk started (a record boundary).
    pub from: u64,
    /// Ring position where it stopped: the tail it saw at the start, or
    /// the first record it could not read. Pass it as `since` next time.
    pub to: u64,
    /// Records counted, per topic.
    pub counts: Vec<(TopicId, u64)>,
    /// Records counted (the sum of `counts`).
    pub records: u64,
    /// Payload bytes of the records counted.
    pub payload_bytes: u64,
    /// Whether the walk could not start at `since` (too far behind the
    /// tail, or not readable) and began at the oldest checkpoint still
    /// safe to read instead: records between them were not counted.
    pub skipped: bool,
}

/// Block policy: bytes between the slowest subscriber the producer counts
/// and producer `p`'s tail (0 with no subscriber).
fn unread_bytes(sh: &Shared, p: usize, tail: u64) -> u64 {
    let cap = sh.config.ring_bytes;
    (0..sh.config.max_subscribers as usize)
        // Acquire (state, cursor): as in `ring::limit`.
        .filter(|&s| slot_state(sh.subscriber(s).state.load(Ordering::Acquire)) == SLOT_ACTIVE)
        .map(|s| {
            let c = sh.cursor(s, p).load(Ordering::Acquire);
            tail - c.clamp(tail.saturating_sub(cap), tail)
        })
        .max()
        .unwrap_or(0)
}

/// Producer `p`'s progress: the published `(tail, next_seq)`, which trail
/// its records by less than 1/64 of the ring (see `ring::Writer::commit`),
/// walked forward over the records committed since. The walk validates
/// every header it reads.
fn progress(sh: &Shared, p: usize) -> ring::Walked {
    // SAFETY: `sh` (and so the mapping) outlives `ring`, a local of this
    // function that is not handed out.
    let ring = unsafe { sh.producer_ref(p) };
    let head = (sh.config.policy == Policy::Overwrite).then_some(&ring.slot().head);
    let (tail, seq) = ring::snapshot(&ring.ctl());
    ring::walk(&ring, tail, seq, head)
}

/// Records subscriber `s` has not read in producer `p`'s ring: the
/// producer's next sequence number minus the sequence number of the record
/// at the cursor. `None` if that record cannot be read.
fn lag_records(sh: &Shared, s: usize, p: usize) -> Option<u64> {
    let slot = sh.producer(p);
    // SAFETY: `sh` (and so the mapping) outlives `ring`, a local of this
    // function that is not handed out.
    let ring = unsafe { sh.producer_ref(p) };
    let head = (sh.config.policy == Policy::Overwrite).then_some(&slot.head);
    let ring::Walked {
        tail,
        seq: next_seq,
        ..
    } = progress(sh, p);
    // Acquire: pairs with the subscriber's Release cursor store.
    let mut pos = sh.cursor(s, p).load(Ordering::Acquire);
    // A padding record at the end of a lap is followed by a real one.
    for _ in 0..2 {
        if pos >= tail {
            return Some(0);
        }
        match ring::peek(&ring, pos, head) {
            Peek::Record(v) => return Some(next_seq.wrapping_sub(v.seq).min(tail - pos)),
            Peek::Padding { next } => pos = next,
            Peek::Empty | Peek::Lagged | Peek::Corrupt(_) => return None,
        }
    }
    None
}

impl Bus {
    /// Counts the records of producer `producer`'s ring per topic, from
    /// `since` (a position an earlier walk returned as `to`) up to the
    /// tail, reading record headers only: no subscriber slot is taken,
    /// so nothing is held back. For live views (`shm-bus top`).
    ///
    /// Only the newest half of the ring is walked: records behind that may
    /// be rewritten at any moment. When `since` is older than that (or
    /// `None`), the walk starts at the oldest checkpointed record in it
    /// and says so (`skipped`). Under the block policy a header is counted
    /// only if the tail, read after the header, shows the producer has not
    /// come near it; under overwrite it is validated as a subscriber does.
    /// What is counted is a statistic: a header rewritten in the instant
    /// of the read may, at worst, be counted under another topic.
    ///
    /// `None` if `producer` is not a producer slot of this bus.
    pub fn ring_topics(&self, producer: u32, since: Option<u64>) -> Option<RingTopics> {
        let sh = &*self.shared;
        if producer >= sh.config.max_producers {
            return None;
        }
        let p = producer as usize;
        let slot = sh.producer(p);
        // SAFETY: `sh` (and so the mapping) outlives `ring`, a local of
        // this function that is not handed out.
        let ring = unsafe { sh.producer_ref(p) };
        let ctl = sh.ring_ctl(slot);
        let head = (sh.config.policy == Policy::Overwrite).then_some(&slot.head);
        let cap = sh.config.ring_bytes;
        // Half the ring, less the 1/64 by which the published tail that
        // `recheck` reads may trail the producer (`ring::Writer::commit`).
        let window = cap / 2 - cap / 64;
        let tail = progress(sh, p).tail;
        let safe = |pos: u64, tail_now: u64| tail_now < pos.saturating_add(window);
        let start = match since {
            Some(s) if s <= tail && safe(s, tail) => Some(s),
            _ => ring::oldest_start(&ring, &ctl, tail, window - ring::HEADER, head),
        };
        let mut out = RingTopics {
            from: start.unwrap_or(tail),
            to: start.unwrap_or(tail),
            skipped: since.is_some() && start != since,
            ..RingTopics::default()
        };
        let Some(mut pos) = start else {
            return Some(out);
        };
        let mut counts: HashMap<u32, u64> = HashMap::new();
        while pos < tail {
            match ring::peek(&ring, pos, head) {
                Peek::Record(v) => {
                    if head.is_none() && !safe(pos, recheck(&slot.tail)) {
                        break;
                    }
                    *counts.entry(v.topic).or_default() += 1;
                    out.records += 1;
                    out.payload_bytes += v.len;
                    pos = v.next;
                }
                Peek::Padding { next } => pos = next,
                Peek::Empty | Peek::Lagged | Peek::Corrupt(_) => break,
            }
        }
        out.to = pos;
        let mut counts: Vec<(TopicId, u64)> =
            counts.into_iter().map(|(t, n)| (TopicId(t), n)).collect();
        counts.sort_unstable();
        out.counts = counts;
        Some(out)
    }
}

/// The tail again, after the header words just read (Acquire fence:
/// header words written by a producer that had published a later tail
/// before them make that tail visible here).
fn recheck(tail: &AtomicU64) -> u64 {
    std::sync::atomic::fence(Ordering::Acquire);
    // Relaxed: ordered by the fence above.
    tail.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BusConfig;

    #[test]
    fn lag_in_records_unread_bytes_and_ring_topics() {
        let (name, _guard) = shm_bus_testkit::unique("info-ring");
        let bus = Bus::create(&name, BusConfig::default().with_ring_bytes(1 << 16)).unwrap();
        let mut sub = bus.subscriber("reader").unwrap();
        sub.subscribe("a").unwrap();
        let mut publisher = bus.publisher("writer").unwrap();
        for i in 0..15u32 {
            let topic = if i % 3 == 0 { "b" } else { "a" };
            publisher.publish(topic, &[7u8; 40]).unwrap();
        }
        let info = bus.info();
        assert_eq!(info.subscribers[0].lag_messages, Some(15));
        assert!(!info.subscribers[0].sleeping);
        let unread = info.producers[0].unread_bytes;
        assert_eq!(unread, info.subscribers[0].lag_bytes);
        assert_eq!(unread, 15 * (32 + 64));

        let walk = bus.ring_topics(0, None).unwrap();
        assert_eq!((walk.records, walk.payload_bytes), (15, 15 * 40));
        let (a, b) = (
            publisher.topic_id("a").unwrap(),
            publisher.topic_id("b").unwrap(),
        );
        // Sorted by id: `b` was interned first.
        assert_eq!(walk.counts, vec![(b, 5), (a, 10)]);
        assert!(!walk.skipped);
        // From where it stopped: only what came since.
        publisher.publish("b", b"x").unwrap();
        let next = bus.ring_topics(0, Some(walk.to)).unwrap();
        assert_eq!(next.counts, vec![(b, 1)]);
        assert_eq!(next.from, walk.to);

        // Read the 10 records on `a` (passing those on `b` on the way): the
        // cursor is published every 1/64 of the ring (1 KiB here), so the
        // lag shrinks, but not necessarily to the one record left.
        for _ in 0..10 {
            drop(sub.try_recv().unwrap());
        }
        let lag = bus.info().subscribers[0].lag_messages.unwrap();
        assert!((1..16).contains(&lag), "{lag}");
        assert!(bus.ring_topics(99, None).is_none());

        // More than half a ring since the last walk: it cannot start there
        // (those bytes may be rewritten), so it starts at a checkpoint in
        // the newest half and says so.
        drop(sub);
        let before = bus.ring_topics(0, None).unwrap().to;
        for _ in 0..600 {
            publisher.publish("a", &[1u8; 64]).unwrap();
        }
        let late = bus.ring_topics(0, Some(before)).unwrap();
        assert!(late.skipped);
        assert!(late.from > before && late.to == bus.info().producers[0].tail);
        assert!(late.records > 0 && late.records < 600, "{}", late.records);
        assert_eq!(late.counts, vec![(a, late.records)]);
    }
}
