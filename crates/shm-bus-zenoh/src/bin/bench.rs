//! Throughput and latency from bus A to bus B through two bridges, next to
//! Zenoh's own pub/sub between two processes on the same loopback, in the
//! same run, rounds interleaved.
//!
//! ```sh
//! cargo build --release --manifest-path crates/shm-bus-zenoh/Cargo.toml
//! crates/shm-bus-zenoh/target/release/shm-bus-zenoh-bench all
//! ```
//!
//! - throughput, Zenoh: a publisher process puts `count` samples
//!   (reliable, `CongestionControl::Block`) on one key; a subscriber
//!   process counts them. Rate = count / (last arrival − first arrival).
//!   Twice: plainly (the anchor), and with the 37-byte attachment every
//!   bridged event carries (`meta`), to show what the metadata costs
//!   Zenoh itself.
//! - throughput, bridged: a producer process publishes `count` events on
//!   bus A; bridge A (`--export '**'`) puts them on Zenoh; bridge B
//!   (`--import '**'`) publishes them into bus B; a consumer process on
//!   bus B counts them, timed the same way. The bus producer and consumer
//!   wait as Zenoh's publisher and subscriber do, in the kernel, without
//!   spinning first (`set_spin(0)`; `--spin-us` changes that): on two
//!   vCPUs shared by six busy threads, a consumer spinning 50 µs (the
//!   bus's default) before each sleep takes CPU the bridges need.
//! - latency: half the round trip of a ping-pong, both ends blocking on
//!   their receive (no busy-polling), express (unbatched) sends on both
//!   paths. Zenoh: ping process ↔ pong process. Bridged: a ping process
//!   on bus A ↔ bridges (both `--export '**' --import '**' --express`) ↔ a
//!   pong process on bus B that answers on another topic.
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use shm_bus_core::{Bus, BusConfig, RecvError};
use shm_bus_zenoh::load;
use shm_bus_zenoh::meta::Meta;
use zenoh::Wait;
use zenoh::bytes::ZBytes;
use zenoh::handlers::FifoChannel;
use zenoh::qos::CongestionControl;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Everything: both sizes, both paths, throughput and latency.
    All {
        /// Events per throughput run.
        #[arg(long, default_value_t = 200_000)]
        count: u64,
        /// Round trips per latency run (after 500 warm-up ones).
        #[arg(long, default_value_t = 5_000)]
        round_trips: u64,
        /// Interleaved rounds per measurement.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Payload sizes.
        #[arg(long = "size", default_values_t = [64usize, 4096])]
        sizes: Vec<usize>,
        /// How long the throughput runs' bus producer and consumer spin
        /// before sleeping, in µs (the bus's default is 50).
        #[arg(long, default_value_t = 0)]
        spin_us: u64,
        #[arg(long)]
        json: bool,
    },
    #[command(hide = true)]
    Zsub {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        count: u64,
    },
    #[command(hide = true)]
    Zpub {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        size: usize,
        /// Put the bridge's attachment with every sample.
        #[arg(long)]
        attach: bool,
    },
    #[command(hide = true)]
    Bsub {
        bus: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        spin_us: u64,
    },
    #[command(hide = true)]
    Bpub {
        bus: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        spin_us: u64,
    },
    #[command(hide = true)]
    Zpong {
        #[arg(long)]
        listen: String,
    },
    #[command(hide = true)]
    Zping {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        size: usize,
    },
    #[command(hide = true)]
    Bpong { bus: String },
    #[command(hide = true)]
    Bping {
        bus: String,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        size: usize,
    },
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> ExitCode {
    let res = match Args::parse().role {
        Role::All {
            count,
            round_trips,
            rounds,
            sizes,
            spin_us,
            json,
        } => all(count, round_trips, rounds, &sizes, spin_us, json),
        Role::Zsub { listen, key, count } => zsub(&listen, &key, count),
        Role::Zpub {
            connect,
            count,
            size,
            attach,
        } => zpub(&connect, count, size, attach),
        Role::Bsub {
            bus,
            count,
            spin_us,
        } => bsub(&bus, count, Duration::from_micros(spin_us)),
        Role::Bpub {
            bus,
            count,
            size,
            spin_us,
        } => bpub(&bus, count, size, Duration::from_micros(spin_us)),
        Role::Zpong { listen } => zpong(&listen),
        Role::Zping {
            connect,
            count,
            size,
        } => zping(&connect, count, size),
        Role::Bpong { bus } => bpong(&bus),
        Role::Bping { bus, count, size } => bping(&bus, count, size),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shm-bus-zenoh-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------ Zenoh roles

fn session(listen: Option<&str>, connect: Option<&str>) -> Res<zenoh::Session> {
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", "\"peer\"")?;
    c.insert_json5("scouting/multicast/enabled", "false")?;
    // Loopback only: listen where told, nowhere else.
    match listen {
        Some(l) => c.insert_json5("listen/endpoints", &format!("[\"{l}\"]"))?,
        None => c.insert_json5("listen/endpoints", "[]")?,
    }
    if let Some(ep) = connect {
        c.insert_json5("connect/endpoints", &format!("[\"{ep}\"]"))?;
    }
    zenoh::open(c).wait()
}

fn wait_matching(p: &zenoh::pubsub::Publisher<'_>) -> Res<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !p.matching_status().wait()?.matching() {
        if Instant::now() > deadline {
            return Err("no subscriber matched in 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the subscriber's other declarations settle.
    std::thread::sleep(Duration::from_millis(100));
    Ok(())
}

fn zsub(listen: &str, key: &str, count: u64) -> Res<()> {
    let s = session(Some(listen), None)?;
    let n = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(0));
    let last = Arc::new(AtomicU64::new(0));
    let (n2, f2, l2) = (n.clone(), first.clone(), last.clone());
    let epoch = Instant::now();
    let _sub = s
        .declare_subscriber(key.to_owned())
        .callback(move |_sample| {
            let t = epoch.elapsed().as_nanos() as u64;
            if n2.fetch_add(1, Ordering::Relaxed) == 0 {
                f2.store(t, Ordering::Relaxed);
            }
            l2.store(t, Ordering::Relaxed);
        })
        .wait()?;
    println!("ready");
    let deadline = Instant::now() + Duration::from_secs(300);
    while n.load(Ordering::Relaxed) < count {
        if Instant::now() > deadline {
            return Err("zsub: timed out".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let span = (last.load(Ordering::Relaxed) - first.load(Ordering::Relaxed)) as f64 / 1e9;
    println!(
        "{}",
        serde_json::json!({"msgs_per_sec": (count - 1) as f64 / span})
    );
    Ok(())
}

fn zpub(connect: &str, count: u64, size: usize, attach: bool) -> Res<()> {
    let s = session(None, Some(connect))?;
    let p = s
        .declare_publisher("bench/tp")
        .congestion_control(CongestionControl::Block)
        .wait()?;
    wait_matching(&p)?;
    let mut buf = vec![0u8; size.max(load::MIN_SIZE)];
    for i in 0..count {
        load::fill(&mut buf, 1, i, 0, 0);
        if attach {
            // What a bridge puts (see `Putter::export`).
            let meta = Meta {
                source: 0x5eed,
                export_seq: i,
                producer: 0,
                producer_seq: i,
                timestamp_ns: i,
            };
            p.put(buf.clone())
                .attachment(ZBytes::from(meta.encode()))
                .wait()?;
        } else {
            p.put(buf.clone()).wait()?;
        }
    }
    // Stay until the subscriber has it all (closing drops what is queued).
    std::io::stdin().read_line(&mut String::new())?;
    Ok(())
}

fn zpong(listen: &str) -> Res<()> {
    let s = session(Some(listen), None)?;
    let p = s
        .declare_publisher("bench/pong")
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait()?;
    let sub = s
        .declare_subscriber("bench/ping")
        .with(FifoChannel::new(1024))
        .wait()?;
    println!("ready");
    while let Ok(sample) = sub.recv() {
        p.put(sample.payload().clone()).wait()?;
    }
    Ok(())
}

fn percentiles(mut v: Vec<u64>) -> serde_json::Value {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    serde_json::json!({"p50_ns": at(0.5), "p99_ns": at(0.99), "max_ns": at(1.0)})
}

fn zping(connect: &str, count: u64, size: usize) -> Res<()> {
    let s = session(None, Some(connect))?;
    let sub = s
        .declare_subscriber("bench/pong")
        .with(FifoChannel::new(1024))
        .wait()?;
    let p = s
        .declare_publisher("bench/ping")
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait()?;
    wait_matching(&p)?;
    let mut buf = vec![0u8; size.max(load::MIN_SIZE)];
    let mut half = Vec::with_capacity(count as usize);
    for i in 0..count + 500 {
        load::fill(&mut buf, 1, i, 0, 0);
        let t0 = Instant::now();
        p.put(buf.clone()).wait()?;
        sub.recv_timeout(Duration::from_secs(10))?
            .ok_or("zping: no pong in 10 s")?;
        if i >= 500 {
            half.push(t0.elapsed().as_nanos() as u64 / 2);
        }
    }
    println!("{}", percentiles(half));
    Ok(())
}

// -------------------------------------------------------------- bus roles

fn bsub(bus: &str, count: u64, spin: Duration) -> Res<()> {
    let bus = Bus::open(bus)?;
    let mut sub = bus.subscriber("bench-sub")?;
    sub.set_spin(spin);
    sub.subscribe("bench.**")?;
    println!("ready");
    let mut first = None;
    let mut last = Instant::now();
    for _ in 0..count {
        match sub.recv_timeout(Duration::from_secs(60)) {
            Ok(s) => {
                if s.len() < load::MIN_SIZE {
                    return Err("bsub: short payload".into());
                }
            }
            Err(RecvError::Timeout) => return Err("bsub: nothing for 60 s".into()),
            Err(e) => return Err(e.into()),
        }
        last = Instant::now();
        first.get_or_insert(last);
    }
    let span = first
        .map(|f| last.duration_since(f).as_secs_f64())
        .unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({"msgs_per_sec": (count - 1) as f64 / span})
    );
    Ok(())
}

fn bpub(bus: &str, count: u64, size: usize, spin: Duration) -> Res<()> {
    let bus = Bus::open(bus)?;
    let mut p = bus.publisher("bench-pub")?;
    p.set_spin(spin);
    let id = p.topic_id("bench.tp")?;
    let mut buf = vec![0u8; size.max(load::MIN_SIZE)];
    for i in 0..count {
        load::fill(&mut buf, 1, i, 0, 0);
        p.publish(&id, &buf)?;
    }
    Ok(())
}

fn bpong(bus: &str) -> Res<()> {
    let bus = Bus::open(bus)?;
    let mut p = bus.publisher("bench-pong")?;
    let id = p.topic_id("pong.x")?;
    let mut sub = bus.subscriber("bench-pong")?;
    sub.subscribe("ping.**")?;
    println!("ready");
    let mut buf = Vec::new();
    loop {
        match sub.recv() {
            Ok(s) => {
                buf.clear();
                buf.extend_from_slice(s.payload());
            }
            Err(RecvError::BusRemoved) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        p.publish(&id, &buf)?;
    }
}

fn bping(bus: &str, count: u64, size: usize) -> Res<()> {
    let bus = Bus::open(bus)?;
    let mut p = bus.publisher("bench-ping")?;
    let id = p.topic_id("ping.x")?;
    let mut sub = bus.subscriber("bench-ping")?;
    sub.subscribe("pong.**")?;
    let mut buf = vec![0u8; size.max(load::MIN_SIZE)];
    let mut half = Vec::with_capacity(count as usize);
    for i in 0..count + 500 {
        load::fill(&mut buf, 1, i, 0, 0);
        let t0 = Instant::now();
        p.publish(&id, &buf)?;
        // The first pings may go before the bridges' routes are known;
        // resend those.
        loop {
            match sub.recv_timeout(Duration::from_millis(if i == 0 { 200 } else { 10_000 })) {
                Ok(_) => break,
                Err(RecvError::Timeout) if i == 0 => {
                    p.publish(&id, &buf)?;
                }
                Err(e) => return Err(format!("bping: {e}").into()),
            }
        }
        if i == 0 {
            // Drain answers to resent first pings.
            while sub.recv_timeout(Duration::from_millis(300)).is_ok() {}
        }
        if i >= 500 {
            half.push(t0.elapsed().as_nanos() as u64 / 2);
        }
    }
    println!("{}", percentiles(half));
    Ok(())
}

// ------------------------------------------------------------ orchestrator

struct Kid(Child, &'static str);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn me() -> Res<PathBuf> {
    Ok(std::env::current_exe()?)
}

fn kid(exe: &PathBuf, args: &[&str], what: &'static str) -> Res<Kid> {
    let child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    Ok(Kid(child, what))
}

/// Reads stdout lines until one contains `marker` (or is the JSON
/// result); the watchdog kills the child when `within` runs out.
fn line(k: &mut Kid, marker: &str, within: Duration) -> Res<String> {
    use std::io::{BufRead, BufReader};
    let out = k.0.stdout.take().ok_or("no stdout")?;
    let pid = k.0.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_owned();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut l = String::new();
        loop {
            l.clear();
            match r.read_line(&mut l) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(()));
                    return;
                }
                Ok(_) if l.contains(&wanted) => {
                    let _ = tx.send(Ok((l.trim().to_owned(), r)));
                    return;
                }
                Ok(_) => {}
            }
        }
    });
    match rx.recv_timeout(within) {
        Ok(Ok((l, r))) => {
            k.0.stdout = Some(r.into_inner());
            Ok(l)
        }
        _ => {
            let _ = k.0.kill();
            let mut err = String::new();
            if let Some(mut e) = k.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            Err(format!("watchdog: {} (pid {pid}) gave no `{marker}`: {err}", k.1).into())
        }
    }
}

