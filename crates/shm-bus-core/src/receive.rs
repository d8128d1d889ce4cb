//! Receiving: a subscriber's private state (cursors, match cache, copy
//! buffer) and the receive loop — joining, polling every producer's ring,
//! copying and validating (copied delivery), waiting on the futex.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_bus_alloc::ProcessId;
use shm_bus_topic::{SubscriptionIndex, Topic, TopicId};

use crate::clock;
use crate::config::Policy;
use crate::error::RecvError;
use crate::futex;
use crate::group::GroupSeat;
use crate::layout::{CHECKPOINTS, SLOT_ACTIVE, slot_word, store_name};
use crate::ring::{self, Line, Peek, RecordView, RingMem};
use crate::shared::{ProducerRef, Shared};

const UNKNOWN: u8 = 0;
const MATCH: u8 = 1;
const NO_MATCH: u8 = 2;

/// How long a sleeping subscriber waits at most before re-checking: the
/// first nap of an idle spell is `FIRST_NAP`, then each doubles up to this.
const DATA_SLEEP: Duration = Duration::from_millis(100);
const FIRST_NAP: Duration = Duration::from_millis(1);
/// Polls between two clock reads while spinning (`Subscriber::wait`,
/// `Publisher::reserve`): a clock read costs more than an empty poll.
const SPIN_POLLS: u32 = 64;

/// One round of a spinning wait (`Subscriber::wait`, `Publisher::reserve`):
/// up to `SPIN_POLLS` attempts with a pause hint between them, so the
/// caller reads the clock once per round. The first round (a few µs) is
/// pure spinning, for what is about to arrive; before each later one the
/// core is yielded, so that on a machine with fewer cores than busy
/// processes the other side gets to run. `round` counts the rounds.
pub(crate) fn spin_round<T>(round: &mut u32, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    if *round > 0 {
        std::thread::yield_now();
    }
    *round = round.saturating_add(1);
    for _ in 0..SPIN_POLLS {
        if let Some(done) = attempt() {
            return Some(done);
        }
        std::hint::spin_loop();
    }
    None
}

/// The next nap of an idle spell (see `Subscriber::wait`).
fn naps_left_shift(nap: &mut Duration) -> Duration {
    let this = (*nap).clamp(FIRST_NAP, DATA_SLEEP);
    *nap = (this * 2).min(DATA_SLEEP);
    this
}

/// Everything of a subscriber but its bus handle, so that receiving can
/// borrow the bus's shared state and mutate this at once.
pub(crate) struct State {
    pub(crate) slot: usize,
    pub(crate) index: SubscriptionIndex<u32>,
    pub(crate) patterns: Vec<Topic>,
    pub(crate) next_pattern: u32,
    /// Per `TopicId`: `UNKNOWN`, `MATCH` or `NO_MATCH`.
    pub(crate) cache: Vec<u8>,
    /// Per producer slot: its ring and this subscriber's place in it.
    /// Always 64 lanes (the most producers a bus has), indexed with
    /// `p & 63`, so the receive path needs no bounds check; lanes past
    /// `max_producers` are never visited (the producer mask has no bits
    /// for them) and point at producer 0's ring.
    pub(crate) lanes: Box<[Lane; 64]>,
    /// Bytes consumed between cursor publications (1/64 of the ring).
    pub(crate) cursor_batch: u64,
    /// Producers whose ring was found corrupt; skipped from then on.
    pub(crate) broken: u64,
    /// Producers `poll` visits: `!broken` for a subscriber; none for a
    /// group member, whose `poll` goes through `no_producer` (so the
    /// subscriber's path tests nothing more).
    pub(crate) visit: u64,
    pub(crate) next_producer: usize,
    pub(crate) received: u64,
    /// `received` as last stored in the segment (with the cursors).
    pub(crate) shared_received: u64,
    pub(crate) lagged: u64,
    pub(crate) spin: Duration,
    pub(crate) overwrite: bool,
    /// Whether samples are copies (`M::copies(policy)`).
    pub(crate) copy: bool,
    /// The copy of the last payload handed out (when `copy`).
    pub(crate) scratch: Vec<Line>,
    pub(crate) empty_polls: u32,
    /// Pause once before the next poll: the record just found was near
    /// its producer's tail (see [`State::near_tail`]).
    pub(crate) pause_next: bool,
    /// Bytes from a producer's published tail within which a found
    /// record counts as near it: one checkpoint chunk (1/64 of the ring),
    /// what the published tail may lag the true one by.
    pub(crate) near: u64,
    pub(crate) nap: Duration,
    /// An error met by a batch receive after it had delivered samples:
    /// returned by the next receive.
    pub(crate) pending: Option<RecvError>,
    /// A worker-group member's place in its group (`None` for a plain
    /// subscriber); see `group`.
    pub(crate) group: Option<Box<GroupSeat>>,
    /// The producer and origin of the record `no_producer` found.
    pub(crate) ready: (u32, u8),
}

