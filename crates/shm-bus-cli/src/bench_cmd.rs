//! `shm-bus bench latency | throughput`: measurements between real
//! processes, each next to a bare shared-memory floor measured in the same
//! run (these VMs move vCPUs between core pairs every few minutes, so only
//! same-run comparisons mean anything).
//!
//! - **latency**: one-way time as half the round trip of a ping-pong. This
//!   process publishes on `bench.ping`; a child subscribed to it answers on
//!   `bench.pong`; both busy-poll. Payloads are loaned in the ring and only
//!   their first 8 bytes (a sequence number) are written: zero copy, as
//!   iceoryx2's benchmark loans uninitialised samples. The floor is a bare
//!   cache-line ping-pong between the same two processes. Bus and floor
//!   alternate in rounds and every round's medians are reported.
//! - **throughput**: this process publishes `--count` messages (the whole
//!   payload written, once, into the ring) to K subscriber processes that
//!   read each message's sequence number; the rate is `count` over the time
//!   from the first publish to the last subscriber's last receive. The
//!   floor is a bare SPSC ring (fixed slots, cached indices) moving the same
//!   messages, written and read the same way, between two processes.
//!   Subscribers receive with `recv` (spin 50 µs, then sleep on the bus's
//!   futex), as applications do; the floor's consumer only spins.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;
use shm_bus_alloc::{Offset, Segment};
use shm_bus_core::{Bus, BusConfig, RecvError};

