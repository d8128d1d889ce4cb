//! [`Wait`]: how `put` waits for room and `get` for an event, and the one
//! spin-then-sleep routine every waiting path of the engine uses.

use std::time::Duration;

/// How `put` waits for room and `get` for an event (PyEventEngine's
/// `block`, `max_spin` and `timeout`).
///
/// - `block: false`: answer at once (`Full` / `Empty`).
/// - `block: true`: try `max_spin` more times, spinning, then sleep until
///   it can proceed or `timeout` (`None`: for ever) runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Whether to wait at all.
    pub block: bool,
    /// Retries (spinning) before sleeping.
    pub max_spin: u32,
    /// Longest wait; `None` waits for ever.
    pub timeout: Option<Duration>,
}

impl Wait {
    /// The default number of spinning retries.
    pub const DEFAULT_MAX_SPIN: u32 = 1000;

    /// Block for ever (after spinning). The default.
    pub const fn blocking() -> Wait {
        Wait {
            block: true,
            max_spin: Wait::DEFAULT_MAX_SPIN,
            timeout: None,
        }
    }

    /// Answer at once.
    pub const fn non_blocking() -> Wait {
        Wait {
            block: false,
            max_spin: 0,
            timeout: None,
        }
    }

    /// Block at most `timeout` (after spinning).
    pub const fn timeout(timeout: Duration) -> Wait {
        Wait {
            block: true,
            max_spin: Wait::DEFAULT_MAX_SPIN,
            timeout: Some(timeout),
        }
    }

    /// The same, with `max_spin` retries before sleeping.
    pub const fn with_max_spin(self, max_spin: u32) -> Wait {
        Wait { max_spin, ..self }
    }
}

impl Default for Wait {
    fn default() -> Wait {
        Wait::blocking()
    }
}

/// The spinning half of a [`Wait`]: each waiting path (a bus `put` or
/// `get`, the in-process queue's `push` and `pop`) retries while this says
/// so, then sleeps its own way (a futex in the bus, a condvar in-process).
#[derive(Debug)]
pub(crate) struct Spin {
    left: u32,
}

impl Spin {
    /// `wait.max_spin` retries.
    pub(crate) fn new(wait: Wait) -> Spin {
        Spin {
            left: wait.max_spin,
        }
    }

    /// Whether to retry once more (after a spin hint), or go to sleep.
    #[inline]
    pub(crate) fn again(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        std::hint::spin_loop();
        true
    }
}
