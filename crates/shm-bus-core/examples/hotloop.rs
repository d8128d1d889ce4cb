//! Publishes and receives in one process, in a tight loop: a fixed
//! workload for instruction counting (`valgrind --tool=callgrind`).
//!
//! Run: `cargo run --release -p shm-bus-core --example hotloop -- 1000000`
use shm_bus_core::{Bus, BusConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let name = format!("hotloop-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default())?;
    let result = (|| -> Result<u64, Box<dyn std::error::Error>> {
        let mut publisher = bus.publisher("hot")?;
        let mut subscriber = bus.subscriber("hot")?;
        subscriber.subscribe("hot.{x}")?;
        let topic = publisher.topic_id("hot.loop")?;
        let payload = [7u8; 64];
        let mut sum = 0u64;
        for _ in 0..n {
            publisher.publish(&topic, &payload)?;
            let s = subscriber.try_recv()?;
            sum += s.payload()[0] as u64;
        }
        Ok(sum)
    })();
    Bus::remove(&name)?;
    println!("{}", result?);
    Ok(())
}
