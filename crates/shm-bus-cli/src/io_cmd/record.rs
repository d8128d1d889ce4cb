//! `shm-bus record`: write the events matching some patterns to a file
//! (the binary format of docs/RECORDING.md, or JSON Lines), for
//! `shm-bus replay`.
//!
//! The recorder is a subscriber. A writer thread owns the file; the
//! receive loop encodes events into batches and hands them over through a
//! bounded channel. Without `--lossy` it waits when the channel is full,
//! so on a block-policy bus a slow disk holds the producers back like any
//! slow subscriber; with `--lossy` it drops the batch instead and counts
//! the events dropped, so the producers never wait for the file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{Policy, RecvError, Sample, Start};

use super::recording::{self, Header};
use super::{WAIT_SLICE, bus_removed, check_patterns, per_sec, secs, subscribe, warn_near_misses};
use crate::bus_cmd::check_name;
use crate::common::{self, BadInput};
use crate::format::human_bytes;
use crate::os::{catch_interrupts, interrupted};
use crate::time::{now_ns, rfc3339};

/// File formats of `record`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RecordFormat {
    /// The checksummed binary format of docs/RECORDING.md (default).
    Binary,
    /// JSON Lines: a header line, then one object per event.
    Jsonl,
}

/// Options of `record`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct RecordArgs {
    /// The bus name (it must exist, unless --create).
    pub bus: String,
    /// Patterns to record.
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// The file to write (refused if it exists, unless --force).
    #[arg(short = 'o', long = "output", required = true)]
    pub output: PathBuf,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this long (seconds, or 500ms, 30s, 10m, 1h).
    #[arg(long, value_parser = common::parse_duration)]
    pub duration: Option<Duration>,
    /// File format.
    #[arg(long, value_enum, default_value = "binary")]
    pub format: RecordFormat,
    /// Never hold producers back: when the file cannot keep up, skip
    /// events and count them (for production buses under the block
    /// policy).
    #[arg(long)]
    pub lossy: bool,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Create the bus with default settings if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// Subscriber name shown by `inspect` and `top`.
    #[arg(long, default_value = "shm-bus record")]
    pub name: String,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Encoded events handed to the writer thread at a time (about).
const BATCH_BYTES: usize = 64 * 1024;
/// Batches the channel holds before the recorder waits (or, with
/// `--lossy`, drops): up to 16 MiB in flight.
const BATCHES_IN_FLIGHT: usize = 256;

/// Encoded events not yet handed to the writer.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    events: u64,
    payload_bytes: u64,
}

/// What the receive loop has done.
#[derive(Default)]
struct Tally {
    recorded: u64,
    bytes: u64,
    dropped: u64,
    lagged: u64,
    too_large: u64,
}

