//! `shm-bus group list | remove`: the worker groups of a bus, and the JSON
//! of one group that `inspect --json` shares.
//!
//! A worker group lives in the segment: it keeps its place in the rings
//! (and, under the block policy, holds the producers back at its oldest
//! unfinished event) even while no member is alive. `group remove` is how
//! an operator lets it go. Without `--force` it refuses while live members
//! remain, naming them; with `--force` they are evicted (their next
//! receive answers `GroupRemoved`; `consume --group` then ends with a
//! clear line, exit 1).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use clap::Subcommand;
use serde_json::{Value, json};
use shm_bus_core::{Bus, BusInfo, GroupInfo, GroupRemoval, Policy};

use super::{check_name, open_error};
use crate::common::check_group_name;
use crate::format::{Left, Right, Table};
use crate::time::rfc3339;

#[derive(Subcommand, Clone, Debug)]
pub(crate) enum GroupCommand {
    /// List the worker groups of a bus, with their members.
    List {
        /// The bus name.
        bus: String,
        /// Print JSON: an array of groups as in `inspect --json`.
        #[arg(long)]
        json: bool,
    },
    /// Remove a worker group: it holds the producers back no more and its
    /// name is free. Refused while live members remain, unless --force.
    Remove {
        /// The bus name.
        bus: String,
        /// The group name.
        group: String,
        /// Remove it even while live members remain: they are evicted (their
        /// next receive answers GroupRemoved).
        #[arg(long)]
        force: bool,
        /// Print JSON: `{"bus", "group", "removed", "evicted": [pids],
        /// "in_use": [pids]}`.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn group(cmd: &GroupCommand) -> Result<ExitCode> {
    match cmd {
        GroupCommand::List { bus, json } => list(bus, *json),
        GroupCommand::Remove {
            bus,
            group,
            force,
            json,
        } => remove(bus, group, *force, *json),
    }
}

/// One group as `inspect --json`, `group list --json` show it.
pub(crate) fn group_json(g: &GroupInfo, policy: Policy) -> Value {
    let members: Vec<Value> = g
        .members
        .iter()
        .map(|m| {
            json!({
                "slot": m.slot,
                "pid": m.pid,
                "name": m.name,
                "alive": m.alive,
                "adopted": m.adopted,
                "departed": m.departed,
                "claimed": m.claimed,
                "done": m.done,
                "busy": m.busy,
            })
        })
        .collect();
    json!({
        "slot": g.slot,
        "name": g.name,
        "mode": g.mode.as_str(),
        "patterns": g.patterns,
        "members": members,
        "live_members": live_members(g),
        "redelivered": g.redelivered,
        "lost": g.lost,
        "lagged": g.lagged,
        "claimed": g.claimed,
        "done": g.done,
        "claims": g.claims,
        "backlog": g.backlog,
        "stalled": is_stalled(g, policy),
        "removing": g.removing,
        "created_ns": g.created_ns,
        "created_at": rfc3339(UNIX_EPOCH + Duration::from_nanos(g.created_ns)),
    })
}

/// Member slots held by a live process of their own (an adopted slot
/// belongs to a member counted with its own slot).
fn live_members(g: &GroupInfo) -> usize {
    g.members.iter().filter(|m| m.alive && !m.adopted).count()
}

/// Whether a group holds the producers back with nobody to move it: block
/// policy, unfinished events, no live member.
fn is_stalled(g: &GroupInfo, policy: Policy) -> bool {
    policy == Policy::Block && g.backlog > 0 && live_members(g) == 0 && !g.removing
}

/// The groups that hold block-policy producers back with no live member to
/// move them, as hint lines (for `inspect` and `publish`).
pub(crate) fn stalled_groups(info: &BusInfo, groups: &[GroupInfo]) -> Vec<String> {
    groups
        .iter()
        .filter(|g| is_stalled(g, info.config.policy))
        .map(|g| {
            format!(
                "worker group `{}` has no live member and {} unfinished record(s): it holds \
                 the producers back (block policy) until a member joins, or \
                 `shm-bus group remove {} {}` lets it go",
                g.name, g.backlog, info.name, g.name
            )
        })
        .collect()
}

/// The groups table of `inspect` and `group list`: one row per group, then
/// one indented row per member.
pub(crate) fn groups_human(groups: &[GroupInfo], policy: Policy) -> String {
    let mut t = Table::new(&[
        ("GROUP", Left),
        ("PID", Right),
        ("STATE", Left),
        ("CLAIMED", Right),
        ("DONE", Right),
        ("BACKLOG", Right),
        ("REDELIVERED", Right),
        ("LOST", Right),
        ("MODE / PATTERNS", Left),
    ]);
    for g in groups {
        let state = if g.removing {
            "REMOVING".to_owned()
        } else if is_stalled(g, policy) {
            "STALLED".to_owned()
        } else {
            format!("{} live", live_members(g))
        };
        t.row(vec![
            g.name.clone(),
            String::new(),
            state,
            g.claimed.to_string(),
            g.done.to_string(),
            g.backlog.to_string(),
            g.redelivered.to_string(),
            g.lost.to_string(),
            format!("{}  {}", g.mode, g.patterns.join(" ")),
        ]);
        for m in &g.members {
            let state = member_state(m.alive, m.adopted, m.departed, m.busy);
            t.row(vec![
                format!("  {}", m.name),
                m.pid.to_string(),
                state.to_owned(),
                m.claimed.to_string(),
                m.done.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    t.render("  ")
}

/// A member slot's state in words: `alive`, `busy` (holding a claim),
/// `adopted` (another member works through what it left), `departed` (its
/// member left alive, with unfinished events waiting to be adopted) or
/// `DEAD`.
pub(crate) fn member_state(alive: bool, adopted: bool, departed: bool, busy: bool) -> &'static str {
    match (alive, adopted, departed, busy) {
        (true, true, _, _) => "adopted",
        (true, false, _, true) => "busy",
        (true, false, _, false) => "alive",
        (false, _, true, _) => "departed",
        (false, _, false, _) => "DEAD",
    }
}

fn list(name: &str, json_out: bool) -> Result<ExitCode> {
    check_name(name)?;
    let bus = Bus::open(name).map_err(|e| open_error(name, e))?;
    let policy = bus.config().policy;
    let groups = bus.groups();
    let mut out = io::stdout().lock();
    if json_out {
        let v: Vec<Value> = groups.iter().map(|g| group_json(g, policy)).collect();
        writeln!(out, "{}", Value::Array(v))?;
    } else if groups.is_empty() {
        writeln!(
            out,
            "bus `{name}` has no worker groups ({} slots)",
            bus.config().max_groups
        )?;
    } else {
        let mut s = format!(
            "worker groups of `{name}`: {} of {} slots\n",
            groups.len(),
            bus.config().max_groups
        );
        s += &groups_human(&groups, policy);
        write!(out, "{s}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `pid 123 `worker-1`, pid 456 `worker-2``: the members of `group` with
/// these pids.
fn describe(groups: &[GroupInfo], group: &str, pids: &[u32]) -> String {
    let names = groups.iter().find(|g| g.name == group);
    let mut parts = Vec::new();
    for pid in pids {
        let name = names
            .and_then(|g| g.members.iter().find(|m| m.pid == *pid && !m.adopted))
            .map(|m| m.name.as_str());
        let mut p = format!("pid {pid}");
        if let Some(n) = name {
            let _ = write!(p, " `{n}`");
        }
        parts.push(p);
    }
    parts.join(", ")
}

fn remove(name: &str, group: &str, force: bool, json_out: bool) -> Result<ExitCode> {
    check_name(name)?;
    check_group_name(group)?;
    let bus = Bus::open(name).map_err(|e| open_error(name, e))?;
    let before = bus.groups();
    let removal = bus.remove_group(group, force).map_err(|e| {
        anyhow::Error::new(e).context(format!("cannot remove worker group `{group}`"))
    })?;
    let (removed, evicted, in_use) = match &removal {
        GroupRemoval::NotFound => {
            return Err(anyhow!(
                "worker group `{group}` does not exist on bus `{name}` (see `shm-bus group list \
                 {name}`)"
            ));
        }
        GroupRemoval::Removed => (true, Vec::new(), Vec::new()),
        GroupRemoval::Evicted(pids) => (true, pids.clone(), Vec::new()),
        GroupRemoval::InUse(pids) => (false, Vec::new(), pids.clone()),
    };
    if json_out {
        println!(
            "{}",
            json!({
                "bus": name,
                "group": group,
                "removed": removed,
                "evicted": evicted,
                "in_use": in_use,
            })
        );
    }
    if !removed {
        return Err(anyhow!(
            "worker group `{group}` not removed: {} live member(s): {}; stop them, or pass \
             --force to remove it anyway (they then get GroupRemoved)",
            in_use.len(),
            describe(&before, group, &in_use)
        ));
    }
    if !json_out {
        if evicted.is_empty() {
            println!("removed worker group `{group}` from bus `{name}`");
        } else {
            println!(
                "removed worker group `{group}` from bus `{name}` (--force); {} live member(s) \
                 were evicted and get GroupRemoved: {}",
                evicted.len(),
                describe(&before, group, &evicted)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
