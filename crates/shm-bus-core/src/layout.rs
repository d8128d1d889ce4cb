//! What the bus keeps in the segment. Every type here is `#[repr(C)]`,
//! made of atomic integers only (valid for any bit pattern), and has a
//! compile-time size/align assertion.
//!
//! ```text
//! root 0 ─► BusHeader ──┬─► TopicRecord[max_topics]     (append-only, TopicId = index)
//!                       ├─► ByteMap topic bytes → id
//!                       ├─► topic byte pool             (bump-allocated literals)
//!                       ├─► ProducerSlot[max_producers] (owner, tail, counters, checkpoints)
//!                       ├─► SubscriberSlot[max_subscribers]
//!                       ├─► cursors[max_subscribers][max_producers rounded to 8]
//!                       ├─► group table: lock + active mask, then group slots (see `group::protocol`)
//!                       └─► rings[max_producers] × ring_bytes (4 KiB aligned)
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64};

use shm_bus_alloc::{ShmSafe, assert_layout};

/// Root slot of the [`BusHeader`].
pub(crate) const ROOT_BUS: usize = 0;

/// Bytes of a producer / subscriber name kept in the segment.
pub const NAME_BYTES: usize = 32;

/// Checkpoints per ring (see `ring`): where records start, for readers that
/// must find a record boundary after being lapped.
pub(crate) const CHECKPOINTS: usize = 64;

pub(crate) use crate::slots::{
    SLOT_ACTIVE, SLOT_CLAIMING, SLOT_FREE, slot_state, slot_token, slot_word,
};

/// Topic record states (`0`, set at creation, is "empty").
pub(crate) const TOPIC_READY: u64 = 0x70_91C0;
pub(crate) const TOPIC_DEAD: u64 = 0xDEAD;

/// The bus's own header, reached through root slot 0.
#[repr(C, align(64))]
pub(crate) struct BusHeader {
    /// `BUS_MAGIC`: tells a bus segment from another user of the allocator.
    pub magic: AtomicU64,
    pub ring_bytes: AtomicU64,
    pub max_producers: AtomicU32,
    pub max_subscribers: AtomicU32,
    pub max_topics: AtomicU32,
    pub policy: AtomicU32,
    /// Offsets (from the segment base) of the tables.
    pub topics: AtomicU64,
    pub topic_map: AtomicU64,
    pub topic_pool: AtomicU64,
    pub topic_pool_bytes: AtomicU64,
    pub producers: AtomicU64,
    pub subscribers: AtomicU64,
    pub cursors: AtomicU64,
    /// `u64`s per subscriber row of `cursors` (max_producers rounded to 8).
    pub cursor_stride: AtomicU64,
    pub rings: AtomicU64,
    /// Offset of the group table (0 in segments made before groups).
    pub groups: AtomicU64,
    /// Bytes of one group slot in it.
    pub group_bytes: AtomicU64,
    _pad1: [AtomicU64; 1],
    // ---- line 2 (at 128): topic table growth
    /// Number of topic ids handed out (some may be `TOPIC_DEAD` holes).
    pub topic_count: AtomicU64,
    /// Bytes of the topic pool handed out (bump; never reclaimed).
    pub topic_pool_used: AtomicU64,
    /// Bit `p` set once producer slot `p` has ever been claimed, so readers
    /// skip rings that never held data.
    pub producer_mask: AtomicU64,
    /// `clock::ticks()` and wall-clock ns read together at creation: the
    /// anchor for converting record timestamps (see `clock`).
    pub clock_ticks: AtomicU64,
    pub clock_ns: AtomicU64,
    /// Non-zero once `Bus::remove` removed the bus (Release; 0 in older
    /// segments, where this word was padding): attached processes answer
    /// `BusRemoved` instead of waiting on a bus nobody can open again.
    pub removed: AtomicU64,
    _pad2: [AtomicU64; 2],
    // ---- line 3 (at 192): waking sleeping subscribers (read by every publish)
    /// Futex word: bumped by a publisher that wakes subscribers.
    pub data_futex: AtomicU32,
    /// Number of subscribers asleep (or about to sleep) on `data_futex`.
    pub data_sleepers: AtomicU32,
    /// Times a subscriber registered as a sleeper (wrapping; 0 in older
    /// segments, where this word was padding): a publisher wakes again
    /// only once this moved since its last wake (see `wake`).
    pub data_registrations: AtomicU32,
    _pad3: [AtomicU32; 13],
}
assert_layout!(BusHeader, size = 256, align = 64);
// SAFETY: repr(C), atomics only (any bit pattern valid), explicit padding
// fields, no pointers or handles.
unsafe impl ShmSafe for BusHeader {}

pub(crate) const BUS_MAGIC: u64 = u64::from_le_bytes(*b"BUS-HDR1");

