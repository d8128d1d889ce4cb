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

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::proc::{self, Spec, Waiter};
use crate::systems::{Sink, Source, System, floor, iox, shmbus, uds};

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

pub fn subscriber_role(spec: &Spec) -> Result<()> {
    match spec.system {
        System::Floor => consume_with(floor::Consumer::open(spec)?, spec),
        System::ShmBus => consume_with(shmbus::Consumer::open(spec, "cmp.data")?, spec),
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
