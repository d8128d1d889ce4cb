//! The bus's topic table in shared memory: an append-only array of topic
//! records indexed by [`TopicId`], plus a `ByteMap` from topic bytes to id.
//!
//! Interning (any process, lock-free):
//! 1. look the bytes up in the map; found → done;
//! 2. claim the next id (CAS on `topic_count`, bounded by `max_topics`) and
//!    bump-allocate the literal's bytes in the topic pool;
//! 3. write the record and mark it `READY` (Release);
//! 4. insert `bytes → id` if absent. A process that loses this race marks
//!    its record `DEAD` (a hole no message ever carries) and uses the
//!    winner's id.
//!
//! A process killed between 2 and 3 leaves a record that never becomes
//! ready: a hole, reported by `inspect`, harmless otherwise.

use std::sync::atomic::Ordering;

use shm_bus_alloc::{ByteMap, Insert, Offset, Segment};
use shm_bus_topic::{Topic, TopicId, TopicTable};

use crate::config::MAX_TOPIC_LEN;
use crate::error::BusError;
use crate::layout::{BusHeader, TOPIC_DEAD, TOPIC_READY, TopicRecord};

/// The shared topic table of one bus (a view; cheap to copy).
#[derive(Clone, Copy)]
pub struct ShmTopicTable<'s> {
    seg: &'s Segment,
    header: &'s BusHeader,
    records: &'s [TopicRecord],
    map: ByteMap<'s>,
}

impl<'s> ShmTopicTable<'s> {
    pub(crate) fn attach(seg: &'s Segment, header: &'s BusHeader) -> Result<Self, BusError> {
        let max = header.max_topics.load(Ordering::Relaxed) as u64;
        let records = seg.resolve_slice(
            Offset::<TopicRecord>::new(header.topics.load(Ordering::Relaxed)),
            max,
        )?;
        let map = ByteMap::attach(seg, Offset::new(header.topic_map.load(Ordering::Relaxed)))?;
        Ok(ShmTopicTable {
            seg,
            header,
            records,
            map,
        })
    }

    fn capacity_u32(&self) -> u32 {
        self.records.len() as u32
    }

    /// Interns an exact topic given as its literal (already validated).
    pub(crate) fn intern_literal(&self, literal: &str) -> Result<TopicId, BusError> {
        let key = literal.as_bytes();
        if key.len() > MAX_TOPIC_LEN {
            return Err(BusError::TopicTooLong {
                len: key.len(),
                max: MAX_TOPIC_LEN,
            });
        }
        if let Some(id) = self.map.get(key)? {
            return self.checked_id(id);
        }
        let full = BusError::TopicTableFull {
            capacity: self.capacity_u32(),
        };
        // Claim an id: CAS so the count never exceeds the capacity.
        let mut count = self.header.topic_count.load(Ordering::Relaxed);
        let id = loop {
            if count >= self.records.len() as u64 {
                return Err(full);
            }
            // Relaxed: the id is only a claim; the record is published by
            // its own Release state store.
            match self.header.topic_count.compare_exchange_weak(
                count,
                count + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break count,
                Err(now) => count = now,
            }
        };
        let record = &self.records[id as usize];
        // Bump-allocate the literal in the pool.
        let pool_bytes = self.header.topic_pool_bytes.load(Ordering::Relaxed);
        let len = key.len() as u64;
        let at = self
            .header
            .topic_pool_used
            .fetch_add(len, Ordering::Relaxed);
        // Checked: `at`, `pool_bytes` and `pool` are words of the segment.
        if at.checked_add(len).is_none_or(|end| end > pool_bytes) {
            record.state.store(TOPIC_DEAD, Ordering::Relaxed);
            return Err(full);
        }
        let pool = self.header.topic_pool.load(Ordering::Relaxed);
        let Some(start) = pool.checked_add(at) else {
            record.state.store(TOPIC_DEAD, Ordering::Relaxed);
            return Err(BusError::Corrupt {
                what: "topic pool offset",
            });
        };
        let bytes = self.seg.bytes(Offset::new(start), len)?;
        // SAFETY: `[pool + at, pool + at + len)` was handed to this call
        // alone by the `fetch_add` above and lies inside the segment
        // (checked by `Segment::bytes`); nobody reads it before the record's
        // Release state store below.
        unsafe { std::ptr::copy_nonoverlapping(key.as_ptr(), bytes.as_ptr(), key.len()) };
        record.bytes.store(pool + at, Ordering::Relaxed);
        record.len.store(len, Ordering::Relaxed);
        record.hash.store(fxhash(key), Ordering::Relaxed);
        // Release: pairs with the Acquire load in `literal`.
        record.state.store(TOPIC_READY, Ordering::Release);
        match self.map.insert(key, id) {
            Ok(Insert::Inserted) => Ok(TopicId(id as u32)),
            Ok(Insert::Existing(winner)) => {
                record.state.store(TOPIC_DEAD, Ordering::Relaxed);
                self.checked_id(winner)
            }
            Err(shm_bus_alloc::Error::Full { .. }) => {
                record.state.store(TOPIC_DEAD, Ordering::Relaxed);
                Err(full)
            }
            Err(e) => {
                record.state.store(TOPIC_DEAD, Ordering::Relaxed);
                Err(e.into())
            }
        }
    }

