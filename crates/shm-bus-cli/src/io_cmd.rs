//! `shm-bus publish | consume | tail`: moving events by hand.
//!
//! Every argument is checked before the bus is touched, so a bad topic,
//! pattern or size never leaves a freshly created bus behind. The three
//! commands create the bus with defaults when it does not exist.
//!
//! Ctrl-C (or SIGTERM) ends each of them cleanly: what was done so far is
//! reported as usual and the exit code is 0 (`"interrupted": true` in the
//! JSON of `publish` and `consume`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{
    Bus, BusConfig, BusError, MAX_TOPIC_LEN, MAX_TOPICS, PublishError, Publisher, RecvError,
    Sample, Subscriber, TopicId,
};
use shm_bus_topic::Topic;

use crate::bus_cmd::check_name;
use crate::common::{self, BadInput, interrupted};
use crate::payload::{self, Check, MIN_SIZE, Tally};
use crate::{ConsumeArgs, PublishArgs, TailArgs, TailFormat};

/// Longest single wait, so that Ctrl-C is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Opens the bus, creating it with defaults if missing, after checking
/// `check` against the configuration it has (or would get), so a request
/// the bus cannot satisfy leaves no new bus behind.
fn attach_checked(name: &str, check: impl Fn(&BusConfig) -> Result<(), BadInput>) -> Result<Bus> {
    match Bus::open(name) {
        Ok(bus) => {
            check(bus.config())?;
            return Ok(bus);
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
            check(&BusConfig::default())?;
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot open bus `{name}`")));
        }
    }
    let bus = common::attach(name)?;
    // Someone may have created it meanwhile, with other settings.
    check(bus.config())?;
    Ok(bus)
}

/// Parses every pattern (exit 2 on the first bad one).
fn check_patterns(patterns: &[String]) -> Result<(), BadInput> {
    for p in patterns {
        Topic::parse(p).map_err(|e| BadInput(format!("invalid pattern `{p}`: {e}")))?;
    }
    Ok(())
}

/// `{:.6}`-rounded seconds, for JSON.
fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

fn per_sec(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { (n as f64 / s).round() } else { 0.0 }
}

// ---------------------------------------------------------------- publish

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
}

