//! The recording file format (docs/RECORDING.md): a versioned header, then
//! append-only records, each with a CRC-32 (IEEE, `crc32fast`), so that a
//! record torn by a crash or damaged on disk is detected and skipped.
//!
//! ```text
//! file    = header record*
//! header  = "SHMBUSRC" version:u16 flags:u16 json_len:u32 json crc:u32
//! record  = "SBRC" body_len:u32 body crc:u32
//! body    = timestamp_ns:u64 sequence:u64 producer:u32 payload_len:u32
//!           topic_len:u16 reserved:u16 topic payload
//! ```
//!
//! Integers are little-endian. The header's `crc` covers everything before
//! it; a record's `crc` covers `body_len` and `body`. `body_len` is
//! `BODY_FIXED + topic_len + payload_len` (checked).
//!
//! Reading ([`Reader`]) stops at the end of the file; a record that runs
//! past the end is *torn* (a crash while appending) and counted; a record
//! whose marker, lengths or checksum are wrong is *corrupt*, counted, and
//! skipped by scanning forward to the next marker that starts a valid
//! record.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// First bytes of a binary recording.
pub(crate) const FILE_MAGIC: &[u8; 8] = b"SHMBUSRC";
/// The version this code writes and reads.
pub(crate) const VERSION: u16 = 1;
/// First bytes of every record.
pub(crate) const RECORD_MAGIC: &[u8; 4] = b"SBRC";
/// Bytes of a body before the topic: timestamp, sequence, producer,
/// payload length, topic length, reserved.
pub(crate) const BODY_FIXED: usize = 8 + 8 + 4 + 4 + 2 + 2;
/// Largest header JSON accepted when reading (a damaged length must not
/// make us allocate gigabytes).
const MAX_HEADER_JSON: u32 = 1 << 20;
/// Largest record body accepted when reading: a payload of a 1 GiB ring
/// is at most 512 MiB.
const MAX_BODY: u32 = (512 << 20) + 64 * 1024;

/// What a recording says about itself (JSON in the binary header; the
/// first line of a JSON Lines recording, with `"format"` and `"version"`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Header {
    /// The bus recorded.
    pub bus: String,
    /// The patterns recorded.
    pub patterns: Vec<String>,
    /// When recording started, ns since the Unix epoch.
    pub start_ns: u64,
    /// The same as RFC 3339 text, for people.
    pub start: String,
    /// The bus's policy (`block` or `overwrite`).
    pub policy: String,
    /// Whether records were skipped when the file could not keep up.
    pub lossy: bool,
    /// The program that wrote it (`shm-bus 0.1.0`).
    pub writer: String,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// When it was published, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// The producer's sequence number.
    pub sequence: u64,
    /// The producer slot it came from.
    pub producer: u32,
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Why a file is not a recording this code can read.
#[derive(Debug)]
pub(crate) enum FormatError {
    /// Reading failed.
    Io(io::Error),
    /// The file does not start like a recording.
    NotARecording,
    /// A recording of another version.
    Version(u16),
    /// The header is damaged (checksum, length or JSON).
    BadHeader(String),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Io(e) => write!(f, "cannot read: {e}"),
            FormatError::NotARecording => f.write_str(
                "not a shm-bus recording (no `SHMBUSRC` header, nor a JSON Lines recording header)",
            ),
            FormatError::Version(v) => write!(
                f,
                "recording format version {v}; this shm-bus reads version {VERSION}"
            ),
            FormatError::BadHeader(why) => write!(f, "the recording's header is damaged: {why}"),
        }
    }
}

impl std::error::Error for FormatError {}

impl From<io::Error> for FormatError {
    fn from(e: io::Error) -> Self {
        FormatError::Io(e)
    }
}

/// The header's bytes.
pub(crate) fn encode_header(h: &Header) -> Vec<u8> {
    let json = serde_json::to_vec(h).expect("a header serialises");
    let mut out = Vec::with_capacity(20 + json.len());
    out.extend_from_slice(FILE_MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Appends one record's bytes to `out`. `None` if the topic is longer
/// than 65535 bytes or the record larger than a reader accepts (neither
/// happens with what a bus delivers).
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    timestamp_ns: u64,
    sequence: u64,
    producer: u32,
    topic: &str,
    payload: &[u8],
) -> Option<()> {
    let topic_len = u16::try_from(topic.len()).ok()?;
    let payload_len = u32::try_from(payload.len()).ok()?;
    let body_len = u32::try_from(BODY_FIXED + topic.len() + payload.len()).ok()?;
    if body_len > MAX_BODY {
        return None;
    }
    out.extend_from_slice(RECORD_MAGIC);
    let start = out.len();
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&timestamp_ns.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&producer.to_le_bytes());
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&topic_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(())
}

/// What [`Reader::next_event`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// A good record.
    Event(Event),
    /// The end of the file.
    End,
}

