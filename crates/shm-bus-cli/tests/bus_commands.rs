//! Drives the real `shm-bus` binary's bus-management commands (`create`,
//! `remove`, `list`, `inspect`, `gc`): JSON fields and exit codes as the
//! CLI contract says, and garbage collection after SIGKILLed processes.
//!
//! Every test uses its own bus name and removes the bus on drop; every
//! process runs under a watchdog. `gc` is only ever run on a named bus, so
//! these tests never touch buses of tests running in parallel.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::*;

/// Polls `inspect --json` until `ok` holds, panicking after the watchdog.
fn wait_for(bus: &TestBus, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let out = run(&["inspect", &bus.name, "--json"]);
        if out.code() == Some(0) {
            let v = out.json();
            if ok(&v) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "watchdog: never saw {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn alive_subscribers(v: &Value) -> usize {
    v["subscribers"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|s| s["alive"] == true).count())
}

/// The `list --json` entry of `bus`, if listed.
fn listed(bus: &TestBus) -> Option<Value> {
    let out = run(&["list", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    out.json()
        .as_array()
        .expect("list --json is an array")
        .iter()
        .find(|e| e["bus"] == bus.name.as_str())
        .cloned()
}

/// Starts a `consume` that runs until killed, and waits until it shows.
fn start_consumer(bus: &TestBus, subscribers_before: usize) -> Proc {
    let p = Proc::spawn(&["consume", &bus.name, "**", "--timeout", "120", "--json"]);
    wait_for(bus, "the consumer attach", |v| {
        alive_subscribers(v) == subscribers_before + 1
    });
    p
}

// ---------------------------------------------------------------- create

#[test]
fn create_then_inspect_json_has_the_contract_fields() {
    let bus = TestBus::new("inspect");
    let out = run(&[
        "create",
        &bus.name,
        "--ring-bytes",
        "65536",
        "--max-subscribers",
        "4",
        "--max-producers",
        "2",
        "--max-topics",
        "64",
        "--policy",
        "overwrite",
        "--mode",
        "640",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(bus.exists());

    let out = run(&["inspect", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["bus"], bus.name.as_str());
    assert_eq!(v["layout_version"], 1);
    assert!(v["segment_bytes"].as_u64().unwrap() > 65536 * 2);
    assert!(v["created_by_pid"].as_u64().unwrap() > 0);
    let created = v["created_at"].as_str().unwrap();
    assert_eq!(created.len(), "2026-01-01T00:00:00Z".len(), "{created}");
    assert!(
        created.ends_with('Z') && &created[10..11] == "T",
        "{created}"
    );
    let c = &v["config"];
    assert_eq!(c["ring_bytes"], 65536);
    assert_eq!(c["max_subscribers"], 4);
    assert_eq!(c["max_producers"], 2);
    assert_eq!(c["max_topics"], 64);
    assert_eq!(c["policy"], "overwrite");
    assert_eq!(c["mode"], "640");
    let a = &v["arena"];
    let (cap, used, free) = (
        a["capacity"].as_u64().unwrap(),
        a["used"].as_u64().unwrap(),
        a["free"].as_u64().unwrap(),
    );
    assert!(used > 0 && free > 0 && used + free <= cap, "{a}");
    assert_eq!(v["topics"], serde_json::json!([]));
    assert_eq!(v["producers"], serde_json::json!([]));
    assert_eq!(v["subscribers"], serde_json::json!([]));
    assert!(v["max_payload"].as_u64().unwrap() < 65536 / 2);

    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(bus.path()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o640);
}

#[test]
fn create_an_existing_bus_exits_1_and_keeps_it() {
    let bus = TestBus::new("exists");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let before = run(&["inspect", &bus.name, "--json"]).json();
    let out = run(&["create", &bus.name, "--ring-bytes", "8192"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    let after = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(before["created_at_ns"], after["created_at_ns"]);
    assert_eq!(after["config"]["ring_bytes"], 1 << 20);
}

#[test]
fn create_json_prints_the_bus_its_size_and_the_config_inspect_shows() {
    let bus = TestBus::new("create-json");
    let out = run(&[
        "create",
        &bus.name,
        "--ring-bytes",
        "64K",
        "--max-subscribers",
        "3",
        "--policy",
        "overwrite",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["bus"], bus.name.as_str());
    let info = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(v["segment_bytes"], info["segment_bytes"]);
    assert_eq!(v["config"], info["config"]);
    assert_eq!(v["config"]["ring_bytes"], 65536);
    assert_eq!(v["config"]["max_subscribers"], 3);
    assert_eq!(v["config"]["policy"], "overwrite");
    assert_eq!(v["max_payload"], 65536 / 2 - 32);
}

#[test]
fn create_prefault_maps_the_rings_and_the_bus_works() {
    let bus = TestBus::new("create-prefault");
    let out = run(&["create", &bus.name, "--prefault", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["prefaulted"], true);
    let out = run(&["publish", &bus.name, "t", "--count", "100"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run(&["create", &format!("{}-text", bus.name), "--prefault"]);
    let _ = run(&["remove", &format!("{}-text", bus.name), "--force"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("rings prefaulted"), "{}", out.stdout);
}

#[test]
fn create_with_bad_config_exits_2_and_creates_nothing() {
    let bus = TestBus::new("badcfg");
    for bad in [
        &["--ring-bytes", "1000"][..],
        &["--ring-bytes", "1024"],
        &["--max-subscribers", "0"],
        &["--max-producers", "65"],
        &["--mode", "9"],
        &["--mode", "1777"],
    ] {
        let mut args = vec!["create", bus.name.as_str()];
        args.extend_from_slice(bad);
        let out = run(&args);
        assert_eq!(out.code(), Some(2), "{bad:?}: {}", out.stderr);
        assert_eq!(out.stderr_lines(), 1, "{bad:?}: {}", out.stderr);
        assert!(!bus.exists(), "{bad:?} left a bus behind");
    }
    // A value clap itself rejects.
    let out = run(&["create", &bus.name, "--policy", "sometimes"]);
    assert_eq!(out.code(), Some(2));
    assert!(!bus.exists());
    // A name the OS cannot use.
    let out = run(&["create", "a/b"]);
    assert_eq!(out.code(), Some(2));
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
}

// ---------------------------------------------------------------- remove

#[test]
fn remove_deletes_the_segment_and_a_missing_bus_exits_1() {
    let bus = TestBus::new("remove");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let out = run(&["remove", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(!bus.exists());
    let out = run(&["remove", &bus.name]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
}

/// `pid` as a JSON number, for comparing with `"pid"` fields.
fn pid_json(p: &Proc) -> Value {
    Value::from(p.pid())
}

#[test]
fn remove_refuses_while_a_live_process_is_attached_and_force_removes_it() {
    let bus = TestBus::new("remove-live");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let consumer = start_consumer(&bus, 0);
    let pid = consumer.pid().to_string();

    let out = run(&["remove", &bus.name]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    for needle in [pid.as_str(), "shm-bus consume", "subscriber", "--force"] {
        assert!(
            out.stderr.contains(needle),
            "no {needle:?} in {}",
            out.stderr
        );
    }
    assert!(bus.exists(), "a refused remove keeps the bus");

    let out = run(&["remove", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["bus"], bus.name.as_str());
    assert_eq!(v["removed"], false);
    let attached = v["attached"].as_array().unwrap();
    assert_eq!(attached.len(), 1, "{v}");
    assert_eq!(attached[0]["pid"], pid_json(&consumer));
    assert_eq!(attached[0]["name"], "shm-bus consume");
    assert!(bus.exists());

    let out = run(&["remove", &bus.name, "--force", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["removed"], true);
    assert_eq!(v["attached"][0]["pid"], pid_json(&consumer));
    assert!(!bus.exists());
    // The consumer notices (BusRemoved) and ends instead of waiting out
    // its 120 s timeout; `finish` panics if it hangs past the watchdog.
    let started = Instant::now();
    let out = consumer.finish();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the consumer took {:?} to notice",
        started.elapsed()
    );
    assert!(out.stderr.contains("removed"), "{}", out.stderr);
}

#[test]
fn remove_of_a_bus_whose_attached_processes_all_died_needs_no_force() {
    let bus = TestBus::new("remove-dead");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    start_consumer(&bus, 0).kill9();
    let out = run(&["remove", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["removed"], true);
    assert_eq!(v["attached"], serde_json::json!([]));
    assert!(!bus.exists());
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_an_unknown_bus_exits_1_with_one_line() {
    let bus = TestBus::new("unknown");
    let out = run(&["inspect", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&bus.name), "{}", out.stderr);
    assert!(!bus.exists(), "inspect must not create");
}

#[test]
fn inspect_a_damaged_segment_exits_1_with_the_typed_error() {
    let bus = TestBus::new("damaged");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(bus.path())
            .unwrap();
        f.write_all_at(b"NOT-A-BUS", 0).unwrap(); // the magic
    }
    let out = run(&["inspect", &bus.name]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("corrupt"), "{}", out.stderr);

    let entry = listed(&bus).expect("a damaged bus is still listed");
    assert_eq!(entry["healthy"], false);
    assert!(
        entry["error"].as_str().unwrap().contains("corrupt"),
        "{entry}"
    );

    let out = run(&["gc", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.json()["removed_segments"],
        serde_json::json!([bus.name])
    );
    assert!(!bus.exists());
}

#[test]
fn inspect_human_output_has_every_section() {
    let bus = TestBus::new("human");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let out = run(&[
        "publish", &bus.name, "h.{i}", "--topics", "2", "--count", "4",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let consumer = start_consumer(&bus, 0);
    let out = run(&["inspect", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    for needle in [
        bus.name.as_str(),
        "segment",
        "created",
        "policy block",
        "arena",
        "topics: 2",
        "h.0",
        "h.1",
        "producers:",
        "PUBLISHED",
        "detached",
        "subscribers: 1",
        "shm-bus consume",
        "LAST ACTIVE",
        "s ago",
    ] {
        assert!(
            out.stdout.contains(needle),
            "no {needle:?} in:\n{}",
            out.stdout
        );
    }
    drop(consumer);
}

#[test]
fn inspect_marks_the_stalled_subscriber_that_holds_the_ring_back() {
    let bus = TestBus::create("holding", &["--ring-bytes", "64K"]);
    let stalled = start_consumer(&bus, 0);
    let reader = Proc::spawn(&[
        "consume",
        &bus.name,
        "**",
        "--timeout",
        "120",
        "--name",
        "reader",
    ]);
    wait_for(&bus, "the reader attach", |v| alive_subscribers(v) == 2);
    let v = run(&["inspect", &bus.name, "--json"]).json();
    for s in v["subscribers"].as_array().unwrap() {
        assert_eq!(s["holding_back"], false, "nothing published yet: {s}");
    }

    stalled.signal("-STOP");
    let out = run(&[
        "publish",
        &bus.name,
        "t",
        "--count",
        "1000",
        "--size",
        "1K",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.code(), Some(1), "the ring must fill up: {}", out.stderr);

    let v = wait_for(&bus, "the reader catch up", |v| {
        v["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "reader" && s["lag_bytes"] == 0)
    });
    let subs = v["subscribers"].as_array().unwrap();
    let of = |p: &Proc| {
        subs.iter()
            .find(|s| s["pid"] == pid_json(p))
            .unwrap_or_else(|| panic!("pid {} not in {v}", p.pid()))
    };
    assert_eq!(of(&stalled)["holding_back"], true, "{v}");
    assert!(
        of(&stalled)["lag_bytes"].as_u64().unwrap() >= 32 * 1024,
        "{v}"
    );
    assert_eq!(of(&reader)["holding_back"], false, "{v}");

    let out = run(&["inspect", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains(&format!(" {} ", stalled.pid())))
        .unwrap_or_else(|| panic!("no row for the stalled pid in:\n{}", out.stdout));
    assert!(row.contains("HOLDING BACK"), "{row}");
    assert_eq!(
        out.stdout.matches("HOLDING BACK").count(),
        1,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("holds the"), "{}", out.stdout);

    stalled.signal("-CONT");
}

#[test]
fn inspect_marks_nobody_under_the_overwrite_policy() {
    let bus = TestBus::create(
        "holding-overwrite",
        &["--ring-bytes", "64K", "--policy", "overwrite"],
    );
    let stalled = start_consumer(&bus, 0);
    stalled.signal("-STOP");
    let out = run(&["publish", &bus.name, "t", "--count", "200", "--size", "1K"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = run(&["inspect", &bus.name, "--json"]).json();
    let s = &v["subscribers"][0];
    assert!(s["lag_bytes"].as_u64().unwrap() >= 32 * 1024, "{v}");
    assert_eq!(s["holding_back"], false, "{v}");
    assert!(!run(&["inspect", &bus.name]).stdout.contains("HOLDING BACK"));
    stalled.signal("-CONT");
}

// ---------------------------------------------------------------- list

#[test]
fn list_json_counts_attached_processes_and_health() {
    let bus = TestBus::new("list");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let e = listed(&bus).expect("listed");
    assert_eq!(e["producers"], 0);
    assert_eq!(e["subscribers"], 0);
    assert_eq!(e["healthy"], true);
    let size = run(&["inspect", &bus.name, "--json"]).json()["segment_bytes"].clone();
    assert_eq!(e["segment_bytes"], size);

    let consumer = start_consumer(&bus, 0);
    let e = listed(&bus).expect("listed");
    assert_eq!(e["subscribers"], 1);
    assert_eq!(e["healthy"], true);

    consumer.kill9();
    let e = listed(&bus).expect("listed");
    assert_eq!(
        e["subscribers"], 1,
        "a dead, unreaped subscriber still counts"
    );
    assert_eq!(e["healthy"], false);

    let out = run(&["list"]);
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout.contains(&bus.name), "{}", out.stdout);
}

// ---------------------------------------------------------------- gc

#[test]
fn gc_reaps_a_sigkilled_consumer_and_keeps_a_bus_still_in_use() {
    let bus = TestBus::new("gc-reap");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let survivor = start_consumer(&bus, 0);
    let victim = start_consumer(&bus, 1);
    let victim_pid = victim.pid();
    victim.kill9();

    let out = run(&["gc", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert!(v["reaped_subscribers"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["reaped_producers"], 0);
    assert_eq!(v["removed_segments"], serde_json::json!([]));
    assert!(bus.exists());

    let v = run(&["inspect", &bus.name, "--json"]).json();
    let pids: Vec<u64> = v["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, vec![u64::from(survivor.pid())]);
    assert!(!pids.contains(&u64::from(victim_pid)));
}

#[test]
fn gc_removes_a_bus_whose_only_attached_process_was_sigkilled() {
    let bus = TestBus::new("gc-orphan");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    start_consumer(&bus, 0).kill9();
    let out = run(&["gc", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["reaped_subscribers"], 1);
    assert_eq!(v["removed_segments"], serde_json::json!([bus.name]));
    assert!(!bus.exists());
}

#[test]
fn gc_hint_and_output_say_only_the_dead_slot_goes_while_someone_lives() {
    let bus = TestBus::new("gc-words-slot");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let _survivor = start_consumer(&bus, 0);
    start_consumer(&bus, 1).kill9();

    let out = run(&["inspect", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let hint = out
        .stdout
        .lines()
        .find(|l| l.contains("shm-bus gc"))
        .unwrap_or_else(|| panic!("no gc hint in:\n{}", out.stdout));
    assert!(hint.contains("1 slot(s) held by dead processes"), "{hint}");
    assert!(hint.contains("frees those slots only"), "{hint}");
    assert!(hint.contains("the bus stays"), "{hint}");
    assert!(!hint.contains("removes"), "{hint}");

    let out = run(&["gc", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("freed 1 dead subscriber slot and 0 dead producer slots"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("bus kept (1 live process(es) attached)"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("removed the whole bus"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("removed 0 whole bus(es)"),
        "{}",
        out.stdout
    );
    assert!(bus.exists());
    let v = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(v["subscribers"].as_array().unwrap().len(), 1, "{v}");
}

#[test]
fn gc_hint_and_output_say_the_whole_bus_goes_when_nobody_lives() {
    let bus = TestBus::new("gc-words-bus");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    start_consumer(&bus, 0).kill9();

    let out = run(&["inspect", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let hint = out
        .stdout
        .lines()
        .find(|l| l.contains("shm-bus gc"))
        .unwrap_or_else(|| panic!("no gc hint in:\n{}", out.stdout));
    assert!(hint.contains("no live process attached"), "{hint}");
    assert!(hint.contains("removes the whole bus"), "{hint}");
    assert!(!hint.contains("frees those slots only"), "{hint}");

    let out = run(&["gc", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(
            "freed 1 dead subscriber slot and 0 dead producer slots, then removed the whole bus"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("every attached process died"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("removed 1 whole bus(es)"),
        "{}",
        out.stdout
    );
    assert!(!bus.exists());
}

#[test]
fn gc_removes_an_idle_bus_only_with_all_unused_and_never_one_in_use() {
    let bus = TestBus::new("gc-idle");
    assert_eq!(run(&["create", &bus.name]).code(), Some(0));
    let out = run(&["gc", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["removed_segments"], serde_json::json!([]));
    assert!(bus.exists(), "nobody died: plain gc keeps an idle bus");

    let consumer = start_consumer(&bus, 0);
    let out = run(&["gc", &bus.name, "--all-unused", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["removed_segments"], serde_json::json!([]));
    assert!(bus.exists(), "a live subscriber keeps the bus");
    drop(consumer); // SIGKILL

    let out = run(&["gc", &bus.name, "--all-unused"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("removed"), "{}", out.stdout);
    assert!(!bus.exists());
}

#[test]
fn gc_removes_a_truncated_segment_but_leaves_one_of_another_version() {
    let truncated = TestBus::new("gc-truncated");
    std::fs::write(truncated.path(), [0u8; 100]).unwrap();
    let out = run(&["gc", &truncated.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(
        out.json()["removed_segments"],
        serde_json::json!([truncated.name])
    );
    assert!(!truncated.exists());

    let other = TestBus::new("gc-version");
    assert_eq!(run(&["create", &other.name]).code(), Some(0));
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(other.path())
            .unwrap();
        f.write_all_at(&99u32.to_le_bytes(), 8).unwrap(); // layout version
    }
    let out = run(&["gc", &other.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["removed_segments"], serde_json::json!([]));
    assert_eq!(v["skipped"][0]["bus"], other.name.as_str());
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("version"),
        "{v}"
    );
    assert!(other.exists(), "another build's bus is not ours to remove");
}

#[test]
fn gc_of_an_unknown_bus_exits_1() {
    let bus = TestBus::new("gc-unknown");
    let out = run(&["gc", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr_lines(), 1, "{}", out.stderr);
}

// ---------------------------------------------------------------- usage

#[test]
fn bad_flags_and_missing_arguments_exit_2() {
    for args in [
        &["list", "--bogus"][..],
        &["inspect"],
        &["gc", "--json", "--nope"],
        &["create"],
        &["remove"],
    ] {
        let out = run(args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn sizes_take_suffixes_and_a_negative_size_is_refused_as_such() {
    let bus = TestBus::create("suffix", &["--ring-bytes", "64K"]);
    let info = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(info["config"]["ring_bytes"], 65536);
    let out = run(&["publish", &bus.name, "t", "--size", "1K", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["bytes"], 1024);
    let other = TestBus::new("negative");
    for flags in [&["--ring-bytes", "-5"][..], &["--ring-bytes", "0"]] {
        let mut args = vec!["create", other.name.as_str()];
        args.extend_from_slice(flags);
        let out = run(&args);
        assert_eq!(out.code(), Some(2), "{flags:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("a size must be positive"),
            "{flags:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("unexpected argument"),
            "{}",
            out.stderr
        );
        assert!(!other.exists());
    }
}
