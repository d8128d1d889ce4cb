//! Generated, verifiable payloads (`publish` without `--data`, `demo`):
//!
//! | bytes | content |
//! |-------|---------|
//! | 0..4  | magic `SBG2` |
//! | 4..8  | producer id (u32 LE) |
//! | 8..16 | sequence number (u64 LE), per producer, from 0 |
//! | 16..24 | checksum (u64 LE): FNV-1a of bytes 0..16 and 24.. |
//! | 24..28 | topic sequence (u32 LE, wrapping): per topic within one run |
//! | 28..32 | run tag (u32 LE): low bits of the run's first sequence number |
//! | 32..  | filler derived from the sequence number |
//!
//! At least 32 bytes. A run is one `publish` (or one demo producer); the
//! topic sequence counts that run's records on one topic, so a consumer
//! of a subset of the topics can tell whether it missed any of them
//! (`topic_gaps`), which the per-producer sequence cannot (it also counts
//! the other topics' records). Payloads of the first layout (`SBG1`, no
//! topic sequence) are still verified, and counted per producer only.

use std::collections::{BTreeMap, HashMap};

/// Smallest generated payload.
pub(crate) const MIN_SIZE: usize = 32;
const MAGIC: &[u8; 4] = b"SBG2";
const MAGIC_V1: &[u8; 4] = b"SBG1";

fn checksum(p: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in p[..16].iter().chain(&p[24..]) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Where a generated payload stands in its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The publishing producer's id.
    pub producer: u32,
    /// Sequence number, per producer.
    pub seq: u64,
    /// Sequence number among the run's records on this topic.
    pub topic_seq: u32,
    /// Which run (low 32 bits of its first `seq`).
    pub run: u32,
}

/// Fills `buf` (at least [`MIN_SIZE`] bytes) with a generated payload.
pub(crate) fn fill(buf: &mut [u8], s: Stamp) {
    debug_assert!(buf.len() >= MIN_SIZE);
    buf[..4].copy_from_slice(MAGIC);
    buf[4..8].copy_from_slice(&s.producer.to_le_bytes());
    buf[8..16].copy_from_slice(&s.seq.to_le_bytes());
    buf[24..28].copy_from_slice(&s.topic_seq.to_le_bytes());
    buf[28..32].copy_from_slice(&s.run.to_le_bytes());
    for (i, b) in buf[32..].iter_mut().enumerate() {
        *b = (s.seq as u8).wrapping_add(i as u8);
    }
    let sum = checksum(buf);
    buf[16..24].copy_from_slice(&sum.to_le_bytes());
}

/// What a received payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// A generated payload, intact.
    Good {
        /// Producer id it carries.
        producer: u32,
        /// Sequence number it carries.
        seq: u64,
        /// Topic sequence and run tag (`None`: first layout, without).
        topic: Option<(u32, u32)>,
    },
    /// A generated payload whose checksum fails.
    Corrupt,
    /// Not a generated payload ("foreign": `--data`, `--stdin`, another
    /// program's).
    Foreign,
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or_default())
}

/// Verifies a payload.
pub(crate) fn check(p: &[u8]) -> Check {
    if p.len() < MIN_SIZE {
        return Check::Foreign;
    }
    let v2 = &p[..4] == MAGIC;
    if !v2 && &p[..4] != MAGIC_V1 {
        return Check::Foreign;
    }
    if u64_at(p, 16) != checksum(p) {
        return Check::Corrupt;
    }
    Check::Good {
        producer: u32_at(p, 4),
        seq: u64_at(p, 8),
        topic: v2.then(|| (u32_at(p, 24), u32_at(p, 28))),
    }
}

/// Accounting of generated payloads: gaps and duplicates per producer,
/// gaps per topic.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    next: HashMap<u32, u64>,
    /// Next topic sequence per (producer, run, topic id).
    topic_next: HashMap<(u32, u32, u32), u32>,
    /// Intact generated payloads.
    pub good: u64,
    /// Sequence numbers skipped, per producer (records of topics this
    /// consumer does not receive count too).
    pub gaps: u64,
    /// Topic sequence numbers skipped: records missing within the topics
    /// received.
    pub topic_gaps: u64,
    /// Sequence numbers seen again (or going backwards).
    pub duplicates: u64,
    /// Failed checksums.
    pub corrupt: u64,
    /// Payloads that were not generated.
    pub foreign: u64,
}

impl Tally {
    /// Accounts one payload received on topic `topic` (its id on the bus).
    pub(crate) fn add(&mut self, payload: &[u8], topic: u32) -> Check {
        let c = check(payload);
        match c {
            Check::Good {
                producer,
                seq,
                topic: stream,
            } => {
                self.good += 1;
                let next = self.next.entry(producer).or_insert(seq);
                if seq > *next {
                    self.gaps += seq - *next;
                    *next = seq + 1;
                } else if seq < *next {
                    self.duplicates += 1;
                } else {
                    *next = seq + 1;
                }
                if let Some((topic_seq, run)) = stream {
                    // Wrapping: a topic sequence is 32 bits. Going back
                    // is a duplicate, already counted per producer.
                    let next = self
                        .topic_next
                        .entry((producer, run, topic))
                        .or_insert(topic_seq);
                    let ahead = topic_seq.wrapping_sub(*next);
                    if ahead < 1 << 31 {
                        self.topic_gaps += u64::from(ahead);
                        *next = topic_seq.wrapping_add(1);
                    }
                }
            }
            Check::Corrupt => self.corrupt += 1,
            Check::Foreign => self.foreign += 1,
        }
        c
    }
}

