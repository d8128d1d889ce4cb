//! loom models of the worker-group claim protocol (`group::protocol`) on
//! heap memory: a producer publishing into a small Block ring gated by the
//! group's floor, and two members — one that dies holding the event it
//! was handed, one that claims, finishes, and adopts the dead member's
//! work. Checked in every interleaving (preemption bound 1): every event is
//! handled; the one the dead member held is handed out again flagged and
//! counted once (at-least-once) or counted lost once and never handed out
//! again (at-most-once); no other event twice; and the producer never
//! overwrites an unfinished event (payloads are read back intact).
//!
//! The group's robust lock and its undo log (a member dying *inside* a
//! critical section) are `shm-bus-alloc`'s, modelled in its own loom tests;
//! here members die between sections, where the protocol's own state (the
//! progress word) must carry the truth.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p shm-bus-core --release --test loom_group`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, Ordering};
use loom::thread;
use shm_bus_alloc::{HeapMem, Mem, Owners};
use shm_bus_core::group_protocol::{
    G_GENERATION, G_LOST, G_MODE, G_REDELIVERED, G_STATE, GroupCore, HANDED, MODE_AT_LEAST_ONCE,
    Scan, group_bytes,
};
use shm_bus_core::ring::{self, Peek, RingCtl, RingMem, Writer};
use shm_bus_core::slots::{SLOT_ACTIVE, slot_word};

/// A ring of `cap` bytes as loom atomics, pre-filled with garbage.
struct HeapRing {
    words: Vec<AtomicU64>,
}

