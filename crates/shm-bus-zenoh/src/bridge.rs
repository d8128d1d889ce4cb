//! The bridge: one bus subscriber exporting to Zenoh, one bus publisher
//! importing from it, and the counters.
//!
//! ## Export
//!
//! A bus subscriber named `zenoh:NAME` holds the export patterns. A reader
//! thread takes each record it receives, unless the bridge's own publisher
//! wrote it (that is an import: never exported again), and hands it, in
//! batches, to a put thread, which puts it on the key of its topic (see
//! [`mapping`]) with reliable delivery and `CongestionControl::Block`, and
//! the [`Meta`] attachment. One Zenoh publisher per topic, declared on
//! first use, keeps the topic's export sequence and whether any remote
//! subscriber matches it.
//!
//! ## Import
//!
//! One Zenoh subscriber per import pattern, remote samples only. Its
//! callback (in Zenoh's receive task: no queue, no thread hand-off)
//! decodes the key into a topic, filters it with the import patterns
//! (Zenoh's key expressions are coarser), checks its (source, topic)
//! export sequence, and publishes it into the bus with the bridge's
//! publisher `zenoh:NAME`, with its original topic. When the keys of two
//! import patterns overlap, the first pattern whose key includes the
//! sample's key takes it, so nothing is imported twice.
//!
//! ## Flow control
//!
//! With the Block policy on both buses and a healthy link nothing is
//! lost, end to end: a full bus ring blocks the importer, so Zenoh's
//! receive task stops reading the link, TCP fills, the exporter's `put`
//! (reliable, `CongestionControl::Block`) waits, its queue fills, the
//! exporter stops reading, and the producers on the exporting bus wait
//! for it as for any slow subscriber.
//!
//! One wait is cut on purpose. A bridge's own subscriber must read what
//! its importer publishes (to skip it), so if the exporter stopped reading
//! while its importer waited for room on the bus, two bridges exporting to
//! each other could wait on each other for ever: A's importer on A's ring,
//! A's exporter on B's importer, B's importer on B's ring, B's exporter on
//! A's importer. So the exporter reads in a thread of its own, hands local
//! events to a `put` thread through a queue, stops reading when that queue
//! holds 8 MiB, and goes on reading past that bound
//! while its importer waits on the bus. Local producers are then held
//! back by whatever holds the importer back (a slow local reader gates
//! every ring), so the queue stays bounded by what the rings hold.
//!
//! Zenoh closes a link whose sender stays blocked longer than
//! `queue/congestion_control/block/wait_before_close` (5 s by default);
//! what is lost then is counted (`gaps`, `unrouted`).

use bytes::Bytes;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use shm_bus_core::{Bus, BusConfig, BusError, PublishError, Publisher, RecvError, TopicId};
use shm_bus_topic::Topic;
use zenoh::bytes::ZBytes;
use zenoh::key_expr::OwnedKeyExpr;
use zenoh::qos::CongestionControl;
use zenoh::sample::{Locality, Sample};
use zenoh::{Session, Wait};

use crate::mapping::{self, MapError};
use crate::meta::{Meta, MetaError};

/// Longest `--name`: the bus keeps 32 bytes of a member's name, and
/// `zenoh:` takes 6.
pub const MAX_NAME: usize = shm_bus_core::NAME_BYTES - 6;
/// How often the worker threads look at the stop flag while idle.
const POLL: Duration = Duration::from_millis(50);
/// Bytes of local events (payload + 64 each) the exporter's reader may
/// queue for its `put` thread before it stops reading, unless the
/// importer waits on the bus (see the module docs).
const EXPORT_BUFFER: u64 = 8 << 20;
/// What a queued export is charged beyond its payload.
const EXPORT_OVERHEAD: u64 = 64;
/// Most events the exporter's reader hands over at once.
const BATCH: usize = 256;
/// Most bytes (charged as for [`EXPORT_BUFFER`]) the exporter's reader
/// hands over at once.
const BATCH_BYTES: u64 = 1 << 20;
/// Route cache entries before the cache is cleared (keys come from the
/// network: bounded).
const MAX_ROUTES: usize = 1 << 16;

/// What the bridge is asked to do.
#[derive(Debug, Clone, Default)]
pub struct BridgeConfig {
    /// The bus.
    pub bus: String,
    /// Create the bus (default configuration) when it does not exist.
    pub create: bool,
    /// Patterns of local events to put on Zenoh.
    pub exports: Vec<String>,
    /// Patterns of Zenoh samples to publish into the bus.
    pub imports: Vec<String>,
    /// Zenoh endpoints to listen on (`tcp/127.0.0.1:7447`).
    pub listen: Vec<String>,
    /// Zenoh endpoints to connect to.
    pub connect: Vec<String>,
    /// A Zenoh configuration file (JSON5); `listen`/`connect` add to it.
    pub zenoh_config: Option<std::path::PathBuf>,
    /// The bridge's name (`zenoh:NAME` on the bus); default: the first 16
    /// hex digits of the Zenoh id.
    pub name: Option<String>,
    /// Put each exported event at once instead of batching (Zenoh's
    /// `express`): lower latency under light load, lower throughput.
    pub express: bool,
}

