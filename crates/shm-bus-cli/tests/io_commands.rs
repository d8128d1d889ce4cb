//! Drives the real `shm-bus` binary's I/O commands (`publish`, `consume`,
//! `tail`) across processes: JSON fields, exit codes, verification of
//! generated payloads (per producer and per topic), opening versus
//! `--create`, what they say when nothing arrives, when a subscriber holds
//! a publisher back or when the bus is removed under them, and bad input
//! that must leave no bus behind.
//!
//! Every test uses its own bus name and removes the bus on drop; every
//! process runs under a watchdog.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

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

fn assert_clean(v: &Value, received: u64) {
    assert_eq!(v["received"], received, "{v}");
    assert_eq!(v["gaps"], 0, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["corrupt"], 0, "{v}");
    assert_eq!(v["lagged"], 0, "{v}");
}

// ---------------------------------------------------------------- publish + consume

#[test]
fn two_consumer_processes_get_every_generated_message_once() {
    const N: &str = "10000";
    let bus = TestBus::create("two-consumers", &[]);
    let consumers: Vec<Proc> = (0..2)
        .map(|_| {
            Proc::spawn(&[
                "consume",
                &bus.name,
                "load.**",
                "--count",
                N,
                "--timeout",
                "30",
                "--json",
            ])
        })
        .collect();
    wait_for_subscribers(&bus, 2);

    let out = run(&["publish", &bus.name, "load.gen", "--count", N, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let p = out.json();
    assert_eq!(p["published"], 10_000);
    assert_eq!(p["bytes"], 10_000 * 64);
    assert!(p["seconds"].as_f64().unwrap() >= 0.0);
    assert!(p["rate"].as_f64().unwrap() >= 0.0);
    assert!(p["full_waits"].as_u64().is_some());

    for c in consumers {
        let out = c.finish();
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
        let v = out.json();
        assert_clean(&v, 10_000);
        assert_eq!(v["producers"], 1);
        assert!(v["seconds"].as_f64().unwrap() >= 0.0);
        assert!(v["rate"].as_f64().unwrap() >= 0.0);
    }
    // Both consumers detached when done; the publisher too.
    let v = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(v["subscribers"], json!([]));
    assert_eq!(v["producers"][0]["attached"], false);
    assert_eq!(v["producers"][0]["published"], 10_000);
}

#[test]
fn topics_spread_by_index_and_a_pattern_selects_a_subset() {
    let bus = TestBus::create("spread", &[]);
    let odd = Proc::spawn(&[
        "consume",
        &bus.name,
        "s.(1|3).v",
        "--count",
        "200",
        "--timeout",
        "30",
        "--json",
    ]);
    let all = Proc::spawn(&[
        "consume",
        &bus.name,
        "s.{n}.v",
        "--count",
        "400",
        "--timeout",
        "30",
        "--json",
    ]);
    wait_for_subscribers(&bus, 2);
    let out = run(&[
        "publish", &bus.name, "s.{i}.v", "--topics", "4", "--count", "400", "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["published"], 400);

    let v = odd.finish();
    assert_eq!(v.code(), Some(0), "{}", v.stderr);
    let v = v.json();
    assert_eq!(v["received"], 200, "{v}");
    assert_eq!(v["duplicates"], 0);
    assert_eq!(v["corrupt"], 0);
    let v = all.finish();
    assert_eq!(v.code(), Some(0), "{}", v.stderr);
    assert_clean(&v.json(), 400);

    let v = run(&["inspect", &bus.name, "--json"]).json();
    let mut topics: Vec<&str> = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic"].as_str().unwrap())
        .collect();
    topics.sort_unstable();
    assert_eq!(topics, ["s.0.v", "s.1.v", "s.2.v", "s.3.v"]);
}

#[test]
fn successive_publish_runs_form_one_gap_free_stream() {
    let bus = TestBus::create("successive", &[]);
    let consumer = Proc::spawn(&[
        "consume",
        &bus.name,
        "seq",
        "--count",
        "300",
        "--timeout",
        "30",
        "--json",
    ]);
    wait_for_subscribers(&bus, 1);
    for _ in 0..3 {
        let out = run(&["publish", &bus.name, "seq", "--count", "100"]);
        assert_eq!(out.code(), Some(0), "{}", out.stderr);
    }
    let out = consumer.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_clean(&out.json(), 300);
}

#[test]
fn a_stalled_consumer_on_an_overwrite_bus_reports_exact_lag() {
    let bus = TestBus::create("lag", &["--ring-bytes", "4096", "--policy", "overwrite"]);
    let consumer = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "0.5", "--json"]);
    wait_for_subscribers(&bus, 1);
    consumer.signal("-STOP");
    let out = run(&["publish", &bus.name, "lag", "--count", "1000", "--json"]);
    consumer.signal("-CONT");
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["full_waits"], 0, "overwrite never waits");
    let out = consumer.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    let (received, lagged) = (
        v["received"].as_u64().unwrap(),
        v["lagged"].as_u64().unwrap(),
    );
    assert!(lagged > 0, "{v}");
    assert_eq!(received + lagged, 1000, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["corrupt"], 0, "{v}");
}

#[test]
fn publish_timeout_on_a_full_ring_exits_1_and_still_reports() {
    let bus = TestBus::create("full", &["--ring-bytes", "4096"]);
    let stuck = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "120"]);
    wait_for_subscribers(&bus, 1);
    stuck.signal("-STOP");
    let out = run(&[
        "publish",
        &bus.name,
        "f",
        "--count",
        "1000",
        "--timeout",
        "0.2",
        "--json",
    ]);
    stuck.signal("-CONT");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("ring full"), "{}", out.stderr);
    assert!(out.stderr.contains("inspect"), "{}", out.stderr);
    let v = out.json();
    let published = v["published"].as_u64().unwrap();
    assert!(published > 0 && published < 1000, "{v}");
    assert!(v["full_waits"].as_u64().unwrap() >= 1, "{v}");
}

