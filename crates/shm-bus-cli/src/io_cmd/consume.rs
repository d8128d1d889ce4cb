//! `shm-bus consume`: receive, verify generated payloads, summarise.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::json;
use shm_bus_core::RecvError;

use super::{WAIT_SLICE, check_patterns, per_sec, secs, subscribe};
use crate::ConsumeArgs;
use crate::bus_cmd::check_name;
use crate::common;
use crate::os::{catch_interrupts, interrupted};
use crate::payload::{Check, Tally};

pub(crate) fn consume(a: &ConsumeArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    check_patterns(&a.patterns)?;
    let silence = common::seconds("timeout", a.timeout)?;
    let bus = common::attach(&a.bus)?;
    let mut sub = subscribe(&bus, &a.name, &a.patterns)?;
    catch_interrupts();
    let mut tally = Tally::default();
    let mut producers = std::collections::HashSet::new();
    let mut received: u64 = 0;
    let mut lagged: u64 = 0;
    let mut ring_errors: u64 = 0;
    let mut was_interrupted = false;
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut quiet_since = Instant::now();
    loop {
        if a.count.is_some_and(|n| received >= n) {
            break;
        }
        if interrupted() {
            was_interrupted = true;
            break;
        }
        let quiet = quiet_since.elapsed();
        if quiet >= silence {
            break;
        }
        match sub.recv_timeout((silence - quiet).min(WAIT_SLICE)) {
            Ok(sample) => {
                // Under Overwrite the sample is a copy already validated
                // against the producer (a record rewritten while it was
                // copied is reported in `Lagged(n)` instead).
                note(tally.add(sample.payload()), &mut producers);
                received += 1;
                let now = Instant::now();
                first.get_or_insert(now);
                last = Some(now);
                quiet_since = now;
            }
            Err(RecvError::Timeout | RecvError::Empty) => {}
            Err(RecvError::Lagged(n)) => {
                lagged += n;
                quiet_since = Instant::now();
            }
            Err(e) => {
                ring_errors += 1;
                eprintln!("shm-bus: consume: {e} (that producer's ring is skipped from now on)");
            }
        }
    }
    let span = match (first, last) {
        (Some(f), Some(l)) => l - f,
        _ => Duration::ZERO,
    };
    let producers = producers.len();
    drop(sub);

    let mut out = io::stdout().lock();
    if a.json {
        let v = json!({
            "received": received,
            "lagged": lagged,
            "gaps": tally.gaps,
            "duplicates": tally.duplicates,
            "corrupt": tally.corrupt,
            "seconds": secs(span),
            "rate": per_sec(received, span),
            "foreign": tally.foreign,
            "producers": producers,
            "ring_errors": ring_errors,
            "interrupted": was_interrupted,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "received {received} message(s) from {producers} producer(s) in {:.3} s ({} msg/s): \
             {} gap(s), {} duplicate(s), {} corrupt, {} not generated, {lagged} lagged{}",
            span.as_secs_f64(),
            per_sec(received, span),
            tally.gaps,
            tally.duplicates,
            tally.corrupt,
            tally.foreign,
            if was_interrupted { "; interrupted" } else { "" }
        )?;
    }
    out.flush()?;
    match a.count {
        Some(n) if received < n && !was_interrupted => Err(anyhow!(
            "received {received} of {n} messages before {} s passed without one",
            a.timeout
        )),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Remembers the producer of a generated payload.
fn note(c: Check, producers: &mut std::collections::HashSet<u32>) {
    if let Check::Good { producer, .. } = c {
        producers.insert(producer);
    }
}
