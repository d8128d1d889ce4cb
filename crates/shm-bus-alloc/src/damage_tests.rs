//! Damage sweeps on heap memory: every management word of the arena
//! (control block, lock record, undo log, block headers) and of a
//! `ByteMap` (header, slots) set to 0, all ones and a random value, one at
//! a time; every operation must answer (`Ok` or a typed error) — never
//! panic (debug overflow checks included), hang or write outside the
//! structure's own metadata.

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::arena::{ArenaCore, CONTROL_BYTES};
use crate::bytemap::{self, MapCore};
use crate::liveness::Owners;
use crate::mem::{HeapMem, Mem};
use crate::sync::Ordering;

/// Actor 1 is the only live process: any other owner token is dead.
struct OnlyMe;
impl Owners for OnlyMe {
    fn token(&self) -> u64 {
        1
    }
    fn is_dead(&self, token: u64) -> bool {
        token != 1
    }
}

fn values(seed: &mut u64) -> [u64; 3] {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    [0, u64::MAX, *seed]
}

/// Runs `f` for every damage case, collecting panics; fails listing them.
fn sweep(words: impl Iterator<Item = u64>, mut case: impl FnMut(u64, u64)) {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut panics = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for off in words {
        for v in values(&mut seed) {
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| case(off, v))) {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panics.push(format!("word {off:#x} = {v:#x}: {msg}"));
            }
        }
    }
    std::panic::set_hook(hook);
    assert!(
        panics.is_empty(),
        "{} panics:\n{}",
        panics.len(),
        panics.join("\n")
    );
}

const CTL: u64 = 64;
const WORDS: usize = 1024; // 8 KiB: control block + ~4.4 KiB heap

/// A used arena: live blocks in two classes, a free list, a carve with
/// alignment padding.
fn used_arena() -> (HeapMem, Vec<u64>) {
    let mem = HeapMem::new(WORDS, 0, 0xA5A5_A5A5_A5A5_A5A5);
    let a = ArenaCore {
        mem: &mem,
        ctl: CTL,
        owners: &OnlyMe,
    };
    a.init(CTL + CONTROL_BYTES, WORDS as u64 * 8).unwrap();
    let live: Vec<u64> = [(24, 8), (40, 8), (24, 64), (100, 16), (40, 8)]
        .into_iter()
        .map(|(s, al)| a.alloc(s, al).unwrap())
        .collect();
    a.free(live[1]).unwrap();
    a.free(live[4]).unwrap();
    (mem, vec![live[0], live[2], live[3]])
}

#[test]
fn damaged_arena_words_are_errors_not_panics() {
    let (pristine, _) = used_arena();
    let bump = ArenaCore {
        mem: &pristine,
        ctl: CTL,
        owners: &OnlyMe,
    }
    .stats()
    .unwrap();
    let heap_start = (CTL + CONTROL_BYTES).next_multiple_of(16);
    let carved = heap_start + bump.capacity - bump.uncarved;
    // Control block (lock record and undo log included) and every carved
    // block header word.
    let words = (CTL..CTL + CONTROL_BYTES)
        .step_by(8)
        .chain((heap_start..carved).step_by(8));
    sweep(words, |off, v| {
        let (mem, live) = used_arena();
        mem.word(off).unwrap().store(v, Ordering::Relaxed);
        let a = ArenaCore {
            mem: &mem,
            ctl: CTL,
            owners: &OnlyMe,
        };
        let _ = a.validate();
        let _ = a.stats();
        let _ = a.check();
        for &p in &live {
            let _ = a.block_size(p);
        }
        for (s, al) in [(24, 8), (40, 8), (200, 64), (1 << 30, 8)] {
            if let Ok(p) = a.alloc(s, al) {
                let _ = a.free(p);
            }
        }
        for &p in &live {
            let _ = a.free(p);
        }
        let _ = a.check();
    });
}

#[test]
fn damaged_undo_log_restores_nothing() {
    let (mem, _) = used_arena();
    let a = ArenaCore {
        mem: &mem,
        ctl: CTL,
        owners: &OnlyMe,
    };
    let before = a.check().unwrap();
    // A dead holder (token 5) left a one-entry log whose address points at
    // the arena magic (outside the journaled metadata) and a second entry
    // pointing at the bump pointer.
    let lock = CTL + 64;
    let w = |off: u64, v: u64| mem.word(off).unwrap().store(v, Ordering::Relaxed);
    w(lock, 5);
    w(lock + 16, CTL + 24); // bump
    w(lock + 24, 0);
    w(lock + 32, CTL); // magic: not a target
    w(lock + 40, 0);
    w(lock + 8, 2);
    assert!(matches!(
        a.alloc(24, 8),
        Err(crate::Error::Corrupt {
            what: "lock undo log"
        })
    ));
    // Nothing was restored: not the bump pointer (entry 0), not the magic.
    w(lock + 8, 0);
    assert_eq!(a.check().unwrap(), before);
    a.validate().unwrap();
}

#[test]
fn heap_overlapping_the_control_block_is_corrupt() {
    let (mem, _) = used_arena();
    let a = ArenaCore {
        mem: &mem,
        ctl: CTL,
        owners: &OnlyMe,
    };
    mem.word(CTL + 8).unwrap().store(CTL, Ordering::Relaxed); // heap start
    mem.word(CTL + 24).unwrap().store(CTL, Ordering::Relaxed); // bump
    assert!(matches!(a.validate(), Err(crate::Error::Corrupt { .. })));
    assert!(matches!(a.alloc(24, 8), Err(crate::Error::Corrupt { .. })));
    // The carve did not write over the control block.
    assert_eq!(
        mem.word(CTL).unwrap().load(Ordering::Relaxed),
        u64::from_le_bytes(*b"SHBARENA")
    );
}

const CAP: u64 = 8;
const KEYS: u64 = 64;

fn used_map() -> HeapMem {
    let mem = HeapMem::new(
        (bytemap::HEADER_BYTES / 8 + CAP * 4) as usize,
        KEYS as usize,
        0x5A5A_5A5A_5A5A_5A5A,
    );
    let m = MapCore {
        mem: &mem,
        hdr: 0,
        end: u64::MAX,
        owners: &OnlyMe,
    };
    m.init(CAP, bytemap::HEADER_BYTES, HeapMem::BYTES_BASE, KEYS)
        .unwrap();
    for (i, k) in [&b"a"[..], b"bb", b"", b"market.quote"].iter().enumerate() {
        m.insert(k, i as u64).unwrap();
    }
    m.remove(b"bb").unwrap();
    mem
}

#[test]
fn damaged_bytemap_words_are_errors_not_panics() {
    let words = (0..bytemap::HEADER_BYTES + CAP * bytemap::SLOT_BYTES).step_by(8);
    sweep(words, |off, v| {
        let mem = used_map();
        mem.word(off).unwrap().store(v, Ordering::Relaxed);
        let m = MapCore {
            mem: &mem,
            hdr: 0,
            end: u64::MAX,
            owners: &OnlyMe,
        };
        let _ = m.validate();
        let _ = m.counters();
        for k in [&b"a"[..], b"bb", b"", b"market.quote", b"new", b"zzzzzzzz"] {
            let _ = m.get(k);
            let _ = m.insert(k, 9);
            let _ = m.get(k);
        }
        let _ = m.remove(b"a");
        if let Ok(cap) = m.capacity() {
            for i in 0..cap.min(64) {
                let _ = m.entry(i);
            }
        }
    });
}
