//! `shm-bus bench group`: the throughput of a worker group of K member
//! processes when every event costs some work, against one plain
//! subscriber process doing the same work per event, measured in the same
//! run, interleaved.
//!
//! Each round runs both, in alternating order (group first in odd rounds,
//! plain first in even ones), each on a fresh bus: this process publishes
//! `--count` events on `bench.data` (the whole payload written) into a
//! ring that holds the whole run (unless `--ring-bytes`), prefaulted by
//! every process, so that the producer never waits for space: with few
//! CPUs a producer waiting on a full ring competes with the receivers for
//! them, and the figure would measure that (docs/BENCHMARKS.md has both);
//! the receivers do `--work-ns` of CPU work per event while holding the
//! sample (a member's event is finished when its sample is dropped), then
//! drop it. Every receiver reads the clock once
//! per event (after its work), also with no work, so both sides pay the
//! same; the rate is `count` over the time from the first publish to the
//! last event finished by any receiver. The plain subscriber stops at
//! `count`; the members are told to stop (their stdin closed) once the
//! group has finished `count` events, and the shares they report must add
//! up to `count`.
//!
//! The work is a dependent arithmetic loop of a fixed number of iterations,
//! calibrated in this process before the rounds (and again after them, to
//! show drift) and handed to every receiver: CPU work, not a wall-clock
//! spin. A spin until the clock says `--work-ns` passed would let a
//! receiver descheduled mid-spin finish its "work" without the CPU, so
//! more members than CPUs would look faster than they are.
//!
//! With `--work-ns 0` the figure is the cost of handing out events: a
//! member's claim (a lock, a scan, bookkeeping, amortised over
//! `--claim-batch` events) against a plain subscriber's receive; JSON's
//! `overhead_ns_per_event` is the difference of the two per-event times.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use shm_bus_core::delivery::AnyPolicy;
use shm_bus_core::{Bus, BusConfig, GroupOptions, RecvError, Subscriber};

use super::{check_size, print_result, ring_for};
use crate::BadInput;
use crate::peer::{Peer, stdin_closed, unique};
use crate::time::now_ns;

/// The benchmark's worker group and its pattern.
const GROUP: &str = "bench";
const TOPIC: &str = "bench.data";

/// What one round measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// K group members.
    Group,
    /// One plain subscriber.
    Plain,
}

/// Options of `bench group`.
#[derive(Clone, Copy, Debug)]
pub(super) struct GroupBench {
    pub members: u32,
    pub work_ns: u64,
    pub count: u64,
    pub size: usize,
    pub rounds: u32,
    pub claim_batch: u32,
    /// The ring size (`None`: one that holds the whole run).
    pub ring_bytes: Option<u64>,
}

