//! The arena allocator: size classes with free lists, carved from a bump
//! region, guarded by a [`RobustLock`](crate::lock) whose undo log makes every
//! operation all-or-nothing with respect to a crash.

use crate::error::{Error, Result};
use crate::liveness::Owners;
use crate::lock::{self, Acquired, LOCK_BYTES, RobustLock};
use crate::mem::Mem;
use crate::sync::Ordering;

/// Number of size classes.
pub const NUM_CLASSES: usize = 140;
/// Bytes of the header in front of every block.
pub const BLOCK_HEADER: u64 = 16;
/// Largest supported alignment.
pub const MAX_ALIGN: u64 = 4096;
/// Free-list entries inspected for a suitably aligned block before carving
/// a fresh one.
const ALIGN_SEARCH: usize = 8;

const ARENA_MAGIC: u64 = u64::from_le_bytes(*b"SHBARENA");
const TAG_MAGIC: u64 = 0xB10C_A11C;
const STATE_ALLOCATED: u64 = 1;
const STATE_FREE: u64 = 2;

// Control block layout (8-byte words at `ctl`).
const C_MAGIC: u64 = 0;
const C_HEAP_START: u64 = 8;
const C_HEAP_END: u64 = 16;
const C_BUMP: u64 = 24;
const C_USED: u64 = 32;
const C_HIGH_WATER: u64 = 40;
const C_WASTED: u64 = 48;
const C_RECOVERIES: u64 = 56;
const C_LOCK: u64 = 64;
const C_CLASSES: u64 = C_LOCK + LOCK_BYTES;
const CLASS_WORDS: u64 = 3; // head, live, free
/// Bytes of the arena control block.
pub const CONTROL_BYTES: u64 = C_CLASSES + NUM_CLASSES as u64 * CLASS_WORDS * 8;

/// Payload bytes of size class `c`: 16, 32, 48, 64, then four classes per
/// doubling (80, 96, 112, 128, 160, 192, ...), up to 2^40. At most 25 %
/// of a block above 64 bytes is rounding.
pub const fn class_size(c: usize) -> u64 {
    if c < 4 {
        16 * (c as u64 + 1)
    } else {
        let k = (c - 4) / 4;
        let j = ((c - 4) % 4) as u64;
        let base = 64u64 << k;
        base + (j + 1) * (base / 4)
    }
}

/// The smallest class whose payload holds `size` bytes.
pub fn class_of(size: u64) -> Option<usize> {
    if size > class_size(NUM_CLASSES - 1) {
        return None;
    }
    let (mut lo, mut hi) = (0, NUM_CLASSES - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if class_size(mid) >= size {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}

const fn tag(state: u64, class: usize) -> u64 {
    (TAG_MAGIC << 32) | (state << 16) | class as u64
}

/// A lock-free snapshot of arena statistics (each field is read atomically,
/// the set is not: under concurrent use the fields may be from slightly
/// different moments).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Bytes the arena manages (heap region).
    pub capacity: u64,
    /// Bytes in live blocks, headers included.
    pub used: u64,
    /// Bytes available: on free lists plus never carved.
    pub free: u64,
    /// Most `used` has ever been.
    pub high_water: u64,
    /// Bytes never carved from the bump region.
    pub uncarved: u64,
    /// Bytes lost to alignment padding while carving.
    pub wasted: u64,
    /// How many times a dead lock holder's operation was rolled back.
    pub recoveries: u64,
    /// Per size class with any activity: `(payload size, live blocks, free
    /// blocks)`.
    pub classes: Vec<ClassStats>,
}

/// Statistics of one size class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Payload bytes of a block of this class.
    pub size: u64,
    /// Blocks handed out and not freed.
    pub live: u64,
    /// Blocks on this class's free list.
    pub free: u64,
}

/// Heap bounds and bump pointer, validated: `start <= bump <= end`, all
/// multiples of 16 except `end` (a multiple of 8).
#[derive(Clone, Copy)]
struct Carved {
    start: u64,
    end: u64,
    bump: u64,
}

