//! Bus configuration: what a bus is created with, stored in the segment
//! header, and checked by every process that opens it.

use std::fmt;

use crate::error::BusError;
use crate::ring;

/// What a publisher does when the slowest subscriber has not yet read the
/// space it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Lossless back-pressure (the default): the producer never passes the
    /// slowest live subscriber. `try_publish` answers `Full`, a timed
    /// publish answers `Full` after its timeout, a blocking one waits.
    #[default]
    Block,
    /// Lossy, market-data style: the producer never waits; a subscriber
    /// that falls more than a ring behind gets `Lagged(n)` and resumes at
    /// the oldest retained record.
    Overwrite,
}

impl Policy {
    pub(crate) fn to_raw(self) -> u32 {
        match self {
            Policy::Block => 1,
            Policy::Overwrite => 2,
        }
    }

    pub(crate) fn from_raw(raw: u32) -> Option<Policy> {
        match raw {
            1 => Some(Policy::Block),
            2 => Some(Policy::Overwrite),
            _ => None,
        }
    }

    /// `"block"` or `"overwrite"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Block => "block",
            Policy::Overwrite => "overwrite",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Policy::Block),
            "overwrite" => Ok(Policy::Overwrite),
            other => Err(format!("unknown policy `{other}`: use block or overwrite")),
        }
    }
}

/// How a bus is laid out. Built with [`BusConfig::default`] and the
/// `with_*` methods.
///
/// When a process opens an existing bus with
/// [`Bus::open_or_create`](crate::Bus::open_or_create), the requested
/// configuration is a **minimum**, as iceoryx2 treats its settings: the
/// existing bus is accepted when each capacity is at least the requested
/// one and the policy is the same; otherwise the open fails with
/// [`BusError::ConfigMismatch`]. [`Bus::open`](crate::Bus::open) takes
/// whatever the bus has.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BusConfig {
    /// Bytes of each producer's ring: a power of two, at least 4 KiB.
    pub ring_bytes: u64,
    /// Producers that can be attached at once (1..=64).
    pub max_producers: u32,
    /// Subscribers that can be attached at once (1..=1024).
    pub max_subscribers: u32,
    /// Distinct topics the bus can intern (1..=1,048,576).
    pub max_topics: u32,
    /// Back-pressure policy.
    pub policy: Policy,
    /// Permission bits of the segment (default `0o600`).
    pub mode: u32,
    /// Block policy: bytes of each ring a producer keeps readable behind
    /// its slowest subscriber (and behind its tail when nobody reads), so
    /// that a subscriber attaching with [`Start::Oldest`](crate::Start)
    /// can start up to that far back (iceoryx2's "history"). `0` (the
    /// default) keeps none; otherwise a multiple of 32 up to a quarter of
    /// the ring. It costs ring space: the largest payload shrinks by as
    /// much. (Under Overwrite, history is whatever the ring still holds.)
    pub history_bytes: u64,
    /// Worker groups the bus can hold at once (0..=64; default 8).
    pub max_groups: u32,
    /// Members a worker group can have at once (1..=64; default 16).
    pub max_group_members: u32,
}

impl std::fmt::Debug for BusConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As derived, with the mode in octal (as `chmod` and `ls` show it).
        f.debug_struct("BusConfig")
            .field("ring_bytes", &self.ring_bytes)
            .field("max_producers", &self.max_producers)
            .field("max_subscribers", &self.max_subscribers)
            .field("max_topics", &self.max_topics)
            .field("policy", &self.policy)
            .field("mode", &format_args!("{:#o}", self.mode))
            .field("history_bytes", &self.history_bytes)
            .field("max_groups", &self.max_groups)
            .field("max_group_members", &self.max_group_members)
            .finish()
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            ring_bytes: 1 << 20,
            max_producers: 8,
            max_subscribers: 32,
            max_topics: 4096,
            policy: Policy::Block,
            mode: 0o600,
            history_bytes: 0,
            max_groups: 8,
            max_group_members: 16,
        }
    }
}

