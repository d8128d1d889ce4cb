//! `shm-bus`: see inside a live bus and drive it by hand.
//!
//! **What this crate is:** the command-line tool (documented for users in
//! `docs/CLI.md`): manage the buses of a host (`create`, `remove`, `list`,
//! `inspect`, `gc`) and their worker groups (`group`), move events by hand
//! (`publish`, `consume`, also as a worker-group member, `tail`),
//! record and replay them (`record`, `replay`), watch a live bus (`top`,
//! `hz`), work with topics (`topic`), measure (`bench`) and show (`demo`,
//! also a soak run with `--duration`).
//!
//! **What it is not:** a library, nor a second implementation of the bus:
//! every bus operation goes through `shm-bus-core`'s public API (and
//! `shm-bus-alloc`/`shm-bus-topic` for names and topics). Its output and
//! JSON are an interface that its tests pin down.
//!
//! **Where to start reading:** this file (the flags of every command and
//! the dispatch), then one directory per command group: `bus_cmd/`,
//! `io_cmd/`, `top_cmd/`, `bench_cmd/`, and `topic_cmd.rs`, `demo_cmd.rs`. Shared
//! pieces: `common.rs` (exit codes, errors, attaching to a bus),
//! `format.rs` (tables, byte counts), `time.rs` (clock, dates),
//! `payload.rs` (generated, verifiable payloads), `peer.rs` (child
//! processes, scratch bus names), `os.rs` (signals, poll: the one place
//! with `unsafe`; the benchmark floors' raw copies live in
//! `crates/shm-bus-floor`).
//!
//! Exit codes: 0 success; 1 runtime failure (bus missing, timeout, I/O);
//! 2 bad usage or bad input. Every failure prints one line on stderr
//! saying what was wrong.

// Unsafe code is confined to `os` (signals, poll); `forbid` cannot be
// lifted for it.
#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod bench_cmd;
mod bus_cmd;
mod common;
mod demo_cmd;
mod format;
mod io_cmd;
// signal(2) and poll(2) need `unsafe`: kept in this one small module.
#[allow(unsafe_code)]
mod os;
mod payload;
mod peer;
mod time;
mod top_cmd;
mod topic_cmd;

pub(crate) use common::BadInput;

/// Pattern-routed, zero-copy, crash-safe events between processes.
#[derive(Parser)]
#[command(name = "shm-bus", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a bus.
    Create(bus_cmd::CreateCmd),
    /// Remove a bus's shared-memory segment (refused while live processes
    /// are attached, unless --force).
    Remove(bus_cmd::RemoveArgs),
    /// List buses on this host.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show everything about a bus: header, config, arena, topics,
    /// producers, subscribers, worker groups.
    Inspect {
        /// The bus name.
        bus: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Worker groups: list them, remove one.
    #[command(subcommand)]
    Group(bus_cmd::GroupCommand),
    /// Reap dead producers, subscribers and worker-group members; remove
    /// segments left behind by crashed processes.
    ///
    /// For every bus (or only BUS), the slots of dead producers,
    /// subscribers and worker-group members are freed first (a dead member
    /// that left unfinished events keeps its slot until a live member
    /// adopts them). Then the segment is removed when:
    ///
    /// - it cannot be opened because its creator died while creating it,
    ///   or it is corrupt;
    ///
    /// - no live process is attached any more and at least one attached
    ///   process died;
    ///
    /// - with --all-unused: no live process is attached.
    ///
    /// A bus with a live producer, subscriber, group member or creator is
    /// never removed.
    /// A bus still being created, made by another layout version, or not a
    /// bus at all is left alone and reported as skipped.
    Gc(GcArgs),
    /// Publish events by hand (generated, verifiable payloads by default).
    Publish(PublishArgs),
    /// Receive and verify events.
    Consume(ConsumeArgs),
    /// Print events as they arrive.
    Tail(TailArgs),
    /// Record matching events to a file (binary, checksummed; or JSON
    /// Lines), for `replay`.
    Record(io_cmd::RecordArgs),
    /// Publish a recording into a bus again, keeping its timing (scaled by
    /// --speed) or as fast as possible (--max-rate).
    Replay(io_cmd::ReplayArgs),
    /// Per-topic rate and inter-arrival statistics over a window.
    Hz(io_cmd::HzArgs),
    /// A live view of a bus: producers, subscribers, topics, with rates.
    Top(top_cmd::TopArgs),
    /// Parse, match, format and check topics.
    #[command(subcommand)]
    Topic(topic_cmd::TopicCommand),
    /// Measure latency and throughput between processes.
    #[command(subcommand)]
    Bench(bench_cmd::BenchCommand),
    /// Run a producer and N worker processes on a fresh bus.
    Demo(demo_cmd::DemoArgs),
    /// Internal: a child process of `bench` or `demo`.
    #[command(hide = true, name = "__child")]
    Child(ChildArgs),
}

