//! `ByteMap`: an open-addressing hash map from byte strings to `u64`, living
//! in the arena, shared by every process that maps the segment.
//!
//! # Layout (one arena block)
//!
//! | offset          | content                                                    |
//! |-----------------|------------------------------------------------------------|
//! | 0               | [`MapHeader`]: magic, capacity, slot/key offsets, counters |
//! | 64              | `capacity` slots of 32 bytes: `tag, key_off, key_len, value` |
//! | 64 + 32·cap     | key bytes, bump-allocated (`keys_used` grows only)         |
//!
//! # Slot protocol
//!
//! `tag` encodes the slot state in one atomic word:
//!
//! | tag                  | state                                             |
//! |----------------------|---------------------------------------------------|
//! | `0`                  | empty — never used                                |
//! | `1`                  | tombstone — removed, or abandoned by a dead writer |
//! | `token << 2 \| 2`    | busy — claimed by the writer with this owner token |
//! | `hash62 << 2 \| 3`   | full — key, length and value are published       |
//!
//! A slot only moves forward: empty → busy → full → tombstone, or
//! busy → tombstone. Inserting key *k* walks *k*'s probe sequence (linear
//! probing from `hash & (cap - 1)`); at the first empty slot it reserves key
//! space (CAS on `keys_used`), copies the key there, CASes the tag empty →
//! busy, writes `key_off`, `key_len`, `value`, and publishes with a Release
//! store of the full tag. Readers load tags with Acquire, so a full tag
//! guarantees the key and value are visible; they skip busy slots and stop
//! at the first empty one. **Readers never wait.**
//!
//! Two writers inserting the same key always meet: slots never return to
//! empty, so both reach the same first-empty slot; the loser of the CAS
//! sees the slot busy and waits until it is full, then compares keys and
//! returns the winner's value. So concurrent inserters of one key, in any
//! processes, agree on one value.
//!
//! # A writer that dies mid-insert
//!
//! Its slot stays busy with the dead writer's token. Readers skip it (the
//! insert never happened). A writer that needs to get past it checks, once
//! spinning gets slow, whether the token's process is dead and if so CASes
//! the slot busy → tombstone and carries on. The slot and the key bytes the
//! dead writer reserved are lost (a bounded leak); nobody hangs.
//!
//! # Capacity
//!
//! Both the slot count and the key space are fixed at creation. Removed
//! slots become tombstones and are not reused, and key bytes are never
//! reclaimed: the map is built for interning (topics are never removed).
//! An insert that finds no empty slot on its probe sequence, or no key
//! space, fails with [`Error::Full`].
//!
//! The hash is FNV-1a with a 64-bit finaliser, fixed across processes and
//! runs (not DoS-resistant: keys come from cooperating processes).

use crate::error::{Error, Result};
use crate::liveness::Owners;
use crate::mem::Mem;
use crate::sync::{AtomicU64, Ordering, SpinWait};

const MAP_MAGIC: u64 = u64::from_le_bytes(*b"SHBBYMAP");
/// Bytes of the map header.
pub(crate) const HEADER_BYTES: u64 = 64;
/// Bytes of a slot.
pub(crate) const SLOT_BYTES: u64 = 32;
/// Largest slot capacity.
pub const MAX_CAPACITY: u64 = 1 << 32;

const TAG_EMPTY: u64 = 0;
const TAG_TOMB: u64 = 1;
const KIND_BUSY: u64 = 2;
const KIND_FULL: u64 = 3;

// Header words.
const H_MAGIC: u64 = 0;
const H_CAPACITY: u64 = 8;
const H_SLOTS: u64 = 16;
const H_KEYS: u64 = 24;
const H_KEYS_CAP: u64 = 32;
const H_KEYS_USED: u64 = 40;
const H_LEN: u64 = 48;
const H_TOMBS: u64 = 56;

/// The map's header as stored in the segment (8 atomic words; see the
/// module docs for their meaning). Typed handle for [`Offset`](crate::Offset)s.
#[repr(C)]
pub struct MapHeader {
    words: [AtomicU64; 8],
}
#[cfg(not(loom))]
crate::assert_layout!(MapHeader, size = 64, align = 8);
// SAFETY: repr(C), eight atomic integers, no padding, any bit pattern valid.
#[cfg(not(loom))]
unsafe impl crate::ShmSafe for MapHeader {}

