//! `shm-bus-zenoh`: a bridge between a bus and a Zenoh session.
//!
//! ```sh
//! # host A: export md.** to Zenoh, import cmd.** from it
//! shm-bus-zenoh quotes --export 'md.**' --import 'cmd.**' --listen tcp/0.0.0.0:7447
//! # host B: the other way round
//! shm-bus-zenoh quotes --import 'md.**' --export 'cmd.**' --connect tcp/hostA:7447
//! ```
//!
//! Runs until SIGINT or SIGTERM, then detaches and prints its counters.
//! Exit codes: 0 stopped by a signal, 1 runtime failure, 2 bad usage.
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use shm_bus_zenoh::{Bridge, BridgeConfig, BridgeError, Stats};

/// Bridges a bus and Zenoh: local events matching --export are put on
/// Zenoh; Zenoh samples matching --import are published into the bus.
#[derive(Parser, Debug)]
#[command(name = "shm-bus-zenoh", version)]
struct Args {
    /// The bus.
    bus: String,
    /// Pattern of local events to put on Zenoh (repeatable).
    #[arg(long = "export", value_name = "PATTERN")]
    exports: Vec<String>,
    /// Pattern of Zenoh samples to publish into the bus (repeatable).
    #[arg(long = "import", value_name = "PATTERN")]
    imports: Vec<String>,
    /// Zenoh endpoint to listen on, e.g. tcp/0.0.0.0:7447 (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Zenoh endpoint to connect to, e.g. tcp/10.0.0.2:7447 (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// A Zenoh configuration file (JSON5); its mode and scouting apply,
    /// --listen and --connect replace its endpoints.
    #[arg(long, value_name = "ZENOH_CONFIG_FILE")]
    config: Option<std::path::PathBuf>,
    /// Name on the bus, shown as `zenoh:NAME` (default: the first 16 hex
    /// digits of the Zenoh id).
    #[arg(long)]
    name: Option<String>,
    /// Create the bus (default configuration) if it does not exist.
    #[arg(long)]
    create: bool,
    /// Put each exported event at once instead of batching: lower latency
    /// under light load, lower throughput.
    #[arg(long)]
    express: bool,
    /// Also print the counters on stderr every SECS seconds while running
    /// (one line each: JSON with --json).
    #[arg(long, value_name = "SECS")]
    status: Option<f64>,
    /// Print the final counters as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Zenoh's own diagnostics on stderr when asked: RUST_LOG=zenoh=info.
    zenoh::try_init_log_from_env();
    let cfg = BridgeConfig {
        bus: args.bus,
        create: args.create,
        exports: args.exports,
        imports: args.imports,
        listen: args.listen,
        connect: args.connect,
        zenoh_config: args.config,
        name: args.name,
        express: args.express,
    };
    let status = match args.status {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            eprintln!("shm-bus-zenoh: --status must be a positive number of seconds");
            return ExitCode::from(2);
        }
        s => s.map(Duration::from_secs_f64),
    };
    match run(&cfg, status, args.json) {
        Ok(stats) => {
            print_stats(&stats, args.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("shm-bus-zenoh: {e}");
            ExitCode::from(if e.is_usage() { 2 } else { 1 })
        }
    }
}

fn print_stats(s: &Stats, json: bool) {
    println!("{}", format_stats(s, json));
}

fn format_stats(s: &Stats, json: bool) -> String {
    if json {
        return s.to_json().to_string();
    }
    format!(
        "exported {}  imported {}  dropped {}  (unrouted {}, gaps {}, duplicates {}, rejected {}, \
         filtered {}, lagged {}, put failed {}, publish failed {}, abandoned {}, echo suppressed {})  \
         link {} ({} peers, {} times down)",
        s.exported,
        s.imported,
        s.dropped,
        s.unrouted,
        s.gaps,
        s.duplicates,
        s.rejected,
        s.filtered,
        s.lagged,
        s.put_failed,
        s.publish_failed,
        s.abandoned,
        s.echo_suppressed,
        if s.peers > 0 { "up" } else { "down" },
        s.peers,
        s.link_downs,
    )
}

fn run(cfg: &BridgeConfig, status: Option<Duration>, json: bool) -> Result<Stats, BridgeError> {
    // SIGINT/SIGTERM are caught by a thread of their own running a small
    // tokio runtime (Zenoh's blocking calls must not run inside one); it
    // raises `stop`. The handlers are installed before the bridge starts,
    // so a signal during start-up is acted on once started.
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (mut int, mut term) = match (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) {
                    (Ok(i), Ok(t)) => (i, t),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                flag.store(true, Ordering::Relaxed);
            });
        })
        .map_err(|e| BridgeError::Zenoh(format!("spawning the signal thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return Err(BridgeError::Zenoh(format!(
                "installing signal handlers: {e}"
            )));
        }
        Err(_) => return Err(BridgeError::Zenoh("the signal thread died".into())),
    }
    let bridge = Bridge::start(cfg)?;
    eprintln!(
        "shm-bus-zenoh: bridging bus `{}` as `{}` (zenoh id {}; export {:?}, import {:?}; listen {:?}, connect {:?})",
        cfg.bus,
        bridge.name(),
        bridge.zid(),
        cfg.exports,
        cfg.imports,
        bridge.listen(),
        cfg.connect,
    );
    let mut up = false;
    let mut last_status = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) && !bridge.failed() {
        if let Some(every) = status {
            if last_status.elapsed() >= every {
                last_status = std::time::Instant::now();
                eprintln!(
                    "shm-bus-zenoh: status {}",
                    format_stats(&bridge.stats(), json)
                );
            }
        }
        let (_, now) = bridge.poll_link();
        if !up && now > 0 {
            eprintln!("shm-bus-zenoh: link up ({now} peers)");
        } else if up && now == 0 {
            eprintln!("shm-bus-zenoh: link down");
        }
        up = now > 0;
        std::thread::sleep(Duration::from_millis(100));
    }
    bridge.stop()
}
