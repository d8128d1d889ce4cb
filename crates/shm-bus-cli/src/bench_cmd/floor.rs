//! The throughput floor: `shm-bus-floor`'s ring (the same definition as
//! compare/'s floor: flag-per-slot, heads published every 1/64 of the ring
//! or when caught up, cached minimum head) with one consumer, between this
//! process and a child, in a scratch segment. The latency floor (the same
//! crate's cache-line ping-pong) is run by `latency.rs`.
//!
//! No `unsafe` here: the raw copies are `shm-bus-floor`'s.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shm_bus_floor::segment;

use crate::BadInput;
use crate::peer::{Peer, unique};
use crate::time::now_ns;

/// Both sides give up after this long without progress.
const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// Floor: `count` messages of `size` bytes through the bare ring (about
/// `ring` bytes of slots) from this process to a child; the producer
/// writes the whole payload, the consumer reads the sequence number.
/// Messages per second, from the first send to the child's last receive.
pub(super) fn floor_throughput(size: usize, count: u64, ring: u64) -> Result<f64> {
    let name = unique("tputfloor");
    let mut producer = segment::create_ring(&name.0, size, ring, 1)?;
    let mut peer = Peer::spawn("bench-floor-sink", &[name.0.clone(), count.to_string()])?;
    if peer.line(Duration::from_secs(30))? != "READY" {
        bail!("floor consumer did not start");
    }
    let mut payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let start = Instant::now();
    let start_ns = now_ns();
    for i in 0..count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        let mut polls = 0u32;
        while !producer.try_send(&payload) {
            polls = polls.wrapping_add(1);
            if polls % (1 << 20) == 0 {
                if crate::os::interrupted() {
                    bail!("interrupted");
                }
                if peer.child.try_wait()?.is_some() {
                    bail!("floor consumer died after {i} of {count} messages");
                }
            }
            std::hint::spin_loop();
        }
    }
    let timeout = Duration::from_secs(60) + start.elapsed() * 4;
    let line = peer.line(timeout)?;
    let done: u64 = line
        .strip_prefix("DONE ")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unexpected answer from the floor consumer: {line}"))?;
    peer.wait(Duration::from_secs(30))?;
    let secs = done.saturating_sub(start_ns) as f64 / 1e9;
    Ok(if secs > 0.0 { count as f64 / secs } else { 0.0 })
}

/// The floor ring's consumer (child role `bench-floor-sink NAME COUNT`):
/// receives `count` messages, checks their sequence numbers, prints
/// `DONE <ns>` (the time of the last receive).
pub(super) fn floor_sink(args: &[String]) -> Result<ExitCode> {
    let [name, count] = args else {
        bail!(BadInput("bench-floor-sink NAME COUNT".into()));
    };
    let count: u64 = count.parse()?;
    let mut consumer = segment::open_ring(name, 0)?;
    println!("READY");
    std::io::stdout().flush()?;
    for i in 0..count {
        let mut polls = 0u32;
        let mut since: Option<Instant> = None;
        let seq = loop {
            if let Some(seq) = consumer.try_recv() {
                break seq;
            }
            polls = polls.wrapping_add(1);
            if polls % (1 << 20) == 0
                && since.get_or_insert_with(Instant::now).elapsed() > IDLE_LIMIT
            {
                bail!("floor producer stopped after {i} of {count} messages");
            }
            std::hint::spin_loop();
        };
        if seq != i {
            bail!("floor ring delivered {seq} instead of {i}");
        }
    }
    println!("DONE {}", now_ns());
    Ok(ExitCode::SUCCESS)
}
