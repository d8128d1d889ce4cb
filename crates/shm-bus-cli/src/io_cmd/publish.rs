//! `shm-bus publish`: generated, fixed or line-by-line payloads, at a
//! rate, waiting out a full ring in slices so Ctrl-C is noticed (and, after
//! a second of waiting, saying once which subscriber holds it back).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::json;
use shm_bus_core::{Bus, BusError, MAX_TOPIC_LEN, MAX_TOPICS, PublishError, Publisher, TopicId};
use shm_bus_topic::Topic;

use super::{WAIT_SLICE, attach_checked, per_sec, secs, warn_near_misses};
use crate::PublishArgs;
use crate::bus_cmd::check_name;
use crate::common::{self, BadInput};
use crate::format::human_bytes;
use crate::os::{catch_interrupts, interrupted, readable, sleep_until};
use crate::payload::{self, MIN_SIZE, Stamp, TopicCounter};

/// How long a publish without `--timeout` waits for space before saying
/// which subscriber it is waiting for.
const SAY_WAITING_AFTER: Duration = Duration::from_secs(1);

/// Where `publish` gets its payloads.
enum Source {
    /// Generated, verifiable payloads of this size.
    Generated(usize),
    /// The same bytes every time.
    Data(Vec<u8>),
    /// One message per line of standard input.
    Stdin(BufReader<File>),
}

/// What `publish` did.
#[derive(Default)]
struct Published {
    published: u64,
    bytes: u64,
    full_waits: u64,
    interrupted: bool,
    /// Whether the "waiting for subscriber" note was printed (once a run).
    said_waiting: bool,
}

/// Why a publish did not happen.
enum SendError {
    /// `--timeout` ran out with the ring still full.
    Full(Duration),
    /// Ctrl-C while waiting for space.
    Interrupted,
    /// The bus was removed (`shm-bus remove`).
    Removed,
    /// Anything else.
    Other(PublishError),
}

