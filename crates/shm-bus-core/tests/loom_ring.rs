//! loom models of the ring protocol on heap memory, with the payload
//! copies production makes (`ring::copy_in` / `ring::copy_out`, atomic
//! word accesses): publish / commit / read under Block policy (with
//! wrap-around and padding), lag detection under Overwrite policy, the
//! progress snapshot a joining reader takes, and the join handshake
//! racing a publishing producer.
//!
//! Block payloads are plain memory in production (`ring::payload_raw` /
//! `payload_in_place`), which loom cannot see; the Relaxed atomic copies
//! here check the same orderings (a load not ordered after the store it
//! needs may read an older value, and loom explores that), and the Miri
//! tests in `ring.rs` check the plain accesses themselves for races.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-bus-core --release --test loom_ring`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;
use shm_bus_core::ring::{self, Peek, RingCtl, RingMem, Writer};
use shm_bus_core::slots::{SLOT_ACTIVE, slot_word};

/// A ring of `cap` bytes as loom atomics, pre-filled with garbage, and
/// with forged stamps: every record boundary but the first holds the stamp
/// a record there would carry on the first lap (as an earlier lap's payload
/// might). Only the producer's clearing of headers keeps readers from
/// taking one for a record.
struct HeapRing {
    words: Vec<AtomicU64>,
}

impl HeapRing {
    fn new(cap: u64) -> Self {
        let ring = HeapRing {
            words: (0..cap / 8)
                .map(|i| {
                    AtomicU64::new(if i % 4 == 0 {
                        8 * i + 1
                    } else {
                        0xA5A5_A5A5_0000_0000 | i
                    })
                })
                .collect(),
        };
        ring.word(0).store(0, Ordering::Relaxed); // as the bus initialises it
        ring
    }
}

// SAFETY: `word` and `header` index the vector with a masked slot (always
// in range; `header`'s slot is also rounded down to a record boundary);
// `ptr` never returns a pointer (loom atomics are not plain bytes): these
// models touch payloads only through `copy_in` / `copy_out`.
unsafe impl RingMem for HeapRing {
    fn capacity(&self) -> u64 {
        self.words.len() as u64 * 8
    }
    fn word(&self, slot: u64) -> &AtomicU64 {
        &self.words[((slot & (self.capacity() - 1)) / 8) as usize]
    }
    fn header(&self, slot: u64) -> &[AtomicU64; 4] {
        let i = ((slot & (self.capacity() - 1) & !31) / 8) as usize;
        self.words[i..i + 4].try_into().expect("four words")
    }
    fn ptr(&self, _: u64) -> *mut u8 {
        panic!("loom models copy payloads with atomic words")
    }
}

/// The producer-slot words, as the bus initialises them.
struct Ctl {
    tail: AtomicU64,
    head: AtomicU64,
    next_seq: AtomicU64,
    progress: AtomicU64,
    checkpoints: Vec<AtomicU64>,
}

