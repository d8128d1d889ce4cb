//! `shm-bus create` and `shm-bus remove`.

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use shm_bus_core::{Bus, BusError};

use super::check_name;
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
    let info = bus.info();
    println!(
        "created bus `{}`: {} segment, ring {} per producer, {} producers, {} subscribers, \
         {} topics, policy {}, mode {:o}",
        info.name,
        human_bytes(info.segment_bytes),
        human_bytes(info.config.ring_bytes),
        info.config.max_producers,
        info.config.max_subscribers,
        info.config.max_topics,
        info.config.policy,
        info.config.mode,
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- remove

pub(crate) fn remove(a: &RemoveArgs) -> Result<ExitCode> {
    let name = a.bus.as_str();
    check_name(name)?;
    match Bus::remove(name) {
        Ok(()) => {
            println!("removed bus `{name}`");
            Ok(ExitCode::SUCCESS)
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
            Err(anyhow!("bus `{name}` does not exist (see `shm-bus list`)"))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot remove bus `{name}`"))),
    }
}
