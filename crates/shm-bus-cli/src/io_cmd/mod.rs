//! `shm-bus publish | consume | tail`: moving events by hand.
//!
//! Every argument is checked before the bus is touched, so a bad topic,
//! pattern or size never leaves a freshly created bus behind. The three
//! commands create the bus with defaults when it does not exist.
//!
//! Ctrl-C (or SIGTERM) ends each of them cleanly: what was done so far is
//! reported as usual and the exit code is 0 (`"interrupted": true` in the
//! JSON of `publish` and `consume`).
//!
//! One file per command: [`publish`], [`consume`], [`tail`]; this file
//! holds what they share (attaching, checking patterns, subscribing).

use std::time::Duration;

use anyhow::{Context, Result};
use shm_bus_core::{Bus, BusConfig, BusError, Subscriber};
use shm_bus_topic::Topic;

use crate::common::{self, BadInput};

mod consume;
mod publish;
mod tail;

pub(crate) use consume::consume;
pub(crate) use publish::publish;
pub(crate) use tail::tail;

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
