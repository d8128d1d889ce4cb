//! [`Subscriber`] and [`Sample`]: receiving events, zero-copy under Block
//! policy, as validated copies under Overwrite (see [`crate::delivery`]).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use shm_bus_alloc::ProcessId;
use shm_bus_topic::{SubscriptionIndex, Topic, TopicId};

use crate::bus::{Bus, Shared};
use crate::clock;
use crate::config::Policy;
use crate::delivery::{AnyPolicy, Delivery};
use crate::error::{BusError, PayloadError, RecvError};
use crate::futex;
use crate::layout::{SLOT_ACTIVE, SLOT_CLAIMING, SLOT_FREE, slot_word, store_name};
use crate::ring::{self, Line, Peek, RecordView, RingMem};

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
/// `M` says how payloads are handed out (see [`delivery`](crate::delivery)):
/// borrowed in the ring, or as a validated copy. [`Bus::subscriber`] gives
/// [`AnyPolicy`], which borrows under Block and copies under Overwrite;
/// [`Bus::subscriber_as`] chooses.
///
/// ## Starting point
///
/// A subscriber receives what producers commit after it attached; records
/// already in the rings are not delivered.
///
/// ## Lagging (Overwrite policy)
///
/// A subscriber that falls more than a ring behind one producer gets
/// [`RecvError::Lagged(n)`](RecvError::Lagged) with the exact number of
/// that producer's records it missed, stays subscribed, and the next
/// receive continues with the oldest record still retained. A record the
/// producer rewrote while it was being copied is one of those `n`: it is
/// never returned.
pub struct Subscriber<M: Delivery = AnyPolicy> {
    bus: Bus,
    st: State,
    _delivery: PhantomData<M>,
}

/// Everything of a subscriber but its bus handle, so that receiving can
/// borrow the bus's shared state and mutate this at once.
struct State {
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
    /// Whether samples are copies (`M::copies(policy)`).
    copy: bool,
    /// The copy of the last payload handed out (when `copy`).
    scratch: Vec<Line>,
    empty_polls: u32,
    nap: Duration,
}