fn rate(json_line: &str) -> Res<f64> {
    let v: serde_json::Value = serde_json::from_str(json_line)?;
    v["msgs_per_sec"].as_f64().ok_or_else(|| "no rate".into())
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Buses(Vec<String>);

impl Drop for Buses {
    fn drop(&mut self) {
        for b in &self.0 {
            let _ = Bus::remove(b);
        }
    }
}

/// Bridge A on bus `a` (listening) and bridge B on bus `b` (connecting),
/// with their own arguments; returns once an event on `warm` crosses
/// from A to B (resent until it does).
fn bridge_pair(a: &str, b: &str, a_args: &[&str], b_args: &[&str], warm: &str) -> Res<(Kid, Kid)> {
    let exe = me()?.with_file_name("shm-bus-zenoh");
    let ep = format!("tcp/127.0.0.1:{}", free_port()?);
    let mut ka = vec![a, "--listen", &ep];
    ka.extend_from_slice(a_args);
    let mut kb = vec![b, "--connect", &ep];
    kb.extend_from_slice(b_args);
    let ba = kid(&exe, &ka, "bridge A")?;
    let bb = kid(&exe, &kb, "bridge B")?;
    let (bus_a, bus_b) = (Bus::open(a)?, Bus::open(b)?);
    let mut p = bus_a.publisher("bench-warmup")?;
    let mut s = bus_b.subscriber("bench-warmup")?;
    s.subscribe(warm)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        p.publish(warm, b"warm-up")?;
        if s.recv_timeout(Duration::from_millis(20)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            return Err("bridges did not connect in 60 s".into());
        }
    }
    Ok((ba, bb))
}

