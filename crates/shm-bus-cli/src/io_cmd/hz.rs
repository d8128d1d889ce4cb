//! `shm-bus hz`: per-topic rate and inter-arrival statistics over a
//! window, as `rostopic hz` and `iox2 service hz` show them.
//!
//! A subscriber to PATTERN... (default `**`). Every `--window` seconds it
//! prints, for each topic that had events in the window, the count, the
//! rate, and the mean, min, max and standard deviation of the time between
//! consecutive events of that topic. Times are the events' own timestamps
//! (taken by the producer at publish), so they do not depend on when this
//! process got to read them. The first event of a window is measured from
//! the last one of an earlier window.

use std::collections::HashMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use shm_bus_core::{RecvError, Start};

use super::{WAIT_SLICE, bus_removed, check_patterns, subscribe, warn_near_misses};
use crate::bus_cmd::check_name;
use crate::common::{self, BadInput};
use crate::format::{Left, Right, Table};
use crate::os::{catch_interrupts, interrupted, stdout_closed};

/// Options of `hz`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct HzArgs {
    /// The bus name (it must exist, unless --create).
    pub bus: String,
    /// Patterns (default `**`: every topic).
    pub patterns: Vec<String>,
    /// Length of one window (seconds, or 500ms, 10s, 1m).
    #[arg(long, default_value = "1", value_parser = common::parse_duration)]
    pub window: Duration,
    /// Stop after this many windows (default: until Ctrl-C).
    #[arg(long)]
    pub windows: Option<u64>,
    /// One JSON object per window (JSON Lines).
    #[arg(long)]
    pub json: bool,
    /// Create the bus with default settings if it does not exist.
    #[arg(long)]
    pub create: bool,
    /// Subscriber name shown by `inspect` and `top`.
    #[arg(long, default_value = "shm-bus hz")]
    pub name: String,
}

/// Inter-arrival statistics of one topic in one window (Welford's
/// running mean and variance, in nanoseconds).
#[derive(Default, Clone, Debug, PartialEq)]
pub(crate) struct Stats {
    /// Events in the window.
    pub count: u64,
    /// Intervals measured (events with a previous one).
    pub intervals: u64,
    mean: f64,
    m2: f64,
    min: u64,
    max: u64,
}

