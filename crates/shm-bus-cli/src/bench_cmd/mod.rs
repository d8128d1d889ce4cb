//! `shm-bus bench latency | throughput | group`: measurements between real
//! processes, each next to a bare shared-memory floor measured in the same
//! run (these VMs move vCPUs between core pairs every few minutes, so only
//! same-run comparisons mean anything).
//!
//! - **latency**: one-way time as half the round trip of a ping-pong. This
//!   process publishes on `bench.ping`; a child subscribed to it answers on
//!   `bench.pong`; both busy-poll (no pause instruction). Payloads are
//!   loaned in the ring and only their first 8 bytes (a sequence number)
//!   are written: zero copy, as iceoryx2's benchmark loans uninitialised
//!   samples. The floor is `shm-bus-floor`'s cache-line ping-pong between
//!   the same two processes. Bus and floor alternate in rounds and every
//!   round's medians are reported.
//! - **throughput**: this process publishes `--count` messages (the whole
//!   payload written, once, into the ring) to K subscriber processes that
//!   read each message's sequence number; the rate is `count` over the time
//!   from the first publish to the last subscriber's last receive. The
//!   floor is `shm-bus-floor`'s ring (64-byte-aligned slots, each committed
//!   by a flag in its first word; the consumer's head published every 1/64
//!   of the ring or when caught up) with one consumer, moving the same
//!   messages, written and read the same way, between two processes.
//!   Subscribers receive with `recv` (spin 50 µs, then sleep on the bus's
//!   futex), as applications do; the floor's consumer only spins.
//!
//! Both floors are defined once in `crates/shm-bus-floor`, which compare/
//! also uses, so this command's ratios and compare/'s measure against the
//! same thing.
//!
//! - **group**: a worker group of K member processes against one plain
//!   subscriber process, each event costing `--work-ns` of busy-spin, in
//!   interleaved rounds (see [`group`]): the floor of a member is a plain
//!   subscriber doing the same work.
//!
//! [`latency`] and [`throughput`] hold the bus measurements and their
//! child processes; [`floor`] runs the throughput floor; [`group`] the
//! worker-group benchmark and its receiver child.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use crate::BadInput;

mod floor;
mod group;
mod latency;
mod throughput;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// One-way latency between two processes (half a ping-pong round trip).
    Latency {
        /// Payload bytes (at least 8; `K`, `M` suffixes).
        #[arg(long, default_value = "64", value_parser = crate::common::parse_size_usize, allow_negative_numbers = true)]
        size: usize,
        /// Round trips measured (after a warm-up of 10%).
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Rounds, alternating bus and floor.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Also write every measured bus round trip to this file, in the
        /// order sent: CSV `round,message,rtt_ns`, where `message` counts
        /// every ping published (warm-ups included), so it is the ping's
        /// record index in its ring.
        #[arg(long, value_name = "FILE")]
        raw: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Messages per second from one producer to K subscriber processes.
    Throughput {
        /// Payload bytes (at least 8; `K`, `M` suffixes).
        #[arg(long, default_value = "64", value_parser = crate::common::parse_size_usize, allow_negative_numbers = true)]
        size: usize,
        /// Messages (default: 1,000,000, fewer for large payloads so that
        /// about 4 GiB move).
        #[arg(long)]
        count: Option<u64>,
        /// Subscriber processes.
        #[arg(long, default_value_t = 1)]
        subscribers: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Events per second through a worker group of K member processes, each
    /// event costing --work-ns of work, against one plain subscriber
    /// process doing the same work, in interleaved rounds.
    Group {
        /// Member processes of the group.
        #[arg(long, default_value_t = 2)]
        members: u32,
        /// Busy-spin per event, in nanoseconds (0: the cost of handing
        /// events out, a member's claim against a subscriber's receive).
        #[arg(long, default_value_t = 1000)]
        work_ns: u64,
        /// Events per run (default: about half a second of the plain
        /// subscriber's work; 2,000,000 with no work).
        #[arg(long)]
        count: Option<u64>,
        /// Payload bytes (at least 8; `K`, `M` suffixes).
        #[arg(long, default_value = "64", value_parser = crate::common::parse_size_usize, allow_negative_numbers = true)]
        size: usize,
        /// Rounds, each a group run and a plain run in alternating order.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
        /// Most events one claim takes.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
        claim_batch: u32,
        /// Ring bytes (a power of two; `K`, `M`, `G` suffixes). Default: a
        /// ring that holds the whole run, so the producer never waits for
        /// space.
        #[arg(long, value_parser = crate::common::parse_size)]
        ring_bytes: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: BenchCommand) -> Result<ExitCode> {
    crate::os::catch_interrupts();
    match cmd {
        BenchCommand::Latency {
            size,
            count,
            rounds,
            raw,
            json,
        } => latency::latency(size, count, rounds.max(1), raw.as_deref(), json),
        BenchCommand::Throughput {
            size,
            count,
            subscribers,
            json,
        } => {
            let count = count.unwrap_or_else(|| {
                (4u64 << 30)
                    .div_ceil(size.max(1) as u64)
                    .clamp(1000, 1_000_000)
            });
            throughput::throughput(size, count, subscribers, json)
        }
        BenchCommand::Group {
            members,
            work_ns,
            count,
            size,
            rounds,
            claim_batch,
            ring_bytes,
            json,
        } => group::group(
            group::GroupBench {
                members,
                work_ns,
                count: count.unwrap_or_else(|| group::default_count(work_ns)),
                size,
                rounds,
                claim_batch,
                ring_bytes,
            },
            json,
        ),
    }
}

pub(super) fn check_size(size: usize) -> Result<(), BadInput> {
    if size < 8 {
        return Err(BadInput(format!(
            "--size {size}: at least 8 bytes (a sequence number)"
        )));
    }
    Ok(())
}

pub(super) fn ring_for(size: usize) -> u64 {
    // Room for several records; at least 1 MiB.
    ((size as u64 + 64) * 8).next_power_of_two().max(1 << 20)
}

pub(crate) fn child(role: &str, args: &[String]) -> Result<ExitCode> {
    match role {
        "bench-echo" => latency::echo(args),
        "bench-sink" => throughput::sink(args),
        "bench-floor-sink" => floor::floor_sink(args),
        "bench-worker" => group::worker(args),
        other => Err(BadInput(format!("unknown child role `{other}`")).into()),
    }
}

pub(super) fn print_result(
    out: &serde_json::Value,
    json: bool,
    human: impl FnOnce(&serde_json::Value) -> String,
) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{out}")?;
    } else {
        write!(stdout, "{}", human(out))?;
    }
    Ok(ExitCode::SUCCESS)
}