/// What [`ByteMap::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// The key was absent and now maps to the given value.
    Inserted,
    /// The key was present (possibly inserted concurrently by another
    /// process); the map is unchanged. Carries the existing value.
    Existing(u64),
}

impl Insert {
    /// The value the key maps to after the call: `value` passed to insert
    /// when `Inserted`, the existing value otherwise.
    pub fn value(self, inserted: u64) -> u64 {
        match self {
            Insert::Inserted => inserted,
            Insert::Existing(v) => v,
        }
    }
}

/// Hash of a key (FNV-1a + splitmix64 finaliser).
pub(crate) fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn corrupt() -> Error {
    Error::Corrupt { what: "bytemap" }
}

/// Geometry read from the header.
#[derive(Clone, Copy)]
struct Geo {
    cap: u64,
    slots: u64,
    keys: u64,
    keys_cap: u64,
}

/// The algorithm over any [`Mem`]: header words at `hdr`.
pub(crate) struct MapCore<'a, M: Mem, O: Owners> {
    pub(crate) mem: &'a M,
    pub(crate) hdr: u64,
    /// End (exclusive) of the memory the map owns: its key area must end
    /// at or before it (the end of its arena block; `u64::MAX` on heap
    /// memory, where keys live in a separate byte area).
    pub(crate) end: u64,
    pub(crate) owners: &'a O,
}

