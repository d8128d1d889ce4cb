//! `shm-bus demo`: one producer process and N worker processes on a fresh
//! bus, each worker subscribed with a different kind of pattern; live
//! progress, then a summary of what every worker received against what its
//! pattern should have matched. The bus is removed at the end, also on
//! Ctrl-C.
//!
//! With `--duration` it is a soak run: the producer publishes for that
//! long instead of `--events` times, and the summary adds every process's
//! resident memory (VmRSS from `/proc/PID/status`) at the start and at the
//! end, and its peak (VmHWM), so that a leak or a slow drift shows.
//!
//! With `--group` the workers are the members of one worker group (`demo`,
//! patterns `md.**`): each event goes to exactly one of them, and the
//! summary shows each worker's share. Every worker checks its own events
//! (checksums; duplicates: a sequence number not above the last one, since
//! a member gets its events in producer order) and reports a multiset hash
//! of their sequence numbers (the wrapping sum of a 64-bit mix of each);
//! the events were split exactly (none lost, none twice) when the shares
//! add up to what was published and the hashes add up to the hash of
//! `0..published`. The workers are told to stop (their stdin closed) once
//! the group has finished every published event.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use shm_bus_core::{Bus, BusConfig, RecvError};
use shm_bus_topic::Topic;

use crate::BadInput;
use crate::os::{catch_interrupts, interrupted};
use crate::payload::{self, Tally};
use crate::peer::{Peer, Scratch, stdin_closed};

/// Options of `demo`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct DemoArgs {
    /// Worker processes (1..=16).
    #[arg(long, default_value_t = 4)]
    pub workers: u32,
    /// Events the producer publishes.
    #[arg(long, default_value_t = 5_000_000)]
    pub events: u64,
    /// Soak: publish for this long instead of --events times (seconds, or
    /// 30s, 10m, 1h), then report events, losses and each process's memory
    /// at the start and the end.
    #[arg(long, value_parser = crate::common::parse_duration, conflicts_with = "events")]
    pub duration: Option<Duration>,
    /// Print the summary as JSON (no progress bars).
    #[arg(long)]
    pub json: bool,
    /// Run the workers as one worker group (`demo`, patterns `md.**`):
    /// each event goes to exactly one of them; the summary shows the split.
    #[arg(long)]
    pub group: bool,
    /// Most events one claim takes (with --group).
    #[arg(long, requires = "group", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub claim_batch: u32,
}

/// The worker group of `demo --group`, and its patterns.
const GROUP: &str = "demo";
const GROUP_PATTERN: &str = "md.**";

/// A 64-bit mix (splitmix64's finaliser): the multiset hash of a share is
/// the wrapping sum of `mix(seq)` over its events.
fn mix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const VENUES: [&str; 3] = ["XNAS", "XNYS", "BATS"];
const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "IBM", "GOOG"];
const KINDS: [&str; 2] = ["trade", "quote"];

/// The demo's 24 topics, `md.VENUE.SYMBOL.KIND`.
fn topics() -> Vec<String> {
    let mut v = Vec::with_capacity(24);
    for venue in VENUES {
        for sym in SYMBOLS {
            for kind in KINDS {
                v.push(format!("md.{venue}.{sym}.{kind}"));
            }
        }
    }
    v
}

/// Which topic event `k` goes to: a fixed, uneven walk over the 24.
fn topic_of(k: u64) -> usize {
    (k.wrapping_mul(7) ^ (k >> 3)) as usize % 24
}

/// Worker `i`'s pattern and what it shows (with `--group`: every worker
/// is a member of the group).
fn worker_pattern(group: bool, i: u32) -> (&'static str, &'static str) {
    if group {
        (GROUP_PATTERN, "group member")
    } else {
        pattern(i)
    }
}

