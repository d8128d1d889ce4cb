//! Multi-process tests: every test re-executes this binary as child
//! processes (`--exact child_* `, role in `SHMB_TEST_ROLE`). The `child_*`
//! "tests" return at once when run normally.
#![cfg(not(loom))]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use shm_bus_alloc::{ByteMap, Error, Insert, MapHeader, Offset, Segment};

const WATCHDOG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- children

/// Allocates, fills with a checksummed pattern, verifies and frees random
/// blocks. A block handed out twice would be overwritten by the other
/// process and fail its checksum.
#[test]
#[ignore = "a child process role (see common::ChildProc)"]
fn child_stress() {
    let Some(seg_name) = child_param("child_stress", "SHMB_SEG") else {
        return;
    };
    let seed: u64 = std::env::var("SHMB_SEED").unwrap().parse().unwrap();
    let ops: u64 = std::env::var("SHMB_OPS").unwrap().parse().unwrap();
    let seg = Segment::open(&seg_name).unwrap();
    let arena = seg.arena();
    let mut rng = Rng(seed | 1);
    let mut live: Vec<(Offset<u8>, u64, u64)> = Vec::new();
    let verify = |off: Offset<u8>, len: u64, tag: u64| {
        let raw = seg.bytes(off, len).unwrap();
        // SAFETY: the block is ours (allocated, not yet freed); nobody else
        // may touch it — which is what this test checks.
        let bytes = unsafe { std::slice::from_raw_parts(raw.as_ptr(), raw.len()) };
        for (i, b) in bytes.iter().enumerate() {
            assert_eq!(*b, pattern(tag, i), "block {off:?} corrupted at byte {i}");
        }
    };
    for n in 0..ops {
        if live.len() < 32 && (live.is_empty() || rng.below(3) != 0) {
            let len = 1 + rng.below(600);
            let align = [8u64, 16, 64, 256][rng.below(4) as usize];
            let off = match arena.alloc(len, align) {
                Ok(o) => o,
                Err(Error::OutOfMemory { .. }) => continue,
                Err(e) => panic!("alloc: {e}"),
            };
            assert_eq!(off.get() % align, 0);
            let tag = seed.wrapping_mul(1_000_003) ^ n;
            let raw = seg.bytes(off, len).unwrap();
            for i in 0..len as usize {
                // SAFETY: freshly allocated block of `len` bytes, ours alone.
                unsafe { raw.as_ptr().add(i).write(pattern(tag, i)) };
            }
            live.push((off, len, tag));
        } else {
            let (off, len, tag) = live.swap_remove(rng.below(live.len() as u64) as usize);
            verify(off, len, tag);
            arena.free(off).unwrap();
        }
        if n % 64 == 0 {
            for &(off, len, tag) in &live {
                verify(off, len, tag);
            }
        }
    }
    for (off, len, tag) in live {
        verify(off, len, tag);
        arena.free(off).unwrap();
    }
}

fn pattern(tag: u64, i: usize) -> u8 {
    let x = tag
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i as u64);
    (x ^ (x >> 29) ^ (x >> 47)) as u8
}

/// Inserts `key-0..key-N` into the map at root 0 with its own values and
/// writes the value it observed for each key.
#[test]
#[ignore = "a child process role (see common::ChildProc)"]
fn child_map_insert() {
    let Some(seg_name) = child_param("child_map_insert", "SHMB_SEG") else {
        return;
    };
    let id: u64 = std::env::var("SHMB_ID").unwrap().parse().unwrap();
    let n: u64 = std::env::var("SHMB_N").unwrap().parse().unwrap();
    let out = std::env::var("SHMB_OUT").unwrap();
    let seg = Segment::open(&seg_name).unwrap();
    let map = ByteMap::attach(&seg, seg.root::<MapHeader>(0).unwrap()).unwrap();
    let mut seen = String::new();
    // The two children walk the keys in opposite orders so they collide in
    // the middle and race on the same keys.
    let order: Vec<u64> = if id % 2 == 0 {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    };
    for i in order {
        let key = format!("key-{i}");
        let mine = (id << 32) | i;
        let v = map.insert(key.as_bytes(), mine).unwrap().value(mine);
        assert_eq!(map.get(key.as_bytes()).unwrap(), Some(v));
        seen.push_str(&format!("{key} {v}\n"));
    }
    std::fs::write(out, seen).unwrap();
}

