//! Runs every example as a user would, in real processes: two workers with
//! different patterns, then the producer; and the quick start.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where cargo put the example binaries (built by `cargo test`).
fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples").join(name)
}

struct BusGuard(String);

impl Drop for BusGuard {
    fn drop(&mut self) {
        let _ = shm_bus::Bus::remove(&self.0);
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the child's exit (watchdog: killed past the deadline) and
/// returns its stdout.
fn finish(mut child: Kill, deadline: Instant) -> String {
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut out = String::new();
            if let Some(mut s) = child.0.stdout.take() {
                std::io::Read::read_to_string(&mut s, &mut out).unwrap();
            }
            assert!(status.success(), "example failed: {status}\n{out}");
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: example did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn producer_and_workers_in_separate_processes() {
    let bus = format!("ex-{}", std::process::id());
    let _guard = BusGuard(bus.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut workers = Vec::new();
    for patterns in [vec!["md.{venue}.AAPL.trade"], vec!["md.XNYS.**"]] {
        let mut child = Command::new(example("worker"))
            .arg(&bus)
            .args(&patterns)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the worker example");
        // Wait for READY on a line of its own.
        let stdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("READY"), "{line}");
        workers.push((Kill(child), reader));
    }
    let producer = Command::new(example("producer"))
        .args([&bus, "3000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the producer example");
    assert!(finish(Kill(producer), deadline).contains("published 3000 ticks"));
    // 3000 ticks round-robin over 6 topics: AAPL on two venues = 1000,
    // XNYS's three symbols = 1500.
    for ((child, mut reader), want) in workers.into_iter().zip([1000, 1500]) {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut reader, &mut out).unwrap();
        finish(child, deadline);
        assert!(out.contains(&format!("TOTAL {want}")), "{out}");
    }
}

#[test]
fn quickstart_runs() {
    let child = Command::new(example("quickstart"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the quickstart example");
    let out = finish(Kill(child), Instant::now() + Duration::from_secs(60));
    assert!(
        out.contains("handler: topic=realtime.600010.trade ticker=600010"),
        "{out}"
    );
    assert!(
        out.contains("handler: topic=realtime.600519.quote ticker=600519"),
        "{out}"
    );
    assert!(
        !out.contains("depth"),
        "non-matching events are not delivered: {out}"
    );
    assert!(out.contains("stats: print called 2 times"), "{out}");
}

#[test]
fn spans_example_times_a_child_span_and_sees_it_die() {
    let child = Command::new(example("spans"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the spans example");
    let out = finish(Kill(child), Instant::now() + Duration::from_secs(60));
    assert!(out.contains("timed the child's span"), "{out}");
    assert!(out.contains("Start subscriber `child-worker`"), "{out}");
    assert!(out.contains("End subscriber `child-worker`"), "{out}");
    assert!(out.contains("died"), "{out}");
}

#[test]
fn the_readme_programs_are_the_example_files_and_run() {
    // Every Rust block of the README is one of examples/readme_*.rs, whole.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read the README");
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "```rust" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            blocks.push(block.join("\n") + "\n");
        }
    }
    assert!(!blocks.is_empty(), "the README shows Rust programs");
    for block in &blocks {
        let matches = ["readme_pubsub", "readme_engine", "readme_group"]
            .iter()
            .any(|name| {
                let path = format!("{}/examples/{name}.rs", env!("CARGO_MANIFEST_DIR"));
                std::fs::read_to_string(path).unwrap() == *block
            });
        assert!(
            matches,
            "a README block is not an example file, verbatim:\n{block}"
        );
    }

    // readme_engine prints what its handler saw.
    let child = Command::new(example("readme_engine"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("run readme_engine");
    let out = finish(Kill(child), Instant::now() + Duration::from_secs(60));
    assert!(
        out.contains("md.XNAS.AAPL.trade: venue XNAS, trade at 189.98"),
        "{out}"
    );
    assert!(out.contains("2 events dispatched"), "{out}");

    // readme_pubsub: the worker first, then the producer, which removes
    // the bus; the worker prints the three trades and ends.
    let bus = format!("ex-readme-{}", std::process::id());
    let _guard = BusGuard(bus.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut worker = Command::new(example("readme_pubsub"))
        .args(["worker", &bus])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run readme_pubsub worker");
    let mut reader = BufReader::new(worker.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("worker: waiting"), "{line}");
    let producer = Command::new(example("readme_pubsub"))
        .args(["producer", &bus])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run readme_pubsub producer");
    finish(Kill(producer), deadline);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut reader, &mut out).unwrap();
    finish(Kill(worker), deadline);
    for price in ["189.98", "190.02", "190.05"] {
        assert!(
            out.contains(&format!("md.XNAS.AAPL.trade on XNAS: {price}")),
            "{out}"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/dev/shm/shm-bus.{bus}")).exists(),
        "the producer removed the bus"
    );
}

#[test]
fn the_readme_group_program_splits_the_jobs_between_its_workers() {
    let bus = format!("ex-group-{}", std::process::id());
    let _guard = BusGuard(bus.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let mut w = Command::new(example("readme_group"))
            .args(["worker", name, &bus])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run readme_group worker");
        let mut reader = BufReader::new(w.stdout.take().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("waiting for jobs"), "{line}");
        workers.push((Kill(w), reader));
    }
    let producer = Command::new(example("readme_group"))
        .args(["producer", "-", &bus])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run readme_group producer");
    finish(Kill(producer), deadline);
    let mut total = 0;
    for (w, mut reader) in workers {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut reader, &mut out).unwrap();
        finish(w, deadline);
        let n: u32 = out
            .split("handled ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no share printed: {out}"));
        total += n;
    }
    assert_eq!(total, 1000, "each job handled by exactly one worker");
}