/// Worker `i`'s pattern and the kind of pattern it shows.
fn pattern(i: u32) -> (&'static str, &'static str) {
    const PATTERNS: [(&str, &str); 8] = [
        ("md.XNAS.AAPL.trade", "exact"),
        ("md.{venue}.MSFT.+kind", "wildcard"),
        ("md.(XNYS|BATS).(AAPL|IBM).quote", "range"),
        ("md./^X/./^[AG]/.trade", "regex"),
        ("md.**", "rest"),
        ("md.BATS.{sym}.(trade|quote)", "wildcard+range"),
        ("md./^(XNAS|BATS)$/.**", "regex+rest"),
        ("md.XNYS.GOOG.quote", "exact"),
    ];
    PATTERNS[i as usize % PATTERNS.len()]
}

pub(crate) fn run(a: &DemoArgs) -> Result<ExitCode> {
    if !(1..=16).contains(&a.workers) {
        return Err(BadInput(format!("--workers {}: use 1 to 16", a.workers)).into());
    }
    if a.events == 0 && a.duration.is_none() {
        return Err(BadInput("--events must be at least 1".into()).into());
    }
    catch_interrupts();
    let name = format!("demo-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default()).context("creating the demo bus")?;
    let _cleanup = Scratch(name.clone());
    let topics = topics();

    // Events the producer is asked for (a soak run: as many as it
    // publishes in `--duration`; known at the end).
    let events = if a.duration.is_some() {
        u64::MAX
    } else {
        a.events
    };
    let rss_start_demo = rss(None);

    // Workers first, so that they see every event.
    let mut workers = Vec::new();
    let mut matching_of = Vec::new();
    let mut expected = Vec::new();
    for i in 0..a.workers {
        let (pat, _) = worker_pattern(a.group, i);
        let parsed = Topic::parse(pat).expect("demo patterns are valid");
        let matching: Vec<bool> = topics
            .iter()
            .map(|t| parsed.matches(&Topic::parse(t).expect("demo topics are valid")))
            .collect();
        expected.push(if a.duration.is_some() {
            0
        } else {
            expected_of(&matching, a.events)
        });
        matching_of.push(matching);
        let mut w = if a.group {
            Peer::spawn_stoppable(
                "demo-member",
                &[name.clone(), i.to_string(), a.claim_batch.to_string()],
            )?
        } else {
            Peer::spawn(
                "demo-worker",
                &[name.clone(), i.to_string(), pat.to_owned()],
            )?
        };
        if w.line(Duration::from_secs(30))? != "READY" {
            bail!("worker {i} did not start");
        }
        workers.push(w);
    }

    let bars = MultiProgress::with_draw_target(if a.json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style = ProgressStyle::with_template("{prefix:<56} {bar:30} {pos:>9}/{len:<9} {msg:>10}")
        .expect("valid template");
    let producer_bar = bars.add(ProgressBar::new(a.events).with_style(style.clone()));
    if let Some(d) = a.duration {
        producer_bar.set_length(d.as_secs().max(1));
        producer_bar.set_prefix(format!("producer (soak: {} s)", d.as_secs_f64()));
    }
    if a.duration.is_none() {
        producer_bar.set_prefix("producer".to_owned());
    }
    let worker_bars: Vec<ProgressBar> = (0..a.workers)
        .map(|i| {
            let (pat, kind) = worker_pattern(a.group, i);
            let b = bars.add(ProgressBar::new(expected[i as usize]).with_style(style.clone()));
            b.set_prefix(format!("worker {i:<2} {kind:<14} {pat}"));
            b
        })
        .collect();

    let start = Instant::now();
    let mut producer = Peer::spawn(
        "demo-producer",
        &[
            name.clone(),
            events.to_string(),
            a.duration.map_or(0, |d| d.as_millis()).to_string(),
        ],
    )?;
    let limit = a
        .duration
        .map_or(Duration::from_secs(600), |d| d + Duration::from_secs(120));
    // Live progress from the bus's own counters, until the producer and
    // every worker are done.
    let mut results: Vec<Option<String>> = vec![None; workers.len()];
    let mut producer_done = false;
    let mut producer_result: Option<String> = None;
    let mut told_to_stop = false;
    loop {
        if interrupted() {
            bars.clear().ok();
            eprintln!("shm-bus: interrupted; removing bus `{name}`");
            return Ok(ExitCode::from(130));
        }
        let info = bus.info();
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let rate = |n: u64| format!("{:.2} M/s", n as f64 / secs / 1e6);
        let published: u64 = info.producers.iter().map(|p| p.published).sum();
        if a.duration.is_some() {
            producer_bar.set_position(start.elapsed().as_secs());
            producer_bar.set_message(format!("{published} events, {}", rate(published)));
        } else {
            producer_bar.set_position(published.min(a.events));
            producer_bar.set_message(rate(published));
        }
        // Workers' progress: subscribers' `received`, or members' `done`.
        let group = a
            .group
            .then(|| bus.groups().into_iter().find(|g| g.name == GROUP))
            .flatten();
        let progress: Vec<(String, u64)> = match &group {
            Some(g) => g.members.iter().map(|m| (m.name.clone(), m.done)).collect(),
            None => info
                .subscribers
                .iter()
                .map(|s| (s.name.clone(), s.received))
                .collect(),
        };
        for (worker, n) in progress {
            if let Some(i) = worker
                .strip_prefix("demo worker ")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some(b) = worker_bars.get(i) {
                    if a.duration.is_some() || a.group {
                        b.set_length(published.max(1));
                    }
                    b.set_position(n.min(b.length().unwrap_or(0)));
                    b.set_message(rate(n));
                }
            }
        }
        if !producer_done {
            if let Some(status) = producer.child.try_wait()? {
                if !status.success() {
                    bail!("the producer failed: {status}");
                }
                producer_done = true;
                producer_result = Some(producer.line(Duration::from_secs(5))?);
                if a.duration.is_none() {
                    producer_bar.set_position(a.events);
                }
            }
        }
        // Group members are told to stop once the group has finished every
        // event the producer published.
        if let (Some(g), Some(line), false) = (&group, &producer_result, told_to_stop) {
            if g.done >= field(line, "published") {
                for w in &mut workers {
                    w.close_stdin();
                }
                told_to_stop = true;
            }
        }
        for (i, w) in workers.iter_mut().enumerate() {
            if results[i].is_none() {
                if let Ok(line) = w.line(Duration::from_millis(0)) {
                    results[i] = Some(line);
                    worker_bars[i].finish();
                }
            }
        }
        if producer_done && results.iter().all(Option::is_some) {
            break;
        }
        if start.elapsed() > limit {
            bail!("the demo did not finish in {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = start.elapsed().as_secs_f64();
    let rss_end_demo = rss(None);
    producer_bar.finish();
    let producer_line = producer_result.unwrap_or_default();
    let published = field(&producer_line, "published");
    if a.duration.is_some() {
        let counts = per_topic(&producer_line);
        if counts.len() != topics.len() {
            bail!("the producer did not report its per-topic counts: {producer_line:?}");
        }
        expected = matching_of
            .iter()
            .map(|m| expected_from_counts(m, &counts))
            .collect();
    }
    let mut memory = vec![json!({
        "process": "demo",
        "pid": std::process::id(),
        "start_kib": rss_start_demo.map(|r| r.0),
        "end_kib": rss_end_demo.map(|r| r.0),
        "peak_kib": rss_end_demo.map(|r| r.1),
    })];
    memory.push(memory_of("producer", producer.child.id(), &producer_line));
    for w in &mut workers {
        w.wait(Duration::from_secs(30))?;
    }
    bars.clear().ok();

    let mut rows = Vec::new();
    let (mut delivered, mut lost, mut duplicates, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
    // `--group`: whether the shares are exactly the published events.
    let mut split_exact = true;
    let mut group_json = serde_json::Value::Null;
    if a.group {
        let (mut unique, mut hash) = (0u64, 0u64);
        for (i, line) in results.iter().enumerate() {
            let line = line.as_deref().unwrap_or_default();
            memory.push(memory_of(
                &format!("worker {i}"),
                workers[i].child.id(),
                line,
            ));
            let got = field(line, "received");
            let (d, c) = (field(line, "duplicates"), field(line, "corrupt"));
            delivered += got;
            duplicates += d;
            corrupt += c;
            unique += got.saturating_sub(d);
            hash = hash.wrapping_add(field(line, "hash"));
            rows.push(json!({
                "worker": i, "kind": "group member", "pattern": GROUP_PATTERN,
                "expected": null, "received": got,
                "share": if published > 0 { got as f64 / published as f64 } else { 0.0 },
                "lost": null, "duplicates": d, "corrupt": c,
                "redelivered": field(line, "redelivered"),
            }));
        }
        // Events received by no worker, and by more than one.
        lost = published.saturating_sub(unique);
        duplicates += unique.saturating_sub(published);
        let want = (0..published).fold(0u64, |h, k| h.wrapping_add(mix(k)));
        split_exact = unique == published && hash == want;
        if let Some(g) = bus.groups().into_iter().find(|g| g.name == GROUP) {
            group_json = json!({
                "name": g.name,
                "mode": g.mode.as_str(),
                "patterns": g.patterns,
                "claim_batch": a.claim_batch,
                "claims": g.claims,
                "claimed": g.claimed,
                "done": g.done,
                "redelivered": g.redelivered,
                "lost": g.lost,
                "split_exact": split_exact,
            });
        }
    }
    for (i, line) in results.iter().enumerate().filter(|_| !a.group) {
        let line = line.as_deref().unwrap_or_default();
        memory.push(memory_of(
            &format!("worker {i}"),
            workers[i].child.id(),
            line,
        ));
        let got = field(line, "received");
        let (d, c) = (field(line, "duplicates"), field(line, "corrupt"));
        // Lost: expected events not received once (duplicates don't count).
        let l = expected[i].saturating_sub(got.saturating_sub(d));
        delivered += got;
        lost += l;
        duplicates += d;
        corrupt += c;
        let (pat, kind) = pattern(i as u32);
        rows.push(
            json!({"worker": i, "kind": kind, "pattern": pat, "expected": expected[i],
                         "received": got, "lost": l, "duplicates": d, "corrupt": c}),
        );
    }
    let out = json!({
        "bus": name,
        "workers": a.workers,
        "events": published,
        "duration_secs": a.duration.map(|d| d.as_secs_f64()),
        "delivered": delivered,
        "lost": lost,
        "duplicates": duplicates,
        "corrupt": corrupt,
        "seconds": seconds,
        "rate": if seconds > 0.0 { (published as f64 / seconds).round() } else { 0.0 },
        "per_worker": rows,
        "memory": memory,
        "group": group_json,
    });
    let mut stdout = std::io::stdout().lock();
    if a.json {
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(
            stdout,
            "shm-bus demo: 1 producer, {} workers, {published} events on bus `{name}`{}\n",
            a.workers,
            a.duration
                .map_or_else(String::new, |d| format!(" (soak: {} s)", d.as_secs_f64())),
        )?;
        if a.group {
            writeln!(
                stdout,
                "  worker group `{GROUP}` ({GROUP_PATTERN}, claims of up to {}): each event \
                 to exactly one worker\n",
                a.claim_batch
            )?;
            writeln!(
                stdout,
                "  {:<7} {:<15} {:>9} {:>7} {:>5} {:>7} {:>11}",
                "worker", "kind", "received", "share", "dup", "corrupt", "redelivered"
            )?;
        } else {
            writeln!(
                stdout,
                "  {:<7} {:<15} {:<34} {:>9} {:>9} {:>5} {:>5} {:>7}",
                "worker", "kind", "pattern", "expected", "received", "lost", "dup", "corrupt"
            )?;
        }
        for r in rows.iter().filter(|_| a.group) {
            writeln!(
                stdout,
                "  {:<7} {:<15} {:>9} {:>6.1}% {:>5} {:>7} {:>11}",
                r["worker"].as_u64().unwrap_or(0),
                r["kind"].as_str().unwrap_or(""),
                r["received"].as_u64().unwrap_or(0),
                r["share"].as_f64().unwrap_or(0.0) * 100.0,
                r["duplicates"].as_u64().unwrap_or(0),
                r["corrupt"].as_u64().unwrap_or(0),
                r["redelivered"].as_u64().unwrap_or(0)
            )?;
        }
        for r in rows.iter().filter(|_| !a.group) {
            writeln!(
                stdout,
                "  {:<7} {:<15} {:<34} {:>9} {:>9} {:>5} {:>5} {:>7}",
                r["worker"].as_u64().unwrap_or(0),
                r["kind"].as_str().unwrap_or(""),
                r["pattern"].as_str().unwrap_or(""),
                r["expected"].as_u64().unwrap_or(0),
                r["received"].as_u64().unwrap_or(0),
                r["lost"].as_u64().unwrap_or(0),
                r["duplicates"].as_u64().unwrap_or(0),
                r["corrupt"].as_u64().unwrap_or(0)
            )?;
        }
        writeln!(
            stdout,
            "\n  delivered {delivered}, lost {lost}, duplicates {duplicates}, corrupt {corrupt}; \
             {seconds:.2} s, {:.0} events/s published",
            out["rate"].as_f64().unwrap_or(0.0)
        )?;
        if a.group {
            writeln!(
                stdout,
                "  {} claims; the shares are {}",
                group_json["claims"],
                if split_exact {
                    "exactly the published events (counts and sequence hashes add up)"
                } else {
                    "NOT exactly the published events (their sequence hashes do not add up)"
                }
            )?;
        }
        if a.duration.is_some() {
            writeln!(
                stdout,
                "\n  {:<10} {:>8} {:>14} {:>14} {:>14}",
                "process", "pid", "RSS start", "RSS end", "RSS peak"
            )?;
            let kib =
                |v: &serde_json::Value| v.as_u64().map_or("?".to_owned(), |k| format!("{k} KiB"));
            for m in &memory {
                writeln!(
                    stdout,
                    "  {:<10} {:>8} {:>14} {:>14} {:>14}",
                    m["process"].as_str().unwrap_or(""),
                    m["pid"],
                    kib(&m["start_kib"]),
                    kib(&m["end_kib"]),
                    kib(&m["peak_kib"]),
                )?;
            }
        }
    }
    Ok(
        if lost == 0 && duplicates == 0 && corrupt == 0 && split_exact {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

pub(crate) fn child(role: &str, args: &[String]) -> Result<ExitCode> {
    match role {
        "demo-producer" => producer(args),
        "demo-worker" => worker(args),
        "demo-member" => member(args),
        other => Err(BadInput(format!("unknown child role `{other}`")).into()),
    }
}

fn producer(args: &[String]) -> Result<ExitCode> {
    let [bus_name, events, duration_ms] = args else {
        bail!(BadInput("demo-producer BUS EVENTS DURATION_MS".into()));
    };
    let events: u64 = events.parse()?;
    let duration = Duration::from_millis(duration_ms.parse()?);
    let bus = Bus::open(bus_name)?;
    let mut publisher = bus.publisher("demo producer")?;
    let ids = topics()
        .iter()
        .map(|t| publisher.topic_id(t))
        .collect::<Result<Vec<_>, _>>()?;
    let id = publisher.id();
    let mut topic_seqs = payload::TopicCounter::new(ids.len());
    let rss_start = rss(None);
    let start = Instant::now();
    let mut published = 0;
    let mut counts = vec![0u64; ids.len()];
    for k in 0..events {
        if !duration.is_zero() && k % 1024 == 0 && start.elapsed() >= duration {
            break;
        }
        // Generated payloads (id, sequences, checksum) of 32..96 bytes,
        // written in place in the ring.
        let len = payload::MIN_SIZE + (k % 3) as usize * 32;
        let t = topic_of(k);
        let mut loan = publisher.loan(&ids[t], len)?;
        let stamp = payload::Stamp {
            producer: id,
            seq: k,
            topic_seq: topic_seqs.next(t),
            run: 0,
        };
        payload::fill(loan.as_mut_slice(), stamp);
        loan.commit();
        published = k + 1;
        counts[t] += 1;
    }
    publisher.publish("demo.end", b"")?;
    let rss_end = rss(None);
    println!(
        "RESULT published={published} per_topic={} {}",
        counts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        rss_fields(rss_start, rss_end)
    );
    std::io::stdout().flush()?;
    Ok(ExitCode::SUCCESS)
}

fn worker(args: &[String]) -> Result<ExitCode> {
    let [bus_name, index, pattern] = args else {
        bail!(BadInput("demo-worker BUS INDEX PATTERN".into()));
    };
    let bus = Bus::open(bus_name)?;
    let mut subscriber = bus.subscriber(&format!("demo worker {index}"))?;
    subscriber.subscribe(pattern)?;
    subscriber.subscribe("demo.end")?;
    let topics = topics();
    let parsed = Topic::parse(pattern)?;
    println!("READY");
    std::io::stdout().flush()?;
    let rss_start = rss(None);
    let mut tally = Tally::default();
    let mut received = 0u64;
    let mut gaps = 0u64;
    let mut next_matching = 0u64;
    let matching: Vec<bool> = topics
        .iter()
        .map(|t| Topic::parse(t).map(|t| parsed.matches(&t)).unwrap_or(false))
        .collect();
    loop {
        let sample = match subscriber.recv_timeout(Duration::from_secs(30)) {
            Ok(s) => s,
            Err(RecvError::Timeout) => bail!("worker {index}: no event for 30 s"),
            Err(e) => return Err(e.into()),
        };
        if sample.topic() == "demo.end" {
            break;
        }
        received += 1;
        if let payload::Check::Good { seq, .. } = tally.add(sample.payload(), sample.topic_id().0) {
            // The next event this pattern should see.
            while next_matching < seq && !matching[topic_of(next_matching)] {
                next_matching += 1;
            }
            if seq > next_matching {
                gaps += (next_matching..seq)
                    .filter(|&k| matching[topic_of(k)])
                    .count() as u64;
            }
            next_matching = seq + 1;
        }
    }
    let rss_end = rss(None);
    println!(
        "RESULT received={received} gaps={gaps} duplicates={} corrupt={} {}",
        tally.duplicates,
        tally.corrupt,
        rss_fields(rss_start, rss_end)
    );
    Ok(ExitCode::SUCCESS)
}

/// A worker of `demo --group`: a member of the group until its stdin is
/// closed; reports its share, duplicates (a sequence number not above the
/// last: a member gets its events in producer order), and the multiset
/// hash of its sequence numbers.
fn member(args: &[String]) -> Result<ExitCode> {
    let [bus_name, index, claim_batch] = args else {
        bail!(BadInput("demo-member BUS INDEX CLAIM_BATCH".into()));
    };
    let stop = stdin_closed();
    let bus = Bus::open(bus_name)?;
    let options = shm_bus_core::GroupOptions {
        claim_batch: claim_batch.parse()?,
        ..Default::default()
    };
    let mut member = bus.group_member_with::<shm_bus_core::delivery::AnyPolicy>(
        GROUP,
        &format!("demo worker {index}"),
        &[GROUP_PATTERN],
        options,
    )?;
    println!("READY");
    std::io::stdout().flush()?;
    let rss_start = rss(None);
    let mut tally = Tally::default();
    let (mut received, mut duplicates, mut hash) = (0u64, 0u64, 0u64);
    let mut last: Option<u64> = None;
    loop {
        let sample = match member.recv_timeout(Duration::from_millis(20)) {
            Ok(s) => s,
            Err(RecvError::Timeout | RecvError::Empty) => {
                if stop.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        received += 1;
        if let payload::Check::Good { seq, .. } = tally.add(sample.payload(), sample.topic_id().0) {
            if last.is_some_and(|l| seq <= l) {
                duplicates += 1;
            } else {
                last = Some(seq);
            }
            hash = hash.wrapping_add(mix(seq));
        }
    }
    let redelivered = member.redelivered();
    drop(member);
    let rss_end = rss(None);
    println!(
        "RESULT received={received} duplicates={duplicates} corrupt={} redelivered={redelivered} \
         hash={hash} {}",
        tally.corrupt,
        rss_fields(rss_start, rss_end)
    );
    Ok(ExitCode::SUCCESS)
}

/// Events of `0..events` whose topic a pattern with `matching` matches.
fn expected_of(matching: &[bool], events: u64) -> u64 {
    (0..events).filter(|&k| matching[topic_of(k)]).count() as u64
}

/// Events a pattern with `matching` matches, from the producer's count of
/// events per topic (`per_topic=N,N,...` in its RESULT line).
fn expected_from_counts(matching: &[bool], per_topic: &[u64]) -> u64 {
    matching
        .iter()
        .zip(per_topic)
        .filter(|(m, _)| **m)
        .map(|(_, n)| n)
        .sum()
}

/// The `per_topic=N,N,...` field of the producer's RESULT line.
fn per_topic(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("per_topic="))
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// A `key=value` field of a child's RESULT line (0 if absent).
fn field(line: &str, k: &str) -> u64 {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(key, _)| *key == k)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Resident memory of a process (this one for `None`): `(VmRSS, VmHWM)`
/// in KiB, from `/proc/PID/status`.
fn rss(pid: Option<u32>) -> Option<(u64, u64)> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((kib("VmRSS:")?, kib("VmHWM:")?))
}

/// The memory fields of a RESULT line.
fn rss_fields(start: Option<(u64, u64)>, end: Option<(u64, u64)>) -> String {
    format!(
        "rss_start_kib={} rss_end_kib={} rss_peak_kib={}",
        start.map_or(0, |r| r.0),
        end.map_or(0, |r| r.0),
        end.map_or(0, |r| r.1)
    )
}

/// A process's memory, from its RESULT line (`null` where unknown).
fn memory_of(process: &str, pid: u32, line: &str) -> serde_json::Value {
    let kib = |k: &str| Some(field(line, k)).filter(|&v| v > 0);
    json!({
        "process": process,
        "pid": pid,
        "start_kib": kib("rss_start_kib"),
        "end_kib": kib("rss_end_kib"),
        "peak_kib": kib("rss_peak_kib"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_counts_from_the_producers_per_topic_counts_match_counting_every_event() {
        for i in 0..8 {
            let parsed = Topic::parse(pattern(i).0).unwrap();
            let matching: Vec<bool> = topics()
                .iter()
                .map(|t| parsed.matches(&Topic::parse(t).unwrap()))
                .collect();
            for events in [0, 1, 191, 5000] {
                let mut counts = [0u64; 24];
                for k in 0..events {
                    counts[topic_of(k)] += 1;
                }
                let line = format!(
                    "RESULT published={events} per_topic={}",
                    counts.map(|n| n.to_string()).join(",")
                );
                assert_eq!(
                    expected_from_counts(&matching, &per_topic(&line)),
                    expected_of(&matching, events),
                    "worker {i}, {events}"
                );
            }
        }
    }

    #[test]
    fn memory_of_this_process_is_read() {
        let (rss_kib, peak) = rss(None).unwrap();
        assert!(rss_kib > 0 && peak >= rss_kib);
        assert_eq!(
            field("RESULT published=12 rss_start_kib=5", "published"),
            12
        );
        assert_eq!(
            memory_of("x", 1, "rss_start_kib=5")["end_kib"],
            serde_json::Value::Null
        );
    }
}