/// Why the bridge could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// A pattern, a name or an endpoint is malformed (bad usage).
    #[error("{0}")]
    Usage(String),
    /// A pattern the mapping cannot carry.
    #[error(transparent)]
    Map(#[from] MapError),
    /// The Zenoh configuration file is unreadable or invalid.
    #[error("zenoh configuration: {0}")]
    Config(String),
    /// Opening or attaching to the bus failed.
    #[error("bus `{bus}`: {source}")]
    Bus {
        /// The bus.
        bus: String,
        /// Why.
        source: BusError,
    },
    /// The bus does not exist (and `--create` was not given).
    #[error("bus `{0}` does not exist: create it with `shm-bus create {0}`, or pass --create")]
    MissingBus(String),
    /// The bus was removed while the bridge ran.
    #[error("bus `{0}` was removed")]
    BusRemoved(String),
    /// Zenoh failed (opening the session, declaring).
    #[error("zenoh: {0}")]
    Zenoh(String),
}

impl BridgeError {
    /// Whether the error is the user's input (exit code 2) rather than a
    /// runtime failure (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BridgeError::Usage(_) | BridgeError::Map(_) | BridgeError::Config(_)
        )
    }
}

fn zerr(e: impl std::fmt::Display) -> BridgeError {
    BridgeError::Zenoh(e.to_string())
}

/// The bridge's counters, shared by its threads (all `Relaxed`: they are
/// statistics, read after the threads are joined or as a snapshot).
#[derive(Debug, Default)]
pub struct Counters {
    exported: OwnLine,
    imported: OwnLine,
    unrouted: AtomicU64,
    gaps: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    filtered: AtomicU64,
    lagged: AtomicU64,
    put_failed: AtomicU64,
    publish_failed: AtomicU64,
    abandoned: AtomicU64,
    echo_suppressed: AtomicU64,
    peers: AtomicU64,
    link_downs: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// A per-event counter with one writer at a time (the putter thread;
/// the importer, under its lock), on a cache line of its own so that the
/// exporting and the importing threads do not share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct OwnLine(AtomicU64);

impl OwnLine {
    /// Adds one without a locked instruction: the caller is the only
    /// writer (see the type), readers take snapshots.
    fn add_one(&self) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Events put on Zenoh.
    pub exported: u64,
    /// Events published into the bus.
    pub imported: u64,
    /// Events lost that the bridge knows of: `gaps + rejected + lagged +
    /// put_failed + publish_failed + abandoned`.
    pub dropped: u64,
    /// Of `exported`, those put while no remote subscriber matched their
    /// key (nobody wanted them, or the peer that did was down): Zenoh
    /// stores nothing, so nobody gets them.
    pub unrouted: u64,
    /// Events missing in the export sequences that arrived (lost between
    /// the bridges, e.g. on a link that failed and came back).
    pub gaps: u64,
    /// Samples seen twice (same source, topic and export sequence), not
    /// imported again.
    pub duplicates: u64,
    /// Samples whose key is not a topic, or whose topic the bus refused
    /// (table full, too long).
    pub rejected: u64,
    /// Samples inside an import key expression that the topic language
    /// filtered out (expected: key expressions are coarser).
    pub filtered: u64,
    /// Local events overwritten before the exporter read them (Overwrite
    /// buses).
    pub lagged: u64,
    /// Puts Zenoh refused.
    pub put_failed: u64,
    /// Imports the bus refused (payload too large, …).
    pub publish_failed: u64,
    /// Samples still queued for import when the bridge stopped.
    pub abandoned: u64,
    /// Local events the exporter skipped because this bridge imported them
    /// (the loop guard), plus remote samples carrying this bridge's own
    /// source id.
    pub echo_suppressed: u64,
    /// Zenoh peers and routers connected now.
    pub peers: u64,
    /// Times the last link went down.
    pub link_downs: u64,
}

impl Stats {
    /// The counters as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "exported": self.exported,
            "imported": self.imported,
            "dropped": self.dropped,
            "unrouted": self.unrouted,
            "gaps": self.gaps,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "filtered": self.filtered,
            "lagged": self.lagged,
            "put_failed": self.put_failed,
            "publish_failed": self.publish_failed,
            "abandoned": self.abandoned,
            "echo_suppressed": self.echo_suppressed,
            "peers": self.peers,
            "link": if self.peers > 0 { "up" } else { "down" },
            "link_downs": self.link_downs,
        })
    }
}

impl Counters {
    /// A snapshot.
    pub fn stats(&self) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = Stats {
            exported: g(&self.exported.0),
            imported: g(&self.imported.0),
            unrouted: g(&self.unrouted),
            gaps: g(&self.gaps),
            duplicates: g(&self.duplicates),
            rejected: g(&self.rejected),
            filtered: g(&self.filtered),
            lagged: g(&self.lagged),
            put_failed: g(&self.put_failed),
            publish_failed: g(&self.publish_failed),
            abandoned: g(&self.abandoned),
            echo_suppressed: g(&self.echo_suppressed),
            peers: g(&self.peers),
            link_downs: g(&self.link_downs),
            dropped: 0,
        };
        s.dropped = s.gaps + s.rejected + s.lagged + s.put_failed + s.publish_failed + s.abandoned;
        s
    }
}

/// A running bridge. [`Bridge::stop`] detaches it and returns its counters.
pub struct Bridge {
    bus: Bus,
    session: Session,
    name: String,
    stop: Arc<AtomicBool>,
    failure: Arc<Mutex<Option<BridgeError>>>,
    counters: Arc<Counters>,
    threads: Vec<JoinHandle<()>>,
    /// Import subscribers (kept alive; undeclared on stop).
    subscribers: Vec<zenoh::pubsub::Subscriber<()>>,
    client_mode: bool,
    listen: Vec<String>,
}