/// One interned topic. Written once by the process that claims the id,
/// then read-only.
#[repr(C)]
pub(crate) struct TopicRecord {
    /// `TOPIC_EMPTY`, `TOPIC_READY` (Release, after the fields), or
    /// `TOPIC_DEAD` (an id lost in an interning race; never used).
    pub state: AtomicU64,
    /// Offset of the literal's bytes in the topic pool.
    pub bytes: AtomicU64,
    /// Length of the literal.
    pub len: AtomicU64,
    /// Hash of the literal (for diagnostics and quick comparison).
    pub hash: AtomicU64,
}
assert_layout!(TopicRecord, size = 32, align = 8);
// SAFETY: as for BusHeader.
unsafe impl ShmSafe for TopicRecord {}

/// A producer's slot: who owns it and where its ring stands.
#[repr(C, align(64))]
pub(crate) struct ProducerSlot {
    // ---- line 0: ownership (written when claimed / reaped)
    /// `slot_word(owner token, state)`; claimed by CAS from `SLOT_FREE`.
    pub state: AtomicU64,
    pub owner_pid: AtomicU64,
    pub owner_start: AtomicU64,
    /// Times this slot has been claimed.
    pub generation: AtomicU64,
    pub name: [AtomicU64; NAME_BYTES / 8],
    // ---- line 1: the producer's progress (written by it, read rarely)
    /// Ring position one past the last committed record (Release).
    pub tail: AtomicU64,
    /// Overwrite policy: ring position up to which the producer may be
    /// writing; stored before the bytes are written (see `ring`).
    pub head: AtomicU64,
    /// Sequence number the next record will carry.
    pub next_seq: AtomicU64,
    /// Unused since 2026-11-30 (kept so the layout does not change): the
    /// records published through a slot are counted by its sequence
    /// numbers (`next_seq`, walked forward by `Bus::info`).
    pub published: AtomicU64,
    /// Times a publish found the ring full.
    pub full_waits: AtomicU64,
    /// `clock::ticks()` of the last publish.
    pub last_publish: AtomicU64,
    pub claimed_at_ns: AtomicU64,
    /// Seqlock over `tail` and `next_seq` (see `ring::snapshot`).
    pub progress: AtomicU64,
    // ---- line 2: the producer waiting for space (read by subscribers)
    /// Futex word bumped by a subscriber that frees space.
    pub space_futex: AtomicU32,
    /// Non-zero while the producer sleeps (or is about to) on `space_futex`.
    pub space_waiters: AtomicU32,
    _pad2: [AtomicU64; 7],
    // ---- lines 3..: checkpoints
    pub checkpoints: [AtomicU64; CHECKPOINTS],
}
assert_layout!(ProducerSlot, size = 192 + CHECKPOINTS * 8, align = 64);
// SAFETY: as for BusHeader.
unsafe impl ShmSafe for ProducerSlot {}

/// A subscriber's slot. Its cursors live in the `cursors` table.
#[repr(C, align(64))]
pub(crate) struct SubscriberSlot {
    // ---- line 0: ownership
    /// `slot_word(owner token, state)`.
    pub state: AtomicU64,
    pub owner_pid: AtomicU64,
    pub owner_start: AtomicU64,
    pub generation: AtomicU64,
    pub name: [AtomicU64; NAME_BYTES / 8],
    // ---- line 1: counters (written by the subscriber)
    pub received: AtomicU64,
    pub lagged: AtomicU64,
    pub last_active_ns: AtomicU64,
    /// 1 while counted in `BusHeader::data_sleepers` (so a reaper can
    /// un-count a subscriber that died asleep).
    pub sleeping: AtomicU64,
    pub claimed_at_ns: AtomicU64,
    _pad1: [AtomicU64; 3],
}
assert_layout!(SubscriberSlot, size = 128, align = 64);
// SAFETY: as for BusHeader.
unsafe impl ShmSafe for SubscriberSlot {}

/// Packs a name into the slot's words (truncated to `NAME_BYTES`).
pub(crate) fn store_name(words: &[AtomicU64; NAME_BYTES / 8], name: &str) {
    let mut bytes = [0u8; NAME_BYTES];
    let n = name.len().min(NAME_BYTES);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    for (w, chunk) in words.iter().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        // Relaxed: published by the Release store of the slot state.
        w.store(u64::from_le_bytes(b), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Reads a name stored by [`store_name`] (lossy UTF-8, NULs trimmed).
pub(crate) fn load_name(words: &[AtomicU64; NAME_BYTES / 8]) -> String {
    let mut bytes = Vec::with_capacity(NAME_BYTES);
    for w in words {
        // Relaxed: diagnostics only; read after an Acquire load of the state.
        bytes.extend_from_slice(&w.load(std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    }
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