/// Default `--count`: about half a second of work for the plain
/// subscriber (2,000,000 events with no work).
pub(super) fn default_count(work_ns: u64) -> u64 {
    500_000_000u64
        .checked_div(work_ns)
        .map_or(2_000_000, |n| n.clamp(10_000, 2_000_000))
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

pub(super) fn group(b: GroupBench, json: bool) -> Result<ExitCode> {
    check_size(b.size)?;
    if !(1..=64).contains(&b.members) {
        return Err(BadInput(format!("--members {}: use 1 to 64", b.members)).into());
    }
    if b.count == 0 {
        return Err(BadInput("--count must be at least 1".into()).into());
    }
    // The ring holds the whole run (records of a 32-byte header and the
    // payload rounded up to 32 bytes), with room to spare.
    let record = 32 + (b.size as u64).next_multiple_of(32);
    let whole_run = || {
        b.count
            .checked_mul(record)
            .map(|n| (n + n / 8).next_power_of_two().max(ring_for(b.size)))
            .filter(|&n| n <= 4 << 30)
            .ok_or_else(|| {
                BadInput(format!(
                    "--count {} of --size {} does not fit in one ring of at most 4 GiB: use a \
                     smaller --count, or give --ring-bytes",
                    b.count, b.size
                ))
            })
    };
    let ring = match b.ring_bytes {
        Some(r) => r,
        None => whole_run()?,
    };
    let config = BusConfig::default()
        .with_ring_bytes(ring)
        .with_max_producers(1)
        .with_max_group_members(b.members.max(16));
    config.validate().map_err(|e| BadInput(e.to_string()))?;
    if b.size > config.max_payload() {
        return Err(BadInput(format!("--size {} is larger than the ring allows", b.size)).into());
    }
    let ns_per_iter = calibrate();
    let iterations = (b.work_ns as f64 / ns_per_iter).round() as u64;
    let mut rounds = Vec::new();
    let (mut group_rates, mut plain_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..b.rounds {
        let order = if r % 2 == 0 {
            [Side::Group, Side::Plain]
        } else {
            [Side::Plain, Side::Group]
        };
        let (mut g, mut p) = (0.0, 0.0);
        for side in order {
            let rate = run(&config, &b, iterations, side)?;
            match side {
                Side::Group => g = rate,
                Side::Plain => p = rate,
            }
        }
        let ratio = if p > 0.0 { g / p } else { 0.0 };
        group_rates.push(g);
        plain_rates.push(p);
        ratios.push(ratio);
        rounds.push(json!({
            "group_msgs_per_sec": g.round(),
            "plain_msgs_per_sec": p.round(),
            "ratio": (ratio * 1000.0).round() / 1000.0,
            "first": if order[0] == Side::Group { "group" } else { "plain" },
        }));
    }
    let ns_per_iter_after = calibrate();
    let (g, p) = (median(&group_rates), median(&plain_rates));
    let ns = |rate: f64| if rate > 0.0 { 1e9 / rate } else { 0.0 };
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let out = json!({
        "members": b.members,
        "work_ns": b.work_ns,
        "count": b.count,
        "size": b.size,
        "claim_batch": b.claim_batch,
        "cpus": cpus,
        "work_iterations": iterations,
        "ring_bytes": ring,
        "ns_per_iteration": [
            (ns_per_iter * 1000.0).round() / 1000.0,
            (ns_per_iter_after * 1000.0).round() / 1000.0,
        ],
        "group_msgs_per_sec": g.round(),
        "plain_msgs_per_sec": p.round(),
        "ratio": (median(&ratios) * 1000.0).round() / 1000.0,
        "group_ns_per_event": round1(ns(g)),
        "plain_ns_per_event": round1(ns(p)),
        "overhead_ns_per_event": round1(ns(g) - ns(p)),
        "rounds": rounds,
    });
    print_result(&out, json, |o| {
        let mut s = format!(
            "worker group: {} member process(es) against 1 plain subscriber process, {} ns of \
             work per event ({iterations} iterations of {:.3} ns; {:.3} ns after the rounds), \
             {} events of {} B, claims of up to {}, {} CPU(s)\n",
            b.members,
            b.work_ns,
            ns_per_iter,
            ns_per_iter_after,
            b.count,
            b.size,
            b.claim_batch,
            cpus
        );
        for (i, r) in o["rounds"].as_array().into_iter().flatten().enumerate() {
            s += &format!(
                "  round {}  group {:>12.0} msg/s  plain {:>12.0} msg/s  ratio {:.2}x  ({} first)\n",
                i + 1,
                r["group_msgs_per_sec"].as_f64().unwrap_or(0.0),
                r["plain_msgs_per_sec"].as_f64().unwrap_or(0.0),
                r["ratio"].as_f64().unwrap_or(0.0),
                r["first"].as_str().unwrap_or("")
            );
        }
        s += &format!(
            "  median   group {g:>12.0} msg/s  plain {p:>12.0} msg/s  ratio {:.2}x (median of the \
             rounds' ratios)\n  per event: group {:.1} ns, plain {:.1} ns (difference {:+.1} ns)\n",
            o["ratio"].as_f64().unwrap_or(0.0),
            ns(g),
            ns(p),
            ns(g) - ns(p)
        );
        s
    })
}

/// One run on a fresh bus: messages per second, from the first publish to
/// the last event finished.
fn run(config: &BusConfig, b: &GroupBench, iterations: u64, side: Side) -> Result<f64> {
    let bus_name = unique("group");
    let bus = Bus::create(&bus_name.0, *config)?;
    bus.prefault()?;
    let receivers = match side {
        Side::Group => b.members,
        Side::Plain => 1,
    };
    let mut peers = Vec::new();
    for _ in 0..receivers {
        let args = [
            bus_name.0.clone(),
            match side {
                Side::Group => "group".to_owned(),
                Side::Plain => "plain".to_owned(),
            },
            b.count.to_string(),
            iterations.to_string(),
            b.claim_batch.to_string(),
        ];
        let mut p = match side {
            Side::Group => Peer::spawn_stoppable("bench-worker", &args)?,
            Side::Plain => Peer::spawn("bench-worker", &args)?,
        };
        if p.line(Duration::from_secs(30))? != "READY" {
            bail!("receiver process did not start");
        }
        peers.push(p);
    }
    let mut publisher = bus.publisher("bench source")?;
    let topic = publisher.topic_id(TOPIC)?;
    let payload: Vec<u8> = (0..b.size).map(|i| i as u8).collect();
    let start = Instant::now();
    let start_ns = now_ns();
    for i in 0..b.count {
        let mut loan = publisher.loan(&topic, b.size)?;
        let buf = loan.as_mut_slice();
        buf.copy_from_slice(&payload);
        buf[..8].copy_from_slice(&i.to_le_bytes());
        loan.commit();
        if i % (1 << 14) == 0 && crate::os::interrupted() {
            bail!("interrupted");
        }
    }
    let timeout = Duration::from_secs(60) + start.elapsed() * 4;
    if side == Side::Group {
        // Wait for the group to finish every event, then stop the members.
        let deadline = Instant::now() + timeout;
        loop {
            let done = bus
                .groups()
                .iter()
                .find(|g| g.name == GROUP)
                .map_or(0, |g| g.done);
            if done >= b.count {
                break;
            }
            if crate::os::interrupted() {
                bail!("interrupted");
            }
            for p in &mut peers {
                if p.child.try_wait()?.is_some() {
                    bail!(
                        "a group member exited early ({done} of {} events done)",
                        b.count
                    );
                }
            }
            if Instant::now() > deadline {
                bail!("the group finished {done} of {} events in time", b.count);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for p in &mut peers {
            p.close_stdin();
        }
    }
    let (mut last, mut total) = (start_ns, 0u64);
    for p in &mut peers {
        let line = p.line(timeout)?;
        let (at, n) = line
            .strip_prefix("DONE ")
            .and_then(|v| v.split_once(' '))
            .and_then(|(a, n)| Some((a.parse::<u64>().ok()?, n.parse::<u64>().ok()?)))
            .with_context(|| format!("unexpected answer from a receiver: {line}"))?;
        last = last.max(at);
        total += n;
        p.wait(Duration::from_secs(30))?;
    }
    if total != b.count {
        bail!("the receivers got {total} events of {} ({side:?})", b.count);
    }
    let secs = last.saturating_sub(start_ns) as f64 / 1e9;
    Ok(if secs > 0.0 {
        b.count as f64 / secs
    } else {
        0.0
    })
}

/// CPU work: `iterations` steps of a dependent multiply-add chain (about
/// 1 ns each; nothing to optimise away).
fn work(iterations: u64) -> u64 {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..iterations {
        x = std::hint::black_box(x.wrapping_mul(0x5851_f42d_4c95_7f2d).wrapping_add(i));
    }
    x
}

/// Nanoseconds per [`work`] iteration on this CPU: the best of 7 runs of
/// 2^22 iterations (the least disturbed).
fn calibrate() -> f64 {
    const N: u64 = 1 << 22;
    let mut best = f64::MAX;
    for _ in 0..7 {
        let t = Instant::now();
        std::hint::black_box(work(N));
        best = best.min(t.elapsed().as_nanos() as f64 / N as f64);
    }
    best.max(1e-3)
}

/// A receiver of the group benchmark: `bench-worker BUS group|plain COUNT
/// WORK_ITERATIONS CLAIM_BATCH`. Prints `DONE <ns of its last finished
/// event> <events>`.
pub(super) fn worker(args: &[String]) -> Result<ExitCode> {
    let [bus_name, side, count, iterations, claim_batch] = args else {
        bail!(BadInput(
            "bench-worker BUS group|plain COUNT WORK_ITERATIONS CLAIM_BATCH".into()
        ));
    };
    let count: u64 = count.parse()?;
    let iterations: u64 = iterations.parse()?;
    let bus = Bus::open(bus_name)?;
    bus.prefault()?;
    let group = side == "group";
    let stop = group.then(stdin_closed);
    let mut rx: Subscriber = if group {
        let options = GroupOptions {
            claim_batch: claim_batch.parse()?,
            ..GroupOptions::default()
        };
        bus.group_member_with::<AnyPolicy>(GROUP, "bench member", &[TOPIC], options)?
    } else {
        let mut s = bus.subscriber("bench plain")?;
        s.subscribe(TOPIC)?;
        s
    };
    println!("READY");
    std::io::stdout().flush()?;
    let (mut n, mut last, mut idle) = (0u64, 0u64, Instant::now());
    let mut check = 0u64;
    loop {
        if !group && n >= count {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(s) => {
                let seq = u64::from_le_bytes(s.payload()[..8].try_into()?);
                check = check.wrapping_add(work(iterations) ^ seq);
                last = now_ns();
                drop(s);
                n += 1;
                idle = Instant::now();
            }
            Err(RecvError::Timeout | RecvError::Empty) => {
                if stop.as_ref().is_some_and(|f| f.load(Ordering::Acquire)) {
                    break;
                }
                if idle.elapsed() > Duration::from_secs(60) {
                    bail!("no event for 60 s after {n}");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    std::hint::black_box(check);
    println!("DONE {last} {n}");
    Ok(ExitCode::SUCCESS)
}
