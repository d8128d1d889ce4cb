//! [`Subscriber`] and [`Sample`]: receiving events, zero-copy.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use shm_bus_alloc::ProcessId;
use shm_bus_topic::{SubscriptionIndex, Topic, TopicId};

use crate::bus::{Bus, Shared};
use crate::clock;
use crate::config::Policy;
use crate::error::{BusError, PayloadError, RecvError};
use crate::futex;
use crate::layout::{SLOT_ACTIVE, SLOT_CLAIMING, SLOT_FREE, slot_word, store_name};
use crate::ring::{self, Peek, RecordView, RingMem};

const UNKNOWN: u8 = 0;
const MATCH: u8 = 1;
const NO_MATCH: u8 = 2;

/// How long a sleeping subscriber waits at most before re-checking: the
/// first nap of an idle spell is `FIRST_NAP`, then each doubles up to this.
const DATA_SLEEP: Duration = Duration::from_millis(100);
const FIRST_NAP: Duration = Duration::from_millis(1);

/// The next nap of an idle spell (see `Subscriber::wait`).
fn naps_left_shift(nap: &mut Duration) -> Duration {
    let this = (*nap).clamp(FIRST_NAP, DATA_SLEEP);
    *nap = (this * 2).min(DATA_SLEEP);
    this
}

