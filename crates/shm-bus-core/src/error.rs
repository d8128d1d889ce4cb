//! Errors of the bus, one type per kind of operation.

use shm_bus_topic::TopicError;

use crate::config::BusConfig;

/// Opening, creating or inspecting a bus, attaching a publisher or
/// subscriber, interning a topic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The segment could not be created, opened or validated (not found,
    /// permission denied, version mismatch, corrupt header, still being
    /// created, …). Nothing was changed.
    #[error(transparent)]
    Segment(#[from] shm_bus_alloc::Error),
    /// The segment is a valid shm-bus-alloc segment but not a bus.
    #[error("the segment is not a bus (foreign configuration)")]
    NotABus,
    /// A bus structure fails validation. The operation had no effect.
    #[error("bus is corrupt: {what}")]
    Corrupt {
        /// Which structure.
        what: &'static str,
    },
    /// The configuration asked for is out of bounds.
    #[error("invalid bus configuration: {0}")]
    InvalidConfig(String),
    /// `open_or_create` found an existing bus that does not satisfy the
    /// requested configuration (capacities are minimums; the policy must
    /// be equal). The existing bus is untouched.
    #[error(
        "the bus exists with a configuration that does not satisfy the request: {}; \
         open it as it is, or remove it first",
        found.shortfalls(requested).join("; ")
    )]
    ConfigMismatch {
        /// The bus's configuration.
        found: BusConfig,
        /// What was asked for.
        requested: BusConfig,
    },
    /// A topic could not be parsed.
    #[error("invalid topic: {0}")]
    InvalidTopic(#[from] TopicError),
    /// Only exact topics can be published; this one has wildcards, ranges,
    /// regexes or `**`.
    #[error("`{topic}` is a pattern: only exact topics can be published")]
    NotExact {
        /// The topic.
        topic: String,
    },
    /// The topic's literal is longer than [`MAX_TOPIC_LEN`](crate::MAX_TOPIC_LEN).
    #[error("topic is {len} bytes long; at most {max} are allowed")]
    TopicTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The topic table (or its byte pool) is full. Topics already interned
    /// keep working; create the bus with a larger `max_topics`.
    #[error("topic table full ({capacity} topics): create the bus with a larger max-topics")]
    TopicTableFull {
        /// The table's capacity.
        capacity: u32,
    },
    /// An id that was never handed out.
    #[error("unknown topic id {0}")]
    UnknownTopic(u32),
    /// Every producer slot is held by a live process.
    #[error("all {max} producer slots are in use by live processes")]
    TooManyProducers {
        /// `max_producers` of the bus.
        max: u32,
    },
    /// Every subscriber slot is held by a live process.
    #[error("all {max} subscriber slots are in use by live processes")]
    TooManySubscribers {
        /// `max_subscribers` of the bus.
        max: u32,
    },
    /// A [`Borrowed`](crate::delivery::Borrowed) (zero-copy) subscriber was
    /// asked of a bus whose policy lets producers rewrite records being
    /// read. Nothing was attached; attach with the default delivery, or
    /// [`Copied`](crate::delivery::Copied).
    #[error(
        "zero-copy (borrowed) delivery needs the block policy; this bus is {policy:?}: \
         subscribe with copied delivery"
    )]
    BorrowNeedsBlock {
        /// The bus's policy.
        policy: crate::Policy,
    },
    /// [`Bus::prefault`](crate::Bus::prefault): the kernel refused to map
    /// the rings' pages (out of memory, or a limit on locked/shared memory).
    #[error("could not prefault the rings: {0}")]
    Prefault(std::io::Error),

    /// A group name is 1 to 32 bytes of letters, digits, `_`, `-`, `.`, `:`.
    #[error("invalid group name `{group}`: use 1 to 32 letters, digits, `_`, `-`, `.` or `:`")]
    InvalidGroupName {
        /// The name given.
        group: String,
    },

    /// Every group slot of the bus is in use.
    #[error("{}", too_many_groups(*max))]
    TooManyGroups {
        /// The bus's `max_groups`.
        max: u32,
    },

    /// Every member slot of the group is held by a live member or by
    /// unfinished work of a dead one.
    #[error("worker group `{group}` is full: every member slot is held")]
    GroupFull {
        /// The group.
        group: String,
    },

    /// A member joined with patterns other than the group's (or tried to
    /// change a member's patterns); or joined a group that does not exist
    /// without the patterns to create it (`has` is empty then).
    #[error("{}", pattern_mismatch(group, has))]
    GroupPatternMismatch {
        /// The group.
        group: String,
        /// The group's patterns.
        has: Vec<String>,
    },

    /// A member asked for a mode other than the group's.
    #[error("worker group `{group}` is {has}")]
    GroupModeMismatch {
        /// The group.
        group: String,
        /// The group's mode.
        has: crate::GroupMode,
    },

    /// The patterns of a new group do not fit its slot.
    #[error("group patterns take {len} bytes; at most {max} fit")]
    GroupPatternsTooLong {
        /// Bytes needed (patterns joined by newlines).
        len: usize,
        /// Bytes available.
        max: usize,
    },

    /// The group was removed while joining.
    #[error("worker group `{group}` was removed")]
    GroupRemoved {
        /// The group.
        group: String,
    },
}

