//! The results of a run (written as JSON) and the markdown page made from
//! them. Everything in `docs/compare/` comes from here and `plot.rs`:
//! re-running the command regenerates it; nothing is edited by hand.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::systems::System;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Settings {
    pub latency_round_trips: u64,
    pub latency_warmup: u64,
    pub latency_pinned: bool,
    pub throughput_bytes: u64,
    pub dispatch_messages: u64,
    pub dispatch_hot_topics: u32,
    pub dispatch_cold_topics: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Versions {
    pub shm_bus_commit: String,
    pub iceoryx2: String,
    pub rustc: String,
}

/// Latency of one system at one size: per-round one-way percentiles, the
/// percentiles of all rounds' samples pooled, and per round the percentile
/// curve for the plot: one-way ns at x = k × `nines_step` "nines"
/// (p = 1 - 10^-x), k = 0, 1, … up to 4 nines (p99.99).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct LatCase {
    pub size: usize,
    pub system: System,
    pub p50_ns: Vec<f64>,
    pub p99_ns: Vec<f64>,
    pub p999_ns: Vec<f64>,
    pub pooled_p50_ns: f64,
    pub pooled_p99_ns: f64,
    pub pooled_p999_ns: f64,
    pub pooled_max_ns: f64,
    pub samples: usize,
    pub nines_step: f64,
    /// One per round.
    pub round_curves: Vec<Vec<f64>>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct TputCase {
    pub size: usize,
    pub subscribers: u32,
    pub system: System,
    pub count: u64,
    /// One per round.
    pub msgs_per_sec: Vec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MemcpyCase {
    pub size: usize,
    pub count: u64,
    /// The ring-sized destination's bytes.
    pub ring_bytes: u64,
    /// Into one reused buffer, one per round.
    pub hot_msgs_per_sec: Vec<f64>,
    /// Into two buffers in turn (the least a transport needs to write one
    /// message while the previous one is being read), one per round; empty
    /// in runs made before it was measured.
    #[serde(default)]
    pub two_msgs_per_sec: Vec<f64>,
    /// Slot after slot through a ring-sized mapping, one per round.
    pub ring_msgs_per_sec: Vec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct DispRound {
    pub hot_1: f64,
    pub hot_10k: f64,
    pub cold_1: f64,
    pub cold_10k: f64,
    pub index_1_ns: f64,
    pub index_10k_ns: f64,
    pub scan_1_ns: f64,
    pub scan_10k_ns: f64,
    /// `EventEngine` dispatch thread, hot topics (0 in results from before
    /// it was measured).
    #[serde(default)]
    pub engine_1: f64,
    #[serde(default)]
    pub engine_10k: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Results {
    pub note: String,
    pub machine: Machine,
    pub date_utc: String,
    pub command: String,
    pub versions: Versions,
    pub rounds: u32,
    pub settings: Settings,
    pub latency: Vec<LatCase>,
    pub throughput: Vec<TputCase>,
    pub memcpy: Vec<MemcpyCase>,
    pub dispatch: Vec<DispRound>,
}

/// `results` as JSON: indented objects, arrays of numbers on one line
/// (the curves stay readable and the file small).
pub fn to_json(results: &Results) -> serde_json::Result<String> {
    fn scalar(v: &serde_json::Value) -> bool {
        !v.is_array() && !v.is_object()
    }
    fn write(v: &serde_json::Value, indent: usize, out: &mut String) {
        let pad = "  ".repeat(indent + 1);
        match v {
            serde_json::Value::Object(map) if !map.is_empty() => {
                out.push_str("{\n");
                for (i, (k, v)) in map.iter().enumerate() {
                    out.push_str(&pad);
                    out.push_str(&serde_json::Value::String(k.clone()).to_string());
                    out.push_str(": ");
                    write(v, indent + 1, out);
                    out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
                }
                out.push_str(&"  ".repeat(indent));
                out.push('}');
            }
            serde_json::Value::Array(items) if !items.iter().all(scalar) => {
                out.push_str("[\n");
                for (i, v) in items.iter().enumerate() {
                    out.push_str(&pad);
                    write(v, indent + 1, out);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                out.push_str(&"  ".repeat(indent));
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let value = serde_json::to_value(results)?;
    let mut out = String::new();
    write(&value, 0, &mut out);
    out.push('\n');
    Ok(out)
}

// ---------------------------------------------------------------- stats

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median, min and max of per-round figures.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(v: &[f64]) -> Spread {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return Spread {
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
        };
    }
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Spread {
        median,
        min: s[0],
        max: s[n - 1],
    }
}

/// Per-round ratios a[i] / b[i].
pub fn ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

/// The plot's x grid: 0 to 4 nines in 200 steps.
const NINES_STEP: f64 = 0.02;
const CURVE_POINTS: usize = 200;

/// Builds a latency case from per-round round-trip samples (ns).
pub fn lat_case(size: usize, system: System, rounds: &[Vec<u64>]) -> LatCase {
    let half = |v: u64| v as f64 / 2.0;
    // 0 to 4 nines (p99.99) in steps of NINES_STEP.
    let curve_of = |sorted: &[u64]| -> Vec<f64> {
        (0..=CURVE_POINTS)
            .map(|k| {
                let x = k as f64 * NINES_STEP;
                let p = 1.0 - 10f64.powf(-x);
                half(percentile(sorted, p.max(0.0)))
            })
            .collect()
    };
    let mut p50 = Vec::new();
    let mut p99 = Vec::new();
    let mut p999 = Vec::new();
    let mut round_curves = Vec::new();
    let mut pooled: Vec<u64> = Vec::new();
    for r in rounds {
        let mut s = r.clone();
        s.sort_unstable();
        p50.push(half(percentile(&s, 0.50)));
        p99.push(half(percentile(&s, 0.99)));
        p999.push(half(percentile(&s, 0.999)));
        round_curves.push(curve_of(&s));
        pooled.extend_from_slice(r);
    }
    pooled.sort_unstable();
    LatCase {
        size,
        system,
        p50_ns: p50,
        p99_ns: p99,
        p999_ns: p999,
        pooled_p50_ns: half(percentile(&pooled, 0.50)),
        pooled_p99_ns: half(percentile(&pooled, 0.99)),
        pooled_p999_ns: half(percentile(&pooled, 0.999)),
        pooled_max_ns: half(*pooled.last().unwrap_or(&0)),
        samples: pooled.len(),
        nines_step: NINES_STEP,
        round_curves,
    }
}

// ----------------------------------------------------------- formatting

pub fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// An integer with thousands separators.
fn int(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ns(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let v = x.round() as u64;
    if v >= 10_000 { int(v) } else { v.to_string() }
}

fn ns_spread(s: Spread) -> String {
    format!("{} ({}–{})", ns(s.median), ns(s.min), ns(s.max))
}

fn rate(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// The median with its unit, the min–max in the same unit.
fn rate_spread(s: Spread) -> String {
    if !s.median.is_finite() {
        return "–".into();
    }
    let (div, unit, dec) = if s.median >= 1e6 {
        (1e6, " M", 2)
    } else if s.median >= 1e3 {
        (1e3, " k", 1)
    } else {
        (1.0, "", 0)
    };
    format!(
        "{:.dec$}{unit} ({:.dec$}–{:.dec$})",
        s.median / div,
        s.min / div,
        s.max / div
    )
}

fn factor(x: f64) -> String {
    if x >= 100.0 { ns(x) } else { format!("{x:.2}") }
}

fn ratio(s: Spread) -> String {
    if !s.median.is_finite() {
        return "–".into();
    }
    format!(
        "{}× ({}–{})",
        factor(s.median),
        factor(s.min),
        factor(s.max)
    )
}

/// Bytes as "2 GiB", "1.5 GiB", "100 MiB", "4 KiB", "64 B".
pub fn bytes_name(b: u64) -> String {
    for (unit, name) in [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if b >= unit {
            let v = b as f64 / unit as f64;
            return if b % unit == 0 {
                format!("{v:.0} {name}")
            } else {
                format!("{v:.1} {name}")
            };
        }
    }
    format!("{b} B")
}

fn system_label(sys: System) -> &'static str {
    match sys {
        System::Floor => "floor",
        System::FloorTwoLines => "floor, 2 lines",
        System::ShmBus => "**shm-bus**",
        System::ShmBusPreloaned => "**shm-bus**, pre-loaned",
        System::ShmBusBatched => "**shm-bus**, bursts of 32",
        System::Iceoryx2 => "iceoryx2",
        System::Iceoryx2Preloaned => "iceoryx2, pre-loaned",
        System::Uds => "Unix socket",
    }
}

// ------------------------------------------------------------- markdown

const METHOD: &str = r#"## How each figure is measured

Every participant is a separate OS process (this binary re-executed), and
every system runs through the same loops (`compare/src/latency.rs`,
`throughput.rs`, `dispatch.rs`), behind three small traits (plus two for
the batched throughput row, which has a loop of its own). A round runs
every workload on every system, the systems interleaved (each round starts
one system further along: floor, shm-bus, [shm-bus pre-loaned, latency
only,] [shm-bus in bursts of 32, throughput only,] iceoryx2, [iceoryx2
pre-loaned, latency only,] Unix socket, floor, …).
The tables give the **median of the per-round figures and, in brackets,
their min–max over the rounds**. Ratios are computed **within a round** and
then summarised the same way, because these 2-vCPU VMs move the vCPUs
between core pairs every few minutes (a bare cache-line hop flips between
about 60 ns and about 200 ns), so figures from different rounds do not
compare.

**Latency.** One-way latency is half the round trip of a ping-pong between
two processes, pinned to CPUs 0 and 1, both busy-polling the system's
non-blocking receive with no pause instruction. The ping side takes a
timestamp (`Instant::now`), sends message *i*, polls until the answer
carrying *i* arrives, and takes a second timestamp; every round trip is one
sample. A warm-up precedes the timed round trips, long enough for
shm-bus's ring to go round once at 64 B, so that first-touch page faults of
a fresh segment are not timed for any system. Messages are loaned and
written in place where the system allows it, and only their first 8 bytes
(the sequence number) are written: zero copy, as iceoryx2's own benchmark
does. Loaning is part of the timed round trip for every system, between
receiving and sending, except in the two *pre-loaned* variants, which loan
the next message right after sending (still within the timed round trip,
but overlapping the peer's work instead of delaying the next send).
- *floor*: a bare cache-line ping-pong; each side stores the sequence
  number into its own 8-byte word in a shared mapping (words 128 bytes
  apart) and spins on the other's (`crates/shm-bus-floor`, the same
  ping-pong as `shm-bus bench latency`'s floor).
- *floor, 2 lines*: the same ping-pong, but each message first writes a
  whole 64-byte data line (eight word stores, stepping through 1 MiB per
  direction as a ring does), then its flag word; the receiver checks the
  data line after seeing the flag (`shm_bus_floor::lines`). A small
  shm-bus message moves two lines too: its record, and the next record's
  header, which the producer clears before the commit stamp (three when
  a 96-byte record starts mid-line). It is the floor for a transport
  whose messages carry any header beside a payload of 64 bytes.
- *shm-bus*: one bus; `loan(topic, size)`, 8 bytes written, `commit()`;
  `try_recv()` on a subscriber to the other side's topic.
- *shm-bus, pre-loaned*: the same bus, ports and topics, but each side
  keeps its next message loaned between sends, in an `OwnedLoan` (a loan
  that owns its `Publisher`; the first send loans it with `into_loan`):
  sending writes the 8 bytes into that loan and calls
  `commit_and_reloan(size)`, which commits and at once reserves the next
  message, so the reservation happens right after the commit, as the
  iceoryx2 pre-loaned variant loans right after `send`.
- *iceoryx2*: `ipc::Service`, two publish-subscribe services of `[u8]` as
  in iceoryx2's `benchmarks/publish-subscribe`: 1 publisher, 1 subscriber,
  `history_size(0)`, `subscriber_max_buffer_size(1)`,
  `enable_safe_overflow(true)`, publishers with
  `initial_max_slice_len(size)`; `loan_slice_uninit(size)`, 8 bytes
  written, `assume_init()`, `send()`; `receive()`.
- *iceoryx2, pre-loaned*: the same, but each side loans its next sample
  right after sending, as iceoryx2's benchmark does, so the loan overlaps
  the peer's work instead of delaying the next send.
- *Unix socket*: a connected `AF_UNIX` stream pair, nonblocking, spun on
  `EAGAIN`; one `write` of the whole message, `read`s until the whole
  message is in. A socket necessarily copies the payload, in and out.

**Throughput.** One producer process sends `count` messages to 1 or 2
subscriber processes (not pinned). The producer writes the whole payload
once per message (one copy from its own buffer into the system, the
sequence number in the first 8 bytes); subscribers read and check the
sequence number only, so the zero-copy systems never read the rest of the
payload, while the socket copies all of it out of the kernel. The rate is
`count` over the time from the producer's first send to the last
subscriber's last receive (CLOCK_MONOTONIC). Every system gets the same
buffering: the ring shm-bus picks for the payload size,
`BusConfig::ring_bytes_for(size)`: its default 1 MiB while that holds
eight records (payloads up to 64 KiB here), else two records rounded up to
a power of two (4 MiB for 1 MiB payloads), so that a ring of large
messages is rewritten while its lines are still cached instead of
streaming through memory. Every participant that cannot make progress waits the same way:
spin 50 µs, then `sched_yield` until 2 ms, then sleep 50 µs per poll.
With 2 subscribers, three busy processes share the two vCPUs, so those
rows measure time-sharing as much as the systems.
- *floor*: a minimal SPSC ring in a shared mapping, fixed 64-byte-aligned
  slots. A message's first 8 bytes (its sequence number + 1) are its
  commit flag: the producer writes the rest of the payload, then stores
  the flag (Release); a consumer polls the flag of its next slot, so no
  shared tail counter bounces between the cores (shm-bus's records carry
  a commit stamp the same way). Each consumer publishes its head on its
  own cache line every 1/64 of the ring and whenever it has caught up (as
  shm-bus publishes its cursors); the producer caches the slowest head.
  With 2 subscribers the same ring has 2 heads. The ring is
  `crates/shm-bus-floor`'s, the one `shm-bus bench throughput` uses (with
  one consumer) for its floor.
- *shm-bus*: Block policy (lossless); `try_loan` + copy + `commit`;
  `try_recv()`.
- *shm-bus, bursts of 32* (a separate row; the same bus, ring and
  checks, through a loop of its own in `throughput.rs`, the one-by-one
  loop unchanged): the producer writes the sequence numbers of the next 32
  messages into 32 payloads (windows of the payload size, 64 bytes apart,
  into one buffer of size + 31 × 64 bytes, so its source stays as hot as
  the one-by-one producer's single buffer), then sends them with
  `try_publish_many`, which resolves the topic once, publishes while the
  ring has room, wakes sleeping subscribers once and says how many it
  published; when that is none, the producer waits the common way and
  sends the rest of the burst.
  Every message is still copied in whole, once. Subscribers call
  `try_recv_many(32, ..)` (nothing ready: they wait the common way),
  check every sequence number it hands over, and count every message.
- *iceoryx2*: lossless: `enable_safe_overflow(false)` with
  `BackpressureStrategy::RetryUntilDelivered`, `history_size(0)`, a
  subscriber buffer of `ring / size` samples (the same payload bytes as the
  others' ring), `initial_max_slice_len(size)`; `loan_slice_uninit` +
  `write_from_slice` + `send` (which waits inside, iceoryx2's way, when a
  subscriber's buffer is full); `receive()`.
- *Unix socket*: one connection per subscriber, nonblocking, kernel-default
  buffers; the producer writes every message to each connection.
- *single memcpy* (1 MiB): one thread copying the 1 MiB payload over and
  over, with no other process involved, (a) into one reused 1 MiB buffer
  (destination hot in cache), (b) into two 1 MiB buffers in turn, the
  least any transport needs to let a producer write the next message
  while the subscriber still holds the last one (double buffering), and
  (c) slot after slot through a fresh shared mapping of the ring's size
  (4 MiB: four 1 MiB slots), as any ring must: what writing the payload
  once costs.

**Topic dispatch.** A shm-bus producer process publishes 64-byte messages
cycling over *T* topics, half of which match `md.{venue}.AAPL.(trade|quote)`;
one subscriber process has registered either that pattern alone or 10,000
patterns (it plus 9,999 that cannot match: exact, wildcard, range, regex and
`**` patterns, as `patterns()` in `crates/shm-bus-topic/benches/topic.rs`).
The rate counts every message published, matching or not, up to the
subscriber's last receive. *Hot*: 1,000 topics, so the subscriber decides
once per topic and then by a cached byte. *Cold*: every message is on a
topic never seen before, so every message costs the whole decision (read
the literal, parse it, walk the index). The *EventEngine* row runs, in the
subscriber process, an `EventEngine` over the bus with one handler per
pattern (1, or 10,000 generic handlers of which one matches) on its
dispatch thread, on the hot topics; the rate runs up to the matching
handler's last call. iceoryx2 and a socket have no
pattern routing: an application using them routes after receiving, so the
references are in-process lookups of `md.XNAS.AAPL.trade` among 1 or 10,000
patterns: shm-bus's `SubscriptionIndex` (a trie), and a linear scan calling
`shm_bus_topic::matches` on every pattern, which is how PyEventEngine
routes."#;

pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(
        w,
        "# shm-bus side by side: iceoryx2, a Unix socket and the floors\n"
    );
    let _ = writeln!(
        w,
        "<!-- Generated by shm-bus-compare: do not edit; re-run the command below. -->\n"
    );
    let _ = writeln!(
        w,
        "- **Machine**: {}, {} CPUs, Linux {}",
        r.machine.cpu, r.machine.cpus, r.machine.kernel
    );
    let _ = writeln!(w, "- **Date**: {}", r.date_utc);
    let _ = writeln!(w, "- **Command**: `{}`", r.command);
    let _ = writeln!(
        w,
        "- **Versions**: shm-bus at commit {}; iceoryx2 {} (crates.io); {}",
        r.versions.shm_bus_commit, r.versions.iceoryx2, r.versions.rustc
    );
    let _ = writeln!(
        w,
        "- **Rounds**: {}, systems interleaved within each round. Each figure: median of the \
         per-round figures (min–max over the rounds). Ratios are taken within each round: the \
         rounds may have run in different vCPU placements, which moves every absolute figure \
         (see the per-round figures at the end).",
        r.rounds
    );
    let s = &r.settings;
    let _ = writeln!(
        w,
        "- **Counts**: latency {} timed round trips per system, size and round (after {} of \
         warm-up){}; throughput {} per measurement (messages = bytes / size, 2,000 to \
         2,000,000); \
         dispatch {} messages (hot) / {} topics (cold).\n",
        int(s.latency_round_trips),
        int(s.latency_warmup),
        if s.latency_pinned {
            ", processes pinned to CPUs 0 and 1"
        } else {
            ", processes not pinned"
        },
        bytes_name(s.throughput_bytes),
        int(s.dispatch_messages),
        int(s.dispatch_cold_topics.into()),
    );
    latency_section(w, r);
    throughput_section(w, r);
    dispatch_section(w, r);
    targets_section(w, r, "##");
    let _ = writeln!(w, "{METHOD}\n");
    per_round_section(w, r);
    md
}

fn lat(r: &Results, size: usize, sys: System) -> Option<&LatCase> {
    r.latency.iter().find(|c| c.size == size && c.system == sys)
}

fn tput(r: &Results, size: usize, subs: u32, sys: System) -> Option<&TputCase> {
    r.throughput
        .iter()
        .find(|c| c.size == size && c.subscribers == subs && c.system == sys)
}

fn sizes<T>(items: &[T], f: impl Fn(&T) -> usize) -> Vec<usize> {
    let mut v: Vec<usize> = items.iter().map(f).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The markers of the block of `docs/BENCHMARKS.md` a run rewrites.
pub const SUMMARY_BEGIN: &str =
    "<!-- compare:begin (written by shm-bus-compare; edit outside these markers) -->";
pub const SUMMARY_END: &str = "<!-- compare:end -->";

fn median_of(v: &[f64]) -> f64 {
    spread(v).median
}

/// The headline figures for `docs/BENCHMARKS.md`: where and how they were
/// measured, p50 latency and throughput per system with the ratios, the
/// targets. The full tables are in `results.md`.
pub fn summary(r: &Results) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "Measured on {}, {} CPUs, Linux {}, on {}, with\n\n```sh\n{}\n```\n",
        r.machine.cpu, r.machine.cpus, r.machine.kernel, r.date_utc, r.command
    );
    let _ = writeln!(
        w,
        "{} rounds; each figure is the median over the rounds, each ratio the median of the \
         per-round ratios. The rounds may have run in different vCPU placements (a cache-line \
         hop of about 65 ns or about 240 ns), which moves every absolute figure by up to 3×: \
         compare the ratios, which are taken within a round. Spreads (min–max), p99 and p99.9, \
         and the per-round figures are in [compare/results.md](compare/results.md).\n",
        r.rounds
    );
    if !r.latency.is_empty() {
        let _ = writeln!(
            w,
            "| one-way latency, p50 | floor | floor, 2 lines | **shm-bus** | **shm-bus, pre-loaned** | \
             iceoryx2 | iceoryx2, pre-loaned | Unix socket | shm-bus / iceoryx2 | \
             shm-bus / iceoryx2 pre-loaned | shm-bus / floor | shm-bus pre-loaned / floor | \
             shm-bus / floor, 2 lines |"
        );
        let _ = writeln!(
            w,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for size in sizes(&r.latency, |c| c.size) {
            let cell = |sys| {
                lat(r, size, sys)
                    .map(|c| format!("{} ns", ns(median_of(&c.p50_ns))))
                    .unwrap_or_else(|| "–".into())
            };
            let rel_of = |bus, sys| match (lat(r, size, bus), lat(r, size, sys)) {
                (Some(b), Some(c)) => {
                    format!("{}×", factor(median_of(&ratios(&b.p50_ns, &c.p50_ns))))
                }
                _ => "–".into(),
            };
            let rel = |sys| rel_of(System::ShmBus, sys);
            let _ = writeln!(
                w,
                "| {} | {} | {} | **{}** | **{}** | {} | {} | {} | {} | {} | {} | {} | {} |",
                size_name(size),
                cell(System::Floor),
                cell(System::FloorTwoLines),
                cell(System::ShmBus),
                cell(System::ShmBusPreloaned),
                cell(System::Iceoryx2),
                cell(System::Iceoryx2Preloaned),
                cell(System::Uds),
                rel(System::Iceoryx2),
                rel(System::Iceoryx2Preloaned),
                rel(System::Floor),
                rel_of(System::ShmBusPreloaned, System::Floor),
                rel(System::FloorTwoLines),
            );
        }
        let _ = writeln!(w);
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            w,
            "| throughput, messages/s | K | floor | **shm-bus** | iceoryx2 | Unix socket | \
             shm-bus / iceoryx2 | shm-bus / Unix socket | shm-bus / floor |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for size in sizes(&r.throughput, |c| c.size) {
            // One-by-one, then (a separate row) in bursts: the other
            // columns repeat the one-by-one figures of the other systems.
            for (bus, label) in [
                (System::ShmBus, size_name(size)),
                (
                    System::ShmBusBatched,
                    format!("{}, shm-bus in bursts of 32", size_name(size)),
                ),
            ] {
                for k in [1, 2] {
                    if tput(r, size, k, bus).is_none() {
                        continue;
                    }
                    let cell = |sys| {
                        tput(r, size, k, sys)
                            .map(|c| rate(median_of(&c.msgs_per_sec)))
                            .unwrap_or_else(|| "–".into())
                    };
                    let rel = |sys| match (tput(r, size, k, bus), tput(r, size, k, sys)) {
                        (Some(b), Some(c)) => format!(
                            "{}×",
                            factor(median_of(&ratios(&b.msgs_per_sec, &c.msgs_per_sec)))
                        ),
                        _ => "–".into(),
                    };
                    let _ = writeln!(
                        w,
                        "| {label} | {k} | {} | **{}** | {} | {} | {} | {} | {} |",
                        cell(System::Floor),
                        cell(bus),
                        cell(System::Iceoryx2),
                        cell(System::Uds),
                        rel(System::Iceoryx2),
                        rel(System::Uds),
                        rel(System::Floor),
                    );
                }
            }
        }
        if r.throughput
            .iter()
            .any(|c| c.system == System::ShmBusBatched)
        {
            let _ = writeln!(
                w,
                "\nIn the rows *shm-bus in bursts of 32*, the shm-bus column is its producer \
                 publishing up to 32 messages per `try_publish_many` call and its subscribers draining \
                 with `try_recv_many(32, ..)`, every message still copied in once and checked; \
                 the other columns repeat the one-by-one figures of the same payload and K."
            );
        }
        for m in &r.memcpy {
            let two = if m.two_msgs_per_sec.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} per second into two buffers in turn (double buffering, the least a \
                     transport needs to write one message while the last is read)",
                    rate(median_of(&m.two_msgs_per_sec))
                )
            };
            let _ = writeln!(
                w,
                "\nA single memcpy of {} runs at {} per second into one reused buffer{two} and {} \
                 per second through {} (a ring's worth of memory).",
                size_name(m.size),
                rate(median_of(&m.hot_msgs_per_sec)),
                rate(median_of(&m.ring_msgs_per_sec)),
                bytes_name(m.ring_bytes),
            );
        }
        let _ = writeln!(w);
    }
    if !r.dispatch.is_empty() {
        let d = |f: fn(&DispRound) -> f64| median_of(&r.dispatch.iter().map(f).collect::<Vec<_>>());
        let _ = writeln!(
            w,
            "Topic dispatch, one subscriber process with 10,000 patterns against 1: {} against {} \
             messages/s on hot topics, {} against {} with every topic new. Routing by a linear \
             scan over the 10,000 patterns in-process (what an application of iceoryx2 or a socket \
             would do, and PyEventEngine does) costs {} ns per message.\n",
            rate(d(|x| x.hot_10k)),
            rate(d(|x| x.hot_1)),
            rate(d(|x| x.cold_10k)),
            rate(d(|x| x.cold_1)),
            ns(d(|x| x.scan_10k_ns)),
        );
    }
    targets_section(w, r, "####");
    out
}

/// Replaces the block between the markers of `text`; `None` if the
/// markers are missing.
pub fn splice_summary(text: &str, summary: &str) -> Option<String> {
    let begin = text.find(SUMMARY_BEGIN)? + SUMMARY_BEGIN.len();
    let end = begin + text[begin..].find(SUMMARY_END)?;
    Some(format!(
        "{}\n\n{}\n\n{}",
        &text[..begin],
        summary.trim_end(),
        &text[end..]
    ))
}

fn latency_section(w: &mut String, r: &Results) {
    if r.latency.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Latency: one-way, half a ping-pong round trip (ns)\n");
    let _ = writeln!(
        w,
        "| payload | system | p50 | p99 | p99.9 | shm-bus / system, p50 |"
    );
    let _ = writeln!(w, "|---:|---|---:|---:|---:|---:|");
    for size in sizes(&r.latency, |c| c.size) {
        let bus = lat(r, size, System::ShmBus);
        for sys in System::LATENCY {
            let Some(c) = lat(r, size, sys) else { continue };
            let rel = match (sys, bus) {
                (System::ShmBus, _) | (_, None) => "—".to_string(),
                (_, Some(b)) => ratio(spread(&ratios(&b.p50_ns, &c.p50_ns))),
            };
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} |",
                size_name(size),
                system_label(sys),
                ns_spread(spread(&c.p50_ns)),
                ns_spread(spread(&c.p99_ns)),
                ns_spread(spread(&c.p999_ns)),
                rel
            );
        }
    }
    let _ = writeln!(
        w,
        "\nThe distributions, one line per system and round:\n\n![latency](latency.svg)\n"
    );
}

fn throughput_section(w: &mut String, r: &Results) {
    if r.throughput.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "## Throughput: one producer process → K subscriber processes (messages/s)\n"
    );
    let _ = writeln!(
        w,
        "| payload | K | system | messages/s | GB/s | shm-bus / system |"
    );
    let _ = writeln!(w, "|---:|---:|---|---:|---:|---:|");
    for size in sizes(&r.throughput, |c| c.size) {
        let mut subs: Vec<u32> = r
            .throughput
            .iter()
            .filter(|c| c.size == size)
            .map(|c| c.subscribers)
            .collect();
        subs.sort_unstable();
        subs.dedup();
        for k in subs {
            let bus = tput(r, size, k, System::ShmBus);
            for sys in System::THROUGHPUT {
                let Some(c) = tput(r, size, k, sys) else {
                    continue;
                };
                let rel = match (sys, bus) {
                    (System::ShmBus, _) | (_, None) => "—".to_string(),
                    (_, Some(b)) => ratio(spread(&ratios(&b.msgs_per_sec, &c.msgs_per_sec))),
                };
                let sp = spread(&c.msgs_per_sec);
                let _ = writeln!(
                    w,
                    "| {} | {k} | {} | {} | {:.2} | {} |",
                    size_name(size),
                    system_label(sys),
                    rate_spread(sp),
                    sp.median * size as f64 / 1e9,
                    rel
                );
            }
        }
        for m in r.memcpy.iter().filter(|m| m.size == size) {
            for (what, v) in [
                (
                    "single memcpy, one reused buffer".to_string(),
                    &m.hot_msgs_per_sec,
                ),
                (
                    "single memcpy, two buffers in turn".to_string(),
                    &m.two_msgs_per_sec,
                ),
                (
                    format!("single memcpy, through {}", bytes_name(m.ring_bytes)),
                    &m.ring_msgs_per_sec,
                ),
            ] {
                if v.is_empty() {
                    continue;
                }
                let sp = spread(v);
                let mut rels = Vec::new();
                for k in [1, 2] {
                    if let Some(b) = tput(r, size, k, System::ShmBus) {
                        rels.push(format!(
                            "K={k}: {}",
                            ratio(spread(&ratios(&b.msgs_per_sec, v)))
                        ));
                    }
                }
                let _ = writeln!(
                    w,
                    "| {} | – | {what} | {} | {:.2} | {} |",
                    size_name(size),
                    rate_spread(sp),
                    sp.median * size as f64 / 1e9,
                    rels.join("; ")
                );
            }
        }
    }
    let _ = writeln!(w);
}

fn disp_spread(r: &Results, f: impl Fn(&DispRound) -> f64) -> Spread {
    spread(&r.dispatch.iter().map(f).collect::<Vec<_>>())
}

fn dispatch_section(w: &mut String, r: &Results) {
    if r.dispatch.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Topic dispatch with 10,000 registered patterns\n");
    let _ = writeln!(w, "| case | 1 pattern | 10,000 patterns | 10,000 / 1 |");
    let _ = writeln!(w, "|---|---:|---:|---:|");
    type Pick = fn(&DispRound) -> f64;
    let rows: [(&str, Pick, Pick, bool); 5] = [
        (
            "shm-bus, subscriber process, hot topics (messages/s)",
            |d| d.hot_1,
            |d| d.hot_10k,
            true,
        ),
        (
            "shm-bus `EventEngine` process, one handler per pattern, hot topics (messages/s)",
            |d| d.engine_1,
            |d| d.engine_10k,
            true,
        ),
        (
            "shm-bus, subscriber process, every topic new (messages/s)",
            |d| d.cold_1,
            |d| d.cold_10k,
            true,
        ),
        (
            "in-process `SubscriptionIndex` lookup (ns)",
            |d| d.index_1_ns,
            |d| d.index_10k_ns,
            false,
        ),
        (
            "in-process linear scan with `matches`, PyEventEngine's way (ns)",
            |d| d.scan_1_ns,
            |d| d.scan_10k_ns,
            false,
        ),
    ];
    for (name, one, many, is_rate) in rows {
        if r.dispatch.iter().any(|d| one(d) == 0.0) {
            continue; // not measured in this run
        }
        let fmt = |s: Spread| {
            if is_rate {
                rate_spread(s)
            } else {
                ns_spread(s)
            }
        };
        let rel: Vec<f64> = r.dispatch.iter().map(|d| many(d) / one(d)).collect();
        let _ = writeln!(
            w,
            "| {name} | {} | {} | {} |",
            fmt(disp_spread(r, one)),
            fmt(disp_spread(r, many)),
            ratio(spread(&rel))
        );
    }
    let hot = disp_spread(r, |d| d.hot_10k);
    let scan = disp_spread(r, |d| d.scan_10k_ns);
    let _ = writeln!(
        w,
        "\nWith 10,000 patterns, a receiver that routes by a linear scan can route at most \
         {} messages/s (1 / {} ns); the shm-bus subscriber process received {} messages/s \
         on hot topics and {} with every topic new.\n",
        rate(1e9 / scan.median),
        ns(scan.median),
        rate(hot.median),
        rate(disp_spread(r, |d| d.cold_10k).median),
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

fn targets_section(w: &mut String, r: &Results, heading: &str) {
    let mut lines = Vec::new();
    for size in sizes(&r.latency, |c| c.size) {
        let Some(f) = lat(r, size, System::Floor) else {
            continue;
        };
        if let Some(b) = lat(r, size, System::ShmBus) {
            for (sys, how) in [
                (System::Iceoryx2, "loaning in the round trip"),
                (System::Iceoryx2Preloaned, "pre-loaned"),
            ] {
                if let Some(i) = lat(r, size, sys) {
                    let vs = spread(&ratios(&b.p50_ns, &i.p50_ns));
                    lines.push(format!(
                        "- p50 latency below iceoryx2's ({how}), {}: {} (shm-bus / iceoryx2 = {})",
                        size_name(size),
                        verdict(vs.median < 1.0),
                        ratio(vs)
                    ));
                }
            }
            let vs_floor = spread(&ratios(&b.p50_ns, &f.p50_ns));
            lines.push(format!(
                "- p50 latency within 1.2× the floor, {}: {} (shm-bus / floor = {})",
                size_name(size),
                verdict(vs_floor.median <= 1.2),
                ratio(vs_floor)
            ));
            let vs_floor99 = spread(&ratios(&b.p99_ns, &f.p99_ns));
            lines.push(format!(
                "- p99 latency within 1.5× the floor's p99, {}: {} (shm-bus / floor = {})",
                size_name(size),
                verdict(vs_floor99.median <= 1.5),
                ratio(vs_floor99)
            ));
            // The same targets against the floor that moves as many cache
            // lines as the bus message does (two): what is left of the
            // distance once the second line is paid for.
            if let Some(f2) = lat(r, size, System::FloorTwoLines) {
                let vs50 = spread(&ratios(&b.p50_ns, &f2.p50_ns));
                let vs99 = spread(&ratios(&b.p99_ns, &f2.p99_ns));
                lines.push(format!(
                    "- not a target: the floor moving two cache lines against the floor, {}: \
                     p50 {}, p99 {}",
                    size_name(size),
                    ratio(spread(&ratios(&f2.p50_ns, &f.p50_ns))),
                    ratio(spread(&ratios(&f2.p99_ns, &f.p99_ns)))
                ));
                lines.push(format!(
                    "- p50 latency within 1.2× the two-line floor, {}: {} (shm-bus / floor, 2 \
                     lines = {})",
                    size_name(size),
                    verdict(vs50.median <= 1.2),
                    ratio(vs50)
                ));
                lines.push(format!(
                    "- p99 latency within 1.5× the two-line floor's p99, {}: {} (shm-bus / \
                     floor, 2 lines = {})",
                    size_name(size),
                    verdict(vs99.median <= 1.5),
                    ratio(vs99)
                ));
            }
        }
        // The pre-loaned shm-bus: against the floor, and like for like
        // against the pre-loaned iceoryx2.
        if let Some(p) = lat(r, size, System::ShmBusPreloaned) {
            if let Some(i) = lat(r, size, System::Iceoryx2Preloaned) {
                let vs = spread(&ratios(&p.p50_ns, &i.p50_ns));
                lines.push(format!(
                    "- p50 latency below iceoryx2's, both pre-loaned, {}: {} \
                     (shm-bus pre-loaned / iceoryx2 pre-loaned = {})",
                    size_name(size),
                    verdict(vs.median < 1.0),
                    ratio(vs)
                ));
            }
            let vs_floor = spread(&ratios(&p.p50_ns, &f.p50_ns));
            lines.push(format!(
                "- p50 latency within 1.2× the floor, shm-bus pre-loaned, {}: {} \
                 (shm-bus pre-loaned / floor = {})",
                size_name(size),
                verdict(vs_floor.median <= 1.2),
                ratio(vs_floor)
            ));
        }
    }
    // The hot-path issue's targets: 0.7× the floor with one subscriber,
    // 0.5× with two (three busy processes share two vCPUs then).
    for (k, target) in [(1, 0.7), (2, 0.5)] {
        if let (Some(b), Some(f)) = (
            tput(r, 64, k, System::ShmBus),
            tput(r, 64, k, System::Floor),
        ) {
            let s = spread(&ratios(&b.msgs_per_sec, &f.msgs_per_sec));
            lines.push(format!(
                "- 64 B throughput ≥ {target}× the floor ring, K={k}: {} ({})",
                verdict(s.median >= target),
                ratio(s)
            ));
        }
    }
    for m in &r.memcpy {
        for k in [1, 2] {
            if let Some(b) = tput(r, m.size, k, System::ShmBus) {
                for (what, v) in [
                    ("into one reused buffer".to_string(), &m.hot_msgs_per_sec),
                    (
                        "into two buffers in turn, double buffering".to_string(),
                        &m.two_msgs_per_sec,
                    ),
                    (
                        format!("through {}, as a ring", bytes_name(m.ring_bytes)),
                        &m.ring_msgs_per_sec,
                    ),
                ] {
                    if v.is_empty() {
                        continue;
                    }
                    let s = spread(&ratios(&b.msgs_per_sec, v));
                    lines.push(format!(
                        "- {} payloads at ≥ 0.8× a single memcpy ({what}), K={k}: {} ({})",
                        size_name(m.size),
                        verdict(s.median >= 0.8),
                        ratio(s)
                    ));
                }
            }
        }
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        w,
        "{heading} Targets (on the median of the per-round ratios)\n\n{}\n",
        lines.join("\n")
    );
}

fn per_round_section(w: &mut String, r: &Results) {
    let _ = writeln!(w, "## Per-round figures\n");
    let list = |v: &[f64], f: &dyn Fn(f64) -> String| {
        v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" · ")
    };
    if !r.latency.is_empty() {
        let _ = writeln!(w, "| latency p50 (ns) | payload | rounds 1…{} |", r.rounds);
        let _ = writeln!(w, "|---|---:|---|");
        for c in &r.latency {
            let _ = writeln!(
                w,
                "| {} | {} | {} |",
                c.system.name(),
                size_name(c.size),
                list(&c.p50_ns, &ns)
            );
        }
        let _ = writeln!(w);
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            w,
            "| throughput (messages/s) | payload | K | rounds 1…{} |",
            r.rounds
        );
        let _ = writeln!(w, "|---|---:|---:|---|");
        for c in &r.throughput {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} |",
                c.system.name(),
                size_name(c.size),
                c.subscribers,
                list(&c.msgs_per_sec, &rate)
            );
        }
        for m in &r.memcpy {
            let _ = writeln!(
                w,
                "| memcpy, one buffer | {} | – | {} |",
                size_name(m.size),
                list(&m.hot_msgs_per_sec, &rate)
            );
            if !m.two_msgs_per_sec.is_empty() {
                let _ = writeln!(
                    w,
                    "| memcpy, two buffers | {} | – | {} |",
                    size_name(m.size),
                    list(&m.two_msgs_per_sec, &rate)
                );
            }
            let _ = writeln!(
                w,
                "| memcpy, {} | {} | – | {} |",
                bytes_name(m.ring_bytes),
                size_name(m.size),
                list(&m.ring_msgs_per_sec, &rate)
            );
        }
        let _ = writeln!(w);
    }
    if !r.dispatch.is_empty() {
        let _ = writeln!(w, "| dispatch | rounds 1…{} |", r.rounds);
        let _ = writeln!(w, "|---|---|");
        type Pick = fn(&DispRound) -> f64;
        let rows: [(&str, Pick, bool); 8] = [
            ("hot topics, 1 pattern (messages/s)", |d| d.hot_1, true),
            ("EventEngine, 1 handler (messages/s)", |d| d.engine_1, true),
            (
                "EventEngine, 10,000 handlers (messages/s)",
                |d| d.engine_10k,
                true,
            ),
            (
                "hot topics, 10,000 patterns (messages/s)",
                |d| d.hot_10k,
                true,
            ),
            ("new topics, 1 pattern (messages/s)", |d| d.cold_1, true),
            (
                "new topics, 10,000 patterns (messages/s)",
                |d| d.cold_10k,
                true,
            ),
            (
                "index lookup, 10,000 patterns (ns)",
                |d| d.index_10k_ns,
                false,
            ),
            (
                "linear scan, 10,000 patterns (ns)",
                |d| d.scan_10k_ns,
                false,
            ),
        ];
        for (name, pick, is_rate) in rows {
            let v: Vec<f64> = r.dispatch.iter().map(pick).collect();
            let f: &dyn Fn(f64) -> String = if is_rate { &rate } else { &ns };
            let _ = writeln!(w, "| {name} | {} |", list(&v, f));
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(
        w,
        "The raw figures (every round, and each round's latency percentile curve) are in \
         [results.json](results.json)."
    );
}
