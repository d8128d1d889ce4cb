//! Loom-only entry points: the lock-free algorithms on heap memory, with
//! simulated actors standing in for processes. Built only under
//! `--cfg loom`; see `tests/loom_*.rs`.

use crate::arena::{ArenaCore, ArenaStats, CONTROL_BYTES};
use crate::bytemap::{self, Insert, MapCore};
use crate::error::Result;
use crate::liveness::Owners;
use crate::mem::{HeapMem, Mem};
use crate::sync::{AtomicU64, Ordering};

/// Heap memory holding either an arena or a `ByteMap`, plus a register of
/// actors declared dead.
pub struct Model {
    mem: HeapMem,
    dead: AtomicU64,
    map: bool,
}

/// One simulated process.
struct Actor<'a> {
    token: u64,
    dead: &'a AtomicU64,
}

impl Owners for Actor<'_> {
    fn token(&self) -> u64 {
        self.token
    }
    fn is_dead(&self, token: u64) -> bool {
        // Acquire pairs with the Release store in `Model::kill`: a dead
        // actor's last writes are visible, as the kernel guarantees for a
        // process that /proc reports dead.
        self.dead.load(Ordering::Acquire) == token
    }
}

const CTL: u64 = 0;

impl Model {
    /// An arena with a heap of `heap_bytes`, management memory pre-filled
    /// with garbage.
    pub fn arena(heap_bytes: u64) -> Model {
        let heap_start = CONTROL_BYTES.next_multiple_of(16);
        let words = ((heap_start + heap_bytes) / 8) as usize;
        let m = Model {
            mem: HeapMem::new(words, 0, 0xA5A5_A5A5_A5A5_A5A5),
            dead: AtomicU64::new(0),
            map: false,
        };
        m.with_arena(0, |a| a.init(heap_start, heap_start + heap_bytes))
            .expect("init");
        m
    }

    fn with_arena<R>(
        &self,
        actor: u64,
        f: impl FnOnce(&ArenaCore<'_, HeapMem, Actor<'_>>) -> R,
    ) -> R {
        let owners = Actor {
            token: actor,
            dead: &self.dead,
        };
        f(&ArenaCore {
            mem: &self.mem,
            ctl: CTL,
            owners: &owners,
        })
    }

    /// `alloc` as actor `actor` (a non-zero token).
    pub fn alloc(&self, actor: u64, size: u64, align: u64) -> Result<u64> {
        self.with_arena(actor, |a| a.alloc(size, align))
    }

    /// `free` as actor `actor`.
    pub fn free(&self, actor: u64, p: u64) -> Result<()> {
        self.with_arena(actor, |a| a.free(p))
    }

    /// Full structural check as actor `actor`.
    pub fn check(&self, actor: u64) -> Result<ArenaStats> {
        self.with_arena(actor, |a| a.check())
    }

    /// Actor `actor` takes the lock, makes `stores` journaled stores of an
    /// allocation and vanishes without unlocking.
    pub fn die_mid_alloc(&self, actor: u64, stores: usize) {
        self.with_arena(actor, |a| a.stall_mid_carve(stores, || {}))
            .expect("stall");
    }

    /// Declares `actor` dead.
    pub fn kill(&self, actor: u64) {
        // Release pairs with the Acquire load in `Actor::is_dead`.
        self.dead.store(actor, Ordering::Release);
    }

    /// A `ByteMap` with `capacity` slots and `key_bytes` of key space,
    /// memory pre-filled with garbage.
    pub fn map(capacity: u64, key_bytes: u64) -> Model {
        let words = (bytemap::HEADER_BYTES / 8 + capacity * 4) as usize;
        let m = Model {
            mem: HeapMem::new(words, key_bytes as usize, 0x5A5A_5A5A_5A5A_5A5A),
            dead: AtomicU64::new(0),
            map: true,
        };
        m.with_map(0, |a| {
            a.init(
                capacity,
                bytemap::HEADER_BYTES,
                HeapMem::BYTES_BASE,
                key_bytes,
            )
        })
        .expect("init");
        m
    }

    fn with_map<R>(&self, actor: u64, f: impl FnOnce(&MapCore<'_, HeapMem, Actor<'_>>) -> R) -> R {
        let owners = Actor {
            token: actor,
            dead: &self.dead,
        };
        f(&MapCore {
            mem: &self.mem,
            hdr: 0,
            end: u64::MAX,
            owners: &owners,
        })
    }

    /// `insert` as actor `actor`.
    pub fn insert(&self, actor: u64, key: &[u8], value: u64) -> Result<Insert> {
        assert!(self.map);
        self.with_map(actor, |a| a.insert(key, value))
    }

    /// `get`.
    pub fn get(&self, key: &[u8]) -> Result<Option<u64>> {
        self.with_map(0, |a| a.get(key))
    }

    /// `remove`.
    pub fn remove(&self, key: &[u8]) -> Result<Option<u64>> {
        self.with_map(0, |a| a.remove(key))
    }

    /// Number of published entries, by scanning.
    pub fn count(&self) -> Result<u64> {
        self.with_map(0, |core| {
            let mut n = 0;
            for i in 0..core.capacity()? {
                if core.entry(i)?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Actor `actor` claims `key`'s home slot (busy) and vanishes.
    pub fn die_mid_insert(&self, actor: u64, key: &[u8]) {
        let cap = self.with_map(0, |core| core.capacity()).expect("cap");
        let home = bytemap::hash(key) & (cap - 1);
        self.mem
            .word(bytemap::HEADER_BYTES + home * bytemap::SLOT_BYTES)
            .expect("slot")
            .store((actor << 2) | 2, Ordering::Release);
    }
}
