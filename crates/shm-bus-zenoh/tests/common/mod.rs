//! The harness of the bridge's multi-process tests: unique bus names
//! removed on drop, free loopback ports, child processes (the bridge and
//! the test peers) whose output is drained for their whole life, killed
//! when dropped, and waited on with a watchdog.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shm_bus_core::{Bus, BusConfig};
use shm_bus_topic::Topic;

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_shm-bus-zenoh");
pub const PEER: &str = env!("CARGO_BIN_EXE_shm-bus-zenoh-peer");

/// Removes the bus when dropped (also when the test panics).
pub struct BusGuard(pub String);

impl Drop for BusGuard {
    fn drop(&mut self) {
        let _ = Bus::remove(&self.0);
    }
}

/// A fresh bus with a unique name (4 MiB rings, 64 producers).
pub fn bus(tag: &str) -> BusGuard {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "zb-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let _ = Bus::remove(&name);
    Bus::create(
        &name,
        BusConfig::default()
            .with_ring_bytes(4 << 20)
            .with_max_producers(16),
    )
    .expect("create bus");
    BusGuard(name)
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// A child process; killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
    out: Receiver<String>,
    err_lines: Receiver<String>,
    err: Arc<Mutex<String>>,
    pub out_all: Vec<String>,
}

pub fn spawn(exe: &str, args: &[&str], what: &str) -> Proc {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let (otx, out) = channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = otx.send(line);
        }
    });
    let (etx, err_lines) = channel();
    let err = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().expect("stderr");
    let keep = err.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(mut k) = keep.lock() {
                k.push_str(&line);
                k.push('\n');
            }
            let _ = etx.send(line);
        }
    });
    Proc {
        child,
        what: what.to_owned(),
        out,
        err_lines,
        err,
        out_all: Vec::new(),
    }
}

impl Proc {
    pub fn stderr(&self) -> String {
        self.err.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for a stderr line containing `marker`.
    pub fn wait_err(&mut self, marker: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err_lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return,
                Ok(_) => {}
                Err(_) => panic!(
                    "watchdog: no `{marker}` from {} on stderr; stderr:\n{}",
                    self.what,
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for a stdout line containing `marker`.
    pub fn wait_out(&mut self, marker: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(marker);
                    self.out_all.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "watchdog: no `{marker}` from {} on stdout; stderr:\n{}",
                    self.what,
                    self.stderr()
                ),
            }
        }
    }

    /// Sends SIGTERM (through kill(1): no unsafe here).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the exit (killing the child if `within` runs out) and
    /// returns the status and the last stdout line.
    pub fn finish(&mut self, within: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "watchdog: {} did not exit in time; stderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader thread ends at EOF.
        while let Ok(line) = self.out.recv_timeout(Duration::from_secs(5)) {
            self.out_all.push(line);
        }
        (status, self.out_all.last().cloned().unwrap_or_default())
    }

    /// Like [`finish`](Self::finish), requiring success and a JSON last line.
    pub fn json(&mut self, within: Duration) -> serde_json::Value {
        let (status, last) = self.finish(within);
        assert!(
            status.success(),
            "{} failed ({status}); stderr:\n{}",
            self.what,
            self.stderr()
        );
        serde_json::from_str(&last)
            .unwrap_or_else(|e| panic!("{}: last stdout line `{last}` is not JSON: {e}", self.what))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts a bridge on `bus` with extra arguments and waits until it is up.
pub fn bridge(bus: &str, name: &str, args: &[&str]) -> Proc {
    let mut all = vec![bus, "--name", name, "--json"];
    all.extend_from_slice(args);
    let mut p = spawn(BRIDGE, &all, &format!("bridge {name}"));
    p.wait_err("bridging bus", Duration::from_secs(60));
    p
}

/// Publishes warm-up events on `from` (every 20 ms) until one arrives on
/// `to` under `topic`: both bridges are connected and their declarations
/// known. Returns how many were published and how many arrived.
pub fn warm_up(from: &str, to: &str, topic: &str) -> (u64, u64) {
    let a = Bus::open(from).expect("open from");
    let b = Bus::open(to).expect("open to");
    let mut p = a.publisher("warmup").expect("publisher");
    let mut s = b.subscriber("warmup").expect("subscriber");
    s.subscribe(topic).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    loop {
        p.publish(topic, b"warm-up").expect("publish");
        sent += 1;
        if s.recv_timeout(Duration::from_millis(20)).is_ok() {
            // Let the stragglers through before the subscriber goes.
            let mut arrived = 1;
            while s.recv_timeout(Duration::from_millis(300)).is_ok() {
                arrived += 1;
            }
            return (sent, arrived);
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: nothing crossed {from} -> {to} in 60 s"
        );
    }
}

/// Per topic, how many of `count` events published round-robin over
/// `topics` match `patterns`.
pub fn expected(topics: &[&str], count: u64, patterns: &[&str]) -> BTreeMap<String, u64> {
    let pats: Vec<Topic> = patterns.iter().map(|p| Topic::parse(p).unwrap()).collect();
    let k = topics.len() as u64;
    let mut out = BTreeMap::new();
    for (i, t) in topics.iter().enumerate() {
        let n = count / k + u64::from((i as u64) < count % k);
        let topic = Topic::parse(t).unwrap();
        if n > 0 && pats.iter().any(|p| p.matches(&topic)) {
            *out.entry((*t).to_owned()).or_insert(0) += n;
        }
    }
    out
}

/// Merges expectation maps.
pub fn merge(maps: &[BTreeMap<String, u64>]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in maps {
        for (k, v) in m {
            *out.entry(k.clone()).or_insert(0) += v;
        }
    }
    out
}

/// A consumer's per-topic counts as a map.
pub fn per_topic(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v["per_topic"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}
