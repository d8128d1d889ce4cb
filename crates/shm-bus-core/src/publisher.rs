//! [`Publisher`]: one producer slot and its ring.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use shm_bus_alloc::ProcessId;
use shm_bus_topic::{Topic, TopicId};

use crate::bus::Bus;
use crate::clock;
use crate::config::Policy;
use crate::error::{BusError, PublishError};
use crate::futex;
use crate::layout::{SLOT_ACTIVE, SLOT_FREE, slot_word, store_name};
use crate::loan::Loan;
use crate::receive::spin_round;
use crate::ring::{self, Line, Reservation, ReserveError, RingMem, Writer};
use crate::shared::{ProducerRef, Shared, SlotRole};
use crate::wake::Waker;

/// Something a publisher can address: a topic literal, a parsed [`Topic`],
/// or a [`TopicId`] obtained from [`Publisher::topic_id`].
pub trait AsTopic {
    /// Resolves to an interned id.
    ///
    /// # Errors
    /// Invalid or non-exact topics, an unknown id, a full table.
    fn topic_id(&self, publisher: &mut Publisher) -> Result<TopicId, BusError>;
}

impl AsTopic for str {
    fn topic_id(&self, publisher: &mut Publisher) -> Result<TopicId, BusError> {
        publisher.topic_id(self)
    }
}

impl AsTopic for String {
    fn topic_id(&self, publisher: &mut Publisher) -> Result<TopicId, BusError> {
        publisher.topic_id(self)
    }
}

impl AsTopic for Topic {
    fn topic_id(&self, publisher: &mut Publisher) -> Result<TopicId, BusError> {
        publisher.topic_id(self.as_str())
    }
}

impl AsTopic for TopicId {
    #[inline]
    fn topic_id(&self, publisher: &mut Publisher) -> Result<TopicId, BusError> {
        // An id checked once stays valid (topic records are never removed).
        if let Some(true) = publisher.known_ids.get(self.index()) {
            return Ok(*self);
        }
        publisher.learn_id(*self)
    }
}

impl<T: AsTopic + ?Sized> AsTopic for &T {
    fn topic_id(&self, publisher: &mut Publisher) -> Result<TopicId, BusError> {
        (**self).topic_id(publisher)
    }
}

/// Publishes events into its own ring (one per publisher, so publishers
/// never contend). Per publisher, events are delivered in order, and under
/// [`Policy::Block`] without gaps.
///
/// Dropping it frees its slot; what it published stays readable.
pub struct Publisher {
    bus: Bus,
    slot: usize,
    writer: Writer,
    policy: Policy,
    ids: FxHashMap<Box<str>, TopicId>,
    known_ids: Vec<bool>,
    spin: Duration,
    /// This publisher's ring and slot, resolved once at attach (the
    /// per-message paths check no index). Valid while `bus` lives: both
    /// are fields of this handle, and `pr` is never handed out.
    pr: ProducerRef,
    /// Overwrite policy: where a [`Loan`] is filled before its commit
    /// copies it into the ring with atomic word stores (a lapped reader
    /// may be reading those bytes, so no `&mut` into them is handed out).
    staging: Vec<Line>,
    /// When this publisher last woke sleeping subscribers.
    waker: Waker,
    /// The limit a blocked publish last saw before sleeping, and since
    /// when it has not moved (kept across calls, so that short timeouts
    /// still reap; see `reserve`).
    stall: Option<(u64, Instant)>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("bus", &self.bus.name())
            .field("id", &self.slot)
            .finish_non_exhaustive()
    }
}

/// How long a blocked publisher sleeps at most before re-checking for dead
/// subscribers.
const SPACE_SLEEP: Duration = Duration::from_millis(1);

impl Bus {
    /// Attaches a publisher, claiming a free producer slot (or one whose
    /// owner died). `name` (up to 32 bytes) shows in `inspect`.
    ///
    /// # Errors
    /// [`BusError::TooManyProducers`] when every slot has a live owner.
    pub fn publisher(&self, name: &str) -> Result<Publisher, BusError> {
        let sh: &Shared = &self.shared;
        let me = ProcessId::current();
        let word = slot_word(me.token(), SLOT_ACTIVE);
        match sh.claim_slot(SlotRole::Producer, word) {
            Some(p) => self.attach_publisher(p, me, name),
            None => Err(BusError::TooManyProducers {
                max: sh.config.max_producers,
            }),
        }
    }

