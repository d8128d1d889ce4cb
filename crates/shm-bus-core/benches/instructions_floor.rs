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
use std::ptr::NonNull;

use shm_bus_core::Bus;
use shm_bus_floor::{Consumer, Producer, RingLayout};

mod common;

/// One `try_send` and one `try_recv` per message on a 1 MiB floor ring
/// (in heap memory: the instructions are the same as in a shared
/// mapping), as `instructions` publishes and receives.
fn one_by_one(_bus: &Bus, n: u64) -> common::Result<u64> {
    let layout = RingLayout::new(64, 1 << 20, 1)?;
    let mut mem = vec![0u128; layout.bytes().div_ceil(16) + 4];
    let skew = mem.as_ptr().align_offset(64);
    let base = NonNull::new(mem[skew..].as_mut_ptr().cast::<u8>()).ok_or("null heap pointer")?;
    let len = (mem.len() - skew) * 16;
    // SAFETY: `mem` (zeroed, 64-byte aligned from `skew` on) outlives both
    // handles, which are dropped at the end of this function before it, and
    // are its only users: one producer and its one consumer, with one layout.
    let (mut producer, mut consumer) = unsafe {
        (
            Producer::new(base, len, layout, ())?,
            Consumer::new(base, len, layout, 0, ())?,
        )
    };
    let payload = [7u8; 64];
    let mut sum = 0u64;
    for _ in 0..n {
        if !producer.try_send(&payload) {
            return Err("the floor ring is full with its consumer caught up".into());
        }
        sum += consumer.try_recv().ok_or("the floor ring lost a message")? & 1;
    }
    Ok(sum)
}

fn main() -> ExitCode {
    common::main(
        "instructions per send + receive on the floor ring (64 B, one by one)",
        one_by_one,
    )
}
