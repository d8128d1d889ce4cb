//! Instructions per message of 64-byte messages published and received
//! in bursts of 32 (`publish_many`, `try_recv_many`) in one process,
//! counted by callgrind (see `instructions.rs`).
//!
//! ```text
//! cargo bench -p shm-bus-core --bench instructions_batch
//! ```

use std::process::ExitCode;

use shm_bus_core::Bus;

mod common;

const BATCH: usize = 32;

/// Bursts of `BATCH` through `publish_many` and `try_recv_many`.
fn in_bursts(bus: &Bus, n: u64) -> common::Result<u64> {
    let mut publisher = bus.publisher("hot")?;
    let mut subscriber = bus.subscriber("hot")?;
    subscriber.subscribe("hot.{x}")?;
    let topic = publisher.topic_id("hot.loop")?;
    let payload = [7u8; 64];
    let burst = [&payload[..]; BATCH];
    let mut sum = 0u64;
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH as u64) as usize;
        publisher.publish_many(&topic, burst[..k].iter().copied())?;
        let got = subscriber.try_recv_many(k, |s| sum += u64::from(s.payload()[0]))?;
        if got != k {
            return Err(format!("a burst of {k} came back as {got}").into());
        }
        left -= k as u64;
    }
    Ok(sum)
}

fn main() -> ExitCode {
    common::main(
        "instructions per message (64 B, bursts of 32: publish_many + try_recv_many)",
        in_bursts,
    )
}
