//! The engine's errors and counters.

use shm_bus_core::{BusError, RecvError};
use shm_bus_topic::TopicError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A topic or pattern does not parse.
    #[error(transparent)]
    InvalidTopic(#[from] TopicError),
    /// `register_hook`: the topic already has a hook (nothing changed).
    #[error("a hook is already registered on `{topic}`")]
    HookExists {
        /// The topic.
        topic: String,
    },
    /// `unregister_hook`: no hook on that topic.
    #[error("no hook is registered on `{topic}`")]
    NoHook {
        /// The topic.
        topic: String,
    },
    /// `start`, `run` or `dispatch_pending` while the engine is already
    /// dispatching (in a thread or a `run`).
    #[error("the engine is already dispatching")]
    AlreadyRunning,
    /// `run` on an engine that is not active (call `activate`, or use
    /// `start`).
    #[error("the engine is not active: call activate() before run(), or use start()")]
    NotActive,
    /// `start`, `run` or `dispatch_pending` on an engine made with
    /// [`EventEngine::publisher_only`](crate::EventEngine::publisher_only).
    #[error("this engine only sends (EventEngine::publisher_only): it has nothing to dispatch")]
    SendOnly,
    /// Attaching to the bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The dispatch or timer thread could not be spawned.
    #[error("could not spawn a thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The worker group of an engine made with
    /// [`EventEngine::with_group`](crate::EventEngine::with_group) was
    /// removed (`Bus::remove_group` with `force`): it receives nothing
    /// more, and was deactivated. `run`, `start` and `dispatch_pending`
    /// answer this from then on.
    #[error("the engine's worker group `{group}` was removed")]
    GroupRemoved {
        /// The group.
        group: String,
    },
}

/// Why `get` returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GetError {
    /// Nothing arrived within the wait.
    #[error("no event available")]
    Empty,
    /// Overwrite policy: `n` events were overwritten before they were
    /// read; the next `get` continues with the oldest retained event.
    #[error("lagged: {0} events were overwritten before they were read")]
    Lagged(u64),
    /// A producer's ring is damaged; it is skipped from now on.
    #[error("corrupt ring: {what}")]
    Corrupt {
        /// What was wrong.
        what: &'static str,
    },
    /// The engine is dispatching (its dispatch loop owns the queue).
    #[error("the engine is dispatching: get() is for engines that are not running")]
    Dispatching,
    /// The engine only sends ([`EventEngine::publisher_only`](crate::EventEngine::publisher_only)).
    #[error("this engine only sends (EventEngine::publisher_only): it receives nothing")]
    SendOnly,
    /// The engine's bus was removed and every event on it has been taken.
    #[error("the engine's bus was removed")]
    BusRemoved,
    /// The engine's worker group was removed (`Bus::remove_group` with
    /// `force`; see [`EventEngine::with_group`](crate::EventEngine::with_group)):
    /// it receives nothing more.
    #[error("the engine's worker group `{group}` was removed")]
    GroupRemoved {
        /// The group.
        group: String,
    },
    /// A receive error of the bus that this engine has no variant of its
    /// own for (the bus's [`RecvError`] is non-exhaustive): passed on
    /// as it is rather than taken for [`Empty`](Self::Empty).
    #[error(transparent)]
    Recv(RecvError),
}

/// Engine-wide counters ([`EventEngine::stats`](crate::EventEngine::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Events dispatched (whether or not a hook matched).
    pub dispatched: u64,
    /// Of which no handler matched.
    pub unhandled: u64,
    /// Handler calls.
    pub handler_calls: u64,
    /// Handler calls that panicked.
    pub handler_failures: u64,
    /// Events missed through lag (Overwrite policy).
    pub lagged: u64,
}