/// Zenoh's own pub/sub: a subscriber on `key` counts what a publisher
/// puts on `bench/tp`.
fn throughput_zenoh(count: u64, size: usize, key: &str, attach: bool) -> Res<f64> {
    let exe = me()?;
    let ep = format!("tcp/127.0.0.1:{}", free_port()?);
    let (c, z) = (count.to_string(), size.to_string());
    let mut sub = kid(
        &exe,
        &["zsub", "--listen", &ep, "--key", key, "--count", &c],
        "zsub",
    )?;
    line(&mut sub, "ready", Duration::from_secs(30))?;
    let mut args = vec!["zpub", "--connect", &ep, "--count", &c, "--size", &z];
    if attach {
        args.push("--attach");
    }
    let _pubr = kid(&exe, &args, "zpub")?;
    rate(&line(&mut sub, "msgs_per_sec", Duration::from_secs(300))?)
}

/// Bus A → bridge A (`--export bench.tp`) → bridge B (`--import
/// PATTERN`) → bus B: the topic `bench.tp` has the key `bench/tp`.
fn throughput_bridged(
    count: u64,
    size: usize,
    import: &str,
    spin_us: u64,
    buses: &mut Buses,
    n: &mut u32,
) -> Res<f64> {
    let exe = me()?;
    let (a, b) = new_buses(buses, n)?;
    let _bridges = bridge_pair(
        &a,
        &b,
        &["--export", "bench.tp"],
        &["--import", import],
        "bench.tp",
    )?;
    let (c, z, spin) = (count.to_string(), size.to_string(), spin_us.to_string());
    let mut sub = kid(
        &exe,
        &["bsub", &b, "--count", &c, "--spin-us", &spin],
        "bsub",
    )?;
    line(&mut sub, "ready", Duration::from_secs(30))?;
    let _p = kid(
        &exe,
        &["bpub", &a, "--count", &c, "--size", &z, "--spin-us", &spin],
        "bpub",
    )?;
    rate(&line(&mut sub, "msgs_per_sec", Duration::from_secs(300))?)
}

