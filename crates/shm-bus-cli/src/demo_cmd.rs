//! `shm-bus demo`: one producer process and N worker processes on a fresh
//! bus, each worker subscribed with a different kind of pattern; live
//! progress, then a summary of what every worker received against what its
//! pattern should have matched. The bus is removed at the end, also on
//! Ctrl-C.

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
use crate::peer::{Peer, Scratch};

/// Options of `demo`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct DemoArgs {
    /// Worker processes (1..=16).
    #[arg(long, default_value_t = 4)]
    pub workers: u32,
    /// Events the producer publishes.
    #[arg(long, default_value_t = 5_000_000)]
    pub events: u64,
    /// Print the summary as JSON (no progress bars).
    #[arg(long)]
    pub json: bool,
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
    if a.events == 0 {
        return Err(BadInput("--events must be at least 1".into()).into());
    }
    catch_interrupts();
    let name = format!("demo-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default()).context("creating the demo bus")?;
    let _cleanup = Scratch(name.clone());
    let topics = topics();

    // Workers first, so that they see every event.
    let mut workers = Vec::new();
    let mut expected = Vec::new();
    for i in 0..a.workers {
        let (pat, _) = pattern(i);
        let parsed = Topic::parse(pat).expect("demo patterns are valid");
        let matching: Vec<bool> = topics
            .iter()
            .map(|t| parsed.matches(&Topic::parse(t).expect("demo topics are valid")))
            .collect();
        expected.push((0..a.events).filter(|&k| matching[topic_of(k)]).count() as u64);
        let mut w = Peer::spawn(
            "demo-worker",
            &[name.clone(), i.to_string(), pat.to_owned()],
        )?;
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
    producer_bar.set_prefix("producer".to_owned());
    let worker_bars: Vec<ProgressBar> = (0..a.workers)
        .map(|i| {
            let (pat, kind) = pattern(i);
            let b = bars.add(ProgressBar::new(expected[i as usize]).with_style(style.clone()));
            b.set_prefix(format!("worker {i:<2} {kind:<14} {pat}"));
            b
        })
        .collect();

    let start = Instant::now();
    let mut producer = Peer::spawn("demo-producer", &[name.clone(), a.events.to_string()])?;
    // Live progress from the bus's own counters, until the producer and
    // every worker are done.
    let mut results: Vec<Option<String>> = vec![None; workers.len()];
    let mut producer_done = false;
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
        producer_bar.set_position(published.min(a.events));
        producer_bar.set_message(rate(published));
        for s in &info.subscribers {
            if let Some(i) = s
                .name
                .strip_prefix("demo worker ")
                .and_then(|n| n.parse::<usize>().ok())
            {
                if let Some(b) = worker_bars.get(i) {
                    b.set_position(s.received.min(expected[i]));
                    b.set_message(rate(s.received));
                }
            }
        }
        if !producer_done {
            if let Some(status) = producer.child.try_wait()? {
                if !status.success() {
                    bail!("the producer failed: {status}");
                }
                producer_done = true;
                producer_bar.set_position(a.events);
            }
        }
        for (i, w) in workers.iter_mut().enumerate() {
            if results[i].is_none() {
                if let Ok(line) = w.line(Duration::from_millis(0)) {
                    results[i] = Some(line);
                    worker_bars[i].set_position(expected[i]);
                    worker_bars[i].finish();
                }
            }
        }
        if producer_done && results.iter().all(Option::is_some) {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("the demo did not finish in 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = start.elapsed().as_secs_f64();
    producer_bar.finish();
    for w in &mut workers {
        w.wait(Duration::from_secs(30))?;
    }
    bars.clear().ok();

    let mut rows = Vec::new();
    let (mut delivered, mut lost, mut duplicates, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
    for (i, line) in results.iter().enumerate() {
        let line = line.as_deref().unwrap_or_default();
        let field = |k: &str| -> u64 {
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        let got = field("received");
        let (d, c) = (field("duplicates"), field("corrupt"));
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
        "events": a.events,
        "delivered": delivered,
        "lost": lost,
        "duplicates": duplicates,
        "corrupt": corrupt,
        "seconds": seconds,
        "rate": if seconds > 0.0 { (a.events as f64 / seconds).round() } else { 0.0 },
        "per_worker": rows,
    });
    let mut stdout = std::io::stdout().lock();
    if a.json {
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(
            stdout,
            "shm-bus demo: 1 producer, {} workers, {} events on bus `{name}`\n",
            a.workers, a.events
        )?;
        writeln!(
            stdout,
            "  {:<7} {:<15} {:<34} {:>9} {:>9} {:>5} {:>5} {:>7}",
            "worker", "kind", "pattern", "expected", "received", "lost", "dup", "corrupt"
        )?;
        for r in &rows {
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
    }
    Ok(if lost == 0 && duplicates == 0 && corrupt == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) fn child(role: &str, args: &[String]) -> Result<ExitCode> {
    match role {
        "demo-producer" => producer(args),
        "demo-worker" => worker(args),
        other => Err(BadInput(format!("unknown child role `{other}`")).into()),
    }
}

fn producer(args: &[String]) -> Result<ExitCode> {
    let [bus_name, events] = args else {
        bail!(BadInput("demo-producer BUS EVENTS".into()));
    };
    let events: u64 = events.parse()?;
    let bus = Bus::open(bus_name)?;
    let mut publisher = bus.publisher("demo producer")?;
    let ids = topics()
        .iter()
        .map(|t| publisher.topic_id(t))
        .collect::<Result<Vec<_>, _>>()?;
    let id = publisher.id();
    let mut topic_seqs = payload::TopicCounter::new(ids.len());
    for k in 0..events {
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
    }
    publisher.publish("demo.end", b"")?;
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
    println!(
        "RESULT received={received} gaps={gaps} duplicates={} corrupt={}",
        tally.duplicates, tally.corrupt
    );
    Ok(ExitCode::SUCCESS)
}
