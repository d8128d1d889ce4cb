//! Throughput from one producer process to K subscriber processes, the
//! same loops for every system:
//!
//! ```text
//! producer:    for i in 0..count { payload[..8] = i; until try_send(payload) { wait } }
//! subscriber:  for i in 0..count { until let Some(seq) = try_recv() { wait }; check seq == i }
//! ```
//!
//! The producer writes the whole payload once (one copy from its own
//! buffer into the system); subscribers read and check the sequence
//! number only (zero-copy systems never touch the rest of the payload; the
//! socket necessarily copies all of it out of the kernel). Waiting is
//! [`Waiter`](crate::proc::Waiter), the same for all (iceoryx2's `send`
//! additionally blocks inside, see `systems::iox`). The rate is `count`
//! over the time from the producer's first publish to the last subscriber's
//! last receive (CLOCK_MONOTONIC, shared by all processes).
//!
//! Systems with batch APIs (shm-bus, as its own row) also run through
//! loops of bursts of [`BURST`] (the one-by-one loops above are untouched):
//!
//! ```text
//! producer:    for each burst of n = min(32, left) messages:
//!                  write seq i..i+n into the n payloads;
//!                  until all n are sent { sent += try_send_burst(rest); if 0 { wait } }
//! subscriber:  until count received { n = try_recv_burst(min(32, left), |seq| check seq == expected++);
//!                                     if n == 0 { wait } }
//! ```
//!
//! The n payloads of a burst are windows `size` bytes long, [`STRIDE`]
//! bytes apart, into one buffer of `size + 31 × STRIDE` bytes (so the
//! source stays as hot as the one-by-one producer's single buffer);
//! each carries its own sequence number in its first 8 bytes, which is all
//! a subscriber reads, and each is copied once, whole, into the system.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::proc::{self, Spec, Waiter};
use crate::systems::{
    BURST, BurstSink, BurstSource, Sink, Source, System, floor, iox, shmbus, uds,
};

/// Bytes between the starts of a burst's payloads in the producer's buffer.
const STRIDE: usize = 64;

#[derive(Serialize, Deserialize)]
struct ProducerReport {
    start_ns: u64,
    end_ns: u64,
}

#[derive(Serialize, Deserialize)]
struct SubscriberReport {
    done_ns: u64,
}

/// Runs one session; returns messages per second.
pub fn measure(spec: &Spec) -> Result<f64> {
    let subs: Vec<(&str, Spec)> = (0..spec.subscribers)
        .map(|k| {
            let mut s = spec.clone();
            s.index = k;
            ("tput-sub", s)
        })
        .collect();
    let timeout = Duration::from_secs(180);
    let reports = proc::session(("tput-pub", spec), &subs, timeout)?;
    let p: ProducerReport = serde_json::from_str(&reports.creator).context("producer result")?;
    let mut last = p.end_ns;
    for r in &reports.attachers {
        let r: SubscriberReport = serde_json::from_str(r).context("subscriber result")?;
        last = last.max(r.done_ns);
    }
    let secs = last.saturating_sub(p.start_ns) as f64 / 1e9;
    if secs <= 0.0 {
        bail!("no time elapsed");
    }
    Ok(spec.count as f64 / secs)
}

// ------------------------------------------------------------- children

pub fn producer_role(spec: &Spec) -> Result<()> {
    match spec.system {
        System::Floor => produce_with(floor::Producer::create(spec)?, spec),
        System::ShmBus => produce_with(shmbus::Producer::create(spec)?, spec),
        System::ShmBusPreloaned | System::FloorTwoLines => bail!("measured in latency only"),
        System::ShmBusBatched => {
            let src = shmbus::Producer::create(spec)?;
            proc::ready()?;
            proc::hear("GO")?;
            run_burst_producer(src, spec)
        }
        System::Iceoryx2 | System::Iceoryx2Preloaned => {
            produce_with(iox::Producer::create(spec)?, spec)
        }
        System::Uds => {
            let listening = uds::listen(spec)?;
            proc::ready()?;
            proc::hear("GO")?;
            let streams = listening.accept(spec.subscribers)?;
            run_producer(uds::Producer::new(streams), spec)
        }
    }
}

fn produce_with(src: impl Source, spec: &Spec) -> Result<()> {
    proc::ready()?;
    proc::hear("GO")?;
    run_producer(src, spec)
}

fn run_producer(mut src: impl Source, spec: &Spec) -> Result<()> {
    let mut payload: Vec<u8> = (0..spec.size).map(|i| i as u8).collect();
    let (start_ns, end_ns) = produce(&mut src, &mut payload, spec.count)?;
    proc::report(&ProducerReport { start_ns, end_ns })?;
    // Keep the resources until every subscriber has reported.
    proc::hear("FIN")?;
    drop(src);
    Ok(())
}

