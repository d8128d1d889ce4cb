//! [`Bus`]: create, open and remove a bus; build one in a fresh segment.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use shm_bus_alloc::{ByteMap, Offset, Segment};

use crate::clock;
use crate::config::{BusConfig, TOPIC_POOL_PER_TOPIC};
use crate::error::BusError;
use crate::layout::{BUS_MAGIC, BusHeader, ProducerSlot, ROOT_BUS, SubscriberSlot, TopicRecord};
use crate::ring::RingMem as _;
use crate::shared::Shared;
use crate::topics::ShmTopicTable;

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

    /// Removes the bus: marks it removed, then unlinks its segment name.
    /// New opens fail with `NotFound`; processes still attached notice
    /// through [`RecvError::BusRemoved`](crate::RecvError::BusRemoved)
    /// (once nothing is left to read) and
    /// [`PublishError::BusRemoved`](crate::PublishError::BusRemoved)
    /// (within 4096 publishes, or at once when the ring is full), instead of
    /// waiting on a bus nobody can open again. Who is attached can be seen
    /// first with [`Bus::members`]. A segment that is not a valid bus is
    /// unlinked all the same.
    ///
    /// # Errors
    /// [`BusError::Segment`] (`NotFound`, `PermissionDenied`, `Io`).
    pub fn remove(name: &str) -> Result<(), BusError> {
        if let Ok(bus) = Bus::open(name) {
            bus.shared.mark_removed();
        }
        Ok(Segment::unlink(name)?)
    }

    /// Whether the bus has been removed (see [`Bus::remove`]).
    pub fn is_removed(&self) -> bool {
        self.shared.is_removed()
    }

    fn from_segment(seg: Segment) -> Result<Bus, BusError> {
        Ok(Bus {
            shared: Arc::new(Shared::validate(seg)?),
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

    /// Maps every page of every producer's ring into this process now,
    /// writable, so that neither the first lap of publishing nor that of
    /// reading takes a page fault (a first touch costs a few microseconds:
    /// the p99 of a fresh bus's first lap). The first process to do it
    /// also allocates the pages (`max_producers × ring_bytes` of shared
    /// memory), so every other process's first touch is cheaper too.
    /// Changes no byte of the rings: safe while the bus is in use. Each
    /// process that wants no faults at all calls it after opening;
    /// `shm-bus create --prefault` does it at creation.
    ///
    /// # Errors
    /// [`BusError::Prefault`] when the kernel cannot provide the memory.
    pub fn prefault(&self) -> Result<(), BusError> {
        let (base, len) = self.shared.rings_region();
        // SAFETY: `base..base + len` is the rings region inside this
        // handle's live mapping (bounds-checked at open, page aligned, a
        // whole number of pages). MADV_POPULATE_WRITE (Linux 5.14) only
        // faults the pages in, as a write would, without accessing them:
        // no byte changes, so other processes using the rings see nothing.
        let rc = unsafe {
            libc::madvise(
                base.as_ptr().cast::<libc::c_void>(),
                len,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(BusError::Prefault(err));
        }
        // An older kernel: touch one word per page with an atomic load
        // (maps the page; tmpfs allocates it on a read fault too).
        let page = 4096;
        for p in 0..self.shared.config.max_producers as usize {
            // SAFETY: a local of this function, used while `self` (and so
            // the mapping) is borrowed.
            let ring = unsafe { self.shared.producer_ref(p) };
            for slot in (0..self.shared.config.ring_bytes).step_by(page) {
                // Relaxed: only the access matters, not the value.
                std::hint::black_box(ring.word(slot).load(Ordering::Relaxed));
            }
        }
        Ok(())
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
            group_members: self.shared.reap_groups(),
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
    /// Worker-group member slots freed (dead members that left no
    /// unfinished work; unfinished work waits for a live member to adopt
    /// it).
    pub group_members: u32,
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
    // Zeroed: free groups, free locks with empty undo logs. 64-aligned:
    // the slots' lines are cache lines.
    let group_table =
        crate::config::GROUP_TABLE_HEADER + config.max_groups as u64 * config.group_bytes();
    let groups = arena.alloc(group_table, 64)?;
    for w in seg.resolve_slice(Offset::<AtomicU64>::new(groups.get()), group_table / 8)? {
        w.store(0, Ordering::Relaxed);
    }
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
    h.groups.store(groups.get(), Ordering::Relaxed);
    h.group_bytes.store(config.group_bytes(), Ordering::Relaxed);
    // Relaxed throughout: the segment's Ready state (Release) publishes all
    // of it to openers.
    h.clock_ticks.store(clock::ticks(), Ordering::Relaxed);
    h.clock_ns.store(clock::wall_ns(), Ordering::Relaxed);
    h.magic.store(BUS_MAGIC, Ordering::Relaxed);
    init.set_root(ROOT_BUS, header_off)
}
