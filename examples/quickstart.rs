//! PyEventEngine's README quick start, with shm-bus: topics with wildcards
//! and captures, an `EventEngine` with handlers on patterns, `put`, and a
//! dispatch thread — but the engine that puts and the one that handles
//! may live in different processes (here both are in this one, over one
//! bus; `EventEngine::new(capacity)` is the same API with no segment).
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use std::time::Duration;

use shm_bus::engine::{EventEngine, Handler, Message, Wait};
use shm_bus::{Bus, BusConfig, Topic};

fn main() -> std::process::ExitCode {
    // Errors print as sentences (their Display), not as debug structures.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Topics: exact parts, `{name}` wildcards, `(a|b)` ranges, `/regex/`.
    let pattern = Topic::parse("realtime.{ticker}.(trade|quote)")?;
    let topic = Topic::parse("realtime.600010.trade")?;
    let m = pattern.match_with(&topic);
    println!(
        "{pattern} matches {topic}: {} (ticker = {:?})",
        m.matched(),
        m.capture("ticker")
    );
    // Formatting fills wildcards to build exact topics.
    let formatted = Topic::parse("realtime.{ticker}.trade")?.format([("ticker", "600010")])?;
    println!("formatted: {formatted}");

    // The engine, over a bus in shared memory (removed at the end).
    let name = format!("quickstart-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default())?;
    let engine = EventEngine::with_bus(&bus, "quickstart")?;

    // The handler: topic, captures and payload of every matching event.
    let (tx, rx) = std::sync::mpsc::channel();
    engine.register_handler(
        pattern.as_str(),
        Handler::named("print", move |event: &Message<'_>| {
            let line = format!(
                "handler: topic={} ticker={} payload={}",
                event.topic(),
                event.capture("ticker").unwrap_or_default(),
                String::from_utf8_lossy(event.payload())
            );
            let _ = tx.send(line);
        }),
        false,
    )?;
    engine.start()?;

    // Put a few events (the second matches no hook and is dropped).
    engine.put(formatted.as_str(), b"price=10.5", Wait::default())?;
    engine.put("realtime.600010.depth", b"ignored", Wait::default())?;
    engine.put("realtime.600519.quote", b"bid=1700.0", Wait::default())?;
    for _ in 0..2 {
        println!("{}", rx.recv_timeout(Duration::from_secs(10))?);
    }
    engine.stop();
    let hook = engine.get_hook(pattern.as_str())?.expect("registered");
    for (handler, stats) in hook.all_stats() {
        println!(
            "stats: {} called {} times, {:?} in total, {} failures",
            handler.name(),
            stats.calls,
            stats.total_time,
            stats.failures
        );
    }
    drop((engine, bus));
    Bus::remove(&name)?;
    Ok(())
}