pub(crate) fn record(a: &RecordArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    check_patterns(&a.patterns)?;
    if a.count == Some(0) {
        return Err(BadInput("--count must be at least 1".into()).into());
    }
    warn_near_misses("record", "pattern", a.patterns.iter().map(String::as_str));
    if !a.force && a.output.exists() {
        return Err(exists(&a.output));
    }
    let bus = common::attach(&a.bus, a.create)?;
    let file = create_output(&a.output, a.force)?;
    let policy = bus.config().policy;
    let mut sub = subscribe(&bus, &a.name, &a.patterns, Start::Now)?;
    catch_interrupts();

    let header = Header {
        bus: a.bus.clone(),
        patterns: a.patterns.clone(),
        start_ns: now_ns(),
        start: rfc3339(std::time::SystemTime::now()),
        policy: policy.as_str().to_owned(),
        lossy: a.lossy,
        writer: format!("shm-bus {}", env!("CARGO_PKG_VERSION")),
    };
    let mut head = Vec::new();
    match a.format {
        RecordFormat::Binary => head.extend_from_slice(&recording::encode_header(&header)),
        RecordFormat::Jsonl => {
            let mut v = serde_json::to_value(&header)?;
            v["format"] = Value::from("shm-bus-record");
            v["version"] = Value::from(recording::VERSION);
            head.extend_from_slice(v.to_string().as_bytes());
            head.push(b'\n');
        }
    }
    let (tx, writer) = spawn_writer(file, head);
    eprintln!(
        "shm-bus: record: recording `{}` ({}) to {}{}",
        a.bus,
        a.patterns.join(" "),
        a.output.display(),
        match (policy, a.lossy) {
            (Policy::Block, false) => {
                "; note: this recorder is a subscriber of a block-policy bus, so it holds \
                 producers back if the file cannot keep up (--lossy skips and counts events \
                 instead)"
            }
            (Policy::Block, true) =>
                "; --lossy: events are skipped (and counted) when the file cannot keep up",
            _ => "",
        }
    );

    let start = Instant::now();
    let deadline = a.duration.map(|d| start + d);
    let mut t = Tally::default();
    let mut batch = Batch::default();
    let mut removed = false;
    let mut write_failed = false;
    loop {
        if a.count.is_some_and(|n| t.recorded + t.dropped >= n) || interrupted() {
            break;
        }
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(WAIT_SLICE)
            }
            None => WAIT_SLICE,
        };
        let idle = match sub.recv_timeout(wait) {
            Ok(sample) => {
                if encode(&sample, a.format, &mut batch.bytes) {
                    batch.events += 1;
                    batch.payload_bytes += sample.len() as u64;
                } else {
                    t.too_large += 1;
                }
                false
            }
            Err(RecvError::Timeout | RecvError::Empty) => true,
            Err(RecvError::Lagged(n)) => {
                t.lagged += n;
                false
            }
            Err(RecvError::BusRemoved) => {
                removed = true;
                true
            }
            Err(e) => {
                eprintln!("shm-bus: record: {e} (that producer's ring is skipped from now on)");
                false
            }
        };
        if (batch.bytes.len() >= BATCH_BYTES || (idle && batch.events > 0))
            && !hand_over(&tx, &mut batch, a.lossy, &mut t)
        {
            write_failed = true;
            break;
        }
        if removed {
            break;
        }
    }
    if !write_failed && batch.events > 0 {
        hand_over(&tx, &mut batch, false, &mut t);
    }
    drop(tx);
    let seconds = start.elapsed();
    let written = writer
        .join()
        .map_err(|_| anyhow!("the file writer panicked"))?
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    let out = json!({
        "file": a.output.display().to_string(),
        "format": match a.format { RecordFormat::Binary => "binary", RecordFormat::Jsonl => "jsonl" },
        "bus": a.bus,
        "recorded": t.recorded,
        "payload_bytes": t.bytes,
        "file_bytes": written,
        "dropped": t.dropped,
        "lagged": t.lagged,
        "too_large": t.too_large,
        "seconds": secs(seconds),
        "rate": per_sec(t.recorded, seconds),
        "interrupted": interrupted(),
        "bus_removed": removed,
    });
    let mut stdout = io::stdout().lock();
    if a.json {
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(
            stdout,
            "recorded {} event(s) ({} of payload, file {}) from `{}` to {} in {:.3} s \
             ({:.0} events/s); {} dropped (--lossy), {} lagged",
            t.recorded,
            human_bytes(t.bytes),
            human_bytes(written),
            a.bus,
            a.output.display(),
            seconds.as_secs_f64(),
            out["rate"].as_f64().unwrap_or(0.0),
            t.dropped,
            t.lagged,
        )?;
    }
    if removed {
        return Err(bus_removed(&a.bus, "record"));
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates the output file: refused if it exists, unless `force`.
fn create_output(path: &Path, force: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}

/// The error of an output file that exists.
fn exists(path: &Path) -> anyhow::Error {
    anyhow!(
        "{} exists: choose another file, or pass --force to overwrite it",
        path.display()
    )
}

/// The writer thread: writes `head`, then every batch it receives, then
/// flushes and syncs the file. Answers the bytes written.
fn spawn_writer(file: File, head: Vec<u8>) -> (SyncSender<Vec<u8>>, JoinHandle<io::Result<u64>>) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(BATCHES_IN_FLIGHT);
    let handle = std::thread::spawn(move || {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&head)?;
        let mut written = head.len() as u64;
        for batch in rx {
            out.write_all(&batch)?;
            written += batch.len() as u64;
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        match file.sync_data() {
            // A pipe or a device (`-o /dev/stdout`) cannot be synced.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            r => r?,
        }
        Ok(written)
    });
    (tx, handle)
}

/// Gives the batch to the writer thread: waiting for room, or with
/// `lossy` dropping it (and counting its events) when the writer is
/// behind. `false` if the writer has stopped (a write failed).
fn hand_over(tx: &SyncSender<Vec<u8>>, batch: &mut Batch, lossy: bool, t: &mut Tally) -> bool {
    let Batch {
        bytes,
        events,
        payload_bytes,
    } = std::mem::take(batch);
    let sent = if lossy {
        match tx.try_send(bytes) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Err(()),
        }
    } else {
        tx.send(bytes).map(|()| true).map_err(|_| ())
    };
    match sent {
        Ok(true) => {
            t.recorded += events;
            t.bytes += payload_bytes;
            true
        }
        Ok(false) => {
            t.dropped += events;
            true
        }
        Err(()) => false,
    }
}

/// Appends one event in `format` to `out`; `false` if it cannot be
/// recorded (a topic longer than 65535 bytes: none on a bus).
fn encode(s: &Sample<'_>, format: RecordFormat, out: &mut Vec<u8>) -> bool {
    match format {
        RecordFormat::Binary => recording::encode_record(
            out,
            s.timestamp_ns(),
            s.sequence(),
            s.producer(),
            s.topic(),
            s.payload(),
        )
        .is_some(),
        RecordFormat::Jsonl => {
            let mut v = json!({
                "timestamp_ns": s.timestamp_ns(),
                "topic": s.topic(),
                "producer": s.producer(),
                "sequence": s.sequence(),
                "size": s.len(),
            });
            let p = s.payload();
            match std::str::from_utf8(p) {
                Ok(text) => v["payload"] = Value::from(text),
                Err(_) => {
                    v["payload_hex"] = Value::from(hex(p));
                }
            }
            out.extend_from_slice(v.to_string().as_bytes());
            out.push(b'\n');
            true
        }
    }
}

/// Lowercase hex digits of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut h = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        h.push(DIGITS[usize::from(b >> 4)] as char);
        h.push(DIGITS[usize::from(b & 15)] as char);
    }
    h
}