impl HeapRing {
    fn new(cap: u64) -> Self {
        let ring = HeapRing {
            words: (0..cap / 8)
                // Forged first-lap stamps at record boundaries, garbage
                // elsewhere (see loom_ring.rs).
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
// `ptr` never returns a pointer: payloads go through `copy_in` / `copy_out`.
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

/// A simulated process: its token, and the register of the dead.
struct Actor {
    token: u64,
    dead: Arc<AtomicU64>,
}

impl Owners for Actor {
    fn token(&self) -> u64 {
        self.token
    }
    fn is_dead(&self, token: u64) -> bool {
        // Acquire: pairs with the Release store of the dying actor: its
        // last writes are visible, as the kernel guarantees for a process
        // `/proc` reports dead.
        self.dead.load(Ordering::Acquire) == token
    }
}

const CAP: u64 = 256;
const LEN: u64 = 40; // record = 96 bytes: the third pads, wraps, and needs
// the first two finished
const EVENTS: u64 = 3;
const MEMBERS: u64 = 2;

fn core<'a>(mem: &'a HeapMem, actor: &'a Actor) -> GroupCore<'a, HeapMem, Actor> {
    GroupCore {
        mem,
        base: 0,
        producers: 1,
        stride: 1,
        members: MEMBERS,
        owners: actor,
        sleepers: std::cell::Cell::new(0),
    }
}

/// The group's words as `create_group` leaves them: active, generation 1,
/// cursor and expected sequence 0, members free, lock free. (The mode word
/// is informational: `adopt` takes the mode as an argument.)
fn group_mem() -> HeapMem {
    let words = (group_bytes(1, MEMBERS) / 8) as usize;
    let mem = HeapMem::new(words, 0, 0);
    let w = |off| mem.word(off).expect("in range");
    w(G_STATE).store(slot_word(9, SLOT_ACTIVE), Ordering::Relaxed);
    w(G_GENERATION).store(1, Ordering::Relaxed);
    w(G_MODE).store(MODE_AT_LEAST_ONCE, Ordering::Relaxed);
    mem
}

/// Reads an event's payload (its sequence number, written by the producer).
fn payload(ring: &HeapRing, v: &ring::RecordView) -> u64 {
    let mut w = [0u64; 5];
    ring::copy_out(ring, v.payload_slot(CAP - 1), &mut w);
    assert!(w.iter().all(|&x| x == w[0]), "torn payload");
    w[0]
}

/// Whether the ring has a record at the group's cursor (production's
/// lock-free look before taking the lock).
fn has_record(g: &GroupCore<'_, HeapMem, Actor>, ring: &HeapRing) -> bool {
    // Acquire: pairs with the claim's Release cursor store.
    let cursor = g.word(g.cursor_at(0)).unwrap().load(Ordering::Acquire);
    !matches!(ring::peek(ring, cursor, None), Peek::Empty)
}

/// The member's scan: up to one event from the cursor.
fn scan(ring: &HeapRing, cursor: u64, expected: u64) -> Scan {
    let mut s = Scan {
        start: cursor,
        end: cursor,
        seq: expected,
        end_seq: expected,
        wanted: 0,
        missed: 0,
    };
    loop {
        match ring::peek(ring, s.end, None) {
            Peek::Record(v) => {
                s.seq = v.seq;
                s.end_seq = v.seq + 1;
                s.end = v.next;
                s.wanted = 1;
                return s;
            }
            Peek::Padding { next } => s.end = next,
            _ => return s,
        }
    }
}

/// Works through `[from, end)` of the ring as member slot `slot`: hands
/// each event out (progress | HANDED), reads it, finishes it. Returns the
/// `(sequence, redelivered)` of each.
fn work(
    g: &GroupCore<'_, HeapMem, Actor>,
    ring: &HeapRing,
    slot: u64,
    from: u64,
    end: u64,
    redeliver_below: u64,
) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < end {
        match ring::peek(ring, pos, None) {
            Peek::Record(v) => {
                g.set_progress(slot, pos | HANDED).unwrap();
                assert_eq!(
                    payload(ring, &v),
                    v.seq,
                    "an unfinished event was overwritten"
                );
                out.push((v.seq, pos < redeliver_below));
                pos = v.next;
                g.set_progress(slot, pos).unwrap();
            }
            Peek::Padding { next } => pos = next,
            other => panic!("a claimed record is committed: {other:?}"),
        }
    }
    // The whole claim is finished (as `finish_work` does: a claim may end
    // with padding, which moves no progress on its own).
    g.finish(slot, end).unwrap();
    out
}

#[test]
fn at_least_once_a_dead_members_event_is_redelivered_flagged_once() {
    model(false);
}

#[test]
fn at_most_once_a_dead_members_event_is_counted_lost_never_repeated() {
    model(true);
}

fn model(at_most_once: bool) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(1);
    builder.max_branches = 200_000;
    builder.check(move || {
        let mem = Arc::new(group_mem());
        let ring = Arc::new(HeapRing::new(CAP));
        let ctl = Arc::new(Ctl::new());
        let dead = Arc::new(AtomicU64::new(0));
        let producer = {
            let (mem, ring, ctl, dead) = (mem.clone(), ring.clone(), ctl.clone(), dead.clone());
            thread::spawn(move || {
                let me = Actor { token: 7, dead };
                let g = core(&mem, &me);
                let mut w = Writer::attach(&*ring, &ctl.ctl(), false).unwrap();
                let mut sent = 0;
                while sent < EVENTS {
                    // As `Shared::limit`: the group's floor, clamped.
                    let limit =
                        |tail: u64| g.floor(0).unwrap().clamp(tail.saturating_sub(CAP), tail) + CAP;
                    match w.reserve(&*ring, &ctl.ctl(), LEN, limit) {
                        Ok(res) => {
                            let seq = w.next_seq();
                            let bytes: Vec<u8> = (0..5).flat_map(|_| seq.to_ne_bytes()).collect();
                            ring::copy_in(&*ring, res.payload_slot(CAP - 1), &bytes);
                            w.commit(&*ring, &ctl.ctl(), res, 1, 0);
                            sent += 1;
                        }
                        Err(_) => thread::yield_now(),
                    }
                }
            })
        };
        // Member A: takes one event, reads it, and dies holding it.
        let a = {
            let (mem, ring, dead) = (mem.clone(), ring.clone(), dead.clone());
            thread::spawn(move || {
                let me = Actor {
                    token: 1,
                    dead: dead.clone(),
                };
                let g = core(&mem, &me);
                let slot = g.join(1, 1, [0; 4], 0).unwrap();
                let mut held = None;
                if has_record(&g, &ring) {
                    let (claim, _) = g
                        .claim(1, slot, 0, |_, cursor, expected| {
                            Ok(scan(&ring, cursor, expected))
                        })
                        .unwrap();
                    if let Some(c) = claim {
                        // The claim may begin with the padding before a lap.
                        let mut pos = c.start;
                        let v = loop {
                            match ring::peek(&*ring, pos, None) {
                                Peek::Record(v) => break v,
                                Peek::Padding { next } => pos = next,
                                other => panic!("claimed a record: {other:?}"),
                            }
                        };
                        g.set_progress(slot, pos | HANDED).unwrap();
                        assert_eq!(payload(&ring, &v), v.seq);
                        held = Some(v.seq);
                    }
                }
                // Release: the dead actor's writes happen before anyone
                // finds it dead (see `Actor::is_dead`).
                dead.store(1, Ordering::Release);
                held
            })
        };
        // Member B: claims and finishes, adopting A's work once A is dead.
        let me = Actor {
            token: 2,
            dead: dead.clone(),
        };
        let g = core(&mem, &me);
        let slot = g.join(1, 2, [0; 4], 0).unwrap();
        let mut seen: Vec<(u64, bool)> = Vec::new();
        let lost = || mem.word(G_LOST).unwrap().load(Ordering::Relaxed);
        let mut adopted = false;
        while seen.len() as u64 + lost() < EVENTS {
            // Production looks for dead members now and then when idle;
            // here once A is dead (the state space stays small).
            if !adopted && dead.load(Ordering::Acquire) == 1 {
                adopted = true;
                let next_of = |_, pos| match ring::peek(&*ring, pos, None) {
                    Peek::Record(v) => Some(v.next),
                    _ => None,
                };
                if let Some(a) = g.adopt(1, at_most_once, next_of).unwrap() {
                    seen.extend(work(
                        &g,
                        &ring,
                        a.slot as u64,
                        a.from,
                        a.end,
                        a.redeliver_below,
                    ));
                    g.leave(1, a.slot as u64).unwrap();
                    continue;
                }
            }
            if !has_record(&g, &ring) {
                thread::yield_now();
                continue;
            }
            let (claim, missed) = g
                .claim(1, slot, 0, |_, cursor, expected| {
                    Ok(scan(&ring, cursor, expected))
                })
                .unwrap();
            assert_eq!(missed, 0);
            match claim {
                Some(c) => seen.extend(work(&g, &ring, slot, c.start, c.end, 0)),
                None => thread::yield_now(),
            }
        }
        let held = a.join().unwrap();
        producer.join().unwrap();
        let mut seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), seen.len(), "B saw no event twice");
        let flagged: Vec<u64> = seen.iter().filter(|(_, r)| *r).map(|(s, _)| *s).collect();
        let redelivered = mem.word(G_REDELIVERED).unwrap().load(Ordering::Relaxed);
        if at_most_once {
            // Every event but the held one; that one counted lost, once.
            let want: Vec<u64> = (0..EVENTS).filter(|&s| Some(s) != held).collect();
            assert_eq!(seqs, want);
            assert_eq!((lost(), redelivered), (u64::from(held.is_some()), 0));
            assert!(flagged.is_empty());
        } else {
            // Every event; the held one handed out again, flagged, counted.
            assert_eq!(seqs, (0..EVENTS).collect::<Vec<_>>());
            assert_eq!(flagged, held.into_iter().collect::<Vec<_>>());
            assert_eq!((redelivered, lost()), (u64::from(held.is_some()), 0));
        }
    });
}
