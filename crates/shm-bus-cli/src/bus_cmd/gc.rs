//! `shm-bus gc`: reap dead slots, remove abandoned segments.
//!
//! ## What `gc` removes
//!
//! For every bus (or the one named) `gc` first reaps the slots of dead
//! producers, subscribers and worker-group members (a dead member that
//! left unfinished events keeps its slot until a live member of its group
//! adopts them; `gc` says how many are left so), then removes the segment
//! when
//!
//! - it cannot be opened because its creator died during initialisation,
//!   or it is corrupt (a bad header, a bad bus structure, too small); or
//! - no live process is attached to it any more and at least one attached
//!   process died (a dead slot was found or reaped); or
//! - with `--all-unused`: no live process is attached to it.
//!
//! "Attached" means holding a producer, subscriber or group member slot; the process
//! that created the bus also counts while it lives, since it may be about
//! to attach. A bus still being created by a live process, one made by an
//! incompatible build (version mismatch), a segment of another user of the
//! allocator (not a bus) and one we may not open are left alone and listed
//! under `skipped`. Just before removing, `gc` looks again for live
//! processes and checks that the name still refers to the segment it
//! examined; a process that attaches in the instant between that check
//! and the unlink keeps working on the unlinked segment, invisible to
//! others (as with any `remove`).

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{Bus, BusError};

use super::{bus_names, check_name, live_users, shm_path, usage};
use crate::GcArgs;
use crate::common;

/// What `gc` did.
#[derive(Default)]
struct GcOutcome {
    reaped_subscribers: u64,
    reaped_producers: u64,
    reaped_group_members: u64,
    /// Dead members' slots left in place: they hold unfinished events.
    kept_group_members: u64,
    /// `(bus, why)`.
    removed: Vec<(String, String)>,
    /// `(bus, why not examined or removed)`.
    skipped: Vec<(String, String)>,
    /// One line per bus examined, saying exactly what was done to it.
    lines: Vec<String>,
}

/// "1 dead subscriber slot and 2 dead producer slots" (and ", 3 dead
/// group member slots" when there are some).
fn slots(subscribers: u64, producers: u64, members: u64) -> String {
    let n = |k: u64, what: &str| format!("{k} dead {what} slot{}", if k == 1 { "" } else { "s" });
    if members == 0 {
        format!(
            "{} and {}",
            n(subscribers, "subscriber"),
            n(producers, "producer")
        )
    } else {
        format!(
            "{}, {} and {}",
            n(subscribers, "subscriber"),
            n(producers, "producer"),
            n(members, "group member")
        )
    }
}

