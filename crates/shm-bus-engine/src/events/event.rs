//! [`Event`]: numba's event (a kind, START/END, data, failure), stamped
//! with the emitting process and its clocks; the bus's lifecycle kinds.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shm_bus_core::BusError;
use shm_bus_topic::Topic;

use super::EVENT_TOPIC_PREFIX;

/// Subscribers attaching (START) and detaching or dying (END).
pub const SUBSCRIBER_KIND: &str = "shm-bus:subscriber";
/// Producers attaching (START) and detaching or dying (END).
pub const PRODUCER_KIND: &str = "shm-bus:producer";
/// A subscriber missed events (an END; the count is in
/// [`Lifecycle::count`]).
pub const LAG_KIND: &str = "shm-bus:lag";
/// Worker-group members joining (START) and leaving or dying (END,
/// failed when the member's process died); the group is in
/// [`Lifecycle::group`].
pub const GROUP_MEMBER_KIND: &str = "shm-bus:group-member";
/// A worker group handed out again events whose member died before
/// finishing them (at-least-once; an END; the count is in
/// [`Lifecycle::count`]).
pub const REDELIVERY_KIND: &str = "shm-bus:redelivery";
/// A worker group dropped events whose member died before finishing them
/// (at-most-once; an END; the count is in [`Lifecycle::count`]).
pub const LOSS_KIND: &str = "shm-bus:loss";

/// Every kind the bus emits (the `shm-bus:` kinds listeners may use).
pub const LIFECYCLE_KINDS: [&str; 6] = [
    SUBSCRIBER_KIND,
    PRODUCER_KIND,
    LAG_KIND,
    GROUP_MEMBER_KIND,
    REDELIVERY_KIND,
    LOSS_KIND,
];
/// The prefix reserved for the bus's own kinds.
pub const RESERVED_PREFIX: &str = "shm-bus:";

/// START or END.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventStatus {
    /// A span begins.
    Start,
    /// A span ends (or a point event happened).
    End,
}

/// One event. See the [module docs](super).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(super) kind: Arc<str>,
    pub(super) status: EventStatus,
    pub(super) data: Vec<u8>,
    pub(super) failure: Option<String>,
    pub(super) pid: u32,
    pub(super) wall_ns: u64,
    pub(super) monotonic_ns: u64,
}

impl Event {
    /// An event of `kind`, stamped now in this process.
    ///
    /// # Errors
    /// [`EventError::InvalidKind`].
    pub fn new(
        kind: &str,
        status: EventStatus,
        data: impl Into<Vec<u8>>,
    ) -> Result<Event, EventError> {
        validate_kind(kind)?;
        Ok(Event::unchecked(kind, status, data.into()))
    }

    pub(crate) fn unchecked(kind: &str, status: EventStatus, data: Vec<u8>) -> Event {
        Event {
            kind: kind.into(),
            status,
            data,
            failure: None,
            pid: std::process::id(),
            wall_ns: shm_bus_core::clock::wall_ns(),
            monotonic_ns: shm_bus_core::clock::monotonic_ns(),
        }
    }

    /// The same event marked failed, with `failure` describing why.
    pub fn with_failure(mut self, failure: impl Into<String>) -> Event {
        self.failure = Some(failure.into());
        self
    }

    /// Its kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// START or END.
    pub fn status(&self) -> EventStatus {
        self.status
    }

    /// Whether it is a START.
    pub fn is_start(&self) -> bool {
        self.status == EventStatus::Start
    }

    /// Whether it is an END.
    pub fn is_end(&self) -> bool {
        self.status == EventStatus::End
    }

    /// Whether it carries a failure.
    pub fn is_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Its data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Its data as UTF-8 text, if it is.
    pub fn data_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }

    /// What failed (numba's `exc_details`): a panic's message, or the text
    /// given to [`Trigger::fail`](super::Trigger::fail) / [`end_event`](super::end_event).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The process that emitted it.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When it was emitted, ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.wall_ns
    }

    /// When it was emitted, ns of `CLOCK_MONOTONIC` (the same clock in
    /// every process of the host; what [`TimingListener`](super::TimingListener) uses).
    pub fn monotonic_ns(&self) -> u64 {
        self.monotonic_ns
    }

    /// For the bus's own kinds, what happened.
    pub fn lifecycle(&self) -> Option<Lifecycle> {
        if !self.kind.starts_with(RESERVED_PREFIX) {
            return None;
        }
        postcard::from_bytes(&self.data).ok()
    }
}

/// The role of a slot in a lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A subscriber slot.
    Subscriber,
    /// A producer (publisher) slot.
    Producer,
    /// A member slot of a worker group ([`GROUP_MEMBER_KIND`]).
    GroupMember,
    /// A worker group as a whole ([`REDELIVERY_KIND`], [`LOSS_KIND`]).
    Group,
}

/// The data of the bus's own events ([`LIFECYCLE_KINDS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// The bus.
    pub bus: String,
    /// Subscriber, producer, group member or group.
    pub role: Role,
    /// Its slot (the producer id samples carry, the subscriber id, the
    /// member slot in its group, or the group's slot).
    pub slot: u32,
    /// The owning process; 0 for a group as a whole.
    pub pid: u32,
    /// The name it attached with (a group member's name; a group's name
    /// for [`Role::Group`]).
    pub name: String,
    /// For [`LAG_KIND`], events missed since the last lag event; for
    /// [`REDELIVERY_KIND`] / [`LOSS_KIND`], events redelivered / lost since
    /// the last such event of the group; else 0.
    pub count: u64,
    /// The worker group, for [`Role::GroupMember`] and [`Role::Group`].
    pub group: Option<String>,
}

/// Why an event operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The kind is empty, cannot travel as a topic part, or uses the
    /// reserved `shm-bus:` prefix for something the bus does not emit.
    #[error("invalid event kind `{kind}`: {reason}")]
    InvalidKind {
        /// The kind.
        kind: String,
        /// Why.
        reason: String,
    },
    /// Connecting a bridge to the bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The bridge thread could not be spawned.
    #[error("could not spawn the bridge thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Checks that `kind` can be used: non-empty, and such that
/// `EventEngine.Internal.Event.<kind>` is an exact topic (no `.`-empty
/// parts, wildcards, ranges or regexes); `shm-bus:` kinds must be the
/// bus's own.
///
/// # Errors
/// [`EventError::InvalidKind`].
pub fn validate_kind(kind: &str) -> Result<(), EventError> {
    let invalid = |reason: String| EventError::InvalidKind {
        kind: kind.into(),
        reason,
    };
    if kind.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if kind.starts_with(RESERVED_PREFIX) && !LIFECYCLE_KINDS.contains(&kind) {
        return Err(invalid(format!(
            "the `{RESERVED_PREFIX}` prefix is reserved for the bus's own kinds: {}",
            LIFECYCLE_KINDS.join(", ")
        )));
    }
    match Topic::parse(&format!("{EVENT_TOPIC_PREFIX}{kind}")) {
        Ok(t) if t.is_exact() => Ok(()),
        Ok(_) => Err(invalid(
            "it contains a wildcard, range, regex or `**` part".into(),
        )),
        Err(e) => Err(invalid(e.to_string())),
    }
}
