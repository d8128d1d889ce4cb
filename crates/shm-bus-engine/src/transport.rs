//! Where an engine's events travel: an in-process queue, or a bus (the
//! engine's own publisher and a subscriber to `**`, or a worker-group
//! member).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use shm_bus_core::{Bus, PublishError, Publisher, RecvError, Subscriber};

use crate::dispatch::{Router, lock};
use crate::engine::Inner;
use crate::error::GetError;
use crate::message::{AlignedBytes, Message, OwnedMessage};
use crate::queue::LocalQueue;
use crate::run::DISPATCH_SLICE;
use crate::wait::{Spin, Wait};

/// The bus side of an engine.
pub(crate) struct BusTransport {
    pub(crate) bus: Bus,
    pub(crate) publisher: Mutex<Publisher>,
    /// `None` for a publisher-only engine.
    pub(crate) subscriber: Option<Mutex<Subscriber>>,
    /// The worker group the subscriber is a member of, if it is one.
    pub(crate) group: Option<String>,
    /// The group was removed: nothing more will arrive. SeqCst, like the
    /// engine's `active` flag it goes with (set once, read per receive
    /// error and per `run`/`start`).
    pub(crate) group_removed: AtomicBool,
}

/// Where an engine's events go and come from.
pub(crate) enum Transport {
    Local(LocalQueue),
    Bus(Box<BusTransport>),
}

impl BusTransport {
    pub(crate) fn put(
        &self,
        topic: &str,
        payload: &[u8],
        wait: Wait,
        may_block: bool,
    ) -> Result<u64, PublishError> {
        let mut publisher = lock(&self.publisher);
        let mut spin = Spin::new(wait);
        loop {
            match publisher.try_publish(topic, payload) {
                Err(PublishError::Full) => {}
                other => return other,
            }
            if !wait.block || !may_block {
                return Err(PublishError::Full);
            }
            if !spin.again() {
                break;
            }
        }
        match wait.timeout {
            None => publisher.publish(topic, payload),
            Some(t) => publisher.publish_timeout(topic, payload, t),
        }
    }

    pub(crate) fn get(&self, wait: Wait) -> Result<OwnedMessage, GetError> {
        let Some(sub) = &self.subscriber else {
            return Err(GetError::SendOnly);
        };
        let mut sub = lock(sub);
        let deadline = wait.timeout.map(|t| Instant::now() + t);
        let mut spin = Spin::new(wait);
        let mut first = true;
        loop {
            let received = if std::mem::take(&mut first) || !wait.block || spin.again() {
                sub.try_recv()
            } else {
                match deadline {
                    None => sub.recv(),
                    Some(d) => sub.recv_timeout(d.saturating_duration_since(Instant::now())),
                }
            };
            match received {
                Ok(sample) => {
                    // Under Overwrite the sample is already a validated
                    // copy (a rewritten record is reported as lag instead).
                    // A group member's event is finished when the sample
                    // drops, at the end of this arm: once copied out.
                    return Ok(OwnedMessage {
                        topic: sample.topic().into(),
                        topic_id: sample.topic_id(),
                        payload: AlignedBytes::copy_from(sample.payload()),
                        producer: Some(sample.producer()),
                        sequence: sample.sequence(),
                        timestamp_ns: sample.timestamp_ns(),
                        redelivered: sample.redelivered(),
                    });
                }
                Err(RecvError::Empty) if wait.block => {}
                Err(RecvError::Empty | RecvError::Timeout) => return Err(GetError::Empty),
                Err(RecvError::Lagged(n)) => return Err(GetError::Lagged(n)),
                Err(RecvError::Corrupt { what }) => return Err(GetError::Corrupt { what }),
                Err(RecvError::BusRemoved) => return Err(GetError::BusRemoved),
                Err(RecvError::GroupRemoved) => {
                    self.group_removed.store(true, Ordering::SeqCst);
                    return Err(GetError::GroupRemoved {
                        group: self.group.clone().unwrap_or_default(),
                    });
                }
                Err(other) => return Err(GetError::Recv(other)),
            }
        }
    }

    /// The error `run` / `start` / `dispatch_pending` answer once the
    /// group was removed.
    pub(crate) fn removed_error(&self) -> Option<crate::EngineError> {
        self.group_removed
            .load(Ordering::SeqCst)
            .then(|| crate::EngineError::GroupRemoved {
                group: self.group.clone().unwrap_or_default(),
            })
    }

    pub(crate) fn dispatch_one(&self, inner: &Inner, router: &mut Router, wait: Wait) -> bool {
        let Some(sub) = &self.subscriber else {
            return false;
        };
        let mut sub = lock(sub);
        let received = if !wait.block {
            sub.try_recv()
        } else {
            sub.recv_timeout(wait.timeout.unwrap_or(DISPATCH_SLICE))
        };
        match received {
            Ok(sample) => {
                // The payload is borrowed in the ring (Block) or a copy the
                // subscriber validated (Overwrite): handlers never see a
                // torn payload.
                let message = Message {
                    topic: sample.topic(),
                    topic_id: sample.topic_id(),
                    captures: &[],
                    payload: sample.payload(),
                    producer: Some(sample.producer()),
                    sequence: sample.sequence(),
                    timestamp: sample.stamp(),
                    clock: Some(&self.bus),
                    redelivered: sample.redelivered(),
                };
                inner.fire(router, message);
                // Only now, every handler having returned (a panicking one
                // is caught inside `fire`), is the sample dropped: for a
                // worker-group member that is what finishes the event, so
                // an engine that dies while a handler runs leaves it to be
                // redelivered (at-least-once). Dropping it before `fire`
                // would make that guarantee at-most-once.
                drop(sample);
                true
            }
            Err(RecvError::Lagged(n)) => {
                inner.lagged(n);
                true
            }
            Err(RecvError::Corrupt { what }) => {
                tracing::error!(what, "event engine: corrupt ring skipped");
                true
            }
            Err(RecvError::BusRemoved) => {
                // Nothing more will ever arrive: stop dispatching (as
                // `deactivate` does) instead of spinning on the error.
                tracing::error!(
                    bus = self.bus.name(),
                    "event engine: the bus was removed; deactivating"
                );
                inner.active.store(false, Ordering::SeqCst);
                false
            }
            Err(RecvError::GroupRemoved) => {
                // Removed with `force`: every receive answers this from now
                // on. Stop as for a removed bus; `run` / `start` /
                // `dispatch_pending` report it.
                tracing::error!(
                    bus = self.bus.name(),
                    group = self.group.as_deref().unwrap_or(""),
                    "event engine: the worker group was removed; deactivating"
                );
                self.group_removed.store(true, Ordering::SeqCst);
                inner.active.store(false, Ordering::SeqCst);
                false
            }
            Err(RecvError::Empty | RecvError::Timeout) => false,
            Err(other) => {
                tracing::warn!(error = %other, "event engine: receive failed");
                false
            }
        }
    }
}
