//! Drives the operator tools of the real `shm-bus` binary across
//! processes: `record` and `replay` (a round trip of mixed topics and
//! sizes in both formats, a torn file, timing kept at `--speed`, `--lossy`
//! behind a stalled file, a failing disk), `hz`, `top --once [--json]`
//! with a live producer and a dead subscriber, `top` in a real terminal
//! (tmux; skipped with a reason if tmux is missing), the soak run
//! `demo --duration`, and bad input.
//!
//! Every test uses its own bus names and removes its buses and files on
//! drop; every process runs under a watchdog.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::*;

/// Polls `inspect --json` until `ok` holds, panicking after the watchdog.
fn wait_until(bus: &TestBus, what: &str, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let out = run(&["inspect", &bus.name, "--json"]);
        if out.code() == Some(0) && ok(&out.json()) {
            return;
        }
        assert!(Instant::now() < deadline, "watchdog: never saw {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `inspect --json` shows `n` live subscribers.
fn wait_for_subscribers(bus: &TestBus, n: usize) {
    wait_until(bus, &format!("{n} subscribers"), |v| {
        v["subscribers"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|s| s["alive"] == true).count())
            == n
    });
}

/// A scratch file path, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        TempFile(std::env::temp_dir().join(format!(
            "shm-bus-ops-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What identifies an event across buses: topic, size and payload (text
/// or hex), from `tail --json` lines.
fn events(lines: &[Value]) -> Vec<(String, u64, String)> {
    lines
        .iter()
        .map(|v| {
            let payload = v
                .get("payload")
                .or_else(|| v.get("payload_hex"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no payload in {v}"))
                .to_owned();
            (
                v["topic"].as_str().unwrap().to_owned(),
                v["size"].as_u64().unwrap(),
                payload,
            )
        })
        .collect()
}

/// Publishes a mix on `bus`: 300 generated 64-byte payloads over 3
/// topics, 60 of 3000 bytes over 2 topics, 40 text lines of varied length
/// (UTF-8 included), and 25 on a topic the recorders do not match.
/// Returns how many match `mix.**` + `txt.**`.
fn publish_mix(bus: &TestBus) -> u64 {
    for args in [
        vec![
            "mix.small.{i}",
            "--count",
            "300",
            "--size",
            "64",
            "--topics",
            "3",
        ],
        vec![
            "mix.big.{i}",
            "--count",
            "60",
            "--size",
            "3000",
            "--topics",
            "2",
        ],
        vec!["other.x", "--count", "25"],
    ] {
        let mut full = vec!["publish", bus.name.as_str()];
        full.extend(args);
        let out = run(&full);
        assert_eq!(out.code(), Some(0), "publish: {}", out.stderr);
    }
    let lines: String = (0..40)
        .map(|i| format!("line {i} {}\n", "é·x".repeat(i * 7)))
        .collect();
    let out = Proc::spawn_with(
        &["publish", &bus.name, "txt.lines", "--stdin"],
        Some(lines.as_bytes()),
    )
    .finish();
    assert_eq!(out.code(), Some(0), "publish --stdin: {}", out.stderr);
    300 + 60 + 40
}

// ---------------------------------------------------------------- record + replay

#[test]
fn record_and_replay_round_trip_topics_payloads_and_order_in_both_formats() {
    let src = TestBus::create("rec-src", &[]);
    let dst = TestBus::create("rec-dst", &[]);
    let bin = TempFile::new("mix.rec");
    let jsonl = TempFile::new("mix.jsonl");
    let n = 400u64;
    let count = n.to_string();
    let (rec_bin, bin_err) = Proc::spawn_watching_stderr(&[
        "record",
        &src.name,
        "mix.**",
        "txt.**",
        "-o",
        bin.path(),
        "--count",
        &count,
        "--json",
    ]);
    let (rec_jsonl, jsonl_err) = Proc::spawn_watching_stderr(&[
        "record",
        &src.name,
        "mix.**",
        "txt.**",
        "-o",
        jsonl.path(),
        "--count",
        &count,
        "--format",
        "jsonl",
        "--json",
    ]);
    // Both say they record, and that a block-policy recorder holds
    // producers back.
    assert!(wait_for_line(&bin_err, "recording").contains("holds producers back"));
    wait_for_line(&jsonl_err, "recording");
    let source_tail = Proc::spawn(&[
        "tail", &src.name, "mix.**", "txt.**", "--json", "--count", &count,
    ]);
    wait_for_subscribers(&src, 3);
    assert_eq!(publish_mix(&src), n);

    for rec in [rec_bin.finish(), rec_jsonl.finish()] {
        assert_eq!(rec.code(), Some(0), "record: {}", rec.stderr);
        let v = rec.json();
        assert_eq!(
            (v["recorded"].as_u64(), v["dropped"].as_u64()),
            (Some(n), Some(0)),
            "{v}"
        );
    }
    let source = source_tail.finish();
    assert_eq!(source.code(), Some(0), "{}", source.stderr);
    let want = events(&source.json_lines());
    assert_eq!(want.len() as u64, n);
    assert!(want.iter().any(|e| e.1 == 3000) && want.iter().any(|e| e.2.contains('é')));

    // Both recordings, one after the other, into another bus.
    let both = (2 * n).to_string();
    let dst_tail = Proc::spawn(&["tail", &dst.name, "--json", "--count", &both]);
    wait_for_subscribers(&dst, 1);
    for file in [&bin, &jsonl] {
        let out = run(&["replay", file.path(), &dst.name, "--max-rate", "--json"]);
        assert_eq!(out.code(), Some(0), "replay: {}", out.stderr);
        let v = out.json();
        assert_eq!(v["replayed"], n, "{v}");
        assert_eq!(
            (v["corrupt"].as_u64(), v["torn"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(v["header"]["bus"], src.name.as_str());
        assert_eq!(
            v["header"]["patterns"],
            serde_json::json!(["mix.**", "txt.**"])
        );
    }
    let replayed = dst_tail.finish();
    assert_eq!(replayed.code(), Some(0), "{}", replayed.stderr);
    let got = events(&replayed.json_lines());
    assert_eq!(got[..n as usize], want[..], "binary recording");
    assert_eq!(got[n as usize..], want[..], "JSON Lines recording");
}

#[test]
fn a_recording_torn_mid_record_replays_everything_before_the_tear() {
    let src = TestBus::create("torn-src", &[]);
    let dst = TestBus::create("torn-dst", &[]);
    let file = TempFile::new("torn.rec");
    let (rec, err) = Proc::spawn_watching_stderr(&[
        "record",
        &src.name,
        "t.**",
        "-o",
        file.path(),
        "--count",
        "50",
    ]);
    wait_for_line(&err, "recording");
    let tail = Proc::spawn(&["tail", &src.name, "t.**", "--json", "--count", "50"]);
    wait_for_subscribers(&src, 2);
    let out = run(&[
        "publish", &src.name, "t.{i}", "--count", "50", "--size", "200", "--topics", "5",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(rec.finish().code(), Some(0));
    let want = events(&tail.finish().json_lines());

    // A crash while appending the last record: cut 10 bytes into its
    // 200-byte payload's end.
    let bytes = std::fs::read(&file.0).unwrap();
    std::fs::write(&file.0, &bytes[..bytes.len() - 10]).unwrap();
    let dst_tail = Proc::spawn(&["tail", &dst.name, "--json", "--count", "49"]);
    wait_for_subscribers(&dst, 1);
    let out = run(&["replay", file.path(), &dst.name, "--max-rate", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(
        (
            v["replayed"].as_u64(),
            v["torn"].as_u64(),
            v["corrupt"].as_u64()
        ),
        (Some(49), Some(1), Some(0))
    );
    assert!(out.stderr.contains("1 torn record"), "{}", out.stderr);
    assert_eq!(events(&dst_tail.finish().json_lines()), want[..49]);

    // A damaged byte in the middle: that record is skipped and counted,
    // the others replay.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&file.0, &damaged).unwrap();
    let out = run(&["replay", file.path(), &dst.name, "--max-rate", "--json"]);
    let v = out.json();
    assert_eq!(
        (
            v["replayed"].as_u64(),
            v["corrupt"].as_u64(),
            v["torn"].as_u64()
        ),
        (Some(49), Some(1), Some(0)),
        "{v}"
    );
}

#[test]
fn replay_keeps_the_recorded_pace_scaled_by_speed() {
    let src = TestBus::create("pace-src", &[]);
    let dst = TestBus::create("pace-dst", &[]);
    let file = TempFile::new("pace.jsonl");
    let (rec, err) = Proc::spawn_watching_stderr(&[
        "record",
        &src.name,
        "p",
        "-o",
        file.path(),
        "--count",
        "30",
        "--format",
        "jsonl",
    ]);
    wait_for_line(&err, "recording");
    let out = run(&["publish", &src.name, "p", "--count", "30", "--rate", "60"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(rec.finish().code(), Some(0));
    let text = std::fs::read_to_string(&file.0).unwrap();
    let stamps: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["timestamp_ns"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(stamps.len(), 30);
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    let span = (stamps[29] - stamps[0]) as f64 / 1e9;
    assert!(span > 0.4, "published at 60/s, 30 events span {span} s");

    // At twice the speed the replay takes at least half the span (a lower
    // bound only: a loaded machine may take longer).
    let consumer = Proc::spawn(&["consume", &dst.name, "p", "--count", "30", "--json"]);
    wait_for_subscribers(&dst, 1);
    let out = run(&["replay", file.path(), &dst.name, "--speed", "2", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let secs = out.json()["seconds"].as_f64().unwrap();
    assert!(
        secs >= span / 2.0 * 0.95,
        "replayed in {secs} s, span {span} s"
    );
    let v = consumer.finish().json();
    assert_eq!(v["received"], 30);
    assert_eq!(v["gaps"], 0);
}

#[test]
fn lossy_record_behind_a_stalled_file_never_holds_the_producer_and_counts_what_it_skipped() {
    let bus = TestBus::create("lossy", &[]);
    let fifo = TempFile::new("fifo");
    let ok = Command::new("mkfifo")
        .arg(&fifo.0)
        .status()
        .expect("mkfifo");
    assert!(ok.success());
    // The file's reader: started, then stopped, so the pipe fills.
    let mut reader = Command::new("sh")
        .args(["-c", &format!("exec cat '{}' > /dev/null", fifo.path())])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn cat");
    let n: u64 = 30_000;
    let count = n.to_string();
    let (rec, err) = Proc::spawn_watching_stderr(&[
        "record",
        &bus.name,
        "big.**",
        "-o",
        fifo.path(),
        "--force",
        "--lossy",
        "--count",
        &count,
        "--json",
    ]);
    assert!(wait_for_line(&err, "recording").contains("--lossy"));
    let stop = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &reader.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    stop("-STOP");
    // 30,000 × 2000 bytes: far more than the pipe and the recorder's 16 MiB
    // of batches in flight. The producer must never wait for the recorder.
    let out = run(&[
        "publish",
        &bus.name,
        "big.{i}",
        "--count",
        &count,
        "--size",
        "2000",
        "--topics",
        "4",
        "--timeout",
        "20",
        "--json",
    ]);
    assert_eq!(
        out.code(),
        Some(0),
        "the recorder held the producer back: {}",
        out.stderr
    );
    stop("-CONT");
    let out = rec.finish();
    let _ = reader.wait();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    let (recorded, dropped) = (
        v["recorded"].as_u64().unwrap(),
        v["dropped"].as_u64().unwrap(),
    );
    assert_eq!(recorded + dropped, n, "{v}");
    assert!(dropped > 0 && recorded > 0, "{v}");
}

#[test]
fn record_says_so_when_the_file_cannot_be_written() {
    let bus = TestBus::create("full-disk", &[]);
    let (rec, err) = Proc::spawn_watching_stderr(&[
        "record",
        &bus.name,
        "x",
        "-o",
        "/dev/full",
        "--force",
        "--count",
        "5",
    ]);
    wait_for_line(&err, "recording");
    let out = run(&["publish", &bus.name, "x", "--count", "5", "--timeout", "20"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = rec.finish();
    assert_eq!(out.code(), Some(1));
    let last = out.stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("cannot write /dev/full") && last.contains("No space left"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- hz

#[test]
fn hz_reports_each_topics_rate_and_inter_arrival_times() {
    let bus = TestBus::create("hz", &[]);
    let hz = Proc::spawn(&[
        "hz",
        &bus.name,
        "hz.**",
        "--window",
        "1",
        "--windows",
        "2",
        "--json",
    ]);
    wait_for_subscribers(&bus, 1);
    let publisher = Proc::spawn(&[
        "publish", &bus.name, "hz.{i}", "--topics", "2", "--count", "2000", "--rate", "200",
    ]);
    let out = hz.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    drop(publisher);
    let windows = out.json_lines();
    assert_eq!(windows.len(), 2);
    // The second window is entirely inside the publishing.
    let w = &windows[1];
    let topics = w["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2, "{w}");
    for (t, name) in topics.iter().zip(["hz.0", "hz.1"]) {
        assert_eq!(t["topic"], name);
        let rate = t["rate"].as_f64().unwrap();
        let count = t["count"].as_f64().unwrap();
        // 100/s each when the machine keeps up; never more.
        assert!(rate > 20.0 && rate < 130.0, "{t}");
        assert!(
            (rate - count / w["window_secs"].as_f64().unwrap()).abs() < 1.0,
            "{t}"
        );
        let (mean, min, max) = (
            t["mean_ms"].as_f64().unwrap(),
            t["min_ms"].as_f64().unwrap(),
            t["max_ms"].as_f64().unwrap(),
        );
        assert!(min <= mean && mean <= max, "{t}");
        assert!(t["stddev_ms"].as_f64().unwrap() >= 0.0);
        // Inter-arrival mean and rate describe the same stream.
        assert!((mean * rate / 1000.0 - 1.0).abs() < 0.25, "{t}");
    }
}

// ---------------------------------------------------------------- top

#[test]
fn top_once_shows_a_live_producers_rates_and_marks_a_dead_subscriber() {
    let bus = TestBus::create("top-once", &[]);
    let reader = Proc::spawn(&["tail", &bus.name, "top.**", "--json"]);
    let doomed = Proc::spawn(&["tail", &bus.name, "nothing.here"]);
    wait_for_subscribers(&bus, 2);
    let doomed_pid = doomed.pid();
    doomed.kill9();
    let _publisher = Proc::spawn(&[
        "publish", &bus.name, "top.{i}", "--topics", "2", "--count", "100000", "--rate", "400",
    ]);
    wait_until(&bus, "a producer", |v| {
        v["producers"].as_array().is_some_and(|p| !p.is_empty())
    });

    let out = run(&["top", &bus.name, "--once", "--json", "--interval", "0.5"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["bus"], bus.name.as_str());
    assert_eq!(v["policy"], "block");
    let p = &v["producers"][0];
    assert_eq!(p["alive"], true);
    let rate = p["msgs_per_sec"].as_f64().unwrap();
    assert!(rate > 50.0 && rate < 600.0, "{p}");
    assert!(p["bytes_per_sec"].as_f64().unwrap() > 0.0);
    let subs = v["subscribers"].as_array().unwrap();
    let live = subs
        .iter()
        .find(|s| s["name"] == "shm-bus tail" && s["alive"] == true)
        .unwrap();
    assert!(live["msgs_per_sec"].as_f64().unwrap() > 0.0, "{live}");
    let dead = subs.iter().find(|s| s["pid"] == doomed_pid).unwrap();
    assert_eq!(dead["alive"], false, "a dead process is marked, not hidden");
    let topics = v["topics"].as_array().unwrap();
    let names: Vec<&str> = topics
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"top.0") && names.contains(&"top.1"),
        "{names:?}"
    );
    assert!(topics.iter().all(|t| t["rate"].as_f64().unwrap() > 0.0));

    let out = run(&["top", &bus.name, "--once", "--interval", "0.3"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let screen = out.stdout;
    assert!(screen.contains(&format!("bus `{}`", bus.name)), "{screen}");
    let dead_line = screen
        .lines()
        .find(|l| l.contains(&doomed_pid.to_string()))
        .unwrap();
    assert!(dead_line.contains("DEAD"), "{screen}");
    assert!(
        screen.contains("top.0") && screen.contains("shm-bus publish"),
        "{screen}"
    );
    drop(reader);
}

/// A tmux server of its own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Waits (under the watchdog) for the screen to satisfy `ok`.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "watchdog: never saw {what}; screen:\n{s}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        assert!(self.cmd(&args).status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The MSGS/S cell of the screen line that shows `name` as a producer.
fn producer_rate(screen: &str, name: &str) -> Option<f64> {
    let line = screen
        .lines()
        .find(|l| l.contains(name) && l.contains("alive"))?;
    let after = line.split("alive").nth(1)?;
    let cell = after.split_whitespace().next()?;
    let (num, scale) = match cell.strip_suffix('k') {
        Some(n) => (n, 1e3),
        None => (
            cell.strip_suffix('M').unwrap_or(cell),
            if cell.ends_with('M') { 1e6 } else { 1.0 },
        ),
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

#[test]
fn top_in_a_terminal_shows_a_live_rate_and_restores_the_terminal_on_q_and_ctrl_c() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!(
            "SKIPPED: tmux is not installed (apt-get install -y tmux); top's pseudo-terminal test did not run"
        );
        return;
    }
    let bus = TestBus::create("top-tty", &[]);
    let _publisher = Proc::spawn(&[
        "publish", &bus.name, "tty.{i}", "--topics", "3", "--count", "1000000", "--rate", "300",
        "--name", "tty feed",
    ]);
    wait_until(&bus, "a producer", |v| {
        v["producers"].as_array().is_some_and(|p| !p.is_empty())
    });
    let tmux = Tmux {
        socket: format!("shm-bus-top-{}", std::process::id()),
    };
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "150",
        "-y",
        "45",
        "env",
        "PS1=$ ",
        "bash",
        "--norc",
        "--noprofile",
    ]);
    assert!(
        out.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let top = format!("{BIN} top {} --interval 0.3", bus.name);
    // What the terminal modes are after top: canonical input and echo on.
    let modes = "stty -a | tr ' ' '\\n' | grep -E '^-?(icanon|echo)$' | tr '\\n' ' '";

    for (round, quit) in [(1, "q"), (2, "C-c")] {
        tmux.keys(&[
            &format!("clear; {top}; echo TOP_EXIT_{round}=$?; {modes}; echo MODES_DONE"),
            "Enter",
        ]);
        let screen = tmux.wait("a live producer rate in top", |s| {
            s.contains("busiest topics") && producer_rate(s, "tty feed").is_some_and(|r| r > 0.0)
        });
        assert!(screen.contains(&format!("bus `{}`", bus.name)), "{screen}");
        assert!(screen.contains("tty.0"), "{screen}");
        tmux.keys(&[quit]);
        let screen = tmux.wait("top's exit", |s| {
            s.contains("MODES_DONE") && s.contains(&format!("TOP_EXIT_{round}="))
        });
        assert!(screen.contains(&format!("TOP_EXIT_{round}=0")), "{screen}");
        // Left the alternate screen, and the terminal is back in cooked mode.
        assert!(!screen.contains("busiest topics"), "{screen}");
        let modes_line = screen.lines().find(|l| l.contains("icanon")).unwrap_or("");
        assert!(
            modes_line.contains("icanon") && !modes_line.contains("-icanon"),
            "{screen}"
        );
        assert!(
            modes_line.split_whitespace().any(|m| m == "echo"),
            "{screen}"
        );
    }
}

// ---------------------------------------------------------------- soak

#[test]
fn soak_demo_runs_for_its_duration_and_reports_losses_and_memory() {
    let out = run(&["demo", "--duration", "2s", "--workers", "2", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["corrupt"], 0);
    assert_eq!(v["duration_secs"], 2.0);
    assert!(v["events"].as_u64().unwrap() > 0);
    assert!(v["seconds"].as_f64().unwrap() >= 2.0);
    let memory = v["memory"].as_array().unwrap();
    let processes: Vec<&str> = memory
        .iter()
        .map(|m| m["process"].as_str().unwrap())
        .collect();
    assert_eq!(processes, ["demo", "producer", "worker 0", "worker 1"]);
    for m in memory {
        for k in ["start_kib", "end_kib", "peak_kib"] {
            assert!(m[k].as_u64().unwrap() > 0, "{m}");
        }
        assert!(m["peak_kib"].as_u64() >= m["end_kib"].as_u64(), "{m}");
    }
    // Every worker got exactly what its pattern matches of what was sent.
    for w in v["per_worker"].as_array().unwrap() {
        assert_eq!(w["expected"], w["received"], "{w}");
        assert!(w["expected"].as_u64().unwrap() > 0);
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_is_one_line_and_exit_2_and_runtime_failures_exit_1() {
    let bus = TestBus::create("ops-bad", &[]);
    let existing = TempFile::new("exists");
    std::fs::write(&existing.0, b"keep me").unwrap();
    let not_a_recording = TempFile::new("notrec");
    std::fs::write(&not_a_recording.0, b"hello, I am not a recording").unwrap();
    let b = bus.name.as_str();
    let never = TempFile::new("never-written");
    let never = never.path();
    for (args, code, needle) in [
        (vec!["record", b, "-o", never], 2, "required"),
        (vec!["record", b, "a..b", "-o", never], 2, "invalid pattern"),
        (
            vec!["record", b, "a", "-o", never, "--duration", "0"],
            2,
            "positive",
        ),
        (vec!["record", b, "a", "-o", existing.path()], 1, "--force"),
        (
            vec!["record", "no-such-bus-ops", "a", "-o", never],
            1,
            "does not exist",
        ),
        (
            vec!["replay", not_a_recording.path(), b],
            2,
            "not a shm-bus recording",
        ),
        (vec!["replay", "/nonexistent/file.rec", b], 1, "cannot open"),
        (
            vec!["replay", existing.path(), b, "--speed", "0"],
            2,
            "--speed",
        ),
        (
            vec!["replay", existing.path(), b, "--speed", "2", "--max-rate"],
            2,
            "cannot be used with",
        ),
        (vec!["hz", b, "--window", "0"], 2, "positive"),
        (vec!["hz", b, "--windows", "0"], 2, "--windows"),
        (vec!["top", b], 2, "needs a terminal"),
        (
            vec!["top", b, "--once", "--interval", "10ms"],
            2,
            "--interval",
        ),
        (
            vec!["top", "no-such-bus-ops", "--once"],
            1,
            "does not exist",
        ),
    ] {
        let out = run(&args);
        assert_eq!(out.code(), Some(code), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr_lines(), 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
    }
    assert_eq!(std::fs::read(&existing.0).unwrap(), b"keep me");
    assert!(!std::path::Path::new(never).exists());
    assert!(!std::path::Path::new(never).exists());
}