    fn attach_publisher(&self, p: usize, me: ProcessId, name: &str) -> Result<Publisher, BusError> {
        let sh: &Shared = &self.shared;
        let slot = sh.producer(p);
        slot.owner_pid.store(me.pid as u64, Ordering::Relaxed);
        slot.owner_start.store(me.start_time, Ordering::Relaxed);
        store_name(&slot.name, name);
        slot.generation.fetch_add(1, Ordering::Relaxed);
        slot.claimed_at_ns
            .store(clock::wall_ns(), Ordering::Relaxed);
        slot.space_waiters.store(0, Ordering::Relaxed);
        let overwrite = sh.config.policy == Policy::Overwrite;
        // SAFETY: stored in the publisher next to the `Bus` (an `Arc` of
        // the same `Shared`) and never handed out, so the mapping outlives
        // every use.
        let pr = unsafe { sh.producer_ref(p) };
        let writer = match Writer::attach(&pr, &pr.ctl(), overwrite) {
            Ok(writer) => writer.with_max_payload(sh.config.max_payload() as u64),
            Err(what) => {
                // Release: pairs with the AcqRel CAS of the next claimer.
                slot.state.store(SLOT_FREE, Ordering::Release);
                return Err(BusError::Corrupt { what });
            }
        };
        // Release: pairs with the Acquire load in `Subscriber::poll`; the
        // ring's tail is published before readers look at this ring.
        sh.header()
            .producer_mask
            .fetch_or(1 << p, Ordering::Release);
        Ok(Publisher {
            bus: self.clone(),
            slot: p,
            writer,
            policy: sh.config.policy,
            ids: FxHashMap::default(),
            known_ids: Vec::new(),
            spin: Duration::from_micros(50),
            // Relaxed: our own slot's counter, ordered by the claim's CAS.
            staging: Vec::new(),
            waker: Waker::default(),
            stall: None,
            pr,
        })
    }
}

impl Publisher {
    /// This publisher's producer id (its slot), carried by every sample.
    pub fn id(&self) -> u32 {
        self.slot as u32
    }

    /// The bus.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The bus's back-pressure policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// How long a blocking publish spins before sleeping (default 50 µs).
    /// Longer spins cut latency when the ring frees up soon, at the cost
    /// of CPU.
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Bytes of this publisher's ring not yet released by the slowest live
    /// subscriber, as the subscribers last published their cursors (they
    /// do so every 1/64 of the ring, when caught up, and when a publisher
    /// waits): what a blocking publish is measured against.
    pub fn backlog(&self) -> u64 {
        let sh = &*self.bus.shared;
        let tail = self.writer.tail();
        let free_from = sh
            .limit(self.slot, tail)
            .saturating_sub(sh.config.ring_bytes);
        tail.saturating_sub(free_from)
    }

    /// Largest payload this bus accepts.
    pub fn max_payload(&self) -> usize {
        self.bus.config().max_payload()
    }

    /// Interns `topic` (once per bus; cached here) and returns its id.
    /// Publishing by id skips the lookup.
    ///
    /// # Errors
    /// [`BusError::InvalidTopic`], [`BusError::NotExact`],
    /// [`BusError::TopicTooLong`], [`BusError::TopicTableFull`].
    pub fn topic_id(&mut self, topic: &str) -> Result<TopicId, BusError> {
        if let Some(id) = self.ids.get(topic) {
            return Ok(*id);
        }
        let parsed = Topic::parse(topic)?;
        if !parsed.is_exact() {
            return Err(BusError::NotExact {
                topic: parsed.to_string(),
            });
        }
        let id = self.bus.shared.topics()?.intern_literal(parsed.as_str())?;
        self.ids.insert(topic.into(), id);
        Ok(id)
    }

    /// Checks an id not seen before against the topic table.
    #[cold]
    fn learn_id(&mut self, id: TopicId) -> Result<TopicId, BusError> {
        if self.bus.shared.topic_literal(id).is_none() {
            return Err(BusError::UnknownTopic(id.0));
        }
        if id.index() >= self.known_ids.len() {
            self.known_ids.resize(id.index() + 1, false);
        }
        self.known_ids[id.index()] = true;
        Ok(id)
    }