fn latency_zenoh(rt: u64, size: usize) -> Res<serde_json::Value> {
    let exe = me()?;
    let ep = format!("tcp/127.0.0.1:{}", free_port()?);
    let mut pong = kid(&exe, &["zpong", "--listen", &ep], "zpong")?;
    line(&mut pong, "ready", Duration::from_secs(30))?;
    let (c, z) = (rt.to_string(), size.to_string());
    let mut ping = kid(
        &exe,
        &["zping", "--connect", &ep, "--count", &c, "--size", &z],
        "zping",
    )?;
    Ok(serde_json::from_str(&line(
        &mut ping,
        "p50_ns",
        Duration::from_secs(300),
    )?)?)
}

/// Ping on bus A (`ping.x`), pong on bus B (`pong.x`); bridges with
/// exact keys and `--express`, as Zenoh's ping/pong.
fn latency_bridged(rt: u64, size: usize, buses: &mut Buses, n: &mut u32) -> Res<serde_json::Value> {
    let exe = me()?;
    let (a, b) = new_buses(buses, n)?;
    let _bridges = bridge_pair(
        &a,
        &b,
        &["--export", "ping.x", "--import", "pong.x", "--express"],
        &["--import", "ping.x", "--export", "pong.x", "--express"],
        "ping.x",
    )?;
    let mut pong = kid(&exe, &["bpong", &b], "bpong")?;
    line(&mut pong, "ready", Duration::from_secs(30))?;
    let (c, z) = (rt.to_string(), size.to_string());
    let mut ping = kid(&exe, &["bping", &a, "--count", &c, "--size", &z], "bping")?;
    Ok(serde_json::from_str(&line(
        &mut ping,
        "p50_ns",
        Duration::from_secs(300),
    )?)?)
}