/// A subscriber's place in one producer's ring.
#[derive(Clone, Copy)]
pub(crate) struct Lane {
    /// The producer's ring and slot, resolved once at join (the receive
    /// path checks no index). Valid while the subscriber's `Bus` lives:
    /// the subscriber holds both, and never hands this out.
    pub(crate) ring: ProducerRef,
    /// Where the next record is read.
    pub(crate) cursor: u64,
    /// The cursor as last published to the segment.
    pub(crate) shared_cursor: u64,
    /// Sequence number of the next record (Overwrite counts lag from it).
    pub(crate) expected: u64,
    /// The producer's published tail as last read ([`State::near_tail`]):
    /// a hint, never used to read or size anything.
    pub(crate) known_tail: u64,
}

/// Where a received record is (no borrow, so `recv` can loop).
#[derive(Clone, Copy)]
pub(crate) struct Found {
    /// The producer slot (u32, with `origin` beside it, keeps `Found` —
    /// and so every receive's `Result` — at 56 bytes).
    pub(crate) producer: u32,
    /// Who handed it out: [`PLAIN`] (a subscriber's own cursor),
    /// [`CLAIMED`] (a group member's claim) or [`REDELIVERED`] (a group
    /// member handing out again what a dead member held). Tested on
    /// release, where it is in a register, instead of the state.
    pub(crate) origin: u8,
    pub(crate) view: RecordView,
}
const _: () = assert!(std::mem::size_of::<Found>() == 56);

/// [`Found::origin`] of a subscriber's record.
pub(crate) const PLAIN: u8 = 0;
/// [`Found::origin`] of a record a group member claimed.
pub(crate) const CLAIMED: u8 = 1;
/// [`Found::origin`] of a record a group member hands out again.
pub(crate) const REDELIVERED: u8 = 2;

/// What [`ring::peek`] found at a cursor when it was not a record, for
/// [`State::not_a_record`].
#[derive(Clone, Copy)]
enum Miss {
    /// Nothing committed there yet.
    Empty,
    /// A padding record.
    Padding,
    /// Overwrite policy: lapped.
    Lagged,
    /// A header that fails validation.
    Corrupt,
}

impl State {
    /// The join protocol (see `ring::join_before`): cursors at every
    /// ring's tail, then ACTIVE and a SeqCst fence, then the tails read
    /// again. A producer that did not yet see us ACTIVE never writes past
    /// the tail it had then plus a ring, and the second read sees at least
    /// that tail, so starting there is safe.
    pub(crate) fn join(sh: &Shared, s: usize, me: ProcessId, name: &str, copy: bool) -> State {
        let slot = sh.subscriber(s);
        let producers = sh.config.max_producers as usize;
        // Relaxed: published by the SeqCst (hence Release) ACTIVE store.
        slot.owner_pid.store(me.pid as u64, Ordering::Relaxed);
        slot.owner_start.store(me.start_time, Ordering::Relaxed);
        store_name(&slot.name, name);
        slot.generation.fetch_add(1, Ordering::Relaxed);
        let now = clock::wall_ns();
        slot.claimed_at_ns.store(now, Ordering::Relaxed);
        slot.last_active_ns.store(now, Ordering::Relaxed);
        slot.received.store(0, Ordering::Relaxed);
        slot.lagged.store(0, Ordering::Relaxed);
        slot.sleeping.store(0, Ordering::Relaxed);
        let before: Vec<(u64, u64)> = (0..producers)
            .map(|p| ring::join_before(&sh.ring_ctl(sh.producer(p)), sh.cursor(s, p)))
            .collect();
        // SeqCst: the joiner's half of the store-buffering handshake with
        // `ring::limit`, completed by the fence below.
        slot.state
            .store(slot_word(me.token(), SLOT_ACTIVE), Ordering::SeqCst);
        ring::join_fence();
        let overwrite = sh.config.policy == Policy::Overwrite;
        let lanes = Self::lanes(sh, |p, ring| {
            let head = overwrite.then_some(&ring.slot().head);
            ring::join_after(ring, &ring.ctl(), sh.cursor(s, p), before[p], head)
        });
        State::new(sh, s, lanes, copy, None)
    }