    #[inline]
    fn reserve(&mut self, len: usize, wait: Wait) -> Result<Reservation, PublishError> {
        let sh = &*self.bus.shared;
        let ring = self.pr;
        let slot = ring.slot();
        let ctl = ring.ctl();
        let p = self.slot;
        // Off the hot path: every 4096 publishes (and below, while waiting).
        if self.writer.next_seq() & 0xFFF == 0 && sh.is_removed() {
            return Err(PublishError::BusRemoved);
        }
        let first = self
            .writer
            .reserve(&ring, &ctl, len as u64, |tail| sh.limit(p, tail));
        match first {
            Ok(res) => return Ok(res),
            Err(ReserveError::TooLarge) => {
                return Err(PublishError::PayloadTooLarge {
                    len,
                    max: sh.config.max_payload(),
                });
            }
            Err(ReserveError::Full) => {}
        }
        // A full ring is off the hot path: say so if nobody can read it.
        if sh.is_removed() {
            return Err(PublishError::BusRemoved);
        }
        slot.full_waits.fetch_add(1, Ordering::Relaxed);
        let deadline = match wait {
            Wait::No => return Err(PublishError::Full),
            Wait::Until(d) => Some(d),
            Wait::Forever => None,
        };
        let spin_until = Instant::now() + self.spin;
        let mut round = 0u32;
        loop {
            let reserved = spin_round(&mut round, || {
                self.writer
                    .reserve(&ring, &ctl, len as u64, |tail| sh.limit(p, tail))
                    .ok()
            });
            if let Some(res) = reserved {
                return Ok(res);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(PublishError::Full);
            }
            if now < spin_until {
                continue;
            }
            if sh.is_removed() {
                return Err(PublishError::BusRemoved);
            }
            // A dead subscriber must never stall us, but telling the dead
            // from the living costs a /proc read per slot: reap only once
            // the limit has stood still for a nap's length (`SPACE_SLEEP`),
            // counted across calls so that publishes with shorter timeouts
            // reap too. A dead reader holding us back keeps the limit
            // still, so it is reaped about a nap after it stopped us;
            // readers that keep up cost no syscall beyond the futex.
            let limit = sh.limit(p, self.writer.tail());
            match self.stall {
                Some((seen, since)) if seen == limit => {
                    if now.saturating_duration_since(since) >= SPACE_SLEEP {
                        sh.reap();
                        sh.reap_groups();
                        self.stall = Some((limit, now));
                    }
                }
                _ => self.stall = Some((limit, now)),
            }
            // Then sleep until a subscriber frees space (or a short
            // timeout, to re-check).
            // Acquire: pairs with the Release `fetch_add` of a subscriber
            // that published its cursor (`wake_producer`); if we read its
            // bump, its cursor is visible to the re-check below.
            let seen = slot.space_futex.load(Ordering::Acquire);
            // SeqCst: a full barrier before re-checking the cursors below.
            // Subscribers check `space_waiters` without a fence, so a wake
            // can be missed; the sleep below is short (SPACE_SLEEP).
            slot.space_waiters.store(1, Ordering::SeqCst);
            let res = self
                .writer
                .reserve(&ring, &ctl, len as u64, |tail| sh.limit(p, tail));
            if let Ok(res) = res {
                slot.space_waiters.store(0, Ordering::Relaxed);
                return Ok(res);
            }
            let mut nap = SPACE_SLEEP;
            if let Some(d) = deadline {
                nap = nap.min(d.saturating_duration_since(Instant::now()));
            }
            futex::wait(&slot.space_futex, seen, nap);
            slot.space_waiters.store(0, Ordering::Relaxed);
        }
    }

