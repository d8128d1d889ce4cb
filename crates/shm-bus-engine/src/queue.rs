//! The in-process engine's bounded queue (no segment at all).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use shm_bus_topic::{InternError, LocalTopicTable, Topic, TopicTable};

use shm_bus_core::{BusError, PublishError, clock};

use crate::dispatch::lock;
use crate::message::{AlignedBytes, OwnedMessage};
use crate::wait::{Spin, Wait};

/// A bounded multi-producer queue of owned messages, with a topic table
/// of its own for topic ids.
pub(crate) struct LocalQueue {
    capacity: usize,
    queue: Mutex<State>,
    not_empty: Condvar,
    not_full: Condvar,
    topics: LocalTopicTable,
    ids: Mutex<rustc_hash::FxHashMap<Box<str>, shm_bus_topic::TopicId>>,
    next_seq: AtomicU64,
    max_payload: usize,
}

/// The queue and who sleeps on it (a condvar notify is a syscall even
/// with no sleeper, so it is made only when someone sleeps).
#[derive(Default)]
struct State {
    items: VecDeque<OwnedMessage>,
    poppers: u32,
    pushers: u32,
}

/// Why a pop found nothing.
pub(crate) enum PopError {
    Empty,
    /// Woken by `wake_all` (the engine is deactivating).
    Woken,
}

impl LocalQueue {
    pub(crate) fn new(capacity: usize, max_topics: usize, max_payload: usize) -> LocalQueue {
        LocalQueue {
            capacity: capacity.max(1),
            queue: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.clamp(1, 1 << 16)),
                ..State::default()
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            topics: LocalTopicTable::with_capacity(max_topics),
            ids: Mutex::default(),
            next_seq: AtomicU64::new(0),
            max_payload,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.queue).items.len()
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The topic id of the exact topic `literal`, interned on first use.
    fn topic_id(&self, literal: &str) -> Result<(Box<str>, shm_bus_topic::TopicId), BusError> {
        if let Some((k, id)) = lock(&self.ids).get_key_value(literal) {
            return Ok((k.clone(), *id));
        }
        let topic = Topic::parse(literal)?;
        let id = self.topics.intern(&topic).map_err(|e| match e {
            InternError::NotExact { topic } => BusError::NotExact { topic },
            InternError::Full { capacity } => BusError::TopicTableFull {
                capacity: capacity as u32,
            },
            // InternError is non-exhaustive; no other variant exists today.
            other => BusError::InvalidConfig(other.to_string()),
        })?;
        let key: Box<str> = topic.as_str().into();
        lock(&self.ids).insert(key.clone(), id);
        Ok((key, id))
    }

    /// Appends a message, waiting for room as `wait` says. `may_block`
    /// false (a put from the dispatching thread itself) turns a wait into
    /// an immediate `Full`: only that thread could make room.
    pub(crate) fn push(
        &self,
        topic: &str,
        payload: &[u8],
        wait: Wait,
        may_block: bool,
    ) -> Result<u64, PublishError> {
        if payload.len() > self.max_payload {
            return Err(PublishError::PayloadTooLarge {
                len: payload.len(),
                max: self.max_payload,
            });
        }
        let (topic, topic_id) = self.topic_id(topic)?;
        let payload = AlignedBytes::copy_from(payload);
        let deadline = wait.timeout.map(|t| Instant::now() + t);
        let mut spin = Spin::new(wait);
        let mut queue = lock(&self.queue);
        while queue.items.len() >= self.capacity {
            if !wait.block || !may_block {
                return Err(PublishError::Full);
            }
            queue = self
                .wait_round(
                    queue,
                    &self.not_full,
                    |s| &mut s.pushers,
                    &mut spin,
                    deadline,
                )
                .ok_or(PublishError::Full)?;
        }
        // Relaxed: a counter; the queue's mutex orders the messages.
        let sequence = self.next_seq.fetch_add(1, Ordering::Relaxed);
        queue.items.push_back(OwnedMessage {
            topic,
            topic_id,
            payload,
            producer: None,
            sequence,
            timestamp_ns: clock::wall_ns(),
            redelivered: false,
        });
        let wake = queue.poppers > 0;
        drop(queue);
        if wake {
            self.not_empty.notify_one();
        }
        Ok(sequence)
    }

    /// Takes the oldest message, waiting as `wait` says. `keep_waiting`
    /// is asked after every wake-up (the dispatch loop stops on
    /// deactivation).
    pub(crate) fn pop(
        &self,
        wait: Wait,
        keep_waiting: impl Fn() -> bool,
    ) -> Result<OwnedMessage, PopError> {
        let deadline = wait.timeout.map(|t| Instant::now() + t);
        let mut spin = Spin::new(wait);
        let mut queue = lock(&self.queue);
        loop {
            if let Some(m) = queue.items.pop_front() {
                let wake = queue.pushers > 0;
                drop(queue);
                if wake {
                    self.not_full.notify_one();
                }
                return Ok(m);
            }
            if !wait.block {
                return Err(PopError::Empty);
            }
            if !keep_waiting() {
                return Err(PopError::Woken);
            }
            queue = self
                .wait_round(
                    queue,
                    &self.not_empty,
                    |s| &mut s.poppers,
                    &mut spin,
                    deadline,
                )
                .ok_or(PopError::Empty)?;
        }
    }

    /// One round of waiting (for room, or for a message): while `spin`
    /// allows another retry, release the lock and spin once; then
    /// sleep on `cv` until notified or `deadline`, counted in `sleepers`
    /// so that the other side notifies (only counted sleepers are).
    /// Returns the lock again, or `None` once `deadline` has passed.
    fn wait_round<'a>(
        &'a self,
        mut queue: MutexGuard<'a, State>,
        cv: &Condvar,
        sleepers: fn(&mut State) -> &mut u32,
        spin: &mut Spin,
        deadline: Option<Instant>,
    ) -> Option<MutexGuard<'a, State>> {
        if spin.again() {
            // Let the thread that would make progress take the lock.
            drop(queue);
            std::thread::yield_now();
            return Some(lock(&self.queue));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return None;
        }
        *sleepers(&mut queue) += 1;
        queue = match left {
            None => cv.wait(queue).unwrap_or_else(|e| e.into_inner()),
            Some(left) => {
                cv.wait_timeout(queue, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        *sleepers(&mut queue) -= 1;
        Some(queue)
    }

    /// Wakes every waiter (so a deactivated dispatch loop notices).
    pub(crate) fn wake_all(&self) {
        let _guard = lock(&self.queue);
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}