impl Stats {
    /// Adds one event; `gap_ns` is the time since the topic's previous
    /// event, if there was one.
    pub(crate) fn add(&mut self, gap_ns: Option<u64>) {
        self.count += 1;
        let Some(gap) = gap_ns else { return };
        self.intervals += 1;
        if self.intervals == 1 {
            (self.min, self.max) = (gap, gap);
        } else {
            self.min = self.min.min(gap);
            self.max = self.max.max(gap);
        }
        let x = gap as f64;
        let delta = x - self.mean;
        self.mean += delta / self.intervals as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// (mean, min, max, population standard deviation) in ns, or `None`
    /// with no interval.
    pub(crate) fn summary(&self) -> Option<(f64, u64, u64, f64)> {
        (self.intervals > 0).then(|| {
            (
                self.mean,
                self.min,
                self.max,
                (self.m2 / self.intervals as f64).sqrt(),
            )
        })
    }
}

pub(crate) fn hz(a: &HzArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    let patterns = if a.patterns.is_empty() {
        vec!["**".to_owned()]
    } else {
        a.patterns.clone()
    };
    check_patterns(&patterns)?;
    if a.windows == Some(0) {
        return Err(BadInput("--windows must be at least 1".into()).into());
    }
    warn_near_misses("hz", "pattern", patterns.iter().map(String::as_str));
    let bus = common::attach(&a.bus, a.create)?;
    let mut sub = subscribe(&bus, &a.name, &patterns, Start::Now)?;
    catch_interrupts();

    let mut last: HashMap<String, u64> = HashMap::new();
    let mut window: HashMap<String, Stats> = HashMap::new();
    let mut out = io::stdout().lock();
    let start = Instant::now();
    let mut window_start = start;
    let mut done = 0u64;
    let mut lagged = 0u64;
    loop {
        if interrupted() {
            break;
        }
        let window_end = window_start + a.window;
        let now = Instant::now();
        if now >= window_end {
            let report = report(&window, now - window_start, start.elapsed(), lagged);
            let text = if a.json {
                format!("{report}\n")
            } else {
                human(&report)
            };
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                Err(e) => return Err(anyhow::Error::new(e).context("cannot write to stdout")),
            }
            window.clear();
            lagged = 0;
            window_start = now;
            done += 1;
            if a.windows.is_some_and(|n| done >= n) || stdout_closed() {
                break;
            }
            continue;
        }
        match sub.recv_timeout((window_end - now).min(WAIT_SLICE)) {
            Ok(sample) => {
                let ts = sample.timestamp_ns();
                let topic = sample.topic();
                let gap = match last.get_mut(topic) {
                    Some(prev) => {
                        let gap = ts.saturating_sub(*prev);
                        *prev = ts;
                        Some(gap)
                    }
                    None => {
                        last.insert(topic.to_owned(), ts);
                        None
                    }
                };
                match window.get_mut(topic) {
                    Some(s) => s.add(gap),
                    None => {
                        let mut s = Stats::default();
                        s.add(gap);
                        window.insert(topic.to_owned(), s);
                    }
                }
            }
            Err(RecvError::Timeout | RecvError::Empty) => {}
            Err(RecvError::Lagged(n)) => lagged += n,
            Err(RecvError::BusRemoved) => return Err(bus_removed(&a.bus, "hz")),
            Err(e) => eprintln!("shm-bus: hz: {e} (that producer's ring is skipped from now on)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One window as JSON: topics sorted by name.
fn report(
    window: &HashMap<String, Stats>,
    length: Duration,
    elapsed: Duration,
    lagged: u64,
) -> Value {
    let secs = length.as_secs_f64().max(1e-9);
    let mut topics: Vec<(&String, &Stats)> = window.iter().collect();
    topics.sort_by(|a, b| a.0.cmp(b.0));
    let ms = |ns: f64| (ns / 1e3).round() / 1e3;
    let topics: Vec<Value> = topics
        .into_iter()
        .map(|(topic, s)| {
            let mut v = json!({
                "topic": topic,
                "count": s.count,
                "rate": (s.count as f64 / secs * 1000.0).round() / 1000.0,
                "intervals": s.intervals,
            });
            if let Some((mean, min, max, sd)) = s.summary() {
                v["mean_ms"] = json!(ms(mean));
                v["min_ms"] = json!(ms(min as f64));
                v["max_ms"] = json!(ms(max as f64));
                v["stddev_ms"] = json!(ms(sd));
            } else {
                for k in ["mean_ms", "min_ms", "max_ms", "stddev_ms"] {
                    v[k] = Value::Null;
                }
            }
            v
        })
        .collect();
    json!({
        "window_secs": (secs * 1e6).round() / 1e6,
        "elapsed_secs": (elapsed.as_secs_f64() * 1e3).round() / 1e3,
        "lagged": lagged,
        "topics": topics,
    })
}

/// One window for people: a header line and a table.
fn human(r: &Value) -> String {
    let topics = r["topics"].as_array().map_or(&[][..], Vec::as_slice);
    let mut s = format!(
        "window {:.2} s at {:.1} s: ",
        r["window_secs"].as_f64().unwrap_or(0.0),
        r["elapsed_secs"].as_f64().unwrap_or(0.0)
    );
    if topics.is_empty() {
        s += "no new events\n";
        return s;
    }
    s += &format!("{} topic(s)", topics.len());
    if r["lagged"].as_u64().unwrap_or(0) > 0 {
        s += &format!(", {} event(s) lost to lag", r["lagged"]);
    }
    s.push('\n');
    let mut t = Table::new(&[
        ("TOPIC", Left),
        ("RATE/S", Right),
        ("COUNT", Right),
        ("MEAN", Right),
        ("MIN", Right),
        ("MAX", Right),
        ("STDDEV", Right),
    ]);
    let ms = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.3} ms"),
        None => "-".to_owned(),
    };
    for v in topics {
        t.row(vec![
            v["topic"].as_str().unwrap_or("").to_owned(),
            format!("{:.1}", v["rate"].as_f64().unwrap_or(0.0)),
            v["count"].to_string(),
            ms(&v["mean_ms"]),
            ms(&v["min_ms"]),
            ms(&v["max_ms"]),
            ms(&v["stddev_ms"]),
        ]);
    }
    s += &t.render("  ");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_a_direct_computation() {
        let gaps = [10u64, 12, 8, 30, 10];
        let mut s = Stats::default();
        s.add(None);
        for g in gaps {
            s.add(Some(g));
        }
        let (mean, min, max, sd) = s.summary().unwrap();
        let n = gaps.len() as f64;
        let m = gaps.iter().sum::<u64>() as f64 / n;
        let var = gaps.iter().map(|&g| (g as f64 - m).powi(2)).sum::<f64>() / n;
        assert_eq!((s.count, s.intervals, min, max), (6, 5, 8, 30));
        assert!((mean - m).abs() < 1e-9 && (sd - var.sqrt()).abs() < 1e-9);
        assert_eq!(Stats::default().summary(), None);
    }

    #[test]
    fn reports_rate_and_stats_per_topic() {
        let mut w = HashMap::new();
        let mut s = Stats::default();
        for _ in 0..10 {
            s.add(Some(2_000_000));
        }
        w.insert("a.b".to_owned(), s);
        let mut one = Stats::default();
        one.add(None);
        w.insert("a.a".to_owned(), one);
        let r = report(&w, Duration::from_millis(500), Duration::from_secs(3), 0);
        assert_eq!(r["topics"][0]["topic"], "a.a");
        assert_eq!(r["topics"][0]["mean_ms"], Value::Null);
        assert_eq!(r["topics"][1]["rate"], 20.0);
        assert_eq!(r["topics"][1]["mean_ms"], 2.0);
        assert_eq!(r["topics"][1]["stddev_ms"], 0.0);
        let text = human(&r);
        assert!(text.contains("2 topic(s)"), "{text}");
        assert!(text.contains("2.000 ms"), "{text}");
    }
}
