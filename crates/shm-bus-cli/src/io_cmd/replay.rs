//! `shm-bus replay`: publish a recording (`shm-bus record`) into a bus
//! again, with its topics, in order, keeping the time between events
//! (scaled by `--speed`) or as fast as the bus takes them (`--max-rate`).
//!
//! Both formats are read (the binary one by its `SHMBUSRC` start, JSON
//! Lines by its header line). Records torn by a crash at the end of the
//! file, and damaged ones, are skipped and counted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{BusError, PublishError, Publisher, TopicId};

use super::recording::{self, Event, FormatError, Header, Next};
use super::{WAIT_SLICE, attach_checked, per_sec, secs};
use crate::bus_cmd::check_name;
use crate::common::BadInput;
use crate::format::human_bytes;
use crate::os::{catch_interrupts, interrupted, sleep_until};

/// Options of `replay`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ReplayArgs {
    /// A recording made by `shm-bus record` (binary or JSON Lines).
    pub file: PathBuf,
    /// The bus to publish into (it must exist, unless --create).
    pub bus: String,
    /// Play the recording this many times faster (0.5: half speed).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Publish as fast as the bus takes the events, ignoring the recorded
    /// times.
    #[arg(long, conflicts_with = "speed")]
    pub max_rate: bool,
    /// Create the bus with default settings if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// Publisher name shown by `inspect` and `top`.
    #[arg(long, default_value = "shm-bus replay")]
    pub name: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A recording being read, in either format.
enum Source {
    Binary(recording::Reader<BufReader<File>>),
    Jsonl(JsonlReader),
}

impl Source {
    fn next_event(&mut self) -> io::Result<Next> {
        match self {
            Source::Binary(r) => r.next_event(),
            Source::Jsonl(r) => r.next_event(),
        }
    }

    /// (corrupt, torn) records skipped so far.
    fn skipped(&self) -> (u64, u64) {
        match self {
            Source::Binary(r) => (r.corrupt, r.torn),
            Source::Jsonl(r) => (r.corrupt, r.torn),
        }
    }
}

