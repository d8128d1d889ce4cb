//! Small multi-threaded runs of the lock, the arena and the `ByteMap` on
//! heap memory ([`HeapMem`]), sized for Miri (no `shm_open`, `mmap` or
//! `/proc`: simulated actors stand in for processes, as in `model.rs`).
//! All test names start with `miri_`, so CI selects them with:
//!
//! ```text
//! cargo +nightly miri test -p shm-bus-alloc --lib miri_
//! ```
//!
//! They also run (fast) in the normal `cargo test`.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Barrier;

use crate::arena::{ArenaCore, CONTROL_BYTES};
use crate::bytemap::{self, Insert, MapCore};
use crate::error::Error;
use crate::liveness::FakeOwners;
use crate::mem::{HeapMem, Mem};
use crate::sync::Ordering;

/// A simulated process with token `me`; `dead` is the one token it
/// considers dead.
fn actor(me: u64, dead: u64) -> FakeOwners {
    FakeOwners {
        me: Cell::new(me),
        dead: Cell::new(dead),
    }
}

const CTL: u64 = 64;
const ARENA_WORDS: usize = 2048; // 16 KiB: control block + ~12 KiB heap

/// The arena at [`CTL`] in `mem`, acting as `owners`.
fn arena<'a>(mem: &'a HeapMem, owners: &'a FakeOwners) -> ArenaCore<'a, HeapMem, FakeOwners> {
    ArenaCore {
        mem,
        ctl: CTL,
        owners,
    }
}

fn arena_mem() -> HeapMem {
    let mem = HeapMem::new(ARENA_WORDS, 0, 0xA5A5_A5A5_A5A5_A5A5);
    let f = actor(1, 0);
    arena(&mem, &f)
        .init(CTL + CONTROL_BYTES, ARENA_WORDS as u64 * 8)
        .unwrap();
    mem
}

/// Threads allocate, stamp every word of their block with their token,
/// verify and free. A block handed out twice, or a metadata word written
/// outside the lock, shows up as a clobbered stamp (or as a data race under
/// Miri); the arena is structurally intact afterwards.
#[test]
fn miri_arena_alloc_free_from_threads() {
    let mem = arena_mem();
    let threads = 3u64;
    let rounds = 4u64;
    std::thread::scope(|s| {
        for t in 1..=threads {
            let mem = &mem;
            s.spawn(move || {
                let f = actor(t, 0);
                let a = arena(mem, &f);
                let mut live = Vec::new();
                for r in 0..rounds {
                    let size = [24u64, 40, 100][(r % 3) as usize];
                    let align = [8u64, 16, 64][((r + t) % 3) as usize];
                    let p = a.alloc(size, align).unwrap();
                    assert_eq!(p % align, 0);
                    for w in 0..size.div_ceil(8) {
                        mem.word(p + 8 * w)
                            .unwrap()
                            // Relaxed: the block is ours alone (the test's claim).
                            .store(t << 32 | r, Ordering::Relaxed);
                    }
                    live.push((p, size, r));
                    if r % 2 == 1 {
                        let (p, size, r) = live.remove(0);
                        check_stamp(mem, p, size, t << 32 | r);
                        a.free(p).unwrap();
                    }
                }
                for (p, size, r) in live {
                    check_stamp(mem, p, size, t << 32 | r);
                    a.free(p).unwrap();
                }
            });
        }
    });
    let f = actor(9, 0);
    let a = arena(&mem, &f);
    let s = a.check().unwrap();
    assert_eq!(s.used, 0);
    assert_eq!(s.recoveries, 0);
}

fn check_stamp(mem: &HeapMem, p: u64, size: u64, stamp: u64) {
    for w in 0..size.div_ceil(8) {
        // Relaxed: our own block, written by this thread.
        let v = mem.word(p + 8 * w).unwrap().load(Ordering::Relaxed);
        assert_eq!(v, stamp, "block {p:#x} clobbered at word {w}");
    }
}