/// Upper bounds of the configuration.
pub const MAX_PRODUCERS: u32 = 64;
/// Upper bound of `max_subscribers`.
pub const MAX_SUBSCRIBERS: u32 = 1024;
/// Upper bound of `max_topics`.
pub const MAX_TOPICS: u32 = 1 << 20;
/// Upper bound of `max_groups`.
pub const MAX_GROUPS: u32 = 64;
/// Upper bound of `max_group_members`.
pub const MAX_GROUP_MEMBERS: u32 = 64;
/// Smallest ring.
pub const MIN_RING_BYTES: u64 = 4096;
/// Largest ring (1 GiB).
pub const MAX_RING_BYTES: u64 = 1 << 30;
/// Longest topic literal that can be interned, in bytes.
pub const MAX_TOPIC_LEN: usize = 1024;
/// Topic-pool bytes reserved per topic (literals longer than this average
/// use up the pool sooner; a full pool is `TopicTableFull`).
pub(crate) const TOPIC_POOL_PER_TOPIC: u64 = 96;

/// Bytes before the first group slot: the table's lock record and the
/// mask of active groups (see `group`).
pub(crate) const GROUP_TABLE_HEADER: u64 = 512;

const CONFIG_MAGIC: u64 = u64::from_le_bytes(*b"BUS-CFG1");

impl BusConfig {
    /// Sets the ring size per producer.
    pub fn with_ring_bytes(mut self, bytes: u64) -> Self {
        self.ring_bytes = bytes;
        self
    }
    /// Sets the number of producer slots.
    pub fn with_max_producers(mut self, n: u32) -> Self {
        self.max_producers = n;
        self
    }
    /// Sets the number of subscriber slots.
    pub fn with_max_subscribers(mut self, n: u32) -> Self {
        self.max_subscribers = n;
        self
    }
    /// Sets the topic table's capacity.
    pub fn with_max_topics(mut self, n: u32) -> Self {
        self.max_topics = n;
        self
    }
    /// Sets the back-pressure policy.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }
    /// Sets the bytes of history each producer keeps (Block policy; see
    /// the field).
    pub fn with_history_bytes(mut self, bytes: u64) -> Self {
        self.history_bytes = bytes;
        self
    }
    /// Sets how many worker groups the bus can hold.
    pub fn with_max_groups(mut self, n: u32) -> Self {
        self.max_groups = n;
        self
    }
    /// Sets how many members a worker group can have.
    pub fn with_max_group_members(mut self, n: u32) -> Self {
        self.max_group_members = n;
        self
    }
    /// Sets the segment's permission bits.
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// A ring size for payloads of up to `max_payload` bytes: the default
    /// (1 MiB) while that holds at least eight such records, else the
    /// smallest power of two that holds two of them (a record may take at
    /// most half the ring), capped at [`MAX_RING_BYTES`].
    ///
    /// Large payloads are copied fastest when the ring stays in the
    /// processor's caches: a ring of two records is rewritten while its
    /// lines are still cached (measured in `docs/BENCHMARKS.md`), where a
    /// ring of many records streams through memory. A larger ring lets the
    /// producer run further ahead of a slow subscriber; pick it with
    /// [`with_ring_bytes`](Self::with_ring_bytes) when bursts matter more.
    ///
    /// ```
    /// use shm_bus_core::BusConfig;
    /// assert_eq!(BusConfig::ring_bytes_for(64), 1 << 20);
    /// assert_eq!(BusConfig::ring_bytes_for(1 << 20), 4 << 20);
    /// let config = BusConfig::default().with_ring_bytes(BusConfig::ring_bytes_for(1 << 20));
    /// assert!(config.max_payload() >= 1 << 20);
    /// ```
    pub fn ring_bytes_for(max_payload: usize) -> u64 {
        let record = ring::record_size(max_payload as u64);
        let default = BusConfig::default().ring_bytes;
        if record.saturating_mul(8) <= default {
            return default;
        }
        record
            .saturating_mul(2)
            .checked_next_power_of_two()
            .unwrap_or(MAX_RING_BYTES)
            .clamp(MIN_RING_BYTES, MAX_RING_BYTES)
    }