/// The Zenoh configuration: the file if given (its mode, scouting, …),
/// else peer mode with multicast scouting off and no listening endpoint;
/// `listen` and `connect` endpoints, when given, replace the
/// configuration's either way.
///
/// # Errors
/// [`BridgeError::Config`] for an unreadable or invalid file,
/// [`BridgeError::Usage`] for a malformed endpoint.
pub fn zenoh_config(cfg: &BridgeConfig) -> Result<zenoh::Config, BridgeError> {
    let mut zc = match &cfg.zenoh_config {
        Some(path) => zenoh::Config::from_file(path)
            .map_err(|e| BridgeError::Config(format!("{}: {e}", path.display())))?,
        None => {
            // Peer mode, no multicast scouting, and no listening unless
            // asked (Zenoh's default would listen on every interface).
            let mut zc = zenoh::Config::default();
            zc.insert_json5("mode", "\"peer\"")
                .and_then(|()| zc.insert_json5("scouting/multicast/enabled", "false"))
                .and_then(|()| zc.insert_json5("listen/endpoints", "[]"))
                .map_err(|e| BridgeError::Config(e.to_string()))?;
            zc
        }
    };
    for (what, list) in [("listen", &cfg.listen), ("connect", &cfg.connect)] {
        if list.is_empty() {
            continue;
        }
        let mut endpoints = Vec::new();
        for ep in list {
            let parsed: zenoh::config::EndPoint = ep
                .parse()
                .map_err(|e| BridgeError::Usage(format!("--{what} `{ep}`: {e}")))?;
            endpoints.push(parsed.to_string());
        }
        let json =
            serde_json::to_string(&endpoints).map_err(|e| BridgeError::Config(e.to_string()))?;
        zc.insert_json5(&format!("{what}/endpoints"), &json)
            .map_err(|e| BridgeError::Usage(format!("--{what}: {e}")))?;
    }
    Ok(zc)
}

struct Patterns {
    topics: Vec<Topic>,
    keys: Vec<OwnedKeyExpr>,
}

fn patterns(list: &[String]) -> Result<Patterns, BridgeError> {
    let mut topics = Vec::new();
    let mut keys = Vec::new();
    for text in list {
        let topic = mapping::parse_pattern(text)?;
        keys.push(mapping::pattern_to_key(&topic)?);
        topics.push(topic);
    }
    Ok(Patterns { topics, keys })
}

