//! The protocol on heap memory with std threads: the same calls the bus
//! makes, with the Block payload path touching plain memory through
//! [`payload_raw`] / [`payload_in_place`] exactly as production does. Run
//! under Miri (`cargo +nightly miri test -p shm-bus-core --lib miri_`),
//! whose data-race detector checks that no plain access races; the loom
//! models (`tests/loom_ring.rs`) explore the interleavings.

use super::*;
use std::sync::Arc;
use std::thread;

/// 32-byte aligned atomic words, like a ring in the segment.
#[repr(C, align(32))]
pub(crate) struct AtomicLine([AtomicU64; 4]);

/// A ring on the heap, pre-filled with garbage, and with forged stamps:
/// every record boundary but the first holds the stamp a record there
/// would carry on the first lap, as a payload of an earlier lap might.
/// Only the producer's clearing of the next header keeps readers from
/// taking one for a record.
pub(crate) struct HeapRing {
    lines: Box<[AtomicLine]>,
}

impl HeapRing {
    pub(crate) fn new(cap: u64) -> Self {
        let word = |i: u64| AtomicU64::new(0xA5A5_A5A5_0000_0000 | i);
        let lines: Box<[AtomicLine]> = (0..cap / 32)
            .map(|l| {
                AtomicLine([
                    AtomicU64::new(32 * l + 1),
                    word(4 * l + 1),
                    word(4 * l + 2),
                    word(4 * l + 3),
                ])
            })
            .collect();
        // As the bus initialises a ring: no stamp of position 0.
        lines[0].0[0].store(0, Ordering::Relaxed);
        HeapRing { lines }
    }
}

// SAFETY: `lines` is one allocation of `capacity()` bytes (AtomicLine
// is 32 bytes, no padding), 32-byte aligned, alive as long as `self`;
// `word`, `header` and `ptr` mask their slot into it (`header` takes the
// whole 32-byte line the slot falls in); capacity is a power of two
// of at least 256 in every test.
unsafe impl RingMem for HeapRing {
    fn capacity(&self) -> u64 {
        self.lines.len() as u64 * 32
    }
    fn word(&self, slot: u64) -> &AtomicU64 {
        let slot = slot & (self.capacity() - 1);
        &self.lines[(slot / 32) as usize].0[(slot % 32 / 8) as usize]
    }
    fn header(&self, slot: u64) -> &[AtomicU64; 4] {
        let slot = slot & (self.capacity() - 1);
        &self.lines[(slot / 32) as usize].0
    }
    fn ptr(&self, slot: u64) -> *mut u8 {
        let slot = slot & (self.capacity() - 1);
        // In bounds of the allocation (masked); writes through it are
        // allowed because the words are `UnsafeCell`s (atomics).
        self.lines
            .as_ptr()
            .cast::<u8>()
            .cast_mut()
            .wrapping_add(slot as usize)
    }
}

/// A producer slot's words.
#[derive(Default)]
pub(crate) struct Ctl {
    tail: AtomicU64,
    head: AtomicU64,
    next_seq: AtomicU64,
    progress: AtomicU64,
    checkpoints: [AtomicU64; 4],
}

impl Ctl {
    pub(crate) fn ctl(&self) -> RingCtl<'_> {
        RingCtl {
            tail: &self.tail,
            head: &self.head,
            next_seq: &self.next_seq,
            progress: &self.progress,
            checkpoints: &self.checkpoints,
        }
    }
}

/// A reader slot: state word and cursor in this producer's ring.
#[derive(Default)]
struct Reader {
    state: AtomicU64,
    cursor: AtomicU64,
}

const CAP: u64 = 512;
const ACTIVE: u64 = crate::slots::SLOT_ACTIVE << 62 | 7;

fn scale(n: u64) -> u64 {
    if cfg!(miri) { n / 20 } else { n }
}

fn payload_of(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect()
}

