//! The README's worker-group program: start several workers, then the
//! producer; each job goes to exactly one worker.
//!
//! ```sh
//! cargo run --example readme_group -- worker w1   # terminal 1
//! cargo run --example readme_group -- worker w2   # terminal 2
//! cargo run --example readme_group -- producer    # terminal 3: 1000 jobs
//! ```
use std::process::ExitCode;
use std::time::Duration;

use shm_bus::{Bus, BusConfig, RecvError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bus = args.get(2).map_or("jobs", String::as_str);
    let result = match (args.first().map(String::as_str), args.get(1)) {
        (Some("worker"), Some(name)) => worker(bus, name),
        (Some("producer"), _) => producer(bus),
        _ => {
            eprintln!("usage: readme_group worker NAME [BUS] | producer - [BUS]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("readme_group: {e}");
            ExitCode::FAILURE
        }
    }
}

fn worker(bus: &str, name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open_or_create(bus, BusConfig::default())?;
    // Every worker joins the group "resize" with the same patterns (or none).
    let mut worker = bus.group_member("resize", name, &["jobs.{kind}"])?;
    println!("{name}: waiting for jobs");
    let mut handled = 0;
    loop {
        match worker.recv() {
            Ok(job) => {
                // Its member died before finishing it: it may have been
                // handled once already (at-least-once).
                if job.redelivered() {
                    println!("{name}: {} again", job.topic());
                }
                handled += 1; // ... the work; dropping `job` finishes it
            }
            Err(RecvError::BusRemoved) => break,
            Err(e) => return Err(e.into()),
        }
    }
    println!("{name}: handled {handled} jobs");
    Ok(())
}

fn producer(bus: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bus = Bus::open_or_create(bus, BusConfig::default())?;
    let mut publisher = bus.publisher("feed")?;
    for i in 0u32..1000 {
        let kind = if i % 2 == 0 {
            "jobs.thumbnail"
        } else {
            "jobs.preview"
        };
        publisher.publish(kind, &i.to_le_bytes())?;
    }
    // Wait until the group has finished every job, then remove the bus:
    // the workers print their share and end.
    while bus.groups().iter().any(|g| g.backlog > 0) {
        std::thread::sleep(Duration::from_millis(10));
    }
    Bus::remove(bus.name())?;
    Ok(())
}
