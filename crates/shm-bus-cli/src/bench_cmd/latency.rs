//! `shm-bus bench latency`: ping-pong over the bus against two floors
//! (`shm-bus-floor`'s, as in compare/): a cache-line ping-pong, and the
//! same ping-pong moving two cache lines per message (as a small bus
//! message does: its record and the next header), alternating in rounds;
//! and the echo child.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;
use shm_bus_core::{Bus, BusConfig, RecvError};
use shm_bus_floor::{PingPongEnd, segment};

use super::{check_size, print_result, ring_for};
use crate::BadInput;
use crate::peer::{Peer, unique};

pub(super) fn latency(
    size: usize,
    count: u64,
    rounds: u32,
    raw: Option<&std::path::Path>,
    json: bool,
) -> Result<ExitCode> {
    check_size(size)?;
    let config = BusConfig::default().with_ring_bytes(ring_for(size));
    if size > config.max_payload() {
        return Err(BadInput(format!("--size {size} is larger than the ring allows")).into());
    }
    let per_round = count.div_ceil(rounds as u64).max(1);
    let warmup = (per_round / 10).max(100);
    let bus_name = unique("lat");
    let floor_name = unique("latfloor");
    let floor2_name = unique("latfloor2");
    let bus = Bus::create(&bus_name.0, config)?;
    let mut floor = segment::create_ping_pong(&floor_name.0)?;
    let mut floor2 = segment::create_lines_ping_pong(&floor2_name.0, 2)?;
    let total = rounds as u64 * (warmup + per_round);
    let mut echo = Peer::spawn(
        "bench-echo",
        &[
            bus_name.0.clone(),
            floor_name.0.clone(),
            floor2_name.0.clone(),
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
    let mut floor2_rtt = Vec::with_capacity(bus_rtt.capacity());
    let mut per_round_p50 = Vec::new();
    let (mut floor_seq, mut floor2_seq) = (0u64, 0u64);
    // `--raw`: every measured bus round trip, in order (the file is
    // created first, so that a bad path fails before the measurement).
    let mut raw_out = raw
        .map(|path| {
            std::fs::File::create(path)
                .with_context(|| format!("cannot write {}", path.display()))
                .map(|file| (path, file, String::from("round,message,rtt_ns\n")))
        })
        .transpose()?;
    for r in 0..rounds {
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
                    Err(RecvError::Empty) => still_waiting(&mut spins, &mut echo)?,
                    Err(e) => return Err(e.into()),
                }
            }
            let rtt = t0.elapsed().as_nanos() as u64;
            if i >= warmup {
                round.push(rtt);
                if let Some((_, _, csv)) = &mut raw_out {
                    let message = r as u64 * (warmup + per_round) + i;
                    csv.push_str(&format!("{r},{message},{rtt}\n"));
                }
            }
        }
        round.sort_unstable();
        let bus_p50 = percentile(&round, 0.5);
        bus_rtt.extend_from_slice(&round);
        // Floor rounds: the bare ping-pongs, polled the same way.
        let mut fround = floor_round(warmup, per_round, &mut floor_seq, &mut echo, &mut floor)?;
        let mut f2round = floor_round(warmup, per_round, &mut floor2_seq, &mut echo, &mut floor2)?;
        fround.sort_unstable();
        f2round.sort_unstable();
        per_round_p50.push((
            bus_p50 / 2,
            percentile(&fround, 0.5) / 2,
            percentile(&f2round, 0.5) / 2,
        ));
        floor_rtt.extend_from_slice(&fround);
        floor2_rtt.extend_from_slice(&f2round);
    }
    // The echo stops once it has answered `total` pings of each kind.
    echo.wait(Duration::from_secs(30))?;
    if let Some((path, mut file, csv)) = raw_out {
        file.write_all(csv.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    bus_rtt.sort_unstable();
    floor_rtt.sort_unstable();
    floor2_rtt.sort_unstable();
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
        "floor_2_lines_p50_ns": half(percentile(&floor2_rtt, 0.5)),
        "floor_2_lines_p99_ns": half(percentile(&floor2_rtt, 0.99)),
        "rounds": per_round_p50
            .iter()
            .map(|(b, f, f2)| json!({"p50_ns": b, "floor_p50_ns": f, "floor_2_lines_p50_ns": f2}))
            .collect::<Vec<_>>(),
    });
    print_result(&out, json, |o| {
        format!(
            "latency, {size} B, one-way (half round trip), {} samples in {} rounds\n  \
             shm-bus  p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns\n  \
             floor    p50 {} ns  p99 {} ns   (bare cache-line ping-pong, same processes)\n  \
             floor 2  p50 {} ns  p99 {} ns   (the same, each message writing a second line)\n  \
             ratio    p50 {:.2}x the floor, {:.2}x the two-line floor\n",
            o["count"],
            rounds,
            o["p50_ns"],
            o["p99_ns"],
            o["p999_ns"],
            o["max_ns"],
            o["floor_p50_ns"],
            o["floor_p99_ns"],
            o["floor_2_lines_p50_ns"],
            o["floor_2_lines_p99_ns"],
            o["p50_ns"].as_f64().unwrap_or(0.0)
                / o["floor_p50_ns"].as_f64().unwrap_or(1.0).max(1.0),
            o["p50_ns"].as_f64().unwrap_or(0.0)
                / o["floor_2_lines_p50_ns"].as_f64().unwrap_or(1.0).max(1.0),
        )
    })
}