impl<'a, M: Mem, O: Owners> MapCore<'a, M, O> {
    fn h(&self, f: u64) -> Result<&'a AtomicU64> {
        self.mem.word(self.hdr + f).ok_or_else(corrupt)
    }

    /// Writes an empty map: header, every slot tag (nothing relies on
    /// zeroed memory). `slots` and `keys` are where the slot array and key
    /// area live; `capacity` must be a power of two.
    pub(crate) fn init(&self, capacity: u64, slots: u64, keys: u64, keys_cap: u64) -> Result<()> {
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(Error::InvalidArgument(
                "capacity must be a power of two <= 2^32",
            ));
        }
        for i in 0..capacity {
            for w in 0..4 {
                self.mem
                    .word(slots + i * SLOT_BYTES + w * 8)
                    .ok_or_else(corrupt)?
                    .store(TAG_EMPTY, Ordering::Relaxed);
            }
        }
        let r = Ordering::Relaxed;
        self.h(H_CAPACITY)?.store(capacity, r);
        self.h(H_SLOTS)?.store(slots, r);
        self.h(H_KEYS)?.store(keys, r);
        self.h(H_KEYS_CAP)?.store(keys_cap, r);
        self.h(H_KEYS_USED)?.store(0, r);
        self.h(H_LEN)?.store(0, r);
        self.h(H_TOMBS)?.store(0, r);
        // Release: pairs with the Acquire load in `geo`; whoever sees the
        // magic sees empty slots.
        self.h(H_MAGIC)?.store(MAP_MAGIC, Ordering::Release);
        Ok(())
    }

    fn geo(&self) -> Result<Geo> {
        // Acquire pairs with the Release store of the magic in `init`.
        if self.h(H_MAGIC)?.load(Ordering::Acquire) != MAP_MAGIC {
            return Err(Error::Corrupt {
                what: "bytemap magic",
            });
        }
        let r = Ordering::Relaxed;
        let g = Geo {
            cap: self.h(H_CAPACITY)?.load(r),
            slots: self.h(H_SLOTS)?.load(r),
            keys: self.h(H_KEYS)?.load(r),
            keys_cap: self.h(H_KEYS_CAP)?.load(r),
        };
        // Slots right after the header, keys after the slots and inside
        // the map's memory: the parts never overlap each other (raw key
        // bytes never alias the atomic slot words) nor leave the map.
        let slot_bytes = g.cap.checked_mul(SLOT_BYTES);
        let slots_end = slot_bytes.and_then(|b| g.slots.checked_add(b));
        let ok = g.cap.is_power_of_two()
            && g.cap <= MAX_CAPACITY
            && Some(g.slots) == self.hdr.checked_add(HEADER_BYTES)
            && slots_end.is_some_and(|e| {
                self.mem.word(g.slots).is_some() && self.mem.word(e - 8).is_some() && g.keys >= e
            })
            && g.keys
                .checked_add(g.keys_cap)
                .is_some_and(|e| e <= self.end)
            && self.mem.bytes(g.keys, g.keys_cap).is_some();
        if !ok {
            return Err(Error::Corrupt {
                what: "bytemap geometry",
            });
        }
        Ok(g)
    }

    /// Checks the header (used on attach).
    pub(crate) fn validate(&self) -> Result<()> {
        let g = self.geo()?;
        if self.h(H_KEYS_USED)?.load(Ordering::Relaxed) > g.keys_cap {
            return Err(Error::Corrupt {
                what: "bytemap key space",
            });
        }
        Ok(())
    }

    fn slot(&self, g: &Geo, i: u64, w: u64) -> Result<&'a AtomicU64> {
        self.mem
            .word(g.slots + i * SLOT_BYTES + w * 8)
            .ok_or_else(corrupt)
    }

    /// Compares the published key of slot `i` with `key`. Only call after an
    /// Acquire load saw the slot full.
    fn key_eq(&self, g: &Geo, i: u64, key: &[u8]) -> Result<bool> {
        let off = self.slot(g, i, 1)?.load(Ordering::Relaxed);
        let len = self.slot(g, i, 2)?.load(Ordering::Relaxed);
        if len != key.len() as u64 {
            return Ok(false);
        }
        let p = self.key_ptr(g, off, len)?;
        // SAFETY: `p..p+len` is inside the key area (checked in key_ptr);
        // published key bytes are never written again (key space is
        // bump-allocated, never reused), and the Acquire load of the full tag
        // ordered their writing before this read.
        let stored = unsafe { std::slice::from_raw_parts(p, len as usize) };
        Ok(stored == key)
    }

    fn key_ptr(&self, g: &Geo, off: u64, len: u64) -> Result<*mut u8> {
        let end = off.checked_add(len).ok_or_else(corrupt)?;
        if off < g.keys || end > g.keys + g.keys_cap {
            return Err(Error::Corrupt {
                what: "bytemap key offset",
            });
        }
        self.mem.bytes(off, len).ok_or_else(corrupt)
    }

    fn full_tag(key: &[u8]) -> u64 {
        (hash(key) << 2) | KIND_FULL
    }

    /// Reserves `len` bytes of key space, or `Full`.
    fn reserve(&self, g: &Geo, len: u64) -> Result<u64> {
        let used = self.h(H_KEYS_USED)?;
        let mut cur = used.load(Ordering::Relaxed);
        loop {
            let next = cur
                .checked_add(len)
                .filter(|&n| n <= g.keys_cap)
                .ok_or(Error::Full {
                    what: "ByteMap key space",
                })?;
            // Relaxed: the reservation only needs atomicity; the key bytes
            // are published through the slot tag's Release/Acquire.
            match used.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(g.keys + cur),
                Err(c) => cur = c,
            }
        }
    }

    /// Inserts `key → value` unless `key` is present.
    pub(crate) fn insert(&self, key: &[u8], value: u64) -> Result<Insert> {
        let g = self.geo()?;
        let full = Self::full_tag(key);
        let mask = g.cap - 1;
        let mut i = hash(key) & mask;
        let mut reserved: Option<u64> = None;
        let me = self.owners.token();
        for _ in 0..g.cap {
            let tag = self.slot(&g, i, 0)?;
            let spin = SpinWait::new();
            loop {
                // Acquire pairs with the Release store of the full tag below
                // (in whichever process published it).
                let t = tag.load(Ordering::Acquire);
                match (t, t & 3) {
                    (TAG_EMPTY, _) => {
                        let koff = match reserved {
                            Some(k) => k,
                            None => {
                                let k = self.reserve(&g, key.len() as u64)?;
                                let p = self.key_ptr(&g, k, key.len() as u64)?;
                                // SAFETY: [k, k+len) was just reserved by
                                // us alone (CAS on keys_used) and lies in the
                                // key area; it becomes visible to others only
                                // through the Release publish below.
                                unsafe {
                                    std::ptr::copy_nonoverlapping(key.as_ptr(), p, key.len())
                                };
                                reserved = Some(k);
                                k
                            }
                        };
                        // Acquire on success: nothing to synchronise with
                        // (the slot was empty), but keeps our slot writes
                        // after the claim. Failure: re-examine the slot.
                        if tag
                            .compare_exchange(
                                TAG_EMPTY,
                                (me << 2) | KIND_BUSY,
                                Ordering::Acquire,
                                Ordering::Relaxed,
                            )
                            .is_err()
                        {
                            continue;
                        }
                        self.slot(&g, i, 1)?.store(koff, Ordering::Relaxed);
                        self.slot(&g, i, 2)?
                            .store(key.len() as u64, Ordering::Relaxed);
                        self.slot(&g, i, 3)?.store(value, Ordering::Relaxed);
                        // Release: publishes key bytes, key_off, key_len and
                        // value; pairs with the Acquire tag loads in insert,
                        // get, remove and iteration.
                        tag.store(full, Ordering::Release);
                        // Relaxed: a statistic.
                        self.h(H_LEN)?.fetch_add(1, Ordering::Relaxed);
                        return Ok(Insert::Inserted);
                    }
                    (TAG_TOMB, _) => break,
                    (_, KIND_BUSY) => {
                        if spin.is_slow() && self.owners.is_dead(t >> 2) {
                            // The writer died mid-insert: retire its slot.
                            // Relaxed: the slot carries no data to publish.
                            if tag
                                .compare_exchange(t, TAG_TOMB, Ordering::Relaxed, Ordering::Relaxed)
                                .is_ok()
                            {
                                self.h(H_TOMBS)?.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                        spin.wait();
                    }
                    (_, KIND_FULL) => {
                        if t == full && self.key_eq(&g, i, key)? {
                            return Ok(Insert::Existing(
                                self.slot(&g, i, 3)?.load(Ordering::Relaxed),
                            ));
                        }
                        break;
                    }
                    _ => {
                        return Err(Error::Corrupt {
                            what: "bytemap slot tag",
                        });
                    }
                }
            }
            i = (i + 1) & mask;
        }
        Err(Error::Full {
            what: "ByteMap slots",
        })
    }

    /// Looks `key` up. Never waits.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.find(key)?.map(|(_, _, v)| v))
    }

    /// `(slot, tag, value)` of `key`, if present.
    fn find(&self, key: &[u8]) -> Result<Option<(u64, u64, u64)>> {
        let g = self.geo()?;
        let full = Self::full_tag(key);
        let mask = g.cap - 1;
        let mut i = hash(key) & mask;
        for _ in 0..g.cap {
            // Acquire pairs with the Release publish in `insert`.
            let t = self.slot(&g, i, 0)?.load(Ordering::Acquire);
            if t == TAG_EMPTY {
                return Ok(None);
            }
            if t == full && self.key_eq(&g, i, key)? {
                return Ok(Some((i, t, self.slot(&g, i, 3)?.load(Ordering::Relaxed))));
            }
            i = (i + 1) & mask;
        }
        Ok(None)
    }

    /// Removes `key`, returning its value. The slot becomes a tombstone.
    pub(crate) fn remove(&self, key: &[u8]) -> Result<Option<u64>> {
        let g = self.geo()?;
        let full = Self::full_tag(key);
        let mask = g.cap - 1;
        let mut i = hash(key) & mask;
        for _ in 0..g.cap {
            let tag = self.slot(&g, i, 0)?;
            // Acquire pairs with the Release publish in `insert`.
            let t = tag.load(Ordering::Acquire);
            if t == TAG_EMPTY {
                return Ok(None);
            }
            if t == full && self.key_eq(&g, i, key)? {
                let v = self.slot(&g, i, 3)?.load(Ordering::Relaxed);
                // Relaxed: removing publishes nothing; losing the CAS means
                // someone else removed it first.
                if tag
                    .compare_exchange(t, TAG_TOMB, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    self.h(H_LEN)?.fetch_sub(1, Ordering::Relaxed);
                    self.h(H_TOMBS)?.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(v));
                }
            }
            i = (i + 1) & mask;
        }
        Ok(None)
    }

    /// The published entry in slot `i`, if any.
    pub(crate) fn entry(&self, i: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let g = self.geo()?;
        if i >= g.cap {
            return Ok(None);
        }
        // Acquire pairs with the Release publish in `insert`.
        let t = self.slot(&g, i, 0)?.load(Ordering::Acquire);
        if t & 3 != KIND_FULL {
            return Ok(None);
        }
        let off = self.slot(&g, i, 1)?.load(Ordering::Relaxed);
        let len = self.slot(&g, i, 2)?.load(Ordering::Relaxed);
        let v = self.slot(&g, i, 3)?.load(Ordering::Relaxed);
        let p = self.key_ptr(&g, off, len)?;
        // SAFETY: as in `key_eq`: in the key area, immutable once published.
        let key = unsafe { std::slice::from_raw_parts(p, len as usize) }.to_vec();
        Ok(Some((key, v)))
    }

    pub(crate) fn capacity(&self) -> Result<u64> {
        Ok(self.geo()?.cap)
    }

    pub(crate) fn counters(&self) -> Result<MapStats> {
        let g = self.geo()?;
        let r = Ordering::Relaxed;
        Ok(MapStats {
            len: self.h(H_LEN)?.load(r),
            tombstones: self.h(H_TOMBS)?.load(r),
            capacity: g.cap,
            key_bytes_used: self.h(H_KEYS_USED)?.load(r).min(g.keys_cap),
            key_bytes_capacity: g.keys_cap,
        })
    }
}

