//! [`Shared`]: what every handle on a bus uses — the validated pointers
//! into the segment, the producer's limit, reaping, and [`ProducerRef`], a
//! producer's ring in the segment.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use shm_bus_alloc::{Offset, ProcessId, Segment};
use shm_bus_topic::TopicId;

use crate::clock;
use crate::config::BusConfig;
use crate::error::BusError;
use crate::layout::{
    BUS_MAGIC, BusHeader, ProducerSlot, ROOT_BUS, SLOT_FREE, SubscriberSlot, TopicRecord,
    slot_token,
};
use crate::ring::{self, RingCtl, RingMem};
use crate::sync;
use crate::topics::ShmTopicTable;

/// Which table [`Shared::claim_slot`] claims in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotRole {
    Producer,
    Subscriber,
}

/// Everything a handle needs, resolved and validated once at open.
pub(crate) struct Shared {
    pub(crate) seg: Segment,
    pub(crate) config: BusConfig,
    header: NonNull<BusHeader>,
    producers: NonNull<ProducerSlot>,
    subscribers: NonNull<SubscriberSlot>,
    cursors: NonNull<AtomicU64>,
    cursor_stride: usize,
    rings: NonNull<u8>,
    records: NonNull<TopicRecord>,
    n_records: usize,
    /// Bit `p` set for each of the `max_producers` slots.
    producer_bits: u64,
    /// Offset of the group table (0: the bus has none).
    pub(crate) groups: u64,
}