#[inline(never)]
fn produce(src: &mut impl Source, payload: &mut [u8], count: u64) -> Result<(u64, u64)> {
    let start = proc::mono_ns();
    for i in 0..count {
        payload[..8].copy_from_slice(&i.to_le_bytes());
        let mut waiter = Waiter::new();
        while !src.try_send(payload)? {
            waiter.wait()?;
        }
    }
    Ok((start, proc::mono_ns()))
}

fn run_burst_producer(mut src: impl BurstSource, spec: &Spec) -> Result<()> {
    let mut buf: Vec<u8> = (0..spec.size + (BURST - 1) * STRIDE)
        .map(|i| i as u8)
        .collect();
    let (start_ns, end_ns) = produce_bursts(&mut src, &mut buf, spec.size, spec.count)?;
    proc::report(&ProducerReport { start_ns, end_ns })?;
    proc::hear("FIN")?;
    drop(src);
    Ok(())
}

#[inline(never)]
fn produce_bursts(
    src: &mut impl BurstSource,
    buf: &mut [u8],
    size: usize,
    count: u64,
) -> Result<(u64, u64)> {
    let start = proc::mono_ns();
    let mut i = 0;
    while i < count {
        let n = (count - i).min(BURST as u64) as usize;
        for k in 0..n {
            buf[k * STRIDE..k * STRIDE + 8].copy_from_slice(&(i + k as u64).to_le_bytes());
        }
        let payloads: [&[u8]; BURST] = std::array::from_fn(|k| &buf[k * STRIDE..k * STRIDE + size]);
        let mut sent = 0;
        let mut waiter = Waiter::new();
        while sent < n {
            match src.try_send_burst(&payloads[sent..n])? {
                0 => waiter.wait()?,
                s if s <= n - sent => {
                    sent += s;
                    waiter = Waiter::new();
                }
                s => bail!("sent {s} of a burst of {}", n - sent),
            }
        }
        i += n as u64;
    }
    Ok((start, proc::mono_ns()))
}

pub fn subscriber_role(spec: &Spec) -> Result<()> {
    match spec.system {
        System::Floor => consume_with(floor::Consumer::open(spec)?, spec),
        System::ShmBus => consume_with(shmbus::Consumer::open(spec, "cmp.data")?, spec),
        System::ShmBusPreloaned | System::FloorTwoLines => bail!("measured in latency only"),
        System::ShmBusBatched => {
            let mut sink = shmbus::Consumer::open(spec, "cmp.data")?;
            proc::ready()?;
            proc::hear("GO")?;
            let done_ns = consume_bursts(&mut sink, spec.count)?;
            proc::report(&SubscriberReport { done_ns })?;
            Ok(())
        }
        System::Iceoryx2 | System::Iceoryx2Preloaned => {
            consume_with(iox::Consumer::open(spec)?, spec)
        }
        System::Uds => consume_with(uds::Consumer::new(uds::connect(spec)?, spec.size), spec),
    }
}

fn consume_with(mut sink: impl Sink, spec: &Spec) -> Result<()> {
    proc::ready()?;
    proc::hear("GO")?;
    let done_ns = consume(&mut sink, spec.count, 0, 1)?;
    proc::report(&SubscriberReport { done_ns })?;
    Ok(())
}

/// Receives `count` messages whose sequence numbers are `first`,
/// `first + step`, …; returns the time of the last receive.
#[inline(never)]
pub fn consume(sink: &mut impl Sink, count: u64, first: u64, step: u64) -> Result<u64> {
    let mut expected = first;
    for _ in 0..count {
        let mut waiter = Waiter::new();
        let seq = loop {
            if let Some(seq) = sink.try_recv()? {
                break seq;
            }
            waiter.wait()?;
        };
        if seq != expected {
            bail!("expected message {expected}, got {seq}");
        }
        expected += step;
    }
    Ok(proc::mono_ns())
}

/// Receives `count` messages, sequence numbers 0, 1, …, in bursts of at
/// most [`BURST`], checking every one; returns the time of the last
/// receive.
#[inline(never)]
fn consume_bursts(sink: &mut impl BurstSink, count: u64) -> Result<u64> {
    let mut expected = 0u64;
    let mut wrong: Option<(u64, u64)> = None;
    while expected < count {
        let limit = (count - expected).min(BURST as u64) as usize;
        let mut waiter = Waiter::new();
        let before = expected;
        let n = loop {
            let n = sink.try_recv_burst(limit, |seq| {
                if seq != expected && wrong.is_none() {
                    wrong = Some((expected, seq));
                }
                expected += 1;
            })?;
            if n > 0 {
                break n;
            }
            waiter.wait()?;
        };
        if let Some((e, got)) = wrong {
            bail!("expected message {e}, got {got}");
        }
        if expected - before != n as u64 || n > limit {
            bail!(
                "a burst of {n} (limit {limit}) handed over {} messages",
                expected - before
            );
        }
    }
    if expected != count {
        bail!("received {expected} messages, expected {count}");
    }
    Ok(proc::mono_ns())
}
