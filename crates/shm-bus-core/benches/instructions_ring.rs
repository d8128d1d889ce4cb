//! A floor variant between `instructions_floor` and `instructions`: the
//! same loop (one send and one receive of a 64-byte message per
//! iteration, in one process) on the bus's own ring protocol with nothing
//! of the bus around it — `ring::Writer::reserve` / `commit` (32-byte
//! header, sequence number, TSC stamp, the next header cleared, the
//! checkpoints, progress published once per chunk) and `ring::peek` (every
//! position and length read from the ring validated) with the payload read
//! in place, one producer, one reader, its cursor published once per
//! chunk. No topic table or filter, no choice among producers, no
//! `Sample`, no statistics, no waits or wakes.
//!
//! So `instructions` = this + what the bus adds around its rings, and
//! this = `instructions_floor` + what the bus's record format and its
//! validation cost.
//!
//! ```text
//! cargo bench -p shm-bus-core --features ring-internals --bench instructions_ring
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use shm_bus_core::ring::{self, Peek, RingCtl, RingMem, Writer};
use shm_bus_core::{Bus, clock, slots};

mod common;

/// Ring bytes: the bus's default ring.
const CAP: u64 = 1 << 20;
/// Checkpoints per ring, as in the bus.
const CHECKPOINTS: usize = 64;

/// A ring on the heap, addressed as the bus addresses its segment (a base
/// pointer and a mask).
struct HeapRing {
    words: Box<[AtomicU64]>,
    mask: u64,
}

impl HeapRing {
    fn new(cap: u64) -> HeapRing {
        HeapRing {
            words: (0..cap / 8).map(|_| AtomicU64::new(0)).collect(),
            mask: cap - 1,
        }
    }

    /// Byte `slot & mask` of the ring. Writing through it is allowed: the
    /// words are `AtomicU64`s (interior mutability), and this bench is
    /// single-threaded.
    #[inline]
    fn at(&self, slot: u64) -> *mut u8 {
        // SAFETY: `slot & mask` < `capacity`, the byte length of `words`,
        // so the offset stays inside the allocation.
        unsafe {
            self.words
                .as_ptr()
                .cast::<u8>()
                .cast_mut()
                .add((slot & self.mask) as usize)
        }
    }
}

// SAFETY: every method masks the slot with `mask` (`capacity - 1`), so
// each access lies inside the `capacity` bytes of `words`, which live as
// long as `self`; `words` is 8-aligned (an `AtomicU64` array), `word`'s
// slot is 8-aligned (the trait's contract) and `header` rounds down to a
// 32-byte record boundary, so its four words are inside the ring too.
// AtomicU64 is valid for any bits.
unsafe impl RingMem for HeapRing {
    #[inline]
    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    #[inline]
    fn word(&self, slot: u64) -> &AtomicU64 {
        // SAFETY: see the impl's comment.
        unsafe { &*(self.at(slot) as *const AtomicU64) }
    }

    #[inline]
    fn header(&self, slot: u64) -> &[AtomicU64; 4] {
        // SAFETY: see the impl's comment.
        unsafe { &*(self.at(slot & !31) as *const [AtomicU64; 4]) }
    }

    #[inline]
    fn ptr(&self, slot: u64) -> *mut u8 {
        self.at(slot)
    }
}

/// One `reserve` + `commit` and one `peek` + in-place read per message.
fn one_by_one(_bus: &Bus, n: u64) -> common::Result<u64> {
    let mem = HeapRing::new(CAP);
    let (tail, head, next_seq, progress) = (
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
        AtomicU64::new(0),
    );
    let checkpoints: Vec<AtomicU64> = (0..CHECKPOINTS).map(|_| AtomicU64::new(0)).collect();
    let ctl = RingCtl {
        tail: &tail,
        head: &head,
        next_seq: &next_seq,
        progress: &progress,
        checkpoints: &checkpoints,
    };
    let mut writer = Writer::attach(&mem, &ctl, false)?;
    // The reader's slot: active, its cursor the one `limit` reads.
    let state = AtomicU64::new(slots::slot_word(1, slots::SLOT_ACTIVE));
    let shared_cursor = AtomicU64::new(0);
    let chunk = CAP / CHECKPOINTS as u64;
    let mut cursor = 0u64;
    let mut published = 0u64;
    let payload = [7u8; 64];
    let mut sum = 0u64;
    for _ in 0..n {
        // The producer (Block policy), as `Publisher::publish` writes.
        let res = writer
            .reserve(&mem, &ctl, payload.len() as u64, |t| {
                ring::limit([(&state, &shared_cursor)], t, CAP, 0)
            })
            .map_err(|e| format!("reserve: {e:?}"))?;
        let dst = ring::payload_raw(&mem, &res);
        // SAFETY: `dst` is the payload of the current, uncommitted Block
        // reservation, `payload.len()` bytes inside the ring that no reader
        // reads before the commit stamp below (`payload_raw`'s contract).
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), dst.cast::<u8>(), payload.len()) };
        writer.commit(&mem, &ctl, res, 0, clock::ticks());
        // The reader.
        let view = loop {
            match ring::peek(&mem, cursor, None) {
                Peek::Record(view) => break view,
                Peek::Padding { next } => cursor = next,
                other => return Err(format!("the ring lost a message: {other:?}").into()),
            }
        };
        // SAFETY: `peek` loaded the record's stamp with Acquire and checked
        // it lies inside the ring; the policy is Block and the cursor stays
        // at `view.pos` (so `limit` keeps the producer off these bytes)
        // until the read below is done.
        let bytes = unsafe { ring::payload_in_place(&mem, &view) };
        sum += u64::from(bytes[0]);
        cursor = view.next;
        if cursor - published >= chunk {
            published = cursor;
            // Release: pairs with the Acquire cursor load in `ring::limit`;
            // the bytes before `cursor` have been read.
            shared_cursor.store(cursor, Ordering::Release);
        }
    }
    Ok(sum)
}

fn main() -> std::process::ExitCode {
    common::main(
        "instructions per send + receive on the bus's ring protocol alone (64 B, one by one)",
        one_by_one,
    )
}
