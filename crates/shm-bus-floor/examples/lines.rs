//! Ping-pong floors that move 1, 2 or 3 cache lines per one-way message,
//! between two processes: where a bus message's distance from the
//! one-line floor goes.
//!
//! Each message writes `lines - 1` whole data lines (eight atomic word
//! stores each, stepping through a 1 MiB area per direction, as a ring
//! does) and then a flag word on a line of its own (Release). The other
//! side spins on the flag (Acquire), checks the first word of each data
//! line, and answers the same way. `lines = 1` is the floor of `shm-bus
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shm_bus_alloc::{Offset, Segment};

/// Words per cache line.
const LINE_WORDS: usize = 8;
/// Data area per direction: 1 MiB, in words.
const AREA_WORDS: usize = (1 << 20) / 8;
/// Flags: ping's at word 0, echo's at word 16 (128 bytes apart).
const FLAG_WORDS: usize = 32;
const TOTAL_WORDS: usize = FLAG_WORDS + 2 * AREA_WORDS;
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

/// The shared words of segment `seg`.
fn words(seg: &Segment) -> Result<&[AtomicU64]> {
    let off = seg.root::<u8>(0).ok_or("segment has no root")?;
    Ok(seg.resolve_slice(Offset::<AtomicU64>::new(off.get()), TOTAL_WORDS as u64)?)
}

/// One side of a ping-pong of `lines` lines: the words it writes and
/// reads.
struct End<'a> {
    out_flag: &'a AtomicU64,
    in_flag: &'a AtomicU64,
    out_area: &'a [AtomicU64],
    in_area: &'a [AtomicU64],
}

impl End<'_> {
    fn new(w: &[AtomicU64], ping: bool) -> End<'_> {
        let (a, b) = w[FLAG_WORDS..].split_at(AREA_WORDS);
        let (out_area, in_area) = if ping { (a, b) } else { (b, a) };
        End {
            out_flag: &w[if ping { 0 } else { 16 }],
            in_flag: &w[if ping { 16 } else { 0 }],
            out_area,
            in_area,
        }
    }

    /// Where message `seq`'s data lines start (words), stepping through
    /// the area.
    fn at(seq: u64, lines: usize) -> usize {
        (seq as usize * (lines - 1) * LINE_WORDS) % AREA_WORDS
    }

    fn send(&self, seq: u64, lines: usize) {
        let at = Self::at(seq, lines);
        for w in &self.out_area[at..at + (lines - 1) * LINE_WORDS] {
            // Relaxed: published by the Release flag store below.
            w.store(seq, Ordering::Relaxed);
        }
        // Release: pairs with the Acquire flag load in `recv`.
        self.out_flag.store(seq, Ordering::Release);
    }

    /// Spins until the other side sent `seq` (giving up after 10 s; the
    /// clock is read only every 2^20 polls); checks its data lines.
    fn recv(&self, seq: u64, lines: usize) -> Result<()> {
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        // Acquire: pairs with the Release flag store in `send`.
        while self.in_flag.load(Ordering::Acquire) != seq {
            spins = spins.wrapping_add(1);
            if spins % (1 << 20) == 0 {
                let start = *since.get_or_insert_with(Instant::now);
                if start.elapsed() > Duration::from_secs(10) {
                    return Err(format!("no answer to message {seq} for 10 s").into());
                }
            }
            std::hint::spin_loop();
        }
        let at = Self::at(seq, lines);
        for l in 0..lines - 1 {
            // Relaxed: ordered after the Acquire flag load.
            let got = self.in_area[at + l * LINE_WORDS].load(Ordering::Relaxed);
            if got != seq {
                return Err(format!("data line {l} of message {seq} holds {got}").into());
            }
        }
        Ok(())
    }
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
    let bytes = (TOTAL_WORDS * 8) as u64;
    let seg = Segment::builder(&name)
        .size(bytes + (1 << 20))
        .create(|init| {
            let off = init.arena().alloc(bytes, 4096)?;
            let w: &[AtomicU64] = init
                .segment()
                .resolve_slice(Offset::new(off.get()), TOTAL_WORDS as u64)?;
            for x in w {
                // Relaxed: the segment is published Ready after this.
                x.store(0, Ordering::Relaxed);
            }
            init.set_root(0, off)
        })?;
    let w = words(&seg)?;
    let end = End::new(w, true);
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
            let mut rtt = Vec::with_capacity(count as usize);
            for i in 0..count + count / 10 {
                seq += 1;
                let t0 = Instant::now();
                end.send(seq, lines);
                end.recv(seq, lines)?;
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
    let seg = Segment::open(name)?;
    let w = words(&seg)?;
    let end = End::new(w, false);
    let mut seq = 0u64;
    for _ in 0..rounds {
        for &lines in &VARIANTS {
            for _ in 0..count + count / 10 {
                seq += 1;
                end.recv(seq, lines)?;
                end.send(seq, lines);
            }
        }
    }
    Ok(())
}
