//! `shm-bus bench throughput`: one producer to K subscriber processes,
//! between two runs of the floor ring, and the subscriber child.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use shm_bus_core::{Bus, BusConfig, RecvError};

use super::floor::floor_throughput;
use super::{check_size, print_result, ring_for};
use crate::BadInput;
use crate::peer::{Peer, unique};
use crate::time::now_ns;

pub(super) fn throughput(
    size: usize,
    count: u64,
    subscribers: u32,
    json: bool,
) -> Result<ExitCode> {
    check_size(size)?;
    if subscribers == 0 {
        return Err(BadInput("--subscribers must be at least 1".into()).into());
    }
    let ring = ring_for(size);
    let config = BusConfig::default().with_ring_bytes(ring);
    if size > config.max_payload() {
        return Err(BadInput(format!("--size {size} is larger than the ring allows")).into());
    }
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();

    // The floor first, then the bus, then the floor again: report the
    // better floor, as the bus figure is compared against it.
    let floor1 = floor_throughput(size, count, ring)?;
    let bus_rate = bus_throughput(&config, size, count, subscribers, &payload)?;
    let floor2 = floor_throughput(size, count, ring)?;
    let floor = floor1.max(floor2);
    let out = json!({
        "size": size,
        "subscribers": subscribers,
        "count": count,
        "msgs_per_sec": bus_rate.round(),
        "bytes_per_sec": (bus_rate * size as f64).round(),
        "floor_msgs_per_sec": floor.round(),
        "floor_runs_msgs_per_sec": [floor1.round(), floor2.round()],
        "ratio_to_floor": if floor > 0.0 { bus_rate / floor } else { 0.0 },
    });
    print_result(&out, json, |o| {
        format!(
            "throughput, {size} B, 1 producer -> {subscribers} subscriber process(es), {count} messages\n  \
             shm-bus  {:.0} msg/s  {:.1} MB/s\n  \
             floor    {:.0} msg/s  (bare SPSC ring, 2 processes; runs before and after: {} / {})\n  \
             ratio    {:.2}x the floor\n",
            bus_rate,
            bus_rate * size as f64 / 1e6,
            floor,
            o["floor_runs_msgs_per_sec"][0],
            o["floor_runs_msgs_per_sec"][1],
            o["ratio_to_floor"].as_f64().unwrap_or(0.0),
        )
    })
}

fn bus_throughput(
    config: &BusConfig,
    size: usize,
    count: u64,
    subscribers: u32,
    payload: &[u8],
) -> Result<f64> {
    let bus_name = unique("tput");
    let bus = Bus::create(&bus_name.0, *config)?;
    let mut sinks = Vec::new();
    for _ in 0..subscribers {
        let mut p = Peer::spawn("bench-sink", &[bus_name.0.clone(), count.to_string()])?;
        if p.line(Duration::from_secs(30))? != "READY" {
            bail!("subscriber process did not start");
        }
        sinks.push(p);
    }
    let mut publisher = bus.publisher("bench source")?;
    let topic = publisher.topic_id("bench.data")?;
    let start = Instant::now();
    let start_ns = now_ns();
    for i in 0..count {
        let mut loan = publisher.loan(&topic, size)?;
        let buf = loan.as_mut_slice();
        buf.copy_from_slice(payload);
        buf[..8].copy_from_slice(&i.to_le_bytes());
        loan.commit();
        if i % (1 << 16) == 0 && crate::os::interrupted() {
            bail!("interrupted");
        }
    }
    let timeout = Duration::from_secs(60) + start.elapsed() * 4;
    let mut last = start_ns;
    for s in &mut sinks {
        let line = s.line(timeout)?;
        let done: u64 = line
            .strip_prefix("DONE ")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected answer from a subscriber: {line}"))?;
        last = last.max(done);
        s.wait(Duration::from_secs(30))?;
    }
    let secs = (last.saturating_sub(start_ns)) as f64 / 1e9;
    Ok(if secs > 0.0 { count as f64 / secs } else { 0.0 })
}

/// A subscriber of the throughput benchmark.
pub(super) fn sink(args: &[String]) -> Result<ExitCode> {
    let [bus_name, count] = args else {
        bail!(BadInput("bench-sink BUS COUNT".into()));
    };
    let count: u64 = count.parse()?;
    let bus = Bus::open(bus_name)?;
    let mut subscriber = bus.subscriber("bench sink")?;
    subscriber.subscribe("bench.data")?;
    println!("READY");
    std::io::stdout().flush()?;
    // `recv` spins briefly, then sleeps on the bus's futex: with more busy
    // processes than cores, a subscriber that only spun would take the CPU
    // the producer needs.
    let mut next = 0u64;
    while next < count {
        match subscriber.recv_timeout(Duration::from_secs(20)) {
            Ok(s) => {
                let seq = u64::from_le_bytes(s.payload()[..8].try_into()?);
                if seq != next {
                    bail!("expected message {next}, got {seq}");
                }
                next += 1;
            }
            Err(RecvError::Timeout) => bail!("no message for 20 s after {next} of {count}"),
            Err(e) => return Err(e.into()),
        }
    }
    println!("DONE {}", now_ns());
    Ok(ExitCode::SUCCESS)
}
