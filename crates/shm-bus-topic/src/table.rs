//! [`TopicTable`]: interning of exact topics to [`TopicId`]s.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use crate::topic::Topic;

/// The id of an interned exact topic: an index into the bus's topic table.
/// Every message carries a `TopicId`, never a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct TopicId(pub u32);

impl TopicId {
    /// The id as an index.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Maps exact topics to dense ids and back. Interning happens once per
/// topic; looking up the literal of an id never blocks.
///
/// [`LocalTopicTable`] is the in-process implementation; the bus has one in
/// shared memory.
pub trait TopicTable {
    /// What interning can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The id of `topic`, interning it if new. Only exact topics can be
    /// interned.
    ///
    /// # Errors
    /// The topic is not exact, or the table is full (implementations may
    /// add their own reasons).
    fn intern(&self, topic: &Topic) -> Result<TopicId, Self::Error>;

    /// The id of the exact topic with this literal, if interned.
    fn id_of(&self, literal: &str) -> Option<TopicId>;

    /// The literal of an interned id.
    fn literal(&self, id: TopicId) -> Option<&str>;

    /// Number of interned topics; ids are `0..len`.
    fn len(&self) -> usize;

    /// Whether nothing is interned yet.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most topics the table can hold.
    fn capacity(&self) -> usize;
}

/// Why [`LocalTopicTable::intern`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InternError {
    /// Only exact topics can be interned (and published).
    NotExact {
        /// The topic's literal.
        topic: String,
    },
    /// The table already holds `capacity` topics.
    Full {
        /// The table's capacity.
        capacity: usize,
    },
}

impl fmt::Display for InternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InternError::NotExact { topic } => write!(
                f,
                "`{topic}` is a pattern: only exact topics (no wildcards, ranges, regexes or `**`) can be published"
            ),
            InternError::Full { capacity } => write!(
                f,
                "topic table full ({capacity} topics): create the bus with a larger max-topics"
            ),
        }
    }
}

impl std::error::Error for InternError {}

/// An in-process [`TopicTable`] with a fixed capacity, like the bus's
/// shared one. Safe to share between threads.
pub struct LocalTopicTable {
    slots: Box<[OnceLock<Box<str>>]>,
    ids: Mutex<HashMap<Box<str>, TopicId>>,
}

impl LocalTopicTable {
    /// A table that holds at most `capacity` topics (at most `u32::MAX`).
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.min(u32::MAX as usize);
        LocalTopicTable {
            slots: (0..capacity).map(|_| OnceLock::new()).collect(),
            ids: Mutex::new(HashMap::new()),
        }
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, TopicId>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (insert is the last step), so a poisoned lock is still usable.
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TopicTable for LocalTopicTable {
    type Error = InternError;

    fn intern(&self, topic: &Topic) -> Result<TopicId, InternError> {
        if !topic.is_exact() {
            return Err(InternError::NotExact {
                topic: topic.to_string(),
            });
        }
        let mut ids = self.ids();
        if let Some(id) = ids.get(topic.as_str()) {
            return Ok(*id);
        }
        let next = ids.len();
        let slot = self.slots.get(next).ok_or(InternError::Full {
            capacity: self.slots.len(),
        })?;
        let id = TopicId(next as u32);
        // Set the literal before publishing the id, so `literal(id)` of any
        // id returned by `intern` or `id_of` is always present.
        let _ = slot.set(topic.as_str().into());
        ids.insert(topic.as_str().into(), id);
        Ok(id)
    }

    fn id_of(&self, literal: &str) -> Option<TopicId> {
        self.ids().get(literal).copied()
    }

    fn literal(&self, id: TopicId) -> Option<&str> {
        self.slots.get(id.index())?.get().map(|s| &**s)
    }

    fn len(&self) -> usize {
        self.ids().len()
    }

    fn capacity(&self) -> usize {
        self.slots.len()
    }
}
