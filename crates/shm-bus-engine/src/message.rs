//! What an [`EventEngine`](super::EventEngine) hands to handlers
//! ([`Message`], borrowed) and to callers of `get` ([`OwnedMessage`]).

use shm_bus_topic::TopicId;

use shm_bus_core::PayloadError;
use shm_bus_core::payload;

/// One event as a handler sees it: the topic (literal and id), the
/// captures of the pattern that matched, and the payload, borrowed (from
/// the producer's ring on a bus: no copy).
#[derive(Clone, Copy)]
pub struct Message<'a> {
    pub(crate) topic: &'a str,
    pub(crate) topic_id: TopicId,
    pub(crate) captures: &'a [(Box<str>, Box<str>)],
    pub(crate) payload: &'a [u8],
    pub(crate) producer: Option<u32>,
    pub(crate) sequence: u64,
    /// ns since the epoch, or the record's raw stamp when `clock` is set.
    pub(crate) timestamp: u64,
    pub(crate) clock: Option<&'a shm_bus_core::Bus>,
    pub(crate) redelivered: bool,
}

impl<'a> Message<'a> {
    /// A message not received through an engine: for calling a handler or
    /// [`EventHook::trigger`](super::EventHook::trigger) directly (tests,
    /// replay). No captures, no producer.
    pub fn new(topic: &'a str, topic_id: TopicId, payload: &'a [u8]) -> Message<'a> {
        Message {
            topic,
            topic_id,
            captures: &[],
            payload,
            producer: None,
            sequence: 0,
            timestamp: 0,
            clock: None,
            redelivered: false,
        }
    }

    /// The topic's literal (`md.XNAS.AAPL.trade`).
    #[inline]
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// The topic's id (per bus; per engine when in-process).
    #[inline]
    pub fn topic_id(&self) -> TopicId {
        self.topic_id
    }

    /// What the wildcards of the pattern that matched captured, in the
    /// pattern's order (last one wins for a repeated name). Empty for a
    /// handler on an exact topic.
    pub fn captures(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        self.captures.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The text the wildcard `name` captured.
    pub fn capture(&self, name: &str) -> Option<&'a str> {
        self.captures
            .iter()
            .rev()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| &**v)
    }

    /// The payload bytes (aligned to 32 bytes).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// Views the payload as a `T` in place (what
    /// [`EventEngine::put_pod`](super::EventEngine::put_pod) sent).
    ///
    /// # Errors
    /// [`PayloadError::Size`] or [`PayloadError::Align`].
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&'a T, PayloadError> {
        payload::view_pod(self.payload)
    }

    /// Decodes a serde value (what
    /// [`EventEngine::publish`](super::EventEngine::publish) sent).
    ///
    /// # Errors
    /// [`PayloadError::Decode`].
    pub fn decode<T: serde::Deserialize<'a>>(&self) -> Result<T, PayloadError> {
        payload::decode(self.payload)
    }

    /// The producer (publisher slot) that sent it on a bus; `None`
    /// in-process.
    pub fn producer(&self) -> Option<u32> {
        self.producer
    }

    /// Its sequence number: per producer on a bus, per engine in-process.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When it was sent, ns since the Unix epoch (converted from the
    /// ring's cheap clock on first ask, so unused timestamps cost nothing).
    pub fn timestamp_ns(&self) -> u64 {
        match self.clock {
            Some(bus) => bus.stamp_to_wall_ns(self.timestamp),
            None => self.timestamp,
        }
    }

    /// Whether this event was handed out before, to an engine of its
    /// worker group that died before its handlers returned
    /// ([`EventEngine::with_group`](super::EventEngine::with_group),
    /// at-least-once). Handlers that must not repeat an effect check it
    /// (or make the effect idempotent). Always `false` for an engine that
    /// is not a group member.
    #[inline]
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("topic", &self.topic)
            .field("captures", &self.captures)
            .field("producer", &self.producer)
            .field("sequence", &self.sequence)
            .field("redelivered", &self.redelivered)
            .field("len", &self.payload.len())
            .finish()
    }
}

/// A 32-byte aligned chunk, so that owned payloads can be viewed as `Pod`
/// values exactly as ring payloads can.
#[derive(Clone, Copy, bytemuck::Zeroable, bytemuck::Pod)]
#[repr(C, align(32))]
struct Chunk([u8; 32]);

/// Payload bytes in 32-byte aligned storage.
#[derive(Clone, Default)]
pub(crate) struct AlignedBytes {
    chunks: Vec<Chunk>,
    len: usize,
}

impl AlignedBytes {
    pub(crate) fn copy_from(bytes: &[u8]) -> AlignedBytes {
        let mut out = AlignedBytes::default();
        out.set(bytes);
        out
    }

    /// Replaces the contents, reusing the allocation.
    pub(crate) fn set(&mut self, bytes: &[u8]) {
        self.chunks.clear();
        self.chunks.resize(bytes.len().div_ceil(32), Chunk([0; 32]));
        self.len = bytes.len();
        bytemuck::cast_slice_mut::<Chunk, u8>(&mut self.chunks)[..bytes.len()]
            .copy_from_slice(bytes);
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &bytemuck::cast_slice::<Chunk, u8>(&self.chunks)[..self.len]
    }
}

/// An event taken off an engine with
/// [`EventEngine::get`](super::EventEngine::get): it owns its topic and
/// payload (copied out of the ring).
#[derive(Clone)]
pub struct OwnedMessage {
    pub(crate) topic: Box<str>,
    pub(crate) topic_id: TopicId,
    pub(crate) payload: AlignedBytes,
    pub(crate) producer: Option<u32>,
    pub(crate) sequence: u64,
    pub(crate) timestamp_ns: u64,
    pub(crate) redelivered: bool,
}

impl OwnedMessage {
    /// The topic's literal.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The topic's id.
    pub fn topic_id(&self) -> TopicId {
        self.topic_id
    }

    /// The payload (aligned to 32 bytes).
    pub fn payload(&self) -> &[u8] {
        self.payload.as_slice()
    }

    /// Views the payload as a `T` in place.
    ///
    /// # Errors
    /// [`PayloadError::Size`] or [`PayloadError::Align`].
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, PayloadError> {
        payload::view_pod(self.payload())
    }

    /// Decodes a serde value.
    ///
    /// # Errors
    /// [`PayloadError::Decode`].
    pub fn decode<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, PayloadError> {
        payload::decode(self.payload())
    }

    /// The producer that sent it on a bus; `None` in-process.
    pub fn producer(&self) -> Option<u32> {
        self.producer
    }

    /// Its sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// When it was sent, ns since the Unix epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// Whether it was handed out before to a worker-group member that
    /// died before finishing it (see [`Message::redelivered`]).
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    /// A borrowed view, as handlers see it (without captures).
    pub fn as_message(&self) -> Message<'_> {
        Message {
            topic: &self.topic,
            topic_id: self.topic_id,
            captures: &[],
            payload: self.payload.as_slice(),
            producer: self.producer,
            sequence: self.sequence,
            timestamp: self.timestamp_ns,
            clock: None,
            redelivered: self.redelivered,
        }
    }
}

impl std::fmt::Debug for OwnedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_message().fmt(f)
    }
}
