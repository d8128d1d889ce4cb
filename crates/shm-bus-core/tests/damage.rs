//! Systematic damage sweep: every 8-byte management word of a small, used
//! bus is set, one at a time, to `0`, to all ones, to a pseudo-random
//! value (fixed-seed xorshift), and to near misses of its own value
//! (`+64`, `-1`, low half all ones: plausible values that pass coarse
//! checks and reach arithmetic), and then the bus is used: a fresh
//! `Bus::open`, `info()`, `topics()`, a new publisher and subscriber, the
//! old subscribers and publisher, `reap()`. Any `Err` is a fine answer; a
//! panic, a hang or a signal is a failure.
//!
//! Regions swept (offsets found through public APIs and the bus header,
//! root 0, read through the segment file):
//! - the segment header (first 4096 bytes),
//! - the arena control block,
//! - the bus header, the topic records, the topic `ByteMap` (header and
//!   slots), the producer slots, the subscriber slots, the cursor table,
//! - the first 512 bytes of each ring.
//!
//! Each case runs on a fresh bus (unique name, removed by a drop guard).
//! Every operation runs under its own `catch_unwind` (so a panicking
//! operation does not drop the handles while unwinding, which could turn a
//! second panic in a `Drop` into an abort); the panic hook is silenced
//! during the sweep and records message and location instead. A watchdog
//! thread prints the case and aborts the process if one case takes longer
//! than [`CASE_DEADLINE`]; a fatal signal prints the case before the
//! process dies.
//!
//! Damaging the segment's `init_state` word to 0 (Uninit) makes
//! `Bus::open` wait its full open timeout (`DEFAULT_OPEN_TIMEOUT`, 3 s)
//! before answering `CreatorDied`; `Bus` has no way to shorten it, so that
//! one case costs 3 s and the deadline allows for it.
#![cfg(not(loom))]

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shm_bus_alloc::{HEADER_SIZE, Segment};
use shm_bus_core::{Bus, BusConfig, MIN_RING_BYTES};

/// A case taking longer than this is a hang.
const CASE_DEADLINE: Duration = Duration::from_secs(12);
/// Bounded number of `try_recv` calls per subscriber.
const RECV_TRIES: usize = 16;

const TOPICS: [&str; 3] = ["md.XNAS.AAPL", "md.XNAS.MSFT", "news.flash"];

// ------------------------------------------------------------------ layout
//
// Sizes of the bus's tables (crates/shm-bus-core/src/layout.rs): the
// offsets come from the bus header, the sizes from these and the config.

/// `BusHeader`: 256 bytes.
const BUS_HEADER_BYTES: u64 = 256;
/// `TopicRecord`: 32 bytes.
const TOPIC_RECORD_BYTES: u64 = 32;
/// `ProducerSlot`: 192 bytes + 64 checkpoints.
const PRODUCER_SLOT_BYTES: u64 = 192 + 64 * 8;
/// `SubscriberSlot`: 128 bytes.
const SUBSCRIBER_SLOT_BYTES: u64 = 128;
/// Bus header fields (byte offsets in `BusHeader`).
const BH_RING_BYTES: u64 = 8;
const BH_TOPICS: u64 = 32;
const BH_TOPIC_MAP: u64 = 40;
const BH_PRODUCERS: u64 = 64;
const BH_SUBSCRIBERS: u64 = 72;
const BH_CURSORS: u64 = 80;
const BH_CURSOR_STRIDE: u64 = 88;
const BH_RINGS: u64 = 96;
/// `ByteMap`: 64-byte header (capacity at +8), then 32-byte slots.
const MAP_HEADER_BYTES: u64 = 64;
const MAP_SLOT_BYTES: u64 = 32;
/// Arena control block (shm-bus-alloc's crate docs).
const ARENA_CONTROL_BYTES: u64 = 3632;
/// Bytes of each ring swept.
const RING_PREFIX: u64 = 512;

fn config() -> BusConfig {
    BusConfig::default()
        .with_ring_bytes(MIN_RING_BYTES)
        .with_max_topics(8)
        .with_max_producers(2)
        .with_max_subscribers(2)
}

// ------------------------------------------------------------- harness