impl Bridge {
    /// Validates the configuration, opens the bus and the Zenoh session,
    /// attaches and declares everything, and starts the threads.
    ///
    /// # Errors
    /// [`BridgeError`]: usage errors before anything is opened.
    pub fn start(cfg: &BridgeConfig) -> Result<Bridge, BridgeError> {
        // Everything the user typed is checked before anything is opened.
        let exports = patterns(&cfg.exports)?;
        let imports = patterns(&cfg.imports)?;
        if exports.topics.is_empty() && imports.topics.is_empty() {
            return Err(BridgeError::Usage(
                "nothing to bridge: give --export and/or --import patterns".into(),
            ));
        }
        if let Some(name) = &cfg.name {
            if name.is_empty() || name.len() > MAX_NAME {
                return Err(BridgeError::Usage(format!(
                    "--name must be 1 to {MAX_NAME} bytes (the bus shows `zenoh:NAME`)"
                )));
            }
        }
        let zc = zenoh_config(cfg)?;
        let client_mode = cfg.zenoh_config.is_some()
            && zc
                .get_json("mode")
                .map(|m| m.contains("client"))
                .unwrap_or(false);
        let missing =
            |e: &BusError| matches!(e, BusError::Segment(shm_bus_alloc::Error::NotFound { .. }));
        let bus = match Bus::open(&cfg.bus) {
            Ok(bus) => Ok(bus),
            // An existing bus is taken as it is; a missing one is created
            // with defaults (or opened, if another process just did).
            Err(e) if missing(&e) && cfg.create => {
                let bus = Bus::open_or_create(&cfg.bus, BusConfig::default());
                if bus.is_ok() {
                    eprintln!(
                        "shm-bus-zenoh: bus `{}` did not exist: created with defaults",
                        cfg.bus
                    );
                }
                bus
            }
            Err(e) if missing(&e) => return Err(BridgeError::MissingBus(cfg.bus.clone())),
            Err(e) => Err(e),
        }
        .map_err(|source| BridgeError::Bus {
            bus: cfg.bus.clone(),
            source,
        })?;

        let session = zenoh::open(zc).wait().map_err(zerr)?;
        let zid = session.zid();
        let id_bytes = zid.to_le_bytes();
        let mut source = 0u64;
        for chunk in id_bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            source ^= u64::from_le_bytes(w);
        }
        let name = match &cfg.name {
            Some(n) => format!("zenoh:{n}"),
            // The Zenoh id's first 16 hex digits: fits the bus's 32 bytes.
            None => format!(
                "zenoh:{}",
                zid.to_string().chars().take(16).collect::<String>()
            ),
        };
        let bus_err = |source| BridgeError::Bus {
            bus: cfg.bus.clone(),
            source,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        let counters = Arc::new(Counters::default());
        let mut threads = Vec::new();
        let mut subscribers = Vec::new();

        // The publisher first: the exporter must know its id to skip what
        // the bridge imported.
        let publisher = if imports.topics.is_empty() {
            None
        } else {
            Some(bus.publisher(&name).map_err(bus_err)?)
        };
        let own_producer = publisher.as_ref().map(|p| p.id());

        // Raised by the importer while the bus has no room for it; the
        // exporter's reader then never stops reading (see the module docs).
        let importer_waits = Arc::new(AtomicBool::new(false));

        if !exports.topics.is_empty() {
            let mut sub = bus.subscriber(&name).map_err(bus_err)?;
            for t in &exports.topics {
                sub.subscribe(t.as_str()).map_err(bus_err)?;
            }
            let (tx, rx) = std::sync::mpsc::channel::<Sent>();
            let queued = Arc::new(AtomicU64::new(0));
            let reader = Reader {
                source,
                own_producer,
                counters: counters.clone(),
                queued: queued.clone(),
                importer_waits: importer_waits.clone(),
                known: Vec::new(),
            };
            let putter = Putter {
                session: session.clone(),
                express: cfg.express,
                counters: counters.clone(),
                queued,
                topics: Vec::new(),
            };
            let (stop2, failure2, bus_name) = (stop.clone(), failure.clone(), cfg.bus.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("export-read".into())
                    .spawn(move || {
                        // Ends with `tx` dropped: the putter then drains
                        // the queue and ends.
                        if let Err(e) = reader.run(sub, tx, &stop2, &bus_name) {
                            fail(&failure2, &stop2, e);
                        }
                    })
                    .map_err(|e| BridgeError::Zenoh(format!("spawning the exporter: {e}")))?,
            );
            threads.push(
                std::thread::Builder::new()
                    .name("export-put".into())
                    .spawn(move || putter.run(rx))
                    .map_err(|e| BridgeError::Zenoh(format!("spawning the exporter: {e}")))?,
            );
        }

        if let Some(publisher) = publisher {
            // Imports run in Zenoh's callbacks: a full bus blocks the
            // link's receive task, which is the back-pressure across the
            // link (see the module docs); no queue, no thread hand-off.
            let im = Arc::new(Mutex::new(Importer {
                publisher,
                source,
                patterns: imports,
                counters: counters.clone(),
                routes: FxHashMap::default(),
                waits: importer_waits,
            }));
            for (i, key) in im
                .lock()
                .map(|g| g.patterns.keys.clone())
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                let (im, stop, failure) = (im.clone(), stop.clone(), failure.clone());
                let bus_name = cfg.bus.clone();
                let sub = session
                    .declare_subscriber(key)
                    .allowed_origin(Locality::Remote)
                    .callback(move |sample| {
                        // One lock holder at a time (the callbacks of one
                        // link run in turn); poisoned only by a panic,
                        // after which the state is still consistent
                        // (counters and caches).
                        let mut im = im.lock().unwrap_or_else(|e| e.into_inner());
                        if stop.load(Ordering::Relaxed) {
                            bump(&im.counters.abandoned, 1);
                            return;
                        }
                        if let Err(e) = im.import(i, &sample, &stop, &bus_name) {
                            fail(&failure, &stop, e);
                        }
                    })
                    .wait()
                    .map_err(zerr)?;
                subscribers.push(sub);
            }
        }

        let bridge = Bridge {
            bus,
            session,
            name,
            stop,
            failure,
            counters,
            threads,
            subscribers,
            client_mode,
            listen: cfg.listen.clone(),
        };
        bridge.poll_link();
        Ok(bridge)
    }

    /// `zenoh:NAME`: the bridge's producer and subscriber on the bus.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Zenoh session's id.
    pub fn zid(&self) -> String {
        self.session.zid().to_string()
    }

    /// The endpoints it listens on (as configured).
    pub fn listen(&self) -> &[String] {
        &self.listen
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.counters.stats()
    }

    /// Reads how many peers (and routers) are connected; returns the
    /// previous and the current count. Call it now and then: it keeps the
    /// `peers` and `link_downs` counters.
    pub fn poll_link(&self) -> (u64, u64) {
        let info = self.session.info();
        let mut n = info.peers_zid().wait().count() as u64;
        if self.client_mode || n == 0 {
            n += info.routers_zid().wait().count() as u64;
        }
        let before = self.counters.peers.swap(n, Ordering::Relaxed);
        if before > 0 && n == 0 {
            bump(&self.counters.link_downs, 1);
        }
        (before, n)
    }

    /// Whether the bridge has failed: a thread met an error, or the bus
    /// was removed (checked here too, so that an idle bridge notices);
    /// the threads stop then, and [`stop`](Self::stop) returns the error.
    pub fn failed(&self) -> bool {
        if self.bus.is_removed() {
            fail(
                &self.failure,
                &self.stop,
                BridgeError::BusRemoved(self.bus.name().to_owned()),
            );
        }
        self.stop.load(Ordering::Relaxed)
    }

    /// Stops the threads, detaches from the bus, closes the session, and
    /// returns the final counters, or the error that stopped it early.
    ///
    /// # Errors
    /// The first error a thread met.
    pub fn stop(mut self) -> Result<Stats, BridgeError> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Import callbacks see `stop` and return at once from here on
        // (counting what still arrives as abandoned).
        for sub in self.subscribers.drain(..) {
            let _ = sub.undeclare().wait();
        }
        self.poll_link();
        let _ = self.session.close().wait();
        let failure = self.failure.lock().map(|mut f| f.take()).unwrap_or(None);
        match failure {
            Some(e) => Err(e),
            None => Ok(self.counters.stats()),
        }
    }
}