    /// A worker-group member's state: lanes for reading, no cursors (the
    /// group's claims say what to read).
    pub(crate) fn for_group(sh: &Shared, copy: bool, seat: Box<GroupSeat>) -> State {
        let lanes = Self::lanes(sh, |_, _| (0, 0));
        State::new(sh, seat.member as usize, lanes, copy, Some(seat))
    }

    /// One lane per producer slot, `start(p, ring)` giving its `(cursor,
    /// expected)`.
    fn lanes(
        sh: &Shared,
        mut start: impl FnMut(usize, &ProducerRef) -> (u64, u64),
    ) -> Box<[Lane; 64]> {
        let producers = sh.config.max_producers as usize;
        Box::new(std::array::from_fn(|p| {
            // SAFETY: kept in the subscriber's state, next to its `Bus` (an
            // `Arc` of the same `Shared`), and never handed out.
            // `max_producers >= 1` (validated at open); lanes past it are
            // never visited and point at producer 0's ring.
            let ring = unsafe { sh.producer_ref(if p < producers { p } else { 0 }) };
            let (cursor, expected) = if p < producers {
                start(p, &ring)
            } else {
                (0, 0)
            };
            Lane {
                ring,
                cursor,
                shared_cursor: cursor,
                expected,
                known_tail: 0,
            }
        }))
    }

    fn new(
        sh: &Shared,
        slot: usize,
        lanes: Box<[Lane; 64]>,
        copy: bool,
        group: Option<Box<GroupSeat>>,
    ) -> State {
        State {
            slot,
            index: SubscriptionIndex::new(),
            patterns: Vec::new(),
            next_pattern: 0,
            cache: Vec::new(),
            lanes,
            cursor_batch: (sh.config.ring_bytes / 64).max(1),
            broken: 0,
            visit: if group.is_some() { 0 } else { u64::MAX },
            next_producer: 0,
            received: 0,
            shared_received: 0,
            lagged: 0,
            spin: Duration::from_micros(50),
            overwrite: sh.config.policy == Policy::Overwrite,
            copy,
            scratch: Vec::new(),
            empty_polls: 0,
            pause_next: false,
            near: sh.config.ring_bytes / CHECKPOINTS as u64,
            nap: FIRST_NAP,
            pending: None,
            group,
            ready: (0, PLAIN),
        }
    }

