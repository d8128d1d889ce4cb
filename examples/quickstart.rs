//! PyEventEngine's README quick start, with shm-bus: topics with wildcards
//! and captures, publishing, and a handler loop — but the publisher and the
//! subscriber may live in different processes.
//!
//! ```sh
//! cargo run --example quickstart
//! ```

use shm_bus::{Bus, BusConfig, Topic};

fn main() -> Result<(), Box<dyn std::error::Error>> {
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

    // The engine: a bus in shared memory (removed at the end).
    let name = format!("quickstart-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default())?;
    let mut engine_in = bus.subscriber("quickstart handler")?;
    engine_in.subscribe(pattern.as_str())?;
    let mut engine_out = bus.publisher("quickstart")?;

    // Put a few events (the second does not match and is never delivered).
    engine_out.publish(formatted.as_str(), b"price=10.5")?;
    engine_out.publish("realtime.600010.depth", b"ignored")?;
    engine_out.publish("realtime.600519.quote", b"bid=1700.0")?;

    // The handler: topic, captures and payload of every matching event.
    while let Ok(event) = engine_in.try_recv() {
        let topic = Topic::parse(event.topic())?;
        let ticker = pattern
            .match_with(&topic)
            .capture("ticker")
            .map(str::to_owned);
        println!(
            "handler: topic={} ticker={} payload={}",
            event.topic(),
            ticker.unwrap_or_default(),
            String::from_utf8_lossy(event.payload())
        );
    }
    drop((engine_in, engine_out, bus));
    Bus::remove(&name)?;
    Ok(())
}