pub(crate) fn gc(a: &GcArgs) -> Result<ExitCode> {
    let names = match &a.bus {
        Some(name) => {
            check_name(name)?;
            if identity(name).is_none() {
                return Err(anyhow!("bus `{name}` does not exist (see `shm-bus list`)"));
            }
            vec![name.clone()]
        }
        None => bus_names()?,
    };
    let mut outcome = GcOutcome::default();
    for name in &names {
        gc_one(name, a.all_unused, &mut outcome)?;
    }
    let mut out = io::stdout().lock();
    if a.json {
        let removed: Vec<Value> = outcome
            .removed
            .iter()
            .map(|(b, why)| json!({"bus": b, "reason": why}))
            .collect();
        let skipped: Vec<Value> = outcome
            .skipped
            .iter()
            .map(|(b, why)| json!({"bus": b, "reason": why}))
            .collect();
        let v = json!({
            "reaped_subscribers": outcome.reaped_subscribers,
            "reaped_producers": outcome.reaped_producers,
            "reaped_group_members": outcome.reaped_group_members,
            "kept_group_members": outcome.kept_group_members,
            "removed_segments": outcome.removed.iter().map(|(b, _)| b).collect::<Vec<_>>(),
            "removed": removed,
            "skipped": skipped,
        });
        writeln!(out, "{v}")?;
    } else {
        for line in &outcome.lines {
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "examined {} bus(es): freed {}; removed {} whole bus(es){}",
            names.len(),
            slots(
                outcome.reaped_subscribers,
                outcome.reaped_producers,
                outcome.reaped_group_members
            ),
            outcome.removed.len(),
            kept(outcome.kept_group_members),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// "; 2 dead group member slot(s) kept: ..." when dead members' slots
/// still hold unfinished events.
fn kept(members: u64) -> String {
    if members == 0 {
        return String::new();
    }
    format!(
        "; {members} dead group member slot(s) kept: they hold unfinished events that a live \
         member of their group adopts (or `shm-bus group remove` drops)"
    )
}

/// The (device, inode) that `/dev/shm/shm-bus.NAME` refers to now.
fn identity(name: &str) -> Option<(u64, u64)> {
    std::fs::metadata(shm_path(name))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Whether a failed open means the segment is debris that nobody can use.
fn is_debris(e: &BusError) -> bool {
    use shm_bus_alloc::Error as E;
    matches!(
        e,
        BusError::Segment(E::CreatorDied { .. } | E::Corrupt { .. } | E::TooSmall { .. })
            | BusError::Corrupt { .. }
    )
}

fn gc_one(name: &str, all_unused: bool, outcome: &mut GcOutcome) -> Result<()> {
    let Some(id) = identity(name) else {
        return Ok(()); // vanished
    };
    let bus = match Bus::open(name) {
        Ok(bus) => bus,
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => return Ok(()),
        Err(e) if is_debris(&e) => {
            let why = common::one_line(&anyhow::Error::new(e));
            return unlink_if_same(name, id, format!("unusable: {why}"), String::new(), outcome);
        }
        Err(e) => {
            let why = common::one_line(&anyhow::Error::new(e));
            outcome
                .lines
                .push(format!("`{name}`: left alone, not examined: {why}"));
            outcome.skipped.push((name.to_owned(), why));
            return Ok(());
        }
    };
    let before = usage(&bus.info(), &bus.groups());
    let reaped = bus.reap();
    let (subs, prods, members) = (
        u64::from(reaped.subscribers),
        u64::from(reaped.producers),
        u64::from(reaped.group_members),
    );
    outcome.reaped_subscribers += subs;
    outcome.reaped_producers += prods;
    outcome.reaped_group_members += members;
    let kept_members = bus
        .groups()
        .iter()
        .flat_map(|g| &g.members)
        .filter(|m| !m.alive && !m.departed)
        .count() as u64;
    outcome.kept_group_members += kept_members;
    let freed = if subs + prods + members > 0 {
        format!(
            "freed {}{}",
            slots(subs, prods, members),
            kept(kept_members)
        )
    } else {
        format!("no dead slots to free{}", kept(kept_members))
    };
    let someone_died = before.dead > 0 || subs + prods + members > 0;
    if !(someone_died || all_unused) {
        outcome.lines.push(format!(
            "`{name}`: {freed}; bus kept (nobody died; `--all-unused` would remove it \
             once no live process is attached)"
        ));
        return Ok(());
    }
    // Looked at after reaping, right before unlinking.
    let info = bus.info();
    let live = live_users(&info, &bus.groups());
    if live > 0 {
        let creator = usize::from(info.created_by.is_alive());
        let why = if live > creator {
            format!("{} live process(es) attached", live - creator)
        } else {
            format!("its creator, pid {}, is alive", info.created_by.pid)
        };
        outcome
            .lines
            .push(format!("`{name}`: {freed}; bus kept ({why})"));
        return Ok(());
    }
    let why = if someone_died {
        "every attached process died"
    } else {
        "no live process attached (--all-unused)"
    };
    drop(bus);
    unlink_if_same(name, id, why.to_owned(), format!("{freed}, then "), outcome)
}

/// Unlinks `name` if it still refers to the segment `id` examined;
/// `done` says what was done to it before (ends with "then ").
fn unlink_if_same(
    name: &str,
    id: (u64, u64),
    why: String,
    done: String,
    outcome: &mut GcOutcome,
) -> Result<()> {
    if identity(name) != Some(id) {
        // Removed, or replaced by a new bus meanwhile.
        outcome.lines.push(format!(
            "`{name}`: {done}left alone: removed or replaced by someone else meanwhile"
        ));
        return Ok(());
    }
    match Bus::remove(name) {
        Ok(()) => {
            outcome.lines.push(format!(
                "`{name}`: {done}removed the whole bus (segment {}): {why}",
                shm_path(name).display()
            ));
            outcome.removed.push((name.to_owned(), why));
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
            outcome.lines.push(format!(
                "`{name}`: {done}left alone: removed by someone else meanwhile"
            ));
        }
        Err(e) => {
            let why = common::one_line(&anyhow::Error::new(e));
            outcome
                .lines
                .push(format!("`{name}`: {done}not removed: {why}"));
            outcome
                .skipped
                .push((name.to_owned(), format!("cannot remove: {why}")));
        }
    }
    Ok(())
}