fn check_bump(bump: u64, start: u64, end: u64) -> Result<u64> {
    if bump < start || bump > end || bump % 16 != 0 {
        return Err(Error::Corrupt {
            what: "arena bump pointer",
        });
    }
    Ok(bump)
}

/// The allocator algorithm over any [`Mem`]; the control block is at `ctl`.
pub(crate) struct ArenaCore<'a, M: Mem, O: Owners> {
    pub(crate) mem: &'a M,
    pub(crate) ctl: u64,
    pub(crate) owners: &'a O,
}

impl<'a, M: Mem, O: Owners> ArenaCore<'a, M, O> {
    fn w(&self, field: u64) -> Result<&'a crate::sync::AtomicU64> {
        self.mem.word(self.ctl + field).ok_or(Error::Corrupt {
            what: "arena control block",
        })
    }

    fn class_word(&self, c: usize, i: u64) -> u64 {
        self.ctl + C_CLASSES + (c as u64 * CLASS_WORDS + i) * 8
    }

    /// First byte after the control block: the heap may not start below.
    fn control_end(&self) -> u64 {
        self.ctl.saturating_add(CONTROL_BYTES)
    }

    /// Writes a fresh control block managing `[heap_start, heap_end)`.
    /// Every word is written explicitly: nothing relies on zeroed memory.
    pub(crate) fn init(&self, heap_start: u64, heap_end: u64) -> Result<()> {
        let heap_start = heap_start
            .checked_next_multiple_of(16)
            .ok_or(Error::InvalidArgument("arena heap out of bounds"))?;
        if !self.heap_in_bounds(heap_start, heap_end) {
            return Err(Error::InvalidArgument("arena heap out of bounds"));
        }
        let set = |f: u64, v: u64| -> Result<()> {
            self.w(f)?.store(v, Ordering::Relaxed);
            Ok(())
        };
        set(C_HEAP_START, heap_start)?;
        set(C_HEAP_END, heap_end)?;
        set(C_BUMP, heap_start)?;
        set(C_USED, 0)?;
        set(C_HIGH_WATER, 0)?;
        set(C_WASTED, 0)?;
        set(C_RECOVERIES, 0)?;
        lock::init_lock(self.mem, self.ctl + C_LOCK)?;
        for c in 0..NUM_CLASSES {
            for i in 0..CLASS_WORDS {
                self.mem
                    .word(self.class_word(c, i))
                    .ok_or(Error::Corrupt {
                        what: "arena control block",
                    })?
                    .store(0, Ordering::Relaxed);
            }
        }
        // Release: pairs with the Acquire load in `validate`; in the segment
        // the Ready handshake orders this anyway.
        self.w(C_MAGIC)?.store(ARENA_MAGIC, Ordering::Release);
        Ok(())
    }

    /// Checks that the heap is exactly `[start, end)` (what the segment
    /// layout prescribes), on top of [`ArenaCore::validate`].
    pub(crate) fn validate_heap(&self, start: u64, end: u64) -> Result<()> {
        if self.heap()? != (start, end) {
            return Err(Error::Corrupt {
                what: "arena heap bounds",
            });
        }
        Ok(())
    }

    /// Checks the control block's invariants that hold at every instant
    /// (crash points included).
    pub(crate) fn validate(&self) -> Result<()> {
        // Acquire pairs with the Release store in `init`.
        if self.w(C_MAGIC)?.load(Ordering::Acquire) != ARENA_MAGIC {
            return Err(Error::Corrupt {
                what: "arena magic",
            });
        }
        let (start, end) = self.heap()?;
        check_bump(self.w(C_BUMP)?.load(Ordering::Relaxed), start, end)?;
        let log_len = self
            .mem
            .word(self.ctl + C_LOCK + 8)
            .ok_or(Error::Corrupt {
                what: "arena control block",
            })?
            .load(Ordering::Relaxed);
        if log_len > lock::LOG_CAP {
            return Err(Error::Corrupt {
                what: "lock undo log",
            });
        }
        Ok(())
    }

    /// The heap is addressed as words (block headers); its payload bytes
    /// belong to the users. It lies after the control block.
    fn heap_in_bounds(&self, start: u64, end: u64) -> bool {
        end >= start
            && start >= self.control_end()
            && end % 8 == 0
            && self.mem.word(start).is_some()
            && (end == start || self.mem.word(end - 8).is_some())
    }

    fn heap(&self) -> Result<(u64, u64)> {
        let start = self.w(C_HEAP_START)?.load(Ordering::Relaxed);
        let end = self.w(C_HEAP_END)?.load(Ordering::Relaxed);
        if start % 16 != 0 || !self.heap_in_bounds(start, end) {
            return Err(Error::Corrupt {
                what: "arena heap bounds",
            });
        }
        Ok((start, end))
    }

    fn lock(&self) -> Result<lock::Guard<'a, M>> {
        let (start, end) = self.heap()?;
        let l = RobustLock {
            mem: self.mem,
            base: self.ctl + C_LOCK,
            owners: self.owners,
            // What critical sections journal: the counters and bump pointer,
            // the per-class words, and block headers in the heap.
            targets: [
                self.ctl + C_BUMP..self.ctl + C_LOCK,
                self.ctl + C_CLASSES..self.control_end(),
                start..end,
            ],
        };
        let (guard, how) = l.lock()?;
        if how == Acquired::Recovered {
            guard.bump_unjournaled(self.ctl + C_RECOVERIES);
        }
        Ok(guard)
    }

    /// The heap bounds and the bump pointer, validated (under the lock).
    fn carved(&self, g: &lock::Guard<'a, M>) -> Result<Carved> {
        let (start, end) = self.heap()?;
        let bump = check_bump(g.load(self.ctl + C_BUMP)?, start, end)?;
        Ok(Carved { start, end, bump })
    }

    /// Checks that `p` is the payload offset of a block header-wise inside
    /// the carved heap; returns the header's tag.
    fn block_tag(&self, g: &lock::Guard<'a, M>, h: &Carved, p: u64) -> Result<Option<u64>> {
        if p % 16 != 0 || p < h.start + BLOCK_HEADER || p > h.bump {
            return Ok(None);
        }
        Ok(Some(g.load(p - BLOCK_HEADER)?))
    }

    /// Allocates `size` bytes aligned to `align`; returns the payload offset.
    pub(crate) fn alloc(&self, size: u64, align: u64) -> Result<u64> {
        if !align.is_power_of_two() || align > MAX_ALIGN {
            return Err(Error::InvalidArgument(
                "alignment must be a power of two no larger than 4096",
            ));
        }
        let c = class_of(size.max(1)).ok_or(Error::OutOfMemory { requested: size })?;
        let csize = class_size(c);
        let mut g = self.lock()?;
        let h = self.carved(&g)?;

        // 1. A free block of the class with the right alignment.
        let mut link = self.class_word(c, 0);
        let mut cur = g.load(link)?;
        for _ in 0..ALIGN_SEARCH {
            if cur == 0 {
                break;
            }
            // A free block is a carved block: header and payload below bump.
            if self.block_tag(&g, &h, cur)? != Some(tag(STATE_FREE, c)) || csize > h.bump - cur {
                return Err(Error::Corrupt {
                    what: "arena free list",
                });
            }
            let next = g.load(cur - 8)?;
            if cur % align == 0 {
                g.store(link, next)?;
                g.store(cur - BLOCK_HEADER, tag(STATE_ALLOCATED, c))?;
                g.store(cur - 8, 0)?;
                // Counters saturate: a damaged one is reported by `check`,
                // never an overflow panic.
                let live = g.load(self.class_word(c, 1))?;
                g.store(self.class_word(c, 1), live.saturating_add(1))?;
                let free = g.load(self.class_word(c, 2))?;
                g.store(self.class_word(c, 2), free.saturating_sub(1))?;
                self.account_used(&mut g, csize, true)?;
                g.commit();
                return Ok(cur);
            }
            link = cur - 8;
            cur = next;
        }

        // 2. Carve from the bump region.
        let Carved { end, bump, .. } = h;
        let payload = (bump + BLOCK_HEADER)
            .checked_next_multiple_of(align.max(16))
            .ok_or(Error::OutOfMemory { requested: size })?;
        let new_bump = payload
            .checked_add(csize)
            .filter(|&b| b <= end)
            .ok_or(Error::OutOfMemory { requested: size })?;
        let waste = payload - BLOCK_HEADER - bump;
        g.store(payload - BLOCK_HEADER, tag(STATE_ALLOCATED, c))?;
        g.store(payload - 8, 0)?;
        g.store(self.ctl + C_BUMP, new_bump)?;
        let live = g.load(self.class_word(c, 1))?;
        g.store(self.class_word(c, 1), live.saturating_add(1))?;
        if waste > 0 {
            let wasted = g.load(self.ctl + C_WASTED)?;
            g.store(self.ctl + C_WASTED, wasted.saturating_add(waste))?;
        }
        self.account_used(&mut g, csize, true)?;
        g.commit();
        Ok(payload)
    }

    fn account_used(&self, g: &mut lock::Guard<'a, M>, csize: u64, add: bool) -> Result<()> {
        let unit = csize + BLOCK_HEADER;
        let used = g.load(self.ctl + C_USED)?;
        let used = if add {
            used.saturating_add(unit)
        } else {
            used.saturating_sub(unit)
        };
        g.store(self.ctl + C_USED, used)?;
        if add && used > g.load(self.ctl + C_HIGH_WATER)? {
            g.store(self.ctl + C_HIGH_WATER, used)?;
        }
        Ok(())
    }

    /// Returns the block whose payload starts at `p` to its class's free
    /// list.
    pub(crate) fn free(&self, p: u64) -> Result<()> {
        let mut g = self.lock()?;
        let h = self.carved(&g)?;
        let Some(t) = self.block_tag(&g, &h, p)? else {
            return Err(Error::InvalidFree {
                offset: p,
                reason: "not a block of this arena",
            });
        };
        let c = (t & 0xffff) as usize;
        if t >> 32 != TAG_MAGIC || c >= NUM_CLASSES {
            return Err(Error::InvalidFree {
                offset: p,
                reason: "no block header",
            });
        }
        match (t >> 16) & 0xffff {
            STATE_ALLOCATED => {}
            STATE_FREE => {
                return Err(Error::InvalidFree {
                    offset: p,
                    reason: "already free",
                });
            }
            _ => {
                return Err(Error::InvalidFree {
                    offset: p,
                    reason: "no block header",
                });
            }
        }
        if class_size(c) > h.bump - p {
            return Err(Error::Corrupt {
                what: "arena block header",
            });
        }
        let head = g.load(self.class_word(c, 0))?;
        g.store(p - 8, head)?;
        g.store(p - BLOCK_HEADER, tag(STATE_FREE, c))?;
        g.store(self.class_word(c, 0), p)?;
        let live = g.load(self.class_word(c, 1))?;
        g.store(self.class_word(c, 1), live.saturating_sub(1))?;
        let free = g.load(self.class_word(c, 2))?;
        g.store(self.class_word(c, 2), free.saturating_add(1))?;
        self.account_used(&mut g, class_size(c), false)?;
        g.commit();
        Ok(())
    }

    /// Payload size of the live block at `p` (its class size).
    pub(crate) fn block_size(&self, p: u64) -> Result<u64> {
        let g = self.lock()?;
        let h = self.carved(&g)?;
        match self.block_tag(&g, &h, p)? {
            Some(t)
                if t >> 32 == TAG_MAGIC
                    && (t >> 16) & 0xffff == STATE_ALLOCATED
                    && ((t & 0xffff) as usize) < NUM_CLASSES
                    && class_size((t & 0xffff) as usize) <= h.bump - p =>
            {
                Ok(class_size((t & 0xffff) as usize))
            }
            _ => Err(Error::BadOffset {
                offset: p,
                len: 0,
                align: 16,
            }),
        }
    }

    /// Takes the lock and makes the first `stores` journaled stores of a
    /// carve (tag, next, bump, used), then calls `stall` and leaves as if the
    /// process vanished: no rollback, no unlock. For crash tests only.
    pub(crate) fn stall_mid_carve(&self, stores: usize, stall: impl FnOnce()) -> Result<()> {
        let mut g = self.lock()?;
        let Carved { end, bump, .. } = self.carved(&g)?;
        let payload = bump + BLOCK_HEADER;
        if class_size(3) + BLOCK_HEADER > end - bump {
            return Err(Error::OutOfMemory { requested: 64 });
        }
        let new_bump = payload + class_size(3);
        let used = g.load(self.ctl + C_USED)?;
        let steps = [
            (payload - BLOCK_HEADER, tag(STATE_ALLOCATED, 3)),
            (payload - 8, 0),
            (self.ctl + C_BUMP, new_bump),
            (
                self.ctl + C_USED,
                used.saturating_add(class_size(3) + BLOCK_HEADER),
            ),
        ];
        for (addr, v) in steps.into_iter().take(stores) {
            g.store(addr, v)?;
        }
        stall();
        std::mem::forget(g);
        Ok(())
    }

    /// Reads the statistics without taking the lock.
    pub(crate) fn stats(&self) -> Result<ArenaStats> {
        let r = |f: u64| -> Result<u64> { Ok(self.w(f)?.load(Ordering::Relaxed)) };
        let (start, end) = self.heap()?;
        let bump = r(C_BUMP)?.clamp(start, end);
        let mut classes = Vec::new();
        let mut listed = 0u64;
        for c in 0..NUM_CLASSES {
            let ld = |i| {
                self.mem
                    .word(self.class_word(c, i))
                    .map(|w| w.load(Ordering::Relaxed))
                    .ok_or(Error::Corrupt {
                        what: "arena control block",
                    })
            };
            let (live, free) = (ld(1)?, ld(2)?);
            if live != 0 || free != 0 {
                classes.push(ClassStats {
                    size: class_size(c),
                    live,
                    free,
                });
                listed = listed.saturating_add(free.saturating_mul(class_size(c) + BLOCK_HEADER));
            }
        }
        Ok(ArenaStats {
            capacity: end - start,
            used: r(C_USED)?,
            free: (end - bump).saturating_add(listed),
            high_water: r(C_HIGH_WATER)?,
            uncarved: end - bump,
            wasted: r(C_WASTED)?,
            recoveries: r(C_RECOVERIES)?,
            classes,
        })
    }

    /// Takes the lock (recovering if needed) and verifies the whole
    /// structure: every free list is well formed, acyclic and matches its
    /// count, and `used` matches the live counts. Returns the statistics.
    pub(crate) fn check(&self) -> Result<ArenaStats> {
        let g = self.lock()?;
        let h = self.carved(&g)?;
        let (start, bump) = (h.start, h.bump);
        let mut used = 0u64;
        for c in 0..NUM_CLASSES {
            let unit = class_size(c) + BLOCK_HEADER;
            let max_blocks = (bump - start) / unit;
            let mut n = 0u64;
            let mut cur = g.load(self.class_word(c, 0))?;
            while cur != 0 {
                if n > max_blocks || self.block_tag(&g, &h, cur)? != Some(tag(STATE_FREE, c)) {
                    return Err(Error::Corrupt {
                        what: "arena free list",
                    });
                }
                n += 1;
                cur = g.load(cur - 8)?;
            }
            if n != g.load(self.class_word(c, 2))? {
                return Err(Error::Corrupt {
                    what: "arena free count",
                });
            }
            used = g
                .load(self.class_word(c, 1))?
                .checked_mul(unit)
                .and_then(|b| b.checked_add(used))
                .ok_or(Error::Corrupt {
                    what: "arena live count",
                })?;
        }
        if used != g.load(self.ctl + C_USED)? {
            return Err(Error::Corrupt {
                what: "arena used bytes",
            });
        }
        drop(g);
        self.stats()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lock::{CRASH_AFTER, CRASHING};
    use crate::mem::HeapMem;
    use std::cell::Cell;

    use crate::liveness::FakeOwners as Fake;

    fn fresh(mem: &HeapMem) -> Fake {
        let f = Fake {
            me: Cell::new(1),
            dead: Cell::new(0),
        };
        ArenaCore {
            mem,
            ctl: 64,
            owners: &f,
        }
        .init(64 + CONTROL_BYTES, 64 * 1024)
        .unwrap();
        f
    }

    #[test]
    fn class_table_is_monotonic_and_tight() {
        for c in 1..NUM_CLASSES {
            assert!(class_size(c) > class_size(c - 1));
            assert_eq!(class_size(c) % 16, 0);
        }
        assert_eq!(class_size(NUM_CLASSES - 1), 1 << 40);
        for s in [
            1u64,
            16,
            17,
            64,
            65,
            100,
            1000,
            4096,
            1 << 20,
            (1 << 20) + 1,
        ] {
            let c = class_of(s).unwrap();
            assert!(class_size(c) >= s);
            assert!(c == 0 || class_size(c - 1) < s);
            assert!(class_size(c) <= s.max(64) * 5 / 4 + 16);
        }
    }

    #[test]
    fn alloc_free_reuse_and_alignment() {
        let mem = HeapMem::new(8192, 0, 0xA5A5_A5A5_A5A5_A5A5);
        let f = fresh(&mem);
        let a = ArenaCore {
            mem: &mem,
            ctl: 64,
            owners: &f,
        };
        let x = a.alloc(24, 8).unwrap();
        let y = a.alloc(100, 64).unwrap();
        assert_eq!(y % 64, 0);
        let z = a.alloc(3000, 4096).unwrap();
        assert_eq!(z % 4096, 0);
        assert!(matches!(a.free(x + 16), Err(Error::InvalidFree { .. })));
        a.free(x).unwrap();
        assert!(matches!(
            a.free(x),
            Err(Error::InvalidFree {
                reason: "already free",
                ..
            })
        ));
        assert_eq!(a.alloc(20, 16).unwrap(), x, "freed block reused");
        assert!(matches!(
            a.alloc(1 << 20, 8),
            Err(Error::OutOfMemory { .. })
        ));
        assert!(matches!(a.alloc(8, 3), Err(Error::InvalidArgument(_))));
        for p in [x, y, z] {
            a.free(p).unwrap();
        }
        let s = a.check().unwrap();
        assert_eq!(s.used, 0);
        assert!(s.high_water > 0);
    }

    /// Simulates a SIGKILL after every possible number of journaled stores
    /// in alloc (list and bump paths) and free; a second actor must recover
    /// a structurally perfect arena, and its allocations must never overlap.
    #[test]
    fn crash_at_every_store_is_rolled_back() {
        let mut crashes = 0;
        for op in 0..3 {
            for k in 0..12 {
                let mem = HeapMem::new(8192, 0, 0x5A5A_5A5A_5A5A_5A5A);
                let f = fresh(&mem);
                let a = ArenaCore {
                    mem: &mem,
                    ctl: 64,
                    owners: &f,
                };
                let keep = a.alloc(40, 8).unwrap();
                let freed = a.alloc(40, 8).unwrap();
                a.free(freed).unwrap();
                let before = a.check().unwrap();
                CRASH_AFTER.with(|c| c.set(Some(k)));
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match op {
                    0 => a.alloc(40, 8).map(|_| ()),    // from the free list
                    1 => a.alloc(1000, 64).map(|_| ()), // carve
                    _ => a.free(keep),
                }));
                CRASH_AFTER.with(|c| c.set(None));
                let crashed = CRASHING.with(|x| x.replace(false));
                assert_eq!(r.is_err(), crashed);
                // Another actor takes over; actor 1 is dead.
                f.dead.set(1);
                f.me.set(2);
                let after = a.check().unwrap();
                if crashed {
                    crashes += 1;
                    assert_eq!(after.recoveries, 1);
                    assert_eq!(
                        (after.used, after.free, &after.classes),
                        (before.used, before.free, &before.classes),
                        "op {op} crash after {k} stores not rolled back"
                    );
                }
                // Everything still allocatable exactly once.
                let mut got = std::collections::BTreeSet::new();
                while let Ok(p) = a.alloc(40, 8) {
                    assert!(got.insert(p), "block handed out twice");
                }
                a.check().unwrap();
            }
        }
        // Each of the three operations makes 6 journaled stores here, so
        // 6 crash points each; k = 6..12 completes normally.
        assert_eq!(crashes, 18);
    }
}