/// A unique bus name, removed on drop (also on panic).
struct BusName(String);
impl BusName {
    fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "dmg-{}-{}",
            std::process::id(),
            // Relaxed: only uniqueness matters (fetch_add is atomic).
            N.fetch_add(1, Ordering::Relaxed)
        );
        let _ = Bus::remove(&name);
        BusName(name)
    }
    fn file(&self) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/shm/shm-bus.{}", self.0))
            .expect("open the segment's file")
    }
}
impl Drop for BusName {
    fn drop(&mut self) {
        let _ = Bus::remove(&self.0);
    }
}

fn read_word(f: &File, off: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).expect("read word");
    u64::from_le_bytes(b)
}

/// Writes through the file: the kernel stores into the same page-cache
/// pages every mapping of the object sees (no Rust reference is involved).
fn write_word(f: &File, off: u64, v: u64) {
    f.write_all_at(&v.to_le_bytes(), off).expect("write word");
}

/// A region of the segment: its name and its word offsets.
struct Region {
    name: String,
    start: u64,
    len: u64,
}

/// The used bus every case starts from, and its handles.
struct Scene {
    bus: Bus,
    publisher: shm_bus_core::Publisher,
    reader: shm_bus_core::Subscriber,
    pending: shm_bus_core::Subscriber,
}

/// A bus where a publisher has published on three topics, a `**`
/// subscriber has received some records and a second one has data
/// pending.
fn scene(name: &str) -> Scene {
    let bus = Bus::create(name, config()).expect("create");
    let mut reader = bus.subscriber("reader").expect("subscriber");
    reader.subscribe("**").expect("subscribe");
    let mut pending = bus.subscriber("pending").expect("subscriber");
    pending.subscribe("md.**").expect("subscribe");
    let mut publisher = bus.publisher("feed").expect("publisher");
    for i in 0..6u8 {
        publisher
            .try_publish(TOPICS[i as usize % 3], &[i; 24])
            .expect("publish");
    }
    for _ in 0..3 {
        reader.try_recv().expect("receive");
    }
    Scene {
        bus,
        publisher,
        reader,
        pending,
    }
}

/// Where everything is, read from a pristine scene.
fn regions() -> Vec<Region> {
    let name = BusName::new();
    let _scene = scene(&name.0);
    let seg = Segment::open(&name.0).expect("open segment");
    let (arena_start, _) = seg.arena_range();
    let hdr = seg.root::<u8>(0).expect("bus header root").get();
    let f = name.file();
    let w = |field: u64| read_word(&f, hdr + field);
    let cfg = config();
    let (np, ns) = (cfg.max_producers as u64, cfg.max_subscribers as u64);
    let map = w(BH_TOPIC_MAP);
    let map_cap = read_word(&f, map + 8);
    assert!(map_cap <= 1 << 16, "implausible map capacity {map_cap}");
    let ring_bytes = w(BH_RING_BYTES);
    let mut r = vec![
        Region {
            name: "segment header".into(),
            start: 0,
            len: HEADER_SIZE,
        },
        Region {
            name: "arena control".into(),
            start: arena_start,
            len: ARENA_CONTROL_BYTES,
        },
        Region {
            name: "bus header".into(),
            start: hdr,
            len: BUS_HEADER_BYTES,
        },
        Region {
            name: "topic records".into(),
            start: w(BH_TOPICS),
            len: cfg.max_topics as u64 * TOPIC_RECORD_BYTES,
        },
        Region {
            name: "topic map".into(),
            start: map,
            len: MAP_HEADER_BYTES + map_cap * MAP_SLOT_BYTES,
        },
        Region {
            name: "producer slots".into(),
            start: w(BH_PRODUCERS),
            len: np * PRODUCER_SLOT_BYTES,
        },
        Region {
            name: "subscriber slots".into(),
            start: w(BH_SUBSCRIBERS),
            len: ns * SUBSCRIBER_SLOT_BYTES,
        },
        Region {
            name: "cursors".into(),
            start: w(BH_CURSORS),
            len: ns * w(BH_CURSOR_STRIDE) * 8,
        },
    ];
    for p in 0..np {
        r.push(Region {
            name: format!("ring {p}"),
            start: w(BH_RINGS) + p * ring_bytes,
            len: RING_PREFIX.min(ring_bytes),
        });
    }
    for reg in &r {
        assert!(
            reg.start % 8 == 0 && reg.len % 8 == 0 && reg.start + reg.len <= seg.size(),
            "region {} at {:#x}+{} is not inside the segment",
            reg.name,
            reg.start,
            reg.len
        );
    }
    r
}

/// One recorded panic.
struct Found {
    case: String,
    op: &'static str,
    message: String,
    location: String,
}