pub(crate) fn publish(a: &PublishArgs) -> Result<ExitCode> {
    // Everything about the arguments is checked before the bus is touched.
    check_name(&a.bus)?;
    if a.topics == 0 || a.topics > u64::from(MAX_TOPICS) {
        return Err(BadInput(format!(
            "--topics must be 1..={MAX_TOPICS}, not {}",
            a.topics
        ))
        .into());
    }
    if a.topics > 1 && !a.topic.contains("{i}") {
        return Err(BadInput(format!(
            "--topics {} needs `{{i}}` in TOPIC (e.g. `sensor.{{i}}.temp`)",
            a.topics
        ))
        .into());
    }
    let topics: Vec<String> = (0..a.topics)
        .map(|k| a.topic.replace("{i}", &k.to_string()))
        .collect();
    for t in &topics {
        let parsed = Topic::parse(t).map_err(|e| BadInput(format!("invalid topic `{t}`: {e}")))?;
        if !parsed.is_exact() {
            return Err(BadInput(format!(
                "`{t}` is a pattern: publish needs an exact topic (wildcards, ranges, \
                 regexes and `**` are for subscribers)"
            ))
            .into());
        }
        if parsed.as_str().len() > MAX_TOPIC_LEN {
            return Err(BadInput(format!(
                "topic `{t}` is {} bytes long; at most {MAX_TOPIC_LEN} are allowed",
                parsed.as_str().len()
            ))
            .into());
        }
    }
    let mut source = match (&a.data, a.stdin) {
        (Some(d), _) => Source::Data(d.as_bytes().to_vec()),
        (None, true) => {
            let fd = io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .context("cannot use standard input")?;
            Source::Stdin(BufReader::new(File::from(fd)))
        }
        (None, false) => {
            if a.size < MIN_SIZE {
                return Err(BadInput(format!(
                    "--size {} is too small: generated payloads carry a {MIN_SIZE}-byte \
                     header (use --size {MIN_SIZE} or more, or --data)",
                    a.size
                ))
                .into());
            }
            Source::Generated(a.size)
        }
    };
    let fixed_len = match &source {
        Source::Generated(n) => Some(*n),
        Source::Data(d) => Some(d.len()),
        Source::Stdin(_) => None,
    };
    if let Some(rate) = a.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(BadInput(format!("--rate {rate} must be a positive number")).into());
        }
    }
    warn_near_misses("publish", "topic", topics.iter().map(String::as_str));
    let timeout = a
        .timeout
        .map(|t| common::seconds("timeout", t))
        .transpose()?;
    let k = a.topics;
    let bus = attach_checked(&a.bus, a.create, |c| {
        if let Some(len) = fixed_len.filter(|&n| n > c.max_payload()) {
            return Err(BadInput(format!(
                "payload of {len} bytes exceeds the maximum of {} for bus `{}` (ring {} bytes)",
                c.max_payload(),
                a.bus,
                c.ring_bytes
            )));
        }
        if k > u64::from(c.max_topics) {
            return Err(BadInput(format!(
                "--topics {k} exceeds the {} topics bus `{}` can hold",
                c.max_topics, a.bus
            )));
        }
        Ok(())
    })?;
    let mut publisher = bus
        .publisher(&a.name)
        .with_context(|| format!("cannot attach a publisher to bus `{}`", a.bus))?;
    let ids: Vec<TopicId> = topics
        .iter()
        .map(|t| publisher.topic_id(t))
        .collect::<Result<_, BusError>>()
        .with_context(|| format!("cannot intern the topics on bus `{}`", a.bus))?;
    catch_interrupts();

    let producer = publisher.id();
    // Generated payloads carry the record's own sequence number (the
    // slot's next one plus the index: this publisher owns the slot), so a
    // consumer sees one gap-free stream per producer id even across
    // successive `publish` runs that reuse the slot.
    let first_seq = bus
        .info()
        .producers
        .iter()
        .find(|p| p.id == producer)
        .map_or(0, |p| p.next_seq);
    // Per-topic numbering for generated payloads (see `payload`); the run
    // tag tells successive runs on the same slot apart.
    let run = first_seq as u32;
    let mut topic_seqs = TopicCounter::new(k as usize);
    let mut done = Published::default();
    let mut line = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let start = Instant::now();
    let mut i: u64 = 0;
    loop {
        if interrupted() {
            done.interrupted = true;
            break;
        }
        if let Source::Stdin(input) = &mut source {
            match read_line(input, &mut line) {
                Ok(LineRead::Line) => {}
                Ok(LineRead::End) => break,
                Ok(LineRead::Interrupted) => {
                    done.interrupted = true;
                    break;
                }
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context("cannot read standard input"));
                    break;
                }
            }
        } else if i >= a.count {
            break;
        }
        if let Some(rate) = a.rate {
            // Absolute deadlines: late messages go out at once, so the
            // average rate holds.
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if !sleep_until(due, WAIT_SLICE) {
                done.interrupted = true;
                break;
            }
        }
        let index = (i % k) as usize;
        let topic = ids[index];
        let mut to = Target {
            bus: &bus,
            publisher: &mut publisher,
            topic,
            timeout,
            done: &mut done,
        };
        let (len, result) = match &source {
            Source::Generated(size) => {
                let stamp = Stamp {
                    producer,
                    seq: first_seq + i,
                    topic_seq: topic_seqs.next(index),
                    run,
                };
                (*size, send(&mut to, *size, |buf| payload::fill(buf, stamp)))
            }
            Source::Data(d) => (
                d.len(),
                send(&mut to, d.len(), |buf| buf.copy_from_slice(d)),
            ),
            Source::Stdin(_) => (
                line.len(),
                send(&mut to, line.len(), |buf| buf.copy_from_slice(&line)),
            ),
        };
        match result {
            Ok(()) => {
                done.published += 1;
                done.bytes += len as u64;
            }
            Err(SendError::Interrupted) => {
                done.interrupted = true;
                break;
            }
            Err(SendError::Full(t)) => {
                let who = match slowest_subscriber(&bus) {
                    Some(s) => format!("{s} is not keeping up"),
                    None => "a subscriber is not keeping up".to_owned(),
                };
                failure = Some(anyhow!(
                    "ring full for {} s: {who}; see `shm-bus inspect {}`",
                    t.as_secs_f64(),
                    a.bus
                ));
                break;
            }
            Err(SendError::Removed) => {
                failure = Some(anyhow!(
                    "bus `{}` was removed (`shm-bus remove`) while publishing; \
                     message {i} and later ones were not published",
                    a.bus
                ));
                break;
            }
            Err(SendError::Other(e)) => {
                failure = Some(anyhow::Error::new(e).context(format!("message {i} not published")));
                break;
            }
        }
        i += 1;
    }
    let elapsed = start.elapsed();
    drop(publisher);

    let mut out = io::stdout().lock();
    if a.json {
        let v = json!({
            "published": done.published,
            "bytes": done.bytes,
            "seconds": secs(elapsed),
            "rate": per_sec(done.published, elapsed),
            "full_waits": done.full_waits,
            "producer": producer,
            "topics": k,
            "interrupted": done.interrupted,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "published {} message(s), {} bytes, in {:.3} s ({} msg/s); ring full {} time(s){}",
            done.published,
            done.bytes,
            elapsed.as_secs_f64(),
            per_sec(done.published, elapsed),
            done.full_waits,
            if done.interrupted {
                "; interrupted"
            } else {
                ""
            }
        )?;
    }
    out.flush()?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// What [`read_line`] got.
enum LineRead {
    /// A line, without its `\n` or `\r\n`.
    Line,
    /// End of input.
    End,
    /// Ctrl-C while waiting for input.
    Interrupted,
}

/// Reads one line of `input` into `line`, waiting for input in slices so
/// that Ctrl-C is noticed while standard input is idle (a terminal).
fn read_line(input: &mut BufReader<File>, line: &mut Vec<u8>) -> io::Result<LineRead> {
    line.clear();
    while input.buffer().is_empty() && !readable(input.get_ref().as_raw_fd(), WAIT_SLICE)? {
        if interrupted() {
            return Ok(LineRead::Interrupted);
        }
    }
    loop {
        match input.read_until(b'\n', line) {
            Ok(0) => return Ok(LineRead::End),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    Ok(LineRead::Line)
}

/// Where [`send`] publishes, and what it reports into.
struct Target<'a> {
    bus: &'a Bus,
    publisher: &'a mut Publisher,
    topic: TopicId,
    timeout: Option<Duration>,
    done: &'a mut Published,
}

/// Publishes one record of `len` bytes on `to.topic`, written in place in
/// the ring by `fill` (zero copy). When the ring is full, waits for space —
/// at most `to.timeout` — in slices short enough to notice Ctrl-C; that
/// slow path fills a local buffer and lets the publisher copy it in.
/// Without a timeout, after [`SAY_WAITING_AFTER`] of waiting it says once
/// (per run) on stderr which subscriber it waits for.
fn send(to: &mut Target<'_>, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), SendError> {
    let topic = to.topic;
    match to.publisher.try_loan(&topic, len) {
        Ok(mut loan) => {
            fill(loan.as_mut_slice());
            loan.commit();
            return Ok(());
        }
        Err(PublishError::Full) => {}
        Err(e) => return Err(send_error(e)),
    }
    to.done.full_waits += 1;
    let mut buf = vec![0; len];
    fill(&mut buf);
    let waiting_since = Instant::now();
    let deadline = to.timeout.map(|t| waiting_since + t);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            None => WAIT_SLICE,
        };
        match to.publisher.publish_timeout(&topic, &buf, slice) {
            Ok(_) => return Ok(()),
            Err(PublishError::Full) => {}
            Err(e) => return Err(send_error(e)),
        }
        if interrupted() {
            return Err(SendError::Interrupted);
        }
        if let (Some(d), Some(t)) = (deadline, to.timeout) {
            if Instant::now() >= d {
                return Err(SendError::Full(t));
            }
        }
        if to.timeout.is_none()
            && !to.done.said_waiting
            && waiting_since.elapsed() >= SAY_WAITING_AFTER
        {
            to.done.said_waiting = true;
            let who = match slowest_subscriber(to.bus) {
                Some(s) => format!("waiting for {s}"),
                None => "waiting for a subscriber to free space".to_owned(),
            };
            eprintln!(
                "shm-bus: publish: the ring is full; {who} (Ctrl-C to stop, \
                 --timeout SECS to give up instead of waiting)"
            );
        }
    }
}

