//! Worker groups through the real `shm-bus` binary, across processes:
//! `consume --group` members splitting a known count exactly, the groups
//! of `inspect` (`--json` and the table), `group list`, `top --once
//! --json`, `group remove` with and without `--force`, `gc` reaping a
//! SIGKILLed member's slot, `remove` counting live members, `demo
//! --group`, `create --max-groups/--max-group-members`, `bench group`,
//! and bad input.
//!
//! Every test uses its own bus (removed on drop, even on failure); every
//! process runs under a watchdog; no test asserts a maximum runtime.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::*;

/// Polls `inspect --json` until `ok` holds, panicking after the watchdog.
fn wait_until(bus: &TestBus, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
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

/// The group named `name` in an `inspect --json` document.
fn group<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["groups"].as_array()?.iter().find(|g| g["name"] == name)
}

/// Live members of group `name`.
fn live_members(v: &Value, name: &str) -> usize {
    group(v, name)
        .and_then(|g| g["members"].as_array())
        .map_or(0, |m| m.iter().filter(|m| m["alive"] == true).count())
}

/// Starts `consume BUS PATTERNS --group GROUP --name NAME` (long silence
/// timeout) and waits until the group shows `live_after` live members.
fn start_member(
    bus: &TestBus,
    group_name: &str,
    name: &str,
    patterns: &[&str],
    live_after: usize,
) -> Proc {
    let mut args = vec!["consume", bus.name.as_str()];
    args.extend_from_slice(patterns);
    args.extend_from_slice(&[
        "--group",
        group_name,
        "--name",
        name,
        "--timeout",
        "120",
        "--json",
    ]);
    let p = Proc::spawn(&args);
    wait_until(
        bus,
        &format!("{live_after} live member(s) of {group_name}"),
        |v| live_members(v, group_name) == live_after,
    );
    p
}

fn line_count(s: &str) -> usize {
    s.lines().filter(|l| !l.trim().is_empty()).count()
}

// ---------------------------------------------------------------- consume