use crate::BadInput;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// One-way latency between two processes (half a ping-pong round trip).
    Latency {
        /// Payload bytes (at least 8).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Round trips measured (after a warm-up of 10%).
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Rounds, alternating bus and floor.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Messages per second from one producer to K subscriber processes.
    Throughput {
        /// Payload bytes (at least 8).
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Messages (default: 1,000,000, fewer for large payloads so that
        /// about 4 GiB move).
        #[arg(long)]
        count: Option<u64>,
        /// Subscriber processes.
        #[arg(long, default_value_t = 1)]
        subscribers: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(cmd: BenchCommand) -> Result<ExitCode> {
    crate::common::catch_interrupts();
    match cmd {
        BenchCommand::Latency {
            size,
            count,
            rounds,
            json,
        } => latency(size, count, rounds.max(1), json),
        BenchCommand::Throughput {
            size,
            count,
            subscribers,
            json,
        } => {
            let count = count.unwrap_or_else(|| {
                (4u64 << 30)
                    .div_ceil(size.max(1) as u64)
                    .clamp(1000, 1_000_000)
            });
            throughput(size, count, subscribers, json)
        }
    }
}

// ------------------------------------------------------------ plumbing

/// A bus or raw segment named for this run, removed on drop.
struct Named(String);

impl Drop for Named {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn unique(tag: &str) -> Named {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    Named(format!(
        "__bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A child process (of `bench` or `demo`), killed if still running on
/// drop; its stdout lines arrive through a channel.
pub(crate) struct Peer {
    pub(crate) child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Peer {
    pub(crate) fn spawn(role: &str, args: &[String]) -> Result<Peer> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("__child")
            .arg(role)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning a benchmark process")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Ok(Peer { child, lines })
    }

    /// The next stdout line, within `timeout`.
    pub(crate) fn line(&mut self, timeout: Duration) -> Result<String> {
        self.lines
            .recv_timeout(timeout)
            .context("benchmark process stopped answering")
    }

    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("benchmark process failed: {status}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("benchmark process did not finish");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw shared memory for the floors: `words` u64s, each on its own cache
/// line, plus `bytes` of data.
struct Floor {
    seg: Segment,
    base: u64,
    bytes: u64,
}

const LINE: u64 = 128; // two cache lines: no adjacent-line prefetch sharing

impl Floor {
    fn create(name: &str, words: u64, bytes: u64) -> Result<Floor> {
        let total = words * LINE + bytes;
        let seg = Segment::builder(name)
            .size(total + (1 << 20))
            .create(|init| {
                let off = init.arena().alloc(total, 4096)?;
                // Zero the control words (the arena hands out garbage).
                for w in 0..words {
                    let word: &AtomicU64 =
                        init.segment().resolve(Offset::new(off.get() + w * LINE))?;
                    word.store(0, Ordering::Relaxed);
                }
                init.set_root(0, off)
            })?;
        Floor::attach(seg, words, bytes)
    }

    fn open(name: &str, words: u64, bytes: u64) -> Result<Floor> {
        Floor::attach(Segment::open(name)?, words, bytes)
    }

    fn attach(seg: Segment, words: u64, bytes: u64) -> Result<Floor> {
        let base = seg
            .root::<u8>(0)
            .context("floor segment has no root")?
            .get();
        seg.bytes(Offset::new(base), words * LINE + bytes)?;
        Ok(Floor {
            base: base + words * LINE,
            seg,
            bytes,
        })
    }

    fn word(&self, i: u64) -> &AtomicU64 {
        self.seg
            .resolve(Offset::new(self.base - (i + 1) * LINE))
            .expect("floor word in bounds (checked at attach)")
    }

    fn data(&self) -> *mut u8 {
        self.seg
            .bytes(Offset::new(self.base), self.bytes)
            .expect("floor data in bounds (checked at attach)")
            .as_ptr()
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn check_size(size: usize) -> Result<(), BadInput> {
    if size < 8 {
        return Err(BadInput(format!(
            "--size {size}: at least 8 bytes (a sequence number)"
        )));
    }
    Ok(())
}

fn ring_for(size: usize) -> u64 {
    // Room for several records; at least 1 MiB.
    ((size as u64 + 64) * 8).next_power_of_two().max(1 << 20)
}

// ------------------------------------------------------------- latency

fn latency(size: usize, count: u64, rounds: u32, json: bool) -> Result<ExitCode> {
    check_size(size)?;
    let config = BusConfig::default().with_ring_bytes(ring_for(size));
    if size > config.max_payload() {
        return Err(BadInput(format!("--size {size} is larger than the ring allows")).into());
    }
    let per_round = count.div_ceil(rounds as u64).max(1);
    let warmup = (per_round / 10).max(100);
    let bus_name = unique("lat");
    let floor_name = unique("latfloor");
    let bus = Bus::create(&bus_name.0, config)?;
    let floor = Floor::create(&floor_name.0, 2, 0)?;
    let total = rounds as u64 * (warmup + per_round);
    let mut echo = Peer::spawn(
        "bench-echo",
        &[
            bus_name.0.clone(),
            floor_name.0.clone(),
            size.to_string(),
            total.to_string(),
        ],
    )?;
    let mut publisher = bus.publisher("bench ping")?;
    let mut subscriber = bus.subscriber("bench ping")?;
    subscriber.subscribe("bench.pong")?;
    let ping = publisher.topic_id("bench.ping")?;
    if echo.line(Duration::from_secs(30))? != "READY" {
        bail!("echo process did not start");
    }
    let mut bus_rtt = Vec::with_capacity((rounds as u64 * per_round) as usize);
    let mut floor_rtt = Vec::with_capacity(bus_rtt.capacity());
    let mut per_round_p50 = Vec::new();
    let (ping_word, pong_word) = (floor.word(0), floor.word(1));
    let mut floor_seq = 0u64;
    for _ in 0..rounds {
        // Bus round.
        let mut round = Vec::with_capacity(per_round as usize);
        for i in 0..warmup + per_round {
            let t0 = Instant::now();
            let mut loan = publisher.loan(&ping, size)?;
            loan.as_mut_slice()[..8].copy_from_slice(&i.to_le_bytes());
            loan.commit();
            let mut spins = 0u64;
            loop {
                match subscriber.try_recv() {
                    Ok(s) => {
                        debug_assert_eq!(&s.payload()[..8], &i.to_le_bytes());
                        break;
                    }
                    Err(RecvError::Empty) => {
                        spins += 1;
                        if spins % (1 << 24) == 0 {
                            if crate::common::interrupted() {
                                bail!("interrupted");
                            }
                            if echo.child.try_wait()?.is_some() {
                                bail!("echo process died");
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let rtt = t0.elapsed().as_nanos() as u64;
            if i >= warmup {
                round.push(rtt);
            }
        }
        round.sort_unstable();
        let bus_p50 = percentile(&round, 0.5);
        bus_rtt.extend_from_slice(&round);
        // Floor round: a bare cache-line ping-pong.
        let mut fround = Vec::with_capacity(per_round as usize);
        for i in 0..warmup + per_round {
            floor_seq += 1;
            let t0 = Instant::now();
            // Release: pairs with the echo's Acquire load.
            ping_word.store(floor_seq, Ordering::Release);
            // Acquire: pairs with the echo's Release store.
            while pong_word.load(Ordering::Acquire) != floor_seq {
                std::hint::spin_loop();
            }
            let rtt = t0.elapsed().as_nanos() as u64;
            if i >= warmup {
                fround.push(rtt);
            }
        }
        fround.sort_unstable();
        per_round_p50.push((bus_p50 / 2, percentile(&fround, 0.5) / 2));
        floor_rtt.extend_from_slice(&fround);
    }
    // Tell the echo to stop.
    ping_word.store(u64::MAX, Ordering::Release);
    echo.wait(Duration::from_secs(30))?;
    bus_rtt.sort_unstable();
    floor_rtt.sort_unstable();
    let half = |v: u64| v / 2;
    let out = json!({
        "size": size,
        "count": bus_rtt.len(),
        "p50_ns": half(percentile(&bus_rtt, 0.5)),
        "p99_ns": half(percentile(&bus_rtt, 0.99)),
        "p999_ns": half(percentile(&bus_rtt, 0.999)),
        "max_ns": half(*bus_rtt.last().unwrap_or(&0)),
        "floor_p50_ns": half(percentile(&floor_rtt, 0.5)),
        "floor_p99_ns": half(percentile(&floor_rtt, 0.99)),
        "rounds": per_round_p50.iter().map(|(b, f)| json!({"p50_ns": b, "floor_p50_ns": f})).collect::<Vec<_>>(),
    });
    print_result(&out, json, |o| {
        format!(
            "latency, {size} B, one-way (half round trip), {} samples in {} rounds\n  \
             shm-bus  p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns\n  \
             floor    p50 {} ns  p99 {} ns   (bare cache-line ping-pong, same processes)\n  \
             ratio    p50 {:.2}x the floor\n",
            o["count"],
            rounds,
            o["p50_ns"],
            o["p99_ns"],
            o["p999_ns"],
            o["max_ns"],
            o["floor_p50_ns"],
            o["floor_p99_ns"],
            o["p50_ns"].as_f64().unwrap_or(0.0)
                / o["floor_p50_ns"].as_f64().unwrap_or(1.0).max(1.0),
        )
    })
}

/// The ping-pong partner: answers bus pings with pongs, then floor pings.
fn echo(args: &[String]) -> Result<ExitCode> {
    let [bus_name, floor_name, size, total] = args else {
        bail!(BadInput("bench-echo BUS FLOOR SIZE TOTAL".into()));
    };
    let size: usize = size.parse()?;
    let total: u64 = total.parse()?;
    let bus = Bus::open(bus_name)?;
    let floor = Floor::open(floor_name, 2, 0)?;
    let mut subscriber = bus.subscriber("bench echo")?;
    subscriber.subscribe("bench.ping")?;
    let mut publisher = bus.publisher("bench echo")?;
    let pong = publisher.topic_id("bench.pong")?;
    println!("READY");
    std::io::stdout().flush()?;
    let (ping_word, pong_word) = (floor.word(0), floor.word(1));
    let mut answered = 0u64;
    let mut floor_seen = 0u64;
    let mut idle = Instant::now();
    let mut spins = 0u32;
    loop {
        match subscriber.try_recv() {
            Ok(s) => {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&s.payload()[..8]);
                drop(s);
                let mut loan = publisher.loan(&pong, size)?;
                loan.as_mut_slice()[..8].copy_from_slice(&seq);
                loan.commit();
                answered += 1;
                idle = Instant::now();
                continue;
            }
            Err(RecvError::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        // Acquire: pairs with the pinger's Release store.
        let p = ping_word.load(Ordering::Acquire);
        if p == u64::MAX {
            break;
        }
        if p != floor_seen {
            floor_seen = p;
            // Release: pairs with the pinger's Acquire load.
            pong_word.store(p, Ordering::Release);
            // Answer the floor round as tightly as the pinger asks.
            loop {
                let q = ping_word.load(Ordering::Acquire);
                if q == u64::MAX {
                    return Ok(ExitCode::SUCCESS);
                }
                if q != floor_seen {
                    floor_seen = q;
                    pong_word.store(q, Ordering::Release);
                    continue;
                }
                spins += 1;
                if spins % (1 << 20) == 0 {
                    break; // go back to watching the bus too
                }
                std::hint::spin_loop();
            }
            idle = Instant::now();
        }
        spins = spins.wrapping_add(1);
        if spins % (1 << 20) == 0 && idle.elapsed() > Duration::from_secs(20) {
            bail!("no ping for 20 s (answered {answered} of {total}); giving up");
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------- throughput

fn throughput(size: usize, count: u64, subscribers: u32, json: bool) -> Result<ExitCode> {
    check_size(size)?;
    if subscribers == 0 {
        return Err(BadInput("--subscribers must be at least 1".into()).into());
    }
    let ring = ring_for(size);
    let config = BusConfig::default().with_ring_bytes(ring);
    if size > config.max_payload() {
        return Err(BadInput(format!("--size {size} is larger than the ring allows")).into());
    }
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();

    // The floor first, then the bus, then the floor again: report the
    // better floor, as the bus figure is compared against it.
    let floor1 = floor_throughput(size, count, ring)?;
    let bus_rate = bus_throughput(&config, size, count, subscribers, &payload)?;
    let floor2 = floor_throughput(size, count, ring)?;
    let floor = floor1.max(floor2);
    let out = json!({
        "size": size,
        "subscribers": subscribers,
        "count": count,
        "msgs_per_sec": bus_rate.round(),
        "bytes_per_sec": (bus_rate * size as f64).round(),
        "floor_msgs_per_sec": floor.round(),
        "floor_runs_msgs_per_sec": [floor1.round(), floor2.round()],
        "ratio_to_floor": if floor > 0.0 { bus_rate / floor } else { 0.0 },
    });
    print_result(&out, json, |o| {
        format!(
            "throughput, {size} B, 1 producer -> {subscribers} subscriber process(es), {count} messages\n  \
             shm-bus  {:.0} msg/s  {:.1} MB/s\n  \
             floor    {:.0} msg/s  (bare SPSC ring, 2 processes; runs before and after: {} / {})\n  \
             ratio    {:.2}x the floor\n",
            bus_rate,
            bus_rate * size as f64 / 1e6,
            floor,
            o["floor_runs_msgs_per_sec"][0],
            o["floor_runs_msgs_per_sec"][1],
            o["ratio_to_floor"].as_f64().unwrap_or(0.0),
        )
    })
}

fn bus_throughput(
    config: &BusConfig,
    size: usize,
    count: u64,
    subscribers: u32,
    payload: &[u8],
) -> Result<f64> {
    let bus_name = unique("tput");
    let bus = Bus::create(&bus_name.0, *config)?;
    let mut sinks = Vec::new();
    for _ in 0..subscribers {
        let mut p = Peer::spawn("bench-sink", &[bus_name.0.clone(), count.to_string()])?;
        if p.line(Duration::from_secs(30))? != "READY" {
            bail!("subscriber process did not start");
        }
        sinks.push(p);
    }
    let mut publisher = bus.publisher("bench source")?;
    let topic = publisher.topic_id("bench.data")?;
    let start = Instant::now();
    let start_ns = now_ns();
    for i in 0..count {
        let mut loan = publisher.loan(&topic, size)?;
        let buf = loan.as_mut_slice();
        buf.copy_from_slice(payload);
        buf[..8].copy_from_slice(&i.to_le_bytes());
        loan.commit();
        if i % (1 << 16) == 0 && crate::common::interrupted() {
            bail!("interrupted");
        }
    }
    let timeout = Duration::from_secs(60) + start.elapsed() * 4;
    let mut last = start_ns;
    for s in &mut sinks {
        let line = s.line(timeout)?;
        let done: u64 = line
            .strip_prefix("DONE ")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected answer from a subscriber: {line}"))?;
        last = last.max(done);
        s.wait(Duration::from_secs(30))?;
    }
    let secs = (last.saturating_sub(start_ns)) as f64 / 1e9;
    Ok(if secs > 0.0 { count as f64 / secs } else { 0.0 })
}

/// A subscriber of the throughput benchmark.
fn sink(args: &[String]) -> Result<ExitCode> {
    let [bus_name, count] = args else {
        bail!(BadInput("bench-sink BUS COUNT".into()));
    };
    let count: u64 = count.parse()?;
    let bus = Bus::open(bus_name)?;
    let mut subscriber = bus.subscriber("bench sink")?;
    subscriber.subscribe("bench.data")?;
    println!("READY");
    std::io::stdout().flush()?;
    // `recv` spins briefly, then sleeps on the bus's futex: with more busy
    // processes than cores, a subscriber that only spun would take the CPU
    // the producer needs.
    let mut next = 0u64;
    while next < count {
        match subscriber.recv_timeout(Duration::from_secs(20)) {
            Ok(s) => {
                let seq = u64::from_le_bytes(s.payload()[..8].try_into()?);
                if seq != next {
                    bail!("expected message {next}, got {seq}");
                }
                next += 1;
            }
            Err(RecvError::Timeout) => bail!("no message for 20 s after {next} of {count}"),
            Err(e) => return Err(e.into()),
        }
    }
    println!("DONE {}", now_ns());
    Ok(ExitCode::SUCCESS)
}

/// Floor: a bare SPSC ring of fixed slots, between this process and a
/// child; the producer writes the whole payload, the consumer reads the
/// sequence number.
fn floor_throughput(size: usize, count: u64, ring: u64) -> Result<f64> {
    let slot = (size as u64).div_ceil(64) * 64;
    let slots = (ring / slot).max(2);
    let name = unique("tputfloor");
    let floor = Floor::create(&name.0, 3, slots * slot)?;
    let mut peer = Peer::spawn(
        "bench-floor-sink",
        &[
            name.0.clone(),
            size.to_string(),
            count.to_string(),
            ring.to_string(),
        ],
    )?;
    if peer.line(Duration::from_secs(30))? != "READY" {
        bail!("floor consumer did not start");
    }
    let (head, tail, done) = (floor.word(0), floor.word(1), floor.word(2));
    let data = floor.data();
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let start = Instant::now();
    let mut head_cache = 0u64;
    for i in 0..count {
        while i - head_cache >= slots {
            // Acquire: pairs with the consumer's Release store of `head`.
            head_cache = head.load(Ordering::Acquire);
        }
        // SAFETY: slot `i % slots` lies inside the data region (checked at
        // attach) and the consumer has released it (`head` > i - slots).
        unsafe {
            let dst = data.add(((i % slots) * slot) as usize);
            std::ptr::copy_nonoverlapping(payload.as_ptr(), dst, size);
            std::ptr::copy_nonoverlapping(i.to_le_bytes().as_ptr(), dst, 8);
        }
        // Release: pairs with the consumer's Acquire load of `tail`.
        tail.store(i + 1, Ordering::Release);
    }
    // Acquire: pairs with the consumer's Release store of `done`.
    while done.load(Ordering::Acquire) == 0 {
        if start.elapsed() > Duration::from_secs(120) {
            bail!("floor consumer did not finish");
        }
        std::hint::spin_loop();
    }
    let secs = start.elapsed().as_secs_f64();
    peer.wait(Duration::from_secs(30))?;
    Ok(count as f64 / secs)
}

fn floor_sink(args: &[String]) -> Result<ExitCode> {
    let [name, size, count, ring] = args else {
        bail!(BadInput("bench-floor-sink NAME SIZE COUNT RING".into()));
    };
    let (size, count, ring): (u64, u64, u64) = (size.parse()?, count.parse()?, ring.parse()?);
    let slot = size.div_ceil(64) * 64;
    let slots = (ring / slot).max(2);
    let floor = Floor::open(name, 3, slots * slot)?;
    let (head, tail, done) = (floor.word(0), floor.word(1), floor.word(2));
    let data = floor.data();
    println!("READY");
    std::io::stdout().flush()?;
    let mut tail_cache = 0u64;
    let idle = Instant::now();
    for i in 0..count {
        while tail_cache <= i {
            // Acquire: pairs with the producer's Release store of `tail`.
            tail_cache = tail.load(Ordering::Acquire);
            if tail_cache <= i && idle.elapsed() > Duration::from_secs(120) {
                bail!("floor producer stopped");
            }
        }
        let mut seq = [0u8; 8];
        // SAFETY: slot `i % slots` is inside the data region and was
        // published by the producer's Release store of `tail` > i.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.add(((i % slots) * slot) as usize),
                seq.as_mut_ptr(),
                8,
            )
        };
        if u64::from_le_bytes(seq) != i {
            bail!(
                "floor ring delivered {} instead of {i}",
                u64::from_le_bytes(seq)
            );
        }
        // Release: pairs with the producer's Acquire load of `head`.
        head.store(i + 1, Ordering::Release);
    }
    // Release: pairs with the producer's Acquire load of `done`.
    done.store(1, Ordering::Release);
    Ok(ExitCode::SUCCESS)
}

// --------------------------------------------------------------- misc

pub(crate) fn child(role: &str, args: &[String]) -> Result<ExitCode> {
    match role {
        "bench-echo" => echo(args),
        "bench-sink" => sink(args),
        "bench-floor-sink" => floor_sink(args),
        other => Err(BadInput(format!("unknown child role `{other}`")).into()),
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn print_result(
    out: &serde_json::Value,
    json: bool,
    human: impl FnOnce(&serde_json::Value) -> String,
) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    if json {
        writeln!(stdout, "{out}")?;
    } else {
        write!(stdout, "{}", human(out))?;
    }
    Ok(ExitCode::SUCCESS)
}