fn send_error(e: PublishError) -> SendError {
    match e {
        PublishError::BusRemoved => SendError::Removed,
        e => SendError::Other(e),
    }
}

/// Whom a full ring waits for, in words: the live subscriber furthest
/// behind (`subscriber 3 (pid 1234, `shm-bus consume`), 4.0 KiB behind`),
/// or a worker group: first one with unfinished events and no live member
/// (it never moves by itself), else, when no subscriber is behind, the
/// group with the most unfinished events.
fn slowest_subscriber(bus: &Bus) -> Option<String> {
    let info = bus.info();
    let groups = bus.groups();
    let live =
        |g: &shm_bus_core::GroupInfo| g.members.iter().filter(|m| m.alive && !m.adopted).count();
    if let Some(g) = groups
        .iter()
        .find(|g| g.backlog > 0 && !g.removing && live(g) == 0)
    {
        return Some(format!(
            "worker group `{}` (no live member, {} unfinished record(s); `shm-bus group remove \
             {} {}` lets it go)",
            g.name, g.backlog, info.name, g.name
        ));
    }
    let s = info
        .subscribers
        .iter()
        .filter(|s| s.alive)
        .max_by_key(|s| s.lag_bytes);
    let group = groups
        .iter()
        .filter(|g| g.backlog > 0 && !g.removing)
        .max_by_key(|g| g.backlog);
    match (s, group) {
        (Some(s), _) if s.lag_bytes > 0 => Some(describe_subscriber(s)),
        (_, Some(g)) => Some(format!(
            "worker group `{}` ({} live member(s), {} unfinished record(s))",
            g.name,
            live(g),
            g.backlog
        )),
        (Some(s), None) => Some(describe_subscriber(s)),
        (None, None) => None,
    }
}

fn describe_subscriber(s: &shm_bus_core::SubscriberInfo) -> String {
    format!(
        "subscriber {} (pid {}, `{}`), {} behind",
        s.id,
        s.pid,
        s.name,
        human_bytes(s.lag_bytes)
    )
}
