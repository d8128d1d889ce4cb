//! [`Subscriber`] and [`Sample`]: receiving events, zero-copy under Block
//! policy, as validated copies under Overwrite (see [`crate::delivery`]).

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shm_bus_alloc::ProcessId;
use shm_bus_topic::{SubscriptionIndex, Topic};

use crate::bus::Bus;
use crate::delivery::{AnyPolicy, Delivery};
use crate::error::{BusError, RecvError};
use crate::layout::{SLOT_CLAIMING, SLOT_FREE, slot_word};
use crate::receive::{Found, State, wake_producer};
use crate::ring;
use crate::sample::Sample;
use crate::shared::{Shared, SlotRole};

/// Where a new subscriber starts reading ([`Bus::subscriber_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Start {
    /// With what producers commit after it attached (the default).
    #[default]
    Now,
    /// With the oldest record each ring still retains: under Block, up to
    /// the bus's [`history_bytes`](crate::BusConfig::history_bytes) back
    /// (none by default); under Overwrite, whatever the ring still holds
    /// (up to three quarters of it).
    Oldest,
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
/// already in the rings are not delivered, unless it was attached with
/// [`Start::Oldest`] ([`Bus::subscriber_from`]).
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
    pub(crate) bus: Bus,
    pub(crate) st: State,
    _delivery: PhantomData<M>,
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
        self.subscriber_as_from::<M>(name, Start::Now)
    }

    /// Like [`subscriber`](Self::subscriber), starting at `start`: with
    /// [`Start::Oldest`] the subscriber also receives what the rings still
    /// retain from before it attached (iceoryx2's history; under Block
    /// only what `BusConfig::history_bytes` keeps).
    ///
    /// # Errors
    /// [`BusError::TooManySubscribers`].
    pub fn subscriber_from(&self, name: &str, start: Start) -> Result<Subscriber, BusError> {
        self.subscriber_as_from::<AnyPolicy>(name, start)
    }

    /// [`subscriber_as`](Self::subscriber_as) with a [`Start`].
    ///
    /// # Errors
    /// As [`subscriber_as`](Self::subscriber_as).
    pub fn subscriber_as_from<M: Delivery>(
        &self,
        name: &str,
        start: Start,
    ) -> Result<Subscriber<M>, BusError> {
        let sh: &Shared = &self.shared;
        let copy = M::copies(sh.config.policy)?;
        let me = ProcessId::current();
        match sh.claim_slot(SlotRole::Subscriber, slot_word(me.token(), SLOT_CLAIMING)) {
            Some(s) => {
                let mut st = State::join(sh, s, me, name, copy);
                if start == Start::Oldest {
                    st.rewind_to_oldest(sh);
                }
                Ok(Subscriber {
                    bus: self.clone(),
                    st,
                    _delivery: PhantomData,
                })
            }
            None => Err(BusError::TooManySubscribers {
                max: sh.config.max_subscribers,
            }),
        }
    }
}

impl<M: Delivery> Subscriber<M> {
    pub(crate) fn from_state(bus: Bus, st: State) -> Self {
        Subscriber {
            bus,
            st,
            _delivery: PhantomData,
        }
    }

    /// This subscriber's id (its slot; for a worker-group member, its
    /// member slot in the group).
    pub fn id(&self) -> u32 {
        self.st.slot as u32
    }

    /// The worker group this receiver is a member of
    /// ([`Bus::group_member`]), if any.
    pub fn group(&self) -> Option<&str> {
        self.st.group.as_ref().map(|seat| seat.name.as_str())
    }

