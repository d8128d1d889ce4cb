//! The dispatch loop: who may dispatch ([`Claim`]), and receiving and
//! firing one event at a time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::dispatch::{Router, lock};
use crate::engine::{DISPATCHING_FOR, Inner};
use crate::error::EngineError;
use crate::message::Message;
use crate::queue::PopError;
use crate::timer::TimerTick;
use crate::transport::Transport;
use crate::wait::Wait;

/// How long the dispatch loop waits for an event before re-checking
/// whether it was deactivated.
pub(crate) const DISPATCH_SLICE: Duration = Duration::from_millis(50);

/// The right to dispatch, held by whoever runs the dispatch loop.
pub(crate) struct Claim(Arc<Inner>);

impl Claim {
    pub(crate) fn take(inner: &Arc<Inner>) -> Result<Claim, EngineError> {
        inner
            .dispatching
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .map_err(|_| EngineError::AlreadyRunning)?;
        Ok(Claim(inner.clone()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.dispatching.store(false, Ordering::SeqCst);
    }
}

impl Inner {
    pub(crate) fn dispatching_here(&self) -> bool {
        DISPATCHING_FOR.with(|d| d.get() == self as *const Inner as usize)
    }

    pub(crate) fn run_loop(&self) {
        while self.active.load(Ordering::SeqCst) {
            self.dispatch_one(Wait::timeout(DISPATCH_SLICE).with_max_spin(0));
        }
    }

    /// Receives one event (waiting as `wait` says) and dispatches it.
    /// Returns whether an event was received.
    pub(crate) fn dispatch_one(&self, wait: Wait) -> bool {
        let previous = DISPATCHING_FOR.with(|d| d.replace(self as *const Inner as usize));
        let mut router = lock(&self.router);
        let got = match &self.transport {
            Transport::Local(q) => match q.pop(wait, || self.active.load(Ordering::SeqCst)) {
                Ok(m) => {
                    self.fire(&mut router, m.as_message());
                    true
                }
                Err(PopError::Empty | PopError::Woken) => false,
            },
            Transport::Bus(b) => b.dispatch_one(self, &mut router, wait),
        };
        DISPATCHING_FOR.with(|d| d.set(previous));
        got
    }

    #[inline]
    pub(crate) fn fire(&self, router: &mut Router, message: Message<'_>) {
        let outcome = router.dispatch(&self.registry, &self.generation, message);
        let c = &self.counters;
        // Relaxed: statistics only.
        c.dispatched.fetch_add(1, Ordering::Relaxed);
        if outcome.calls == 0 {
            c.unhandled.fetch_add(1, Ordering::Relaxed);
        } else {
            c.handler_calls
                .fetch_add(u64::from(outcome.calls), Ordering::Relaxed);
            if outcome.failures != 0 {
                c.handler_failures
                    .fetch_add(u64::from(outcome.failures), Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn lagged(&self, n: u64) {
        // Relaxed: statistics only.
        self.counters.lagged.fetch_add(n, Ordering::Relaxed);
        tracing::warn!(missed = n, "event engine lagged behind the bus");
    }

    /// Puts an event from a timer thread (never waits long: a tick that
    /// finds no room within `wait` is dropped and logged).
    pub(crate) fn put_tick(&self, topic: &str, tick: &TimerTick, wait: Wait) {
        let bytes = bytemuck::bytes_of(tick);
        let r = match &self.transport {
            Transport::Local(q) => q.push(topic, bytes, wait, true),
            Transport::Bus(b) => b.put(topic, bytes, wait, true),
        };
        if let Err(e) = r {
            tracing::warn!(topic, error = %e, "timer tick dropped");
        }
    }
}