/// Reads a binary recording: the header first ([`Reader::open`]), then the
/// records one by one, counting torn and corrupt ones.
pub(crate) struct Reader<R> {
    input: R,
    /// Bytes read but not consumed yet.
    buf: Vec<u8>,
    /// Where the unconsumed bytes start in `buf`.
    at: usize,
    eof: bool,
    /// Records skipped because their checksum, marker or lengths were
    /// wrong (or bytes between records that were no record at all).
    pub corrupt: u64,
    /// 1 if the file ends inside a record (a crash while appending).
    pub torn: u64,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    pub(crate) fn open(mut input: R) -> Result<(Header, Reader<R>), FormatError> {
        let mut fixed = [0u8; 16];
        read_exact_or(&mut input, &mut fixed, FormatError::NotARecording)?;
        if &fixed[..8] != FILE_MAGIC {
            return Err(FormatError::NotARecording);
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if version != VERSION {
            return Err(FormatError::Version(version));
        }
        let json_len = u32::from_le_bytes(fixed[12..16].try_into().expect("4 bytes"));
        if json_len > MAX_HEADER_JSON {
            return Err(FormatError::BadHeader(format!(
                "header length {json_len} is too large"
            )));
        }
        let mut rest = vec![0u8; json_len as usize + 4];
        read_exact_or(
            &mut input,
            &mut rest,
            FormatError::BadHeader("the file ends inside the header".into()),
        )?;
        let (json, crc) = rest.split_at(json_len as usize);
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&fixed);
        hasher.update(json);
        if hasher.finalize() != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
            return Err(FormatError::BadHeader("checksum mismatch".into()));
        }
        let header: Header = serde_json::from_slice(json)
            .map_err(|e| FormatError::BadHeader(format!("bad JSON: {e}")))?;
        Ok((
            header,
            Reader {
                input,
                buf: Vec::new(),
                at: 0,
                eof: false,
                corrupt: 0,
                torn: 0,
            },
        ))
    }

    /// Makes at least `n` unconsumed bytes available, unless the file
    /// ends first; answers how many are.
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.at > 0 && self.at >= self.buf.len() / 2 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        while self.buf.len() - self.at < n && !self.eof {
            let want = (n - (self.buf.len() - self.at)).max(64 * 1024);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let got = loop {
                match self.input.read(&mut self.buf[old..]) {
                    Ok(k) => break k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(old + got);
            if got == 0 {
                self.eof = true;
            }
        }
        Ok(self.buf.len() - self.at)
    }

    /// The next good record, or the end. Damaged records are counted
    /// (`corrupt`, `torn`) and skipped.
    pub(crate) fn next_event(&mut self) -> io::Result<Next> {
        let mut in_damage = false;
        loop {
            let avail = self.fill(8)?;
            if avail == 0 {
                return Ok(Next::End);
            }
            if avail < 8 {
                // A few bytes of a record that never got its length.
                self.count_tail(in_damage);
                return Ok(Next::End);
            }
            let head = &self.buf[self.at..self.at + 8];
            let body_len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
            if &head[..4] != RECORD_MAGIC || body_len > MAX_BODY || (body_len as usize) < BODY_FIXED
            {
                self.skip_damage(&mut in_damage);
                continue;
            }
            let total = 8 + body_len as usize + 4;
            if self.fill(total)? < total {
                // The file ends inside this record: torn by a crash, unless
                // a later marker shows it is damage in the middle.
                if self.later_marker() {
                    self.skip_damage(&mut in_damage);
                    continue;
                }
                self.count_tail(in_damage);
                return Ok(Next::End);
            }
            let rec = &self.buf[self.at..self.at + total];
            let crc = u32::from_le_bytes(rec[total - 4..].try_into().expect("4 bytes"));
            match (crc32fast::hash(&rec[4..total - 4]) == crc)
                .then(|| decode_body(&rec[8..total - 4]))
                .flatten()
            {
                Some(event) => {
                    self.at += total;
                    return Ok(Next::Event(event));
                }
                None => self.skip_damage(&mut in_damage),
            }
        }
    }

    /// Counts damage once per damaged stretch and moves one byte on, to
    /// look for the next record marker.
    fn skip_damage(&mut self, in_damage: &mut bool) {
        if !*in_damage {
            self.corrupt += 1;
            *in_damage = true;
        }
        let from = self.at + 1;
        let end = self.buf.len();
        self.at = self.buf[from..end]
            .windows(4)
            .position(|w| w == RECORD_MAGIC)
            .map_or(end.saturating_sub(3).max(from), |i| from + i);
    }

    /// Whether a record marker appears after the start of the record at
    /// `self.at`, among the bytes available (only looked at when the file
    /// ends before that record does).
    fn later_marker(&self) -> bool {
        self.buf[self.at + 1..]
            .windows(4)
            .any(|w| w == RECORD_MAGIC)
    }

    /// The file ends inside a record: torn (or, right after damage, part
    /// of the same damaged stretch).
    fn count_tail(&mut self, in_damage: bool) {
        if !in_damage {
            self.torn += 1;
        }
        self.at = self.buf.len();
    }
}

