//! Ping-pong floors that move 1, 2 or 3 cache lines per one-way message,
//! between two processes: where a bus message's distance from the
//! one-line floor goes.
//!
//! The floor is `shm_bus_floor::lines`: each message writes `lines - 1`
//! whole data lines (eight atomic word stores each, stepping through a
//! 1 MiB area per direction, as a ring does) and then a flag word on a
//! line of its own (Release). The other side spins on the flag (Acquire),
//! checks the first word of each data line, and answers the same way. `lines = 1` is the floor of `shm-bus
//! bench latency`; a 64 B bus message touches two lines (its record and
//! the next header) or three (when the record starts mid-line).
//!
//! ```sh
//! cargo run --release -p shm-bus-floor --example lines [-- ROUNDS COUNT]
//! ```
//!
//! Prints the one-way p50 and p99 (half the round trip) of each variant
//! per round, the variants interleaved within a round, and the medians
//! over the rounds.

use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use shm_bus_alloc::Segment;
use shm_bus_floor::LinesPingPong;
use shm_bus_floor::segment::{create_lines_ping_pong, open_lines_ping_pong};

const VARIANTS: [usize; 3] = [1, 2, 3];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some("--echo") {
        echo(&args[2..])
    } else {
        ping(&args[1..])
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lines: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Spins until the other side sent `seq` (giving up after 10 s; the clock
/// is read only every 2^20 polls).
fn recv<O>(end: &mut LinesPingPong<O>, seq: u64) -> Result<()> {
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    while end.try_recv()? != Some(seq) {
        spins = spins.wrapping_add(1);
        if spins % (1 << 20) == 0 {
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("no answer to message {seq} for 10 s").into());
            }
        }
        std::hint::spin_loop();
    }
    Ok(())
}

/// Removes the segment and stops the echo, whatever happens.
struct Cleanup {
    name: String,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Segment::unlink(&self.name);
    }
}

fn ping(args: &[String]) -> Result<()> {
    let rounds: usize = args.first().map_or(Ok(5), |s| s.parse())?;
    let count: u64 = args.get(1).map_or(Ok(200_000), |s| s.parse())?;
    let name = format!("shm-bus-floor-lines.{}", std::process::id());
    let mut cleanup = Cleanup {
        name: name.clone(),
        child: None,
    };
    let mut end = create_lines_ping_pong(&name, VARIANTS[0])?;
    let total = rounds as u64 * VARIANTS.len() as u64 * (count + count / 10);
    cleanup.child = Some(
        Command::new(std::env::current_exe()?)
            .args(["--echo", &name, &rounds.to_string(), &count.to_string()])
            .spawn()?,
    );
    let mut seq = 0u64;
    let mut medians: Vec<Vec<(u64, u64)>> = vec![Vec::new(); VARIANTS.len()];
    for round in 0..rounds {
        for (v, &lines) in VARIANTS.iter().enumerate() {
            end.set_lines(lines);
            let mut rtt = Vec::with_capacity(count as usize);
            for i in 0..count + count / 10 {
                seq += 1;
                let t0 = Instant::now();
                end.send(seq);
                recv(&mut end, seq)?;
                if i >= count / 10 {
                    rtt.push(t0.elapsed().as_nanos() as u64);
                }
            }
            rtt.sort_unstable();
            let p = |q: f64| rtt[((rtt.len() - 1) as f64 * q) as usize] / 2;
            println!(
                "round {round}: {lines} line(s): one-way p50 {} ns, p99 {} ns",
                p(0.5),
                p(0.99)
            );
            medians[v].push((p(0.5), p(0.99)));
        }
    }
    debug_assert_eq!(seq, total);
    for (v, &lines) in VARIANTS.iter().enumerate() {
        let mut p50: Vec<u64> = medians[v].iter().map(|m| m.0).collect();
        let mut p99: Vec<u64> = medians[v].iter().map(|m| m.1).collect();
        p50.sort_unstable();
        p99.sort_unstable();
        println!(
            "{lines} line(s): median over {rounds} rounds: p50 {} ns, p99 {} ns",
            p50[p50.len() / 2],
            p99[p99.len() / 2]
        );
    }
    if let Some(mut child) = cleanup.child.take() {
        if !child.wait()?.success() {
            return Err("the echo process failed".into());
        }
    }
    Ok(())
}

fn echo(args: &[String]) -> Result<()> {
    let [name, rounds, count] = args else {
        return Err("usage: lines --echo SEGMENT ROUNDS COUNT".into());
    };
    let rounds: usize = rounds.parse()?;
    let count: u64 = count.parse()?;
    let mut end = open_lines_ping_pong(name, VARIANTS[0])?;
    let mut seq = 0u64;
    for _ in 0..rounds {
        for &lines in &VARIANTS {
            end.set_lines(lines);
            for _ in 0..count + count / 10 {
                seq += 1;
                recv(&mut end, seq)?;
                end.send(seq);
            }
        }
    }
    Ok(())
}