/// Why a publish did not happen.
enum SendError {
    /// `--timeout` ran out with the ring still full.
    Full(Duration),
    /// Ctrl-C while waiting for space.
    Interrupted,
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
    let timeout = a
        .timeout
        .map(|t| common::seconds("timeout", t))
        .transpose()?;
    let k = a.topics;
    let bus = attach_checked(&a.bus, |c| {
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
    common::catch_interrupts();

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
            if !sleep_until(due) {
                done.interrupted = true;
                break;
            }
        }
        let topic = ids[(i % k) as usize];
        let (len, result) = match &source {
            Source::Generated(size) => (
                *size,
                send(&mut publisher, topic, *size, timeout, &mut done, |buf| {
                    payload::fill(buf, producer, first_seq + i)
                }),
            ),
            Source::Data(d) => (
                d.len(),
                send(&mut publisher, topic, d.len(), timeout, &mut done, |buf| {
                    buf.copy_from_slice(d)
                }),
            ),
            Source::Stdin(_) => (
                line.len(),
                send(
                    &mut publisher,
                    topic,
                    line.len(),
                    timeout,
                    &mut done,
                    |buf| buf.copy_from_slice(&line),
                ),
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
                failure = Some(anyhow!(
                    "ring full for {} s: a subscriber is not keeping up; see `shm-bus inspect {}`",
                    t.as_secs_f64(),
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

/// Whether a read on `fd` would not block (data, end of input or an
/// error to report), waiting at most `timeout`; `false` on a signal.
fn readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll(2) on one initialised pollfd that outlives the call,
    // count 1; it only writes `revents`.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// Sleeps until `due` in slices, so Ctrl-C is noticed at a slow rate.
/// Returns `false` if interrupted.
fn sleep_until(due: Instant) -> bool {
    loop {
        if interrupted() {
            return false;
        }
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(WAIT_SLICE));
    }
}

/// Publishes one record of `len` bytes on `topic`, written in place in the
/// ring by `fill` (zero copy). When the ring is full, waits for space —
/// at most `timeout` — in slices short enough to notice Ctrl-C; that slow
/// path fills a local buffer and lets the publisher copy it in.
fn send(
    publisher: &mut Publisher,
    topic: TopicId,
    len: usize,
    timeout: Option<Duration>,
    done: &mut Published,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), SendError> {
    match publisher.try_loan(&topic, len) {
        Ok(mut loan) => {
            fill(loan.as_mut_slice());
            loan.commit();
            return Ok(());
        }
        Err(PublishError::Full) => {}
        Err(e) => return Err(SendError::Other(e)),
    }
    done.full_waits += 1;
    let mut buf = vec![0; len];
    fill(&mut buf);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            None => WAIT_SLICE,
        };
        match publisher.publish_timeout(&topic, &buf, slice) {
            Ok(_) => return Ok(()),
            Err(PublishError::Full) => {}
            Err(e) => return Err(SendError::Other(e)),
        }
        if interrupted() {
            return Err(SendError::Interrupted);
        }
        if let (Some(d), Some(t)) = (deadline, timeout) {
            if Instant::now() >= d {
                return Err(SendError::Full(t));
            }
        }
    }
}

// ---------------------------------------------------------------- consume

pub(crate) fn consume(a: &ConsumeArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    check_patterns(&a.patterns)?;
    let silence = common::seconds("timeout", a.timeout)?;
    let bus = common::attach(&a.bus)?;
    let mut sub = subscribe(&bus, &a.name, &a.patterns)?;
    common::catch_interrupts();
    let mut tally = Tally::default();
    let mut producers = std::collections::HashSet::new();
    let mut received: u64 = 0;
    let mut lagged: u64 = 0;
    let mut ring_errors: u64 = 0;
    let mut was_interrupted = false;
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut quiet_since = Instant::now();
    loop {
        if a.count.is_some_and(|n| received >= n) {
            break;
        }
        if interrupted() {
            was_interrupted = true;
            break;
        }
        let quiet = quiet_since.elapsed();
        if quiet >= silence {
            break;
        }
        match sub.recv_timeout((silence - quiet).min(WAIT_SLICE)) {
            Ok(sample) => {
                // Under Overwrite the sample is a copy already validated
                // against the producer (a record rewritten while it was
                // copied is reported in `Lagged(n)` instead).
                note(tally.add(sample.payload()), &mut producers);
                received += 1;
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                quiet_since = now;
            }
            Err(RecvError::Timeout | RecvError::Empty) => {}
            Err(RecvError::Lagged(n)) => {
                lagged += n;
                quiet_since = Instant::now();
            }
            Err(e) => {
                ring_errors += 1;
                eprintln!("shm-bus: consume: {e} (that producer's ring is skipped from now on)");
            }
        }
    }
    let span = match (first, last) {
        (Some(f), Some(l)) => l - f,
        _ => Duration::ZERO,
    };
    let producers = producers.len();
    drop(sub);

    let mut out = io::stdout().lock();
    if a.json {
        let v = json!({
            "received": received,
            "lagged": lagged,
            "gaps": tally.gaps,
            "duplicates": tally.duplicates,
            "corrupt": tally.corrupt,
            "seconds": secs(span),
            "rate": per_sec(received, span),
            "foreign": tally.foreign,
            "producers": producers,
            "ring_errors": ring_errors,
            "interrupted": was_interrupted,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "received {received} message(s) from {producers} producer(s) in {:.3} s ({} msg/s): \
             {} gap(s), {} duplicate(s), {} corrupt, {} not generated, {lagged} lagged{}",
            span.as_secs_f64(),
            per_sec(received, span),
            tally.gaps,
            tally.duplicates,
            tally.corrupt,
            tally.foreign,
            if was_interrupted { "; interrupted" } else { "" }
        )?;
    }
    out.flush()?;
    match a.count {
        Some(n) if received < n && !was_interrupted => Err(anyhow!(
            "received {received} of {n} messages before {} s passed without one",
            a.timeout
        )),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Remembers the producer of a generated payload.
fn note(c: Check, producers: &mut std::collections::HashSet<u32>) {
    if let Check::Good { producer, .. } = c {
        producers.insert(producer);
    }
}

/// A subscriber on `bus` with every pattern.
fn subscribe(bus: &Bus, name: &str, patterns: &[String]) -> Result<Subscriber> {
    let mut sub = bus
        .subscriber(name)
        .with_context(|| format!("cannot attach a subscriber to bus `{}`", bus.name()))?;
    for p in patterns {
        sub.subscribe(p)
            .with_context(|| format!("cannot subscribe to `{p}`"))?;
    }
    Ok(sub)
}

// ---------------------------------------------------------------- tail

pub(crate) fn tail(a: &TailArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    let patterns = if a.patterns.is_empty() {
        vec!["**".to_owned()]
    } else {
        a.patterns.clone()
    };
    check_patterns(&patterns)?;
    let bus = common::attach(&a.bus)?;
    let mut sub = subscribe(&bus, "shm-bus tail", &patterns)?;
    common::catch_interrupts();

    let mut out = io::stdout().lock();
    let mut shown: u64 = 0;
    let mut line = String::new();
    while a.count.is_none_or(|n| shown < n) && !interrupted() {
        match sub.recv_timeout(WAIT_SLICE) {
            Ok(sample) => {
                line.clear();
                format_event(&sample, a.format, &mut line);
                // Release the ring space before a possibly slow write.
                drop(sample);
                line.push('\n');
                match out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    Ok(()) => shown += 1,
                    // The reader went away (`| head`): that is the end.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(e) => return Err(anyhow::Error::new(e).context("cannot write to stdout")),
                }
            }
            Err(RecvError::Timeout | RecvError::Empty) => {
                if stdout_closed() {
                    break;
                }
            }
            Err(RecvError::Lagged(n)) => {
                eprintln!("shm-bus: tail: lagged, {n} event(s) overwritten before they were read");
            }
            Err(e) => eprintln!("shm-bus: tail: {e} (that producer's ring is skipped from now on)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether standard output is a pipe whose reader has gone, so that an
/// idle `tail | head` ends without waiting for one more event to write
/// (what GNU `tail -f` does).
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll(2) on one initialised pollfd that outlives the call,
    // count 1, timeout 0 (never blocks); it only writes `revents`.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// One event as `tail` prints it (without the newline).
fn format_event(s: &Sample<'_>, format: TailFormat, out: &mut String) {
    use std::fmt::Write as _;
    let p = s.payload();
    match format {
        TailFormat::Text | TailFormat::Hex => {
            let _ = write!(
                out,
                "{}  producer={} seq={} size={}  ",
                s.topic(),
                s.producer(),
                s.sequence(),
                s.len()
            );
            if format == TailFormat::Text {
                escape_text(&String::from_utf8_lossy(p), out);
            } else {
                hex(p, out);
            }
        }
        TailFormat::Json => {
            let mut v = json!({
                "topic": s.topic(),
                "producer": s.producer(),
                "sequence": s.sequence(),
                "size": s.len(),
                "timestamp_ns": s.timestamp_ns(),
            });
            match std::str::from_utf8(p) {
                Ok(text) => v["payload"] = Value::from(text),
                Err(_) => {
                    let mut h = String::with_capacity(p.len() * 2);
                    hex(p, &mut h);
                    v["payload_hex"] = Value::from(h);
                }
            }
            let _ = write!(out, "{v}");
        }
    }
}

/// Text with control characters and `\` escaped, so one event is one line.
fn escape_text(text: &str, out: &mut String) {
    use std::fmt::Write as _;
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Lowercase hex digits of `bytes`.
fn hex(bytes: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_control_characters() {
        let mut s = String::new();
        escape_text("a\tb\nc\\d\u{1b}é", &mut s);
        assert_eq!(s, "a\\tb\\nc\\\\d\\u{1b}é");
    }

    #[test]
    fn hex_is_lowercase_pairs() {
        let mut s = String::new();
        hex(&[0, 0xab, 0x10], &mut s);
        assert_eq!(s, "00ab10");
    }
}