impl Ctl {
    fn new() -> Self {
        // Four checkpoints keep the model small (the bus has 64).
        Self::with_checkpoints(4)
    }
    /// With one checkpoint the producer publishes its progress once per
    /// lap (and before each limit computation): joiners must walk stamps.
    fn with_checkpoints(n: usize) -> Self {
        Ctl {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            checkpoints: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn ctl(&self) -> RingCtl<'_> {
        RingCtl {
            tail: &self.tail,
            head: &self.head,
            next_seq: &self.next_seq,
            progress: &self.progress,
            checkpoints: &self.checkpoints,
        }
    }
}

const CAP: u64 = 256;
const LEN: u64 = 40; // record = 32 + 64 = 96 bytes: three records wrap

fn payload_of(seq: u64) -> Vec<u8> {
    (0..LEN)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Reads a record's payload as production's copied delivery does.
fn copy_payload(mem: &HeapRing, v: &ring::RecordView) -> Vec<u8> {
    let mut words = vec![0u64; v.len.div_ceil(8) as usize];
    ring::copy_out(mem, v.payload_slot(CAP - 1), &mut words);
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    bytes.truncate(v.len as usize);
    bytes
}

fn publish(w: &mut Writer, mem: &HeapRing, ctl: &Ctl, limit: impl FnOnce(u64) -> u64) -> bool {
    let c = ctl.ctl();
    match w.reserve(mem, &c, LEN, limit) {
        Ok(res) => {
            let seq = w.next_seq();
            ring::copy_in(mem, res.payload_slot(w.mask()), &payload_of(seq));
            w.commit(mem, &c, res, 7, 0);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn block_policy_reader_sees_every_record_intact_in_order() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let mem = Arc::new(HeapRing::new(CAP));
        let ctl = Arc::new(Ctl::new());
        let state = Arc::new(AtomicU64::new(slot_word(1, SLOT_ACTIVE)));
        let cursor = Arc::new(AtomicU64::new(0));
        let producer = {
            let (mem, ctl, state, cursor) =
                (mem.clone(), ctl.clone(), state.clone(), cursor.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false).unwrap();
                let mut sent = 0;
                while sent < 3 {
                    let limit = |tail| ring::limit([(&*state, &*cursor)], tail, CAP, 0);
                    if publish(&mut w, &mem, &ctl, limit) {
                        sent += 1;
                    } else {
                        thread::yield_now();
                    }
                }
            })
        };
        let mut pos = 0;
        let mut got = 0;
        while got < 3 {
            match ring::peek(&*mem, pos, None) {
                Peek::Empty => thread::yield_now(),
                Peek::Padding { next } => {
                    pos = next;
                    cursor.store(pos, Ordering::Release);
                }
                Peek::Record(v) => {
                    assert_eq!(v.seq, got, "in order, gap-free");
                    assert_eq!(v.topic, 7);
                    assert_eq!(copy_payload(&mem, &v), payload_of(v.seq), "never torn");
                    got += 1;
                    pos = v.next;
                    // Release: pairs with the Acquire load in `ring::limit`.
                    cursor.store(pos, Ordering::Release);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        producer.join().unwrap();
    });
}

#[test]
fn overwrite_policy_reader_never_accepts_a_rewritten_record() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(1);
    // `resync` scans the checkpoints: many atomic loads, each a branch.
    builder.max_branches = 100_000;
    builder.check(|| {
        let mem = Arc::new(HeapRing::new(CAP));
        let ctl = Arc::new(Ctl::new());
        let producer = {
            let (mem, ctl) = (mem.clone(), ctl.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), true).unwrap();
                // Three 96-byte records in 256 bytes: the third pads, wraps
                // and overwrites the first.
                for _ in 0..3 {
                    assert!(publish(&mut w, &mem, &ctl, |_| u64::MAX));
                }
            })
        };
        // Read as the copied delivery does (copy, then validate); account
        // for every sequence number as either received or reported lagged.
        let mut pos = 0;
        let mut expected = 0;
        let mut accounted = 0;
        for _ in 0..4 {
            if accounted == 3 {
                break;
            }
            match ring::peek(&*mem, pos, Some(&ctl.head)) {
                Peek::Empty => thread::yield_now(),
                Peek::Padding { next } => pos = next,
                Peek::Lagged => pos = ring::resync(&*mem, &ctl.ctl()),
                Peek::Record(v) => {
                    if v.seq > expected {
                        accounted += v.seq - expected; // Lagged(n)
                        expected = v.seq;
                    }
                    let copy = copy_payload(&mem, &v);
                    if ring::intact(&ctl.head, v.pos, CAP) {
                        assert_eq!(v.seq, expected);
                        assert_eq!(copy, payload_of(v.seq), "an intact copy is the record");
                        expected += 1;
                        accounted += 1;
                        pos = v.next;
                    } else {
                        pos = ring::resync(&*mem, &ctl.ctl());
                    }
                }
                Peek::Corrupt(what) => panic!("{what}"),
            }
        }
        producer.join().unwrap();
        assert!(accounted <= 3);
    });
}

