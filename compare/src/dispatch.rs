//! Topic dispatch with many registered patterns.
//!
//! - **shm-bus, between processes**: a producer publishes 64-byte messages
//!   cycling over `T` interned topics, half of which match
//!   `md.{venue}.AAPL.(trade|quote)`; one subscriber process has registered
//!   either that one pattern or 10,000 patterns (the one plus 9,999 that
//!   cannot match: exact, wildcard, range, regex and `**`, as `patterns()`
//!   in `crates/shm-bus-topic/benches/topic.rs`). The rate is all messages
//!   published (matching or not) over the time from the first publish to
//!   the subscriber's last receive. *Hot*: 1,000 topics, each seen many
//!   times (the subscriber decides once per topic, then by a cached byte).
//!   *Cold*: every message on a topic never seen before (every message
//!   costs the full decision: read the literal, parse it, walk the index).
//! - **shm-bus `EventEngine`, between processes**: the same producer; the
//!   subscriber process runs an `EventEngine` over the bus (its dispatch
//!   thread) with one handler per pattern (1 or 10,000 generic handlers,
//!   one of which matches), on the hot topics. The rate is measured the same
//!   way, up to the matching handler's last call.
//! - **In-process references** (no pattern routing exists in iceoryx2 or a
//!   socket, so an application routes after receiving): the time to find
//!   the patterns matching one topic among 1 or 10,000, with shm-bus's
//!   `SubscriptionIndex` (a trie) and with a linear scan calling
//!   `shm_bus_topic::matches` on every pattern (PyEventEngine's approach).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shm_bus_core::Bus;
use shm_bus_engine::{EventEngine, Handler, Message};
use shm_bus_topic::{SubscriptionIndex, Topic, matches};

use crate::proc::{self, Spec, Waiter};
use crate::systems::shmbus;
use crate::throughput::consume;

/// The pattern that matches half the topics.
const MATCHING: &str = "md.{venue}.AAPL.(trade|quote)";

/// `n` patterns: the matching one, then `n - 1` that cannot match any topic
/// published here (the same mix as the topic crate's benchmark).
pub fn patterns(n: usize) -> Vec<String> {
    let mut v = vec![MATCHING.to_string()];
    for k in 1..n {
        v.push(match k % 5 {
            0 => format!("md.XNAS.SYM{k}.trade"),
            1 => format!("md.{{venue}}.SYM{k}.{{kind}}"),
            2 => format!("md.(XNYS|V{k}).AAPL.trade"),
            3 => format!("svc{k}./^q[0-9]+$/.last"),
            _ => format!("log{k}.**"),
        });
    }
    v
}

/// Topic `i`: odd ones match [`MATCHING`], even ones do not (their venues
/// `X<i>` match none of the other patterns either).
fn topic(i: u32) -> String {
    if i % 2 == 1 {
        format!("md.X{i}.AAPL.trade")
    } else {
        format!("md.X{i}.MSFT.trade")
    }
}

#[derive(Serialize, Deserialize)]
struct ProducerReport {
    start_ns: u64,
}

#[derive(Serialize, Deserialize)]
struct SubscriberReport {
    done_ns: u64,
}

/// One session: `spec.count` messages over `spec.topics` topics to a
/// subscriber (or, with `engine`, an `EventEngine`) with `spec.patterns`
/// patterns. Returns messages per second.
pub fn measure(spec: &Spec, engine: bool) -> Result<f64> {
    if spec.count % 2 != 0 || spec.topics % 2 != 0 {
        bail!("dispatch needs an even count and topic count");
    }
    let role = if engine { "disp-engine" } else { "disp-sub" };
    let reports = proc::session(
        ("disp-pub", spec),
        &[(role, spec.clone())],
        Duration::from_secs(180),
    )?;
    let p: ProducerReport = serde_json::from_str(&reports.creator).context("producer result")?;
    let s: SubscriberReport =
        serde_json::from_str(&reports.attachers[0]).context("subscriber result")?;
    let secs = s.done_ns.saturating_sub(p.start_ns) as f64 / 1e9;
    if secs <= 0.0 {
        bail!("no time elapsed");
    }
    Ok(spec.count as f64 / secs)
}

