//! `shm-bus consume`: receive, verify generated payloads, summarise.
//!
//! Generated payloads are checked per producer (`gaps`, `duplicates`,
//! `corrupt`) and per topic (`topic_gaps`: records missing within the
//! topics received, which a consumer of a subset of topics can rely on);
//! other payloads are counted as `foreign`.
//!
//! With `--group` it is a member of a worker group and gets a share of the
//! matching events: `gaps` and `topic_gaps` mean nothing for a share and
//! are `null`; `duplicates` counts events this member got twice, whatever
//! the order (an event adopted from a dead member comes after later ones);
//! `redelivered` counts events handed to it again after their first member
//! died. A group as a whole is checked by adding up its members'
//! `received`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde_json::json;
use shm_bus_core::{Bus, GroupMode, GroupOptions, RecvError, Start, Subscriber};
use shm_bus_topic::Topic;

use super::{WAIT_SLICE, bus_removed, check_patterns, per_sec, secs, subscribe, warn_near_misses};
use crate::ConsumeArgs;
use crate::bus_cmd::check_name;
use crate::common;
use crate::os::{catch_interrupts, interrupted};
use crate::payload::{Check, SeenSet, Tally};

/// Joins worker group `group` with `a`'s patterns (none: the group's) and
/// options. Without `--group-mode`, an existing group's mode is taken.
fn join_group(bus: &Bus, group: &str, a: &ConsumeArgs) -> Result<Subscriber> {
    if bus.config().max_groups == 0 {
        return Err(anyhow!(
            "bus `{}` has no worker groups (it was created with --max-groups 0)",
            bus.name()
        ));
    }
    let existing = bus
        .groups()
        .into_iter()
        .find(|g| g.name == group && !g.removing);
    if a.patterns.is_empty() && existing.is_none() {
        return Err(anyhow!(
            "worker group `{group}` does not exist on bus `{}`: give its PATTERN(s) to create it",
            bus.name()
        ));
    }
    let mode = a
        .group_mode
        .or(existing.map(|g| g.mode))
        .unwrap_or(GroupMode::AtLeastOnce);
    let patterns: Vec<&str> = a.patterns.iter().map(String::as_str).collect();
    let options = GroupOptions {
        mode,
        claim_batch: a.claim_batch,
    };
    bus.group_member_with(group, &a.name, &patterns, options)
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot join worker group `{group}` on bus `{}`",
                bus.name()
            ))
        })
}

