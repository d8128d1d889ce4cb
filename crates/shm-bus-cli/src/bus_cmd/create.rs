//! `shm-bus create` and `shm-bus remove`.

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use shm_bus_core::{Bus, BusError};

use super::check_name;
use crate::CreateArgs;
use crate::common;
use crate::format::human_bytes;

pub(crate) fn create(a: &CreateArgs) -> Result<ExitCode> {
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

pub(crate) fn remove(name: &str) -> Result<ExitCode> {
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
