//! `shm-bus inspect`: everything about one bus, as a report or JSON.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use shm_bus_core::{Bus, BusInfo, GroupInfo, Policy};

use super::group::{group_json, groups_human, stalled_groups};
use super::{check_name, config_json, live_users, open_error, shm_path, usage};
use crate::format::{Left, Right, Table, human_bytes, percent};
use crate::time::{ago, now_ns, ns_since_epoch, rfc3339, secs_ago};

pub(crate) fn inspect(name: &str, json_out: bool) -> Result<ExitCode> {
    check_name(name)?;
    let bus = Bus::open(name).map_err(|e| open_error(name, e))?;
    let info = bus.info();
    let groups = bus.groups();
    let mut out = io::stdout().lock();
    if json_out {
        writeln!(out, "{}", info_json(&info, &groups))?;
    } else {
        write!(out, "{}", info_human(&info, &groups))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn info_json(info: &BusInfo, groups: &[GroupInfo]) -> Value {
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
                "unread_bytes": p.unread_bytes,
                "generation": p.generation,
                "last_publish_ns": p.last_publish_ns,
                "last_publish_secs_ago": secs_ago(now, p.last_publish_ns),
            })
        })
        .collect();
    let holding = holding_back(info);
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
                "lag_messages": s.lag_messages,
                "sleeping": s.sleeping,
                "holding_back": holding.contains(&s.id),
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
        "config": config_json(c),
        "arena": arena,
        "topics": topics,
        "producers": producers,
        "subscribers": subscribers,
        "groups": groups.iter().map(|g| group_json(g, c.policy)).collect::<Vec<_>>(),
    })
}

/// Most topics the human report lists (all are in `--json`).
const TOPICS_SHOWN: usize = 50;

fn info_human(info: &BusInfo, groups: &[GroupInfo]) -> String {
    let now = now_ns();
    let holding = holding_back(info);
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
            "{} producers, {} subscribers, {} topics, {} worker groups of up to {} members; \
             payloads up to {}",
            c.max_producers,
            c.max_subscribers,
            c.max_topics,
            c.max_groups,
            c.max_group_members,
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
            let state = if holding.contains(&sub.id) {
                "HOLDING BACK"
            } else if sub.alive {
                "alive"
            } else {
                "DEAD"
            };
            t.row(vec![
                sub.id.to_string(),
                sub.pid.to_string(),
                sub.name.clone(),
                state.into(),
                sub.received.to_string(),
                sub.lagged.to_string(),
                human_bytes(sub.lag_bytes),
                ago(now, sub.last_active_ns),
            ]);
        }
        s += &t.render("  ");
    }
    for sub in info.subscribers.iter().filter(|s| holding.contains(&s.id)) {
        let _ = writeln!(
            s,
            "\nsubscriber {} (pid {}, `{}`) holds the rings back: {} unread, at least half \
             of a {} ring, so publishers wait for it once their ring is full \
             (block policy; see \"A stuck subscriber\" in docs/OPERATIONS.md)",
            sub.id,
            sub.pid,
            sub.name,
            human_bytes(sub.lag_bytes),
            human_bytes(c.ring_bytes),
        );
    }
    if c.max_groups > 0 || !groups.is_empty() {
        let _ = writeln!(
            s,
            "\nworker groups: {} of {} slots",
            groups.len(),
            c.max_groups
        );
        if !groups.is_empty() {
            s += &groups_human(groups, c.policy);
        }
    }
    for hint in stalled_groups(info, groups) {
        let _ = writeln!(s, "\n{hint}");
    }
    if let Some(hint) = gc_hint(info, groups) {
        let _ = writeln!(s, "\n{hint}");
    }
    s
}

/// Ids of the subscribers that hold the producers' rings back.
///
/// The rule (docs/OPERATIONS.md, "A stuck subscriber"): under the block
/// policy, the live subscriber with the most unread bytes (`lag_bytes`,
/// summed over the producers' rings), when that is at least half of one
/// ring: a record takes at most half a ring, so from there on a publish
/// may have to wait for this subscriber. Subscribers tied for the most are
/// all marked. Never under overwrite (producers do not wait), and never a
/// dead subscriber (a waiting producer reaps it).
pub(crate) fn holding_back(info: &BusInfo) -> Vec<u32> {
    if info.config.policy != Policy::Block {
        return Vec::new();
    }
    let live = || info.subscribers.iter().filter(|s| s.alive);
    let Some(most) = live().map(|s| s.lag_bytes).max() else {
        return Vec::new();
    };
    if most == 0 || most < info.config.ring_bytes / 2 {
        return Vec::new();
    }
    live()
        .filter(|s| s.lag_bytes == most)
        .map(|s| s.id)
        .collect()
}

/// What `shm-bus gc BUS` would do now, when there are dead slots: said
/// exactly as `gc` decides it (see `gc.rs`).
fn gc_hint(info: &BusInfo, groups: &[GroupInfo]) -> Option<String> {
    let dead = usage(info, groups).dead;
    if dead == 0 {
        return None;
    }
    let name = &info.name;
    let creator_alive = info.created_by.is_alive();
    let attached = live_users(info, groups) - usize::from(creator_alive);
    Some(if attached > 0 || creator_alive {
        let why = if attached > 0 {
            format!("{attached} live process(es) attached")
        } else {
            format!("its creator, pid {}, is alive", info.created_by.pid)
        };
        format!(
            "{dead} slot(s) held by dead processes: `shm-bus gc {name}` frees those slots \
             only; the bus stays ({why})"
        )
    } else {
        format!(
            "{dead} slot(s) held by dead processes and no live process attached: \
             `shm-bus gc {name}` removes the whole bus (its segment {})",
            shm_path(name).display()
        )
    })
}
