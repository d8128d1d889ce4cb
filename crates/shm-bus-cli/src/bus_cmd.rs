//! `shm-bus create | remove | list | inspect | gc`: the buses of a host.
//!
//! A bus `BUS` is the shared-memory object `/shm-bus.BUS`, which Linux
//! shows as the file `/dev/shm/shm-bus.BUS`; `list` and `gc` find buses by
//! listing that directory.
//!
//! ## What `gc` removes
//!
//! For every bus (or the one named) `gc` first reaps the slots of dead
//! producers and subscribers, then removes the segment when
//!
//! - it cannot be opened because its creator died during initialisation,
//!   or it is corrupt (a bad header, a bad bus structure, too small); or
//! - no live process is attached to it any more and at least one attached
//!   process died (a dead slot was found or reaped); or
//! - with `--all-unused`: no live process is attached to it.
//!
//! "Attached" means holding a producer or subscriber slot; the process
//! that created the bus also counts while it lives, since it may be about
//! to attach. A bus still being created by a live process, one made by an
//! incompatible build (version mismatch), a segment of another user of the
//! allocator (not a bus) and one we may not open are left alone and listed
//! under `skipped`. Just before removing, `gc` looks again for live
//! processes and checks that the name still refers to the segment it
//! examined; a process that attaches in the instant between that check
//! and the unlink keeps working on the unlinked segment, invisible to
//! others (as with any `remove`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use shm_bus_core::{Bus, BusError, BusInfo};

use crate::common::{self, BadInput};
use crate::{CreateArgs, GcArgs};

/// Where POSIX shared-memory objects appear on Linux.
pub(crate) const SHM_DIR: &str = "/dev/shm";
/// Prefix of a bus's object name in [`SHM_DIR`].
const PREFIX: &str = "shm-bus.";

/// The file that backs bus `name`.
pub(crate) fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(format!("{SHM_DIR}/{PREFIX}{name}"))
}

/// Refuses a bus name the OS cannot use (the segment layer's rule).
pub(crate) fn check_name(name: &str) -> Result<(), BadInput> {
    shm_bus_alloc::validate_name(name).map_err(|_| {
        BadInput(format!(
            "`{name}` is not a valid bus name: use 1 to 200 bytes without `/` (e.g. `quotes`)"
        ))
    })
}

/// The error of a failed `Bus::open`, with the bus named and a hint where
/// one helps.
fn open_error(name: &str, e: BusError) -> anyhow::Error {
    match e {
        BusError::Segment(shm_bus_alloc::Error::NotFound { .. }) => {
            anyhow!("bus `{name}` does not exist (see `shm-bus list`)")
        }
        e => anyhow::Error::new(e).context(format!("cannot open bus `{name}`")),
    }
}

// ---------------------------------------------------------------- create