/// Receives the events whose topics match its patterns, from every
/// producer of the bus (including ones that attach later).
///
/// Filtering reads only the record header's `TopicId` and a per-id cache,
/// never the payload. Dropping the subscriber frees its slot.
///
/// ## Lagging (Overwrite policy)
///
/// A subscriber that falls more than a ring behind one producer gets
/// [`RecvError::Lagged(n)`](RecvError::Lagged) with the exact number of
/// that producer's records it missed, stays subscribed, and the next
/// receive continues with the oldest record still retained.
pub struct Subscriber {
    bus: Bus,
    slot: usize,
    index: SubscriptionIndex<u32>,
    patterns: Vec<Topic>,
    next_pattern: u32,
    /// Per `TopicId`: `UNKNOWN`, `MATCH` or `NO_MATCH`.
    cache: Vec<u8>,
    cursors: Vec<u64>,
    /// The cursors as last published to the segment.
    shared_cursors: Vec<u64>,
    /// Bytes consumed between cursor publications (1/64 of the ring).
    cursor_batch: u64,
    expected: Vec<u64>,
    /// Producers whose ring was found corrupt; skipped from then on.
    broken: u64,
    next_producer: usize,
    received: u64,
    lagged: u64,
    spin: Duration,
    overwrite: bool,
    empty_polls: u32,
    nap: Duration,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("bus", &self.bus.name())
            .field("id", &self.slot)
            .field("patterns", &self.patterns)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Attaches a subscriber, claiming a free subscriber slot (reaping dead
    /// ones if none is free). It receives events committed from now on, on
    /// topics matching the patterns it [subscribes](Subscriber::subscribe)
    /// to. `name` (up to 32 bytes) shows in `inspect`.
    ///
    /// # Errors
    /// [`BusError::TooManySubscribers`] when every slot has a live owner.
    pub fn subscriber(&self, name: &str) -> Result<Subscriber, BusError> {
        let sh: &Shared = &self.shared;
        let me = ProcessId::current();
        let mut reaped = false;
        loop {
            for s in 0..sh.config.max_subscribers as usize {
                let slot = sh.subscriber(s);
                // AcqRel: pairs with the Release store that freed the slot.
                if slot
                    .state
                    .compare_exchange(
                        SLOT_FREE,
                        slot_word(me.token(), SLOT_CLAIMING),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return Ok(self.join(s, me, name));
                }
            }
            if reaped || sh.reap().0 == 0 {
                return Err(BusError::TooManySubscribers {
                    max: sh.config.max_subscribers,
                });
            }
            reaped = true;
        }
    }

    /// The join protocol: cursors at every ring's tail, then ACTIVE, then
    /// the tails read again (a producer that did not yet see us ACTIVE
    /// never writes past the tail it had then plus a ring, so starting from
    /// a tail read after ACTIVE is safe).
    fn join(&self, s: usize, me: ProcessId, name: &str) -> Subscriber {
        let sh: &Shared = &self.shared;
        let slot = sh.subscriber(s);
        let producers = sh.config.max_producers as usize;
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
        let mut cursors = vec![0; producers];
        let mut expected = vec![0; producers];
        for p in 0..producers {
            let (tail, seq) = ring::snapshot(&sh.ring_ctl(sh.producer(p)));
            cursors[p] = tail;
            expected[p] = seq;
            // Relaxed: published by the SeqCst ACTIVE store below.
            sh.cursor(s, p).store(tail, Ordering::Relaxed);
        }
        // SeqCst: ordered against the SeqCst state loads in `Shared::limit`.
        slot.state
            .store(slot_word(me.token(), SLOT_ACTIVE), Ordering::SeqCst);
        for p in 0..producers {
            let (tail, seq) = ring::snapshot(&sh.ring_ctl(sh.producer(p)));
            if tail != cursors[p] {
                cursors[p] = tail;
                expected[p] = seq;
                // SeqCst: see `Shared::limit`.
                sh.cursor(s, p).swap(tail, Ordering::SeqCst);
            }
        }
        Subscriber {
            bus: self.clone(),
            slot: s,
            index: SubscriptionIndex::new(),
            patterns: Vec::new(),
            next_pattern: 0,
            cache: Vec::new(),
            shared_cursors: cursors.clone(),
            cursors,
            cursor_batch: (sh.config.ring_bytes / 64).max(1),
            expected,
            broken: 0,
            next_producer: 0,
            received: 0,
            lagged: 0,
            spin: Duration::from_micros(50),
            overwrite: sh.config.policy == Policy::Overwrite,
            empty_polls: 0,
            nap: FIRST_NAP,
        }
    }
}

/// Where a received record is (no borrow, so `recv` can loop).
#[derive(Clone, Copy)]
struct Found {
    producer: usize,
    view: RecordView,
}

impl Subscriber {
    /// This subscriber's id (its slot).
    pub fn id(&self) -> u32 {
        self.slot as u32
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// How long `recv` / `recv_timeout` spin before sleeping on a futex
    /// (default 50 µs). Spinning catches events that arrive soon at the
    /// cost of a busy core; waking a sleeping process costs ~20 µs on the
    /// VMs this was measured on.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Adds a pattern (any topic of the language: exact, wildcards,
    /// ranges, regexes, `**`). Returns `false` if it was already there.
    ///
    /// # Errors
    /// [`BusError::InvalidTopic`].
    pub fn subscribe(&mut self, pattern: &str) -> Result<bool, BusError> {
        let topic = Topic::parse(pattern)?;
        if self.patterns.contains(&topic) {
            return Ok(false);
        }
        self.index.insert(&topic, self.next_pattern);
        self.next_pattern += 1;
        self.patterns.push(topic);
        self.cache.clear();
        Ok(true)
    }

    /// Removes a pattern. Returns whether it was there.
    ///
    /// # Errors
    /// [`BusError::InvalidTopic`].
    pub fn unsubscribe(&mut self, pattern: &str) -> Result<bool, BusError> {
        let topic = Topic::parse(pattern)?;
        let Some(pos) = self.patterns.iter().position(|t| *t == topic) else {
            return Ok(false);
        };
        self.patterns.remove(pos);
        self.index = SubscriptionIndex::new();
        for (i, t) in self.patterns.iter().enumerate() {
            self.index.insert(t, i as u32);
        }
        self.next_pattern = self.patterns.len() as u32;
        self.cache.clear();
        Ok(true)
    }

    /// The patterns subscribed to.
    pub fn patterns(&self) -> &[Topic] {
        &self.patterns
    }

    /// Whether records on `id` are delivered to this subscriber.
    #[inline]
    fn wants(&mut self, id: u32) -> bool {
        let i = id as usize;
        if let Some(&state) = self.cache.get(i) {
            if state != UNKNOWN {
                return state == MATCH;
            }
        }
        let Some(literal) = self.bus.shared.topic_literal(TopicId(id)) else {
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
    /// ring has been consumed, when the producer waits for space, when this
    /// ring is caught up with, or at once with `publish`: storing it on
    /// every record makes its cache line bounce between the two cores
    /// whenever the producer is checking for space.
    #[inline]
    fn advance(&mut self, p: usize, next: u64, publish: bool) {
        self.cursors[p] = next;
        if publish
            || next - self.shared_cursors[p] >= self.cursor_batch
            // Relaxed: a hint; see `publish_cursor`.
            || self.shared().producer(p).space_waiters.load(Ordering::Relaxed) != 0
        {
            self.publish_cursor(p);
        }
    }

    /// Publishes producer `p`'s cursor and wakes the producer if it waits
    /// for space.
    fn publish_cursor(&mut self, p: usize) {
        let next = self.cursors[p];
        if self.shared_cursors[p] == next {
            return;
        }
        self.shared_cursors[p] = next;
        let sh = self.shared();
        // Release: pairs with the Acquire load in `Shared::limit`; the bytes
        // before `next` have been read. A plain store: the producer reads
        // this line only when it runs out of space.
        sh.cursor(self.slot, p).store(next, Ordering::Release);
        if !self.overwrite {
            let slot = sh.producer(p);
            // Relaxed: a producer that registers at this instant may be
            // missed; it sleeps at most `SPACE_SLEEP` before re-checking.
            if slot.space_waiters.load(Ordering::Relaxed) != 0 {
                slot.space_futex.fetch_add(1, Ordering::Release);
                futex::wake_all(&slot.space_futex);
            }
        }
    }

    /// The shared state, borrowed independently of `&mut self` (so the
    /// receive loop can update cursors while holding it) without cloning
    /// the `Arc` (two atomic read-modify-writes) on every poll.
    #[inline]
    fn shared<'x>(&self) -> &'x Shared {
        // SAFETY: `self.bus` holds an `Arc<Shared>` that is never replaced
        // or dropped while `self` lives, and the callers use the reference
        // only within a method of `self`, so the `Shared` outlives it.
        unsafe { &*Arc::as_ptr(&self.bus.shared) }
    }

    #[inline]
    fn poll(&mut self) -> Result<Found, RecvError> {
        let sh = self.shared();
        // Acquire: pairs with the Release `fetch_or` of a new producer.
        let mask = sh.header().producer_mask.load(Ordering::Acquire) & !self.broken;
        if mask == 0 {
            return Err(RecvError::Empty);
        }
        // Visit producers with data in turn, starting after the last one
        // served (fairness), by rotating the mask: no division per poll.
        let start = self.next_producer as u32;
        let mut rotated = mask.rotate_right(start);
        while rotated != 0 {
            let bit = rotated.trailing_zeros();
            rotated &= rotated - 1;
            let p = ((bit + start) & 63) as usize;
            let ring = sh.ring(p);
            let slot = sh.producer(p);
            let head = self.overwrite.then_some(&slot.head);
            loop {
                match ring::peek(&ring, self.cursors[p], head) {
                    Peek::Empty => {
                        // Caught up with this producer: let it reuse
                        // everything read so far.
                        self.publish_cursor(p);
                        break;
                    }
                    Peek::Padding { next } => self.advance(p, next, false),
                    Peek::Lagged => {
                        let pos = ring::resync(&ring, &sh.ring_ctl(slot));
                        self.advance(p, pos, true);
                    }
                    Peek::Corrupt(what) => {
                        self.broken |= 1 << p;
                        tracing::error!(producer = p, what, "corrupt ring; skipping it");
                        return Err(RecvError::Corrupt { what });
                    }
                    Peek::Record(view) => {
                        if self.overwrite && view.seq > self.expected[p] {
                            let missed = view.seq - self.expected[p];
                            self.expected[p] = view.seq;
                            self.lagged += missed;
                            sh.subscriber(self.slot)
                                .lagged
                                .store(self.lagged, Ordering::Relaxed);
                            return Err(RecvError::Lagged(missed));
                        }
                        if !self.wants(view.topic) {
                            self.expected[p] = view.seq + 1;
                            self.advance(p, view.next, false);
                            continue;
                        }
                        self.next_producer = (p + 1) & 63;
                        return Ok(Found { producer: p, view });
                    }
                }
            }
        }
        Err(RecvError::Empty)
    }

    #[inline]
    fn sample(&mut self, found: Found) -> Sample<'_> {
        let sh = &*self.bus.shared;
        let ring = sh.ring(found.producer);
        let ptr = ring.ptr(found.view.payload_slot(ring.capacity() - 1));
        Sample {
            ptr,
            found,
            sub: self,
            verdict: std::cell::Cell::new(None),
        }
    }

    /// Receives the next matching event if one is ready.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Lagged`], [`RecvError::Corrupt`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<Sample<'_>, RecvError> {
        let found = self.poll();
        self.touch_if_idle(&found);
        let found = found?;
        Ok(self.sample(found))
    }

    /// Waits for the next matching event: spins for the configured time,
    /// then sleeps on a futex in the segment until a publisher wakes it.
    ///
    /// # Errors
    /// [`RecvError::Lagged`], [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<Sample<'_>, RecvError> {
        let found = self.wait(None)?;
        Ok(self.sample(found))
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Lagged`], [`RecvError::Corrupt`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Sample<'_>, RecvError> {
        let found = self.wait(Some(Instant::now() + timeout))?;
        Ok(self.sample(found))
    }

    /// Records "last active" now and then while polling finds nothing
    /// (a clock read costs more than an empty poll).
    #[inline]
    fn touch_if_idle(&mut self, r: &Result<Found, RecvError>) {
        if matches!(r, Err(RecvError::Empty)) {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % 4096 == 1 {
                let slot = self.bus.shared.subscriber(self.slot);
                slot.last_active_ns
                    .store(clock::wall_ns(), Ordering::Relaxed);
            }
        }
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<Found, RecvError> {
        self.nap = FIRST_NAP;
        match self.poll() {
            Err(RecvError::Empty) => {}
            other => return other,
        }
        let spin_until = Instant::now() + self.spin;
        let backoff = Backoff::new();
        loop {
            match self.poll() {
                Err(RecvError::Empty) => {}
                other => return other,
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                self.touch_if_idle(&Err(RecvError::Empty));
                return Err(RecvError::Timeout);
            }
            if now < spin_until {
                backoff.snooze();
                continue;
            }
            let sh = self.shared();
            let header = sh.header();
            let slot = sh.subscriber(self.slot);
            slot.last_active_ns
                .store(clock::wall_ns(), Ordering::Relaxed);
            let seen = header.data_futex.load(Ordering::Acquire);
            slot.sleeping.store(1, Ordering::Relaxed);
            // SeqCst: a full barrier between counting ourselves asleep and
            // the re-poll below. Publishers check the count without a fence
            // (a fence would stall every publish), so one publishing at this
            // very instant may miss us: the nap below starts at 1 ms and
            // doubles while idle, bounding that delay.
            header.data_sleepers.fetch_add(1, Ordering::SeqCst);
            let again = self.poll();
            if !matches!(again, Err(RecvError::Empty)) {
                self.stop_sleeping();
                return again;
            }
            let mut nap = naps_left_shift(&mut self.nap);
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            futex::wait(&header.data_futex, seen, nap);
            self.stop_sleeping();
        }
    }

    fn stop_sleeping(&self) {
        let sh = &*self.bus.shared;
        // AcqRel: a reaper that un-counts a dead sleeper swaps the same
        // flag, so exactly one of us decrements.
        if sh.subscriber(self.slot).sleeping.swap(0, Ordering::AcqRel) == 1 {
            sh.header().data_sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Samples received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Records missed through lag so far (Overwrite policy).
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop_sleeping();
        let slot = self.bus.shared.subscriber(self.slot);
        // Release: pairs with the AcqRel CAS of the next claimer; producers
        // stop counting our cursors.
        slot.state.store(SLOT_FREE, Ordering::Release);
        // Producers blocked on us may go on.
        for p in 0..self.bus.shared.config.max_producers as usize {
            let ps = self.bus.shared.producer(p);
            if ps.space_waiters.load(Ordering::Relaxed) != 0 {
                ps.space_futex.fetch_add(1, Ordering::Release);
                futex::wake_all(&ps.space_futex);
            }
        }
    }
}

/// A received event. Its payload is borrowed from the producer's ring (no
/// copy); the ring space is released when the sample is dropped.
///
/// Under [`Policy::Overwrite`](crate::Policy::Overwrite) a producer that
/// laps this subscriber may rewrite the payload while it is being read:
/// call [`Sample::is_intact`] after reading to know whether what was read
/// is the record's (the ring's seqlock). A sample that is no longer intact
/// when dropped is not counted as received: the next receive reports it
/// in [`RecvError::Lagged`]. Under
/// [`Policy::Block`](crate::Policy::Block) the payload cannot change while
/// the sample lives.
pub struct Sample<'a> {
    sub: &'a mut Subscriber,
    found: Found,
    ptr: *const u8,
    /// The last `is_intact` answer (Overwrite policy), used by `drop`.
    verdict: std::cell::Cell<Option<bool>>,
}

impl Sample<'_> {
    /// The topic's id.
    #[inline]
    pub fn topic_id(&self) -> TopicId {
        TopicId(self.found.view.topic)
    }

    /// The topic's literal.
    pub fn topic(&self) -> &str {
        self.sub
            .bus
            .shared
            .topic_literal(self.topic_id())
            .unwrap_or("")
    }

    /// The producer (publisher slot) that published it.
    pub fn producer(&self) -> u32 {
        self.found.producer as u32
    }

    /// Its sequence number: per producer, starting at 0, gap-free under
    /// Block policy.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.found.view.seq
    }

    /// When it was committed, ns since the Unix epoch (converted from the
    /// cheap clock the publisher stamped it with; see the crate docs).
    pub fn timestamp_ns(&self) -> u64 {
        self.sub.bus.shared.wall_ns(self.found.view.timestamp)
    }

    /// The raw stamp of the record (cheap-clock ticks; see `clock`).
    #[inline]
    pub(crate) fn stamp(&self) -> u64 {
        self.found.view.timestamp
    }

    /// The payload, borrowed from the ring.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // SAFETY: the record at this position is committed (its stamp was
        // seen with Acquire) and lies contiguously in the ring (checked by
        // `peek`). Under Block policy the producer cannot reuse it before
        // this sample drops and advances the cursor; under Overwrite it may
        // be rewritten concurrently — the bytes are plain u8 and the caller
        // is told to check `is_intact`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.found.view.len as usize) }
    }

    /// Length of the payload.
    pub fn len(&self) -> usize {
        self.found.view.len as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.found.view.len == 0
    }

    /// Views the payload as a `T` in place (no copy). Payloads are aligned
    /// to 32 bytes.
    ///
    /// # Errors
    /// [`PayloadError::Size`] or [`PayloadError::Align`].
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, PayloadError> {
        crate::error::view_pod(self.payload())
    }

    /// Decodes a value published with
    /// [`Publisher::publish_serde`](crate::Publisher::publish_serde).
    ///
    /// # Errors
    /// [`PayloadError::Decode`].
    pub fn decode<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, PayloadError> {
        crate::error::decode(self.payload())
    }

    /// Overwrite policy: whether the payload read so far is still the
    /// record's (not rewritten by a producer that lapped us). Always true
    /// under Block policy.
    ///
    /// The last answer is the sample's verdict: when dropped, a sample
    /// judged intact counts as received, one judged rewritten is reported
    /// in the next `Lagged(n)`. Without a call, the drop checks.
    pub fn is_intact(&self) -> bool {
        let intact = self.check_intact();
        self.verdict.set(Some(intact));
        intact
    }

    fn check_intact(&self) -> bool {
        if !self.sub.overwrite {
            return true;
        }
        let sh = &*self.sub.bus.shared;
        let slot = sh.producer(self.found.producer);
        ring::intact(&slot.head, self.found.view.pos, sh.config.ring_bytes)
    }
}

impl std::fmt::Debug for Sample<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("topic", &self.topic())
            .field("producer", &self.producer())
            .field("sequence", &self.sequence())
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for Sample<'_> {
    #[inline]
    fn drop(&mut self) {
        let Found { producer, view } = self.found;
        if !self.verdict.get().unwrap_or_else(|| self.check_intact()) {
            // Overwrite policy: the producer rewrote this record while it
            // was borrowed, so it was not good data. It is not counted as
            // received; `expected` stays at its sequence, so the next
            // receive reports it in `Lagged(n)`; and reading resumes at the
            // oldest retained record (the bytes after it are rewritten too).
            let sub = &mut *self.sub;
            let sh = sub.shared();
            let pos = ring::resync(&sh.ring(producer), &sh.ring_ctl(sh.producer(producer)));
            sub.advance(producer, pos, true);
            return;
        }
        let sub = &mut *self.sub;
        sub.expected[producer] = view.seq + 1;
        sub.received += 1;
        let slot = sub.bus.shared.subscriber(sub.slot);
        // Relaxed: statistics only.
        slot.received.store(sub.received, Ordering::Relaxed);
        sub.advance(producer, view.next, false);
    }
}