/// Takes the allocator lock, half-performs an allocation, signals and waits
/// for SIGKILL.
#[test]
#[ignore = "a child process role (see common::ChildProc)"]
fn child_hold_lock() {
    let Some(seg_name) = child_param("child_hold_lock", "SHMB_SEG") else {
        return;
    };
    let ready = std::env::var("SHMB_READY").unwrap();
    let seg = Segment::open(&seg_name).unwrap();
    seg.arena()
        .__stall_holding_lock(3, || {
            std::fs::write(&ready, b"locked").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        })
        .unwrap();
}

/// Creates a segment whose init closure never finishes.
#[test]
#[ignore = "a child process role (see common::ChildProc)"]
fn child_create_and_hang() {
    let Some(seg_name) = child_param("child_create_and_hang", "SHMB_SEG") else {
        return;
    };
    let ready = std::env::var("SHMB_READY").unwrap();
    let _ = Segment::builder(&seg_name).size(64 * 1024).create(|init| {
        init.arena().alloc(100, 8)?;
        std::fs::write(&ready, b"initializing").unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
}

/// `open_or_create`, then records its id in the map at root 0.
#[test]
#[ignore = "a child process role (see common::ChildProc)"]
fn child_open_or_create() {
    let Some(seg_name) = child_param("child_open_or_create", "SHMB_SEG") else {
        return;
    };
    let id: u64 = std::env::var("SHMB_ID").unwrap().parse().unwrap();
    let out = std::env::var("SHMB_OUT").unwrap();
    let seg = Segment::builder(&seg_name)
        .size(256 * 1024)
        .config(b"race-v1")
        .open_or_create(|init| {
            let map = ByteMap::create(&init.arena(), 64, 1024)?;
            init.set_root(0, map.offset())
        })
        .unwrap();
    assert_eq!(seg.config(), b"race-v1");
    let map = ByteMap::attach(&seg, seg.root(0).unwrap()).unwrap();
    assert_eq!(
        map.insert(format!("child-{id}").as_bytes(), id).unwrap(),
        Insert::Inserted
    );
    std::fs::write(
        out,
        if seg.is_creator() {
            "created"
        } else {
            "opened"
        },
    )
    .unwrap();
}

// ----------------------------------------------------------------- parents

#[test]
fn alloc_free_stress_across_processes_never_shares_a_block() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let name = SegName::new("stress");
    let seg = Segment::builder(&name.0)
        .size(4 << 20)
        .debug_fill(0xA5)
        .create(|_| Ok(()))
        .unwrap();
    let mut kids: Vec<_> = (1..=3u64)
        .map(|seed| {
            ChildProc::spawn(
                "child_stress",
                &[
                    ("SHMB_SEG", name.0.clone()),
                    ("SHMB_SEED", seed.to_string()),
                    ("SHMB_OPS", "3000".into()),
                ],
            )
        })
        .collect();
    for k in &mut kids {
        k.wait_success(WATCHDOG);
    }
    let stats = seg.arena().check().unwrap();
    assert_eq!(stats.used, 0, "every block was freed: {stats:?}");
    assert!(stats.classes.iter().all(|c| c.live == 0));
    assert!(stats.high_water > 0);
}

#[test]
fn two_processes_inserting_into_one_bytemap_agree() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    const N: u64 = 1500;
    let name = SegName::new("map2");
    let seg = Segment::builder(&name.0)
        .size(1 << 20)
        .debug_fill(0x5A)
        .create(|init| {
            let map = ByteMap::create(&init.arena(), 4096, 32 * 1024)?;
            init.set_root(0, map.offset())
        })
        .unwrap();
    let outs = [TempPath::new("map-a"), TempPath::new("map-b")];
    let mut kids: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(id, out)| {
            ChildProc::spawn(
                "child_map_insert",
                &[
                    ("SHMB_SEG", name.0.clone()),
                    ("SHMB_ID", (id + 1).to_string()),
                    ("SHMB_N", N.to_string()),
                    ("SHMB_OUT", out.0.to_string_lossy().into_owned()),
                ],
            )
        })
        .collect();
    for k in &mut kids {
        k.wait_success(WATCHDOG);
    }
    let parse = |p: &TempPath| -> BTreeMap<String, u64> {
        std::fs::read_to_string(&p.0)
            .unwrap()
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.to_owned(), v.parse().unwrap())
            })
            .collect()
    };
    let (a, b) = (parse(&outs[0]), parse(&outs[1]));
    assert_eq!(a.len() as u64, N);
    assert_eq!(a, b, "both processes observed the same value for every key");
    let map = ByteMap::attach(&seg, seg.root(0).unwrap()).unwrap();
    assert_eq!(map.len().unwrap(), N);
    let mut count: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    for e in map.iter() {
        let (k, v) = e.unwrap();
        let slot = count.entry(String::from_utf8(k).unwrap()).or_default();
        slot.0 += 1;
        slot.1 = v;
    }
    assert_eq!(count.len() as u64, N);
    for (k, (n, v)) in count {
        assert_eq!(n, 1, "{k} present exactly once");
        assert_eq!(a[&k], v, "{k} has the agreed value");
    }
}