pub(crate) fn consume(a: &ConsumeArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    check_patterns(&a.patterns)?;
    if let Some(g) = &a.group {
        common::check_group_name(g)?;
    }
    let silence = common::seconds("timeout", a.timeout)?;
    warn_near_misses("consume", "pattern", a.patterns.iter().map(String::as_str));
    let bus = common::attach(&a.bus, a.create)?;
    let mut sub = match &a.group {
        Some(g) => join_group(&bus, g, a)?,
        None => subscribe(&bus, &a.name, &a.patterns, Start::Now)?,
    };
    // The patterns in effect (a member joining with none takes the group's).
    let patterns: Vec<String> = sub.patterns().iter().map(ToString::to_string).collect();
    catch_interrupts();
    let mut tally = Tally::default();
    let mut seen = SeenSet::default();
    let mut group_duplicates: u64 = 0;
    let mut group_removed = false;
    let mut producers = std::collections::HashSet::new();
    let mut received: u64 = 0;
    let mut lagged: u64 = 0;
    let mut ring_errors: u64 = 0;
    let mut was_interrupted = false;
    let mut removed = false;
    let start = Instant::now();
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
                let check = tally.add(sample.payload(), sample.topic_id().0);
                if let (true, Check::Good { producer, seq, .. }) = (a.group.is_some(), check) {
                    if !seen.insert(producer, seq) {
                        group_duplicates += 1;
                    }
                }
                note(check, &mut producers);
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
            Err(RecvError::BusRemoved) => {
                removed = true;
                break;
            }
            Err(RecvError::GroupRemoved) => {
                group_removed = true;
                break;
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
    let waited = start.elapsed();
    let producers = producers.len();
    let redelivered = sub.redelivered();
    drop(sub);

    let mut out = io::stdout().lock();
    if a.json {
        let mut v = json!({
            "received": received,
            "lagged": lagged,
            "gaps": tally.gaps,
            "topic_gaps": tally.topic_gaps,
            "duplicates": tally.duplicates,
            "corrupt": tally.corrupt,
            "seconds": secs(span),
            "rate": per_sec(received, span),
            "foreign": tally.foreign,
            "producers": producers,
            "ring_errors": ring_errors,
            "interrupted": was_interrupted,
            "bus_removed": removed,
        });
        if let Some(g) = &a.group {
            // A member gets a share: sequence gaps mean nothing.
            v["gaps"] = serde_json::Value::Null;
            v["topic_gaps"] = serde_json::Value::Null;
            v["duplicates"] = json!(group_duplicates);
            v["group"] = json!(g);
            v["redelivered"] = json!(redelivered);
            v["group_removed"] = json!(group_removed);
        }
        writeln!(out, "{v}")?;
    } else if let Some(g) = &a.group {
        writeln!(
            out,
            "received {received} message(s) from {producers} producer(s) in {:.3} s ({} msg/s) \
             as member `{}` of worker group `{g}`: {redelivered} redelivered, \
             {group_duplicates} duplicate(s), {} corrupt, {} foreign, {lagged} lagged \
             (a member gets a share: gaps are not counted){}",
            span.as_secs_f64(),
            per_sec(received, span),
            a.name,
            tally.corrupt,
            tally.foreign,
            if was_interrupted { "; interrupted" } else { "" }
        )?;
    } else {
        writeln!(
            out,
            "received {received} message(s) from {producers} producer(s) in {:.3} s ({} msg/s): \
             {} gap(s) ({} within the topics received), {} duplicate(s), {} corrupt, \
             {} foreign, {lagged} lagged{}",
            span.as_secs_f64(),
            per_sec(received, span),
            tally.gaps,
            tally.topic_gaps,
            tally.duplicates,
            tally.corrupt,
            tally.foreign,
            if was_interrupted { "; interrupted" } else { "" }
        )?;
    }
    out.flush()?;
    if removed {
        return Err(bus_removed(&a.bus, "consume"));
    }
    if group_removed {
        return Err(anyhow!(
            "consume: worker group `{}` was removed (`shm-bus group remove --force`) while this \
             member was in it; nothing more comes to it",
            a.group.as_deref().unwrap_or_default()
        ));
    }
    let nothing = (received == 0 && lagged == 0 && !was_interrupted)
        .then(|| nothing_received(&bus, &patterns, a.group.as_deref(), waited));
    match a.count {
        Some(n) if received < n && !was_interrupted => Err(match nothing {
            Some(what) => anyhow!("consume: {what}; expected {n} message(s)"),
            None => anyhow!(
                "received {received} of {n} messages before {} s passed without one",
                a.timeout
            ),
        }),
        _ => {
            if let Some(what) = nothing {
                eprintln!("shm-bus: consume: {what}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// "nothing received in 1.0 s on `x` (patterns: md.**)", and a hint when
/// no topic on the bus matches the patterns.
fn nothing_received(
    bus: &Bus,
    patterns: &[String],
    group: Option<&str>,
    waited: Duration,
) -> String {
    let parsed: Vec<Topic> = patterns
        .iter()
        .filter_map(|p| Topic::parse(p).ok())
        .collect();
    let topics = bus.info().topics;
    let matching = topics
        .iter()
        .filter(|(_, t)| Topic::parse(t).is_ok_and(|t| parsed.iter().any(|p| p.matches(&t))))
        .count();
    let hint = if topics.is_empty() {
        "; nothing was ever published on this bus".to_owned()
    } else if matching == 0 {
        format!(
            "; none of the bus's {} topic(s) matches (see `shm-bus inspect {}`)",
            topics.len(),
            bus.name()
        )
    } else if let Some(g) = group {
        format!(
            "; a member of worker group `{g}` gets only its share of what is published after \
             the group was created (other members may have taken everything)"
        )
    } else {
        "; a subscriber gets only what is published after it subscribed".to_owned()
    };
    format!(
        "nothing received in {:.1} s on `{}` (patterns: {}){hint}",
        waited.as_secs_f64(),
        bus.name(),
        patterns.join(" ")
    )
}

/// Remembers the producer of a generated payload.
fn note(c: Check, producers: &mut std::collections::HashSet<u32>) {
    if let Check::Good { producer, .. } = c {
        producers.insert(producer);
    }
}