/// The last panic's message and location, recorded by the silent hook.
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

fn install_recording_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "<non-string payload>".into());
        let loc = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|p| p.into_inner()) = Some((msg, loc));
    }));
}

/// The case being run, for the watchdog and the signal handler. Bytes in
/// atomics so the signal handler may read them (async-signal-safe). All
/// accesses to these statics are Relaxed: they only feed a diagnostic
/// message and a timeout, nothing is published through them, and a stale
/// or torn value at worst prints a neighbouring case's text or delays the
/// watchdog by one poll.
static CASE_TEXT: [AtomicU8; 160] = [const { AtomicU8::new(0) }; 160];
static CASE_LEN: AtomicUsize = AtomicUsize::new(0);
/// Milliseconds since `EPOCH` when the current case started (0 = none).
static CASE_STARTED_MS: AtomicU64 = AtomicU64::new(0);
static SWEEP_DONE: AtomicBool = AtomicBool::new(false);

fn set_case(text: &str) {
    let b = text.as_bytes();
    let n = b.len().min(CASE_TEXT.len());
    for (slot, &byte) in CASE_TEXT.iter().zip(&b[..n]) {
        // Relaxed: read by the watchdog and signal handler for a message
        // only; a torn text is harmless.
        slot.store(byte, Ordering::Relaxed);
    }
    CASE_LEN.store(n, Ordering::Relaxed);
}

fn case_text() -> String {
    let n = CASE_LEN.load(Ordering::Relaxed);
    let bytes: Vec<u8> = CASE_TEXT[..n]
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    let mut buf = [0u8; 224];
    let head = b"\ndamage sweep: fatal signal during case: ";
    buf[..head.len()].copy_from_slice(head);
    let mut n = head.len();
    let len = CASE_LEN.load(Ordering::Relaxed);
    for b in CASE_TEXT.iter().take(len) {
        if n < buf.len() - 1 {
            buf[n] = b.load(Ordering::Relaxed);
            n += 1;
        }
    }
    buf[n] = b'\n';
    n += 1;
    // SAFETY: write(2), signal(2) and raise(3) are async-signal-safe
    // (signal-safety(7)); `buf` is a live local buffer of at least `n`
    // bytes. Restoring the default action and re-raising makes the
    // process die of the same signal.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

fn install_signal_reporter() {
    for sig in [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGABRT,
    ] {
        // SAFETY: signal(2) with a handler that only performs
        // async-signal-safe operations (see `on_fatal_signal`).
        unsafe {
            libc::signal(sig, on_fatal_signal as *const () as libc::sighandler_t);
        }
    }
}

fn start_watchdog(epoch: Instant) {
    std::thread::spawn(move || {
        while !SWEEP_DONE.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            let started = CASE_STARTED_MS.load(Ordering::Relaxed);
            let now = epoch.elapsed().as_millis() as u64;
            if started != 0 && now.saturating_sub(started) > CASE_DEADLINE.as_millis() as u64 {
                eprintln!(
                    "damage sweep: watchdog: case `{}` hangs (> {CASE_DEADLINE:?}); aborting",
                    case_text()
                );
                std::process::abort();
            }
        }
    });
}

/// Runs one operation; records a panic with its message and location.
fn op(found: &mut Vec<Found>, case: &str, name: &'static str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        let (message, location) = LAST_PANIC
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        found.push(Found {
            case: case.to_owned(),
            op: name,
            message,
            location,
        });
    }
}

/// The word's value in a pristine scene.
fn pristine_word(off: u64) -> u64 {
    let name = BusName::new();
    let _scene = scene(&name.0);
    read_word(&name.file(), off)
}

