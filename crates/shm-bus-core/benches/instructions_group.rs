//! Instructions per publish + receive of a 64-byte message in one
//! process when the receiver is a worker-group member (claims of up to 8,
//! the default), counted by callgrind as `instructions` counts a
//! subscriber's: what a member's claims and bookkeeping cost over a
//! subscriber's receive, as a figure that does not move with the machine.
//!
//! ```text
//! cargo bench -p shm-bus-core --bench instructions_group
//! ```

use std::process::ExitCode;

use shm_bus_core::Bus;

mod common;

/// Eight `publish`es, then eight `try_recv`s by the member (one claim).
fn group_member(bus: &Bus, n: u64) -> common::Result<u64> {
    let mut publisher = bus.publisher("hot")?;
    let mut member = bus.group_member("hot", "m", &["hot.{x}"])?;
    let topic = publisher.topic_id("hot.loop")?;
    let payload = [7u8; 64];
    let mut sum = 0u64;
    for _ in 0..n / 8 {
        for _ in 0..8 {
            publisher.publish(&topic, &payload)?;
        }
        for _ in 0..8 {
            let s = member.try_recv()?;
            sum += u64::from(s.payload()[0]);
        }
    }
    Ok(sum)
}

fn main() -> ExitCode {
    common::main(
        "instructions per publish + receive (64 B, a group member, claims of 8)",
        group_member,
    )
}
