//! Instructions per publish + receive of a 64-byte message in one
//! process, one `publish` and one `try_recv` per message, counted by
//! callgrind: a figure that is the same on a quiet and a busy machine, so
//! a regression shows in any CI log. (`instructions_batch`: the same in
//! bursts.)
//!
//! ```text
//! cargo bench -p shm-bus-core --bench instructions
//! ```
//!
//! See `common/mod.rs` for the method; figures and their history are in
//! `docs/BENCHMARKS.md`.

use std::process::ExitCode;

use shm_bus_core::Bus;

mod common;

/// One `publish` and one `try_recv` per message.
fn one_by_one(bus: &Bus, n: u64) -> common::Result<u64> {
    let mut publisher = bus.publisher("hot")?;
    let mut subscriber = bus.subscriber("hot")?;
    subscriber.subscribe("hot.{x}")?;
    let topic = publisher.topic_id("hot.loop")?;
    let payload = [7u8; 64];
    let mut sum = 0u64;
    for _ in 0..n {
        publisher.publish(&topic, &payload)?;
        let s = subscriber.try_recv()?;
        sum += u64::from(s.payload()[0]);
    }
    Ok(sum)
}

fn main() -> ExitCode {
    common::main(
        "instructions per publish + receive (64 B, one by one)",
        one_by_one,
    )
}