// SAFETY: the pointers point into `seg`'s mapping, which `Shared` owns and
// which lives as long as it; everything they reach is atomics (Sync) or
// ring bytes accessed under the ring protocol.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
    /// Validates a bus in `seg` (header against the configuration, every
    /// table's offset and size against the segment) and resolves it.
    pub(crate) fn validate(seg: Segment) -> Result<Shared, BusError> {
        let config = BusConfig::decode(seg.config())?;
        let corrupt = |what| BusError::Corrupt { what };
        let header_off: Offset<BusHeader> = seg.root(ROOT_BUS).ok_or(BusError::NotABus)?;
        let header = seg.resolve(header_off)?;
        // Relaxed: the whole bus header was published by the segment's
        // Ready state (Release), which `Segment::open` loaded with Acquire.
        if header.magic.load(Ordering::Relaxed) != BUS_MAGIC {
            return Err(BusError::NotABus);
        }
        if header.ring_bytes.load(Ordering::Relaxed) != config.ring_bytes
            || header.max_producers.load(Ordering::Relaxed) != config.max_producers
            || header.max_subscribers.load(Ordering::Relaxed) != config.max_subscribers
            || header.max_topics.load(Ordering::Relaxed) != config.max_topics
            || header.policy.load(Ordering::Relaxed) != config.policy.to_raw()
        {
            return Err(corrupt(
                "bus header disagrees with the segment configuration",
            ));
        }
        let stride = config.cursor_stride();
        if header.cursor_stride.load(Ordering::Relaxed) != stride {
            return Err(corrupt("cursor stride"));
        }
        let producers = seg.resolve_slice(
            Offset::<ProducerSlot>::new(header.producers.load(Ordering::Relaxed)),
            config.max_producers as u64,
        )?;
        let subscribers = seg.resolve_slice(
            Offset::<SubscriberSlot>::new(header.subscribers.load(Ordering::Relaxed)),
            config.max_subscribers as u64,
        )?;
        let cursors = seg.resolve_slice(
            Offset::<AtomicU64>::new(header.cursors.load(Ordering::Relaxed)),
            config.max_subscribers as u64 * stride,
        )?;
        let rings_off = header.rings.load(Ordering::Relaxed);
        if rings_off % 4096 != 0 {
            return Err(corrupt("ring alignment"));
        }
        let rings = seg.bytes(
            Offset::new(rings_off),
            config.max_producers as u64 * config.ring_bytes,
        )?;
        let records = seg.resolve_slice(
            Offset::<TopicRecord>::new(header.topics.load(Ordering::Relaxed)),
            config.max_topics as u64,
        )?;
        seg.bytes(
            Offset::new(header.topic_pool.load(Ordering::Relaxed)),
            header.topic_pool_bytes.load(Ordering::Relaxed),
        )?;
        ShmTopicTable::attach(&seg, header)?;
        let groups = if config.max_groups == 0 {
            0
        } else {
            let off = header.groups.load(Ordering::Relaxed);
            if off % 64 != 0 || header.group_bytes.load(Ordering::Relaxed) != config.group_bytes() {
                return Err(corrupt("group table"));
            }
            seg.bytes(
                Offset::new(off),
                crate::config::GROUP_TABLE_HEADER + config.max_groups as u64 * config.group_bytes(),
            )?;
            off
        };
        let shared = Shared {
            groups,
            header: NonNull::from(header),
            producers: NonNull::from(&producers[0]),
            subscribers: NonNull::from(&subscribers[0]),
            cursors: NonNull::from(&cursors[0]),
            cursor_stride: stride as usize,
            rings: NonNull::new(rings.as_ptr()).ok_or(corrupt("ring offset"))?,
            records: NonNull::from(&records[0]),
            n_records: records.len(),
            producer_bits: match config.max_producers {
                n @ 0..64 => (1u64 << n) - 1,
                _ => u64::MAX,
            },
            config,
            seg,
        };
        Ok(shared)
    }

    #[inline]
    pub(crate) fn header(&self) -> &BusHeader {
        // SAFETY: resolved with bounds and alignment checks at open; valid
        // while `self.seg` (owned) is mapped.
        unsafe { self.header.as_ref() }
    }

    /// Converts a record timestamp (`clock::ticks`) to ns since the epoch.
    pub(crate) fn wall_ns(&self, ticks: u64) -> u64 {
        let h = self.header();
        // Relaxed: written once at creation, published by the segment's
        // Ready state.
        clock::to_wall_ns(
            ticks,
            h.clock_ticks.load(Ordering::Relaxed),
            h.clock_ns.load(Ordering::Relaxed),
        )
    }

    #[inline]
    pub(crate) fn producer(&self, p: usize) -> &ProducerSlot {
        assert!(p < self.config.max_producers as usize);
        // SAFETY: the slice of `max_producers` slots was resolved with
        // bounds checks at open, and `p` is in range (asserted).
        unsafe { &*self.producers.as_ptr().add(p) }
    }

    #[inline]
    pub(crate) fn subscriber(&self, s: usize) -> &SubscriberSlot {
        assert!(s < self.config.max_subscribers as usize);
        // SAFETY: as in `producer`, for the subscriber slots.
        unsafe { &*self.subscribers.as_ptr().add(s) }
    }

    /// Subscriber `s`'s cursor in producer `p`'s ring.
    #[inline]
    pub(crate) fn cursor(&self, s: usize, p: usize) -> &AtomicU64 {
        assert!(s < self.config.max_subscribers as usize && p < self.config.max_producers as usize);
        // SAFETY: the cursor table (max_subscribers × cursor_stride words)
        // was resolved with bounds checks at open; indices are in range.
        unsafe { &*self.cursors.as_ptr().add(s * self.cursor_stride + p) }
    }

    /// Producer `p`'s ring and slot, resolved once (index checked here) for
    /// the per-message paths of a handle.
    ///
    /// # Safety
    /// The caller keeps `self` (so the mapping) alive for as long as the
    /// returned value, or any copy of it, is used: a handle stores it next
    /// to the `Bus` it came from and never hands it out.
    pub(crate) unsafe fn producer_ref(&self, p: usize) -> ProducerRef {
        // Also checks `p` (so the ring offset below is in range).
        let slot = NonNull::from(self.producer(p));
        let cap = self.config.ring_bytes;
        ProducerRef {
            // SAFETY: the rings region (max_producers × ring_bytes) was
            // bounds-checked at open and `p < max_producers`, so the offset
            // stays inside it (`add`'s requirement) and, from a non-null
            // base, is not null.
            base: unsafe { NonNull::new_unchecked(self.rings.as_ptr().add(p * cap as usize)) },
            mask: cap - 1,
            slot,
        }
    }

    #[inline]
    pub(crate) fn ring_ctl<'a>(&self, slot: &'a ProducerSlot) -> RingCtl<'a> {
        RingCtl {
            tail: &slot.tail,
            head: &slot.head,
            next_seq: &slot.next_seq,
            progress: &slot.progress,
            checkpoints: &slot.checkpoints,
        }
    }

    /// Every producer's ring, as one region: its start (page aligned) and
    /// length (`max_producers * ring_bytes`, a multiple of the page size).
    pub(crate) fn rings_region(&self) -> (NonNull<u8>, usize) {
        (
            self.rings,
            self.config.max_producers as usize * self.config.ring_bytes as usize,
        )
    }

    /// The topic table (its map is validated again, so a segment damaged
    /// since it was opened gives an error, not a panic).
    pub(crate) fn topics(&self) -> Result<ShmTopicTable<'_>, BusError> {
        ShmTopicTable::attach(&self.seg, self.header())
    }

    /// The literal of an interned topic (`None` if not ready or damaged).
    pub(crate) fn topic_literal(&self, id: TopicId) -> Option<&str> {
        // SAFETY: `records` / `n_records` were resolved with bounds checks
        // at open and stay valid while `self.seg` is mapped.
        let records = unsafe { std::slice::from_raw_parts(self.records.as_ptr(), self.n_records) };
        std::str::from_utf8(crate::topics::literal_bytes(&self.seg, records, id)?).ok()
    }

    /// Block policy: the highest position producer `p` may write — the
    /// slowest active subscriber's cursor plus the ring — or `tail + cap`
    /// when nobody subscribes (see `ring::limit`, which also holds the
    /// producer's half of the join handshake).
    pub(crate) fn limit(&self, p: usize, tail: u64) -> u64 {
        let readers = (0..self.config.max_subscribers as usize)
            .map(|s| (&self.subscriber(s).state, self.cursor(s, p)));
        let cap = self.config.ring_bytes;
        let limit = ring::limit(readers, tail, cap, self.config.history_bytes);
        // After `ring::limit`'s SeqCst fence: groups are readers too (the
        // same join handshake, see `group`).
        match self.group_floor(p) {
            Some(floor) => limit.min(
                floor
                    .clamp(tail.saturating_sub(cap), tail)
                    .saturating_add(cap)
                    .saturating_sub(self.config.history_bytes),
            ),
            None => limit,
        }
    }

    /// Bit `p` set for every producer slot that ever held a producer,
    /// restricted to the bus's `max_producers` slots (the word lives in the
    /// segment, and a damaged one must not name slots that do not exist).
    #[inline]
    pub(crate) fn producer_mask(&self) -> u64 {
        // Acquire: pairs with the Release `fetch_or` in
        // `Bus::attach_publisher`; the new producer's published tail is
        // visible to whoever then reads its ring.
        self.header().producer_mask.load(Ordering::Acquire) & self.producer_bits
    }

    /// Whether the bus was removed ([`Bus::remove`](crate::Bus::remove)).
    pub(crate) fn is_removed(&self) -> bool {
        // Acquire: pairs with the Release store in `Bus::remove`.
        self.header().removed.load(Ordering::Acquire) != 0
    }

    /// Marks the bus removed and wakes every sleeper (subscribers waiting
    /// for data, producers waiting for space), so they notice at once.
    pub(crate) fn mark_removed(&self) {
        let h = self.header();
        // Release: pairs with the Acquire load in `is_removed`.
        h.removed.store(1, Ordering::Release);
        // Release: pairs with the Acquire futex-word loads of the sleepers
        // (`State::wait`, `Publisher::reserve`).
        h.data_futex.fetch_add(1, Ordering::Release);
        crate::futex::wake_all(&h.data_futex);
        for p in 0..self.config.max_producers as usize {
            let slot = self.producer(p);
            slot.space_futex.fetch_add(1, Ordering::Release);
            crate::futex::wake_all(&slot.space_futex);
        }
    }

    /// Claims a free producer or subscriber slot by CAS from `SLOT_FREE`
    /// to `word` (the caller's token and state). If none is free, reaps
    /// dead owners once and tries again. Returns the slot, or `None` when
    /// every slot has a live owner.
    pub(crate) fn claim_slot(&self, role: SlotRole, word: u64) -> Option<usize> {
        let n = match role {
            SlotRole::Producer => self.config.max_producers,
            SlotRole::Subscriber => self.config.max_subscribers,
        } as usize;
        for round in 0..2 {
            if round == 1 {
                let (subscribers, producers) = self.reap();
                let freed = match role {
                    SlotRole::Producer => producers,
                    SlotRole::Subscriber => subscribers,
                };
                if freed == 0 {
                    break;
                }
            }
            for i in 0..n {
                let state = match role {
                    SlotRole::Producer => &self.producer(i).state,
                    SlotRole::Subscriber => &self.subscriber(i).state,
                };
                // AcqRel: pairs with the Release store that freed the slot
                // (a handle's `Drop`, `reap_slot`): the previous owner's
                // last writes are visible to us.
                if state
                    .compare_exchange(SLOT_FREE, word, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Frees the slots of dead subscribers and producers. Returns
    /// `(subscribers, producers)` reaped. A dead producer's ring and tail
    /// stay as they are, readable, for the next producer to continue.
    pub(crate) fn reap(&self) -> (u32, u32) {
        let mut subs = 0;
        for s in 0..self.config.max_subscribers as usize {
            let slot = self.subscriber(s);
            if reap_slot(&slot.state) {
                // Un-count a subscriber that died asleep (exactly once:
                // the live owner swaps the same flag in `stop_sleeping`).
                // AcqRel: pairs with the owner's AcqRel swap of the same
                // flag in `stop_sleeping`: only one of the two sees 1.
                if slot.sleeping.swap(0, Ordering::AcqRel) == 1 {
                    // SeqCst: as every update of the sleeper count (see
                    // `Subscriber::wait`).
                    self.header().data_sleepers.fetch_sub(1, Ordering::SeqCst);
                }
                subs += 1;
                tracing::info!(subscriber = s, "reaped dead subscriber");
            }
        }
        let mut prods = 0;
        for p in 0..self.config.max_producers as usize {
            if reap_slot(&self.producer(p).state) {
                prods += 1;
                tracing::info!(producer = p, "reaped dead producer");
            }
        }
        (subs, prods)
    }
}

/// Frees a slot whose owner is dead. Returns whether this call freed it.
fn reap_slot(state: &AtomicU64) -> bool {
    // Acquire: pairs with the Release/SeqCst stores that claim a slot
    // (`attach_publisher`'s CAS, `State::join`'s ACTIVE store).
    let word = state.load(Ordering::Acquire);
    word != SLOT_FREE
        && ProcessId::token_is_dead(slot_token(word))
        // AcqRel: pairs with the claimer's CAS; only one reaper wins, and a
        // slot re-claimed meanwhile (another word) is left alone.
        && state
            .compare_exchange(word, SLOT_FREE, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
}

/// A producer's ring and slot for the per-message paths: resolved and
/// bounds-checked once by [`Shared::producer_ref`], whose caller keeps the
/// mapping alive while it is used (see there).
#[derive(Clone, Copy)]
pub(crate) struct ProducerRef {
    base: NonNull<u8>,
    mask: u64,
    slot: NonNull<ProducerSlot>,
}

// SAFETY: like `Shared`'s: pointers into the shared mapping, which every
// thread may use under the ring protocol (the slot is atomics only).
unsafe impl Send for ProducerRef {}
// SAFETY: as above.
unsafe impl Sync for ProducerRef {}

impl ProducerRef {
    /// The producer's slot.
    #[inline]
    pub(crate) fn slot(&self) -> &ProducerSlot {
        // SAFETY: resolved from a bounds-checked slot of the mapping by
        // `Shared::producer_ref`, whose caller keeps the mapping alive
        // while this value is used; `ProducerSlot` is atomics only.
        unsafe { self.slot.as_ref() }
    }

    /// The producer-owned words of its ring.
    #[inline]
    pub(crate) fn ctl(&self) -> RingCtl<'_> {
        let slot = self.slot();
        RingCtl {
            tail: &slot.tail,
            head: &slot.head,
            next_seq: &slot.next_seq,
            progress: &slot.progress,
            checkpoints: &slot.checkpoints,
        }
    }
}

// SAFETY: `base` is producer `p`'s `mask + 1` bytes inside the rings
// region, bounds-checked and 4 KiB aligned at open (`Shared::validate`),
// and alive while this value is used (`Shared::producer_ref`'s contract);
// `mask + 1` is the validated `ring_bytes`; every process touches ring
// bytes only through the ring protocol.
unsafe impl RingMem for ProducerRef {
    #[inline]
    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    #[inline]
    fn word(&self, slot: u64) -> &sync::AtomicU64 {
        debug_assert!(slot % 8 == 0);
        // SAFETY: `slot & mask` is inside the ring and 8-aligned (callers
        // pass 8-aligned slots; the base is page aligned); AtomicU64 is
        // valid for any bits.
        unsafe { &*(self.base.as_ptr().add((slot & self.mask) as usize) as *const sync::AtomicU64) }
    }

    #[inline]
    fn header(&self, slot: u64) -> &[sync::AtomicU64; 4] {
        let at = (slot & self.mask & !31) as usize;
        // SAFETY: `at` is 32-aligned and below `mask + 1` (a multiple of
        // 32), so its 32 bytes are inside the ring; the base is page
        // aligned; AtomicU64 is valid for any bits.
        unsafe { &*(self.base.as_ptr().add(at) as *const [sync::AtomicU64; 4]) }
    }

    #[inline]
    fn ptr(&self, slot: u64) -> *mut u8 {
        // SAFETY: `slot & mask` is inside the ring, so the offset stays in
        // the mapping.
        unsafe { self.base.as_ptr().add((slot & self.mask) as usize) }
    }
}