#[test]
fn snapshot_gives_the_position_and_sequence_of_the_next_record() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let mem = Arc::new(HeapRing::new(CAP));
        let ctl = Arc::new(Ctl::new());
        let producer = {
            let (mem, ctl) = (mem.clone(), ctl.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false).unwrap();
                for _ in 0..2 {
                    assert!(publish(&mut w, &mem, &ctl, |_| u64::MAX));
                }
            })
        };
        let (tail, seq) = ring::snapshot(&ctl.ctl());
        producer.join().unwrap();
        // The record at `tail` (if any yet) carries `seq`; tail = 96 * seq.
        assert_eq!(tail, seq * 96);
        if let Peek::Record(v) = ring::peek(&*mem, tail, None) {
            assert_eq!(v.seq, seq);
        }
    });
}

/// The join handshake (a store-buffering pattern) racing a producer under
/// Block policy: the producer publishes four 96-byte records into a
/// 256-byte ring while a reader joins (`join_before`, SeqCst ACTIVE,
/// `join_fence`, `join_after`) and then reads to the end. Whatever the
/// interleaving, the reader finds every record from its start on, intact:
/// a producer that computed its limit without seeing the reader never
/// overwrote a record the reader starts before.
#[test]
fn join_racing_publish_never_lets_the_producer_overwrite_unread_records() {
    join_model(4);
}

/// The same with one checkpoint: the producer publishes its progress once
/// per lap and before each limit computation, so the joiner's snapshot
/// usually trails the records and `join_after` walks the stamps forward.
/// Starting anywhere at or after the published tail must be as safe.
#[test]
fn join_with_stale_progress_never_lets_the_producer_overwrite_unread_records() {
    join_model(1);
}

