//! Generated payloads for the test peers and the benchmark: each carries
//! who sent it, its index, its topic's index, when it was sent and a
//! checksum, so a receiver can verify sets, order and integrity.
//!
//! ```text
//! 0..4 tag (the sending producer) | 4..12 index | 12..16 topic index |
//! 16..24 send time, ns since the epoch | 24..32 checksum | filler
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

/// Smallest generated payload.
pub const MIN_SIZE: usize = 32;

/// Now, ns since the Unix epoch.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn checksum(tag: u32, index: u64, topic: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag
        .to_le_bytes()
        .iter()
        .chain(index.to_le_bytes().iter())
        .chain(topic.to_le_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fills `buf` (at least [`MIN_SIZE`] bytes) with a generated payload.
pub fn fill(buf: &mut [u8], tag: u32, index: u64, topic: u32, sent_ns: u64) {
    buf[0..4].copy_from_slice(&tag.to_le_bytes());
    buf[4..12].copy_from_slice(&index.to_le_bytes());
    buf[12..16].copy_from_slice(&topic.to_le_bytes());
    buf[16..24].copy_from_slice(&sent_ns.to_le_bytes());
    buf[24..32].copy_from_slice(&checksum(tag, index, topic).to_le_bytes());
    for b in &mut buf[MIN_SIZE..] {
        *b = index as u8;
    }
}

/// A verified generated payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending producer's tag.
    pub tag: u32,
    /// Its index at that producer.
    pub index: u64,
    /// Its topic's index.
    pub topic: u32,
    /// When it was sent.
    pub sent_ns: u64,
}

/// Reads and verifies a generated payload; `None` if it is not one or
/// was damaged.
pub fn read(buf: &[u8]) -> Option<Stamp> {
    if buf.len() < MIN_SIZE {
        return None;
    }
    let u32_at = |i: usize| u32::from_le_bytes(buf[i..i + 4].try_into().unwrap_or([0; 4]));
    let u64_at = |i: usize| u64::from_le_bytes(buf[i..i + 8].try_into().unwrap_or([0; 8]));
    let s = Stamp {
        tag: u32_at(0),
        index: u64_at(4),
        topic: u32_at(12),
        sent_ns: u64_at(16),
    };
    let filler_ok = buf[MIN_SIZE..].iter().all(|b| *b == s.index as u8);
    (u64_at(24) == checksum(s.tag, s.index, s.topic) && filler_ok).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_payloads_verify_and_damage_is_seen() {
        let mut buf = vec![0u8; 64];
        fill(&mut buf, 3, 1234, 7, 99);
        let s = read(&buf).unwrap();
        assert_eq!((s.tag, s.index, s.topic, s.sent_ns), (3, 1234, 7, 99));
        buf[40] ^= 1;
        assert_eq!(read(&buf), None);
        buf[40] ^= 1;
        buf[5] ^= 1;
        assert_eq!(read(&buf), None);
        assert_eq!(read(&buf[..31]), None);
    }
}