fn new_buses(buses: &mut Buses, n: &mut u32) -> Res<(String, String)> {
    let mut names = Vec::new();
    for side in ["a", "b"] {
        let name = format!("zbench-{}-{}-{side}", std::process::id(), *n);
        let _ = Bus::remove(&name);
        Bus::create(&name, BusConfig::default().with_ring_bytes(8 << 20))?;
        buses.0.push(name.clone());
        names.push(name);
    }
    *n += 1;
    Ok((names[0].clone(), names[1].clone()))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn all(count: u64, rt: u64, rounds: u32, sizes: &[usize], spin_us: u64, json: bool) -> Res<()> {
    let mut buses = Buses(Vec::new());
    let mut n = 0;
    let mut rows = Vec::new();
    // (label, the importer's pattern, Zenoh's subscriber key): the same
    // key expression on both paths.
    let subs = [("exact", "bench.tp", "bench/tp"), ("**", "**", "**")];
    for &size in sizes {
        let mut zt = vec![Vec::new(); subs.len()];
        let mut za = vec![Vec::new(); subs.len()];
        let mut bt = vec![Vec::new(); subs.len()];
        let (mut zl, mut bl) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (i, (_, pattern, key)) in subs.iter().enumerate() {
                zt[i].push(throughput_zenoh(count, size, key, false)?);
                za[i].push(throughput_zenoh(count, size, key, true)?);
                bt[i].push(throughput_bridged(
                    count, size, pattern, spin_us, &mut buses, &mut n,
                )?);
            }
            zl.push(latency_zenoh(rt, size)?);
            bl.push(latency_bridged(rt, size, &mut buses, &mut n)?);
            // Segments of finished runs go now, not at the end.
            for b in buses.0.drain(..) {
                let _ = Bus::remove(&b);
            }
        }
        let p50 = |v: &[serde_json::Value], k: &str| {
            let mut x: Vec<f64> = v.iter().filter_map(|j| j[k].as_f64()).collect();
            median(&mut x)
        };
        let throughput: Vec<serde_json::Value> = subs
            .iter()
            .enumerate()
            .map(|(i, (label, _, _))| {
                let (zm, bm) = (median(&mut zt[i].clone()), median(&mut bt[i].clone()));
                let am = median(&mut za[i].clone());
                serde_json::json!({
                    "subscription": label,
                    "zenoh_msgs_per_sec": zt[i],
                    "zenoh_attachment_msgs_per_sec": za[i],
                    "bridged_msgs_per_sec": bt[i],
                    "zenoh_median": zm,
                    "zenoh_attachment_median": am,
                    "bridged_median": bm,
                    "ratio": bm / zm,
                    "ratio_to_attachment": bm / am,
                })
            })
            .collect();
        let row = serde_json::json!({
            "size": size,
            "count": count,
            "round_trips": rt,
            "rounds": rounds,
            "spin_us": spin_us,
            "throughput": throughput,
            "zenoh_latency": zl,
            "bridged_latency": bl,
            "zenoh_p50_ns_median": p50(&zl, "p50_ns"),
            "bridged_p50_ns_median": p50(&bl, "p50_ns"),
            "zenoh_p99_ns_median": p50(&zl, "p99_ns"),
            "bridged_p99_ns_median": p50(&bl, "p99_ns"),
        });
        if !json {
            eprintln!("{row}");
        }
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    let k = |x: &serde_json::Value| {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| format!("{:.0}k", x / 1e3))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!(
        "| size | subscription | Zenoh msg/s (rounds) | Zenoh + attachment msg/s (rounds) | bridged msg/s (rounds) | bridged / Zenoh (medians) | bridged / Zenoh + attachment |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        for t in r["throughput"].as_array().into_iter().flatten() {
            println!(
                "| {} B | `{}` | {} | {} | {} | {:.2} | {:.2} |",
                r["size"],
                t["subscription"].as_str().unwrap_or(""),
                k(&t["zenoh_msgs_per_sec"]),
                k(&t["zenoh_attachment_msgs_per_sec"]),
                k(&t["bridged_msgs_per_sec"]),
                t["ratio"].as_f64().unwrap_or(0.0),
                t["ratio_to_attachment"].as_f64().unwrap_or(0.0),
            );
        }
    }
    println!();
    println!(
        "| size | Zenoh p50 / p99 (median of rounds) | bridged p50 / p99 (median of rounds) |"
    );
    println!("|---|---|---|");
    for r in &rows {
        let us = |key: &str| r[key].as_f64().unwrap_or(0.0) / 1e3;
        println!(
            "| {} B | {:.0} / {:.0} µs | {:.0} / {:.0} µs |",
            r["size"],
            us("zenoh_p50_ns_median"),
            us("zenoh_p99_ns_median"),
            us("bridged_p50_ns_median"),
            us("bridged_p99_ns_median"),
        );
    }
    Ok(())
}
