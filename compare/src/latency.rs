//! One-way latency as half a ping-pong round trip between two processes,
//! both busy-polling (no pause instruction, no sleeping), the same loop for
//! every system:
//!
//! ```text
//! ping:  t0 = now; send(i); spin on try_recv() until it answers i; rtt = now - t0
//! echo:  spin on try_recv(); send back the sequence number it carried
//! ```
//!
//! `send` loans/writes the message in place where the system allows it
//! and writes only its first 8 bytes; the pre-loaned variants write into
//! the loan kept from the previous send and loan the next one right after
//! sending. A warm-up of `warmup` round trips
//! precedes the `count` timed ones; every timed round trip is one sample.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc::{self, Patience, Spec};
use crate::systems::{PingPong, System, floor, iox, shmbus, uds};

/// Runs one session and returns its round-trip times in ns.
pub fn measure(spec: &Spec) -> Result<Vec<u64>> {
    let mut ping = spec.clone();
    let mut echo = spec.clone();
    if spec.cpu.is_some() {
        ping.cpu = Some(0);
        echo.cpu = Some(1);
    }
    let timeout =
        Duration::from_secs(60) + Duration::from_micros(200) * (spec.count + spec.warmup) as u32;
    let reports = proc::session(("lat-ping", &ping), &[("lat-echo", echo)], timeout)?;
    let rtts: Vec<u64> = serde_json::from_str(&reports.creator).context("ping result")?;
    if rtts.len() as u64 != spec.count {
        bail!("expected {} samples, got {}", spec.count, rtts.len());
    }
    Ok(rtts)
}

// ------------------------------------------------------------- children

pub fn ping_role(spec: &Spec) -> Result<()> {
    match spec.system {
        System::Floor => ping_with(floor::Lat::create(spec)?, spec),
        System::FloorTwoLines => ping_with(floor::LatLines::create(spec, 2)?, spec),
        System::ShmBus => ping_with(shmbus::Lat::create(spec)?, spec),
        System::ShmBusPreloaned => ping_with(shmbus::LatPreloaned::create(spec)?, spec),
        System::ShmBusBatched => bail!("measured in throughput only"),
        System::Iceoryx2 | System::Iceoryx2Preloaned => ping_with(iox::Lat::create(spec)?, spec),
        System::Uds => {
            let listening = uds::listen(spec)?;
            proc::ready()?;
            proc::hear("GO")?;
            let stream = listening.accept(1)?.pop().context("no connection")?;
            run_ping(uds::Lat::new(stream, spec.size), spec)
        }
    }
}

fn ping_with(ep: impl PingPong, spec: &Spec) -> Result<()> {
    proc::ready()?;
    proc::hear("GO")?;
    run_ping(ep, spec)
}

fn run_ping(mut ep: impl PingPong, spec: &Spec) -> Result<()> {
    let rtts = ping_loop(&mut ep, spec.warmup, spec.count)?;
    proc::report(&rtts)?;
    proc::hear("FIN")?;
    drop(ep);
    Ok(())
}

#[inline(never)]
fn ping_loop(ep: &mut impl PingPong, warmup: u64, count: u64) -> Result<Vec<u64>> {
    let mut rtts = Vec::with_capacity(count as usize);
    let mut patience = Patience::new();
    for i in 0..warmup + count {
        let t0 = Instant::now();
        ep.send(i)?;
        let got = loop {
            if let Some(s) = ep.try_recv()? {
                break s;
            }
            patience.idle()?;
        };
        let rtt = t0.elapsed().as_nanos() as u64;
        patience.progress();
        if got != i {
            bail!("round trip {i} answered with {got}");
        }
        if i >= warmup {
            rtts.push(rtt);
        }
    }
    Ok(rtts)
}

pub fn echo_role(spec: &Spec) -> Result<()> {
    match spec.system {
        System::Floor => echo_with(floor::Lat::open(spec)?, spec),
        System::FloorTwoLines => echo_with(floor::LatLines::open(spec, 2)?, spec),
        System::ShmBus => echo_with(shmbus::Lat::open(spec)?, spec),
        System::ShmBusPreloaned => echo_with(shmbus::LatPreloaned::open(spec)?, spec),
        System::ShmBusBatched => bail!("measured in throughput only"),
        System::Iceoryx2 | System::Iceoryx2Preloaned => echo_with(iox::Lat::open(spec)?, spec),
        System::Uds => echo_with(uds::Lat::new(uds::connect(spec)?, spec.size), spec),
    }
}

fn echo_with(mut ep: impl PingPong, spec: &Spec) -> Result<()> {
    proc::ready()?;
    proc::hear("GO")?;
    echo_loop(&mut ep, spec.warmup + spec.count)?;
    proc::report(&"done")?;
    Ok(())
}

#[inline(never)]
fn echo_loop(ep: &mut impl PingPong, total: u64) -> Result<()> {
    let mut patience = Patience::new();
    let mut answered = 0;
    while answered < total {
        match ep.try_recv()? {
            Some(seq) => {
                ep.send(seq)?;
                answered += 1;
                patience.progress();
            }
            None => patience.idle()?,
        }
    }
    Ok(())
}