/// Why a publish did not happen. The ring is unchanged in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// `try_publish`: the slowest subscriber has not freed the space yet
    /// (Block policy). `publish_timeout`: still so when the timeout ran out.
    #[error("ring full: the slowest subscriber has not caught up")]
    Full,
    /// The payload is larger than the ring allows.
    #[error("payload of {len} bytes exceeds the maximum of {max} for this bus's ring size")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The bus's maximum ([`BusConfig::max_payload`]).
        max: usize,
    },
    /// The bus was removed (`Bus::remove`, `shm-bus remove`): nobody can
    /// attach to it any more, so publishing into it reaches no one new.
    /// Checked when the ring is full and every 4096 publishes, not on
    /// every publish. The record was not published.
    #[error("the bus was removed")]
    BusRemoved,
    /// The topic could not be interned (invalid, a pattern, too long,
    /// table full).
    #[error(transparent)]
    Topic(#[from] BusError),
    /// Encoding a serde value failed.
    #[error("encoding the payload failed: {0}")]
    Encode(#[from] postcard::Error),
}

/// Why no sample was received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// `try_recv`: nothing to receive right now.
    #[error("no event available")]
    Empty,
    /// `recv_timeout`: nothing arrived in time.
    #[error("timed out waiting for an event")]
    Timeout,
    /// Overwrite policy: this subscriber fell more than a ring behind one
    /// producer and missed `n` records of it. It stays subscribed; the next
    /// receive continues with the oldest record still retained.
    #[error("lagged: {0} events were overwritten before they were read")]
    Lagged(u64),
    /// A record header in the ring fails validation (a damaged segment).
    /// The subscriber skips that producer's ring from here on.
    #[error("corrupt ring: {what}")]
    Corrupt {
        /// What was wrong.
        what: &'static str,
    },
    /// The bus was removed (`Bus::remove`, `shm-bus remove`) and nothing
    /// is left to read: checked when a receive finds nothing (before
    /// sleeping, and now and then while polling), so records already
    /// committed are still delivered first.
    #[error("the bus was removed")]
    BusRemoved,
    /// This worker-group member's group was removed
    /// ([`Bus::remove_group`](crate::Bus::remove_group)).
    #[error("the worker group was removed")]
    GroupRemoved,
}

/// Why a sample could not be viewed as a typed value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload's length is not the type's size.
    #[error("payload is {len} bytes, the type needs {size}")]
    Size {
        /// Payload length.
        len: usize,
        /// `size_of::<T>()`.
        size: usize,
    },
    /// The type needs more alignment than a payload has (32 bytes).
    #[error("type needs alignment {align}; payloads are aligned to 32")]
    Align {
        /// `align_of::<T>()`.
        align: usize,
    },
    /// Decoding with postcard failed.
    #[error("decoding the payload failed: {0}")]
    Decode(#[from] postcard::Error),
}

fn too_many_groups(max: u32) -> String {
    if max == 0 {
        "this bus has no room for worker groups: it was created with max-groups 0".to_owned()
    } else {
        format!(
            "all {max} group slots are in use: remove a group, or create the bus with more max-groups"
        )
    }
}

fn pattern_mismatch(group: &str, has: &[String]) -> String {
    if has.is_empty() {
        format!(
            "worker group `{group}` does not exist: its first member creates it, and must give its patterns"
        )
    } else {
        format!(
            "worker group `{group}` subscribes to {has:?}: join with those patterns, or with none"
        )
    }
}