fn join_model(checkpoints: usize) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.max_branches = 100_000;
    builder.check(move || {
        let mem = Arc::new(HeapRing::new(CAP));
        let ctl = Arc::new(Ctl::with_checkpoints(checkpoints));
        let state = Arc::new(AtomicU64::new(0)); // SLOT_FREE
        let cursor = Arc::new(AtomicU64::new(0xA5A5)); // garbage until joined
        let done = Arc::new(AtomicBool::new(false));
        let producer = {
            let (mem, ctl, state, cursor, done) = (
                mem.clone(),
                ctl.clone(),
                state.clone(),
                cursor.clone(),
                done.clone(),
            );
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false).unwrap();
                let mut sent = 0;
                while sent < 4 {
                    let limit = |tail| ring::limit([(&*state, &*cursor)], tail, CAP, 0);
                    if publish(&mut w, &mem, &ctl, limit) {
                        sent += 1;
                    } else {
                        thread::yield_now();
                    }
                }
                // Release: pairs with the reader's Acquire load of `done`.
                done.store(true, Ordering::Release);
            })
        };
        let before = ring::join_before(&ctl.ctl(), &cursor);
        state.store(slot_word(1, SLOT_ACTIVE), Ordering::SeqCst);
        ring::join_fence();
        let (mut pos, mut next) = ring::join_after(&*mem, &ctl.ctl(), &cursor, before, None);
        loop {
            match ring::peek(&*mem, pos, None) {
                Peek::Record(v) => {
                    assert_eq!(v.seq, next, "in order from where it joined");
                    assert_eq!(
                        copy_payload(&mem, &v),
                        payload_of(v.seq),
                        "never overwritten"
                    );
                    next += 1;
                    pos = v.next;
                    cursor.store(pos, Ordering::Release);
                }
                Peek::Padding { next } => {
                    pos = next;
                    cursor.store(pos, Ordering::Release);
                }
                Peek::Empty => {
                    if done.load(Ordering::Acquire) {
                        // Everything is visible now: nothing may be left
                        // between our cursor and the producer's tail.
                        if let Peek::Empty = ring::peek(&*mem, pos, None) {
                            assert_eq!(next, 4, "a record the reader should see was overwritten");
                            break;
                        }
                    } else {
                        thread::yield_now();
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        producer.join().unwrap();
    });
}

/// History (Block): a producer keeping `HISTORY_MARGIN` bytes back
/// publishes header-only (32-byte) records into a 256-byte ring while a
/// reader joins and rewinds
/// to the oldest retained record (`ring::oldest_start`), then reads to the
/// end. Whatever the interleaving, every record from where it started is
/// read intact and in order: the margin in `ring::limit` keeps the
/// producer off what a joiner may rewind to before it sees the joiner.
/// (With a margin of 0 this model fails: "never overwritten".)
#[test]
fn join_from_oldest_with_history_never_reads_an_overwritten_record() {
    join_from_oldest_model(HISTORY_MARGIN);
}

/// Two records back: enough for the hazard (a producer that computed its
/// limit at the joiner's tail may reach a record `size + 32` bytes back).
const HISTORY_MARGIN: u64 = 64;

fn join_from_oldest_model(margin: u64) {
    const RING: u64 = 256;
    const SMALL: u64 = 0; // header-only records: 32 bytes
    const BEFORE: u64 = 7; // published before the race (seq 0..7)
    const DURING: u64 = 7; // published while the reader joins
    fn publish_one(
        w: &mut Writer,
        mem: &HeapRing,
        ctl: &Ctl,
        limit: impl FnOnce(u64) -> u64,
    ) -> bool {
        let c = ctl.ctl();
        match w.reserve(mem, &c, SMALL, limit) {
            Ok(res) => {
                w.commit(mem, &c, res, 7, 0);
                true
            }
            Err(_) => false,
        }
    }
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(1);
    builder.max_branches = 200_000;
    builder.check(move || {
        let mem = Arc::new(HeapRing::new(RING));
        let ctl = Arc::new(Ctl::new());
        let state = Arc::new(AtomicU64::new(0)); // SLOT_FREE
        let cursor = Arc::new(AtomicU64::new(0xA5A5));
        let done = Arc::new(AtomicBool::new(false));
        // A first producer fills most of a lap and detaches (one thread:
        // no interleavings yet).
        {
            let mut w = Writer::attach(&*mem, &ctl.ctl(), false)
                .unwrap()
                .with_max_payload(SMALL);
            let mut sent = 0;
            while sent < BEFORE {
                let limit = |tail| ring::limit([(&*state, &*cursor)], tail, RING, margin);
                assert!(publish_one(&mut w, &mem, &ctl, limit));
                sent += 1;
            }
        }
        // The next producer attaches (its limit not yet computed) and
        // publishes while the reader joins.
        let producer = {
            let (mem, ctl, state, cursor, done) = (
                mem.clone(),
                ctl.clone(),
                state.clone(),
                cursor.clone(),
                done.clone(),
            );
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false)
                    .unwrap()
                    .with_max_payload(SMALL);
                let mut sent = 0;
                while sent < DURING {
                    let limit = |tail| ring::limit([(&*state, &*cursor)], tail, RING, margin);
                    if publish_one(&mut w, &mem, &ctl, limit) {
                        sent += 1;
                    } else {
                        thread::yield_now();
                    }
                }
                done.store(true, Ordering::Release);
            })
        };
        let before = ring::join_before(&ctl.ctl(), &cursor);
        state.store(slot_word(1, SLOT_ACTIVE), Ordering::SeqCst);
        ring::join_fence();
        let (tail, _) = ring::join_after(&*mem, &ctl.ctl(), &cursor, before, None);
        let mut pos = match ring::oldest_start(&*mem, &ctl.ctl(), tail, HISTORY_MARGIN, None) {
            Some(oldest) => {
                cursor.store(oldest, Ordering::Release);
                oldest
            }
            None => tail,
        };
        let mut next: Option<u64> = None;
        loop {
            match ring::peek(&*mem, pos, None) {
                Peek::Record(v) => {
                    if let Some(n) = next {
                        assert_eq!(v.seq, n, "in order, never overwritten");
                    }
                    next = Some(v.seq + 1);
                    pos = v.next;
                    cursor.store(pos, Ordering::Release);
                }
                Peek::Padding { next: n } => {
                    pos = n;
                    cursor.store(pos, Ordering::Release);
                }
                Peek::Empty => {
                    if done.load(Ordering::Acquire) {
                        if let Peek::Empty = ring::peek(&*mem, pos, None) {
                            // A record the reader started before was
                            // overwritten: its stamp no longer matches,
                            // and the reader never reached the end.
                            assert_eq!(next, Some(BEFORE + DURING), "never overwritten");
                            break;
                        }
                    } else {
                        thread::yield_now();
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        producer.join().unwrap();
    });
}
