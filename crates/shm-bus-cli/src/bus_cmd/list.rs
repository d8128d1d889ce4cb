//! `shm-bus list`: every bus on the host, one row each.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use shm_bus_core::{Bus, BusError};

use super::{PREFIX, SHM_DIR, bus_names, shm_path, usage};
use crate::common;
use crate::format::{Left, Right, Table, human_bytes};

pub(crate) fn list(json_out: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for name in bus_names()? {
        let row = match Bus::open(&name) {
            Ok(bus) => {
                let info = bus.info();
                let u = usage(&info, &bus.groups());
                json!({
                    "bus": name,
                    "segment_bytes": info.segment_bytes,
                    "producers": u.producers,
                    "subscribers": u.subscribers,
                    "group_members": u.group_members,
                    "dead": u.dead,
                    "healthy": u.dead == 0,
                    "policy": info.config.policy.as_str(),
                })
            }
            // Vanished since the directory was read.
            Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => continue,
            Err(e) => {
                let size = std::fs::metadata(shm_path(&name)).map_or(0, |m| m.len());
                json!({
                    "bus": name,
                    "segment_bytes": size,
                    "producers": 0,
                    "subscribers": 0,
                    "group_members": 0,
                    "dead": 0,
                    "healthy": false,
                    "error": common::one_line(&anyhow::Error::new(e)),
                })
            }
        };
        rows.push(row);
    }
    let mut out = io::stdout().lock();
    if json_out {
        writeln!(out, "{}", Value::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(out, "no buses (nothing named {PREFIX}* in {SHM_DIR})")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        ("BUS", Left),
        ("SEGMENT", Right),
        ("PRODUCERS", Right),
        ("SUBSCRIBERS", Right),
        ("STATE", Left),
    ]);
    for r in &rows {
        let state = if let Some(e) = r["error"].as_str() {
            format!("unusable: {e}")
        } else if r["healthy"] == json!(true) {
            "healthy".to_owned()
        } else {
            format!("{} dead attached (run `shm-bus gc`)", r["dead"])
        };
        let count = |k: &str| {
            if r.get("error").is_some() {
                "-".to_owned()
            } else {
                r[k].to_string()
            }
        };
        t.row(vec![
            r["bus"].as_str().unwrap_or_default().to_owned(),
            human_bytes(r["segment_bytes"].as_u64().unwrap_or(0)),
            count("producers"),
            count("subscribers"),
            state,
        ]);
    }
    write!(out, "{}", t.render(""))?;
    Ok(ExitCode::SUCCESS)
}
