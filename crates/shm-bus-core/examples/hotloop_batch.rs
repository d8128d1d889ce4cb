//! Like `hotloop`, in bursts: `Publisher::publish_many` then
//! `Subscriber::try_recv_many`, `BATCH` messages at a time, in one process.
//! A fixed workload for instruction counting (`scripts/instructions.sh`).
//!
//! Run: `cargo run --release -p shm-bus-core --example hotloop_batch -- N BATCH`
use shm_bus_core::{Bus, BusConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let batch: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(32)
        .max(1);
    let name = format!("hotloop-batch-{}", std::process::id());
    let bus = Bus::create(&name, BusConfig::default())?;
    let result = (|| -> Result<u64, Box<dyn std::error::Error>> {
        let mut publisher = bus.publisher("hot")?;
        let mut subscriber = bus.subscriber("hot")?;
        subscriber.subscribe("hot.{x}")?;
        let topic = publisher.topic_id("hot.loop")?;
        let payload = [7u8; 64];
        let burst = vec![&payload[..]; batch];
        let mut sum = 0u64;
        let mut left = n;
        while left > 0 {
            let k = left.min(batch as u64) as usize;
            publisher.publish_many(&topic, burst[..k].iter().copied())?;
            let got = subscriber.try_recv_many(k, |s| sum += s.payload()[0] as u64)?;
            assert_eq!(got, k, "a burst is received whole");
            left -= k as u64;
        }
        Ok(sum)
    })();
    Bus::remove(&name)?;
    println!("{}", result?);
    Ok(())
}
