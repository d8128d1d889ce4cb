//! `shm-bus publish | consume | tail | record | replay | hz`: moving
//! events by hand, recording and replaying them, measuring their rates.
//!
//! Every argument is checked before the bus is touched, so a bad topic,
//! pattern or size never leaves a freshly created bus behind. The three
//! commands open an existing bus; a missing one is exit 1 with a hint,
//! unless `--create` asks to create it with defaults (said on stderr).
//! A topic or pattern that parses as exact but looks like a mistyped
//! pattern (`md.{`, `md.(AAPL|`) draws a warning and is used literally.
//! When the bus is removed under them, all three end with a clear message
//! (exit 1).
//!
//! Ctrl-C (or SIGTERM) ends each of them cleanly: what was done so far is
//! reported as usual and the exit code is 0 (`"interrupted": true` in the
//! JSON of `publish` and `consume`).
//!
//! One file per command: [`publish`], [`consume`], [`tail`], [`record`],
//! [`replay`], [`hz`] (and `recording.rs`, the recording file format);
//! this file holds what they share (attaching, checking patterns,
//! subscribing).

use std::time::Duration;

use anyhow::{Context, Result};
use shm_bus_core::{Bus, BusConfig, BusError, Start, Subscriber};
use shm_bus_topic::Topic;

use crate::common::{self, BadInput};

mod consume;
mod hz;
mod publish;
mod record;
mod recording;
mod replay;
mod tail;

pub(crate) use consume::consume;
pub(crate) use hz::{HzArgs, hz};
pub(crate) use publish::publish;
pub(crate) use record::{RecordArgs, record};
pub(crate) use replay::{ReplayArgs, replay};
pub(crate) use tail::tail;

/// Longest single wait, so that Ctrl-C is noticed promptly.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Opens the bus after checking `check` against its configuration. A
/// missing bus is an error with a hint unless `create` (`--create`): then
/// `check` runs against the defaults first, so a request a new bus could
/// not satisfy leaves no bus behind.
fn attach_checked(
    name: &str,
    create: bool,
    check: impl Fn(&BusConfig) -> Result<(), BadInput>,
) -> Result<Bus> {
    match Bus::open(name) {
        Ok(bus) => {
            check(bus.config())?;
            return Ok(bus);
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) if create => {
            check(&BusConfig::default())?;
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
            return Err(common::missing_bus(name));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot open bus `{name}`")));
        }
    }
    let bus = common::create_default(name)?;
    // Someone may have created it meanwhile, with other settings.
    check(bus.config())?;
    Ok(bus)
}

/// What makes an exact topic look like a mistyped pattern, if anything:
/// a `{`, `}`, `(`, `|` or `)` (wildcard and range syntax), or a part that
/// starts or ends with `/` (regex syntax).
fn near_miss(topic: &str) -> Option<&'static str> {
    for c in ['{', '}', '(', '|', ')'] {
        if topic.contains(c) {
            return Some(match c {
                '{' | '}' => "`{`/`}` belong to a wildcard like `{name}`",
                '|' => "`|` belongs to a range like `(a|b)`",
                _ => "`(`/`)` belong to a range like `(a|b)`",
            });
        }
    }
    topic
        .split('.')
        .any(|part| part.starts_with('/') || part.ends_with('/'))
        .then_some("`/` belongs to a regex part like `/^a+$/`")
}

/// Warns (once per topic, on stderr) about each exact `topics` entry that
/// looks like a mistyped pattern; `what` is "topic" or "pattern".
fn warn_near_misses<'a>(command: &str, what: &str, topics: impl IntoIterator<Item = &'a str>) {
    let mut warned: Vec<&str> = Vec::new();
    for t in topics {
        if warned.contains(&t) {
            continue;
        }
        let exact = Topic::parse(t).is_ok_and(|p| p.is_exact());
        if let (true, Some(why)) = (exact, near_miss(t)) {
            eprintln!(
                "shm-bus: {command}: warning: {what} `{t}` looks like a mistyped pattern \
                 ({why}); it is matched literally, as an exact topic"
            );
            warned.push(t);
        }
    }
}

/// The error of a command whose bus was removed under it.
fn bus_removed(name: &str, command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{command}: bus `{name}` was removed (`shm-bus remove`) while in use; \
         nothing more can arrive on it"
    )
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

/// A subscriber on `bus` with every pattern, starting at `start`.
fn subscribe(bus: &Bus, name: &str, patterns: &[String], start: Start) -> Result<Subscriber> {
    let mut sub = bus
        .subscriber_from(name, start)
        .with_context(|| format!("cannot attach a subscriber to bus `{}`", bus.name()))?;
    for p in patterns {
        sub.subscribe(p)
            .with_context(|| format!("cannot subscribe to `{p}`"))?;
    }
    Ok(sub)
}
