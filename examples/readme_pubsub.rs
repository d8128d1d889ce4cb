//! The README's first program: a worker and a producer on one bus.
//!
//! ```sh
//! cargo run --example readme_pubsub -- worker     # terminal 1: waits for trades
//! cargo run --example readme_pubsub -- producer   # terminal 2: sends three, removes the bus
//! ```
use std::process::ExitCode;

use shm_bus::{Bus, BusConfig, RecvError};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_default();
    let bus = args.next().unwrap_or_else(|| "quotes".to_owned());
    let result = match role.as_str() {
        "worker" => worker(&bus),
        "producer" => producer(&bus),
        _ => {
            eprintln!("usage: readme_pubsub worker|producer [BUS]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("readme_pubsub: {e}"); // errors read as sentences
            ExitCode::FAILURE
        }
    }
}

fn worker(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open_or_create(name, BusConfig::default())?;
    let mut worker = bus.subscriber("worker")?;
    worker.subscribe("md.{venue}.AAPL.(trade|quote)")?;
    // A subscriber receives what is published after it attached: start the
    // worker before the producer.
    println!("worker: waiting on bus `{name}`");
    loop {
        match worker.recv() {
            Ok(trade) => println!(
                "{} on {}: {}",
                trade.topic(),
                trade.capture("venue").unwrap_or_default(),
                String::from_utf8_lossy(trade.payload()), // read in place: no copy
            ),
            // The producer removed the bus after its last trade.
            Err(RecvError::BusRemoved) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn producer(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open_or_create(name, BusConfig::default())?;
    let mut publisher = bus.publisher("feed")?;
    for price in ["189.98", "190.02", "190.05"] {
        publisher.publish("md.XNAS.AAPL.trade", price.as_bytes())?;
    }
    // A bus stays in /dev/shm until removed; workers still attached read
    // what was published, then get `RecvError::BusRemoved`.
    Bus::remove(name)?;
    Ok(())
}