/// The sequence numbers seen per producer, as ranges: which events a
/// worker-group member got, in whatever order they came (an adopted or
/// redelivered event comes after later ones). Compact when the events come
/// in runs, as claims hand them out.
#[derive(Debug, Default)]
pub(crate) struct SeenSet {
    /// Per producer: start -> end (exclusive) of disjoint, non-adjacent
    /// ranges.
    ranges: HashMap<u32, BTreeMap<u64, u64>>,
}

impl SeenSet {
    /// Records `seq` of `producer`; false if it was seen before.
    pub(crate) fn insert(&mut self, producer: u32, seq: u64) -> bool {
        let r = self.ranges.entry(producer).or_default();
        let next = seq.checked_add(1);
        if let Some((&start, &end)) = r.range(..=seq).next_back() {
            if seq < end {
                return false;
            }
            if seq == end {
                // Extends the range before; joins the one after, if any.
                let after = next.and_then(|n| r.remove(&n));
                r.insert(start, after.or(next).unwrap_or(u64::MAX));
                return true;
            }
        }
        let after = next.and_then(|n| r.remove(&n));
        r.insert(seq, after.or(next).unwrap_or(u64::MAX));
        true
    }

    /// Ranges held (for tests: how compact it stays).
    #[cfg(test)]
    fn ranges(&self) -> usize {
        self.ranges.values().map(BTreeMap::len).sum()
    }
}

/// Numbers the records of one run per topic, for [`Stamp::topic_seq`].
#[derive(Debug)]
pub(crate) struct TopicCounter {
    counts: Vec<u32>,
}

impl TopicCounter {
    /// For a run over `topics` topics (indices `0..topics`).
    pub(crate) fn new(topics: usize) -> TopicCounter {
        TopicCounter {
            counts: vec![0; topics],
        }
    }

    /// The next topic sequence of topic index `k`.
    pub(crate) fn next(&mut self, k: usize) -> u32 {
        let n = self.counts[k];
        self.counts[k] = n.wrapping_add(1);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(seq: u64, topic_seq: u32) -> Stamp {
        Stamp {
            producer: 7,
            seq,
            topic_seq,
            run: 3,
        }
    }

    #[test]
    fn round_trip_and_tally() {
        let mut buf = vec![0; 64];
        let mut t = Tally::default();
        for seq in [0, 1, 2, 5, 5, 3] {
            fill(&mut buf, stamp(seq, seq as u32));
            assert_eq!(
                check(&buf),
                Check::Good {
                    producer: 7,
                    seq,
                    topic: Some((seq as u32, 3))
                }
            );
            t.add(&buf, 0);
        }
        assert_eq!((t.good, t.gaps, t.duplicates), (6, 2, 2));
        assert_eq!(t.topic_gaps, 2);
        buf[40] ^= 1;
        assert_eq!(t.add(&buf, 0), Check::Corrupt);
        assert_eq!(t.add(b"hello", 0), Check::Foreign);
    }

    #[test]
    fn topic_gaps_count_only_the_topics_received() {
        // Three topics round robin; this consumer gets topic 1 only.
        let mut buf = vec![0; 32];
        let mut t = Tally::default();
        let mut topics = TopicCounter::new(3);
        for i in 0..30u64 {
            let k = (i % 3) as usize;
            fill(&mut buf, stamp(i, topics.next(k)));
            if k == 1 && i != 16 {
                t.add(&buf, 11);
            }
        }
        // The producer stream skips the other topics; the topic stream
        // skips only the one record lost (i = 16).
        assert_eq!(t.good, 9);
        assert_eq!(t.gaps, 19);
        assert_eq!(t.topic_gaps, 1);
        assert_eq!(t.duplicates, 0);
    }

    #[test]
    fn seen_set_finds_repeats_in_any_order_and_stays_compact() {
        let mut s = SeenSet::default();
        // Claims of 4, the middle one adopted late, then a repeat.
        for seq in (0..4).chain(8..12).chain(4..8) {
            assert!(s.insert(1, seq), "{seq}");
        }
        assert_eq!(s.ranges(), 1);
        assert!(!s.insert(1, 5));
        assert!(!s.insert(1, 0));
        assert!(!s.insert(1, 11));
        assert!(s.insert(1, 12));
        assert!(s.insert(2, 5), "another producer");
        assert!(s.insert(1, 20));
        assert!(s.insert(1, 19));
        assert_eq!(s.ranges(), 3);
    }

    #[test]
    fn first_layout_is_still_verified() {
        let mut buf = vec![0; 32];
        fill(&mut buf, stamp(4, 0));
        buf[..4].copy_from_slice(MAGIC_V1);
        let sum = checksum(&buf);
        buf[16..24].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            check(&buf),
            Check::Good {
                producer: 7,
                seq: 4,
                topic: None
            }
        );
    }
}