fn fail(failure: &Mutex<Option<BridgeError>>, stop: &AtomicBool, e: BridgeError) {
    if let Ok(mut f) = failure.lock() {
        f.get_or_insert(e);
    }
    stop.store(true, Ordering::Relaxed);
}

/// A local event on its way to Zenoh.
struct Pending {
    id: TopicId,
    /// The topic's text, the first time the reader sees it.
    topic: Option<Box<str>>,
    /// Where its payload ends in its batch's bytes (it starts where the
    /// previous event's ends).
    end: usize,
    meta: Meta,
}

/// Events the reader is gathering for the putter: their payloads back to
/// back in one buffer, so that a batch costs one allocation, not one per
/// event.
#[derive(Default)]
struct Batch {
    events: Vec<Pending>,
    bytes: Vec<u8>,
    /// What the batch is charged against [`EXPORT_BUFFER`].
    cost: u64,
}

/// A batch handed to the putter: each event's payload is a slice of
/// `bytes` (shared, not copied, until Zenoh encodes it).
struct Sent {
    events: Vec<Pending>,
    bytes: Bytes,
    cost: u64,
}

/// Reads the export subscriber, skips what this bridge imported, queues
/// the rest for the [`Putter`].
struct Reader {
    source: u64,
    own_producer: Option<u32>,
    counters: Arc<Counters>,
    /// Bytes queued for the putter.
    queued: Arc<AtomicU64>,
    importer_waits: Arc<AtomicBool>,
    /// Topics already announced to the putter, by `TopicId` index.
    known: Vec<bool>,
}

impl Reader {
    fn run(
        mut self,
        mut sub: shm_bus_core::Subscriber,
        tx: Sender<Sent>,
        stop: &AtomicBool,
        bus: &str,
    ) -> Result<(), BridgeError> {
        let bus_handle = sub.bus().clone();
        let queued = self.queued.clone();
        let send = |batch: &mut Batch| {
            // The next batch starts with room for one like this one.
            let next = Batch {
                events: Vec::with_capacity(batch.events.len()),
                bytes: Vec::with_capacity(batch.bytes.len()),
                cost: 0,
            };
            let Batch {
                mut events,
                bytes,
                cost,
            } = std::mem::replace(batch, next);
            stamps_to_wall(&bus_handle, &mut events);
            // Relaxed: a budget (see below); the putter takes it back
            // when the batch is put.
            queued.fetch_add(cost, Ordering::Relaxed);
            tx.send(Sent {
                events,
                bytes: Bytes::from(bytes),
                cost,
            })
            .is_ok()
        };
        let mut batch = Batch::default();
        while !stop.load(Ordering::Relaxed) {
            // Relaxed (both): a budget and a hint; a stale read only delays
            // or hastens the next read by one round.
            if self.queued.load(Ordering::Relaxed) + batch.cost > EXPORT_BUFFER
                && !self.importer_waits.load(Ordering::Relaxed)
            {
                // Zenoh is slower than the producers: stop reading, so
                // the bus holds them back (what is batched goes first).
                if !batch.events.is_empty() && !send(&mut batch) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            // What is ready goes to the putter in one batch (one hand-off,
            // not one per event); then wait for more.
            if batch.events.len() >= BATCH || batch.cost >= BATCH_BYTES {
                if !send(&mut batch) {
                    return Ok(());
                }
                continue;
            }
            if batch.events.is_empty() {
                match sub.recv_timeout(POLL) {
                    Ok(sample) => self.take(sample, &mut batch),
                    Err(e) => self.failed(e, bus)?,
                }
            } else {
                match sub.try_recv() {
                    Ok(sample) => self.take(sample, &mut batch),
                    Err(RecvError::Empty) => {
                        if !send(&mut batch) {
                            return Ok(());
                        }
                    }
                    Err(e) => self.failed(e, bus)?,
                }
            }
        }
        if !batch.events.is_empty() {
            send(&mut batch);
        }
        Ok(())
    }

    /// Queues one sample for the putter, unless this bridge imported it.
    fn take(&mut self, sample: shm_bus_core::Sample<'_>, batch: &mut Batch) {
        if Some(sample.producer()) == self.own_producer {
            bump(&self.counters.echo_suppressed, 1);
            return;
        }
        let id = sample.topic_id();
        let i = id.index();
        if i >= self.known.len() {
            self.known.resize(i + 1, false);
        }
        let topic = (!self.known[i]).then(|| Box::from(sample.topic()));
        self.known[i] = true;
        let payload = sample.payload();
        batch.bytes.extend_from_slice(payload);
        batch.cost += payload.len() as u64 + EXPORT_OVERHEAD;
        let meta = Meta {
            source: self.source,
            export_seq: 0,
            producer: sample.producer(),
            producer_seq: sample.sequence(),
            // The raw stamp for now: `stamps_to_wall` converts a batch
            // with two clock readings instead of one per event.
            timestamp_ns: sample.stamp(),
        };
        batch.events.push(Pending {
            id,
            topic,
            end: batch.bytes.len(),
            meta,
        });
    }

    /// A receive error: counted and gone on from (`Ok`), or the end.
    fn failed(&self, e: RecvError, bus: &str) -> Result<(), BridgeError> {
        match e {
            RecvError::Lagged(n) => bump(&self.counters.lagged, n),
            RecvError::BusRemoved => return Err(BridgeError::BusRemoved(bus.into())),
            RecvError::Timeout | RecvError::Empty => {}
            e => eprintln!("shm-bus-zenoh: export: {e}"),
        }
        Ok(())
    }
}

/// Converts the batch's raw record stamps (`Sample::stamp`) to ns since
/// the epoch: the first and the last through the bus's conversion, the
/// others interpolated between them (stamps grow with time within a
/// producer; across producers they share one clock).
fn stamps_to_wall(bus: &Bus, batch: &mut [Pending]) {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return;
    };
    let (t0, t1) = (first.meta.timestamp_ns, last.meta.timestamp_ns);
    let (w0, w1) = (bus.stamp_to_wall_ns(t0), bus.stamp_to_wall_ns(t1));
    let rate = if t1 > t0 && w1 > w0 {
        (w1 - w0) as f64 / (t1 - t0) as f64
    } else {
        0.0
    };
    for p in batch.iter_mut() {
        let t = p.meta.timestamp_ns;
        p.meta.timestamp_ns = if t == t0 {
            w0
        } else if t == t1 {
            w1
        } else if rate == 0.0 {
            bus.stamp_to_wall_ns(t)
        } else if t >= t0 {
            w0 + ((t - t0) as f64 * rate) as u64
        } else {
            w0.saturating_sub(((t0 - t) as f64 * rate) as u64)
        };
    }
}

