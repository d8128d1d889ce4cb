//! `shm-bus top`: a live view of a bus, refreshed every `--interval`:
//! its header, producers (rates, ring fill, full waits), subscribers
//! (rates, lag in bytes and records, sleeping, holding the rings back), the
//! worker groups (members, claimed and done rates, backlog, redelivered,
//! lost; when the bus has groups) and the busiest topics. Rates are differences of the counters the segment
//! holds between two readings; topic rates come from walking the record
//! headers each producer's ring gained (`Bus::ring_topics`), so `top`
//! takes no subscriber slot and holds nobody back.
//!
//! Keys: `q` (or Esc, Ctrl-C) quits, tab / shift-tab move between panes,
//! `s` changes the focused pane's sort. The terminal is restored on exit,
//! on SIGTERM/SIGHUP and on panic (ratatui's panic hook).
//!
//! `--once` prints one frame (`--json`: one JSON document) with rates
//! measured over `--interval`; `--json` alone prints one JSON line per
//! interval. Neither needs a terminal.
//!
//! [`model`] computes what is shown, [`view`] draws it.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use shm_bus_core::Bus;

use crate::bus_cmd::check_name;
use crate::common::{self, BadInput};
use crate::os::{catch_interrupts, interrupted, sleep_until, stdout_closed};

mod model;
mod view;

use model::{Probe, Snapshot};
use view::Ui;

/// Options of `top`.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct TopArgs {
    /// The bus name (it must exist, unless --create).
    pub bus: String,
    /// Time between refreshes; rates are measured over it (seconds, or
    /// 500ms, 2s).
    #[arg(long, default_value = "1", value_parser = common::parse_duration)]
    pub interval: Duration,
    /// Print one frame (with --json: one JSON document) measured over
    /// --interval, then exit.
    #[arg(long)]
    pub once: bool,
    /// JSON instead of the screen: one document with --once, else one line
    /// per interval until Ctrl-C.
    #[arg(long)]
    pub json: bool,
    /// Create the bus with default settings if it does not exist.
    #[arg(long)]
    pub create: bool,
}

pub(crate) fn run(a: &TopArgs) -> Result<ExitCode> {
    check_name(&a.bus)?;
    if a.interval < Duration::from_millis(50) {
        return Err(BadInput("--interval must be at least 50ms".into()).into());
    }
    if !a.once && !a.json && !io::stdout().is_terminal() {
        return Err(BadInput(
            "top needs a terminal; for scripts use `top BUS --once [--json]` or `top BUS --json`"
                .into(),
        )
        .into());
    }
    let bus = common::attach(&a.bus, a.create)?;
    catch_interrupts();
    if a.once || a.json {
        return print(&bus, a);
    }
    interactive(&bus, a.interval)
}

/// `--once` and `--json`: frames or JSON on stdout.
fn print(bus: &Bus, a: &TopArgs) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    let mut prev = Probe::take(bus, None);
    loop {
        if !sleep_until(prev.at + a.interval, Duration::from_millis(50)) {
            return Ok(ExitCode::SUCCESS);
        }
        let cur = Probe::take(bus, Some(&prev));
        let snap = Snapshot::new(Some(&prev), &cur, bus.is_removed());
        let text = if a.json {
            format!("{}\n", snap.to_json())
        } else {
            render_text(&snap)?
        };
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(anyhow::Error::new(e).context("cannot write to stdout")),
        }
        if a.once || stdout_closed() {
            return Ok(ExitCode::SUCCESS);
        }
        prev = cur;
    }
}

/// One frame as text (what `--once` prints), 120 columns wide and as tall
/// as the rows need.
fn render_text(snap: &Snapshot) -> Result<String> {
    let height = 3
        + (snap.producers.len().max(1) + 3)
        + (snap.subscribers.len().max(1) + 3)
        + view::groups_height(snap).min(16)
        + (snap.topics.len().clamp(1, 10) + 3)
        + 1;
    let mut term = Terminal::new(TestBackend::new(
        120,
        u16::try_from(height).unwrap_or(u16::MAX),
    ))?;
    term.draw(|f| view::draw(f, snap, &Ui::default()))?;
    let buf = term.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        let line: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
        s += line.trim_end();
        s.push('\n');
    }
    Ok(s)
}

/// Restores the terminal when dropped: on return, on error, and while
/// unwinding from a panic (ratatui's panic hook restores it first too).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// The full-screen view until `q`, Esc, Ctrl-C, SIGTERM or SIGHUP.
fn interactive(bus: &Bus, interval: Duration) -> Result<ExitCode> {
    let _restore = Restore;
    let mut term = ratatui::try_init().context("cannot set up the terminal")?;
    let mut ui = Ui::default();
    let mut prev = Probe::take(bus, None);
    let mut snap = Snapshot::new(None, &prev, bus.is_removed());
    loop {
        ui.set_groups(!snap.groups.is_empty());
        term.draw(|f| view::draw(f, &snap, &ui))
            .context("cannot draw")?;
        let due = prev.at + interval;
        // Keys until the next refresh.
        loop {
            if interrupted() {
                return Ok(ExitCode::SUCCESS);
            }
            let left = due.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if !event::poll(left.min(Duration::from_millis(100))).context("cannot read keys")? {
                continue;
            }
            match event::read().context("cannot read keys")? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(ExitCode::SUCCESS),
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            return Ok(ExitCode::SUCCESS);
                        }
                        KeyCode::Tab => ui.next_pane(),
                        KeyCode::BackTab => ui.prev_pane(),
                        KeyCode::Char('s') => ui.next_sort(),
                        _ => continue,
                    }
                    term.draw(|f| view::draw(f, &snap, &ui))
                        .context("cannot draw")?;
                }
                Event::Resize(..) => {
                    term.draw(|f| view::draw(f, &snap, &ui))
                        .context("cannot draw")?;
                }
                _ => {}
            }
        }
        let cur = Probe::take(bus, Some(&prev));
        snap = Snapshot::new(Some(&prev), &cur, bus.is_removed());
        prev = cur;
    }
}
