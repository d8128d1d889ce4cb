//! Fuzzes a damaged bus: a small bus with published data (a publisher on
//! three topics, a `**` subscriber that has read some records, a second
//! subscriber with data pending) gets the input's patches applied to its
//! management words, then is used: a fresh `Bus::open` → `info` →
//! `topics` → a new publisher's `try_publish` → a new subscriber's
//! `try_recv`, the old subscribers' `try_recv`, the old publisher's
//! `try_publish`, `reap`. Errors are fine; panics (debug overflow checks
//! included), hangs and signals are findings.
//!
//! Input: up to 16 patches of 11 bytes each: `u16` word selector (little
//! endian; taken modulo the number of management words: segment header,
//! arena control block, bus header, topic records, topic map header and
//! slots, producer and subscriber slots, cursors, the first 512 bytes of
//! each ring), `u8` mode, `u64` value. Mode 0 stores the value, 1 adds its
//! low 16 bits to the word, 2 subtracts them, 3 xors the value in (modes
//! 1-3 reach near-valid values that pass coarse checks).
//!
//! The bus is created afresh for every input (deterministic runs), under a
//! name unique to the fuzzing process, and removed after every input and
//! at exit.
//!
//! Run: `cargo +nightly fuzz run damaged_segment` (from the repository
//! root).
#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shm_bus_alloc::{HEADER_SIZE, Segment};
use shm_bus_core::{Bus, BusConfig, MIN_RING_BYTES, Publisher, Subscriber};

const TOPICS: [&str; 3] = ["md.XNAS.AAPL", "md.XNAS.MSFT", "news.flash"];
const MAX_PATCHES: usize = 16;
const PATCH_BYTES: usize = 11;
const RECV_TRIES: usize = 16;

// Table sizes and bus header fields, as in crates/shm-bus-core/src/layout.rs
// (offsets come from the bus header, root 0).
const BUS_HEADER_BYTES: u64 = 256;
const TOPIC_RECORD_BYTES: u64 = 32;
const PRODUCER_SLOT_BYTES: u64 = 192 + 64 * 8;
const SUBSCRIBER_SLOT_BYTES: u64 = 128;
const BH_RING_BYTES: u64 = 8;
const BH_TOPICS: u64 = 32;
const BH_TOPIC_MAP: u64 = 40;
const BH_PRODUCERS: u64 = 64;
const BH_SUBSCRIBERS: u64 = 72;
const BH_CURSORS: u64 = 80;
const BH_CURSOR_STRIDE: u64 = 88;
const BH_RINGS: u64 = 96;
const MAP_HEADER_BYTES: u64 = 64;
const MAP_SLOT_BYTES: u64 = 32;
const ARENA_CONTROL_BYTES: u64 = 3632;
const RING_PREFIX: u64 = 512;

fn config() -> BusConfig {
    BusConfig::default()
        .with_ring_bytes(MIN_RING_BYTES)
        .with_max_topics(8)
        .with_max_producers(2)
        .with_max_subscribers(2)
}

/// The bus name of this fuzzing process.
fn name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        extern "C" fn remove_at_exit() {
            let _ = Bus::remove(name());
        }
        // SAFETY: atexit(3) registers a plain `extern "C" fn()` that takes
        // no arguments and does not unwind (Bus::remove returns errors).
        unsafe { libc::atexit(remove_at_exit) };
        format!("fuzz-damaged-{}", std::process::id())
    })
}

/// Removes the bus when an input is done (also when a finding unwinds).
struct Remove;
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = Bus::remove(name());
    }
}

struct Scene {
    bus: Bus,
    publisher: Publisher,
    reader: Subscriber,
    pending: Subscriber,
}

fn scene() -> Scene {
    let _ = Bus::remove(name());
    let bus = Bus::create(name(), config()).expect("create");
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

fn file() -> File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shm-bus.{}", name()))
        .expect("open the segment's file")
}

fn read_word(f: &File, off: u64) -> u64 {
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, off).expect("read word");
    u64::from_le_bytes(b)
}

/// Offsets of every management word, found once on a pristine bus.
fn words() -> &'static [u64] {
    static WORDS: OnceLock<Vec<u64>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let _remove = Remove;
        let _scene = scene();
        let seg = Segment::open(name()).expect("open segment");
        let (arena, _) = seg.arena_range();
        let hdr = seg.root::<u8>(0).expect("bus header root").get();
        let f = file();
        let w = |field: u64| read_word(&f, hdr + field);
        let cfg = config();
        let (np, ns) = (cfg.max_producers as u64, cfg.max_subscribers as u64);
        let map = w(BH_TOPIC_MAP);
        let map_cap = read_word(&f, map + 8).min(1 << 12);
        let mut regions = vec![
            (0, HEADER_SIZE),
            (arena, ARENA_CONTROL_BYTES),
            (hdr, BUS_HEADER_BYTES),
            (w(BH_TOPICS), cfg.max_topics as u64 * TOPIC_RECORD_BYTES),
            (map, MAP_HEADER_BYTES + map_cap * MAP_SLOT_BYTES),
            (w(BH_PRODUCERS), np * PRODUCER_SLOT_BYTES),
            (w(BH_SUBSCRIBERS), ns * SUBSCRIBER_SLOT_BYTES),
            (w(BH_CURSORS), ns * w(BH_CURSOR_STRIDE) * 8),
        ];
        for p in 0..np {
            regions.push((w(BH_RINGS) + p * w(BH_RING_BYTES), RING_PREFIX));
        }
        regions
            .into_iter()
            .flat_map(|(start, len)| (start..start + len).step_by(8))
            .filter(|&off| off + 8 <= seg.size())
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let words = words();
    let _remove = Remove;
    let Scene {
        bus,
        mut publisher,
        mut reader,
        mut pending,
    } = scene();
    let f = file();
    for patch in data.chunks_exact(PATCH_BYTES).take(MAX_PATCHES) {
        let sel = u16::from_le_bytes([patch[0], patch[1]]) as usize;
        let off = words[sel % words.len()];
        let arg = u64::from_le_bytes(patch[3..11].try_into().expect("8 bytes"));
        let old = read_word(&f, off);
        let new = match patch[2] % 4 {
            0 => arg,
            1 => old.wrapping_add(arg & 0xffff),
            2 => old.wrapping_sub(arg & 0xffff),
            _ => old ^ arg,
        };
        // Through the file: the kernel stores into the pages every mapping
        // of the object shares (no Rust reference is involved).
        f.write_all_at(&new.to_le_bytes(), off).expect("patch");
    }

    if let Ok(fresh) = Bus::open(name()) {
        let _ = fresh.info();
        if let Ok(t) = fresh.topics() {
            let _ = t.entries();
        }
        if let Ok(mut p) = fresh.publisher("late-feed") {
            let _ = p.try_publish("md.XNAS.AAPL", b"after damage");
            let _ = p.try_publish("brand.new.topic", b"x");
        }
        if let Ok(mut s) = fresh.subscriber("late-reader") {
            let _ = s.subscribe("**");
            for _ in 0..RECV_TRIES {
                if let Ok(sample) = s.try_recv() {
                    let _ = (sample.topic().len(), sample.payload().len());
                }
            }
        }
    }
    for sub in [&mut reader, &mut pending] {
        for _ in 0..RECV_TRIES {
            if let Ok(sample) = sub.try_recv() {
                let _ = (sample.topic().len(), sample.payload().len());
            }
        }
    }
    let _ = publisher.try_publish("md.XNAS.MSFT", b"old publisher");
    let _ = bus.info();
    let _ = bus.reap();
});