pub(crate) fn replay(a: &ReplayArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    if !a.speed.is_finite() || a.speed <= 0.0 {
        return Err(BadInput(format!(
            "--speed {} must be a positive number (2: twice as fast, 0.5: half speed)",
            a.speed
        ))
        .into());
    }
    let (header, mut source) = open(&a.file)?;
    let bus = attach_checked(&a.bus, a.create, |_| Ok(()))?;
    let mut publisher = bus
        .publisher(&a.name)
        .with_context(|| format!("cannot attach a publisher to bus `{}`", a.bus))?;
    catch_interrupts();

    let mut ids: HashMap<String, TopicId> = HashMap::new();
    let (mut replayed, mut bytes, mut full_waits) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut first_ts: Option<u64> = None;
    let mut stopped = false;
    while !interrupted() {
        let event = match source.next_event() {
            Ok(Next::Event(e)) => e,
            Ok(Next::End) => break,
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot read {}", a.file.display()))
                );
            }
        };
        if !a.max_rate {
            let t0 = *first_ts.get_or_insert(event.timestamp_ns);
            let offset = event.timestamp_ns.saturating_sub(t0) as f64 / a.speed;
            if !sleep_until(start + Duration::from_secs_f64(offset / 1e9), WAIT_SLICE) {
                stopped = true;
                break;
            }
        }
        let id = match ids.get(&event.topic) {
            Some(&id) => id,
            None => {
                let id = publisher
                    .topic_id(&event.topic)
                    .map_err(|e| topic_error(e, &event.topic, replayed + 1))?;
                ids.insert(event.topic.clone(), id);
                id
            }
        };
        match publish(&mut publisher, id, &event, &mut full_waits) {
            Ok(true) => {}
            Ok(false) => {
                stopped = true;
                break;
            }
            Err(PublishError::BusRemoved) => {
                return Err(anyhow!(
                    "replay: bus `{}` was removed (`shm-bus remove`) while replaying; event {} \
                     and later ones were not published",
                    a.bus,
                    replayed + 1
                ));
            }
            Err(e @ PublishError::PayloadTooLarge { .. }) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "event {} of {} ({} bytes on `{}`) does not fit bus `{}`; create it with a \
                     larger --ring-bytes",
                    replayed + 1,
                    a.file.display(),
                    event.payload.len(),
                    event.topic,
                    a.bus
                )));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("cannot publish")),
        }
        replayed += 1;
        bytes += event.payload.len() as u64;
    }
    let seconds = start.elapsed();
    let (corrupt, torn) = source.skipped();
    if corrupt + torn > 0 {
        eprintln!(
            "shm-bus: replay: {}: skipped {corrupt} damaged record(s) and {torn} torn record(s) \
             at the end (a crash while recording leaves one)",
            a.file.display()
        );
    }
    let out = json!({
        "file": a.file.display().to_string(),
        "bus": a.bus,
        "replayed": replayed,
        "bytes": bytes,
        "corrupt": corrupt,
        "torn": torn,
        "full_waits": full_waits,
        "seconds": secs(seconds),
        "rate": per_sec(replayed, seconds),
        "interrupted": interrupted() || stopped,
        "header": serde_json::to_value(&header)?,
    });
    let mut stdout = io::stdout().lock();
    if a.json {
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(
            stdout,
            "replayed {replayed} event(s) ({}) from {} (recorded on `{}` at {}) into `{}` in \
             {:.3} s ({:.0} events/s); {corrupt} damaged, {torn} torn record(s) skipped",
            human_bytes(bytes),
            a.file.display(),
            header.bus,
            header.start,
            a.bus,
            seconds.as_secs_f64(),
            out["rate"].as_f64().unwrap_or(0.0),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens a recording in either format and reads its header.
fn open(path: &Path) -> Result<(Header, Source)> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let first = input
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?
        .first()
        .copied();
    let bad = |e: FormatError| -> anyhow::Error {
        match e {
            FormatError::Io(e) => {
                anyhow::Error::new(e).context(format!("cannot read {}", path.display()))
            }
            e => BadInput(format!("{}: {e}", path.display())).into(),
        }
    };
    if first == Some(b'{') {
        let (header, r) = JsonlReader::open(input).map_err(bad)?;
        Ok((header, Source::Jsonl(r)))
    } else {
        let (header, r) = recording::Reader::open(input).map_err(bad)?;
        Ok((header, Source::Binary(r)))
    }
}

/// Publishes one event, waiting for space in slices so that Ctrl-C is
/// noticed; `Ok(false)` if interrupted while waiting.
fn publish(
    publisher: &mut Publisher,
    id: TopicId,
    event: &Event,
    full_waits: &mut u64,
) -> Result<bool, PublishError> {
    match publisher.try_publish(&id, &event.payload) {
        Ok(_) => return Ok(true),
        Err(PublishError::Full) => *full_waits += 1,
        Err(e) => return Err(e),
    }
    loop {
        match publisher.publish_timeout(&id, &event.payload, WAIT_SLICE) {
            Ok(_) => return Ok(true),
            Err(PublishError::Full) if interrupted() => return Ok(false),
            Err(PublishError::Full) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A topic the bus refuses (a damaged JSON Lines recording, or a full
/// topic table).
fn topic_error(e: BusError, topic: &str, n: u64) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("event {n}: cannot publish on topic `{topic}`"))
}

/// Reads a JSON Lines recording: a header line, then one event per line.
/// A last line without its newline that does not parse is torn; any
/// other line that does not parse as an event is corrupt.
struct JsonlReader {
    input: BufReader<File>,
    line: Vec<u8>,
    corrupt: u64,
    torn: u64,
}

impl JsonlReader {
    fn open(mut input: BufReader<File>) -> Result<(Header, JsonlReader), FormatError> {
        let mut line = Vec::new();
        input.read_until(b'\n', &mut line)?;
        let v: Value = serde_json::from_slice(&line).map_err(|_| FormatError::NotARecording)?;
        if v["format"] != "shm-bus-record" {
            return Err(FormatError::NotARecording);
        }
        let version = v["version"].as_u64().unwrap_or(0);
        if version != u64::from(recording::VERSION) {
            return Err(FormatError::Version(
                u16::try_from(version).unwrap_or(u16::MAX),
            ));
        }
        let header: Header = serde_json::from_value(v)
            .map_err(|e| FormatError::BadHeader(format!("bad JSON: {e}")))?;
        Ok((
            header,
            JsonlReader {
                input,
                line,
                corrupt: 0,
                torn: 0,
            },
        ))
    }

    fn next_event(&mut self) -> io::Result<Next> {
        loop {
            self.line.clear();
            // A damaged file may have no newline for a long way: read at
            // most what a record can be.
            let n = (&mut self.input)
                .take(2 << 30)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(Next::End);
            }
            let complete = self.line.last() == Some(&b'\n');
            match parse_event(&self.line) {
                Some(e) => return Ok(Next::Event(e)),
                None if !complete => {
                    self.torn += 1;
                    return Ok(Next::End);
                }
                None => self.corrupt += 1,
            }
        }
    }
}

/// One JSON Lines event, if the line is one.
fn parse_event(line: &[u8]) -> Option<Event> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let payload = match (v["payload"].as_str(), v["payload_hex"].as_str()) {
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(h)) => unhex(h)?,
        _ => return None,
    };
    if v["size"].as_u64() != Some(payload.len() as u64) {
        return None;
    }
    Some(Event {
        timestamp_ns: v["timestamp_ns"].as_u64()?,
        sequence: v["sequence"].as_u64()?,
        producer: u32::try_from(v["producer"].as_u64()?).ok()?,
        topic: v["topic"].as_str()?.to_owned(),
        payload,
    })
}

fn unhex(h: &str) -> Option<Vec<u8>> {
    if h.len() % 2 != 0 {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_events_parse_and_check_their_size() {
        let e = parse_event(
            br#"{"timestamp_ns":5,"topic":"a.b","producer":1,"sequence":9,"size":3,"payload_hex":"00ff10"}"#,
        )
        .unwrap();
        assert_eq!(e.payload, vec![0, 0xff, 0x10]);
        assert_eq!((e.timestamp_ns, e.sequence, e.producer), (5, 9, 1));
        let text = parse_event(
            br#"{"timestamp_ns":5,"topic":"a","producer":0,"sequence":0,"size":2,"payload":"hi"}"#,
        )
        .unwrap();
        assert_eq!(text.payload, b"hi");
        // Wrong size, odd hex, both payload fields, not JSON.
        for bad in [
            &br#"{"timestamp_ns":5,"topic":"a","producer":0,"sequence":0,"size":3,"payload":"hi"}"#[..],
            br#"{"timestamp_ns":5,"topic":"a","producer":0,"sequence":0,"size":1,"payload_hex":"0"}"#,
            br#"{"timestamp_ns":5,"topic":"a","producer":0,"sequence":0,"size":2,"payload":"hi","payload_hex":"0000"}"#,
            b"{\"timestamp_ns\":5,\"top",
        ] {
            assert!(parse_event(bad).is_none());
        }
    }
}
