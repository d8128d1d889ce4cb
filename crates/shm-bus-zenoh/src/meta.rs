//! The attachment every exported sample carries: where it came from and
//! what it was on the bus it left.
//!
//! ```text
//! byte  0      version (1)
//!       1..9   source: the exporting bridge's id (random per bridge process), u64 LE
//!       9..17  export sequence: per (source, topic), from 0, +1 per exported event, u64 LE
//!      17..21  producer: the producer slot on the source bus, u32 LE
//!      21..29  producer sequence on the source bus, u64 LE
//!      29..37  timestamp on the source bus, ns since the Unix epoch, u64 LE
//! ```
//!
//! The export sequence lets an importer find what it missed: Zenoh
//! delivers every sample of a key to every subscriber whose key
//! expression includes it, and the exporter numbers every event of a
//! topic, so a jump on one (source, topic) is exactly the events lost
//! between them, and a repeat is a duplicate.

/// Length of the encoding.
pub const META_LEN: usize = 37;
const VERSION: u8 = 1;

/// What travels with each exported event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The exporting bridge.
    pub source: u64,
    /// Per (source, topic) sequence.
    pub export_seq: u64,
    /// Producer slot on the source bus.
    pub producer: u32,
    /// The producer's sequence number on the source bus.
    pub producer_seq: u64,
    /// Commit time on the source bus, ns since the Unix epoch.
    pub timestamp_ns: u64,
}

/// Why an attachment could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// No attachment: the sample was not put by a bridge.
    #[error("no attachment (not put by an shm-bus bridge)")]
    Missing,
    /// Wrong length or an unknown version.
    #[error("attachment of {len} bytes, version {version}: not an shm-bus bridge attachment")]
    Foreign {
        /// Its length.
        len: usize,
        /// Its first byte.
        version: u8,
    },
}

impl Meta {
    /// Encodes it.
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut b = [0u8; META_LEN];
        b[0] = VERSION;
        b[1..9].copy_from_slice(&self.source.to_le_bytes());
        b[9..17].copy_from_slice(&self.export_seq.to_le_bytes());
        b[17..21].copy_from_slice(&self.producer.to_le_bytes());
        b[21..29].copy_from_slice(&self.producer_seq.to_le_bytes());
        b[29..37].copy_from_slice(&self.timestamp_ns.to_le_bytes());
        b
    }

    /// Decodes it.
    ///
    /// # Errors
    /// [`MetaError::Missing`] for `None`, [`MetaError::Foreign`] for
    /// anything that is not this encoding.
    pub fn decode(bytes: Option<&[u8]>) -> Result<Meta, MetaError> {
        let b = bytes.ok_or(MetaError::Missing)?;
        if b.len() != META_LEN || b[0] != VERSION {
            return Err(MetaError::Foreign {
                len: b.len(),
                version: b.first().copied().unwrap_or(0),
            });
        }
        let u64_at = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        let mut p = [0u8; 4];
        p.copy_from_slice(&b[17..21]);
        Ok(Meta {
            source: u64_at(1),
            export_seq: u64_at(9),
            producer: u32::from_le_bytes(p),
            producer_seq: u64_at(21),
            timestamp_ns: u64_at(29),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign() {
        let m = Meta {
            source: u64::MAX - 3,
            export_seq: 7,
            producer: 63,
            producer_seq: 1 << 40,
            timestamp_ns: 1_700_000_000_123_456_789,
        };
        assert_eq!(Meta::decode(Some(&m.encode())), Ok(m));
        assert_eq!(Meta::decode(None), Err(MetaError::Missing));
        assert!(matches!(
            Meta::decode(Some(&[1, 2, 3])),
            Err(MetaError::Foreign { len: 3, .. })
        ));
        let mut v2 = m.encode();
        v2[0] = 2;
        assert!(matches!(
            Meta::decode(Some(&v2)),
            Err(MetaError::Foreign { version: 2, .. })
        ));
    }
}