#[test]
fn two_consume_members_split_a_known_count_exactly() {
    let bus = TestBus::create("split", &[]);
    // The first member creates the group with its pattern; the second
    // takes the group's patterns (none given).
    let a = Proc::spawn(&[
        "consume",
        &bus.name,
        "job.{kind}",
        "--group",
        "workers",
        "--name",
        "worker-a",
        "--timeout",
        "3",
        "--json",
    ]);
    wait_until(&bus, "the first member", |v| {
        live_members(v, "workers") == 1
    });
    let b = Proc::spawn(&[
        "consume",
        &bus.name,
        "--group",
        "workers",
        "--name",
        "worker-b",
        "--timeout",
        "3",
        "--json",
        "--claim-batch",
        "4",
    ]);
    wait_until(&bus, "both members", |v| live_members(v, "workers") == 2);

    // Paced, so that both members are awake for some of it.
    let out = run(&[
        "publish", &bus.name, "job.{i}", "--topics", "3", "--count", "2000", "--rate", "4000",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()["published"], 2000);

    let (a, b) = (a.finish(), b.finish());
    let mut total = 0;
    for (who, out) in [("a", &a), ("b", &b)] {
        assert_eq!(out.code(), Some(0), "member {who}: {}", out.stderr);
        let v = out.json();
        let got = v["received"].as_u64().unwrap();
        assert!(got > 0, "member {who} got nothing: {v}");
        total += got;
        assert_eq!(v["group"], "workers", "{v}");
        assert_eq!(v["redelivered"], 0, "{v}");
        assert_eq!(v["duplicates"], 0, "{v}");
        assert_eq!(v["corrupt"], 0, "{v}");
        assert_eq!(
            v["gaps"],
            Value::Null,
            "a share has no meaningful gaps: {v}"
        );
        assert_eq!(v["topic_gaps"], Value::Null, "{v}");
        assert_eq!(v["group_removed"], false, "{v}");
    }
    assert_eq!(
        total, 2000,
        "the members' shares add up to what was published"
    );

    // The group stays, with its counters, after its members left.
    let v = run(&["inspect", &bus.name, "--json"]).json();
    let g = group(&v, "workers").unwrap_or_else(|| panic!("no group in {v}"));
    assert_eq!(g["done"], 2000, "{g}");
    assert_eq!(g["lost"], 0, "{g}");
    assert_eq!(g["backlog"], 0, "{g}");
    assert_eq!(g["patterns"], serde_json::json!(["job.{kind}"]), "{g}");
}

#[test]
fn consume_group_says_what_is_wrong_and_exits_with_the_right_code() {
    let bus = TestBus::create("consume-bad", &[]);
    // No pattern, no group: usage error.
    let out = run(&["consume", &bus.name]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    // Group options without --group.
    let out = run(&["consume", &bus.name, "x", "--group-mode", "at-most-once"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
    // Bad group name, bad claim batch, bad mode.
    for args in [
        vec!["consume", &bus.name, "x", "--group", "no spaces"],
        vec![
            "consume",
            &bus.name,
            "x",
            "--group",
            "g",
            "--claim-batch",
            "0",
        ],
        vec![
            "consume",
            &bus.name,
            "x",
            "--group",
            "g",
            "--group-mode",
            "sometimes",
        ],
    ] {
        let out = run(&args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert_eq!(line_count(&out.stderr), 1, "{args:?}: {}", out.stderr);
    }
    // Taking the patterns of a group that does not exist.
    let out = run(&["consume", &bus.name, "--group", "ghost", "--timeout", "0.1"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("worker group `ghost` does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);

    // A group exists with `a.**`: other patterns are refused (exit 2), its
    // own (or none) are taken; another mode is refused too.
    let _m = start_member(&bus, "g", "first", &["a.**"], 1);
    let out = run(&[
        "consume",
        &bus.name,
        "b.**",
        "--group",
        "g",
        "--timeout",
        "0.1",
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("a.**"),
        "names the group's patterns: {}",
        out.stderr
    );
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
    let out = run(&[
        "consume",
        &bus.name,
        "--group",
        "g",
        "--group-mode",
        "at-most-once",
        "--timeout",
        "0.1",
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("at-least-once"), "{}", out.stderr);
    // Joining with none, after the first member took what was published:
    // nothing comes, and the hint speaks of shares.
    let out = run(&["publish", &bus.name, "a.x"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    wait_until(&bus, "the event done", |v| {
        group(v, "g").is_some_and(|g| g["done"] == 1)
    });
    let out = run(&["consume", &bus.name, "--group", "g", "--timeout", "0.2"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("share"), "{}", out.stderr);
    assert!(out.stdout.contains("worker group `g`"), "{}", out.stdout);
}

// ---------------------------------------------------------------- inspect, list, top

#[test]
fn inspect_group_list_and_top_show_the_group_and_its_members() {
    let bus = TestBus::create("inspect", &[]);
    let m1 = start_member(&bus, "fills", "fill-1", &["orders.{venue}.fill"], 1);
    let m2 = start_member(&bus, "fills", "fill-2", &[], 2);
    let out = run(&["publish", &bus.name, "orders.X.fill", "--count", "10"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = wait_until(&bus, "10 events done", |v| {
        group(v, "fills").is_some_and(|g| g["done"] == 10)
    });

    let g = group(&v, "fills").unwrap();
    for key in [
        "name",
        "members",
        "redelivered",
        "lost",
        "backlog",
        "mode",
        "patterns",
        "lagged",
        "claims",
        "claimed",
        "done",
        "removing",
        "live_members",
        "stalled",
    ] {
        assert!(g.get(key).is_some(), "no {key:?} in {g}");
    }
    assert_eq!(g["mode"], "at-least-once");
    assert_eq!(g["patterns"], serde_json::json!(["orders.{venue}.fill"]));
    assert_eq!(g["redelivered"], 0);
    assert_eq!(g["lost"], 0);
    assert_eq!(g["backlog"], 0);
    assert_eq!(g["live_members"], 2);
    let members = g["members"].as_array().unwrap();
    let mut pids: Vec<u64> = members.iter().map(|m| m["pid"].as_u64().unwrap()).collect();
    pids.sort_unstable();
    let mut want = vec![u64::from(m1.pid()), u64::from(m2.pid())];
    want.sort_unstable();
    assert_eq!(pids, want);
    let mut done = 0;
    for m in members {
        for key in ["pid", "name", "alive", "claimed", "done", "adopted", "busy"] {
            assert!(m.get(key).is_some(), "no {key:?} in {m}");
        }
        assert_eq!(m["alive"], true);
        done += m["done"].as_u64().unwrap();
    }
    assert_eq!(done, 10);
    assert_eq!(v["config"]["max_groups"], 8);
    assert_eq!(v["config"]["max_group_members"], 16);

    let out = run(&["inspect", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("worker groups: 1 of 8 slots"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("8 worker groups of up to 16 members"),
        "{}",
        out.stdout
    );
    let row = out
        .stdout
        .lines()
        .find(|l| l.contains("fills"))
        .unwrap_or_else(|| panic!("no group row in {}", out.stdout));
    assert!(
        row.contains("2 live") && row.contains("orders.{venue}.fill"),
        "{row}"
    );
    assert!(
        out.stdout.contains("fill-1") && out.stdout.contains("fill-2"),
        "{}",
        out.stdout
    );

    let out = run(&["group", "list", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json()[0]["name"], "fills");
    let out = run(&["group", "list", &bus.name]);
    assert!(out.stdout.contains("fill-2"), "{}", out.stdout);

    let out = run(&["top", &bus.name, "--once", "--json", "--interval", "100ms"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let t = out.json();
    let g = &t["groups"][0];
    assert_eq!(g["name"], "fills", "{t}");
    assert_eq!(g["members"].as_array().unwrap().len(), 2, "{t}");
    for key in [
        "claimed_per_sec",
        "done_per_sec",
        "backlog",
        "redelivered",
        "lost",
    ] {
        assert!(g.get(key).is_some(), "no {key:?} in {g}");
    }
    let out = run(&["top", &bus.name, "--once", "--interval", "100ms"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("worker groups (1)"), "{}", out.stdout);
    assert!(out.stdout.contains("fill-1"), "{}", out.stdout);
}

#[test]
fn a_group_without_members_and_with_work_waiting_is_shown_stalled() {
    let bus = TestBus::create("stalled", &[]);
    // The member leaves at once; the group stays, then events come.
    let out = run(&[
        "consume",
        &bus.name,
        "s.**",
        "--group",
        "idle",
        "--timeout",
        "0.1",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run(&["publish", &bus.name, "s.x", "--count", "3"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = run(&["inspect", &bus.name, "--json"]).json();
    let g = group(&v, "idle").unwrap();
    assert_eq!(g["backlog"], 3, "{g}");
    assert_eq!(g["stalled"], true, "{g}");
    let out = run(&["inspect", &bus.name]);
    assert!(out.stdout.contains("STALLED"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains(&format!("shm-bus group remove {} idle", bus.name)),
        "{}",
        out.stdout
    );
}

// ---------------------------------------------------------------- group remove

#[test]
fn group_remove_refuses_live_members_unless_forced() {
    let bus = TestBus::create("remove", &[]);
    let member = start_member(&bus, "jobs", "job-worker", &["job.**"], 1);
    let pid = u64::from(member.pid());

    let out = run(&["group", "remove", &bus.name, "jobs"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("pid {pid}")), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);

    let out = run(&["group", "remove", &bus.name, "jobs", "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["bus"], bus.name.as_str());
    assert_eq!(v["group"], "jobs");
    assert_eq!(v["removed"], false);
    assert_eq!(v["in_use"], serde_json::json!([pid]));
    assert_eq!(v["evicted"], serde_json::json!([]));

    let out = run(&["group", "remove", &bus.name, "jobs", "--force", "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["removed"], true);
    assert_eq!(v["evicted"], serde_json::json!([pid]));
    assert_eq!(v["in_use"], serde_json::json!([]));

    // The evicted member ends with its summary and one clear line.
    let out = member.finish();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(out.json()["group_removed"], true);
    assert!(
        out.stderr.contains("worker group `jobs` was removed"),
        "{}",
        out.stderr
    );
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);

    // Gone: an unknown group is exit 1 with one line.
    let out = run(&["group", "remove", &bus.name, "jobs"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("worker group `jobs` does not exist"),
        "{}",
        out.stderr
    );
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);

    // A group without live members goes without --force.
    let out = run(&[
        "consume",
        &bus.name,
        "t.**",
        "--group",
        "quiet",
        "--timeout",
        "0.1",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = run(&["group", "remove", &bus.name, "quiet"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("removed worker group `quiet`"),
        "{}",
        out.stdout
    );
    let v = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(v["groups"], serde_json::json!([]), "{v}");

    // Bad input and a missing bus.
    let out = run(&["group", "remove", &bus.name, "bad name"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
    let out = run(&["group", "remove", "cli-no-such-bus-for-groups", "jobs"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
}

// ---------------------------------------------------------------- gc, remove

#[test]
fn gc_reaps_a_killed_members_slot_and_remove_counts_live_members() {
    let bus = TestBus::create("gc", &[]);
    // The survivor is in another group: a live member of the victim's own
    // group would adopt (and free) the dead slot by itself.
    let survivor = start_member(&bus, "keep", "survivor", &["k.**"], 1);
    let victim = start_member(&bus, "crew", "victim", &["w.**"], 1);
    let victim_pid = u64::from(victim.pid());
    // Idle (nothing published): the victim holds no unfinished events.
    victim.kill9();
    let v = wait_until(&bus, "a dead member", |v| live_members(v, "crew") == 0);
    let g = group(&v, "crew").unwrap();
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{g}");
    assert_eq!(members[0]["alive"], false, "{g}");
    assert_eq!(members[0]["pid"], victim_pid);
    let out = run(&["inspect", &bus.name]);
    assert!(out.stdout.contains("DEAD"), "{}", out.stdout);
    assert!(
        out.stdout.contains("1 slot(s) held by dead processes"),
        "{}",
        out.stdout
    );

    let out = run(&["gc", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["reaped_group_members"], 1, "{v}");
    assert_eq!(v["removed_segments"], serde_json::json!([]), "{v}");
    assert!(bus.exists(), "a live member keeps the bus");
    let v = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(
        group(&v, "crew").unwrap()["members"],
        serde_json::json!([]),
        "{v}"
    );
    let keep = group(&v, "keep").unwrap()["members"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(keep[0]["pid"], u64::from(survivor.pid()));

    // The human lines say it too.
    let second = start_member(&bus, "crew", "second", &[], 1);
    second.kill9();
    wait_until(&bus, "a dead member again", |v| {
        live_members(v, "crew") == 0
    });
    let out = run(&["gc", &bus.name]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("1 dead group member slot"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("bus kept (1 live process(es) attached)"),
        "{}",
        out.stdout
    );

    // `remove` counts the live member as attached.
    let out = run(&["remove", &bus.name, "--json"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["removed"], false);
    assert_eq!(v["attached"][0]["role"], "group member", "{v}");
    assert_eq!(v["attached"][0]["group"], "keep", "{v}");
    assert_eq!(v["attached"][0]["pid"], u64::from(survivor.pid()), "{v}");
    assert!(
        out.stderr.contains("group member of `keep`"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- demo

#[test]
fn demo_group_splits_every_event_exactly_once() {
    let out = run(&[
        "demo",
        "--group",
        "--workers",
        "3",
        "--events",
        "30000",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["events"], 30000, "{v}");
    assert_eq!(v["delivered"], 30000, "{v}");
    assert_eq!(v["lost"], 0, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["corrupt"], 0, "{v}");
    assert_eq!(v["group"]["split_exact"], true, "{v}");
    assert_eq!(v["group"]["done"], 30000, "{v}");
    let rows = v["per_worker"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let sum: u64 = rows.iter().map(|r| r["received"].as_u64().unwrap()).sum();
    assert_eq!(sum, 30000);

    let out = run(&["demo", "--group", "--workers", "2", "--events", "5000"]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("delivered 5000, lost 0, duplicates 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("exactly the published events"),
        "{}",
        out.stdout
    );

    let out = run(&["demo", "--claim-batch", "4"]);
    assert_eq!(
        out.code(),
        Some(2),
        "--claim-batch needs --group: {}",
        out.stderr
    );
}

// ---------------------------------------------------------------- create

#[test]
fn create_sets_the_group_capacity() {
    let bus = TestBus::new("capacity");
    let out = run(&[
        "create",
        &bus.name,
        "--max-groups",
        "1",
        "--max-group-members",
        "2",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    assert_eq!(v["config"]["max_groups"], 1);
    assert_eq!(v["config"]["max_group_members"], 2);
    let info = run(&["inspect", &bus.name, "--json"]).json();
    assert_eq!(info["config"], v["config"]);

    let _a = start_member(&bus, "only", "a", &["x.**"], 1);
    let _b = start_member(&bus, "only", "b", &[], 2);
    // A third member: the group is full.
    let out = run(&["consume", &bus.name, "--group", "only", "--timeout", "0.1"]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("full"), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
    // A second group: no slot left.
    let out = run(&[
        "consume",
        &bus.name,
        "y",
        "--group",
        "other",
        "--timeout",
        "0.1",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("max-groups"), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);

    for flags in [["--max-groups", "65"], ["--max-group-members", "0"]] {
        let other = TestBus::new("capacity-bad");
        let mut args = vec!["create", other.name.as_str()];
        args.extend_from_slice(&flags);
        let out = run(&args);
        assert_eq!(out.code(), Some(2), "{flags:?}: {}", out.stderr);
        assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
        assert!(!other.exists());
    }
    // No groups at all.
    let none = TestBus::create("capacity-none", &["--max-groups", "0"]);
    let out = run(&[
        "consume",
        &none.name,
        "y",
        "--group",
        "g",
        "--timeout",
        "0.1",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
}

// ---------------------------------------------------------------- bench

#[test]
fn bench_group_reports_both_sides_of_every_round() {
    let out = run(&[
        "bench",
        "group",
        "--members",
        "2",
        "--work-ns",
        "0",
        "--count",
        "3000",
        "--rounds",
        "2",
        "--json",
    ]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let v = out.json();
    for key in [
        "members",
        "work_ns",
        "count",
        "size",
        "group_msgs_per_sec",
        "plain_msgs_per_sec",
        "ratio",
        "rounds",
        "overhead_ns_per_event",
    ] {
        assert!(v.get(key).is_some(), "no {key:?} in {v}");
    }
    assert_eq!(v["members"], 2);
    assert_eq!(v["count"], 3000);
    let rounds = v["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[0]["first"], "group");
    assert_eq!(rounds[1]["first"], "plain");
    for r in rounds {
        assert!(r["group_msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["plain_msgs_per_sec"].as_f64().unwrap() > 0.0, "{r}");
    }
    let out = run(&["bench", "group", "--members", "0"]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert_eq!(line_count(&out.stderr), 1, "{}", out.stderr);
}