    #[inline]
    fn loan_with(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        len: usize,
        wait: Wait,
    ) -> Result<Loan<'_>, PublishError> {
        let topic = topic.topic_id(self)?;
        let res = self.reserve_loan(len, wait)?;
        Ok(Loan::new(self, res, topic))
    }

    /// Reserves the bytes of a loan (the ring's, or the staging buffer's
    /// under Overwrite).
    #[inline]
    pub(crate) fn reserve_loan(
        &mut self,
        len: usize,
        wait: Wait,
    ) -> Result<Reservation, PublishError> {
        let res = self.reserve(len, wait)?;
        if self.policy == Policy::Overwrite {
            self.stage(len);
        }
        Ok(res)
    }

    /// The bytes of `res`, this publisher's current reservation (see
    /// [`Loan::as_mut_slice`]).
    #[inline]
    pub(crate) fn loan_bytes(&mut self, res: &Reservation) -> &mut [u8] {
        let len = res.len as usize;
        if self.policy == Policy::Overwrite {
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut self.staging);
            return &mut bytes[..len];
        }
        let raw = ring::payload_raw(&self.pr, res);
        // SAFETY: Block policy, and `res` is this publisher's current, not
        // yet committed reservation, held by one loan (a `Loan` borrows the
        // publisher, an `OwnedLoan` holds it: no other reservation can be
        // made meanwhile): the bytes are inside the mapping and ours alone
        // until the commit (see `ring::payload_raw`). The mapping lives as
        // long as this publisher's bus handle; the slice borrows `self`,
        // so it is gone before `commit_loan` publishes the record.
        unsafe { &mut *raw }
    }

    /// Commits a loan's reservation (copying the staged payload under
    /// Overwrite) and wakes sleeping subscribers.
    #[inline]
    pub(crate) fn commit_loan(&mut self, res: Reservation, topic: TopicId) -> u64 {
        if self.policy == Policy::Overwrite {
            self.copy_staged(&res);
        }
        let seq = self.commit(res, topic);
        self.wake_subscribers();
        seq
    }

    /// Overwrite policy: copies the staged payload into the ring with
    /// atomic word stores.
    #[inline(never)]
    fn copy_staged(&self, res: &Reservation) {
        let ring = self.pr;
        let bytes: &[u8] = bytemuck::cast_slice(&self.staging);
        let slot = res.payload_slot(ring.capacity() - 1);
        ring::copy_in(&ring, slot, &bytes[..res.len as usize]);
    }

    /// Overwrite policy: makes the staging buffer hold `len` bytes.
    #[inline(never)]
    fn stage(&mut self, len: usize) {
        let lines = len.div_ceil(ring::ALIGN as usize);
        if self.staging.len() < lines {
            self.staging.resize(lines, Line([0; 4]));
        }
    }

    /// Loans `len` bytes inside the ring for a record on `topic`; fill
    /// them through [`Loan::as_mut_slice`] and [`Loan::commit`]. Dropping
    /// the loan without committing publishes nothing. Blocks while the
    /// ring is full (Block policy).
    ///
    /// # Errors
    /// [`PublishError::PayloadTooLarge`], [`PublishError::Topic`].
    #[inline]
    pub fn loan(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        len: usize,
    ) -> Result<Loan<'_>, PublishError> {
        self.loan_with(topic, len, Wait::Forever)
    }

    /// Like [`loan`](Self::loan) but answers [`PublishError::Full`] at once
    /// when the ring is full.
    ///
    /// # Errors
    /// As [`loan`](Self::loan), plus [`PublishError::Full`].
    #[inline]
    pub fn try_loan(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        len: usize,
    ) -> Result<Loan<'_>, PublishError> {
        self.loan_with(topic, len, Wait::No)
    }

    /// Publishes `payload` (copied once, into the ring). Blocks while the
    /// ring is full (Block policy). Returns the record's sequence number.
    ///
    /// # Errors
    /// [`PublishError::PayloadTooLarge`], [`PublishError::Topic`],
    /// [`PublishError::BusRemoved`].
    #[inline]
    pub fn publish(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payload: &[u8],
    ) -> Result<u64, PublishError> {
        self.publish_with(topic, payload, Wait::Forever)
    }

    /// Publishes, or answers [`PublishError::Full`] at once.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), plus [`PublishError::Full`].
    #[inline]
    pub fn try_publish(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payload: &[u8],
    ) -> Result<u64, PublishError> {
        self.publish_with(topic, payload, Wait::No)
    }

    /// Publishes, waiting at most `timeout` for space.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), plus [`PublishError::Full`] when the
    /// timeout runs out.
    pub fn publish_timeout(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payload: &[u8],
        timeout: Duration,
    ) -> Result<u64, PublishError> {
        self.publish_with(topic, payload, Wait::Until(Instant::now() + timeout))
    }

    #[inline]
    fn publish_with(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payload: &[u8],
        wait: Wait,
    ) -> Result<u64, PublishError> {
        let topic = topic.topic_id(self)?;
        let seq = self.write_one(topic, payload, wait)?;
        self.wake_subscribers();
        Ok(seq)
    }

    /// Writes and commits one record (subscribers not woken).
    #[inline]
    fn write_one(
        &mut self,
        topic: TopicId,
        payload: &[u8],
        wait: Wait,
    ) -> Result<u64, PublishError> {
        if self.policy == Policy::Overwrite {
            return self.publish_copied(topic, payload, wait);
        }
        let res = self.reserve(payload.len(), wait)?;
        let ring = self.pr;
        let raw = ring::payload_raw(&ring, &res);
        // SAFETY: Block policy (checked above), and `res` is this
        // publisher's current, uncommitted reservation: the bytes are inside
        // the mapping and ours alone until the commit below (see
        // `ring::payload_raw`); the slice is gone before it.
        unsafe { &mut *raw }.copy_from_slice(payload);
        Ok(self.commit(res, topic))
    }

    /// Overwrite policy: straight into the ring with atomic word stores
    /// (no staging). Kept out of line so the Block path inlines as before.
    #[inline(never)]
    fn publish_copied(
        &mut self,
        topic: TopicId,
        payload: &[u8],
        wait: Wait,
    ) -> Result<u64, PublishError> {
        let res = self.reserve(payload.len(), wait)?;
        let ring = self.pr;
        ring::copy_in(&ring, res.payload_slot(ring.capacity() - 1), payload);
        Ok(self.commit(res, topic))
    }

    /// Publishes each payload of `payloads` on `topic`, in order (each
    /// copied once, into the ring), as [`publish`](Self::publish) would one
    /// by one, but resolving the topic once and waking sleeping subscribers
    /// once at the end. Blocks while the ring is full (Block policy).
    /// Returns how many were published.
    ///
    /// # Errors
    /// As [`publish`](Self::publish). The payloads before the one that
    /// failed are published (and subscribers woken); that one and those
    /// after it are not.
    pub fn publish_many<'p>(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payloads: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<u64, PublishError> {
        self.publish_many_with(topic, payloads, Wait::Forever)
    }

    /// Like [`publish_many`](Self::publish_many), but never waits: publishes
    /// payloads in order while the ring has room and returns how many it
    /// published (fewer than given when the ring filled up; call again with
    /// the rest). Aeron's `offer` for a batch.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), except that a full ring is not an
    /// error. The payloads before the one that failed are published.
    pub fn try_publish_many<'p>(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payloads: impl IntoIterator<Item = &'p [u8]>,
    ) -> Result<u64, PublishError> {
        self.publish_many_with(topic, payloads, Wait::No)
    }

    fn publish_many_with<'p>(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        payloads: impl IntoIterator<Item = &'p [u8]>,
        wait: Wait,
    ) -> Result<u64, PublishError> {
        let topic = topic.topic_id(self)?;
        let mut n = 0;
        let mut result = Ok(());
        for payload in payloads {
            match self.write_one(topic, payload, wait) {
                Ok(_) => n += 1,
                Err(PublishError::Full) if matches!(wait, Wait::No) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if n > 0 {
            self.wake_subscribers();
        }
        result.map(|()| n)
    }

    /// Publishes a plain-old-data value, viewable in place by subscribers
    /// with [`Sample::as_pod`](crate::Sample::as_pod).
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub fn publish_pod<T: bytemuck::Pod>(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        value: &T,
    ) -> Result<u64, PublishError> {
        self.publish(topic, bytemuck::bytes_of(value))
    }

    /// Publishes a serde value encoded with postcard; subscribers decode it
    /// with [`Sample::decode`](crate::Sample::decode).
    ///
    /// # Errors
    /// As [`publish`](Self::publish), plus [`PublishError::Encode`].
    pub fn publish_serde<T: serde::Serialize>(
        &mut self,
        topic: &(impl AsTopic + ?Sized),
        value: &T,
    ) -> Result<u64, PublishError> {
        let bytes = postcard::to_stdvec(value)?;
        self.publish(topic, &bytes)
    }

    /// Commits `res` (subscribers not woken: see `wake_subscribers`).
    #[inline]
    fn commit(&mut self, res: Reservation, topic: TopicId) -> u64 {
        let ring = self.pr;
        let slot = ring.slot();
        let now = clock::ticks();
        let seq = self.writer.commit(&ring, &ring.ctl(), res, topic.0, now);
        if self.writer.is_flushed() {
            // With the progress (once per 1/64 of the ring): `Bus::info`
            // walks the stamps past it and takes the last one walked. The
            // count of records published is the sequence number itself.
            // Relaxed, and a plain store (one writer): statistics only.
            slot.last_publish.store(now, Ordering::Relaxed);
        }
        seq
    }

    /// Wakes subscribers sleeping on the bus's futex, if any registered
    /// since this publisher last woke them (see `wake`).
    #[inline]
    fn wake_subscribers(&mut self) {
        let header = self.bus.shared.header();
        if self
            .waker
            .due(&header.data_sleepers, &header.data_registrations)
        {
            // Release: pairs with the Acquire load of the futex word in
            // `Subscriber::wait`, and keeps `Waker::due`'s read of the
            // registrations before this bump (see `wake`).
            header.data_futex.fetch_add(1, Ordering::Release);
            futex::wake_all(&header.data_futex);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let ring = self.pr;
        // Leave the controls where this publisher ended (no walk needed).
        self.writer.flush(&ring.ctl());
        // Release: pairs with the AcqRel CAS of the next claimer.
        ring.slot().state.store(SLOT_FREE, Ordering::Release);
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Wait {
    No,
    Until(Instant),
    Forever,
}