/// Damages word `off` with `value` on a fresh scene and uses the bus.
fn run_case(found: &mut Vec<Found>, case: &str, off: u64, value: u64) {
    let name = BusName::new();
    let Scene {
        bus,
        mut publisher,
        mut reader,
        mut pending,
    } = scene(&name.0);
    write_word(&name.file(), off, value);

    let mut fresh = None;
    op(found, case, "Bus::open", || fresh = Bus::open(&name.0).ok());
    if let Some(fresh) = &fresh {
        op(found, case, "info (fresh)", || {
            let _ = fresh.info();
        });
        op(found, case, "topics (fresh)", || {
            if let Ok(t) = fresh.topics() {
                let _ = t.entries();
            }
        });
        let mut p = None;
        op(found, case, "publisher (new)", || {
            p = fresh.publisher("late-feed").ok();
        });
        if let Some(p) = &mut p {
            op(found, case, "try_publish (new)", || {
                let _ = p.try_publish("md.XNAS.AAPL", b"after damage");
                let _ = p.try_publish("brand.new.topic", b"x");
            });
        }
        let mut s = None;
        op(found, case, "subscriber (new)", || {
            s = fresh.subscriber("late-reader").ok();
        });
        if let Some(s) = &mut s {
            op(found, case, "try_recv (new)", || {
                let _ = s.subscribe("**");
                for _ in 0..RECV_TRIES {
                    if let Ok(sample) = s.try_recv() {
                        let _ = (sample.topic().len(), sample.payload().len());
                    }
                }
            });
        }
        op(found, case, "drop new handles", || drop((p, s)));
    }
    op(found, case, "try_recv (old reader)", || {
        for _ in 0..RECV_TRIES {
            if let Ok(sample) = reader.try_recv() {
                let _ = (sample.topic().len(), sample.payload().len());
            }
        }
    });
    op(found, case, "try_recv (old pending)", || {
        for _ in 0..RECV_TRIES {
            if let Ok(sample) = pending.try_recv() {
                let _ = (sample.topic().len(), sample.payload().len());
            }
        }
    });
    op(found, case, "try_publish (old)", || {
        let _ = publisher.try_publish("md.XNAS.MSFT", b"old publisher");
    });
    op(found, case, "info (old)", || {
        let _ = bus.info();
    });
    op(found, case, "reap", || {
        let _ = bus.reap();
    });
    op(found, case, "drop old handles", || {
        drop((publisher, reader, pending, fresh, bus))
    });
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn every_damaged_management_word_gives_an_error_not_a_panic() {
    let regions = regions();
    let epoch = Instant::now();
    install_signal_reporter();
    start_watchdog(epoch);
    let default_hook = std::panic::take_hook();
    install_recording_hook();

    let mut found = Vec::new();
    let mut cases = 0usize;
    let mut rng = 0x5EED_0FDA_3A6E_u64;
    let mut slowest = (Duration::ZERO, String::new());
    for region in &regions {
        for off in (region.start..region.start + region.len).step_by(8) {
            let orig = pristine_word(off);
            let mut values = vec![0, u64::MAX, xorshift(&mut rng)];
            for v in [
                orig.wrapping_add(64),
                orig.wrapping_sub(1),
                orig | 0xffff_ffff,
            ] {
                if !values.contains(&v) && v != orig {
                    values.push(v);
                }
            }
            for value in values {
                let case = format!(
                    "{} +{:#x} (word {off:#x}) = {value:#x}",
                    region.name,
                    off - region.start
                );
                set_case(&case);
                let t = Instant::now();
                CASE_STARTED_MS.store(
                    (epoch.elapsed().as_millis() as u64).max(1),
                    Ordering::Relaxed,
                );
                run_case(&mut found, &case, off, value);
                CASE_STARTED_MS.store(0, Ordering::Relaxed);
                if t.elapsed() > slowest.0 {
                    slowest = (t.elapsed(), case);
                }
                cases += 1;
            }
        }
    }
    SWEEP_DONE.store(true, Ordering::Relaxed);
    std::panic::set_hook(default_hook);

    println!(
        "damage sweep: {cases} cases over {} regions in {:.1?} (slowest: {:.1?}, {})",
        regions.len(),
        epoch.elapsed(),
        slowest.0,
        slowest.1
    );
    if found.is_empty() {
        return;
    }
    // Summary: distinct (location, message) first, then every case.
    let mut by_site: std::collections::BTreeMap<(String, String), Vec<String>> = Default::default();
    for f in &found {
        // Messages carry values; group on the location and the message's
        // first words.
        let msg_key: String = f.message.chars().take(60).collect();
        by_site
            .entry((f.location.clone(), msg_key))
            .or_default()
            .push(format!("{} [{}]", f.case, f.op));
    }
    let mut report = format!(
        "{} panicking operations in {} cases; {} distinct sites:\n",
        found.len(),
        found
            .iter()
            .map(|f| &f.case)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        by_site.len()
    );
    for ((loc, msg), cases) in &by_site {
        let _ = writeln!(report, "\n  at {loc}: {msg}");
        for c in cases {
            let _ = writeln!(report, "      {c}");
        }
    }
    panic!("{report}");
}