    /// Largest payload a publisher can send: a record (32-byte header plus
    /// payload rounded up to 32 bytes) may take at most half the ring.
    pub fn max_payload(&self) -> usize {
        ring::max_payload(self.ring_bytes).saturating_sub(self.history_bytes) as usize
    }

    /// Checks every bound.
    ///
    /// # Errors
    /// [`BusError::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<(), BusError> {
        let bad = |what: String| Err(BusError::InvalidConfig(what));
        if !self.ring_bytes.is_power_of_two()
            || !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&self.ring_bytes)
        {
            return bad(format!(
                "ring_bytes {} must be a power of two between {MIN_RING_BYTES} and {MAX_RING_BYTES}",
                self.ring_bytes
            ));
        }
        if !(1..=MAX_PRODUCERS).contains(&self.max_producers) {
            return bad(format!(
                "max_producers {} must be 1..={MAX_PRODUCERS}",
                self.max_producers
            ));
        }
        if !(1..=MAX_SUBSCRIBERS).contains(&self.max_subscribers) {
            return bad(format!(
                "max_subscribers {} must be 1..={MAX_SUBSCRIBERS}",
                self.max_subscribers
            ));
        }
        if !(1..=MAX_TOPICS).contains(&self.max_topics) {
            return bad(format!(
                "max_topics {} must be 1..={MAX_TOPICS}",
                self.max_topics
            ));
        }
        if self.history_bytes % ring::ALIGN != 0 || self.history_bytes > self.ring_bytes / 4 {
            return bad(format!(
                "history_bytes {} must be a multiple of {} and at most a quarter of the ring ({})",
                self.history_bytes,
                ring::ALIGN,
                self.ring_bytes / 4
            ));
        }
        if self.max_groups > MAX_GROUPS {
            return bad(format!(
                "max_groups {} must be 0..={MAX_GROUPS}",
                self.max_groups
            ));
        }
        if !(1..=MAX_GROUP_MEMBERS).contains(&self.max_group_members) {
            return bad(format!(
                "max_group_members {} must be 1..={MAX_GROUP_MEMBERS}",
                self.max_group_members
            ));
        }
        if self.mode & !0o777 != 0 {
            return bad(format!("mode {:o} has bits outside 0o777", self.mode));
        }
        Ok(())
    }

    /// Whether an existing bus with `self` satisfies a request for
    /// `wanted` (see the type's docs).
    pub fn satisfies(&self, wanted: &BusConfig) -> bool {
        self.shortfalls(wanted).is_empty()
    }

    /// How this (existing) configuration fails `wanted`, one phrase per
    /// field, e.g. `"ring_bytes is 4096, at least 1048576 was asked"`;
    /// empty when it [satisfies](Self::satisfies) it.
    pub fn shortfalls(&self, wanted: &BusConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut at_least = |field: &str, have: u64, want: u64| {
            if have < want {
                out.push(format!("{field} is {have}, at least {want} was asked"));
            }
        };
        at_least("ring_bytes", self.ring_bytes, wanted.ring_bytes);
        at_least(
            "max_producers",
            self.max_producers.into(),
            wanted.max_producers.into(),
        );
        at_least(
            "max_subscribers",
            self.max_subscribers.into(),
            wanted.max_subscribers.into(),
        );
        at_least(
            "max_topics",
            self.max_topics.into(),
            wanted.max_topics.into(),
        );
        at_least("history_bytes", self.history_bytes, wanted.history_bytes);
        at_least(
            "max_groups",
            self.max_groups.into(),
            wanted.max_groups.into(),
        );
        at_least(
            "max_group_members",
            self.max_group_members.into(),
            wanted.max_group_members.into(),
        );
        if self.policy != wanted.policy {
            out.push(format!(
                "policy is {}, {} was asked",
                self.policy.as_str(),
                wanted.policy.as_str()
            ));
        }
        out
    }

    /// Bytes of the cursor row of one subscriber.
    pub(crate) fn cursor_stride(&self) -> u64 {
        (self.max_producers as u64).div_ceil(8) * 8
    }

    /// Segment size needed for this configuration.
    pub(crate) fn segment_bytes(&self) -> u64 {
        let topics = self.max_topics as u64;
        let map_slots = (topics * 2).next_power_of_two();
        let parts = [
            4096 + 192,                                             // header page + bus header
            topics * 32,                                            // topic records
            64 + map_slots * 32 + topics * TOPIC_POOL_PER_TOPIC,    // byte map (slots + keys)
            topics * TOPIC_POOL_PER_TOPIC,                          // topic pool
            self.max_producers as u64 * 704,                        // producer slots
            self.max_subscribers as u64 * 128,                      // subscriber slots
            self.max_subscribers as u64 * self.cursor_stride() * 8, // cursors
            self.max_producers as u64 * (self.ring_bytes + 4096),   // rings, page aligned
            GROUP_TABLE_HEADER + self.max_groups as u64 * self.group_bytes(), // groups
        ];
        // Every allocation is rounded up to its size class (at most 25 %,
        // see `shm_bus_alloc::class_size`), and carries a block header and
        // up to a page of alignment slack. (The segment is sparse: pages
        // never touched cost no memory.)
        let sum: u64 = parts.iter().map(|&p| p + p / 4 + 2 * 4096).sum();
        // Arena control block.
        let total = sum + (256 << 10);
        total.div_ceil(4096) * 4096
    }

    /// Bytes of one group slot (see `group::protocol`).
    pub(crate) fn group_bytes(&self) -> u64 {
        crate::group::protocol::group_bytes(self.cursor_stride(), self.max_group_members as u64)
    }

    pub(crate) fn encode(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[0..8].copy_from_slice(&CONFIG_MAGIC.to_le_bytes());
        out[8..16].copy_from_slice(&self.ring_bytes.to_le_bytes());
        out[16..20].copy_from_slice(&self.max_producers.to_le_bytes());
        out[20..24].copy_from_slice(&self.max_subscribers.to_le_bytes());
        out[24..28].copy_from_slice(&self.max_topics.to_le_bytes());
        out[28..32].copy_from_slice(&self.policy.to_raw().to_le_bytes());
        out[32..36].copy_from_slice(&self.mode.to_le_bytes());
        // At most a quarter of MAX_RING_BYTES (validated): fits 32 bits.
        out[36..40].copy_from_slice(&(self.history_bytes as u32).to_le_bytes());
        out[40..44].copy_from_slice(&self.max_groups.to_le_bytes());
        out[44..48].copy_from_slice(&self.max_group_members.to_le_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<BusConfig, BusError> {
        let corrupt = |what| BusError::Corrupt { what };
        if bytes.len() != 40 && bytes.len() != 48 {
            // Some other user of the allocator, not a bus.
            return Err(BusError::NotABus);
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or_default());
        if u64_at(0) != CONFIG_MAGIC {
            return Err(BusError::NotABus);
        }
        let config = BusConfig {
            ring_bytes: u64_at(8),
            max_producers: u32_at(16),
            max_subscribers: u32_at(20),
            max_topics: u32_at(24),
            policy: Policy::from_raw(u32_at(28)).ok_or(corrupt("bus policy"))?,
            mode: u32_at(32),
            // Zero in segments made before history existed.
            history_bytes: u32_at(36).into(),
            // Segments made before groups have none (and a 40-byte config).
            max_groups: if bytes.len() == 48 { u32_at(40) } else { 0 },
            max_group_members: if bytes.len() == 48 { u32_at(44) } else { 1 },
        };
        config
            .validate()
            .map_err(|_| corrupt("bus configuration"))?;
        Ok(config)
    }
}