/// One exported topic.
struct ExportTopic {
    publisher: zenoh::pubsub::Publisher<'static>,
    seq: u64,
    matching: Arc<AtomicBool>,
}

/// Puts what the [`Reader`] queued, in its order, one Zenoh publisher per
/// topic.
struct Putter {
    session: Session,
    express: bool,
    counters: Arc<Counters>,
    queued: Arc<AtomicU64>,
    /// By `TopicId` index: `None` until declared.
    topics: Vec<Option<ExportTopic>>,
}

impl Putter {
    /// Until the reader is gone and the queue is empty: what the reader
    /// took off the bus is put even when stopping.
    fn run(mut self, rx: Receiver<Sent>) {
        // Topic texts by `TopicId` index, as the reader announced them.
        let mut names: Vec<Option<Box<str>>> = Vec::new();
        while let Ok(batch) = rx.recv() {
            let mut start = 0;
            for p in batch.events {
                let i = p.id.index();
                if let Some(t) = p.topic {
                    if i >= names.len() {
                        names.resize(i + 1, None);
                    }
                    names[i] = Some(t);
                }
                let payload = batch.bytes.slice(start..p.end);
                start = p.end;
                self.export(p.id, &names, payload, p.meta);
            }
            // Relaxed: a budget (see `Reader::run`).
            self.queued.fetch_sub(batch.cost, Ordering::Relaxed);
        }
    }

    fn declare(&self, topic: &str) -> Result<ExportTopic, BridgeError> {
        let parsed = Topic::parse(topic).map_err(|source| MapError::InvalidTopic {
            text: topic.into(),
            source,
        })?;
        let key = mapping::topic_to_key(&parsed)?;
        let publisher = self
            .session
            .declare_publisher(key)
            .congestion_control(CongestionControl::Block)
            .express(self.express)
            .allowed_destination(Locality::Remote)
            .wait()
            .map_err(zerr)?;
        let matching = Arc::new(AtomicBool::new(false));
        let flag = matching.clone();
        publisher
            .matching_listener()
            .callback(move |status| flag.store(status.matching(), Ordering::Relaxed))
            .background()
            .wait()
            .map_err(zerr)?;
        if let Ok(status) = publisher.matching_status().wait() {
            matching.store(status.matching(), Ordering::Relaxed);
        }
        Ok(ExportTopic {
            publisher,
            seq: 0,
            matching,
        })
    }

    fn export(&mut self, id: TopicId, names: &[Option<Box<str>>], payload: Bytes, mut meta: Meta) {
        let i = id.index();
        let topic = || names.get(i).and_then(|n| n.as_deref()).unwrap_or_default();
        if i >= self.topics.len() {
            self.topics.resize_with(i + 1, || None);
        }
        if self.topics[i].is_none() {
            match self.declare(topic()) {
                Ok(t) => self.topics[i] = Some(t),
                // Every exact topic maps (see `mapping`); a Zenoh failure
                // here is counted, reported, and retried on the next event.
                Err(e) => {
                    bump(&self.counters.put_failed, 1);
                    eprintln!("shm-bus-zenoh: export of `{}`: {e}", topic());
                    return;
                }
            }
        }
        let Some(t) = self.topics[i].as_mut() else {
            return;
        };
        meta.export_seq = t.seq;
        t.seq += 1;
        // Relaxed: set by Zenoh's matching listener, which runs a little
        // after the routing tables change; when it says "nobody", ask the
        // tables themselves (off the fast path: only while unrouted).
        if !t.matching.load(Ordering::Relaxed) {
            let now = t
                .publisher
                .matching_status()
                .wait()
                .map(|m| m.matching())
                .unwrap_or(false);
            if now {
                t.matching.store(true, Ordering::Relaxed);
            } else {
                bump(&self.counters.unrouted, 1);
            }
        }
        let res = t
            .publisher
            .put(ZBytes::from(payload))
            .attachment(ZBytes::from(meta.encode()))
            .wait();
        match res {
            Ok(()) => self.counters.exported.add_one(),
            Err(e) => {
                bump(&self.counters.put_failed, 1);
                eprintln!("shm-bus-zenoh: put on `{}`: {e}", topic());
            }
        }
    }
}