#[test]
fn consume_that_misses_its_count_exits_1_with_the_summary() {
    let bus = TestBus::create("short", &[]);
    let out = run(&[
        "consume",
        &bus.name,
        "nothing.here",
        "--count",
        "5",
        "--timeout",
        "0.2",
        "--json",
    ]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    // The time it states is how long it waited: at least the timeout, more
    // on a busy machine (not asserted).
    assert!(
        out.stderr.contains("nothing received in ")
            && out
                .stderr
                .contains(&format!(" s on `{}` (patterns: nothing.here)", bus.name)),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("expected 5"), "{}", out.stderr);
    let v = out.json();
    assert_clean(&v, 0);
    assert_eq!(v["seconds"], 0.0);
    assert_eq!(v["rate"], 0.0);

    // Without --count, silence simply ends it (exit 0), and it says that
    // nothing came, with a hint.
    let out = run(&[
        "consume",
        &bus.name,
        "x",
        "y.**",
        "--timeout",
        "0.1",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["received"], 0);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("shm-bus: consume: nothing received in "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("(patterns: x y.**)"), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing was ever published"),
        "{}",
        out.stderr
    );

    // Something received: no such line.
    let consumer = Proc::spawn(&["consume", &bus.name, "x", "--timeout", "0.5"]);
    wait_for_subscribers(&bus, 1);
    assert_eq!(run(&["publish", &bus.name, "x"]).code(), Some(0));
    let out = consumer.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert!(
        out.stdout.starts_with("received 1 message(s)"),
        "{}",
        out.stdout
    );
}

#[test]
fn consume_and_tail_end_cleanly_on_sigint() {
    let bus = TestBus::create("sigint", &[]);
    let consumer = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "120", "--json"]);
    wait_for_subscribers(&bus, 1);
    let out = run(&["publish", &bus.name, "i", "--count", "3"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let pid = u64::from(consumer.pid());
    wait_until(&bus, "the consumer receive 3", |v| {
        v["subscribers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["pid"] == pid && s["received"] == 3))
    });
    let tail = Proc::spawn(&["tail", &bus.name]);
    wait_for_subscribers(&bus, 2);

    consumer.signal("-INT");
    let out = consumer.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_clean(&v, 3);
    assert_eq!(v["interrupted"], true);

    tail.signal("-INT");
    let out = tail.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn a_paced_publish_ends_cleanly_on_sigint() {
    let bus = TestBus::create("sigint-publish", &[]);
    let publisher = Proc::spawn(&[
        "publish", &bus.name, "slow", "--count", "1000", "--rate", "2", "--json",
    ]);
    let pid = u64::from(publisher.pid());
    wait_until(&bus, "the publisher's first message", |v| {
        v["producers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["pid"] == pid && p["published"] == 1))
    });
    publisher.signal("-INT");
    let out = publisher.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["interrupted"], true, "{v}");
    let published = v["published"].as_u64().unwrap();
    assert!((1..1000).contains(&published), "{v}");
    assert_eq!(v["bytes"], published * 64);
}

// ---------------------------------------------------------------- --data, --stdin, tail

#[test]
fn tail_json_shows_data_and_stdin_messages() {
    let bus = TestBus::create("tail-json", &[]);
    let tail = Proc::spawn(&[
        "tail", &bus.name, "msg.**", "--count", "5", "--format", "json",
    ]);
    wait_for_subscribers(&bus, 1);

    let out = run(&[
        "publish", &bus.name, "msg.data", "--data", "hello", "--count", "2", "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["published"], 2);
    assert_eq!(v["bytes"], 10);

    // Not for the tail: its pattern does not match.
    let out = run(&["publish", &bus.name, "other", "--data", "x"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);

    let input: &[u8] = b"one\r\ntwo\n\xff\xfe\n";
    let out = Proc::spawn_with(
        &[
            "publish",
            &bus.name,
            "msg.lines",
            "--stdin",
            "--json",
            "--count",
            "99",
        ],
        Some(input),
    )
    .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["published"], 3, "one message per line, --count ignored");
    assert_eq!(v["bytes"], 3 + 3 + 2);

    let out = tail.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 5, "{}", out.stdout);
    let payloads: Vec<Value> = lines
        .iter()
        .map(|l| l.get("payload").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        payloads,
        [
            json!("hello"),
            json!("hello"),
            json!("one"),
            json!("two"),
            Value::Null
        ]
    );
    assert_eq!(lines[4]["payload_hex"], "fffe");
    assert_eq!(lines[4]["size"], 2);
    for (i, l) in lines.iter().enumerate() {
        let topic = if i < 2 { "msg.data" } else { "msg.lines" };
        assert_eq!(l["topic"], topic, "{l}");
        assert!(l["producer"].as_u64().is_some(), "{l}");
        assert!(l["sequence"].as_u64().is_some(), "{l}");
        assert!(l["timestamp_ns"].as_u64().unwrap() > 0, "{l}");
    }
    assert_eq!(lines[0]["size"], 5);
    assert_eq!(
        lines[1]["sequence"].as_u64().unwrap(),
        lines[0]["sequence"].as_u64().unwrap() + 1
    );
}

#[test]
fn tail_text_escapes_and_hex_formats() {
    let bus = TestBus::create("tail-text", &[]);
    let text = Proc::spawn(&["tail", &bus.name, "--count", "1"]);
    let hex = Proc::spawn(&["tail", &bus.name, "--count", "1", "--format", "hex"]);
    wait_for_subscribers(&bus, 2);
    let out = run(&["publish", &bus.name, "t.x", "--data", "a\tb\nc"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);

    let out = text.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "t.x  producer=0 seq=0 size=5  a\\tb\\nc\n");
    let out = hex.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "t.x  producer=0 seq=0 size=5  6109620a63\n");
}

#[test]
fn tail_shows_text_or_hex_by_default_and_json_lines_with_json() {
    let bus = TestBus::create("tail-auto", &[]);
    let auto = Proc::spawn(&["tail", &bus.name, "--count", "4"]);
    let text = Proc::spawn(&["tail", &bus.name, "--count", "4", "--format", "text"]);
    let json = Proc::spawn(&["tail", &bus.name, "--count", "4", "--json"]);
    wait_for_subscribers(&bus, 3);
    let out = run(&["publish", &bus.name, "a", "--data", "price=1.5 €"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = Proc::spawn_with(
        &["publish", &bus.name, "b", "--stdin"],
        Some(b"\x00\x01\xff\n"),
    )
    .finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    // Generated payloads: binary, 64 bytes.
    let out = run(&["publish", &bus.name, "c", "--count", "2"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);

    let out = auto.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(lines[0], "a  producer=0 seq=0 size=13  price=1.5 €");
    assert_eq!(lines[1], "b  producer=0 seq=1 size=3  hex:0001ff");
    // Long binary payloads: the first 32 bytes, and how many more.
    assert!(
        lines[2].starts_with("c  producer=0 seq=2 size=64  hex:53424732"),
        "{}",
        lines[2]
    );
    assert!(lines[2].ends_with("… (+32 bytes)"), "{}", lines[2]);
    assert_eq!(
        lines[2]
            .split("hex:")
            .nth(1)
            .unwrap()
            .split('…')
            .next()
            .unwrap()
            .len(),
        64
    );

    // --format text forces text (lossy).
    let out = text.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[1], "b  producer=0 seq=1 size=3  \\u{0}\\u{1}\u{fffd}");

    // --json is --format json.
    let out = json.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let lines = out.json_lines();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(lines[0]["payload"], "price=1.5 €");
    assert_eq!(lines[1]["payload_hex"], "0001ff");
    assert_eq!(lines[2]["topic"], "c");
}

#[test]
fn tail_ends_quietly_when_its_reader_goes_away() {
    // Like `shm-bus tail BUS | head -1`.
    let bus = TestBus::create("epipe", &[]);
    let (tail, stdout) = Proc::spawn_raw_stdout(&["tail", &bus.name]);
    wait_for_subscribers(&bus, 1);
    let out = run(&["publish", &bus.name, "e", "--data", "first"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first).unwrap();
    assert!(first.ends_with("first\n"), "{first:?}");
    // The reader is gone now; more events, or none, end the tail.
    let out = run(&["publish", &bus.name, "e", "--data", "more", "--count", "3"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = tail.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn an_idle_tail_notices_a_closed_stdout() {
    let bus = TestBus::create("epipe-idle", &[]);
    let (tail, stdout) = Proc::spawn_raw_stdout(&["tail", &bus.name]);
    drop(stdout);
    let out = tail.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

// ---------------------------------------------------------------- bad input

#[test]
fn publishing_to_a_pattern_or_invalid_topic_exits_2_and_creates_no_bus() {
    let bus = TestBus::new("bad-topic");
    for args in [
        &["a.{x}"][..],
        &["a.+x"],
        &["a.**"],
        &["a.(b|c)"],
        &["a./b+/"],
        &["a..b"],
        &[""],
        &["x.{i}.(a|b)", "--topics", "2"],
        &["fixed", "--topics", "3"],
    ] {
        let mut full = vec!["publish", bus.name.as_str(), "--create"];
        full.extend_from_slice(args);
        let out = run(&full);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr_lines(), 1, "{args:?}: {}", out.stderr);
        assert!(!bus.exists(), "{args:?} left a bus behind");
    }
}

#[test]
fn consuming_or_tailing_an_invalid_pattern_exits_2_and_creates_no_bus() {
    let bus = TestBus::new("bad-pattern");
    for cmd in [
        &["consume", bus.name.as_str(), "ok.**", "a..b", "--create"][..],
        &["consume", bus.name.as_str(), "/[/", "--create"],
        &["tail", bus.name.as_str(), "()", "--create"],
    ] {
        let out = run(cmd);
        assert_eq!(out.code(), Some(2), "{cmd:?}: {}", out.stderr);
        assert_eq!(out.stderr_lines(), 1, "{cmd:?}: {}", out.stderr);
        assert!(!bus.exists(), "{cmd:?} left a bus behind");
    }
}

#[test]
fn bad_sizes_rates_and_flags_exit_2_and_create_no_bus() {
    let bus = TestBus::new("bad-size");
    for args in [
        &["--size", "10"][..],
        &["--size", "31"],
        &["--size", "100000000"], // above the default ring's max payload
        &["--rate", "0"],
        &["--rate=-5"],
        &["--rate=inf"],
        &["--timeout=-1"],
        &["--topics", "0"],
    ] {
        // --create: even a bus that may be created is not, on bad input.
        let mut full = vec!["publish", bus.name.as_str(), "t", "--create"];
        full.extend_from_slice(args);
        let out = run(&full);
        assert_eq!(out.code(), Some(2), "{:?}: {}", &args[..1], out.stderr);
        assert_eq!(out.stderr_lines(), 1, "{:?}: {}", &args[..1], out.stderr);
        assert!(!bus.exists(), "{:?} left a bus behind", &args[..1]);
    }
    for cmd in [
        &["publish", bus.name.as_str(), "t", "--bogus", "--create"][..],
        &[
            "publish",
            bus.name.as_str(),
            "t",
            "--data",
            "x",
            "--stdin",
            "--create",
        ],
        &["consume", bus.name.as_str(), "--create"],
        &[
            "consume",
            bus.name.as_str(),
            "x",
            "--timeout=-1",
            "--create",
        ],
        &["tail", bus.name.as_str(), "--format", "yaml", "--create"],
        &[
            "tail",
            bus.name.as_str(),
            "--json",
            "--format",
            "hex",
            "--create",
        ],
    ] {
        let out = run(cmd);
        assert_eq!(out.code(), Some(2), "{cmd:?}: {}", out.stderr);
        assert!(!bus.exists(), "{cmd:?} left a bus behind");
    }
}

#[test]
fn publish_larger_than_an_existing_bus_allows_exits_2() {
    let bus = TestBus::create("small-ring", &["--ring-bytes", "4096"]);
    let out = run(&["publish", &bus.name, "t", "--size", "4000"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    let out = run(&["publish", &bus.name, "t", "--data", &"x".repeat(3000)]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    // A line too long for the ring, from stdin: exit 2 after what fitted.
    let long = format!("short\n{}\n", "y".repeat(5000));
    let out = Proc::spawn_with(
        &["publish", &bus.name, "t", "--stdin", "--json"],
        Some(long.as_bytes()),
    )
    .finish();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert_eq!(out.json()["published"], 1);
}

#[test]
fn a_missing_bus_is_exit_1_with_a_hint_and_is_not_created() {
    let bus = TestBus::new("missing");
    for cmd in [
        &["publish", bus.name.as_str(), "md.x"][..],
        &["publish", bus.name.as_str(), "md.x", "--data", "hi"],
        &["consume", bus.name.as_str(), "md.**", "--timeout", "1"],
        &["tail", bus.name.as_str()],
    ] {
        let out = run(cmd);
        assert_eq!(out.code(), Some(1), "{cmd:?}: {}", out.stderr);
        assert_eq!(out.stderr_lines(), 1, "{cmd:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim_end(),
            format!(
                "shm-bus: bus `{0}` does not exist: create it with `shm-bus create {0}`, \
                 or pass --create",
                bus.name
            ),
            "{cmd:?}"
        );
        assert!(out.stdout.is_empty(), "{cmd:?}: {}", out.stdout);
        assert!(!bus.exists(), "{cmd:?} created the bus");
    }
}

#[test]
fn create_flag_creates_a_missing_bus_with_defaults_and_says_so() {
    let bus = TestBus::new("autocreate");
    let out = run(&[
        "publish", &bus.name, "hello", "--count", "3", "--json", "--create",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["published"], 3);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "shm-bus: created bus `{}` (1.0 MiB ring per producer, 8 producers, 32 subscribers",
            bus.name
        )),
        "{}",
        out.stderr
    );
    assert!(bus.exists());
    let v = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(v["config"]["ring_bytes"], 1 << 20);
    assert_eq!(v["producers"][0]["published"], 3);
    assert_eq!(v["producers"][0]["name"], "shm-bus publish");

    // On an existing bus --create changes nothing and says nothing.
    let out = run(&["publish", &bus.name, "hello", "--create"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);

    // consume and tail take it too.
    let c = TestBus::new("c");
    let t = TestBus::new("t");
    for (bus, args) in [
        (
            &c,
            &["consume", &c.name, "x", "--timeout", "0.1", "--create"][..],
        ),
        (&t, &["tail", &t.name, "--count", "0", "--create"]),
    ] {
        let out = run(args);
        assert_eq!(out.code(), Some(0), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("created bus `{}`", bus.name)),
            "{args:?}: {}",
            out.stderr
        );
        assert!(bus.exists());
    }
}

// ---------------------------------------------------------------- near misses

#[test]
fn a_topic_or_pattern_that_looks_mistyped_warns_and_is_used_literally() {
    let bus = TestBus::create("near-miss", &[]);
    let tail = Proc::spawn(&["tail", &bus.name, "md.(AAPL|", "--count", "1"]);
    wait_for_subscribers(&bus, 1);
    let out = run(&["publish", &bus.name, "md.(AAPL|", "--data", "x"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "shm-bus: publish: warning: topic `md.(AAPL|` looks like a mistyped pattern"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("matched literally"), "{}", out.stderr);
    let out = tail.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "shm-bus: tail: warning: pattern `md.(AAPL|` looks like a mistyped pattern"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout, "md.(AAPL|  producer=0 seq=0 size=1  x\n");

    for pattern in ["md.{", "md.x}", "a|b", "md.x/", "md.AAPL)"] {
        let out = run(&["consume", &bus.name, "ok", pattern, "--timeout", "0"]);
        assert_eq!(out.code(), Some(0), "{pattern}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "consume: warning: pattern `{pattern}` looks like a mistyped pattern"
            )),
            "{pattern}: {}",
            out.stderr
        );
    }
    // Real patterns and plain topics: no warning.
    let out = run(&[
        "consume",
        &bus.name,
        "md.{x}",
        "md.(a|b)",
        "md./^a/",
        "md.x",
        "--timeout",
        "0",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

// ---------------------------------------------------------------- per-topic sequences

#[test]
fn a_consumer_of_one_topic_of_three_proves_it_lost_nothing() {
    let bus = TestBus::create("topic-gaps", &[]);
    let one = Proc::spawn(&[
        "consume",
        &bus.name,
        "t.1",
        "--count",
        "100",
        "--timeout",
        "30",
        "--json",
    ]);
    let human = Proc::spawn(&[
        "consume",
        &bus.name,
        "t.1",
        "--count",
        "100",
        "--timeout",
        "30",
    ]);
    wait_for_subscribers(&bus, 2);
    let out = run(&[
        "publish", &bus.name, "t.{i}", "--topics", "3", "--count", "300",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = one.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["received"], 100, "{v}");
    assert_eq!(v["topic_gaps"], 0, "{v}");
    // Per producer, the other two topics' records are skipped sequence
    // numbers (99 steps of 3).
    assert_eq!(v["gaps"], 198, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["corrupt"], 0, "{v}");
    assert_eq!(v["foreign"], 0, "{v}");
    let out = human.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("198 gap(s) (0 within the topics received)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("0 foreign"), "{}", out.stdout);
}

#[test]
fn records_lost_within_a_topic_show_as_topic_gaps() {
    // Overwrite, a small ring: a consumer stopped mid-run loses records
    // of its own topic.
    let bus = TestBus::create(
        "topic-lost",
        &["--ring-bytes", "4096", "--policy", "overwrite"],
    );
    let consumer = Proc::spawn(&["consume", &bus.name, "t.0", "--timeout", "1", "--json"]);
    wait_for_subscribers(&bus, 1);
    let publisher = Proc::spawn(&[
        "publish", &bus.name, "t.{i}", "--topics", "3", "--count", "3000", "--rate", "1000",
    ]);
    let cpid = u64::from(consumer.pid());
    wait_until(&bus, "the consumer receive some", |v| {
        v["subscribers"].as_array().is_some_and(|a| {
            a.iter()
                .any(|s| s["pid"] == cpid && s["received"].as_u64().unwrap_or(0) >= 10)
        })
    });
    consumer.signal("-STOP");
    let published = |v: &Value| v["producers"][0]["published"].as_u64().unwrap_or(0);
    let at_stop = published(&run(&["inspect", &bus.name, "--json"]).json());
    // Far more than the ring holds (about 40 records of 64 bytes).
    wait_until(&bus, "300 more records", |v| published(v) >= at_stop + 300);
    consumer.signal("-CONT");
    let out = publisher.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = consumer.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    let received = v["received"].as_u64().unwrap();
    let topic_gaps = v["topic_gaps"].as_u64().unwrap();
    assert!(v["lagged"].as_u64().unwrap() > 0, "{v}");
    assert!(topic_gaps > 0, "{v}");
    // Topic t.0 got 1000 records: each was received or counted missing.
    assert_eq!(received + topic_gaps, 1000, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["corrupt"], 0, "{v}");
}

// ---------------------------------------------------------------- waiting, removal

#[test]
fn a_blocked_publish_says_once_which_subscriber_it_waits_for() {
    let bus = TestBus::create("blocked", &["--ring-bytes", "4096"]);
    let stuck = Proc::spawn(&[
        "consume",
        &bus.name,
        "**",
        "--timeout",
        "120",
        "--name",
        "slowpoke",
    ]);
    wait_for_subscribers(&bus, 1);
    stuck.signal("-STOP");

    let (publisher, lines) =
        Proc::spawn_watching_stderr(&["publish", &bus.name, "b", "--count", "500", "--json"]);
    let line = wait_for_line(&lines, "ring is full");
    assert!(
        line.starts_with("shm-bus: publish: the ring is full; waiting for subscriber 0"),
        "{line}"
    );
    assert!(
        line.contains(&format!("(pid {}, `slowpoke`)", stuck.pid())),
        "{line}"
    );
    assert!(line.contains("KiB behind"), "{line}");
    // It keeps waiting: the subscriber continues, the publish completes.
    stuck.signal("-CONT");
    let out = publisher.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["published"], 500);
    assert_eq!(out.stderr_lines(), 1, "said once: {}", out.stderr);

    // A subscriber killed while it holds the publisher back: reaped, and
    // the publish completes too.
    stuck.signal("-STOP");
    let (publisher, lines) =
        Proc::spawn_watching_stderr(&["publish", &bus.name, "b", "--count", "500", "--json"]);
    wait_for_line(&lines, "waiting for subscriber");
    stuck.kill9();
    let out = publisher.finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["published"], 500);
}

#[test]
fn publish_timeout_names_the_subscriber_that_holds_it_back() {
    let bus = TestBus::create("full-named", &["--ring-bytes", "4096"]);
    let stuck = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "120"]);
    wait_for_subscribers(&bus, 1);
    stuck.signal("-STOP");
    let out = run(&[
        "publish",
        &bus.name,
        "f",
        "--count",
        "1000",
        "--timeout",
        "0.2",
    ]);
    stuck.signal("-CONT");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "subscriber 0 (pid {}, `shm-bus consume`)",
            stuck.pid()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn tail_and_consume_end_with_a_message_when_their_bus_is_removed() {
    let bus = TestBus::create("removed", &[]);
    let tail = Proc::spawn(&["tail", &bus.name]);
    let consumer = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "120", "--json"]);
    wait_for_subscribers(&bus, 2);
    let out = run(&[
        "publish", &bus.name, "r", "--data", "before", "--count", "2",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let cpid = u64::from(consumer.pid());
    wait_until(&bus, "the consumer receive 2", |v| {
        v["subscribers"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["pid"] == cpid && s["received"] == 2))
    });
    remove_in_use(&bus);

    let out = tail.finish();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "shm-bus: tail: bus `{}` was removed (`shm-bus remove`) while in use",
            bus.name
        )),
        "{}",
        out.stderr
    );
    let out = consumer.finish();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("consume: bus"), "{}", out.stderr);
    assert!(out.stderr.contains("was removed"), "{}", out.stderr);
    // The summary still comes, with what was received.
    let v = out.json();
    assert_eq!(v["received"], 2, "{v}");
    assert_eq!(v["bus_removed"], true, "{v}");
}

#[test]
fn a_blocked_publish_ends_with_a_message_when_its_bus_is_removed() {
    let bus = TestBus::create("removed-publish", &["--ring-bytes", "4096"]);
    let stuck = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "120"]);
    wait_for_subscribers(&bus, 1);
    stuck.signal("-STOP");
    let (publisher, lines) =
        Proc::spawn_watching_stderr(&["publish", &bus.name, "p", "--count", "1000", "--json"]);
    wait_for_line(&lines, "ring is full");
    remove_in_use(&bus);
    let out = publisher.finish();
    stuck.signal("-CONT");
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "shm-bus: bus `{}` was removed (`shm-bus remove`) while publishing",
            bus.name
        )),
        "{}",
        out.stderr
    );
    let published = out.json()["published"].as_u64().unwrap();
    assert!(published > 0 && published < 1000, "{published}");
}

#[test]
fn tail_from_oldest_shows_what_the_history_kept() {
    let bus = TestBus::create("history", &["--ring-bytes", "64K", "--history", "16K"]);
    let info = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(info["config"]["history_bytes"], 16384);
    // 400 records of 96 bytes (38,400 bytes) before tail starts: the last
    // 16 KiB of them are history.
    let out = run(&["publish", &bus.name, "h", "--count", "400"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = Proc::spawn(&["tail", &bus.name, "--count", "5", "--json", "--from-oldest"]).finish();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let seqs: Vec<u64> = out
        .json_lines()
        .iter()
        .map(|v| v["sequence"].as_u64().expect("sequence"))
        .collect();
    assert_eq!(seqs.len(), 5, "{}", out.stdout);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // The oldest retained record starts a checkpointed 1 KiB chunk at most
    // 16 KiB back from the tail.
    let first_kept = (400 * 96 - 16 * 1024) / 96;
    assert!(
        (first_kept..first_kept + 12).contains(&seqs[0]),
        "history is the newest 16 KiB: {seqs:?}"
    );
    // A history that is not a multiple of 32 is bad input.
    let other = TestBus::new("bad-history");
    let out = run(&["create", &other.name, "--history", "100"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(!other.exists());
}
