//! The claim protocol on heap memory with std threads, with production's
//! Block payload path (the producer fills reservations in place, members
//! read committed payloads in place): run under Miri (`cargo +nightly
//! miri test -p shm-bus-core --lib miri_`), whose data-race detector checks
//! that the group's floor keeps the producer off every event a member may
//! still read — including the one a dead member held, until it is adopted
//! and finished. The loom models (`tests/loom_group.rs`) explore the
//! interleavings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use shm_bus_alloc::{Mem, Owners};

use super::protocol::{G_GENERATION, G_REDELIVERED, G_STATE, GroupCore, HANDED, Scan, group_bytes};
use crate::ring::tests::{Ctl, HeapRing};
use crate::ring::{Peek, ReserveError, Writer, payload_in_place, payload_raw, peek};
use crate::slots::{SLOT_ACTIVE, slot_word};

/// Group words on the heap.
struct Words(Box<[AtomicU64]>);

impl Mem for Words {
    fn word(&self, off: u64) -> Option<&AtomicU64> {
        if off % 8 != 0 {
            return None;
        }
        self.0.get(usize::try_from(off / 8).ok()?)
    }
    fn bytes(&self, _: u64, _: u64) -> Option<*mut u8> {
        None
    }
}

/// A simulated process.
struct Actor {
    token: u64,
    dead: Arc<AtomicU64>,
}

impl Owners for Actor {
    fn token(&self) -> u64 {
        self.token
    }
    fn is_dead(&self, token: u64) -> bool {
        // Acquire: pairs with the dying actor's Release store.
        self.dead.load(Ordering::Acquire) == token
    }
}

const CAP: u64 = 512;
const LEN: usize = 40;

fn core<'a>(mem: &'a Words, actor: &'a Actor) -> GroupCore<'a, Words, Actor> {
    GroupCore {
        mem,
        base: 0,
        producers: 1,
        stride: 1,
        members: 2,
        owners: actor,
        sleepers: std::cell::Cell::new(0),
    }
}

fn events() -> u64 {
    if cfg!(miri) { 24 } else { 400 }
}

fn payload_of(seq: u64) -> [u8; LEN] {
    std::array::from_fn(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8))
}

fn scan(ring: &HeapRing, cursor: u64, expected: u64, batch: u64) -> Scan {
    let mut s = Scan {
        start: cursor,
        end: cursor,
        seq: expected,
        end_seq: expected,
        wanted: 0,
        missed: 0,
    };
    loop {
        match peek(ring, s.end, None) {
            Peek::Record(v) => {
                if s.wanted == 0 {
                    s.seq = v.seq;
                }
                s.end_seq = v.seq + 1;
                s.end = v.next;
                s.wanted += 1;
                if s.wanted == batch {
                    return s;
                }
            }
            Peek::Padding { next } => s.end = next,
            _ => return s,
        }
    }
}

