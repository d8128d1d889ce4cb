//! A worker: subscribes with the patterns given on the command line and
//! counts what arrives per topic, until the producer's `md.end`.
//!
//! ```sh
//! cargo run --release --example worker -- quotes 'md.{venue}.AAPL.trade' 'md.XNYS.**'
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use shm_bus::{Bus, BusConfig, RecvError};

#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: i64,
    size: u32,
    seq: u32,
}

fn main() -> std::process::ExitCode {
    // Errors print as sentences (their Display), not as debug structures.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bus_name = args.next().unwrap_or_else(|| "quotes".to_owned());
    let patterns: Vec<String> = args.collect();
    let patterns = if patterns.is_empty() {
        vec!["md.**".to_owned()]
    } else {
        patterns
    };

    let bus = Bus::open_or_create(&bus_name, BusConfig::default())?;
    let mut worker = bus.subscriber("example worker")?;
    for p in &patterns {
        worker.subscribe(p)?; // an invalid pattern is a typed error here
    }
    worker.subscribe("md.end")?;
    println!("READY: subscribed to {patterns:?} on bus `{bus_name}`");

    let mut per_topic: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    loop {
        let sample = match worker.recv_timeout(Duration::from_secs(30)) {
            Ok(s) => s,
            Err(RecvError::Timeout) => break, // the producer went quiet
            Err(RecvError::Lagged(n)) => {
                eprintln!("lagged: missed {n} events");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if sample.topic() == "md.end" {
            break;
        }
        // Zero copy: the tick is read in place in the producer's ring.
        let tick: &Tick = sample.as_pod()?;
        let entry = per_topic.entry(sample.topic().to_owned()).or_default();
        entry.0 += 1;
        entry.1 += tick.price;
    }
    let total: u64 = per_topic.values().map(|(n, _)| n).sum();
    for (topic, (n, price_sum)) in &per_topic {
        println!(
            "{topic:<24} {n:>8} events, mean price {:.2}",
            *price_sum as f64 / *n as f64
        );
    }
    println!("TOTAL {total}");
    Ok(())
}
