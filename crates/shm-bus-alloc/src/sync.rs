//! Atomics shim: `std` atomics normally, `loom` atomics under `--cfg loom`,
//! so the lock-free algorithms (the robust lock and its undo log, the arena,
//! the `ByteMap` slot protocol) can be model-checked on heap memory.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

/// One step of a spin-wait loop whose progress depends on another thread or
/// process. Under loom this yields to the model scheduler (loom requires it
/// in every spin loop); otherwise it backs off and, once spinning no longer
/// pays, sleeps briefly so a waiting process does not burn its vCPU.
pub(crate) struct SpinWait {
    #[cfg(not(loom))]
    backoff: crossbeam_utils::Backoff,
}

impl SpinWait {
    pub(crate) fn new() -> Self {
        SpinWait {
            #[cfg(not(loom))]
            backoff: crossbeam_utils::Backoff::new(),
        }
    }

    /// True once the cheap spinning phase is over; callers use it to decide
    /// when an (expensive) liveness check of the blocking party is worth it.
    pub(crate) fn is_slow(&self) -> bool {
        #[cfg(loom)]
        {
            true
        }
        #[cfg(not(loom))]
        {
            self.backoff.is_completed()
        }
    }

    pub(crate) fn wait(&self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        {
            if self.backoff.is_completed() {
                std::thread::sleep(std::time::Duration::from_micros(50));
            } else {
                self.backoff.snooze();
            }
        }
    }
}