fn read_exact_or<R: Read>(
    input: &mut R,
    buf: &mut [u8],
    short: FormatError,
) -> Result<(), FormatError> {
    match input.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(short),
        Err(e) => Err(FormatError::Io(e)),
    }
}

/// A body whose checksum matched: its fields, if its lengths agree and
/// its topic is UTF-8.
fn decode_body(body: &[u8]) -> Option<Event> {
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().expect("4 bytes"));
    let timestamp_ns = u64_at(0);
    let sequence = u64_at(8);
    let producer = u32_at(16);
    let payload_len = u32_at(20) as usize;
    let topic_len = u16::from_le_bytes([body[24], body[25]]) as usize;
    if BODY_FIXED + topic_len + payload_len != body.len() {
        return None;
    }
    let topic = std::str::from_utf8(&body[BODY_FIXED..BODY_FIXED + topic_len]).ok()?;
    Some(Event {
        timestamp_ns,
        sequence,
        producer,
        topic: topic.to_owned(),
        payload: body[BODY_FIXED + topic_len..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            bus: "quotes".into(),
            patterns: vec!["md.**".into()],
            start_ns: 1_700_000_000_000_000_000,
            start: "2023-11-14T22:13:20Z".into(),
            policy: "block".into(),
            lossy: false,
            writer: "shm-bus test".into(),
        }
    }

    fn events() -> Vec<Event> {
        (0..20u64)
            .map(|i| Event {
                timestamp_ns: 1_000 + i * 10,
                sequence: i,
                producer: (i % 3) as u32,
                topic: format!("md.t{}", i % 4),
                payload: vec![i as u8; (i * 37 % 300) as usize],
            })
            .collect()
    }

    fn file(events: &[Event]) -> (Vec<u8>, Vec<usize>) {
        let mut out = encode_header(&header());
        let mut starts = Vec::new();
        for e in events {
            starts.push(out.len());
            encode_record(
                &mut out,
                e.timestamp_ns,
                e.sequence,
                e.producer,
                &e.topic,
                &e.payload,
            )
            .unwrap();
        }
        (out, starts)
    }

    fn read_all(bytes: &[u8]) -> (Vec<Event>, u64, u64) {
        let (h, mut r) = Reader::open(bytes).unwrap();
        assert_eq!(h, header());
        let mut got = Vec::new();
        while let Next::Event(e) = r.next_event().unwrap() {
            got.push(e);
        }
        (got, r.corrupt, r.torn)
    }

    #[test]
    fn round_trip() {
        let evs = events();
        let (bytes, _) = file(&evs);
        assert_eq!(read_all(&bytes), (evs, 0, 0));
    }

    #[test]
    fn a_tear_anywhere_in_the_last_record_keeps_every_record_before() {
        let evs = events();
        let (bytes, starts) = file(&evs);
        let last = *starts.last().unwrap();
        for cut in last + 1..bytes.len() {
            let (got, corrupt, torn) = read_all(&bytes[..cut]);
            assert_eq!(got, evs[..evs.len() - 1], "cut at {cut}");
            assert_eq!((corrupt, torn), (0, 1), "cut at {cut}");
        }
        // Cut exactly between records: nothing torn.
        assert_eq!(
            read_all(&bytes[..last]),
            (evs[..evs.len() - 1].to_vec(), 0, 0)
        );
    }

    #[test]
    fn a_damaged_record_is_skipped_and_counted() {
        let evs = events();
        let (mut bytes, starts) = file(&evs);
        // A flipped payload byte, a flipped length, a flipped marker.
        for (k, offset) in [(3, 30), (7, 5), (11, 1)] {
            bytes[starts[k] + offset] ^= 0x55;
        }
        let (got, corrupt, torn) = read_all(&bytes);
        let want: Vec<Event> = evs
            .iter()
            .enumerate()
            .filter(|(i, _)| ![3, 7, 11].contains(i))
            .map(|(_, e)| e.clone())
            .collect();
        assert_eq!((got, corrupt, torn), (want, 3, 0));
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let (bytes, _) = file(&events());
        assert!(matches!(
            Reader::open(&b"hello world, not a recording"[..]),
            Err(FormatError::NotARecording)
        ));
        assert!(matches!(
            Reader::open(&bytes[..5]),
            Err(FormatError::NotARecording)
        ));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(matches!(
            Reader::open(&v2[..]),
            Err(FormatError::Version(2))
        ));
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        assert!(matches!(
            Reader::open(&bad[..]),
            Err(FormatError::BadHeader(_))
        ));
        assert!(matches!(
            Reader::open(&bytes[..40]),
            Err(FormatError::BadHeader(_))
        ));
    }
}
