//! `shm-bus-compare`: shm-bus side by side with iceoryx2, a Unix domain
//! socket and bare shared-memory floors, measured the same way, in one run,
//! on one machine.
//!
//! ```sh
//! cargo run --release --manifest-path compare/Cargo.toml -- all
//! ```
//!
//! runs every workload on every system in interleaved rounds and writes
//! `docs/compare/results.md`, `results.json` and `latency.svg`. See
//! `report.rs` (the `METHOD` text) for how each figure is measured.

mod dispatch;
mod latency;
mod plot;
mod proc;
mod report;
mod shm;
mod systems;
mod throughput;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::proc::Spec;
use crate::report::{DispRound, LatCase, MemcpyCase, Results, TputCase, size_name};
use crate::systems::{System, ring_for};

#[derive(Parser)]
#[command(
    name = "shm-bus-compare",
    about = "shm-bus side by side with iceoryx2, a Unix socket and shared-memory floors"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs every workload on every system, in interleaved rounds, and
    /// writes results.md, results.json and latency.svg.
    All(AllArgs),
    /// Regenerates results.md and latency.svg (and rewrites results.json)
    /// from a results.json.
    Render {
        /// The results.json to read.
        json: PathBuf,
        /// Output directory (default: the JSON's directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also rewrite the summary block of docs/BENCHMARKS.md.
        #[arg(long)]
        update_benchmarks: bool,
    },
    #[command(hide = true, name = "__child")]
    Child { role: String, spec: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Workload {
    Latency,
    Throughput,
    Dispatch,
}

#[derive(clap::Args)]
struct AllArgs {
    /// Rounds; every round measures every system once per workload.
    #[arg(long, default_value_t = 5)]
    rounds: u32,
    /// Timed round trips per latency measurement.
    #[arg(long, default_value_t = 50_000)]
    lat_count: u64,
    /// Untimed round trips before them (enough for shm-bus's 1 MiB ring to
    /// go round once at 64 B, so first-touch page faults are not timed).
    #[arg(long, default_value_t = 20_000)]
    lat_warmup: u64,
    /// Bytes per throughput measurement (messages = bytes / size, clamped
    /// to 2,000..=2,000,000).
    #[arg(long, default_value_t = 2 << 30)]
    tput_bytes: u64,
    /// Messages per hot dispatch measurement.
    #[arg(long, default_value_t = 2_000_000)]
    dispatch_count: u64,
    /// Distinct topics of a cold dispatch measurement (each published
    /// once). shm-bus 0.1 cannot create a bus with more than about 21,800
    /// topics (its segment sizing misses the arena's size-class rounding).
    #[arg(long, default_value_t = 20_000)]
    cold_topics: u32,
    /// Only these workloads (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Only these throughput payload sizes (default: 64,1024,65536,1048576;
    /// for development).
    #[arg(long, value_delimiter = ',')]
    tput_sizes: Vec<usize>,
    /// Give every system this many bytes of buffering instead of the
    /// default ring per payload size (for experiments).
    #[arg(long)]
    ring_bytes: Option<u64>,
    /// Only these systems (default: all; for development).
    #[arg(long, value_enum, value_delimiter = ',')]
    systems: Vec<System>,
    /// A short development run: 1 round, about 1/20 of the counts, written
    /// to compare/target/quick unless --out is given.
    #[arg(long)]
    quick: bool,
    /// Do not pin the two latency processes to CPUs 0 and 1.
    #[arg(long)]
    no_pin: bool,
    /// Output directory (default: docs/compare of this repository).
    #[arg(long)]
    out: Option<PathBuf>,
}

const LAT_SIZES: [usize; 2] = [64, 4096];
const TPUT_SIZES: [usize; 4] = [64, 1024, 64 << 10, 1 << 20];
const SUBSCRIBERS: [u32; 2] = [1, 2];
const HOT_TOPICS: u32 = 1000;
const MANY_PATTERNS: usize = 10_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::All(args) => run_all(args),
        Cmd::Render {
            json,
            out,
            update_benchmarks,
        } => render(&json, out, update_benchmarks),
        Cmd::Child { role, spec } => child(&role, &spec),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shm-bus-compare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn child(role: &str, spec: &str) -> Result<()> {
    let spec: Spec = serde_json::from_str(spec).context("child spec")?;
    proc::child_init(&spec)?;
    let r = match role {
        "lat-ping" => latency::ping_role(&spec),
        "lat-echo" => latency::echo_role(&spec),
        "tput-pub" => throughput::producer_role(&spec),
        "tput-sub" => throughput::subscriber_role(&spec),
        "disp-pub" => dispatch::producer_role(&spec),
        "disp-sub" => dispatch::subscriber_role(&spec),
        "disp-engine" => dispatch::engine_role(&spec),
        other => bail!("unknown role {other}"),
    };
    r.with_context(|| format!("{role} ({})", spec.system.name()))
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

// ---------------------------------------------------------- orchestrator

struct Run {
    pid: u32,
    session: u64,
    pin: bool,
}

impl Run {
    fn spec(&mut self, system: System) -> Spec {
        self.session += 1;
        Spec::new(system, self.pid, self.session)
    }
}

/// Runs `f`; on a failure other than an interruption, cleans up and tries
/// once more (a shared, noisy machine can starve a child past a watchdog).
fn twice<T>(what: &str, mut f: impl FnMut() -> Result<T>, pid: u32) -> Result<T> {
    match f() {
        Ok(v) => Ok(v),
        Err(e) if proc::interrupted() => Err(e),
        Err(e) => {
            eprintln!("  {what}: {e:#}; retrying once");
            shm::sweep(pid);
            f().with_context(|| what.to_string())
        }
    }
}

fn run_all(mut a: AllArgs) -> Result<()> {
    proc::catch_interrupts();
    if a.quick {
        a.rounds = 1;
        a.lat_count = (a.lat_count / 20).max(1000);
        a.tput_bytes /= 20;
        a.dispatch_count = (a.dispatch_count / 20).max(2000);
        a.cold_topics = (a.cold_topics / 20).max(2000);
    }
    let cold_topics = a.cold_topics.max(2) / 2 * 2;
    let dispatch_count = a.dispatch_count.max(2) / 2 * 2;
    let out = match (&a.out, a.quick) {
        (Some(o), _) => o.clone(),
        (None, true) => repo_root().join("compare/target/quick"),
        (None, false) => repo_root().join("docs/compare"),
    };
    let want = |w: Workload| a.only.is_empty() || a.only.contains(&w);
    let want_system = |s: System| a.systems.is_empty() || a.systems.contains(&s);
    let pid = std::process::id();
    let stale = shm::sweep_stale();
    if stale > 0 {
        eprintln!("removed {stale} leftovers of earlier, killed runs");
    }
    let _sweeper = shm::Sweeper(pid);
    let pin = !a.no_pin && proc::cpus() >= 2;
    let mut run = Run {
        pid,
        session: 0,
        pin,
    };
    let warmup = a.lat_warmup;
    let tput_count = |size: usize| (a.tput_bytes / size as u64).clamp(2_000, 2_000_000);
    let started = Instant::now();

    let mut lat_rtts: BTreeMap<(usize, System), Vec<Vec<u64>>> = BTreeMap::new();
    let mut tput: Vec<TputCase> = Vec::new();
    let mut memcpy: Vec<MemcpyCase> = Vec::new();
    let mut disp: Vec<DispRound> = Vec::new();

    for round in 0..a.rounds {
        let tag = format!("[round {}/{}]", round + 1, a.rounds);
        // Each round starts one system further along.
        let mut order = System::THROUGHPUT;
        order.rotate_left(round as usize % System::THROUGHPUT.len());
        let mut lat_order = System::LATENCY;
        lat_order.rotate_left(round as usize % System::LATENCY.len());

        if want(Workload::Latency) {
            for size in LAT_SIZES {
                for sys in lat_order.into_iter().filter(|s| want_system(*s)) {
                    let mut spec = run.spec(sys);
                    spec.size = size;
                    spec.count = a.lat_count;
                    spec.warmup = warmup;
                    spec.ring = ring_for(size);
                    spec.cpu = run.pin.then_some(0);
                    let what = format!("latency {} {}", size_name(size), sys.name());
                    let rtts = twice(&what, || latency::measure(&spec), pid)?;
                    let mut s = rtts.clone();
                    s.sort_unstable();
                    eprintln!(
                        "{tag} {what:<38} one-way p50 {:>6.0} ns  p99 {:>7.0} ns  p99.9 {:>8.0} ns",
                        report::percentile(&s, 0.5) as f64 / 2.0,
                        report::percentile(&s, 0.99) as f64 / 2.0,
                        report::percentile(&s, 0.999) as f64 / 2.0,
                    );
                    lat_rtts.entry((size, sys)).or_default().push(rtts);
                }
            }
        }

        if want(Workload::Throughput) {
            for size in TPUT_SIZES
                .into_iter()
                .filter(|s| a.tput_sizes.is_empty() || a.tput_sizes.contains(s))
            {
                let count = tput_count(size);
                for k in SUBSCRIBERS {
                    for sys in order.into_iter().filter(|s| want_system(*s)) {
                        let mut spec = run.spec(sys);
                        spec.size = size;
                        spec.count = count;
                        spec.subscribers = k;
                        spec.ring = a.ring_bytes.unwrap_or(ring_for(size));
                        let what = format!("throughput {} K={k} {}", size_name(size), sys.name());
                        let r = twice(&what, || throughput::measure(&spec), pid)?;
                        eprintln!(
                            "{tag} {what:<44} {:>8.3} M msg/s  {:>6.2} GB/s",
                            r / 1e6,
                            r * size as f64 / 1e9
                        );
                        match tput
                            .iter_mut()
                            .find(|c| c.size == size && c.subscribers == k && c.system == sys)
                        {
                            Some(c) => c.msgs_per_sec.push(r),
                            None => tput.push(TputCase {
                                size,
                                subscribers: k,
                                system: sys,
                                count,
                                msgs_per_sec: vec![r],
                            }),
                        }
                    }
                }
                if size == 1 << 20 && want_system(System::Floor) {
                    let mut rates = [0.0; 3];
                    for (rate, (bytes, how)) in rates.iter_mut().zip([
                        (size as u64, "one buffer"),
                        (2 * size as u64, "two buffers"),
                        (a.ring_bytes.unwrap_or(ring_for(size)), "ring-sized"),
                    ]) {
                        run.session += 1;
                        let name = format!("/cmpfloor{pid}-{}", run.session);
                        *rate = systems::floor::memcpy_rate(&name, size, count, bytes)?;
                        eprintln!(
                            "{tag} {:<44} {:>8.3} M msg/s  {:>6.2} GB/s",
                            format!("memcpy {} {how}", size_name(size)),
                            *rate / 1e6,
                            *rate * size as f64 / 1e9
                        );
                    }
                    match memcpy.iter_mut().find(|m| m.size == size) {
                        Some(m) => {
                            m.hot_msgs_per_sec.push(rates[0]);
                            m.two_msgs_per_sec.push(rates[1]);
                            m.ring_msgs_per_sec.push(rates[2]);
                        }
                        None => memcpy.push(MemcpyCase {
                            size,
                            count,
                            ring_bytes: a.ring_bytes.unwrap_or(ring_for(size)),
                            hot_msgs_per_sec: vec![rates[0]],
                            two_msgs_per_sec: vec![rates[1]],
                            ring_msgs_per_sec: vec![rates[2]],
                        }),
                    }
                }
            }
        }

        if want(Workload::Dispatch) && want_system(System::ShmBus) {
            let mut d = DispRound::default();
            for (engine, cold, npat) in [
                (false, false, 1),
                (false, false, MANY_PATTERNS),
                (false, true, 1),
                (false, true, MANY_PATTERNS),
                (true, false, 1),
                (true, false, MANY_PATTERNS),
            ] {
                let mut spec = run.spec(System::ShmBus);
                spec.size = 64;
                spec.ring = ring_for(64);
                spec.patterns = npat;
                (spec.topics, spec.count) = if cold {
                    (cold_topics, cold_topics as u64)
                } else {
                    (HOT_TOPICS, dispatch_count)
                };
                let what = format!(
                    "dispatch {}{} {npat} pattern(s)",
                    if engine { "engine " } else { "" },
                    if cold { "cold" } else { "hot" }
                );
                let r = twice(&what, || dispatch::measure(&spec, engine), pid)?;
                eprintln!("{tag} {what:<44} {:>8.3} M msg/s", r / 1e6);
                match (engine, cold, npat) {
                    (true, _, 1) => d.engine_1 = r,
                    (true, _, _) => d.engine_10k = r,
                    (false, false, 1) => d.hot_1 = r,
                    (false, false, _) => d.hot_10k = r,
                    (false, true, 1) => d.cold_1 = r,
                    (false, true, _) => d.cold_10k = r,
                }
            }
            (d.index_1_ns, d.scan_1_ns) = dispatch::in_process(1)?;
            (d.index_10k_ns, d.scan_10k_ns) = dispatch::in_process(MANY_PATTERNS)?;
            eprintln!(
                "{tag} in-process lookup: index {:.0} / {:.0} ns, linear scan {:.0} / {:.0} ns (1 / 10,000 patterns)",
                d.index_1_ns, d.index_10k_ns, d.scan_1_ns, d.scan_10k_ns
            );
            disp.push(d);
        }
        if proc::interrupted() {
            bail!("interrupted");
        }
    }

    let mut latency_cases: Vec<LatCase> = lat_rtts
        .iter()
        .map(|((size, sys), rounds)| report::lat_case(*size, *sys, rounds))
        .collect();
    latency_cases.sort_by_key(|c| (c.size, c.system));
    tput.sort_by_key(|c| (c.size, c.subscribers, c.system));

    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        args.push("all".into());
    }
    let results = Results {
        note: "Generated by shm-bus-compare (compare/); regenerate with the command below.".into(),
        machine: machine(),
        date_utc: date_utc(),
        command: format!(
            "cargo run --release --manifest-path compare/Cargo.toml -- {}",
            args.join(" ")
        ),
        versions: versions(),
        rounds: a.rounds,
        settings: report::Settings {
            latency_round_trips: a.lat_count,
            latency_warmup: warmup,
            latency_pinned: pin,
            throughput_bytes: a.tput_bytes,
            dispatch_messages: dispatch_count,
            dispatch_hot_topics: HOT_TOPICS,
            dispatch_cold_topics: cold_topics,
        },
        latency: latency_cases,
        throughput: tput,
        memcpy,
        dispatch: disp,
    };
    write_outputs(&results, &out)?;
    // A full run into docs/compare also refreshes its summary in
    // docs/BENCHMARKS.md (between the markers only).
    if a.out.is_none() && !a.quick {
        update_benchmarks_md(&results)?;
    }
    eprintln!("done in {:.0?}: wrote {}", started.elapsed(), out.display());
    Ok(())
}

fn write_outputs(results: &Results, out: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("results.json"), report::to_json(results)?)?;
    std::fs::write(out.join("results.md"), report::markdown(results))?;
    if !results.latency.is_empty() {
        plot::latency_svg(results, &out.join("latency.svg"))?;
    }
    Ok(())
}