    // `TOPIC_DEAD` stores are Relaxed: a dead record publishes nothing, and
    // readers only act on `TOPIC_READY` (loaded with Acquire).

    fn checked_id(&self, id: u64) -> Result<TopicId, BusError> {
        if id < self.records.len() as u64 {
            Ok(TopicId(id as u32))
        } else {
            Err(BusError::Corrupt {
                what: "topic map value out of range",
            })
        }
    }

    /// The literal of `id` as bytes, when the record is ready.
    pub(crate) fn literal_bytes(&self, id: TopicId) -> Option<&'s [u8]> {
        literal_bytes(self.seg, self.records, id)
    }

    /// Every ready topic, in id order.
    pub fn entries(&self) -> Vec<(TopicId, String)> {
        let count = self
            .header
            .topic_count
            // Relaxed: only a bound; each record is published by its own
            // state word (Acquire in `literal`).
            .load(Ordering::Relaxed)
            .min(self.records.len() as u64);
        (0..count as u32)
            .filter_map(|i| {
                let id = TopicId(i);
                self.literal(id).map(|l| (id, l.to_owned()))
            })
            .collect()
    }
}

impl TopicTable for ShmTopicTable<'_> {
    type Error = BusError;

    fn intern(&self, topic: &Topic) -> Result<TopicId, BusError> {
        if !topic.is_exact() {
            return Err(BusError::NotExact {
                topic: topic.to_string(),
            });
        }
        self.intern_literal(topic.as_str())
    }

    fn id_of(&self, literal: &str) -> Option<TopicId> {
        self.map
            .get(literal.as_bytes())
            .ok()
            .flatten()
            .and_then(|id| self.checked_id(id).ok())
    }

    fn literal(&self, id: TopicId) -> Option<&str> {
        std::str::from_utf8(self.literal_bytes(id)?).ok()
    }

    fn len(&self) -> usize {
        self.entries().len()
    }

    fn capacity(&self) -> usize {
        self.records.len()
    }
}

fn fxhash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(bytes);
    h.finish()
}

/// The literal of `id` in `records`, when the record is ready. Reads only
/// the record and the topic pool, so it needs no map.
pub(crate) fn literal_bytes<'s>(
    seg: &'s Segment,
    records: &'s [TopicRecord],
    id: TopicId,
) -> Option<&'s [u8]> {
    let record = records.get(id.index())?;
    // Acquire: pairs with the Release store in `intern_literal`.
    if record.state.load(Ordering::Acquire) != TOPIC_READY {
        return None;
    }
    let off = record.bytes.load(Ordering::Relaxed);
    let len = record.len.load(Ordering::Relaxed);
    if len as usize > MAX_TOPIC_LEN {
        return None;
    }
    let bytes = seg.bytes(Offset::new(off), len).ok()?;
    // SAFETY: the range is inside the segment (checked) and was written
    // once before the READY state we observed with Acquire; pool bytes are
    // never written again, so a shared slice is sound.
    Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) })
}