/// Options of `create` (and the defaults `--create` uses elsewhere).
#[derive(Args, Clone, Debug)]
pub(crate) struct CreateArgs {
    /// The bus name.
    pub bus: String,
    /// Bytes of each producer's ring (a power of two, at least 4096;
    /// `K`, `M`, `G` suffixes: 64K, 1M).
    #[arg(long, default_value = "1M", value_parser = common::parse_size, allow_negative_numbers = true)]
    pub ring_bytes: u64,
    /// Subscriber slots.
    #[arg(long, default_value_t = 32)]
    pub max_subscribers: u32,
    /// Producer slots.
    #[arg(long, default_value_t = 8)]
    pub max_producers: u32,
    /// Topic table capacity.
    #[arg(long, default_value_t = 4096)]
    pub max_topics: u32,
    /// Back-pressure policy: block (lossless) or overwrite (lossy).
    #[arg(long, default_value = "block")]
    pub policy: shm_bus_core::Policy,
    /// Bytes of each ring kept readable for subscribers that start from
    /// the oldest retained event (block policy; a multiple of 32, at most
    /// a quarter of the ring; `K`/`M` suffixes). Default 0.
    #[arg(long, default_value = "0", value_parser = common::parse_size_or_zero)]
    pub history: u64,
    /// Permission bits of the segment, in octal.
    #[arg(long, default_value = "600")]
    pub mode: String,
    /// Worker-group slots (0..=64; 0: no worker groups on this bus).
    #[arg(long, default_value_t = 8)]
    pub max_groups: u32,
    /// Member slots of each worker group (1..=64).
    #[arg(long, default_value_t = 16)]
    pub max_group_members: u32,
}

