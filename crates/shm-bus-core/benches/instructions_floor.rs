//! The floor of `instructions`: the same loop (one send and one receive
//! of a 64-byte message per iteration, in one process) on the bare
//! flag-per-slot ring of `shm-bus-floor`, the ring `shm-bus bench` and
//! compare/ measure the bus against. It has no topics, no headers, no
//! damage checks and one producer: what moving a message costs before
//! any of the bus's guarantees, so the bus's figure reads as this plus
//! what those guarantees cost.
//!
//! ```text
//! cargo bench -p shm-bus-core --bench instructions_floor
//! ```

use std::process::ExitCode;

use shm_bus_alloc::Segment;
use shm_bus_core::Bus;

mod common;

/// One `try_send` and one `try_recv` per message, reading the payload's
/// first byte as `instructions` does.
fn one_by_one(_bus: &Bus, n: u64) -> common::Result<u64> {
    let name = format!("instructions-floor-{}", std::process::id());
    let _ = Segment::unlink(&name);
    let run = || -> common::Result<u64> {
        let mut producer = shm_bus_floor::segment::create_ring(&name, 64, 1 << 20, 1)?;
        let mut consumer = shm_bus_floor::segment::open_ring(&name, 0)?;
        let payload = [7u8; 64];
        let mut sum = 0u64;
        for _ in 0..n {
            if !producer.try_send(&payload) {
                return Err("the floor ring is full with its consumer caught up".into());
            }
            sum += consumer.try_recv().ok_or("the floor ring lost a message")? & 1;
        }
        Ok(sum)
    };
    let r = run();
    let _ = Segment::unlink(&name);
    r
}

fn main() -> ExitCode {
    common::main(
        "instructions per send + receive on the floor ring (64 B, one by one)",
        one_by_one,
    )
}