/// Reads `[from, end)` in place as member slot `slot` would: each event
/// handed out (progress | HANDED), read, finished. With `die_holding`, stops
/// after handing out the first one. Returns `(seq, redelivered)` of each.
fn work(
    g: &GroupCore<'_, Words, Actor>,
    ring: &HeapRing,
    slot: u64,
    (from, end, redeliver_below): (u64, u64, u64),
    die_holding: bool,
) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    let mut pos = from;
    while pos < end {
        match peek(ring, pos, None) {
            Peek::Record(v) => {
                g.set_progress(slot, pos | HANDED).unwrap();
                // SAFETY: Block; committed (peek); the group's floor holds
                // it (our progress) until we finish it below.
                let got = unsafe { payload_in_place(ring, &v) };
                assert_eq!(got, payload_of(v.seq), "never overwritten while held");
                out.push((v.seq, pos < redeliver_below));
                if die_holding {
                    return out;
                }
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
fn miri_members_read_in_place_while_the_producer_is_gated_by_the_floor() {
    let n = events();
    let mem = Arc::new(Words(
        (0..group_bytes(1, 2) / 8)
            .map(|_| AtomicU64::new(0))
            .collect(),
    ));
    mem.word(G_STATE)
        .unwrap()
        .store(slot_word(9, SLOT_ACTIVE), Ordering::Relaxed);
    mem.word(G_GENERATION).unwrap().store(1, Ordering::Relaxed);
    let ring = Arc::new(HeapRing::new(CAP));
    let ctl = Arc::new(Ctl::default());
    let dead = Arc::new(AtomicU64::new(0));
    // Events A finished (not the one it dies holding); set by B when every
    // event is accounted for, so that an A still waiting for work gives up.
    let a_done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicU64::new(0));
    let producer = {
        let (mem, ring, ctl, dead) = (mem.clone(), ring.clone(), ctl.clone(), dead.clone());
        thread::spawn(move || {
            let me = Actor { token: 7, dead };
            let g = core(&mem, &me);
            let mut w = Writer::attach(&*ring, &ctl.ctl(), false).unwrap();
            let mut seq = 0;
            while seq < n {
                let limit =
                    |tail: u64| g.floor(0).unwrap().clamp(tail.saturating_sub(CAP), tail) + CAP;
                match w.reserve(&*ring, &ctl.ctl(), LEN as u64, limit) {
                    Ok(res) => {
                        // SAFETY: Block; our reservation, not committed.
                        let dst = unsafe { &mut *payload_raw(&*ring, &res) };
                        dst.copy_from_slice(&payload_of(seq));
                        w.commit(&*ring, &ctl.ctl(), res, 3, 0);
                        seq += 1;
                    }
                    Err(ReserveError::Full) => thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
    };
    // Member A: a few claims of 2, then dies holding an event (or idle, if
    // B took all the work first).
    let a = {
        let (mem, ring, dead, a_done, stop) = (
            mem.clone(),
            ring.clone(),
            dead.clone(),
            a_done.clone(),
            stop.clone(),
        );
        thread::spawn(move || {
            let me = Actor {
                token: 1,
                dead: dead.clone(),
            };
            let g = core(&mem, &me);
            let slot = g.join(1, 1, [0; 4], 0).unwrap();
            let mut seen = Vec::new();
            let mut claims = 0;
            while claims < 3 && stop.load(Ordering::Relaxed) == 0 {
                let (claim, _) = g
                    .claim(1, slot, 0, |_, c, e| Ok(scan(&ring, c, e, 2)))
                    .unwrap();
                let Some(c) = claim else {
                    thread::yield_now();
                    continue;
                };
                claims += 1;
                let got = work(&g, &ring, slot, (c.start, c.end, 0), claims == 3);
                let finished = got.len() as u64 - u64::from(claims == 3);
                seen.extend(got);
                a_done.fetch_add(finished, Ordering::Relaxed);
            }
            // Release: its writes happen before anyone finds it dead.
            dead.store(1, Ordering::Release);
            // Whether it died holding its last event: not if B finished
            // all the work before A's third claim (B then stops it).
            (seen, claims == 3)
        })
    };
    // Member B: claims of 3; adopts A's work once A is dead.
    let me = Actor {
        token: 2,
        dead: dead.clone(),
    };
    let g = core(&mem, &me);
    let slot = g.join(1, 2, [0; 4], 0).unwrap();
    let mut seen = Vec::new();
    let mut adopted = false;
    let mut finished = 0;
    while finished + a_done.load(Ordering::Relaxed) < n {
        if !adopted && dead.load(Ordering::Acquire) == 1 {
            adopted = true;
            if let Some(x) = g.adopt(1, false, |_, _| None).unwrap() {
                let got = work(
                    &g,
                    &ring,
                    x.slot as u64,
                    (x.from, x.end, x.redeliver_below),
                    false,
                );
                finished += got.len() as u64;
                seen.extend(got);
                g.leave(1, x.slot as u64).unwrap();
                continue;
            }
        }
        let (claim, _) = g
            .claim(1, slot, 0, |_, c, e| Ok(scan(&ring, c, e, 3)))
            .unwrap();
        match claim {
            Some(c) => {
                let got = work(&g, &ring, slot, (c.start, c.end, 0), false);
                finished += got.len() as u64;
                seen.extend(got);
            }
            None => thread::yield_now(),
        }
    }
    stop.store(1, Ordering::Relaxed);
    let (by_a, died_holding) = a.join().unwrap();
    producer.join().unwrap();
    let held = by_a.last().map(|&(s, _)| s).filter(|_| died_holding);
    let mut all: Vec<u64> = seen.iter().chain(by_a.iter()).map(|&(s, _)| s).collect();
    all.sort_unstable();
    let flagged: Vec<u64> = seen.iter().filter(|&&(_, r)| r).map(|&(s, _)| s).collect();
    assert_eq!(flagged, held.into_iter().collect::<Vec<_>>());
    let redelivered = mem.word(G_REDELIVERED).unwrap().load(Ordering::Relaxed);
    assert_eq!(redelivered, u64::from(held.is_some()));
    all.dedup();
    assert_eq!(all, (0..n).collect::<Vec<_>>(), "every event handled");
}
