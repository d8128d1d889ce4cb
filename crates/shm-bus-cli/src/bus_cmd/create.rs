//! `shm-bus create` and `shm-bus remove`.

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{Bus, BusError};

use super::{check_name, config_json};
use crate::CreateArgs;
use crate::common;
use crate::format::human_bytes;

/// `shm-bus create`: the bus's settings plus output options.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct CreateCmd {
    #[command(flatten)]
    pub args: CreateArgs,
    /// Print JSON: `{"bus", "segment_bytes", "config": {..}}`.
    #[arg(long)]
    pub json: bool,
    /// Allocate and map every page of the rings now, so that the first lap
    /// of publishing takes no page faults (costs `max_producers ×
    /// ring_bytes` of memory at once; other processes still map the pages
    /// on first touch, cheaply, or call `Bus::prefault`).
    #[arg(long)]
    pub prefault: bool,
}

/// Options of `remove`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct RemoveArgs {
    /// The bus name.
    pub bus: String,
    /// Remove it even while live processes are attached (they then get
    /// `BusRemoved`).
    #[arg(long)]
    pub force: bool,
    /// Print JSON: `{"bus", "removed", "attached": [{"pid", "name"}]}`.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn create(cmd: &CreateCmd) -> Result<ExitCode> {
    let a = &cmd.args;
    check_name(&a.bus)?;
    let config = common::config_of(a)?;
    let bus = match Bus::create(&a.bus, config) {
        Ok(bus) => bus,
        Err(BusError::Segment(shm_bus_alloc::Error::AlreadyExists { .. })) => {
            return Err(anyhow!(
                "bus `{}` already exists; remove it first or use it as is",
                a.bus
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot create bus `{}`", a.bus)));
        }
    };
    if cmd.prefault {
        bus.prefault().map_err(|e| {
            anyhow::Error::new(e).context(format!("bus `{}` was created, but", a.bus))
        })?;
    }
    let info = bus.info();
    if cmd.json {
        let v = json!({
            "prefaulted": cmd.prefault,
            "bus": info.name,
            "segment_bytes": info.segment_bytes,
            "max_payload": info.max_payload,
            "config": config_json(&info.config),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "created bus `{}`: {} segment, ring {} per producer, {} producers, {} subscribers, \
         {} topics, {} worker groups of up to {} members, policy {}, mode {:o}; payloads up \
         to {}{}",
        info.name,
        human_bytes(info.segment_bytes),
        human_bytes(info.config.ring_bytes),
        info.config.max_producers,
        info.config.max_subscribers,
        info.config.max_topics,
        info.config.max_groups,
        info.config.max_group_members,
        info.config.policy,
        info.config.mode,
        human_bytes(info.max_payload as u64),
        if cmd.prefault {
            "; rings prefaulted"
        } else {
            ""
        },
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- remove

/// A live process holding a slot of the bus.
struct Attached {
    pid: u32,
    name: String,
    role: &'static str,
    /// The worker group, for a group member.
    group: Option<String>,
}

/// The live processes holding a producer, subscriber or worker-group
/// member slot of `bus` (one entry per slot: producers, subscribers, then
/// group members).
fn live_attached(bus: &Bus) -> Vec<Attached> {
    let m = bus.members();
    let producers = m.producers.into_iter().map(|m| (m, "producer"));
    let subscribers = m.subscribers.into_iter().map(|m| (m, "subscriber"));
    let mut out: Vec<Attached> = producers
        .chain(subscribers)
        .filter(|(m, _)| m.is_alive())
        .map(|(m, role)| Attached {
            pid: m.pid,
            name: m.name,
            role,
            group: None,
        })
        .collect();
    for g in bus.groups() {
        for m in g.members.into_iter().filter(|m| m.alive && !m.adopted) {
            out.push(Attached {
                pid: m.pid,
                name: m.name,
                role: "group member",
                group: Some(g.name.clone()),
            });
        }
    }
    out
}

/// Most processes the refusal line names (all are in `--json`).
const NAMED: usize = 5;

/// `pid 123 `shm-bus consume` (subscriber), ...`.
fn describe(attached: &[Attached]) -> String {
    let mut parts: Vec<String> = attached
        .iter()
        .take(NAMED)
        .map(|a| match &a.group {
            Some(g) => format!("pid {} `{}` ({} of `{g}`)", a.pid, a.name, a.role),
            None => format!("pid {} `{}` ({})", a.pid, a.name, a.role),
        })
        .collect();
    if attached.len() > NAMED {
        parts.push(format!("and {} more", attached.len() - NAMED));
    }
    parts.join(", ")
}

/// `shm-bus remove`: refuses while live processes hold a slot, unless
/// `--force`. Slots of dead processes do not count. A segment that cannot
/// be opened as a bus (damaged, half-created, another layout version) has
/// nobody to ask and is removed as before.
pub(crate) fn remove(a: &RemoveArgs) -> Result<ExitCode> {
    let name = a.bus.as_str();
    check_name(name)?;
    let attached = match Bus::open(name) {
        Ok(bus) => live_attached(&bus),
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
            return Err(anyhow!("bus `{name}` does not exist (see `shm-bus list`)"));
        }
        Err(_) => Vec::new(),
    };
    let refuse = !attached.is_empty() && !a.force;
    if !refuse {
        match Bus::remove(name) {
            Ok(()) => {}
            Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
                return Err(anyhow!("bus `{name}` does not exist (see `shm-bus list`)"));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!("cannot remove bus `{name}`")));
            }
        }
    }
    if a.json {
        let list: Vec<Value> = attached
            .iter()
            .map(|p| match &p.group {
                Some(g) => json!({"pid": p.pid, "name": p.name, "role": p.role, "group": g}),
                None => json!({"pid": p.pid, "name": p.name, "role": p.role}),
            })
            .collect();
        println!(
            "{}",
            json!({"bus": name, "removed": !refuse, "attached": list})
        );
    }
    if refuse {
        return Err(anyhow!(
            "bus `{name}` not removed: {} live process(es) attached: {}; stop them, or pass \
             --force to remove it anyway (they then get BusRemoved)",
            attached.len(),
            describe(&attached)
        ));
    }
    if !a.json {
        if attached.is_empty() {
            println!("removed bus `{name}`");
        } else {
            println!(
                "removed bus `{name}` (--force); {} live process(es) were attached and get \
                 BusRemoved: {}",
                attached.len(),
                describe(&attached)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
