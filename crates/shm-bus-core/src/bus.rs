//! [`Bus`]: create, open, inspect and reap a bus.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use shm_bus_alloc::{ArenaStats, ByteMap, Offset, ProcessId, Segment};
use shm_bus_topic::TopicId;

use crate::clock;
use crate::config::{BusConfig, TOPIC_POOL_PER_TOPIC};
use crate::error::BusError;
use crate::layout::{
    BUS_MAGIC, BusHeader, ProducerSlot, ROOT_BUS, SLOT_ACTIVE, SLOT_FREE, SubscriberSlot,
    TopicRecord, load_name, slot_state, slot_token,
};
use crate::ring::{self, RingCtl, RingMem};
use crate::sync;
use crate::topics::ShmTopicTable;

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
}

// SAFETY: the pointers point into `seg`'s mapping, which `Shared` owns and
// which lives as long as it; everything they reach is atomics (Sync) or
// ring bytes accessed under the ring protocol.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

impl Shared {
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

    #[inline]
    pub(crate) fn ring(&self, p: usize) -> SegRing<'_> {
        assert!(p < self.config.max_producers as usize);
        let cap = self.config.ring_bytes;
        SegRing {
            // SAFETY: the rings region (max_producers × ring_bytes) was
            // bounds-checked at open; `p` is in range.
            base: unsafe { self.rings.as_ptr().add(p * cap as usize) },
            cap,
            _shared: std::marker::PhantomData,
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
        ring::limit(readers, tail, self.config.ring_bytes)
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

/// A producer's ring inside the segment.
pub(crate) struct SegRing<'a> {
    base: *mut u8,
    cap: u64,
    _shared: std::marker::PhantomData<&'a Shared>,
}

// SAFETY: `base` is the start of producer `p`'s `cap` bytes inside the
// rings region, which `Bus::from_segment` bounds-checked and found 4 KiB
// aligned; the `'a` borrow of `Shared` keeps the mapping alive; `cap` is
// the validated `ring_bytes` (a power of two, at least `MIN_RING_BYTES`);
// and every process touches ring bytes only through the ring protocol.
unsafe impl RingMem for SegRing<'_> {
    #[inline]
    fn capacity(&self) -> u64 {
        self.cap
    }

    #[inline]
    fn word(&self, slot: u64) -> &sync::AtomicU64 {
        debug_assert!(slot % 8 == 0);
        // SAFETY: `slot & (cap - 1)` is inside the ring (see the impl's
        // SAFETY), and 8-aligned since callers pass 8-aligned slots and the
        // base is page aligned; AtomicU64 is valid for any bits, and shared
        // words are only ever accessed atomically or under the protocol.
        unsafe { &*(self.base.add((slot & (self.cap - 1)) as usize) as *const sync::AtomicU64) }
    }

    #[inline]
    fn ptr(&self, slot: u64) -> *mut u8 {
        // SAFETY: `slot & (cap - 1)` is inside the ring, so the offset stays
        // inside the mapping (`add`'s in-bounds requirement).
        unsafe { self.base.add((slot & (self.cap - 1)) as usize) }
    }
}