    /// Worker-group members: samples handed out flagged
    /// [`redelivered`](Sample::redelivered) so far. 0 for a subscriber.
    pub fn redelivered(&self) -> u64 {
        self.st.group.as_ref().map_or(0, |seat| seat.redelivered)
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
    /// [`BusError::InvalidTopic`]; [`BusError::GroupPatternMismatch`] for a
    /// worker-group member (a group's patterns are fixed at creation).
    pub fn subscribe(&mut self, pattern: &str) -> Result<bool, BusError> {
        self.not_in_group()?;
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
    /// As [`subscribe`](Self::subscribe).
    pub fn unsubscribe(&mut self, pattern: &str) -> Result<bool, BusError> {
        self.not_in_group()?;
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

    fn not_in_group(&self) -> Result<(), BusError> {
        match &self.st.group {
            Some(seat) => Err(BusError::GroupPatternMismatch {
                group: seat.name.clone(),
                has: self.st.patterns.iter().map(Topic::to_string).collect(),
            }),
            None => Ok(()),
        }
    }

    /// The patterns subscribed to (a group member: the group's).
    pub fn patterns(&self) -> &[Topic] {
        &self.st.patterns
    }

    #[inline]
    fn sample(&mut self, found: Found) -> Sample<'_, M> {
        let ptr = if self.st.copy {
            self.st.scratch.as_ptr().cast::<u8>()
        } else {
            let ring = self.st.lanes[found.producer as usize & 63].ring;
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
    /// When the previous receive found a small record right behind its
    /// producer (within 1/64 of the ring of its published tail), this call
    /// first executes one pause hint (`std::hint::spin_loop`, about 12 ns
    /// on the machines this was measured on): polling at once would take
    /// the cache line the producer is writing the next record into, and
    /// slow both sides down. A subscriber further behind never pauses.
    ///
    /// # Errors
    /// [`RecvError::Empty`], [`RecvError::Lagged`], [`RecvError::Corrupt`].
    #[inline]
    pub fn try_recv(&mut self) -> Result<Sample<'_, M>, RecvError> {
        let sh = &*self.bus.shared;
        let mut found = self.st.poll(sh);
        self.st.touch_if_idle(sh, &mut found);
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
        let found = self.st.wait(&self.bus.shared, Some(timeout))?;
        Ok(self.sample(found))
    }

    /// Receives up to `limit` events that are ready now, handing each to
    /// `f` in turn (the sample is released when `f` returns), and returns
    /// how many: 0 when none is ready. Aeron's `poll(handler, limit)`:
    /// one call drains a burst, following one producer's ring from record
    /// to record without scanning the others between them.
    ///
    /// An error met after some samples were delivered is returned by the
    /// next receive instead (so none is lost).
    ///
    /// # Errors
    /// As [`try_recv`](Self::try_recv), except that nothing ready is
    /// `Ok(0)`, not [`RecvError::Empty`].
    pub fn try_recv_many(
        &mut self,
        limit: usize,
        f: impl FnMut(&Sample<'_, M>),
    ) -> Result<usize, RecvError> {
        self.recv_many_with(limit, false, f)
    }

    /// Like [`try_recv_many`](Self::try_recv_many), but waits (as
    /// [`recv`](Self::recv)) until at least one event is ready. Returns
    /// how many were handed to `f` (at least 1 unless `limit` is 0).
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_many(
        &mut self,
        limit: usize,
        f: impl FnMut(&Sample<'_, M>),
    ) -> Result<usize, RecvError> {
        self.recv_many_with(limit, true, f)
    }

    /// The first event (waited for with `wait`), then what follows it.
    fn recv_many_with(
        &mut self,
        limit: usize,
        wait: bool,
        f: impl FnMut(&Sample<'_, M>),
    ) -> Result<usize, RecvError> {
        if limit == 0 {
            return Ok(0);
        }
        let first = if wait {
            self.st.wait(&self.bus.shared, None)
        } else {
            let mut first = self.st.poll(&self.bus.shared);
            self.st.touch_if_idle(&self.bus.shared, &mut first);
            first
        };
        match first {
            Ok(found) => Ok(self.deliver_many(found, limit, f)),
            Err(RecvError::Empty) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Hands `found` and what follows it (up to `limit` in all) to `f`.
    fn deliver_many(
        &mut self,
        mut found: Found,
        limit: usize,
        mut f: impl FnMut(&Sample<'_, M>),
    ) -> usize {
        let mut n = 0;
        loop {
            let p = found.producer as usize;
            f(&self.sample(found)); // released here (its `Drop`)
            n += 1;
            if n == limit {
                return n;
            }
            found = match self.st.next_in_lane(&self.bus.shared, p) {
                Some(next) => next,
                None => match self.st.poll(&self.bus.shared) {
                    Ok(next) => next,
                    Err(RecvError::Empty) => return n,
                    Err(e) => {
                        self.st.pending = Some(e);
                        return n;
                    }
                },
            };
        }
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
        if self.st.group.is_some() {
            self.st.group_leave(sh);
            for p in 0..sh.config.max_producers as usize {
                wake_producer(sh, p);
            }
            return;
        }
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