/// Counts an empty poll of the pinger; every 2^24 of them, gives up if
/// interrupted or if the echo process died.
fn still_waiting(spins: &mut u64, echo: &mut Peer) -> Result<()> {
    *spins += 1;
    if *spins % (1 << 24) == 0 {
        if crate::os::interrupted() {
            bail!("interrupted");
        }
        if echo.child.try_wait()?.is_some() {
            bail!("echo process died");
        }
    }
    Ok(())
}

/// One floor round: `warmup + count` round trips through `end`
/// (sequence numbers from `*seq` on), the last `count` timed.
fn floor_round(
    warmup: u64,
    count: u64,
    seq: &mut u64,
    echo: &mut Peer,
    end: &mut impl PingPongEnd,
) -> Result<Vec<u64>> {
    let mut round = Vec::with_capacity(count as usize);
    for i in 0..warmup + count {
        let t0 = Instant::now();
        end.send(*seq);
        let mut spins = 0u64;
        loop {
            match end.poll()? {
                Some(s) if s == *seq => break,
                Some(s) => bail!("floor echo answered {s} to {}", *seq),
                None => still_waiting(&mut spins, echo)?,
            }
        }
        let rtt = t0.elapsed().as_nanos() as u64;
        *seq += 1;
        if i >= warmup {
            round.push(rtt);
        }
    }
    Ok(round)
}

/// Answers the pings arriving at `end` as tightly as the pinger asks, up
/// to `total` in all; returns (whether it answered any) at once when none
/// is waiting, or after 2^20 empty polls, so that the caller watches the
/// others too.
fn answer_floor(answered: &mut u64, total: u64, end: &mut impl PingPongEnd) -> Result<bool> {
    let mut polls = 0u32;
    let mut any = false;
    while *answered < total && polls < 1 << 20 {
        if let Some(seq) = end.poll()? {
            end.send(seq);
            *answered += 1;
            polls = 0;
            any = true;
        } else if any {
            polls += 1;
        } else {
            return Ok(false);
        }
    }
    Ok(any)
}

/// The ping-pong partner: answers bus pings with pongs and each floor's
/// pings with its pongs, `total` of each, then exits.
pub(super) fn echo(args: &[String]) -> Result<ExitCode> {
    let [bus_name, floor_name, floor2_name, size, total] = args else {
        bail!(BadInput("bench-echo BUS FLOOR FLOOR2 SIZE TOTAL".into()));
    };
    let size: usize = size.parse()?;
    let total: u64 = total.parse()?;
    let bus = Bus::open(bus_name)?;
    let mut floor = segment::open_ping_pong(floor_name)?;
    let mut floor2 = segment::open_lines_ping_pong(floor2_name, 2)?;
    let mut subscriber = bus.subscriber("bench echo")?;
    subscriber.subscribe("bench.ping")?;
    let mut publisher = bus.publisher("bench echo")?;
    let pong = publisher.topic_id("bench.pong")?;
    println!("READY");
    std::io::stdout().flush()?;
    let mut answered = 0u64;
    let (mut floor_answered, mut floor2_answered) = (0u64, 0u64);
    let mut idle = Instant::now();
    let mut spins = 0u32;
    while answered < total || floor_answered < total || floor2_answered < total {
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
        // A floor round: answered as tightly as the pinger asks, back to
        // watching the bus too after 2^20 empty polls.
        let f1 = answer_floor(&mut floor_answered, total, &mut floor)?;
        let f2 = answer_floor(&mut floor2_answered, total, &mut floor2)?;
        if f1 || f2 {
            idle = Instant::now();
        }
        spins = spins.wrapping_add(1);
        if spins % (1 << 20) == 0 && idle.elapsed() > Duration::from_secs(20) {
            bail!(
                "no ping for 20 s (answered {answered} bus, {floor_answered} floor and \
                 {floor2_answered} two-line floor pings of {total}); giving up"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value at fraction `p` (0..=1) of `sorted`, nearest rank; 0 when
/// empty.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