/// Options of `gc`.
#[derive(Args, Clone, Debug)]
pub(crate) struct GcArgs {
    /// Only this bus (default: every bus on the host).
    pub bus: Option<String>,
    /// Also remove buses that no live process is attached to, even if no
    /// process died.
    #[arg(long)]
    pub all_unused: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `publish`.
#[derive(Args, Clone, Debug)]
pub(crate) struct PublishArgs {
    /// The bus name (it must exist, unless --create).
    pub bus: String,
    /// Create the bus with default settings if it does not exist (said on
    /// stderr).
    #[arg(long)]
    pub create: bool,
    /// An exact topic; `{i}` is replaced by the message index modulo
    /// `--topics`.
    pub topic: String,
    /// Publish this text once per message instead of generated payloads.
    #[arg(long, conflicts_with = "stdin")]
    pub data: Option<String>,
    /// Publish each line of standard input as one message.
    #[arg(long)]
    pub stdin: bool,
    /// Number of messages.
    #[arg(long, default_value_t = 1)]
    pub count: u64,
    /// Size of generated payloads in bytes (minimum 32; `K`, `M`
    /// suffixes).
    #[arg(long, default_value = "64", value_parser = common::parse_size_usize, allow_negative_numbers = true)]
    pub size: usize,
    /// Spread messages over this many topics (with `{i}` in TOPIC).
    #[arg(long, default_value_t = 1)]
    pub topics: u64,
    /// Messages per second (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Give up when the ring stays full this long (seconds). Without it,
    /// publish waits for space as long as it takes, and after about a
    /// second says once on stderr which subscriber it is waiting for.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Publisher name shown by `inspect`.
    #[arg(long, default_value = "shm-bus publish")]
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `consume`.
#[derive(Args, Clone, Debug)]
pub(crate) struct ConsumeArgs {
    /// The bus name (it must exist, unless --create).
    pub bus: String,
    /// Create the bus with default settings if it does not exist (said on
    /// stderr).
    #[arg(long)]
    pub create: bool,
    /// Patterns to subscribe to (with --group: the group's patterns, or
    /// none to take those of the existing group).
    #[arg(required_unless_present = "group")]
    pub patterns: Vec<String>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds without a message.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Subscriber (or group member) name shown by `inspect`.
    #[arg(long, default_value = "shm-bus consume")]
    pub name: String,
    /// Join this worker group (creating it with PATTERN... if it does not
    /// exist): each matching event goes to exactly one of its live
    /// members, so this consumer gets a share.
    #[arg(long)]
    pub group: Option<String>,
    /// What happens to a dead member's unfinished events, when this
    /// consumer creates the group (default: the existing group's mode, or
    /// at-least-once for a new group).
    #[arg(long, requires = "group")]
    pub group_mode: Option<shm_bus_core::GroupMode>,
    /// Most events one claim takes (with --group).
    #[arg(long, requires = "group", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub claim_batch: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How `tail` prints payloads (by default: printable UTF-8 as text,
/// anything else as hex, shortened when long).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TailFormat {
    /// Payload as (lossy) UTF-8 text, whatever it is.
    Text,
    /// Payload as hex, in full.
    Hex,
    /// One JSON object per event (JSON Lines).
    Json,
}

/// Options of `tail`.
#[derive(Args, Clone, Debug)]
pub(crate) struct TailArgs {
    /// The bus name (it must exist, unless --create).
    pub bus: String,
    /// Create the bus with default settings if it does not exist (said on
    /// stderr).
    #[arg(long)]
    pub create: bool,
    /// Patterns (default `**`: everything).
    pub patterns: Vec<String>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// Payload format (default: printable UTF-8 as text, other payloads
    /// as hex, shortened when long).
    #[arg(long, value_enum)]
    pub format: Option<TailFormat>,
    /// JSON Lines: one object per event (same as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Start with the oldest events the rings still retain (under the
    /// block policy: what the bus's --history keeps), not only new ones.
    #[arg(long)]
    pub from_oldest: bool,
}

/// Arguments of the hidden child command.
#[derive(Args, Clone, Debug)]
pub(crate) struct ChildArgs {
    /// The role.
    pub role: String,
    /// Role arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let result = match cli.command {
        Command::Create(a) => bus_cmd::create(&a),
        Command::Remove(a) => bus_cmd::remove(&a),
        Command::List { json } => bus_cmd::list(json),
        Command::Inspect { bus, json } => bus_cmd::inspect(&bus, json),
        Command::Gc(a) => bus_cmd::gc(&a),
        Command::Group(cmd) => bus_cmd::group(&cmd),
        Command::Publish(a) => io_cmd::publish(&a),
        Command::Consume(a) => io_cmd::consume(&a),
        Command::Tail(a) => io_cmd::tail(&a),
        Command::Record(a) => io_cmd::record(&a),
        Command::Replay(a) => io_cmd::replay(&a),
        Command::Hz(a) => io_cmd::hz(&a),
        Command::Top(a) => top_cmd::run(&a),
        Command::Topic(cmd) => topic_cmd::run(cmd),
        Command::Bench(cmd) => bench_cmd::run(cmd),
        Command::Demo(a) => demo_cmd::run(&a),
        Command::Child(a) => match a.role.as_str() {
            r if r.starts_with("bench-") => bench_cmd::child(r, &a.args),
            r if r.starts_with("demo-") => demo_cmd::child(r, &a.args),
            other => Err(BadInput(format!("unknown child role `{other}`")).into()),
        },
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("shm-bus: {}", common::one_line(&err));
            ExitCode::from(common::exit_code(&err))
        }
    }
}

/// `--help` / `--version` print as clap does (exit 0); a usage error prints
/// one line on stderr and exits 2.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || matches!(
        err.kind(),
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = err.render().to_string();
    let mut lines = rendered.lines().filter(|l| !l.trim().is_empty());
    let mut first = lines
        .next()
        .unwrap_or("bad usage")
        .trim_start_matches("error: ")
        .to_owned();
    // "the following required arguments were not provided:" lists them on
    // the next lines.
    if first.ends_with(':') {
        let listed: Vec<&str> = lines
            .take_while(|l| l.starts_with(' '))
            .map(str::trim)
            .collect();
        first = format!("{first} {}", listed.join(" "));
    }
    eprintln!("shm-bus: {first} (see `shm-bus --help`)");
    ExitCode::from(2)
}