/// Where samples of one key go.
struct Route {
    /// The import subscriber whose samples of this key count: the first
    /// whose key expression includes the key (others get copies).
    owner: usize,
    kind: RouteKind,
}

enum RouteKind {
    /// Into the bus as this topic; next export sequence expected per
    /// source.
    Import {
        topic: TopicId,
        /// (source, next export sequence expected).
        next: Vec<(u64, u64)>,
    },
    /// Not wanted by the import patterns (precise filter).
    Filtered,
    /// Not a topic, or refused by the bus.
    Reject,
}

struct Importer {
    publisher: Publisher,
    source: u64,
    patterns: Patterns,
    counters: Arc<Counters>,
    routes: FxHashMap<Box<str>, Route>,
    /// Raised while the bus has no room for an import.
    waits: Arc<AtomicBool>,
}

/// What the importer does with one sample of an import route.
enum Verdict {
    Import(TopicId),
    Skip,
}

impl Importer {
    /// Routes the sample of `key` from import subscriber `from` and checks
    /// its sequence: import it (as which topic), or skip it (counted).
    fn judge(&mut self, from: usize, key: &str, attachment: Option<&[u8]>) -> Verdict {
        // One FxHash lookup of a short key per sample once the key is known.
        if let Some(route) = self.routes.get_mut(key) {
            return Self::verdict(route, from, self.source, &self.counters, attachment);
        }
        if self.routes.len() >= MAX_ROUTES {
            self.routes.clear();
        }
        let route = self.route(key);
        let route = self.routes.entry(key.into()).or_insert(route);
        Self::verdict(route, from, self.source, &self.counters, attachment)
    }

    /// [`judge`](Self::judge) once the key's route is known.
    fn verdict(
        route: &mut Route,
        from: usize,
        source: u64,
        c: &Counters,
        attachment: Option<&[u8]>,
    ) -> Verdict {
        if route.owner != from {
            // Another import subscriber's key expression includes this key
            // too and takes it: one copy only.
            return Verdict::Skip;
        }
        match &mut route.kind {
            RouteKind::Import { topic, next } => {
                match Meta::decode(attachment) {
                    Ok(meta) => {
                        if meta.source == source {
                            bump(&c.echo_suppressed, 1);
                            return Verdict::Skip;
                        }
                        // Few sources per key: a short list.
                        let at = match next.iter().position(|(s, _)| *s == meta.source) {
                            Some(at) => at,
                            None => {
                                next.push((meta.source, meta.export_seq));
                                next.len() - 1
                            }
                        };
                        let expected = &mut next[at].1;
                        if meta.export_seq < *expected {
                            bump(&c.duplicates, 1);
                            return Verdict::Skip;
                        }
                        if meta.export_seq > *expected {
                            bump(&c.gaps, meta.export_seq - *expected);
                        }
                        *expected = meta.export_seq + 1;
                    }
                    // A plain Zenoh publisher (not a bridge): imported as
                    // is, without sequence checks.
                    Err(MetaError::Missing | MetaError::Foreign { .. }) => {}
                }
                Verdict::Import(*topic)
            }
            RouteKind::Filtered => {
                bump(&c.filtered, 1);
                Verdict::Skip
            }
            RouteKind::Reject => {
                bump(&c.rejected, 1);
                Verdict::Skip
            }
        }
    }

    fn route(&mut self, key: &str) -> Route {
        let owner = zenoh::key_expr::keyexpr::new(key)
            .ok()
            .and_then(|ke| self.patterns.keys.iter().position(|k| k.includes(ke)))
            .unwrap_or(0);
        let kind = match mapping::key_to_topic(key) {
            Err(e) => {
                eprintln!("shm-bus-zenoh: import: {e}");
                RouteKind::Reject
            }
            Ok(topic) if !self.patterns.topics.iter().any(|p| p.matches(&topic)) => {
                RouteKind::Filtered
            }
            Ok(topic) => match self.publisher.topic_id(topic.as_str()) {
                Ok(id) => RouteKind::Import {
                    topic: id,
                    next: Vec::new(),
                },
                Err(e) => {
                    eprintln!("shm-bus-zenoh: import of `{topic}`: {e}");
                    RouteKind::Reject
                }
            },
        };
        Route { owner, kind }
    }

    fn import(
        &mut self,
        from: usize,
        sample: &Sample,
        stop: &AtomicBool,
        bus: &str,
    ) -> Result<(), BridgeError> {
        let attachment = sample.attachment().map(|a| a.to_bytes());
        let Verdict::Import(topic) =
            self.judge(from, sample.key_expr().as_str(), attachment.as_deref())
        else {
            return Ok(());
        };
        let payload = sample.payload().to_bytes();
        let res = self.publish(topic, &payload, stop, bus);
        // Relaxed: a hint for the exporter's reader (see the module docs).
        // Stored only when it changes: the reader polls this line.
        if self.waits.load(Ordering::Relaxed) {
            self.waits.store(false, Ordering::Relaxed);
        }
        res
    }

