//! Generated, verifiable payloads (`publish` without `--data`, `demo`):
//!
//! | bytes | content |
//! |-------|---------|
//! | 0..4  | magic `SBG1` |
//! | 4..8  | producer id (u32 LE) |
//! | 8..16 | sequence number (u64 LE), per producer, from 0 |
//! | 16..24 | checksum (u64 LE): FNV-1a of bytes 0..16 and 24.. |
//! | 24..  | filler derived from the sequence number |
//!
//! At least 32 bytes.

/// Smallest generated payload.
pub(crate) const MIN_SIZE: usize = 32;
const MAGIC: &[u8; 4] = b"SBG1";

fn checksum(p: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in p[..16].iter().chain(&p[24..]) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Fills `buf` (at least [`MIN_SIZE`] bytes) with a generated payload.
pub(crate) fn fill(buf: &mut [u8], producer: u32, seq: u64) {
    debug_assert!(buf.len() >= MIN_SIZE);
    buf[..4].copy_from_slice(MAGIC);
    buf[4..8].copy_from_slice(&producer.to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[24..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_add(i as u8);
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
    },
    /// A generated payload whose checksum fails.
    Corrupt,
    /// Not a generated payload.
    Foreign,
}

/// Verifies a payload.
pub(crate) fn check(p: &[u8]) -> Check {
    if p.len() < MIN_SIZE || &p[..4] != MAGIC {
        return Check::Foreign;
    }
    let sum = u64::from_le_bytes(p[16..24].try_into().unwrap_or_default());
    if sum != checksum(p) {
        return Check::Corrupt;
    }
    Check::Good {
        producer: u32::from_le_bytes(p[4..8].try_into().unwrap_or_default()),
        seq: u64::from_le_bytes(p[8..16].try_into().unwrap_or_default()),
    }
}

/// Per-producer accounting of generated payloads: gaps and duplicates.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    next: std::collections::HashMap<u32, u64>,
    /// Intact generated payloads.
    pub good: u64,
    /// Sequence numbers skipped.
    pub gaps: u64,
    /// Sequence numbers seen again (or going backwards).
    pub duplicates: u64,
    /// Failed checksums.
    pub corrupt: u64,
    /// Payloads that were not generated.
    pub foreign: u64,
}

impl Tally {
    /// Accounts one payload.
    pub(crate) fn add(&mut self, payload: &[u8]) -> Check {
        let c = check(payload);
        match c {
            Check::Good { producer, seq } => {
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
            }
            Check::Corrupt => self.corrupt += 1,
            Check::Foreign => self.foreign += 1,
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tally() {
        let mut buf = vec![0; 64];
        let mut t = Tally::default();
        for seq in [0, 1, 2, 5, 5, 3] {
            fill(&mut buf, 7, seq);
            assert_eq!(check(&buf), Check::Good { producer: 7, seq });
            t.add(&buf);
        }
        assert_eq!((t.good, t.gaps, t.duplicates), (6, 2, 2));
        buf[40] ^= 1;
        assert_eq!(t.add(&buf), Check::Corrupt);
        assert_eq!(t.add(b"hello"), Check::Foreign);
    }
}