pub fn producer_role(spec: &Spec) -> Result<()> {
    let mut producer = shmbus::TopicProducer::create(spec, spec.topics + 16)?;
    for i in 0..spec.topics {
        producer.intern(&topic(i))?;
    }
    proc::ready()?;
    proc::hear("GO")?;
    let mut payload: Vec<u8> = (0..spec.size).map(|i| i as u8).collect();
    let topics = spec.topics as usize;
    let start_ns = proc::mono_ns();
    let mut t = 0;
    for i in 0..spec.count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        let mut waiter = Waiter::new();
        while !producer.try_send(t, &payload)? {
            waiter.wait()?;
        }
        t += 1;
        if t == topics {
            t = 0;
        }
    }
    proc::report(&ProducerReport { start_ns })?;
    proc::hear("FIN")?;
    drop(producer);
    Ok(())
}

pub fn subscriber_role(spec: &Spec) -> Result<()> {
    let all = patterns(spec.patterns.max(1));
    let mut sub = shmbus::Consumer::open(spec, &all[0])?;
    for p in &all[1..] {
        sub.subscribe(p)?;
    }
    proc::ready()?;
    proc::hear("GO")?;
    // The matching messages are the odd ones: 1, 3, 5, …
    let done_ns = consume(&mut sub, spec.count / 2, 1, 2)?;
    proc::report(&SubscriberReport { done_ns })?;
    Ok(())
}

/// The receiving side as an `EventEngine`: one handler per pattern, the
/// matching one counting and noting when it saw the last matching message.
pub fn engine_role(spec: &Spec) -> Result<()> {
    let bus = Bus::open(&spec.bus_name())?;
    let engine = EventEngine::with_bus(&bus, "disp-engine")?;
    let target = spec.count / 2;
    let seen = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    for (i, p) in patterns(spec.patterns.max(1)).iter().enumerate() {
        let handler = if i == 0 {
            let (seen, done) = (seen.clone(), done.clone());
            Handler::new(move |_m: &Message<'_>| {
                if seen.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    // Release: pairs with the Acquire load below.
                    done.store(proc::mono_ns(), Ordering::Release);
                }
            })
        } else {
            Handler::new(|_m: &Message<'_>| {})
        };
        engine.register_handler(p, handler, false)?;
    }
    engine.start()?;
    proc::ready()?;
    proc::hear("GO")?;
    let deadline = Instant::now() + Duration::from_secs(170);
    let done_ns = loop {
        // Acquire: pairs with the Release store in the handler.
        let t = done.load(Ordering::Acquire);
        if t != 0 {
            break t;
        }
        if Instant::now() > deadline {
            bail!(
                "watchdog: the engine saw {} of {target}",
                seen.load(Ordering::Relaxed)
            );
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    engine.stop();
    let stats = engine.stats();
    if stats.handler_calls != target || stats.handler_failures != 0 {
        bail!(
            "the engine made {} handler calls ({} failed), expected {target}",
            stats.handler_calls,
            stats.handler_failures
        );
    }
    proc::report(&SubscriberReport { done_ns })?;
    Ok(())
}

// ------------------------------------------------------- in-process refs

/// Nanoseconds to find the patterns matching `md.XNAS.AAPL.trade` among
/// `n`: (index, linear scan).
pub fn in_process(n: usize) -> Result<(f64, f64)> {
    let parsed: Vec<Topic> = patterns(n)
        .iter()
        .map(|p| Topic::parse(p))
        .collect::<Result<_, _>>()?;
    let topic = Topic::parse("md.XNAS.AAPL.trade")?;
    let mut index = SubscriptionIndex::new();
    for (i, p) in parsed.iter().enumerate() {
        index.insert(p, i as u32);
    }
    let mut out = Vec::new();
    index.query_into(&topic, &mut out);
    if out != [0] {
        bail!("the index found {out:?}, not just the matching pattern");
    }
    let index_ns = time_per_op(|| {
        index.query_into(black_box(&topic), &mut out);
        out.len()
    });
    let scan_ns = time_per_op(|| {
        parsed
            .iter()
            .enumerate()
            .filter(|(_, p)| matches(black_box(p), black_box(&topic)))
            .count()
    });
    Ok((index_ns, scan_ns))
}

/// Mean time per call over ~100 ms, after ~20 ms of warm-up.
fn time_per_op(mut f: impl FnMut() -> usize) -> f64 {
    let mut calls = 0u64;
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(20) {
        black_box(f());
        calls += 1;
    }
    let batch = calls.max(1);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < Duration::from_millis(100) {
        for _ in 0..batch {
            black_box(f());
        }
        done += batch;
    }
    start.elapsed().as_nanos() as f64 / done as f64
}
