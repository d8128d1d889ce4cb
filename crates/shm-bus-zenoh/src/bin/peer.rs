//! Test peers for the bridge's multi-process tests: a producer that
//! publishes generated payloads round-robin over topics, and a consumer
//! that subscribes with patterns and verifies what it got (per topic
//! counts, per producer order, duplicates, damage). Each prints one JSON
//! line at the end.
//!
//! ```sh
//! shm-bus-zenoh-peer publish BUS --tag 1 --topic a.x --topic a.y --count 1000
//! shm-bus-zenoh-peer consume BUS --pattern 'a.**' --expect 1000
//! ```
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use shm_bus_core::{Bus, RecvError};
use shm_bus_zenoh::load;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Publishes `count` generated payloads, topic i % K for the i-th.
    Publish {
        bus: String,
        #[arg(long)]
        tag: u32,
        #[arg(long = "topic", required = true)]
        topics: Vec<String>,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Events per second (default: as fast as the bus takes them).
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Receives until `expect` events, or `idle` seconds without one.
    Consume {
        bus: String,
        #[arg(long = "pattern", required = true)]
        patterns: Vec<String>,
        #[arg(long)]
        expect: u64,
        #[arg(long, default_value_t = 10.0)]
        idle: f64,
    },
}

fn main() -> ExitCode {
    let res = match Args::parse().role {
        Role::Publish {
            bus,
            tag,
            topics,
            count,
            size,
            rate,
        } => publish(&bus, tag, &topics, count, size, rate),
        Role::Consume {
            bus,
            patterns,
            expect,
            idle,
        } => consume(&bus, &patterns, expect, idle),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shm-bus-zenoh-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn publish(
    bus: &str,
    tag: u32,
    topics: &[String],
    count: u64,
    size: usize,
    rate: Option<u64>,
) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open(bus)?;
    let mut p = bus.publisher(&format!("peer-{tag}"))?;
    let ids = topics
        .iter()
        .map(|t| p.topic_id(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut buf = vec![0u8; size.max(load::MIN_SIZE)];
    let start = Instant::now();
    for i in 0..count {
        if let Some(r) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / r as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let k = (i % ids.len() as u64) as usize;
        load::fill(&mut buf, tag, i, k as u32, load::wall_ns());
        p.publish(&ids[k], &buf)?;
    }
    println!(
        "{}",
        serde_json::json!({"published": count, "seconds": start.elapsed().as_secs_f64()})
    );
    Ok(())
}

fn consume(
    bus: &str,
    patterns: &[String],
    expect: u64,
    idle: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open(bus)?;
    let mut sub = bus.subscriber("peer-consume")?;
    for p in patterns {
        sub.subscribe(p)?;
    }
    println!("ready");
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    // Per tag: last index, received.
    let mut per_tag: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let (mut received, mut out_of_order, mut duplicates, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let idle = Duration::from_secs_f64(idle);
    while received < expect {
        let s = match sub.recv_timeout(Duration::from_millis(100)) {
            Ok(s) => s,
            Err(RecvError::Timeout) => {
                if last.elapsed() > idle {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        last = Instant::now();
        first.get_or_insert(last);
        received += 1;
        *per_topic.entry(s.topic().to_owned()).or_default() += 1;
        match load::read(s.payload()) {
            None => corrupt += 1,
            Some(st) => {
                let e = per_tag.entry(st.tag).or_insert((u64::MAX, 0));
                if e.0 != u64::MAX {
                    if st.index == e.0 {
                        duplicates += 1;
                    } else if st.index < e.0 {
                        out_of_order += 1;
                    }
                }
                e.0 = st.index;
                e.1 += 1;
            }
        }
    }
    let span = match first {
        Some(f) => last.duration_since(f).as_secs_f64(),
        None => 0.0,
    };
    let tags: BTreeMap<String, u64> = per_tag
        .iter()
        .map(|(t, (_, n))| (t.to_string(), *n))
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "received": received,
            "per_topic": per_topic,
            "per_tag": tags,
            "out_of_order": out_of_order,
            "duplicates": duplicates,
            "corrupt": corrupt,
            "seconds": start.elapsed().as_secs_f64(),
            "span_seconds": span,
        })
    );
    Ok(())
}
