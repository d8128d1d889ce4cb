//! `demo` and `bench` through the real binary: JSON fields, exit codes,
//! and that they clean up their buses. Small counts: these are behaviour
//! tests, not measurements.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Runs `shm-bus ARGS` under a watchdog; returns (exit code, stdout JSON).
fn run(args: &[&str]) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shm-bus"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run shm-bus");
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("watchdog: shm-bus {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    let json = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    (status.code().unwrap_or(-1), json)
}

#[test]
fn demo_delivers_every_matching_event_and_removes_its_bus() {
    let (code, v) = run(&["demo", "--workers", "5", "--events", "20000", "--json"]);
    assert_eq!(code, 0, "{v}");
    for field in [
        "workers",
        "events",
        "delivered",
        "lost",
        "duplicates",
        "seconds",
        "rate",
    ] {
        assert!(v.get(field).is_some(), "missing {field}: {v}");
    }
    assert_eq!(v["workers"], 5);
    assert_eq!(v["events"], 20000);
    assert_eq!(v["lost"], 0);
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["corrupt"], 0);
    let per: &Vec<Value> = v["per_worker"].as_array().unwrap();
    assert_eq!(per.len(), 5);
    let kinds: Vec<&str> = per.iter().map(|w| w["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["exact", "wildcard", "range", "regex", "rest"]);
    let delivered: u64 = per.iter().map(|w| w["received"].as_u64().unwrap()).sum();
    assert_eq!(v["delivered"].as_u64().unwrap(), delivered);
    assert_eq!(per[4]["received"], 20000, "`md.**` sees every event");
    // The demo removed its bus.
    let bus = v["bus"].as_str().unwrap();
    assert!(bus.starts_with("demo-"));
    assert!(!std::path::Path::new(&format!("/dev/shm/shm-bus.{bus}")).exists());
}

#[test]
fn demo_rejects_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-bus"))
        .args(["demo", "--workers", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}

#[test]
fn bench_latency_reports_percentiles_and_a_floor() {
    let (code, v) = run(&[
        "bench", "latency", "--count", "2000", "--rounds", "2", "--json",
    ]);
    assert_eq!(code, 0);
    for field in [
        "size",
        "count",
        "p50_ns",
        "p99_ns",
        "p999_ns",
        "max_ns",
        "floor_p50_ns",
        "floor_p99_ns",
        "floor_2_lines_p50_ns",
        "floor_2_lines_p99_ns",
    ] {
        assert!(v[field].is_u64(), "missing {field}: {v}");
    }
    assert_eq!(v["size"], 64);
    assert_eq!(v["count"], 2000);
    let p = |f: &str| v[f].as_u64().unwrap();
    assert!(p("p50_ns") > 0 && p("p50_ns") <= p("p99_ns") && p("p99_ns") <= p("p999_ns"));
    assert!(p("p999_ns") <= p("max_ns"));
    assert!(p("floor_p50_ns") > 0 && p("floor_p50_ns") <= p("floor_p99_ns"));
    assert!(p("floor_2_lines_p50_ns") > 0);
    assert!(p("floor_2_lines_p50_ns") <= p("floor_2_lines_p99_ns"));
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    for r in rounds {
        for field in ["p50_ns", "floor_p50_ns", "floor_2_lines_p50_ns"] {
            assert!(r[field].as_u64().is_some_and(|x| x > 0), "{field}: {r}");
        }
    }
}

#[test]
fn bench_latency_raw_writes_every_measured_round_trip_in_order() {
    let path = std::env::temp_dir().join(format!("shm-bus-raw-{}.csv", std::process::id()));
    let (code, v) = run(&[
        "bench",
        "latency",
        "--count",
        "1000",
        "--rounds",
        "2",
        "--raw",
        path.to_str().unwrap(),
        "--json",
    ]);
    let text = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0);
    assert_eq!(v["count"], 1000);
    let text = text.unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("round,message,rtt_ns"));
    let rows: Vec<Vec<u64>> = lines
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 1000);
    // 500 per round after a warm-up of 100: messages 100..600, 700..1200.
    assert_eq!(rows[0], vec![0, 100, rows[0][2]]);
    assert_eq!(rows[499][..2], [0, 599]);
    assert_eq!(rows[500][..2], [1, 700]);
    assert_eq!(rows[999][..2], [1, 1199]);
    assert!(rows.iter().all(|r| r[2] > 0));
    // The median of the raw round trips is twice the reported one-way p50.
    let mut rtt: Vec<u64> = rows.iter().map(|r| r[2]).collect();
    rtt.sort_unstable();
    assert_eq!(rtt[rtt.len() / 2] / 2, v["p50_ns"].as_u64().unwrap());
}

#[test]
fn bench_latency_raw_to_a_bad_path_fails_before_measuring() {
    let out = Command::new(env!("CARGO_BIN_EXE_shm-bus"))
        .args(["bench", "latency", "--raw", "/nonexistent-dir/raw.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent-dir/raw.csv"), "{err}");
}

#[test]
fn bench_throughput_reports_rates_and_a_floor() {
    let (code, v) = run(&[
        "bench",
        "throughput",
        "--size",
        "256",
        "--count",
        "20000",
        "--subscribers",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0);
    for field in [
        "size",
        "subscribers",
        "count",
        "msgs_per_sec",
        "bytes_per_sec",
        "floor_msgs_per_sec",
    ] {
        assert!(v[field].is_number(), "missing {field}: {v}");
    }
    assert_eq!(v["subscribers"], 2);
    assert_eq!(v["count"], 20000);
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["floor_msgs_per_sec"].as_f64().unwrap() > 0.0);
    let per_msg = v["bytes_per_sec"].as_f64().unwrap() / v["msgs_per_sec"].as_f64().unwrap();
    assert!((per_msg - 256.0).abs() < 1.0);
}

#[test]
fn bench_rejects_bad_sizes() {
    for args in [
        &["bench", "latency", "--size", "4"][..],
        &["bench", "throughput", "--size", "2"][..],
        &["bench", "throughput", "--subscribers", "0"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_shm-bus"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
