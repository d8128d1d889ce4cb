//! `shm-bus create | remove | list | inspect | gc | group`: the buses of a
//! host, and their worker groups.
//!
//! A bus `BUS` is the shared-memory object `/shm-bus.BUS`, which Linux
//! shows as the file `/dev/shm/shm-bus.BUS`; `list` and `gc` find buses by
//! listing that directory.
//!
//! One file per command: [`create`] (also `remove`), [`list`],
//! [`inspect`], [`gc`], [`group`] (`group list`, `group remove`, and the
//! JSON of a group that `inspect` shares); this file holds what they share
//! (finding buses, names, slot counts).
//!
//! A worker-group member holds a member slot of its group, not a
//! subscriber slot; everything here that counts attached processes (live
//! or dead) counts group members too.

use std::io;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{BusConfig, BusError, BusInfo, GroupInfo};

use crate::common::BadInput;

mod create;
mod gc;
mod group;
mod inspect;
mod list;

pub(crate) use create::{CreateCmd, RemoveArgs, create, remove};
pub(crate) use gc::gc;
pub(crate) use group::{GroupCommand, group, member_state};
pub(crate) use inspect::{holding_back, inspect};
pub(crate) use list::list;

/// Where POSIX shared-memory objects appear on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Prefix of a bus's object name in [`SHM_DIR`].
const PREFIX: &str = "shm-bus.";

/// The file that backs bus `name`.
pub(crate) fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{SHM_DIR}/{PREFIX}{name}"))
}

/// Refuses a bus name the OS cannot use (the segment layer's rule).
pub(crate) fn check_name(name: &str) -> Result<(), BadInput> {
    shm_bus_alloc::validate_name(name).map_err(|_| {
        BadInput(format!(
            "`{name}` is not a valid bus name: use 1 to 200 bytes without `/` (e.g. `quotes`)"
        ))
    })
}

/// The error of a failed `Bus::open`, with the bus named and a hint where
/// one helps.
fn open_error(name: &str, e: BusError) -> anyhow::Error {
    match e {
        BusError::Segment(shm_bus_alloc::Error::NotFound { .. }) => {
            anyhow!("bus `{name}` does not exist (see `shm-bus list`)")
        }
        e => anyhow::Error::new(e).context(format!("cannot open bus `{name}`")),
    }
}

/// Names of the buses on this host, sorted.
fn bus_names() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(SHM_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {SHM_DIR}")),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.with_context(|| format!("cannot list {SHM_DIR}"))?;
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_prefix(PREFIX))
        {
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// A bus's configuration as `create --json` and `inspect --json` show it.
fn config_json(c: &BusConfig) -> Value {
    json!({
        "ring_bytes": c.ring_bytes,
        "max_subscribers": c.max_subscribers,
        "max_producers": c.max_producers,
        "max_topics": c.max_topics,
        "policy": c.policy.as_str(),
        "mode": format!("{:o}", c.mode),
        "history_bytes": c.history_bytes,
        "max_groups": c.max_groups,
        "max_group_members": c.max_group_members,
    })
}

/// Counts of one bus's slots.
struct Usage {
    /// Producer slots held (by live or dead processes).
    producers: usize,
    /// Subscriber slots held (by live or dead processes).
    subscribers: usize,
    /// Worker-group member slots held (by live or dead processes).
    group_members: usize,
    /// Of all those, held by dead processes (not reaped yet; a member slot
    /// left with unfinished work by a member that departed alive does not
    /// count).
    dead: usize,
}

fn usage(info: &BusInfo, groups: &[GroupInfo]) -> Usage {
    let producers = info.producers.iter().filter(|p| p.attached).count();
    let subscribers = info.subscribers.len();
    let members = || groups.iter().flat_map(|g| &g.members);
    let dead = info
        .producers
        .iter()
        .filter(|p| p.attached && !p.alive)
        .count()
        + info.subscribers.iter().filter(|s| !s.alive).count()
        + members().filter(|m| !m.alive && !m.departed).count();
    Usage {
        producers,
        subscribers,
        group_members: members().count(),
        dead,
    }
}

/// Live processes attached to the bus (plus its creator, if alive). A
/// group member slot adopted by another member is that member's, counted
/// with its own slot.
fn live_users(info: &BusInfo, groups: &[GroupInfo]) -> usize {
    info.producers.iter().filter(|p| p.alive).count()
        + info.subscribers.iter().filter(|s| s.alive).count()
        + groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|m| m.alive && !m.adopted)
            .count()
        + usize::from(info.created_by.is_alive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_names_are_checked_like_the_segment_layer() {
        assert!(check_name("quotes").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(201)).is_err());
    }
}