    /// This receiver's activity words in the segment: (last active,
    /// sleeping) — its subscriber slot's, or its group member slot's.
    pub(crate) fn activity<'s>(&self, sh: &'s Shared) -> (&'s AtomicU64, &'s AtomicU64) {
        match &self.group {
            Some(seat) => State::member_words(sh, seat),
            None => {
                let slot = sh.subscriber(self.slot);
                (&slot.last_active_ns, &slot.sleeping)
            }
        }
    }

    /// Moves every cursor back from where the join put it (each ring's
    /// tail) to the oldest record still retained ([`Start::Oldest`]):
    /// under Block, at most the bus's `history_bytes` back (what producers
    /// keep readable; see `ring::limit`); under Overwrite, up to three
    /// quarters of the ring (what is read is validated as always). Called
    /// right after the join, never later: the safety argument needs the
    /// cursor just published by `join_after`.
    ///
    /// [`Start::Oldest`]: crate::Start::Oldest
    pub(crate) fn rewind_to_oldest(&mut self, sh: &Shared) {
        let cap = sh.config.ring_bytes;
        let back = if self.overwrite {
            cap - cap / 4
        } else {
            sh.config.history_bytes
        };
        if back == 0 {
            return;
        }
        for p in 0..sh.config.max_producers as usize {
            let lane = &mut self.lanes[p & 63];
            let ring = lane.ring;
            let head = self.overwrite.then_some(&ring.slot().head);
            let Some(mut pos) = ring::oldest_start(&ring, &ring.ctl(), lane.cursor, back, head)
            else {
                continue;
            };
            // The sequence number to expect there (Overwrite counts lag
            // from it): that of the first record at or after `pos`.
            for _ in 0..2 {
                match ring::peek(&ring, pos, head) {
                    Peek::Padding { next } => pos = next,
                    Peek::Record(v) => {
                        lane.expected = v.seq;
                        break;
                    }
                    _ => break,
                }
            }
            if pos >= lane.cursor {
                continue;
            }
            lane.cursor = pos;
            lane.shared_cursor = pos;
            // Release: pairs with the Acquire cursor load in `ring::limit`.
            // Moving back to `pos >= tail - history` is safe: a producer
            // that computed its limit from our previous cursor (the tail)
            // overwrites nothing at or above `tail - history`.
            sh.cursor(self.slot, p).store(pos, Ordering::Release);
        }
    }

    /// Whether records on `id` are delivered to this subscriber.
    #[inline(always)]
    pub(crate) fn wants(&mut self, sh: &Shared, id: u32) -> bool {
        match self.cache.get(id as usize) {
            Some(&MATCH) => true,
            Some(&NO_MATCH) => false,
            _ => self.learn_topic(sh, id),
        }
    }

    /// Matches topic `id` against the subscriptions and caches the answer.
    #[cold]
    #[inline(never)]
    fn learn_topic(&mut self, sh: &Shared, id: u32) -> bool {
        let i = id as usize;
        // An id beyond the table (damage) has no literal: skipped, and
        // never used to size the cache.
        let Some(literal) = sh.topic_literal(TopicId(id)) else {
            return false; // not (yet) a ready topic: skip, do not cache
        };
        let state = match Topic::parse(literal) {
            Ok(t) if !self.index.query(&t).is_empty() => MATCH,
            _ => NO_MATCH,
        };
        if i >= self.cache.len() {
            self.cache.resize(i + 1, UNKNOWN);
        }
        self.cache[i] = state;
        state == MATCH
    }

    /// Moves the cursor in producer `p`'s ring to `next`. The shared copy
    /// (what a blocked producer waits on) is published once 1/64 of the
    /// ring has been consumed, when this ring is caught up with, or at once
    /// with `publish`: storing it on every record makes its cache line
    /// bounce between the two cores whenever the producer is checking for
    /// space. A producer waiting for space is woken by the publication
    /// (`wake_producer`), which comes at the latest 1/64 of the ring later.
    #[inline]
    pub(crate) fn advance(&mut self, sh: &Shared, p: usize, next: u64, publish: bool) {
        let lane = &mut self.lanes[p & 63];
        lane.cursor = next;
        if publish || next.wrapping_sub(lane.shared_cursor) >= self.cursor_batch {
            self.publish_cursor(sh, p);
        }
    }

    /// Publishes producer `p`'s cursor (and this subscriber's `received`
    /// count) and wakes the producer if it waits for space.
    pub(crate) fn publish_cursor(&mut self, sh: &Shared, p: usize) {
        if self.received != self.shared_received {
            self.shared_received = self.received;
            // Relaxed: statistics only.
            sh.subscriber(self.slot)
                .received
                .store(self.received, Ordering::Relaxed);
        }
        let lane = &mut self.lanes[p & 63];
        let next = lane.cursor;
        if lane.shared_cursor == next {
            return;
        }
        lane.shared_cursor = next;
        // Release: pairs with the Acquire load in `ring::limit`; the bytes
        // before `next` have been read. A plain store: the producer reads
        // this line only when it runs out of space.
        sh.cursor(self.slot, p).store(next, Ordering::Release);
        if !self.overwrite {
            wake_producer(sh, p);
        }
    }

    // Always inlined: a `poll` left out of line returns its 56-byte
    // `Result` through memory (~20 instructions per receive, measured).
    #[inline(always)]
    pub(crate) fn poll(&mut self, sh: &Shared) -> Result<Found, RecvError> {
        self.pause_if_due();
        if self.pending.is_some() {
            return Err(self.take_pending());
        }
        // A group member visits no producer here: it polls through
        // `no_producer`, off the subscriber's path.
        let mask = sh.producer_mask() & self.visit;
        if mask == 0 {
            // A group member's record: where it is, read again here so that
            // the `Found` is built from registers as below (one returned
            // from an out-of-line call would put every receive's `Result`
            // in memory: ~17 instructions on the subscriber's path).
            let (pos, seq) = self.no_producer(sh);
            if pos == u64::MAX {
                return Err(self.take_pending());
            }
            let (producer, origin) = self.ready;
            let ring = self.lanes[producer as usize & 63].ring;
            let head = self.overwrite.then_some(&ring.slot().head);
            return match ring::peek(&ring, pos, head) {
                Peek::Record(view) if view.seq == seq => Ok(Found {
                    producer,
                    origin,
                    view,
                }),
                _ => Err(self.group_ready_gone(sh)),
            };
        }
        // Visit producers with data in turn, starting after the last one
        // served (fairness), by rotating the mask: no division per poll.
        let start = self.next_producer as u32;
        let mut rotated = mask.rotate_right(start);
        while rotated != 0 {
            let bit = rotated.trailing_zeros();
            rotated &= rotated - 1;
            let p = ((bit + start) & 63) as usize;
            // A copy of the lane's ring handle: `head` borrows it, not `self`.
            let ring = self.lanes[p].ring;
            let head = self.overwrite.then_some(&ring.slot().head);
            loop {
                // What is not a record goes out of line in scalars, not
                // as the `Peek`: a `Peek` passed to a call lives in memory,
                // and the record path would store every field of its view
                // there too.
                let (miss, next, what) = match ring::peek(&ring, self.lanes[p].cursor, head) {
                    Peek::Record(view) => {
                        let lane = &mut self.lanes[p];
                        if self.overwrite && view.seq > lane.expected {
                            let missed = view.seq - lane.expected;
                            lane.expected = view.seq;
                            self.lagged = self.lagged.saturating_add(missed);
                            // Relaxed: statistics only.
                            sh.subscriber(self.slot)
                                .lagged
                                .store(self.lagged, Ordering::Relaxed);
                            return Err(RecvError::Lagged(missed));
                        }
                        if !self.wants(sh, view.topic) {
                            self.lanes[p].expected = view.seq.wrapping_add(1);
                            self.advance(sh, p, view.next, false);
                            continue;
                        }
                        if self.copy && !self.copy_payload(p, &view) {
                            // Rewritten while we copied it: not delivered.
                            // `expected` stays at its sequence, so the next
                            // record found reports it in `Lagged(n)`.
                            self.not_a_record(sh, p, Miss::Lagged, 0, "")?;
                            continue;
                        }
                        self.next_producer = (p + 1) & 63;
                        self.near_tail(p, &view);
                        return Ok(Found {
                            producer: p as u32,
                            view,
                            origin: PLAIN,
                        });
                    }
                    Peek::Empty => (Miss::Empty, 0, ""),
                    Peek::Padding { next } => (Miss::Padding, next, ""),
                    Peek::Lagged => (Miss::Lagged, 0, ""),
                    Peek::Corrupt(what) => (Miss::Corrupt, 0, what),
                };
                if self.not_a_record(sh, p, miss, next, what)? {
                    continue;
                }
                break;
            }
        }
        Err(RecvError::Empty)
    }

    /// Sets [`pause_next`](State::pause_next) when the record just found
    /// (`view`) ends within [`near`](State::near) bytes of
    /// producer `p`'s published tail: the subscriber is at the producer's
    /// heels, and the next poll would read the line the producer is
    /// writing the next record into. Taking that line mid-write makes the
    /// producer fetch it back for each of its remaining stores, and both
    /// sides slow down (64 B messages, one subscriber, in compare/: 15–17
    /// M/s without the pause, 38–41 M/s with it; docs/BENCHMARKS.md). A
    /// subscriber further behind reads lines the producer has finished
    /// with, and does not pause.
    ///
    /// The tail is read only when the cursor comes within `near` of the
    /// value last read, so a subscriber draining a backlog reads it once
    /// per `near` bytes; at the heels it reads a line the producer writes
    /// once per 1/64 of the ring (Block) or, under Overwrite, the line
    /// whose `head` the receive path reads anyway.
    ///
    /// Only records of payloads up to [`near_len`](State::near_len) (2 KiB
    /// with the default 1 MiB ring) are checked. A larger
    /// record takes the producer long enough to write that polling its
    /// header costs it a transfer or two, not one per store; and the
    /// producer publishes its tail every few such records, so reading it
    /// at each of them takes that line from the producer as often: 4 KiB
    /// and 16 KiB payloads ran 10–15% slower with the check than without,
    /// 64 KiB 3% slower (docs/BENCHMARKS.md).
    #[inline(always)]
    fn near_tail(&mut self, p: usize, view: &RecordView) {
        if view.len > self.near_len() {
            return;
        }
        let lane = &mut self.lanes[p & 63];
        // No overflow: `peek` checked `next` < `MAX_POSITION` (2^62), and
        // `near` is 1/64 of a ring.
        let reach = view.next.wrapping_add(self.near);
        if reach > lane.known_tail {
            // Relaxed: a hint deciding one pause, never used to read or
            // size anything, so a stale or damaged value is harmless.
            lane.known_tail = lane.ring.slot().tail.load(Ordering::Relaxed);
            self.pause_next = reach > lane.known_tail;
        }
    }

    /// Largest payload whose record [`near_tail`](State::near_tail)
    /// checks: 1/8 of [`near`](State::near).
    #[inline(always)]
    pub(crate) fn near_len(&self) -> u64 {
        self.near / 8
    }

    /// The pause [`near_tail`](State::near_tail) asked for, if it did:
    /// called before reading the next record.
    #[inline(always)]
    fn pause_if_due(&mut self) {
        if self.pause_next {
            self.pause_next = false;
            std::hint::spin_loop();
        }
    }

    /// `poll` with no producer to visit: nothing yet (`Empty`), or a group
    /// member, whose next record (handed out, its payload copied when
    /// copies are made) is returned by where it is.
    ///
    /// Returns `(position, sequence)` in two registers, the producer and
    /// origin in `self.ready`; or `u64::MAX` with the error in `pending`.
    #[inline(never)]
    fn no_producer(&mut self, sh: &Shared) -> (u64, u64) {
        let r = if self.group.is_none() {
            Err(RecvError::Empty)
        } else {
            self.group_poll(sh)
        };
        match r {
            Ok(found) => {
                self.ready = (found.producer, found.origin);
                (found.view.pos, found.view.seq)
            }
            Err(e) => {
                self.pending = Some(e);
                (u64::MAX, 0)
            }
        }
    }

    /// What `poll` does when producer `p`'s ring holds no deliverable
    /// record at the cursor: `Ok(true)` when the cursor moved on (read
    /// again), `Ok(false)` when the ring is caught up with. Out of line:
    /// the record path is the hot one.
    ///
    /// `miss` says what `peek` found; `next` is a padding record's next
    /// position, `what` a corrupt header's description.
    #[inline(never)]
    fn not_a_record(
        &mut self,
        sh: &Shared,
        p: usize,
        miss: Miss,
        next: u64,
        what: &'static str,
    ) -> Result<bool, RecvError> {
        match miss {
            Miss::Padding => self.advance(sh, p, next, false),
            Miss::Lagged => {
                let ring = self.lanes[p & 63].ring;
                let pos = ring::resync(&ring, &ring.ctl());
                if pos <= self.lanes[p & 63].cursor {
                    // A lapped reader always finds a later record boundary;
                    // none means the producer's words are damaged (head
                    // beyond its tail).
                    return Err(self.corrupt(p, "overwrite mark beyond the producer's tail"));
                }
                self.advance(sh, p, pos, true);
            }
            Miss::Corrupt => return Err(self.corrupt(p, what)),
            Miss::Empty => {
                // Caught up with this producer: let it reuse everything
                // read so far.
                self.publish_cursor(sh, p);
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next record of producer `p`'s ring, if it is ready, wanted and
    /// needs nothing but delivery: the batch receive's short cut past the
    /// producer scan. Anything else (`None`) goes through [`poll`](Self::poll).
    #[inline]
    pub(crate) fn next_in_lane(&mut self, sh: &Shared, p: usize) -> Option<Found> {
        if self.overwrite || self.copy || self.group.is_some() {
            return None;
        }
        self.pause_if_due();
        let lane = &self.lanes[p & 63];
        match ring::peek(&lane.ring, lane.cursor, None) {
            Peek::Record(view) if self.wants(sh, view.topic) => {
                self.near_tail(p, &view);
                Some(Found {
                    producer: p as u32,
                    view,
                    origin: PLAIN,
                })
            }
            _ => None,
        }
    }

    /// The error a batch receive left for the next receive.
    #[cold]
    fn take_pending(&mut self) -> RecvError {
        self.pending.take().unwrap_or(RecvError::Empty)
    }

    /// Marks producer `p`'s ring as broken (skipped from now on).
    #[cold]
    pub(crate) fn corrupt(&mut self, p: usize, what: &'static str) -> RecvError {
        self.broken |= 1 << p;
        // A group member's `visit` stays 0 (its seat may be out of
        // `self.group` right now: `group_poll` holds it).
        if self.visit != 0 {
            self.visit = !self.broken;
        }
        tracing::error!(producer = p, what, "corrupt ring; skipping it");
        RecvError::Corrupt { what }
    }

    /// Copies the payload of `view` into `scratch`. Under Overwrite the
    /// copy is made with atomic word loads and validated against the
    /// producer's overwrite mark; returns whether it is the record's.
    pub(crate) fn copy_payload(&mut self, p: usize, view: &RecordView) -> bool {
        let lines = view.len.div_ceil(ring::ALIGN) as usize;
        if self.scratch.len() < lines {
            self.scratch.resize(lines, Line([0; 4]));
        }
        let ring = self.lanes[p & 63].ring;
        let words: &mut [u64] = bytemuck::cast_slice_mut(&mut self.scratch[..lines]);
        if self.overwrite {
            let n = view.len.div_ceil(8) as usize;
            // Inside the record: `peek` checked `slot + record_size(len) <=
            // cap`, and the record is padded to whole lines.
            ring::copy_out(
                &ring,
                view.payload_slot(ring.capacity() - 1),
                &mut words[..n],
            );
            ring::intact(&ring.slot().head, view.pos, ring.capacity())
        } else {
            // SAFETY: Block policy; `peek` saw the record committed, and our
            // cursor stays at `view.pos` until the copy is made.
            let src = unsafe { ring::payload_in_place(&ring, view) };
            let dst: &mut [u8] = bytemuck::cast_slice_mut(words);
            dst[..src.len()].copy_from_slice(src);
            true
        }
    }

    /// Counts a delivered sample and moves past it (its `Drop`).
    #[inline]
    pub(crate) fn delivered(&mut self, sh: &Shared, found: Found) {
        if found.origin != PLAIN {
            // Two words, not the `Found`: no copy of it on this path.
            return self.group_delivered(sh, found.view.next, found.view.seq);
        }
        let Found { producer, view, .. } = found;
        let producer = producer as usize;
        // Wrapping: `seq` is a word of the segment (unchecked on this path).
        self.lanes[producer & 63].expected = view.seq.wrapping_add(1);
        self.received += 1;
        self.advance(sh, producer, view.next, false);
    }

    /// Records "last active" now and then while polling finds nothing
    /// (a clock read costs more than an empty poll). Also turns `Empty`
    /// into `BusRemoved` once the bus was removed (checked at the same
    /// pace: not on every empty poll).
    #[inline(always)]
    pub(crate) fn touch_if_idle(&mut self, sh: &Shared, r: &mut Result<Found, RecvError>) {
        if matches!(r, Err(RecvError::Empty)) {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % 4096 == 1 && self.touch(sh) {
                *r = Err(RecvError::BusRemoved);
            }
        }
    }

    /// The rare half of `touch_if_idle`, out of line; returns whether the
    /// bus was removed. (It takes no pointer to the receive's `Result`,
    /// which would then live in memory on every path.)
    #[cold]
    #[inline(never)]
    fn touch(&mut self, sh: &Shared) -> bool {
        // Relaxed: diagnostics only.
        self.activity(sh)
            .0
            .store(clock::wall_ns(), Ordering::Relaxed);
        sh.is_removed()
    }

    /// Receives the next event, waiting at most `timeout` (for ever with
    /// `None`). The clock is read only once nothing is ready.
    pub(crate) fn wait(
        &mut self,
        sh: &Shared,
        timeout: Option<Duration>,
    ) -> Result<Found, RecvError> {
        self.nap = FIRST_NAP;
        match self.poll(sh) {
            Err(RecvError::Empty) => {}
            other => return other,
        }
        let start = Instant::now();
        let deadline = timeout.map(|t| start + t);
        let spin_until = start + self.spin;
        let mut round = 0u32;
        loop {
            let polled = spin_round(&mut round, || match self.poll(sh) {
                Err(RecvError::Empty) => None,
                other => Some(other),
            });
            if let Some(r) = polled {
                return r;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                let mut r = Err(RecvError::Empty);
                self.touch_if_idle(sh, &mut r);
                return match r {
                    Err(RecvError::BusRemoved) => r,
                    _ => Err(RecvError::Timeout),
                };
            }
            if now < spin_until {
                continue;
            }
            if self.group.is_some() {
                self.group_idle(sh);
            }
            let header = sh.header();
            let (last_active, sleeping) = self.activity(sh);
            // Relaxed: diagnostics only.
            last_active.store(clock::wall_ns(), Ordering::Relaxed);
            // Acquire: pairs with the Release `fetch_add` of a waking
            // publisher (`Publisher::commit`); if we read its bump, its
            // record is visible to the re-poll below.
            let seen = header.data_futex.load(Ordering::Acquire);
            // Relaxed: ordered before the SeqCst `fetch_add` below, which
            // a reaper's AcqRel swap of this flag synchronises with.
            sleeping.store(1, Ordering::Relaxed);
            // SeqCst (a release): pairs with the Acquire load in
            // `Waker::due`; a publisher that reads this increment bumps
            // the futex word only after our `seen` read above (see `wake`).
            header.data_registrations.fetch_add(1, Ordering::SeqCst);
            // SeqCst: a full barrier between counting ourselves asleep and
            // the re-poll below. Publishers check the count without a fence
            // (a fence would stall every publish), so one publishing at this
            // very instant may miss us: the nap below starts at 1 ms and
            // doubles while idle, bounding that delay. Also a release:
            // a publisher that reads this count (Acquire, `Waker::due`)
            // then sees the registration above.
            header.data_sleepers.fetch_add(1, Ordering::SeqCst);
            let again = self.poll(sh);
            if !matches!(again, Err(RecvError::Empty)) {
                self.stop_sleeping(sh);
                return again;
            }
            if sh.is_removed() {
                self.stop_sleeping(sh);
                return Err(RecvError::BusRemoved);
            }
            let mut nap = naps_left_shift(&mut self.nap);
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            futex::wait(&header.data_futex, seen, nap);
            self.stop_sleeping(sh);
        }
    }

    pub(crate) fn stop_sleeping(&self, sh: &Shared) {
        // AcqRel: a reaper that un-counts a dead sleeper swaps the same
        // flag (`Shared::reap`), so exactly one of us decrements.
        if self.activity(sh).1.swap(0, Ordering::AcqRel) == 1 {
            // SeqCst: as the increment in `wait`.
            sh.header().data_sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Wakes producer `p` if it sleeps waiting for space.
pub(crate) fn wake_producer(sh: &Shared, p: usize) {
    let slot = sh.producer(p);
    // Relaxed: a producer that registers at this instant may be missed; it
    // sleeps at most `SPACE_SLEEP` before re-checking.
    if slot.space_waiters.load(Ordering::Relaxed) != 0 {
        // Release: pairs with the producer's Acquire load of the futex word
        // in `Publisher::reserve`; the cursor we published is visible
        // once it sees the bump.
        slot.space_futex.fetch_add(1, Ordering::Release);
        futex::wake_all(&slot.space_futex);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Bus, BusConfig};

    /// Removes the test's bus even when the test fails.
    struct Remove(String);

    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Bus::remove(&self.0);
        }
    }

    /// A subscriber pauses before its next poll after finding a record
    /// near its producer's published tail, and not while it reads a
    /// backlog further behind; every record arrives either way.
    #[test]
    fn pauses_only_at_the_producers_heels() -> Result<(), Box<dyn std::error::Error>> {
        let name = format!("heels-{}", std::process::id());
        let _guard = Remove(name.clone());
        let _ = Bus::remove(&name);
        let config = BusConfig {
            ring_bytes: 64 << 10,
            ..BusConfig::default()
        };
        let bus = Bus::create(&name, config)?;
        let mut publisher = bus.publisher("p")?;
        let mut sub = bus.subscriber("s")?;
        sub.subscribe("t")?;
        let t = publisher.topic_id("t")?;
        let near = sub.st.near;
        assert_eq!(near, 1 << 10);

        // At the tail: the next poll pauses, once.
        publisher.publish(&t, &0u64.to_le_bytes())?;
        assert_eq!(sub.try_recv()?.payload()[0], 0);
        assert!(sub.st.pause_next);
        assert!(sub.try_recv().is_err());
        assert!(!sub.st.pause_next);

        // A backlog of 20 chunks (96-byte records): the published tail is
        // far ahead of the first ones, near the last ones.
        let n = 20 * near / 96;
        let mut payload = [0u8; 64];
        for i in 1..=n {
            payload[..8].copy_from_slice(&i.to_le_bytes());
            publisher.publish(&t, &payload)?;
        }
        let mut paused = Vec::new();
        for i in 1..=n {
            let mut b = [0u8; 8];
            b.copy_from_slice(&sub.try_recv()?.payload()[..8]);
            assert_eq!(u64::from_le_bytes(b), i);
            paused.push(sub.st.pause_next);
        }
        assert!(sub.try_recv().is_err());
        // No pause more than 3 chunks from the end (a pause comes within a
        // chunk of the published tail, which lags the true one by at most
        // a chunk and a record); at the heels for the last records.
        let far = (n - 3 * near / 96) as usize;
        assert!(paused[..far].iter().all(|&p| !p), "{paused:?}");
        assert!(paused[paused.len() - 1]);

        // The batch receive's short cut (`next_in_lane`) does the same: two
        // records at the tail leave the next poll pausing, two at the
        // start of a backlog do not.
        publisher.publish(&t, &payload)?;
        publisher.publish(&t, &payload)?;
        assert_eq!(sub.try_recv_many(2, |_| {})?, 2);
        assert!(sub.st.pause_next);
        assert!(sub.try_recv().is_err());
        for _ in 0..n {
            publisher.publish(&t, &payload)?;
        }
        assert_eq!(sub.try_recv_many(2, |_| {})?, 2);
        assert!(!sub.st.pause_next);
        while sub.try_recv_many(64, |_| {})? > 0 {}

        // A payload larger than `near_len` is not checked: no pause.
        assert_eq!(sub.st.near_len(), near / 8);
        publisher.publish(&t, &vec![0u8; near as usize / 8 + 1])?;
        assert_eq!(sub.try_recv()?.payload().len(), near as usize / 8 + 1);
        assert!(!sub.st.pause_next);
        publisher.publish(&t, &vec![0u8; near as usize / 8])?;
        assert_eq!(sub.try_recv()?.payload().len(), near as usize / 8);
        assert!(sub.st.pause_next);
        Ok(())
    }
}