fn update_benchmarks_md(results: &Results) -> Result<()> {
    let path = repo_root().join("docs/BENCHMARKS.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    match report::splice_summary(&text, &report::summary(results)) {
        Some(new) => {
            std::fs::write(&path, new)?;
            eprintln!("updated the summary in {}", path.display());
        }
        None => eprintln!(
            "{} has no `{}` … `{}` block: summary not written",
            path.display(),
            report::SUMMARY_BEGIN,
            report::SUMMARY_END
        ),
    }
    Ok(())
}

fn render(json: &std::path::Path, out: Option<PathBuf>, update_benchmarks: bool) -> Result<()> {
    let results: Results = serde_json::from_str(
        &std::fs::read_to_string(json).with_context(|| format!("reading {}", json.display()))?,
    )?;
    let out = out.unwrap_or_else(|| {
        json.parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("results.json"), report::to_json(&results)?)?;
    std::fs::write(out.join("results.md"), report::markdown(&results))?;
    if !results.latency.is_empty() {
        plot::latency_svg(&results, &out.join("latency.svg"))?;
    }
    if update_benchmarks {
        update_benchmarks_md(&results)?;
    }
    Ok(())
}

// -------------------------------------------------------------- context

fn machine() -> report::Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    report::Machine {
        cpu,
        cpus: proc::cpus(),
        kernel,
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn versions() -> report::Versions {
    let commit = command_output("git", &["rev-parse", "--short", "HEAD"])
        .map(|c| {
            let dirty = command_output("git", &["status", "--porcelain", "--", "crates"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} (with uncommitted changes under crates/)")
            } else {
                c
            }
        })
        .unwrap_or_else(|| "unknown".into());
    // The iceoryx2 version actually built, from this crate's lock file.
    let lock = std::fs::read_to_string(repo_root().join("compare/Cargo.lock")).unwrap_or_default();
    let iceoryx2 = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"iceoryx2\"\n"))
        .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
        .map(|l| {
            l.trim_start_matches("version = ")
                .trim_matches('"')
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into());
    let rustc = command_output("rustc", &["--version"]).unwrap_or_else(|| "rustc".into());
    report::Versions {
        shm_bus_commit: commit,
        iceoryx2,
        rustc,
    }
}

/// "YYYY-MM-DD HH:MM UTC" from the system clock.
fn date_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
