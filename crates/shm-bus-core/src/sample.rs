//! [`Sample`]: one received event, its payload borrowed in the ring or a
//! validated copy.

use shm_bus_topic::{Topic, TopicId, match_topics};

use crate::delivery::{AnyPolicy, Delivery};
use crate::error::PayloadError;
use crate::receive::Found;
use crate::subscriber::Subscriber;

/// A received event. Its payload stays unchanged while the sample lives:
/// borrowed in the producer's ring under Block policy (zero copy; the ring
/// space is released when the sample is dropped), or a copy validated
/// against the producer's overwrite mark under Overwrite (see
/// [`delivery`](crate::delivery)). Which one is in the type `M`.
pub struct Sample<'a, M: Delivery = AnyPolicy> {
    pub(crate) sub: &'a mut Subscriber<M>,
    pub(crate) found: Found,
    /// The payload: in the ring (borrowed delivery) or the subscriber's
    /// copy buffer (copied delivery).
    pub(crate) ptr: *const u8,
}

impl<M: Delivery> Sample<'_, M> {
    /// The topic's id.
    #[inline]
    pub fn topic_id(&self) -> TopicId {
        TopicId(self.found.view.topic)
    }

    /// The topic's literal.
    pub fn topic(&self) -> &str {
        self.sub
            .bus
            .shared
            .topic_literal(self.topic_id())
            .unwrap_or("")
    }

    /// What the wildcards of the pattern that matched captured, in the
    /// pattern's order (`(name, text)`; the last one wins in
    /// [`capture`](Self::capture) when a name repeats), as the engine's
    /// `Message::captures` gives them. When several of the subscriber's
    /// patterns match the topic, the one subscribed first counts. Empty
    /// for an exact pattern. Computed on each call (a parse and a match),
    /// not on the receive path.
    pub fn captures(&self) -> Vec<(String, String)> {
        let Ok(topic) = Topic::parse(self.topic()) else {
            return Vec::new();
        };
        self.sub
            .patterns()
            .iter()
            .map(|pattern| match_topics(pattern, &topic))
            .find(|m| m.matched())
            .map(|m| {
                m.captures()
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text the wildcard `name` of the pattern that matched captured
    /// (see [`captures`](Self::captures)).
    pub fn capture(&self, name: &str) -> Option<String> {
        self.captures()
            .into_iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Worker groups: whether this event was handed out before, to a
    /// member that died (or left) before finishing it (at-least-once
    /// redelivery; see [`Bus::group_member_with`](crate::Bus::group_member_with)).
    /// Always `false` for a plain subscriber.
    #[inline]
    pub fn redelivered(&self) -> bool {
        self.found.origin == crate::receive::REDELIVERED
    }

    /// The producer (publisher slot) that published it.
    pub fn producer(&self) -> u32 {
        self.found.producer
    }

    /// Its sequence number: per producer, starting at 0, gap-free under
    /// Block policy.
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.found.view.seq
    }

    /// When it was committed, ns since the Unix epoch (converted from the
    /// cheap clock the publisher stamped it with; see the crate docs).
    pub fn timestamp_ns(&self) -> u64 {
        self.sub.bus.shared.wall_ns(self.found.view.timestamp)
    }

    /// The raw stamp of the record: [`clock::ticks`](crate::clock::ticks) when it was
    /// committed. Cheaper to keep than [`timestamp_ns`](Self::timestamp_ns);
    /// convert it later with [`Bus::stamp_to_wall_ns`](crate::Bus::stamp_to_wall_ns).
    #[inline]
    pub fn stamp(&self) -> u64 {
        self.found.view.timestamp
    }

    /// Whether the payload is a private copy (`true`) or borrowed in the
    /// ring (`false`).
    pub fn is_copy(&self) -> bool {
        self.sub.st.copy
    }

    /// The payload: in the ring, or the validated copy.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        // SAFETY: `ptr` points at `len` readable bytes that nobody writes
        // while this sample lives. Copied delivery: the subscriber's copy
        // buffer, holding at least `len` bytes (`copy_payload`), changed
        // or reallocated only by `poll`, which needs the `&mut Subscriber`
        // this sample holds. Borrowed delivery (Block policy only): a
        // committed record inside the ring (`peek`), which the producer
        // cannot reuse before our cursor passes it, and the cursor moves
        // only when this sample drops.
        unsafe { std::slice::from_raw_parts(self.ptr, self.found.view.len as usize) }
    }

    /// Length of the payload.
    pub fn len(&self) -> usize {
        self.found.view.len as usize
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.found.view.len == 0
    }

    /// Views the payload as a `T` in place (no further copy). Payloads are
    /// aligned to 32 bytes, in the ring and in a copy.
    ///
    /// # Errors
    /// [`PayloadError::Size`] or [`PayloadError::Align`].
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, PayloadError> {
        crate::payload::view_pod(self.payload())
    }

    /// Decodes a value published with
    /// [`Publisher::publish_serde`](crate::Publisher::publish_serde). The
    /// value may borrow from the payload (`&str`, `&[u8]` fields), which
    /// stays unchanged while the sample lives.
    ///
    /// # Errors
    /// [`PayloadError::Decode`].
    pub fn decode<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, PayloadError> {
        crate::payload::decode(self.payload())
    }
}

impl<M: Delivery> std::fmt::Debug for Sample<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("topic", &self.topic())
            .field("producer", &self.producer())
            .field("sequence", &self.sequence())
            .field("len", &self.len())
            .field("copy", &self.is_copy())
            .finish()
    }
}

impl<M: Delivery> Drop for Sample<'_, M> {
    #[inline]
    fn drop(&mut self) {
        let sub = &mut *self.sub;
        sub.st.delivered(&sub.bus.shared, self.found);
    }
}