#[test]
fn sigkilled_lock_holder_does_not_wedge_others() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let name = SegName::new("kill");
    let seg = Segment::builder(&name.0)
        .size(1 << 20)
        .create(|_| Ok(()))
        .unwrap();
    let arena = seg.arena();
    let keep = arena.alloc(200, 8).unwrap();
    let before = arena.check().unwrap();
    let ready = TempPath::new("locked");
    let mut holder = ChildProc::spawn(
        "child_hold_lock",
        &[
            ("SHMB_SEG", name.0.clone()),
            ("SHMB_READY", ready.0.to_string_lossy().into_owned()),
        ],
    );
    wait_for_file(&ready.0, WATCHDOG);
    holder.kill9();
    // Not reaped yet: the holder is a zombie, which must count as dead.
    let mut worker = ChildProc::spawn(
        "child_stress",
        &[
            ("SHMB_SEG", name.0.clone()),
            ("SHMB_SEED", "77".into()),
            ("SHMB_OPS", "500".into()),
        ],
    );
    worker.wait_success(WATCHDOG);
    holder.wait(WATCHDOG);
    let after = arena.check().unwrap();
    assert_eq!(after.recoveries, before.recoveries + 1);
    assert_eq!(
        after.used, before.used,
        "the half-done allocation was rolled back"
    );
    arena.free(keep).unwrap();
    assert_eq!(arena.check().unwrap().used, 0);
}

#[test]
fn creator_killed_mid_init_is_detected_and_replaced() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let name = SegName::new("died");
    let ready = TempPath::new("init");
    let mut creator = ChildProc::spawn(
        "child_create_and_hang",
        &[
            ("SHMB_SEG", name.0.clone()),
            ("SHMB_READY", ready.0.to_string_lossy().into_owned()),
        ],
    );
    wait_for_file(&ready.0, WATCHDOG);
    let pid = creator.pid();
    // Alive but stuck: a bounded wait, then HangsInCreation.
    let r = Segment::builder(&name.0)
        .open_timeout(Duration::from_millis(200))
        .open();
    assert!(matches!(r, Err(Error::HangsInCreation { .. })), "{r:?}");
    creator.kill9();
    creator.wait(WATCHDOG);
    match Segment::open(&name.0) {
        Err(Error::CreatorDied { creator: Some(c) }) => assert_eq!(c.pid, pid),
        other => panic!("expected CreatorDied, got {other:?}"),
    }
    let seg = Segment::builder(&name.0)
        .size(64 * 1024)
        .open_or_create(|_| Ok(()))
        .unwrap();
    assert!(seg.is_creator(), "the stale segment was replaced");
    assert_eq!(seg.creator(), shm_bus_alloc::ProcessId::current());
    Segment::open(&name.0).unwrap();
}

#[test]
fn racing_open_or_create_yields_one_segment() {
    if std::env::var(ROLE).is_ok() {
        return;
    }
    let name = SegName::new("race");
    let outs: Vec<_> = (0..3).map(|i| TempPath::new(&format!("race{i}"))).collect();
    let mut kids: Vec<_> = outs
        .iter()
        .enumerate()
        .map(|(id, out)| {
            ChildProc::spawn(
                "child_open_or_create",
                &[
                    ("SHMB_SEG", name.0.clone()),
                    ("SHMB_ID", id.to_string()),
                    ("SHMB_OUT", out.0.to_string_lossy().into_owned()),
                ],
            )
        })
        .collect();
    for k in &mut kids {
        k.wait_success(WATCHDOG);
    }
    let results: Vec<String> = outs
        .iter()
        .map(|o| std::fs::read_to_string(&o.0).unwrap())
        .collect();
    assert_eq!(
        results.iter().filter(|r| *r == "created").count(),
        1,
        "{results:?}"
    );
    let seg = Segment::open(&name.0).unwrap();
    let map = ByteMap::attach(&seg, seg.root(0).unwrap()).unwrap();
    for id in 0..3u64 {
        assert_eq!(map.get(format!("child-{id}").as_bytes()).unwrap(), Some(id));
    }
}