/// A handle on a bus: a shared-memory segment named `/shm-bus.<name>`.
/// Cheap to clone; publishers and subscribers keep it alive.
///
/// ```no_run
/// use shm_bus_core::{Bus, BusConfig};
///
/// let bus = Bus::open_or_create("quotes", BusConfig::default())?;
/// let mut publisher = bus.publisher("feed")?;
/// let mut subscriber = bus.subscriber("worker")?;
/// subscriber.subscribe("md.{venue}.AAPL")?;
/// publisher.publish("md.XNAS.AAPL", b"42.00")?;
/// let sample = subscriber.recv()?;
/// assert_eq!(sample.topic(), "md.XNAS.AAPL");
/// assert_eq!(sample.payload(), b"42.00");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Bus {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("name", &self.name())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Creates a new bus (fails if one of that name exists).
    ///
    /// # Errors
    /// [`BusError::InvalidConfig`], or [`BusError::Segment`] with
    /// `AlreadyExists`, `PermissionDenied`, `Io`, …
    pub fn create(name: &str, config: BusConfig) -> Result<Bus, BusError> {
        config.validate()?;
        let seg = Segment::builder(name)
            .size(config.segment_bytes())
            .mode(config.mode)
            .config(&config.encode())
            .create(|init| init_bus(init, &config))?;
        Bus::from_segment(seg)
    }

    /// Opens an existing bus with whatever configuration it has.
    ///
    /// # Errors
    /// [`BusError::Segment`] with `NotFound`, `PermissionDenied`,
    /// `VersionMismatch`, `Corrupt`, `HangsInCreation`, `CreatorDied`, …;
    /// [`BusError::NotABus`]; [`BusError::Corrupt`].
    pub fn open(name: &str) -> Result<Bus, BusError> {
        Bus::from_segment(Segment::open(name)?)
    }

    /// Opens the bus, creating it with `config` if it does not exist; two
    /// processes racing here end up on the same bus. An existing bus must
    /// satisfy `config` (see [`BusConfig`]).
    ///
    /// # Errors
    /// As [`Bus::create`] and [`Bus::open`], plus
    /// [`BusError::ConfigMismatch`].
    pub fn open_or_create(name: &str, config: BusConfig) -> Result<Bus, BusError> {
        config.validate()?;
        let seg = Segment::builder(name)
            .size(config.segment_bytes())
            .mode(config.mode)
            .config(&config.encode())
            .open_or_create(|init| init_bus(init, &config))?;
        let bus = Bus::from_segment(seg)?;
        if !bus.shared.config.satisfies(&config) {
            return Err(BusError::ConfigMismatch {
                found: bus.shared.config,
                requested: config,
            });
        }
        Ok(bus)
    }

    /// Removes the bus's segment name. Processes that have it open keep
    /// working; new opens fail with `NotFound`.
    ///
    /// # Errors
    /// [`BusError::Segment`] (`NotFound`, `PermissionDenied`, `Io`).
    pub fn remove(name: &str) -> Result<(), BusError> {
        Ok(Segment::unlink(name)?)
    }

    fn from_segment(seg: Segment) -> Result<Bus, BusError> {
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
        let shared = Shared {
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
        Ok(Bus {
            shared: Arc::new(shared),
        })
    }

    /// The bus's name (without the `/shm-bus.` prefix).
    pub fn name(&self) -> &str {
        self.shared.seg.name()
    }

    /// Converts a record stamp ([`Sample::stamp`](crate::Sample::stamp),
    /// [`clock::ticks`]) to nanoseconds since the Unix epoch, against the
    /// clock readings the bus took at creation (see [`clock`]).
    pub fn stamp_to_wall_ns(&self, stamp: u64) -> u64 {
        self.shared.wall_ns(stamp)
    }

    /// The bus's configuration.
    pub fn config(&self) -> &BusConfig {
        &self.shared.config
    }

    /// The shared topic table.
    ///
    /// # Errors
    /// [`BusError::Segment`] / [`BusError::Corrupt`] if the table's map
    /// has been damaged since the bus was opened.
    pub fn topics(&self) -> Result<ShmTopicTable<'_>, BusError> {
        self.shared.topics()
    }

    /// Frees the slots of dead subscribers and producers (pid + start time
    /// checked, so a reused pid is not mistaken for life). A dead
    /// producer's ring stays readable. Publishers blocked on a dead
    /// subscriber also do this on their own.
    pub fn reap(&self) -> ReapReport {
        let (subscribers, producers) = self.shared.reap();
        ReapReport {
            subscribers,
            producers,
        }
    }

    /// A snapshot of the bus for people and tools (`shm-bus inspect`).
    pub fn info(&self) -> BusInfo {
        let sh = &self.shared;
        let seg = &sh.seg;
        let mask = sh.producer_mask();
        // The Acquire loads below pair with the Release stores they read:
        // slot claims (CAS / ACTIVE store), `publish_progress` (tail,
        // next_seq) and `publish_cursor`. A snapshot for people: words of
        // different slots are not read at one instant.
        let producers: Vec<ProducerInfo> = (0..sh.config.max_producers as usize)
            .filter(|&p| {
                mask & (1 << p) != 0 || sh.producer(p).state.load(Ordering::Acquire) != SLOT_FREE
            })
            .map(|p| {
                let slot = sh.producer(p);
                let state = slot.state.load(Ordering::Acquire);
                let active = slot_state(state) == SLOT_ACTIVE;
                ProducerInfo {
                    id: p as u32,
                    pid: slot.owner_pid.load(Ordering::Relaxed) as u32,
                    name: load_name(&slot.name),
                    attached: active,
                    alive: active && !ProcessId::token_is_dead(slot_token(state)),
                    published: slot.published.load(Ordering::Relaxed),
                    tail: slot.tail.load(Ordering::Acquire),
                    next_seq: slot.next_seq.load(Ordering::Acquire),
                    full_waits: slot.full_waits.load(Ordering::Relaxed),
                    generation: slot.generation.load(Ordering::Relaxed),
                    last_publish_ns: sh.wall_ns(slot.last_publish.load(Ordering::Relaxed)),
                }
            })
            .collect();
        let subscribers = (0..sh.config.max_subscribers as usize)
            .filter_map(|s| {
                let slot = sh.subscriber(s);
                let state = slot.state.load(Ordering::Acquire);
                if state == SLOT_FREE {
                    return None;
                }
                let lag_bytes = producers
                    .iter()
                    .map(|p| {
                        p.tail
                            .saturating_sub(sh.cursor(s, p.id as usize).load(Ordering::Acquire))
                    })
                    .sum();
                Some(SubscriberInfo {
                    id: s as u32,
                    pid: slot.owner_pid.load(Ordering::Relaxed) as u32,
                    name: load_name(&slot.name),
                    alive: !ProcessId::token_is_dead(slot_token(state)),
                    received: slot.received.load(Ordering::Relaxed),
                    lagged: slot.lagged.load(Ordering::Relaxed),
                    lag_bytes,
                    last_active_ns: slot.last_active_ns.load(Ordering::Relaxed),
                })
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

/// What [`Bus::reap`] freed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Subscriber slots freed.
    pub subscribers: u32,
    /// Producer slots freed.
    pub producers: u32,
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

/// Builds the bus inside a fresh segment. Nothing relies on the memory
/// being zeroed: every word that matters is written here.
fn init_bus(
    init: &mut shm_bus_alloc::Initializer<'_>,
    config: &BusConfig,
) -> shm_bus_alloc::Result<()> {
    let arena = init.arena();
    let seg = init.segment();
    let topics = config.max_topics as u64;
    let header_off = arena.alloc_zeroed::<BusHeader>()?;
    let records = arena.alloc_array_zeroed::<TopicRecord>(topics)?;
    let map = ByteMap::create(&arena, topics * 2, topics * TOPIC_POOL_PER_TOPIC)?;
    let pool_bytes = topics * TOPIC_POOL_PER_TOPIC;
    let pool = arena.alloc(pool_bytes, 8)?;
    let producers = arena.alloc_array_zeroed::<ProducerSlot>(config.max_producers as u64)?;
    let subscribers = arena.alloc_array_zeroed::<SubscriberSlot>(config.max_subscribers as u64)?;
    let stride = config.cursor_stride();
    let cursors = arena.alloc_array_zeroed::<AtomicU64>(config.max_subscribers as u64 * stride)?;
    let rings = arena.alloc(config.max_producers as u64 * config.ring_bytes, 4096)?;
    // Each ring's first header must not carry the stamp of position 0.
    for p in 0..config.max_producers as u64 {
        let word = seg.resolve(Offset::<AtomicU64>::new(
            rings.get() + p * config.ring_bytes,
        ))?;
        word.store(0, Ordering::Relaxed);
    }
    let h = seg.resolve(header_off)?;
    h.ring_bytes.store(config.ring_bytes, Ordering::Relaxed);
    h.max_producers
        .store(config.max_producers, Ordering::Relaxed);
    h.max_subscribers
        .store(config.max_subscribers, Ordering::Relaxed);
    h.max_topics.store(config.max_topics, Ordering::Relaxed);
    h.policy.store(config.policy.to_raw(), Ordering::Relaxed);
    h.topics.store(records.get(), Ordering::Relaxed);
    h.topic_map.store(map.offset().get(), Ordering::Relaxed);
    h.topic_pool.store(pool.get(), Ordering::Relaxed);
    h.topic_pool_bytes.store(pool_bytes, Ordering::Relaxed);
    h.producers.store(producers.get(), Ordering::Relaxed);
    h.subscribers.store(subscribers.get(), Ordering::Relaxed);
    h.cursors.store(cursors.get(), Ordering::Relaxed);
    h.cursor_stride.store(stride, Ordering::Relaxed);
    h.rings.store(rings.get(), Ordering::Relaxed);
    // Relaxed throughout: the segment's Ready state (Release) publishes all
    // of it to openers.
    h.clock_ticks.store(clock::ticks(), Ordering::Relaxed);
    h.clock_ns.store(clock::wall_ns(), Ordering::Relaxed);
    h.magic.store(BUS_MAGIC, Ordering::Relaxed);
    init.set_root(ROOT_BUS, header_off)
}
