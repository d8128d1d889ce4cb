//! loom model of the ring protocol on heap memory: publish / commit / read
//! under Block policy (with wrap-around and padding), lag detection under
//! Overwrite policy, and the progress snapshot a joining reader takes.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-bus-core --release --test loom_ring`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use shm_bus_core::ring::{self, Peek, RingCtl, RingMem, Writer};

/// A ring of `cap` bytes as loom atomics, pre-filled with garbage.
struct HeapRing {
    words: Vec<AtomicU64>,
}

impl HeapRing {
    fn new(cap: u64) -> Self {
        HeapRing {
            words: (0..cap / 8)
                .map(|i| AtomicU64::new(0xA5A5_A5A5_0000_0000 | i))
                .collect(),
        }
    }
}

impl RingMem for HeapRing {
    fn capacity(&self) -> u64 {
        self.words.len() as u64 * 8
    }
    fn word(&self, slot: u64) -> &AtomicU64 {
        &self.words[(slot / 8) as usize]
    }
    unsafe fn write(&self, slot: u64, src: &[u8]) {
        for (i, chunk) in src.chunks(8).enumerate() {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.word(slot + 8 * i as u64)
                .store(u64::from_le_bytes(b), Ordering::Relaxed);
        }
    }
    unsafe fn read(&self, slot: u64, dst: &mut [u8]) {
        for (i, chunk) in dst.chunks_mut(8).enumerate() {
            let b = self
                .word(slot + 8 * i as u64)
                .load(Ordering::Relaxed)
                .to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

/// The producer-slot words, garbage-free as the bus initialises them.
struct Ctl {
    tail: AtomicU64,
    head: AtomicU64,
    next_seq: AtomicU64,
    progress: AtomicU64,
    checkpoints: Vec<AtomicU64>,
}

impl Ctl {
    fn new() -> Self {
        Ctl {
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            next_seq: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            // Four checkpoints keep the model small (the bus has 64).
            checkpoints: (0..4).map(|_| AtomicU64::new(0)).collect(),
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

fn publish(w: &mut Writer, mem: &HeapRing, ctl: &Ctl, limit: impl Fn() -> u64) -> bool {
    let c = ctl.ctl();
    match w.reserve(mem, &c, LEN, |_| limit()) {
        Ok(res) => {
            let seq = w.next_seq();
            // SAFETY: the reservation owns the payload range.
            unsafe { mem.write(res.payload_slot(w.mask()), &payload_of(seq)) };
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
        mem.word(0).store(0, Ordering::Relaxed); // as the bus initialises it
        let ctl = Arc::new(Ctl::new());
        let cursor = Arc::new(AtomicU64::new(0));
        let producer = {
            let (mem, ctl, cursor) = (mem.clone(), ctl.clone(), cursor.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false);
                let mut sent = 0;
                while sent < 3 {
                    // Acquire: pairs with the reader's Release cursor store.
                    let limit = || cursor.load(Ordering::Acquire) + CAP;
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
                    let mut buf = vec![0; v.len as usize];
                    // SAFETY: the record is committed and not reusable
                    // before we advance the cursor.
                    unsafe { mem.read(v.payload_slot(CAP - 1), &mut buf) };
                    assert_eq!(buf, payload_of(v.seq), "never torn");
                    got += 1;
                    pos = v.next;
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
        mem.word(0).store(0, Ordering::Relaxed);
        let ctl = Arc::new(Ctl::new());
        let producer = {
            let (mem, ctl) = (mem.clone(), ctl.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), true);
                // Three 96-byte records in 256 bytes: the third pads, wraps
                // and overwrites the first.
                for _ in 0..3 {
                    assert!(publish(&mut w, &mem, &ctl, || u64::MAX));
                }
            })
        };
        // Read with the seqlock check; account for every sequence number
        // as either received or reported lagged.
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
                    let mut buf = vec![0; v.len as usize];
                    // SAFETY: Overwrite policy: validated with `intact`.
                    unsafe { mem.read(v.payload_slot(CAP - 1), &mut buf) };
                    if ring::intact(&ctl.head, v.pos, CAP) {
                        assert_eq!(v.seq, expected);
                        assert_eq!(buf, payload_of(v.seq), "an intact read is the record");
                        expected += 1;
                        accounted += 1;
                        pos = v.next;
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
        mem.word(0).store(0, Ordering::Relaxed);
        let ctl = Arc::new(Ctl::new());
        let producer = {
            let (mem, ctl) = (mem.clone(), ctl.clone());
            thread::spawn(move || {
                let mut w = Writer::attach(&*mem, &ctl.ctl(), false);
                for _ in 0..2 {
                    assert!(publish(&mut w, &mem, &ctl, || u64::MAX));
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