/// Block policy, production's path: the producer fills its
/// reservation in place, the reader borrows committed payloads in
/// place; every record arrives once, in order, intact.
#[test]
fn miri_block_in_place_payloads_never_race() {
    let n = scale(400);
    let mem = Arc::new(HeapRing::new(CAP));
    let ctl = Arc::new(Ctl::default());
    let reader = Arc::new(Reader::default());
    reader.state.store(ACTIVE, Ordering::Relaxed);
    let producer = {
        let (mem, ctl, reader) = (mem.clone(), ctl.clone(), reader.clone());
        thread::spawn(move || {
            let mut w = Writer::attach(&*mem, &ctl.ctl(), false).unwrap();
            let mut seq = 0;
            while seq < n {
                let len = 1 + (seq as usize * 7) % 90;
                let limit = |tail| limit([(&reader.state, &reader.cursor)], tail, CAP, 0);
                match w.reserve(&*mem, &ctl.ctl(), len as u64, limit) {
                    Ok(res) => {
                        // SAFETY: Block; our reservation, not committed.
                        let dst = unsafe { &mut *payload_raw(&*mem, &res) };
                        dst.copy_from_slice(&payload_of(seq, len));
                        assert_eq!(w.commit(&*mem, &ctl.ctl(), res, 3, 0), seq);
                        seq += 1;
                    }
                    Err(ReserveError::Full) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
    };
    let mut cursor = 0;
    let mut next = 0;
    while next < n {
        match peek(&*mem, cursor, None) {
            Peek::Empty => thread::yield_now(),
            Peek::Padding { next } => cursor = next,
            Peek::Record(v) => {
                assert_eq!(v.seq, next, "in order, gap-free");
                // SAFETY: Block; committed; our cursor holds it.
                let got = unsafe { payload_in_place(&*mem, &v) };
                assert_eq!(got, payload_of(v.seq, got.len()), "never torn");
                next += 1;
                cursor = v.next;
                // Release: pairs with the Acquire load in `limit`.
                reader.cursor.store(cursor, Ordering::Release);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    producer.join().unwrap();
}

/// Overwrite policy, production's path: the producer laps the reader
/// freely writing with `copy_in`; the reader copies with `copy_out`
/// and keeps only what `intact` validates. Every kept copy is its
/// record's payload, and every sequence number is either kept or
/// counted as missed.
#[test]
fn miri_overwrite_copies_are_validated() {
    let n = scale(2_000);
    let mem = Arc::new(HeapRing::new(CAP));
    let ctl = Arc::new(Ctl::default());
    let producer = {
        let (mem, ctl) = (mem.clone(), ctl.clone());
        thread::spawn(move || {
            let mut w = Writer::attach(&*mem, &ctl.ctl(), true).unwrap();
            for seq in 0..n {
                let len = 8 + (seq as usize * 13) % 100;
                let res = w
                    .reserve(&*mem, &ctl.ctl(), len as u64, |_| u64::MAX)
                    .unwrap();
                copy_in(&*mem, res.payload_slot(CAP - 1), &payload_of(seq, len));
                w.commit(&*mem, &ctl.ctl(), res, 3, 0);
            }
            // As `Publisher` does on drop: the controls say where it ended.
            w.flush(&ctl.ctl());
        })
    };
    let (mut cursor, mut expected, mut kept, mut missed) = (0, 0, 0u64, 0u64);
    let mut buf = [0u64; 16];
    while expected < n {
        match peek(&*mem, cursor, Some(&ctl.head)) {
            Peek::Empty => {
                if producer.is_finished() && ctl.tail.load(Ordering::Acquire) == cursor {
                    break;
                }
                thread::yield_now();
            }
            Peek::Padding { next } => cursor = next,
            Peek::Lagged => cursor = resync(&*mem, &ctl.ctl()),
            Peek::Record(v) => {
                if v.seq > expected {
                    missed += v.seq - expected;
                    expected = v.seq;
                }
                let words = v.len.div_ceil(8) as usize;
                copy_out(&*mem, v.payload_slot(CAP - 1), &mut buf[..words]);
                if intact(&ctl.head, v.pos, CAP) {
                    let bytes: Vec<u8> =
                        buf[..words].iter().flat_map(|w| w.to_ne_bytes()).collect();
                    assert_eq!(&bytes[..v.len as usize], payload_of(v.seq, v.len as usize));
                    kept += 1;
                    expected += 1;
                    cursor = v.next;
                } else {
                    cursor = resync(&*mem, &ctl.ctl());
                }
            }
            Peek::Corrupt(what) => panic!("{what}"),
        }
    }
    producer.join().unwrap();
    assert_eq!(kept + missed, expected);
}

/// The join handshake racing a publishing producer (Block): the
/// joiner never finds a record it should read already overwritten.
#[test]
fn miri_join_racing_publish_never_loses_a_record() {
    for round in 0..scale(40) {
        let n = 24;
        let mem = Arc::new(HeapRing::new(CAP));
        let ctl = Arc::new(Ctl::default());
        let reader = Arc::new(Reader::default());
        reader.cursor.store(u64::MAX, Ordering::Relaxed); // garbage
        let producer = {
            let (mem, ctl, reader) = (mem.clone(), ctl.clone(), reader.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false).unwrap();
                let mut seq = 0;
                while seq < n {
                    let limit = |tail| limit([(&reader.state, &reader.cursor)], tail, CAP, 0);
                    match w.reserve(&*mem, &ctl.ctl(), 64, limit) {
                        Ok(res) => {
                            // SAFETY: Block; our reservation.
                            let dst = unsafe { &mut *payload_raw(&*mem, &res) };
                            dst.copy_from_slice(&payload_of(seq, 64));
                            w.commit(&*mem, &ctl.ctl(), res, 3, 0);
                            seq += 1;
                        }
                        Err(_) => thread::yield_now(),
                    }
                }
                w.flush(&ctl.ctl());
            })
        };
        for _ in 0..round % 7 {
            thread::yield_now();
        }
        let before = join_before(&ctl.ctl(), &reader.cursor);
        reader.state.store(ACTIVE, Ordering::SeqCst);
        join_fence();
        let (mut cursor, mut next) = join_after(&*mem, &ctl.ctl(), &reader.cursor, before, None);
        let mut producer = Some(producer);
        loop {
            match peek(&*mem, cursor, None) {
                Peek::Record(v) => {
                    assert_eq!(v.seq, next);
                    // SAFETY: Block; committed; our cursor holds it.
                    let got = unsafe { payload_in_place(&*mem, &v) };
                    assert_eq!(got, payload_of(v.seq, 64), "round {round}");
                    next += 1;
                    cursor = v.next;
                    reader.cursor.store(cursor, Ordering::Release);
                }
                Peek::Padding { next } => {
                    cursor = next;
                    reader.cursor.store(cursor, Ordering::Release);
                }
                Peek::Empty => match producer.take_if(|p| p.is_finished()) {
                    // Joined: everything it did is visible now.
                    Some(p) => p.join().unwrap(),
                    None if producer.is_none() => {
                        let (tail, seq) = snapshot(&ctl.ctl());
                        assert_eq!(
                            (cursor, next),
                            (tail, seq),
                            "round {round}: a record was lost"
                        );
                        break;
                    }
                    None => thread::yield_now(),
                },
                other => panic!("{other:?}"),
            }
        }
    }
}

/// A damaged cursor can only hold the producer back, never let it past
/// a reader it counts.
#[test]
fn limit_clamps_impossible_cursors() {
    let r = Reader::default();
    r.state.store(ACTIVE, Ordering::Relaxed);
    for (cursor, want) in [(0, 10_000), (u64::MAX, 10_000 + CAP), (9_900, 9_900 + CAP)] {
        r.cursor.store(cursor, Ordering::Relaxed);
        assert_eq!(limit([(&r.state, &r.cursor)], 10_000, CAP, 0), want);
    }
    r.state.store(u64::MAX, Ordering::Relaxed); // state 3: not counted
    assert_eq!(limit([(&r.state, &r.cursor)], 10_000, CAP, 0), 10_000 + CAP);
}

/// Damaged positions are refused before any arithmetic on them.
#[test]
fn damaged_positions_are_errors_not_overflows() {
    let mem = HeapRing::new(CAP);
    let ctl = Ctl::default();
    ctl.tail.store(u64::MAX, Ordering::Relaxed);
    assert!(Writer::attach(&mem, &ctl.ctl(), false).is_err());
    for pos in [MAX_POSITION, u64::MAX, u64::MAX - 1] {
        assert!(matches!(peek(&mem, pos, None), Peek::Corrupt(_)));
    }
    let head = AtomicU64::new(u64::MAX);
    assert!(!intact(&head, 0, CAP), "a damaged mark fails every check");
}