/// An actor dies holding the arena lock halfway through a carve; a thread
/// that finds it dead breaks the lock, rolls the carve back and allocates;
/// a third thread contends meanwhile. Nothing is handed out twice.
#[test]
fn miri_lock_broken_after_holder_dies() {
    let mem = arena_mem();
    let before = {
        let f = actor(1, 0);
        let a = arena(&mem, &f);
        let before = a.check().unwrap();
        // Actor 1 takes the lock, makes 3 of its 4 stores and "dies".
        a.stall_mid_carve(3, || {}).unwrap();
        before
    };
    let got: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (2..=3u64)
            .map(|t| {
                let mem = &mem;
                s.spawn(move || {
                    let f = actor(t, 1);
                    let a = arena(mem, &f);
                    a.alloc(40, 8).unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_ne!(got[0], got[1], "one block handed out twice");
    let f = actor(9, 1);
    let a = arena(&mem, &f);
    let after = a.check().unwrap();
    assert_eq!(after.recoveries, 1);
    assert_eq!(after.used, before.used + 2 * (48 + 16));
}

const MAP_CAP: u64 = 16;
const MAP_KEYS: u64 = 256;

fn map_mem() -> HeapMem {
    let mem = HeapMem::new(
        (bytemap::HEADER_BYTES / 8 + MAP_CAP * 4) as usize,
        MAP_KEYS as usize,
        0x5A5A_5A5A_5A5A_5A5A,
    );
    let f = actor(1, 0);
    MapCore {
        mem: &mem,
        hdr: 0,
        end: u64::MAX,
        owners: &f,
    }
    .init(
        MAP_CAP,
        bytemap::HEADER_BYTES,
        HeapMem::BYTES_BASE,
        MAP_KEYS,
    )
    .unwrap();
    mem
}

/// Three threads insert overlapping keys with their own values and read
/// them back while the others write: every key ends with exactly one
/// value, every thread agrees on it, readers see it once published.
#[test]
fn miri_bytemap_insert_get_from_threads() {
    let mem = map_mem();
    let keys: [&[u8]; 5] = [b"a", b"b/c", b"", b"market/quote", b"x"];
    let seen: Vec<Vec<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=3u64)
            .map(|t| {
                let mem = &mem;
                s.spawn(move || {
                    let f = actor(t, 0);
                    let m = MapCore {
                        mem,
                        hdr: 0,
                        end: u64::MAX,
                        owners: &f,
                    };
                    let mut vals = Vec::new();
                    // Each thread starts at another key, so they race on
                    // different slots at different times.
                    for k in 0..keys.len() {
                        let key = keys[(k + t as usize) % keys.len()];
                        let mine = t * 100 + k as u64;
                        let v = m.insert(key, mine).unwrap().value(mine);
                        assert_eq!(m.get(key).unwrap(), Some(v));
                        vals.push((key, v));
                    }
                    vals.sort();
                    vals.into_iter().map(|(_, v)| v).collect()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        seen.iter().all(|v| *v == seen[0]),
        "threads disagree: {seen:?}"
    );
    let f = actor(9, 0);
    let m = MapCore {
        mem: &mem,
        hdr: 0,
        end: u64::MAX,
        owners: &f,
    };
    let mut entries: Vec<(Vec<u8>, u64)> =
        (0..MAP_CAP).filter_map(|i| m.entry(i).unwrap()).collect();
    entries.sort();
    assert_eq!(entries.len(), keys.len());
    let mut sorted = keys.to_vec();
    sorted.sort();
    for ((k, v), (want_k, want_v)) in entries.iter().zip(sorted.iter().zip(&seen[0])) {
        assert_eq!((k.as_slice(), v), (*want_k, want_v));
    }
    assert_eq!(m.counters().unwrap().len, keys.len() as u64);
    assert_eq!(m.insert(b"a", 0).unwrap(), Insert::Existing(seen[0][1]));
}

/// A writer dies after claiming a key's home slot; concurrent inserters of
/// that key retire the slot once they find the writer dead, and agree on
/// one value.
#[test]
fn miri_bytemap_dead_writer_is_passed() {
    let mem = map_mem();
    let home = bytemap::hash(b"k") & (MAP_CAP - 1);
    mem.word(bytemap::HEADER_BYTES + home * bytemap::SLOT_BYTES)
        .unwrap()
        // Relaxed: before the threads start (spawn synchronises).
        .store((77 << 2) | 2, Ordering::Relaxed);
    let barrier = Barrier::new(2);
    let vals: BTreeSet<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=2u64)
            .map(|t| {
                let (mem, barrier) = (&mem, &barrier);
                s.spawn(move || {
                    let f = actor(t, 77);
                    let m = MapCore {
                        mem,
                        hdr: 0,
                        end: u64::MAX,
                        owners: &f,
                    };
                    assert_eq!(m.get(b"k").unwrap(), None, "readers skip busy slots");
                    barrier.wait();
                    m.insert(b"k", t).unwrap().value(t)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(vals.len(), 1, "inserters disagree: {vals:?}");
    let f = actor(9, 0);
    let m = MapCore {
        mem: &mem,
        hdr: 0,
        end: u64::MAX,
        owners: &f,
    };
    assert_eq!(m.get(b"k").unwrap(), vals.first().copied());
    assert_eq!(m.counters().unwrap().tombstones, 1);
}

/// Damaged map geometry or slot fields are reported, never followed
/// (single-threaded; here so Miri also checks the raw-pointer paths).
#[test]
fn miri_bytemap_damaged_fields_are_errors() {
    let mem = map_mem();
    let f = actor(1, 0);
    let m = MapCore {
        mem: &mem,
        hdr: 0,
        end: u64::MAX,
        owners: &f,
    };
    m.insert(b"abc", 1).unwrap();
    let slot =
        bytemap::HEADER_BYTES + (bytemap::hash(b"abc") & (MAP_CAP - 1)) * bytemap::SLOT_BYTES;
    for (w, bad) in [(1, u64::MAX), (1, 3), (2, u64::MAX), (2, MAP_KEYS + 1)] {
        let word = mem.word(slot + 8 * w).unwrap();
        let old = word.load(Ordering::Relaxed);
        word.store(bad, Ordering::Relaxed);
        assert!(
            matches!(m.get(b"abc"), Ok(None) | Err(Error::Corrupt { .. })),
            "slot word {w} = {bad:#x}"
        );
        word.store(old, Ordering::Relaxed);
    }
    assert_eq!(m.get(b"abc").unwrap(), Some(1));
}