impl<M: Delivery> std::fmt::Debug for Subscriber<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("bus", &self.bus.name())
            .field("id", &self.st.slot)
            .field("patterns", &self.st.patterns)
            .field("copies", &self.st.copy)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Attaches a subscriber, claiming a free subscriber slot (reaping dead
    /// ones if none is free). It receives events committed from now on, on
    /// topics matching the patterns it [subscribes](Subscriber::subscribe)
    /// to. `name` (up to 32 bytes) shows in `inspect`. Its samples borrow
    /// their payload under Block policy and hold a validated copy under
    /// Overwrite ([`AnyPolicy`]).
    ///
    /// # Errors
    /// [`BusError::TooManySubscribers`] when every slot has a live owner.
    pub fn subscriber(&self, name: &str) -> Result<Subscriber, BusError> {
        self.subscriber_as::<AnyPolicy>(name)
    }

    /// Like [`subscriber`](Self::subscriber), with the delivery chosen by
    /// the type: [`Borrowed`](crate::delivery::Borrowed) (zero copy, Block
    /// buses only), [`Copied`](crate::delivery::Copied) or [`AnyPolicy`].
    ///
    /// ```no_run
    /// use shm_bus_core::{Bus, BusConfig, delivery::Borrowed};
    ///
    /// let bus = Bus::open_or_create("quotes", BusConfig::default())?;
    /// // Fails with `BorrowNeedsBlock` on an Overwrite bus.
    /// let mut sub = bus.subscriber_as::<Borrowed>("worker")?;
    /// sub.subscribe("md.**")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`BusError::BorrowNeedsBlock`] for `Borrowed` on an Overwrite bus;
    /// [`BusError::TooManySubscribers`].
    pub fn subscriber_as<M: Delivery>(&self, name: &str) -> Result<Subscriber<M>, BusError> {
        let sh: &Shared = &self.shared;
        let copy = M::copies(sh.config.policy)?;
        let me = ProcessId::current();
        let mut reaped = false;
        loop {
            for s in 0..sh.config.max_subscribers as usize {
                let slot = sh.subscriber(s);
                // AcqRel: pairs with the Release store that freed the slot
                // (`Drop for Subscriber`, `reap_slot`).
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
                    return Ok(Subscriber {
                        bus: self.clone(),
                        st: State::join(sh, s, me, name, copy),
                        _delivery: PhantomData,
                    });
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
}

/// Where a received record is (no borrow, so `recv` can loop).
#[derive(Clone, Copy)]
struct Found {
    producer: usize,
    view: RecordView,
}

impl State {
    /// The join protocol (see `ring::join_before`): cursors at every
    /// ring's tail, then ACTIVE and a SeqCst fence, then the tails read
    /// again. A producer that did not yet see us ACTIVE never writes past
    /// the tail it had then plus a ring, and the second read sees at least
    /// that tail, so starting there is safe.
    fn join(sh: &Shared, s: usize, me: ProcessId, name: &str, copy: bool) -> State {
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
        let (cursors, expected): (Vec<u64>, Vec<u64>) = (0..producers)
            .map(|p| ring::join_after(&sh.ring_ctl(sh.producer(p)), sh.cursor(s, p), before[p]))
            .unzip();
        State {
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
            copy,
            scratch: Vec::new(),
            empty_polls: 0,
            nap: FIRST_NAP,
        }
    }

    /// Whether records on `id` are delivered to this subscriber.
    #[inline]
    fn wants(&mut self, sh: &Shared, id: u32) -> bool {
        let i = id as usize;
        if let Some(&state) = self.cache.get(i) {
            if state != UNKNOWN {
                return state == MATCH;
            }
        }
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
    /// ring has been consumed, when the producer waits for space, when this
    /// ring is caught up with, or at once with `publish`: storing it on
    /// every record makes its cache line bounce between the two cores
    /// whenever the producer is checking for space.
    #[inline]
    fn advance(&mut self, sh: &Shared, p: usize, next: u64, publish: bool) {
        self.cursors[p] = next;
        if publish
            || next.wrapping_sub(self.shared_cursors[p]) >= self.cursor_batch
            // Relaxed: a hint; see `publish_cursor`.
            || sh.producer(p).space_waiters.load(Ordering::Relaxed) != 0
        {
            self.publish_cursor(sh, p);
        }
    }

    /// Publishes producer `p`'s cursor and wakes the producer if it waits
    /// for space.
    fn publish_cursor(&mut self, sh: &Shared, p: usize) {
        let next = self.cursors[p];
        if self.shared_cursors[p] == next {
            return;
        }
        self.shared_cursors[p] = next;
        // Release: pairs with the Acquire load in `ring::limit`; the bytes
        // before `next` have been read. A plain store: the producer reads
        // this line only when it runs out of space.
        sh.cursor(self.slot, p).store(next, Ordering::Release);
        if !self.overwrite {
            wake_producer(sh, p);
        }
    }

    #[inline]
    fn poll(&mut self, sh: &Shared) -> Result<Found, RecvError> {
        let mask = sh.producer_mask() & !self.broken;
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
                        self.publish_cursor(sh, p);
                        break;
                    }
                    Peek::Padding { next } => self.advance(sh, p, next, false),
                    Peek::Lagged => {
                        let pos = ring::resync(&ring, &sh.ring_ctl(slot));
                        if pos <= self.cursors[p] {
                            // A lapped reader always finds a later record
                            // boundary; none means the producer's words
                            // are damaged (head beyond its tail).
                            return Err(
                                self.corrupt(p, "overwrite mark beyond the producer's tail")
                            );
                        }
                        self.advance(sh, p, pos, true);
                    }
                    Peek::Corrupt(what) => return Err(self.corrupt(p, what)),
                    Peek::Record(view) => {
                        if self.overwrite && view.seq > self.expected[p] {
                            let missed = view.seq - self.expected[p];
                            self.expected[p] = view.seq;
                            self.lagged = self.lagged.saturating_add(missed);
                            // Relaxed: statistics only.
                            sh.subscriber(self.slot)
                                .lagged
                                .store(self.lagged, Ordering::Relaxed);
                            return Err(RecvError::Lagged(missed));
                        }
                        if !self.wants(sh, view.topic) {
                            self.expected[p] = view.seq.wrapping_add(1);
                            self.advance(sh, p, view.next, false);
                            continue;
                        }
                        if self.copy && !self.copy_payload(sh, p, &view) {
                            // Rewritten while we copied it: not delivered.
                            // `expected` stays at its sequence, so the next
                            // record found reports it in `Lagged(n)`.
                            let pos = ring::resync(&ring, &sh.ring_ctl(slot));
                            self.advance(sh, p, pos, true);
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

    /// Marks producer `p`'s ring as broken (skipped from now on).
    #[cold]
    fn corrupt(&mut self, p: usize, what: &'static str) -> RecvError {
        self.broken |= 1 << p;
        tracing::error!(producer = p, what, "corrupt ring; skipping it");
        RecvError::Corrupt { what }
    }

    /// Copies the payload of `view` into `scratch`. Under Overwrite the
    /// copy is made with atomic word loads and validated against the
    /// producer's overwrite mark; returns whether it is the record's.
    fn copy_payload(&mut self, sh: &Shared, p: usize, view: &RecordView) -> bool {
        let lines = view.len.div_ceil(ring::ALIGN) as usize;
        if self.scratch.len() < lines {
            self.scratch.resize(lines, Line([0; 4]));
        }
        let ring = sh.ring(p);
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
            ring::intact(&sh.producer(p).head, view.pos, ring.capacity())
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
    fn delivered(&mut self, sh: &Shared, found: Found) {
        let Found { producer, view } = found;
        // Wrapping: `seq` is a word of the segment (unchecked on this path).
        self.expected[producer] = view.seq.wrapping_add(1);
        self.received += 1;
        // Relaxed: statistics only.
        sh.subscriber(self.slot)
            .received
            .store(self.received, Ordering::Relaxed);
        self.advance(sh, producer, view.next, false);
    }

    /// Records "last active" now and then while polling finds nothing
    /// (a clock read costs more than an empty poll).
    #[inline]
    fn touch_if_idle(&mut self, sh: &Shared, r: &Result<Found, RecvError>) {
        if matches!(r, Err(RecvError::Empty)) {
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls % 4096 == 1 {
                // Relaxed: diagnostics only.
                sh.subscriber(self.slot)
                    .last_active_ns
                    .store(clock::wall_ns(), Ordering::Relaxed);
            }
        }
    }

    fn wait(&mut self, sh: &Shared, deadline: Option<Instant>) -> Result<Found, RecvError> {
        self.nap = FIRST_NAP;
        match self.poll(sh) {
            Err(RecvError::Empty) => {}
            other => return other,
        }
        let spin_until = Instant::now() + self.spin;
        let backoff = Backoff::new();
        loop {
            match self.poll(sh) {
                Err(RecvError::Empty) => {}
                other => return other,
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                self.touch_if_idle(sh, &Err(RecvError::Empty));
                return Err(RecvError::Timeout);
            }
            if now < spin_until {
                backoff.snooze();
                continue;
            }
            let header = sh.header();
            let slot = sh.subscriber(self.slot);
            // Relaxed: diagnostics only.
            slot.last_active_ns
                .store(clock::wall_ns(), Ordering::Relaxed);
            // Acquire: pairs with the Release `fetch_add` of a waking
            // publisher (`Publisher::commit`); if we read its bump, its
            // record is visible to the re-poll below.
            let seen = header.data_futex.load(Ordering::Acquire);
            // Relaxed: ordered before the SeqCst `fetch_add` below, which
            // a reaper's AcqRel swap of this flag synchronises with.
            slot.sleeping.store(1, Ordering::Relaxed);
            // SeqCst: a full barrier between counting ourselves asleep and
            // the re-poll below. Publishers check the count without a fence
            // (a fence would stall every publish), so one publishing at this
            // very instant may miss us: the nap below starts at 1 ms and
            // doubles while idle, bounding that delay.
            header.data_sleepers.fetch_add(1, Ordering::SeqCst);
            let again = self.poll(sh);
            if !matches!(again, Err(RecvError::Empty)) {
                self.stop_sleeping(sh);
                return again;
            }
            let mut nap = naps_left_shift(&mut self.nap);
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            futex::wait(&header.data_futex, seen, nap);
            self.stop_sleeping(sh);
        }
    }

    fn stop_sleeping(&self, sh: &Shared) {
        // AcqRel: a reaper that un-counts a dead sleeper swaps the same
        // flag (`Shared::reap`), so exactly one of us decrements.
        if sh.subscriber(self.slot).sleeping.swap(0, Ordering::AcqRel) == 1 {
            // SeqCst: as the increment in `wait`.
            sh.header().data_sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Wakes producer `p` if it sleeps waiting for space.
fn wake_producer(sh: &Shared, p: usize) {
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

impl<M: Delivery> Subscriber<M> {
    /// This subscriber's id (its slot).
    pub fn id(&self) -> u32 {
        self.st.slot as u32
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// Whether samples hold a validated copy of their payload (`true`) or
    /// borrow it in the ring (`false`); see [`delivery`](crate::delivery).
    pub fn copies(&self) -> bool {
        self.st.copy
    }

    /// How long `recv` / `recv_timeout` spin before sleeping on a futex
    /// (default 50 µs). Spinning catches events that arrive soon at the
    /// cost of a busy core; waking a sleeping process costs ~20 µs on the
    /// VMs this was measured on.
    pub fn set_spin(&mut self, spin: Duration) {
        self.st.spin = spin;
    }

    /// Adds a pattern (any topic of the language: exact, wildcards,
    /// ranges, regexes, `**`). Returns `false` if it was already there.
    ///
    /// # Errors
    /// [`BusError::InvalidTopic`].
    pub fn subscribe(&mut self, pattern: &str) -> Result<bool, BusError> {
        let topic = Topic::parse(pattern)?;
        let st = &mut self.st;
        if st.patterns.contains(&topic) {
            return Ok(false);
        }
        st.index.insert(&topic, st.next_pattern);
        st.next_pattern += 1;
        st.patterns.push(topic);
        st.cache.clear();
        Ok(true)
    }

    /// Removes a pattern. Returns whether it was there.
    ///
    /// # Errors
    /// [`BusError::InvalidTopic`].
    pub fn unsubscribe(&mut self, pattern: &str) -> Result<bool, BusError> {
        let topic = Topic::parse(pattern)?;
        let st = &mut self.st;
        let Some(pos) = st.patterns.iter().position(|t| *t == topic) else {
            return Ok(false);
        };
        st.patterns.remove(pos);
        st.index = SubscriptionIndex::new();
        for (i, t) in st.patterns.iter().enumerate() {
            st.index.insert(t, i as u32);
        }
        st.next_pattern = st.patterns.len() as u32;
        st.cache.clear();
        Ok(true)
    }

    /// The patterns subscribed to.
    pub fn patterns(&self) -> &[Topic] {
        &self.st.patterns
    }

    #[inline]
    fn sample(&mut self, found: Found) -> Sample<'_, M> {
        let ptr = if self.st.copy {
            self.st.scratch.as_ptr().cast::<u8>()
        } else {
            let ring = self.bus.shared.ring(found.producer);
            // SAFETY: Block policy (`copy` is false only then: see
            // `Delivery::copies`); `peek` saw the record committed and
            // inside the ring; our cursor stays at it until the sample,
            // which borrows `self`, is dropped.
            unsafe { ring::payload_in_place(&ring, &found.view) }.as_ptr()
        };
        Sample {
            ptr,
            found,
            sub: self,
        }
    }

    /// Receives the next matching event if one is ready.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Lagged`], [`RecvError::Corrupt`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<Sample<'_, M>, RecvError> {
        let sh = &*self.bus.shared;
        let found = self.st.poll(sh);
        self.st.touch_if_idle(sh, &found);
        let found = found?;
        Ok(self.sample(found))
    }

    /// Waits for the next matching event: spins for the configured time,
    /// then sleeps on a futex in the segment until a publisher wakes it.
    ///
    /// # Errors
    /// [`RecvError::Lagged`], [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<Sample<'_, M>, RecvError> {
        let found = self.st.wait(&self.bus.shared, None)?;
        Ok(self.sample(found))
    }

    /// Like [`recv`](Self::recv), giving up after `timeout`.
    ///
    /// # Errors
    /// [`RecvError::Timeout`], [`RecvError::Lagged`], [`RecvError::Corrupt`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Sample<'_, M>, RecvError> {
        let found = self
            .st
            .wait(&self.bus.shared, Some(Instant::now() + timeout))?;
        Ok(self.sample(found))
    }

    /// Samples received so far.
    pub fn received(&self) -> u64 {
        self.st.received
    }

    /// Records missed through lag so far (Overwrite policy).
    pub fn lagged(&self) -> u64 {
        self.st.lagged
    }
}

impl<M: Delivery> Drop for Subscriber<M> {
    fn drop(&mut self) {
        let sh = &*self.bus.shared;
        self.st.stop_sleeping(sh);
        // Release: pairs with the AcqRel CAS of the next claimer; producers
        // stop counting our cursors.
        sh.subscriber(self.st.slot)
            .state
            .store(SLOT_FREE, Ordering::Release);
        // Producers blocked on us may go on.
        for p in 0..sh.config.max_producers as usize {
            wake_producer(sh, p);
        }
    }
}

/// A received event. Its payload stays unchanged while the sample lives:
/// borrowed in the producer's ring under Block policy (zero copy; the ring
/// space is released when the sample is dropped), or a copy validated
/// against the producer's overwrite mark under Overwrite (see
/// [`delivery`](crate::delivery)). Which one is in the type `M`.
pub struct Sample<'a, M: Delivery = AnyPolicy> {
    sub: &'a mut Subscriber<M>,
    found: Found,
    /// The payload: in the ring (borrowed delivery) or the subscriber's
    /// copy buffer (copied delivery).
    ptr: *const u8,
}

impl<M: Delivery> Sample<'_, M> {
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

    /// The raw stamp of the record: [`clock::ticks`] when it was
    /// committed. Cheaper to keep than [`timestamp_ns`](Self::timestamp_ns);
    /// convert it later with [`Bus::stamp_to_wall_ns`].
    #[inline]
    pub fn stamp(&self) -> u64 {
        self.found.view.timestamp
    }

    /// Whether the payload is a private copy (`true`) or borrowed in the
    /// ring (`false`).
    pub fn is_copy(&self) -> bool {
        self.sub.st.copy
    }

    /// The payload: in the ring, or the validated copy.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` readable bytes that nobody writes
        // while this sample lives. Copied delivery: the subscriber's copy
        // buffer, holding at least `len` bytes (`copy_payload`), changed
        // or reallocated only by `poll`, which needs the `&mut Subscriber`
        // this sample holds. Borrowed delivery (Block policy only): a
        // committed record inside the ring (`peek`), which the producer
        // cannot reuse before our cursor passes it, and the cursor moves
        // only when this sample drops.
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

    /// Views the payload as a `T` in place (no further copy). Payloads are
    /// aligned to 32 bytes, in the ring and in a copy.
    ///
    /// # Errors
    /// [`PayloadError::Size`] or [`PayloadError::Align`].
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, PayloadError> {
        crate::payload::view_pod(self.payload())
    }

    /// Decodes a value published with
    /// [`Publisher::publish_serde`](crate::Publisher::publish_serde). The
    /// value may borrow from the payload (`&str`, `&[u8]` fields), which
    /// stays unchanged while the sample lives.
    ///
    /// # Errors
    /// [`PayloadError::Decode`].
    pub fn decode<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, PayloadError> {
        crate::payload::decode(self.payload())
    }
}

impl<M: Delivery> std::fmt::Debug for Sample<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("topic", &self.topic())
            .field("producer", &self.producer())
            .field("sequence", &self.sequence())
            .field("len", &self.len())
            .field("copy", &self.is_copy())
            .finish()
    }
}

impl<M: Delivery> Drop for Sample<'_, M> {
    #[inline]
    fn drop(&mut self) {
        let sub = &mut *self.sub;
        sub.st.delivered(&sub.bus.shared, self.found);
    }
}