/// Occupancy of a [`ByteMap`] (read without locks; approximate while
/// writers are active).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapStats {
    /// Live entries.
    pub len: u64,
    /// Slots retired by `remove` or by a dead writer (not reusable).
    pub tombstones: u64,
    /// Slots in total.
    pub capacity: u64,
    /// Key bytes reserved so far.
    pub key_bytes_used: u64,
    /// Key bytes in total.
    pub key_bytes_capacity: u64,
}

#[cfg(not(loom))]
pub use public::{ByteMap, Iter};

#[cfg(not(loom))]
mod public {
    use super::*;
    use crate::liveness::OsOwners;
    use crate::{Arena, Offset, Segment};

    /// A handle on a `ByteMap` in a segment. Cheap to create; `Copy`.
    #[derive(Clone, Copy, Debug)]
    pub struct ByteMap<'s> {
        seg: &'s Segment,
        hdr: Offset<MapHeader>,
        /// End of the map's arena block (see `MapCore::end`).
        end: u64,
    }

    impl<'s> ByteMap<'s> {
        /// Creates an empty map in `arena` with `capacity` slots (rounded up
        /// to a power of two) and `key_bytes` bytes of key space. Store
        /// [`ByteMap::offset`] (e.g. in a root slot) so others can attach.
        ///
        /// Keep the load factor below ~70 % for short probe sequences.
        pub fn create(arena: &Arena<'s>, capacity: u64, key_bytes: u64) -> Result<Self> {
            let cap = capacity
                .max(2)
                .checked_next_power_of_two()
                .filter(|&c| c <= MAX_CAPACITY)
                .ok_or(Error::InvalidArgument("capacity must be at most 2^32"))?;
            let total = HEADER_BYTES
                .checked_add(cap * SLOT_BYTES)
                .and_then(|b| b.checked_add(key_bytes))
                .ok_or(Error::OutOfMemory {
                    requested: u64::MAX,
                })?;
            let off = arena.alloc(total, 64)?;
            let seg = arena.segment();
            let base = off.get();
            let end = base + total;
            let core = MapCore {
                mem: seg,
                hdr: base,
                end,
                owners: &OsOwners,
            };
            if let Err(e) = core.init(
                cap,
                base + HEADER_BYTES,
                base + HEADER_BYTES + cap * SLOT_BYTES,
                key_bytes,
            ) {
                let _ = arena.free(off);
                return Err(e);
            }
            Ok(ByteMap {
                seg,
                hdr: off.cast(),
                end,
            })
        }

        /// Attaches to the map at `off` (an offset returned by
        /// [`ByteMap::offset`]), validating its header and that the map
        /// lies inside its arena block.
        ///
        /// Errors: [`Error::BadOffset`] (also when `off` is not a live
        /// arena block), [`Error::Corrupt`].
        pub fn attach(seg: &'s Segment, off: Offset<MapHeader>) -> Result<Self> {
            seg.resolve(off)?;
            let size = seg.arena().block_size(off)?;
            let end = off.get().checked_add(size).ok_or(Error::BadOffset {
                offset: off.get(),
                len: size,
                align: 64,
            })?;
            let m = ByteMap { seg, hdr: off, end };
            m.core().validate()?;
            Ok(m)
        }

        fn core(&self) -> MapCore<'s, Segment, OsOwners> {
            MapCore {
                mem: self.seg,
                hdr: self.hdr.get(),
                end: self.end,
                owners: &OsOwners,
            }
        }

        /// Where the map lives (store it to let others attach).
        pub fn offset(&self) -> Offset<MapHeader> {
            self.hdr
        }

        /// Inserts `key → value` if `key` is absent; otherwise returns the
        /// existing value and changes nothing. Concurrent inserters of the
        /// same key (any processes) all see the same winning value. May wait
        /// for another writer that is inserting into the same slot (never
        /// for a dead one).
        ///
        /// Errors: [`Error::Full`] (no slot or no key space), [`Error::Corrupt`].
        pub fn insert(&self, key: &[u8], value: u64) -> Result<Insert> {
            self.core().insert(key, value)
        }

        /// The value of `key`. Lock-free, never waits.
        pub fn get(&self, key: &[u8]) -> Result<Option<u64>> {
            self.core().get(key)
        }

        /// Removes `key` and returns its value. Its slot becomes a tombstone
        /// and is not reused.
        pub fn remove(&self, key: &[u8]) -> Result<Option<u64>> {
            self.core().remove(key)
        }

        /// Number of entries (approximate while writers are active).
        pub fn len(&self) -> Result<u64> {
            Ok(self.core().counters()?.len)
        }

        /// Whether the map has no entries.
        pub fn is_empty(&self) -> Result<bool> {
            Ok(self.len()? == 0)
        }

        /// Slot capacity.
        pub fn capacity(&self) -> Result<u64> {
            self.core().capacity()
        }

        /// Occupancy counters.
        pub fn stats(&self) -> Result<MapStats> {
            self.core().counters()
        }

        /// Iterates over the published entries, in slot order. Entries
        /// inserted or removed during iteration may or may not be seen; each
        /// key is seen at most once.
        pub fn iter(&self) -> Iter<'s> {
            Iter {
                map: *self,
                slot: 0,
            }
        }
    }

    /// Iterator over `(key, value)` of a [`ByteMap`]; see [`ByteMap::iter`].
    /// Yields an error (and then stops) if the map is found damaged.
    #[derive(Debug)]
    pub struct Iter<'s> {
        map: ByteMap<'s>,
        slot: u64,
    }

    impl Iterator for Iter<'_> {
        type Item = Result<(Vec<u8>, u64)>;
        fn next(&mut self) -> Option<Self::Item> {
            let core = self.map.core();
            let cap = match core.capacity() {
                Ok(c) => c,
                Err(e) => {
                    if self.slot == u64::MAX {
                        return None;
                    }
                    self.slot = u64::MAX;
                    return Some(Err(e));
                }
            };
            while self.slot < cap {
                let i = self.slot;
                self.slot += 1;
                match core.entry(i) {
                    Ok(Some(e)) => return Some(Ok(e)),
                    Ok(None) => {}
                    Err(e) => {
                        self.slot = u64::MAX;
                        return Some(Err(e));
                    }
                }
            }
            None
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::mem::HeapMem;
    use std::cell::Cell;

    use crate::liveness::FakeOwners as Fake;

    fn map(mem: &HeapMem, cap: u64, keys: u64) -> Fake {
        let f = Fake {
            me: Cell::new(7),
            dead: Cell::new(0),
        };
        MapCore {
            mem,
            hdr: 0,
            end: u64::MAX,
            owners: &f,
        }
        .init(cap, 64, HeapMem::BYTES_BASE, keys)
        .unwrap();
        f
    }

    #[test]
    fn insert_get_remove_iterate() {
        let mem = HeapMem::new(8 + 16 * 4, 256, u64::MAX);
        let f = map(&mem, 16, 256);
        let m = MapCore {
            mem: &mem,
            hdr: 0,
            end: u64::MAX,
            owners: &f,
        };
        assert_eq!(m.insert(b"a/b", 1).unwrap(), Insert::Inserted);
        assert_eq!(m.insert(b"a/b", 2).unwrap(), Insert::Existing(1));
        assert_eq!(m.insert(b"", 3).unwrap(), Insert::Inserted);
        assert_eq!(m.get(b"a/b").unwrap(), Some(1));
        assert_eq!(m.get(b"").unwrap(), Some(3));
        assert_eq!(m.get(b"zz").unwrap(), None);
        assert_eq!(m.remove(b"a/b").unwrap(), Some(1));
        assert_eq!(m.get(b"a/b").unwrap(), None);
        assert_eq!(m.insert(b"a/b", 4).unwrap(), Insert::Inserted);
        let mut all: Vec<_> = (0..16).filter_map(|i| m.entry(i).unwrap()).collect();
        all.sort();
        assert_eq!(all, vec![(b"".to_vec(), 3), (b"a/b".to_vec(), 4)]);
        let s = m.counters().unwrap();
        assert_eq!((s.len, s.tombstones), (2, 1));
    }

    #[test]
    fn full_slots_and_full_key_space_are_errors() {
        let mem = HeapMem::new(8 + 4 * 4, 10, 0xdead_beef);
        let f = map(&mem, 4, 10);
        let m = MapCore {
            mem: &mem,
            hdr: 0,
            end: u64::MAX,
            owners: &f,
        };
        assert!(matches!(
            m.insert(b"0123456789x", 0),
            Err(Error::Full {
                what: "ByteMap key space"
            })
        ));
        for k in [b"a", b"b", b"c", b"d"] {
            m.insert(k, 1).unwrap();
        }
        assert!(matches!(
            m.insert(b"e", 0),
            Err(Error::Full {
                what: "ByteMap slots"
            })
        ));
        assert_eq!(m.get(b"e").unwrap(), None, "miss on a full map terminates");
    }

    #[test]
    fn dead_writers_busy_slot_becomes_tombstone() {
        let mem = HeapMem::new(8 + 8 * 4, 64, 0);
        let f = map(&mem, 8, 64);
        let m = MapCore {
            mem: &mem,
            hdr: 0,
            end: u64::MAX,
            owners: &f,
        };
        // A writer with token 99 claimed key "k"'s home slot and died.
        let home = hash(b"k") & 7;
        mem.word(64 + home * SLOT_BYTES)
            .unwrap()
            .store((99 << 2) | KIND_BUSY, Ordering::Relaxed);
        assert_eq!(m.get(b"k").unwrap(), None, "readers skip busy slots");
        f.dead.set(99);
        assert_eq!(m.insert(b"k", 5).unwrap(), Insert::Inserted);
        assert_eq!(m.get(b"k").unwrap(), Some(5));
        assert_eq!(
            mem.word(64 + home * SLOT_BYTES)
                .unwrap()
                .load(Ordering::Relaxed),
            TAG_TOMB
        );
    }

    #[test]
    fn garbage_tag_is_corrupt_not_a_hang() {
        let mem = HeapMem::new(8 + 4 * 4, 16, 0);
        let f = map(&mem, 4, 16);
        let m = MapCore {
            mem: &mem,
            hdr: 0,
            end: u64::MAX,
            owners: &f,
        };
        for i in 0..4 {
            mem.word(64 + i * SLOT_BYTES)
                .unwrap()
                .store(0x40, Ordering::Relaxed);
        }
        assert!(matches!(m.insert(b"x", 1), Err(Error::Corrupt { .. })));
        assert_eq!(m.get(b"x").unwrap(), None);
    }
}