    fn publish(
        &mut self,
        topic: TopicId,
        payload: &[u8],
        stop: &AtomicBool,
        bus: &str,
    ) -> Result<(), BridgeError> {
        let c = &*self.counters;
        let mut first = true;
        loop {
            let res = if first {
                // No clock reading on the common path.
                self.publisher.try_publish(&topic, payload)
            } else {
                self.publisher.publish_timeout(&topic, payload, POLL)
            };
            match res {
                Ok(_) => {
                    c.imported.add_one();
                    return Ok(());
                }
                Err(PublishError::Full) => {
                    // The bus's readers are behind (Block policy): wait,
                    // and tell the exporter's reader to keep reading (it
                    // may be one of them).
                    self.waits.store(true, Ordering::Relaxed);
                    first = false;
                    if stop.load(Ordering::Relaxed) {
                        bump(&c.abandoned, 1);
                        return Ok(());
                    }
                }
                Err(PublishError::BusRemoved) => {
                    return Err(BridgeError::BusRemoved(bus.into()));
                }
                Err(e) => {
                    bump(&c.publish_failed, 1);
                    eprintln!("shm-bus-zenoh: import into `{bus}`: {e}");
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Bus::remove(&self.0);
        }
    }

    fn importer(tag: &str, patterns: &[&str]) -> (Importer, Gone) {
        let name = format!("zb-unit-{tag}-{}", std::process::id());
        let _ = Bus::remove(&name);
        let bus = Bus::create(&name, BusConfig::default()).unwrap();
        let gone = Gone(name);
        let list: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        let im = Importer {
            publisher: bus.publisher("zenoh:unit").unwrap(),
            source: 1,
            patterns: super::patterns(&list).unwrap(),
            counters: Arc::new(Counters::default()),
            routes: FxHashMap::default(),
            waits: Arc::new(AtomicBool::new(false)),
        };
        (im, gone)
    }

    fn meta(source: u64, export_seq: u64) -> [u8; crate::meta::META_LEN] {
        Meta {
            source,
            export_seq,
            producer: 0,
            producer_seq: export_seq,
            timestamp_ns: 1,
        }
        .encode()
    }

    fn imports(v: &Verdict) -> bool {
        matches!(v, Verdict::Import(_))
    }

    #[test]
    fn batch_timestamps_match_the_bus_conversion() {
        let (im, _g) = importer("stamps", &["**"]);
        let bus = im.publisher.bus().clone();
        let mut batch = Vec::new();
        let mut want = Vec::new();
        for i in 0..50u64 {
            let t = shm_bus_core::clock::ticks();
            want.push(bus.stamp_to_wall_ns(t));
            batch.push(Pending {
                id: TopicId(0),
                topic: None,
                end: 0,
                meta: Meta {
                    source: 0,
                    export_seq: i,
                    producer: 0,
                    producer_seq: i,
                    timestamp_ns: t,
                },
            });
            std::thread::sleep(Duration::from_micros(200));
        }
        stamps_to_wall(&bus, &mut batch);
        for (p, w) in batch.iter().zip(&want) {
            let got = p.meta.timestamp_ns;
            assert!(got.abs_diff(*w) < 1_000_000, "{got} vs {w}");
        }
        assert!(
            batch
                .windows(2)
                .all(|w| w[0].meta.timestamp_ns <= w[1].meta.timestamp_ns)
        );
    }

    #[test]
    fn sequences_count_gaps_duplicates_and_echoes() {
        let (mut im, _g) = importer("seq", &["md.**"]);
        let key = "md/x";
        // Source 7: 0, 1, then 4 (2 and 3 lost), 4 again (duplicate), 5.
        for (seq, want) in [(0, true), (1, true), (4, true), (4, false), (5, true)] {
            let m = meta(7, seq);
            assert_eq!(imports(&im.judge(0, key, Some(&m))), want, "seq {seq}");
        }
        // Another source on the same key starts where it starts.
        assert!(imports(&im.judge(0, key, Some(&meta(8, 100)))));
        assert!(imports(&im.judge(0, key, Some(&meta(8, 101)))));
        // Our own source id: never imported.
        assert!(!imports(&im.judge(0, key, Some(&meta(1, 0)))));
        // No attachment: a plain Zenoh publisher, imported.
        assert!(imports(&im.judge(0, key, None)));
        let s = im.counters.stats();
        assert_eq!(
            (s.gaps, s.duplicates, s.echo_suppressed),
            (2, 1, 1),
            "{s:?}"
        );
        assert_eq!(s.dropped, 2);
    }

    #[test]
    fn overlapping_import_keys_take_one_copy_and_filter_precisely() {
        // `md/*/**` includes `md/*/*`: samples of md/a/b reach both Zenoh
        // subscribers; only the first takes them.
        let (mut im, _g) = importer("overlap", &["md./^X/.**", "md.{v}.{s}"]);
        assert!(imports(&im.judge(0, "md/XA/b", None)));
        assert!(!imports(&im.judge(1, "md/XA/b", None)));
        // md/YA/b: inside `md/*/**`, but only the second pattern matches;
        // still one copy, taken from subscriber 0's delivery.
        assert!(imports(&im.judge(0, "md/YA/b", None)));
        assert!(!imports(&im.judge(1, "md/YA/b", None)));
        // md/YA/b/c: inside `md/*/**` only, matched by neither pattern.
        assert!(!imports(&im.judge(0, "md/YA/b/c", None)));
        // Not a topic.
        assert!(!imports(&im.judge(0, "md/a.b/c", None)));
        let s = im.counters.stats();
        assert_eq!((s.filtered, s.rejected), (1, 1), "{s:?}");
    }
}
