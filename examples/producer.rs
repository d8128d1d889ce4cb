//! A market-data producer: publishes `Tick`s (plain old data, viewed in
//! place by subscribers) on `md.VENUE.SYMBOL.trade`.
//!
//! ```sh
//! cargo run --release --example producer -- quotes 100000
//! ```
//! Run `worker` examples first (in other terminals) to see the events.

use std::time::Duration;

use shm_bus::{Bus, BusConfig};

/// One trade. `#[repr(C)]` + `Pod`: written once into the ring, read in
/// place by every subscriber.
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Tick {
    /// Price in ticks.
    pub price: i64,
    /// Shares.
    pub size: u32,
    /// Sequence number of this tick in the feed.
    pub seq: u32,
}

fn main() -> std::process::ExitCode {
    // Errors print as sentences (their Display), not as debug structures.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("producer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bus_name = args.next().unwrap_or_else(|| "quotes".to_owned());
    let count: u32 = args
        .next()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(10_000);

    let bus = Bus::open_or_create(&bus_name, BusConfig::default())?;
    let mut publisher = bus.publisher("example producer")?;
    let venues = ["XNAS", "XNYS"];
    let symbols = ["AAPL", "MSFT", "IBM"];
    // Intern every topic once; publishing by id skips the lookup.
    let mut ids = Vec::new();
    for venue in venues {
        for sym in symbols {
            ids.push(publisher.topic_id(&format!("md.{venue}.{sym}.trade"))?);
        }
    }
    for seq in 0..count {
        let tick = Tick {
            price: 10_000 + (seq % 97) as i64,
            size: 100 + seq % 7,
            seq,
        };
        publisher.publish_pod(&ids[seq as usize % ids.len()], &tick)?;
    }
    // Tell workers the feed is over.
    publisher.publish("md.end", b"")?;
    println!("published {count} ticks on bus `{bus_name}`");
    // A bus outlives the processes that use it (workers may attach later);
    // remove it when done.
    println!(
        "the bus stays in /dev/shm/shm-bus.{bus_name}: `shm-bus remove {bus_name}` removes it"
    );
    // Give slow workers a moment before the publisher detaches (its ring
    // stays readable either way).
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}