pub(crate) fn create(a: &CreateArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    let config = common::config_of(a)?;
    let bus = match Bus::create(&a.bus, config) {
        Ok(bus) => bus,
        Err(BusError::Segment(shm_bus_alloc::Error::AlreadyExists { .. })) => {
            return Err(anyhow!(
                "bus `{}` already exists; remove it first or use it as is",
                a.bus
            ));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot create bus `{}`", a.bus)));
        }
    };
    let info = bus.info();
    println!(
        "created bus `{}`: {} segment, ring {} per producer, {} producers, {} subscribers, \
         {} topics, policy {}, mode {:o}",
        info.name,
        human_bytes(info.segment_bytes),
        human_bytes(info.config.ring_bytes),
        info.config.max_producers,
        info.config.max_subscribers,
        info.config.max_topics,
        info.config.policy,
        info.config.mode,
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- remove

pub(crate) fn remove(name: &str) -> Result<ExitCode> {
    check_name(name)?;
    match Bus::remove(name) {
        Ok(()) => {
            println!("removed bus `{name}`");
            Ok(ExitCode::SUCCESS)
        }
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {
            Err(anyhow!("bus `{name}` does not exist (see `shm-bus list`)"))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot remove bus `{name}`"))),
    }
}

// ---------------------------------------------------------------- list

/// Names of the buses on this host, sorted.
fn bus_names() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(SHM_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {SHM_DIR}")),
    };
    let mut names = Vec::new();
    for entry in dir {
        let entry = entry.with_context(|| format!("cannot list {SHM_DIR}"))?;
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|f| f.strip_prefix(PREFIX))
        {
            if !name.is_empty() {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Counts of one bus's slots.
struct Usage {
    /// Producer slots held (by live or dead processes).
    producers: usize,
    /// Subscriber slots held (by live or dead processes).
    subscribers: usize,
    /// Of those, held by dead processes (not reaped yet).
    dead: usize,
}

fn usage(info: &BusInfo) -> Usage {
    let producers = info.producers.iter().filter(|p| p.attached).count();
    let subscribers = info.subscribers.len();
    let dead = info
        .producers
        .iter()
        .filter(|p| p.attached && !p.alive)
        .count()
        + info.subscribers.iter().filter(|s| !s.alive).count();
    Usage {
        producers,
        subscribers,
        dead,
    }
}

/// Live processes attached to the bus (plus its creator, if alive).
fn live_users(info: &BusInfo) -> usize {
    info.producers.iter().filter(|p| p.alive).count()
        + info.subscribers.iter().filter(|s| s.alive).count()
        + usize::from(info.created_by.is_alive())
}

pub(crate) fn list(json_out: bool) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for name in bus_names()? {
        let row = match Bus::open(&name) {
            Ok(bus) => {
                let info = bus.info();
                let u = usage(&info);
                json!({
                    "bus": name,
                    "segment_bytes": info.segment_bytes,
                    "producers": u.producers,
                    "subscribers": u.subscribers,
                    "dead": u.dead,
                    "healthy": u.dead == 0,
                    "policy": info.config.policy.as_str(),
                })
            }
            // Vanished since the directory was read.
            Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => continue,
            Err(e) => {
                let size = std::fs::metadata(shm_path(&name)).map_or(0, |m| m.len());
                json!({
                    "bus": name,
                    "segment_bytes": size,
                    "producers": 0,
                    "subscribers": 0,
                    "dead": 0,
                    "healthy": false,
                    "error": common::one_line(&anyhow::Error::new(e)),
                })
            }
        };
        rows.push(row);
    }
    let mut out = io::stdout().lock();
    if json_out {
        writeln!(out, "{}", Value::Array(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        writeln!(out, "no buses (nothing named {PREFIX}* in {SHM_DIR})")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new(&[
        ("BUS", Left),
        ("SEGMENT", Right),
        ("PRODUCERS", Right),
        ("SUBSCRIBERS", Right),
        ("STATE", Left),
    ]);
    for r in &rows {
        let state = if let Some(e) = r["error"].as_str() {
            format!("unusable: {e}")
        } else if r["healthy"] == json!(true) {
            "healthy".to_owned()
        } else {
            format!("{} dead attached (run `shm-bus gc`)", r["dead"])
        };
        let count = |k: &str| {
            if r.get("error").is_some() {
                "-".to_owned()
            } else {
                r[k].to_string()
            }
        };
        t.row(vec![
            r["bus"].as_str().unwrap_or_default().to_owned(),
            human_bytes(r["segment_bytes"].as_u64().unwrap_or(0)),
            count("producers"),
            count("subscribers"),
            state,
        ]);
    }
    write!(out, "{}", t.render(""))?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- inspect

pub(crate) fn inspect(name: &str, json_out: bool) -> Result<ExitCode> {
    check_name(name)?;
    let bus = Bus::open(name).map_err(|e| open_error(name, e))?;
    let info = bus.info();
    let mut out = io::stdout().lock();
    if json_out {
        writeln!(out, "{}", info_json(&info))?;
    } else {
        write!(out, "{}", info_human(&info))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn info_json(info: &BusInfo) -> Value {
    let now = now_ns();
    let c = &info.config;
    let arena = match &info.arena {
        Some(a) => json!({
            "capacity": a.capacity,
            "used": a.used,
            "free": a.free,
            "high_water": a.high_water,
            "uncarved": a.uncarved,
            "wasted": a.wasted,
            "recoveries": a.recoveries,
        }),
        None => Value::Null,
    };
    let topics: Vec<Value> = info
        .topics
        .iter()
        .map(|(id, t)| json!({"id": id.0, "topic": t}))
        .collect();
    let producers: Vec<Value> = info
        .producers
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "pid": p.pid,
                "name": p.name,
                "attached": p.attached,
                "alive": p.alive,
                "published": p.published,
                "tail": p.tail,
                "next_seq": p.next_seq,
                "full_waits": p.full_waits,
                "generation": p.generation,
                "last_publish_ns": p.last_publish_ns,
                "last_publish_secs_ago": secs_ago(now, p.last_publish_ns),
            })
        })
        .collect();
    let subscribers: Vec<Value> = info
        .subscribers
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "pid": s.pid,
                "name": s.name,
                "alive": s.alive,
                "received": s.received,
                "lagged": s.lagged,
                "lag_bytes": s.lag_bytes,
                "last_active_ns": s.last_active_ns,
                "last_active_secs_ago": secs_ago(now, s.last_active_ns),
            })
        })
        .collect();
    json!({
        "bus": info.name,
        "layout_version": info.layout_version,
        "segment_bytes": info.segment_bytes,
        "created_by_pid": info.created_by.pid,
        "created_by_alive": info.created_by.is_alive(),
        "created_at": rfc3339(info.created_at),
        "created_at_ns": ns_since_epoch(info.created_at),
        "max_payload": info.max_payload,
        "config": {
            "ring_bytes": c.ring_bytes,
            "max_subscribers": c.max_subscribers,
            "max_producers": c.max_producers,
            "max_topics": c.max_topics,
            "policy": c.policy.as_str(),
            "mode": format!("{:o}", c.mode),
        },
        "arena": arena,
        "topics": topics,
        "producers": producers,
        "subscribers": subscribers,
    })
}

/// Most topics the human report lists (all are in `--json`).
const TOPICS_SHOWN: usize = 50;

fn info_human(info: &BusInfo) -> String {
    let now = now_ns();
    let c = &info.config;
    let mut s = String::new();
    let creator = if info.created_by.is_alive() {
        "running"
    } else {
        "exited"
    };
    let _ = writeln!(
        s,
        "bus `{}`  ({})",
        info.name,
        shm_path(&info.name).display()
    );
    let mut head = Table::new(&[("", Left), ("", Left)]);
    head.row(vec![
        "segment".into(),
        format!(
            "{}, layout version {}",
            human_bytes(info.segment_bytes),
            info.layout_version
        ),
    ]);
    head.row(vec![
        "created".into(),
        format!(
            "{} by pid {} ({creator})",
            rfc3339(info.created_at),
            info.created_by.pid
        ),
    ]);
    head.row(vec![
        "config".into(),
        format!(
            "ring {} per producer, policy {}, mode {:o}",
            human_bytes(c.ring_bytes),
            c.policy,
            c.mode
        ),
    ]);
    head.row(vec![
        "capacity".into(),
        format!(
            "{} producers, {} subscribers, {} topics; payloads up to {}",
            c.max_producers,
            c.max_subscribers,
            c.max_topics,
            human_bytes(info.max_payload as u64)
        ),
    ]);
    head.row(vec![
        "arena".into(),
        match &info.arena {
            Some(a) => format!(
                "{} used of {} ({:.0}%), {} free, high water {}",
                human_bytes(a.used),
                human_bytes(a.capacity),
                percent(a.used, a.capacity),
                human_bytes(a.free),
                human_bytes(a.high_water)
            ),
            None => "statistics unreadable".into(),
        },
    ]);
    s += &head.render_bare("  ");

    let _ = writeln!(s, "\ntopics: {} of {}", info.topics.len(), c.max_topics);
    if !info.topics.is_empty() {
        let mut t = Table::new(&[("ID", Right), ("TOPIC", Left)]);
        for (id, topic) in info.topics.iter().take(TOPICS_SHOWN) {
            t.row(vec![id.0.to_string(), topic.clone()]);
        }
        s += &t.render("  ");
        if info.topics.len() > TOPICS_SHOWN {
            let _ = writeln!(
                s,
                "  … and {} more (all in `--json`)",
                info.topics.len() - TOPICS_SHOWN
            );
        }
    }

    let attached = info.producers.iter().filter(|p| p.attached).count();
    let _ = writeln!(
        s,
        "\nproducers: {attached} attached of {} slots",
        c.max_producers
    );
    if !info.producers.is_empty() {
        let mut t = Table::new(&[
            ("ID", Right),
            ("PID", Right),
            ("NAME", Left),
            ("STATE", Left),
            ("PUBLISHED", Right),
            ("NEXT SEQ", Right),
            ("TAIL", Right),
            ("FULL WAITS", Right),
            ("LAST PUBLISH", Left),
        ]);
        for p in &info.producers {
            let state = match (p.attached, p.alive) {
                (true, true) => "alive",
                (true, false) => "DEAD",
                (false, _) => "detached",
            };
            t.row(vec![
                p.id.to_string(),
                p.pid.to_string(),
                p.name.clone(),
                state.into(),
                p.published.to_string(),
                p.next_seq.to_string(),
                p.tail.to_string(),
                p.full_waits.to_string(),
                ago(now, p.last_publish_ns),
            ]);
        }
        s += &t.render("  ");
    }

    let _ = writeln!(
        s,
        "\nsubscribers: {} of {} slots",
        info.subscribers.len(),
        c.max_subscribers
    );
    if !info.subscribers.is_empty() {
        let mut t = Table::new(&[
            ("ID", Right),
            ("PID", Right),
            ("NAME", Left),
            ("STATE", Left),
            ("RECEIVED", Right),
            ("LAGGED", Right),
            ("LAG", Right),
            ("LAST ACTIVE", Left),
        ]);
        for sub in &info.subscribers {
            t.row(vec![
                sub.id.to_string(),
                sub.pid.to_string(),
                sub.name.clone(),
                if sub.alive { "alive" } else { "DEAD" }.into(),
                sub.received.to_string(),
                sub.lagged.to_string(),
                human_bytes(sub.lag_bytes),
                ago(now, sub.last_active_ns),
            ]);
        }
        s += &t.render("  ");
    }
    let dead = usage(info).dead;
    if dead > 0 {
        let _ = writeln!(
            s,
            "\n{dead} slot(s) held by dead processes: `shm-bus gc {}` frees them",
            info.name
        );
    }
    s
}

// ---------------------------------------------------------------- gc

/// What `gc` did.
#[derive(Default)]
struct GcOutcome {
    reaped_subscribers: u64,
    reaped_producers: u64,
    /// `(bus, why)`.
    removed: Vec<(String, String)>,
    /// `(bus, why not examined or removed)`.
    skipped: Vec<(String, String)>,
}

pub(crate) fn gc(a: &GcArgs) -> Result<ExitCode> {
    let names = match &a.bus {
        Some(name) => {
            check_name(name)?;
            if identity(name).is_none() {
                return Err(anyhow!("bus `{name}` does not exist (see `shm-bus list`)"));
            }
            vec![name.clone()]
        }
        None => bus_names()?,
    };
    let mut outcome = GcOutcome::default();
    for name in &names {
        gc_one(name, a.all_unused, &mut outcome)?;
    }
    let mut out = io::stdout().lock();
    if a.json {
        let removed: Vec<Value> = outcome
            .removed
            .iter()
            .map(|(b, why)| json!({"bus": b, "reason": why}))
            .collect();
        let skipped: Vec<Value> = outcome
            .skipped
            .iter()
            .map(|(b, why)| json!({"bus": b, "reason": why}))
            .collect();
        let v = json!({
            "reaped_subscribers": outcome.reaped_subscribers,
            "reaped_producers": outcome.reaped_producers,
            "removed_segments": outcome.removed.iter().map(|(b, _)| b).collect::<Vec<_>>(),
            "removed": removed,
            "skipped": skipped,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "examined {} bus(es); reaped {} dead subscriber(s) and {} dead producer(s)",
            names.len(),
            outcome.reaped_subscribers,
            outcome.reaped_producers
        )?;
        for (b, why) in &outcome.removed {
            writeln!(out, "removed `{b}`: {why}")?;
        }
        for (b, why) in &outcome.skipped {
            writeln!(out, "left `{b}`: {why}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The (device, inode) that `/dev/shm/shm-bus.NAME` refers to now.
fn identity(name: &str) -> Option<(u64, u64)> {
    std::fs::metadata(shm_path(name))
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Whether a failed open means the segment is debris that nobody can use.
fn is_debris(e: &BusError) -> bool {
    use shm_bus_alloc::Error as E;
    matches!(
        e,
        BusError::Segment(E::CreatorDied { .. } | E::Corrupt { .. } | E::TooSmall { .. })
            | BusError::Corrupt { .. }
    )
}

fn gc_one(name: &str, all_unused: bool, outcome: &mut GcOutcome) -> Result<()> {
    let Some(id) = identity(name) else {
        return Ok(()); // vanished
    };
    let bus = match Bus::open(name) {
        Ok(bus) => bus,
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => return Ok(()),
        Err(e) if is_debris(&e) => {
            let why = common::one_line(&anyhow::Error::new(e));
            return unlink_if_same(name, id, format!("unusable: {why}"), outcome);
        }
        Err(e) => {
            let why = common::one_line(&anyhow::Error::new(e));
            outcome.skipped.push((name.to_owned(), why));
            return Ok(());
        }
    };
    let before = usage(&bus.info());
    let reaped = bus.reap();
    outcome.reaped_subscribers += u64::from(reaped.subscribers);
    outcome.reaped_producers += u64::from(reaped.producers);
    let someone_died = before.dead > 0 || reaped.subscribers + reaped.producers > 0;
    if !(someone_died || all_unused) {
        return Ok(());
    }
    // Looked at after reaping, right before unlinking.
    if live_users(&bus.info()) > 0 {
        return Ok(());
    }
    let why = if someone_died {
        "every attached process died"
    } else {
        "no live process attached (--all-unused)"
    };
    drop(bus);
    unlink_if_same(name, id, why.to_owned(), outcome)
}

/// Unlinks `name` if it still refers to the segment `id` examined.
fn unlink_if_same(name: &str, id: (u64, u64), why: String, outcome: &mut GcOutcome) -> Result<()> {
    if identity(name) != Some(id) {
        return Ok(()); // removed, or replaced by a new bus meanwhile
    }
    match Bus::remove(name) {
        Ok(()) => outcome.removed.push((name.to_owned(), why)),
        Err(BusError::Segment(shm_bus_alloc::Error::NotFound { .. })) => {}
        Err(e) => {
            let why = common::one_line(&anyhow::Error::new(e));
            outcome
                .skipped
                .push((name.to_owned(), format!("cannot remove: {why}")));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- helpers

fn now_ns() -> u64 {
    ns_since_epoch(SystemTime::now())
}

fn ns_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Whole seconds from `then_ns` to `now_ns`, or `None` for "never" (0).
fn secs_ago(now_ns: u64, then_ns: u64) -> Option<u64> {
    (then_ns != 0).then(|| now_ns.saturating_sub(then_ns) / 1_000_000_000)
}

fn ago(now_ns: u64, then_ns: u64) -> String {
    match secs_ago(now_ns, then_ns) {
        None => "never".into(),
        Some(s) => format!("{s} s ago"),
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `1536` → `"1.5 KiB"`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// RFC 3339 UTC text of a time, to the second: `2026-11-21T08:20:25Z`.
/// Times before the epoch print as the epoch.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month (1..=12) and day (1..=31) of a day count since 1970-01-01
/// in the proleptic Gregorian calendar (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}
use Align::{Left, Right};

/// A text table with aligned columns.
struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    /// With a header line.
    fn render(&self, indent: &str) -> String {
        let header: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        self.render_rows(indent, std::iter::once(&header).chain(&self.rows))
    }

    /// Without a header line.
    fn render_bare(&self, indent: &str) -> String {
        self.render_rows(indent, self.rows.iter())
    }

    fn render_rows<'a>(&self, indent: &str, rows: impl Iterator<Item = &'a Vec<String>>) -> String {
        let rows: Vec<&Vec<String>> = rows.collect();
        let mut widths = vec![0; self.columns.len()];
        for r in &rows {
            for (w, cell) in widths.iter_mut().zip(r.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut s = String::new();
        for r in rows {
            let mut line = String::from(indent);
            for (i, cell) in r.iter().enumerate() {
                let w = widths[i];
                let last = i + 1 == r.len();
                match self.columns[i].1 {
                    Right => {
                        let _ = write!(line, "{cell:>w$}");
                    }
                    Left if last => line += cell,
                    Left => {
                        let _ = write!(line, "{cell:<w$}");
                    }
                }
                if !last {
                    line += "  ";
                }
            }
            s += line.trim_end();
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        let at = |secs| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 20), "1.0 MiB");
    }

    #[test]
    fn bus_names_are_checked_like_the_segment_layer() {
        assert!(check_name("quotes").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(201)).is_err());
    }
}
