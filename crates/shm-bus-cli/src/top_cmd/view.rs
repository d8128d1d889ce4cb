//! Drawing a [`Snapshot`] with ratatui: a header, the producers, the
//! subscribers, the worker groups (when there are some) and the busiest
//! topics, one pane focused (tab) and sorted by a key (`s`).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};

use super::model::{GroupRow, ProducerRow, Snapshot, SubscriberRow, TopicRow};
use crate::bus_cmd::member_state;
use crate::format::human_bytes;

/// The panes, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pane {
    Producers,
    Subscribers,
    Groups,
    Topics,
}

/// What the keys change: the focused pane and each pane's sort key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ui {
    pub focus: Pane,
    /// Index into [`sort_keys`] per pane.
    pub sort: [usize; 4],
    /// Whether the groups pane is shown (the bus has worker groups): tab
    /// skips it otherwise.
    pub groups: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            focus: Pane::Producers,
            sort: [0; 4],
            groups: false,
        }
    }
}

impl Ui {
    /// Tab: the next pane.
    pub(crate) fn next_pane(&mut self) {
        self.focus = match self.focus {
            Pane::Producers => Pane::Subscribers,
            Pane::Subscribers if self.groups => Pane::Groups,
            Pane::Subscribers | Pane::Groups => Pane::Topics,
            Pane::Topics => Pane::Producers,
        };
    }

    /// Shift-Tab: the previous pane.
    pub(crate) fn prev_pane(&mut self) {
        self.focus = match self.focus {
            Pane::Producers => Pane::Topics,
            Pane::Subscribers | Pane::Groups => Pane::Producers,
            Pane::Topics if self.groups => Pane::Groups,
            Pane::Topics => Pane::Subscribers,
        };
    }

    /// The groups pane appears or goes: focus leaves it if it went.
    pub(crate) fn set_groups(&mut self, shown: bool) {
        self.groups = shown;
        if !shown && self.focus == Pane::Groups {
            self.focus = Pane::Topics;
        }
    }

    /// `s`: the focused pane's next sort key.
    pub(crate) fn next_sort(&mut self) {
        let i = self.focus as usize;
        self.sort[i] = (self.sort[i] + 1) % sort_keys(self.focus).len();
    }

    fn key(&self, pane: Pane) -> &'static str {
        sort_keys(pane)[self.sort[pane as usize]]
    }
}

/// The sort keys of a pane, the first being the default.
pub(crate) fn sort_keys(pane: Pane) -> &'static [&'static str] {
    match pane {
        Pane::Producers => &["slot", "msgs/s", "ring fill", "full waits"],
        Pane::Subscribers => &["slot", "msgs/s", "lag", "lagged"],
        Pane::Groups => &["slot", "done/s", "backlog"],
        Pane::Topics => &["rate", "topic"],
    }
}

/// A rate for a cell: `-` before there are two readings.
fn rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(v) if v >= 10_000_000.0 => format!("{:.1}M", v / 1e6),
        Some(v) if v >= 100_000.0 => format!("{:.0}k", v / 1e3),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

fn bytes_rate(r: Option<f64>) -> String {
    match r {
        None => "-".into(),
        Some(v) => format!("{}/s", human_bytes(v as u64)),
    }
}

fn uptime(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, s / 60 % 60),
        s => format!("{}d{:02}h", s / 86_400, s / 3600 % 24),
    }
}

fn sorted_producers<'a>(rows: &'a [ProducerRow], key: &str) -> Vec<&'a ProducerRow> {
    let mut v: Vec<&ProducerRow> = rows.iter().collect();
    match key {
        "msgs/s" => v.sort_by(|a, b| {
            b.msgs_per_sec
                .unwrap_or(0.0)
                .total_cmp(&a.msgs_per_sec.unwrap_or(0.0))
        }),
        "ring fill" => v.sort_by(|a, b| b.ring_fill.total_cmp(&a.ring_fill)),
        "full waits" => v.sort_by_key(|p| std::cmp::Reverse(p.full_waits)),
        _ => v.sort_by_key(|p| p.id),
    }
    v
}

fn sorted_subscribers<'a>(rows: &'a [SubscriberRow], key: &str) -> Vec<&'a SubscriberRow> {
    let mut v: Vec<&SubscriberRow> = rows.iter().collect();
    match key {
        "msgs/s" => v.sort_by(|a, b| {
            b.msgs_per_sec
                .unwrap_or(0.0)
                .total_cmp(&a.msgs_per_sec.unwrap_or(0.0))
        }),
        "lag" => v.sort_by_key(|s| std::cmp::Reverse(s.lag_bytes)),
        "lagged" => v.sort_by_key(|s| std::cmp::Reverse(s.lagged)),
        _ => v.sort_by_key(|s| s.id),
    }
    v
}

fn sorted_groups<'a>(rows: &'a [GroupRow], key: &str) -> Vec<&'a GroupRow> {
    let mut v: Vec<&GroupRow> = rows.iter().collect();
    match key {
        "done/s" => v.sort_by(|a, b| {
            b.done_per_sec
                .unwrap_or(0.0)
                .total_cmp(&a.done_per_sec.unwrap_or(0.0))
        }),
        "backlog" => v.sort_by_key(|g| std::cmp::Reverse(g.backlog)),
        _ => v.sort_by_key(|g| g.slot),
    }
    v
}

/// Rows the groups pane takes, borders and header included (0 without
/// groups).
pub(crate) fn groups_height(s: &Snapshot) -> usize {
    if s.groups.is_empty() {
        return 0;
    }
    s.groups.len() + s.groups.iter().map(|g| g.members.len()).sum::<usize>() + 3
}

fn sorted_topics<'a>(rows: &'a [TopicRow], key: &str) -> Vec<&'a TopicRow> {
    let mut v: Vec<&TopicRow> = rows.iter().collect();
    if key == "topic" {
        v.sort_by(|a, b| a.topic.cmp(&b.topic));
    }
    v
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(style)
        .title(Span::styled(title, style))
}

const DEAD: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const HEADER: Style = Style::new().add_modifier(Modifier::BOLD);

/// Draws one frame.
pub(crate) fn draw(f: &mut Frame<'_>, s: &Snapshot, ui: &Ui) {
    let topic_rows = (s.topics.len().clamp(1, 10) + 3) as u16;
    let producer_rows = (s.producers.len().max(1) + 3) as u16;
    let group_rows = groups_height(s).min(16) as u16;
    let [head, prods, subs, groups, topics, keys] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Max(producer_rows),
        Constraint::Min(4),
        Constraint::Length(group_rows),
        Constraint::Length(topic_rows),
        Constraint::Length(1),
    ])
    .areas(f.area());
    header(f, head, s);
    producers(f, prods, s, ui);
    subscribers(f, subs, s, ui);
    if group_rows > 0 {
        groups_pane(f, groups, s, ui);
    }
    topics_pane(f, topics, s, ui);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" q", HEADER),
            Span::raw(" quit  "),
            Span::styled("tab", HEADER),
            Span::raw(" next pane  "),
            Span::styled("s", HEADER),
            Span::raw(" sort the focused pane"),
        ])),
        keys,
    );
}

fn header(f: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    let arena = match (s.arena_used, s.arena_capacity) {
        (Some(u), Some(c)) if c > 0 => format!(
            "{} of {} ({:.0}%)",
            human_bytes(u),
            human_bytes(c),
            u as f64 * 100.0 / c as f64
        ),
        _ => "unreadable".into(),
    };
    let live_p = s.producers.iter().filter(|p| p.alive).count();
    let dead_p = s
        .producers
        .iter()
        .filter(|p| p.attached && !p.alive)
        .count();
    let live_s = s.subscribers.iter().filter(|x| x.alive).count();
    let dead_s = s.subscribers.len() - live_s;
    let total: Option<f64> = s
        .producers
        .iter()
        .map(|p| p.msgs_per_sec)
        .try_fold(0.0, |acc, r| Some(acc + r?));
    let live_m: usize = s.groups.iter().map(|g| g.live_members).sum();
    let groups = if s.groups.is_empty() {
        String::new()
    } else {
        format!("   groups {} ({live_m} live)", s.groups.len())
    };
    let mut first = vec![
        Span::styled(format!("bus `{}`", s.bus), HEADER),
        Span::raw(format!(
            "  layout v{}  policy {}  segment {}  ring {}  up {}  arena {}",
            s.layout_version,
            s.policy,
            human_bytes(s.segment_bytes),
            human_bytes(s.ring_bytes),
            uptime(s.uptime_secs),
            arena
        )),
    ];
    if s.removed {
        first.push(Span::styled("  REMOVED", DEAD));
    }
    let second = Line::from(vec![Span::raw(format!(
        "producers {live_p} alive, {dead_p} dead   subscribers {live_s} alive, {dead_s} dead{groups}   \
         published {} msgs/s   refresh {}",
        rate(if s.producers.is_empty() {
            s.interval_secs.map(|_| 0.0)
        } else {
            total
        }),
        match s.interval_secs {
            Some(dt) => format!("{dt:.1} s"),
            None => "(first reading: rates next)".into(),
        }
    ))]);
    f.render_widget(
        Paragraph::new(vec![Line::from(first), second])
            .block(Block::default().borders(Borders::BOTTOM)),
        area,
    );
}

fn producers(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui) {
    let key = ui.key(Pane::Producers);
    let rows = sorted_producers(&s.producers, key).into_iter().map(|p| {
        let state = match (p.attached, p.alive) {
            (true, true) => "alive",
            (true, false) => "DEAD",
            (false, _) => "detached",
        };
        let row = Row::new(vec![
            p.id.to_string(),
            p.pid.to_string(),
            p.name.clone(),
            state.to_owned(),
            rate(p.msgs_per_sec),
            bytes_rate(p.bytes_per_sec),
            p.sequence.to_string(),
            format!("{:.0}%", p.ring_fill * 100.0),
            format!("{} (+{})", p.full_waits, rate(p.full_waits_per_sec)),
        ]);
        if p.attached && !p.alive {
            row.style(DEAD)
        } else {
            row
        }
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(8),
            Constraint::Min(12),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(16),
        ],
    )
    .header(
        Row::new([
            "SLOT",
            "PID",
            "NAME",
            "STATE",
            "MSGS/S",
            "BYTES/S",
            "SEQUENCE",
            "RING FILL",
            "FULL WAITS (/s)",
        ])
        .style(HEADER),
    )
    .block(pane_block(
        format!(" producers ({}) sort: {key} ", s.producers.len()),
        ui.focus == Pane::Producers,
    ));
    f.render_widget(table, area);
}

fn subscribers(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui) {
    let key = ui.key(Pane::Subscribers);
    let rows = sorted_subscribers(&s.subscribers, key)
        .into_iter()
        .map(|x| {
            let state = if x.holding_back {
                "HOLDING BACK"
            } else if !x.alive {
                "DEAD"
            } else if x.sleeping {
                "sleeping"
            } else {
                "alive"
            };
            let row = Row::new(vec![
                x.id.to_string(),
                x.pid.to_string(),
                x.name.clone(),
                state.to_owned(),
                rate(x.msgs_per_sec),
                human_bytes(x.lag_bytes),
                x.lag_messages
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                x.lagged.to_string(),
            ]);
            if !x.alive || x.holding_back {
                row.style(DEAD)
            } else {
                row
            }
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(4),
            Constraint::Length(8),
            Constraint::Min(12),
            Constraint::Length(12),
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "SLOT", "PID", "NAME", "STATE", "MSGS/S", "LAG", "LAG MSGS", "LAGGED",
        ])
        .style(HEADER),
    )
    .block(pane_block(
        format!(" subscribers ({}) sort: {key} ", s.subscribers.len()),
        ui.focus == Pane::Subscribers,
    ));
    f.render_widget(table, area);
}

fn groups_pane(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui) {
    let key = ui.key(Pane::Groups);
    let mut rows = Vec::new();
    for g in sorted_groups(&s.groups, key) {
        let state = if g.removing {
            "REMOVING".to_owned()
        } else if g.stalled {
            "STALLED".to_owned()
        } else {
            format!("{} live", g.live_members)
        };
        let row = Row::new(vec![
            g.name.clone(),
            String::new(),
            state,
            rate(g.claimed_per_sec),
            rate(g.done_per_sec),
            g.done.to_string(),
            g.backlog.to_string(),
            g.redelivered.to_string(),
            g.lost.to_string(),
            format!("{} {}", g.mode, g.patterns.join(" ")),
        ]);
        rows.push(if g.stalled {
            row.style(DEAD)
        } else {
            row.style(HEADER)
        });
        for m in &g.members {
            let state = member_state(m.alive, m.adopted, m.departed, m.busy);
            let row = Row::new(vec![
                format!("  {}", m.name),
                m.pid.to_string(),
                state.to_owned(),
                String::new(),
                rate(m.done_per_sec),
                m.done.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
            rows.push(if m.alive || m.departed {
                row
            } else {
                row.style(DEAD)
            });
        }
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(11),
            Constraint::Length(5),
            Constraint::Min(20),
        ],
    )
    .header(
        Row::new([
            "GROUP / MEMBER",
            "PID",
            "STATE",
            "CLAIMED/S",
            "DONE/S",
            "DONE",
            "BACKLOG",
            "REDELIVERED",
            "LOST",
            "MODE PATTERNS",
        ])
        .style(HEADER),
    )
    .block(pane_block(
        format!(" worker groups ({}) sort: {key} ", s.groups.len()),
        ui.focus == Pane::Groups,
    ));
    f.render_widget(table, area);
}

fn topics_pane(f: &mut Frame<'_>, area: Rect, s: &Snapshot, ui: &Ui) {
    let key = ui.key(Pane::Topics);
    let shown = area.height.saturating_sub(3) as usize;
    let rows = sorted_topics(&s.topics, key)
        .into_iter()
        .take(shown)
        .map(|t| {
            Row::new(vec![
                t.topic.clone(),
                format!(
                    "{}{}",
                    if t.estimated { "~" } else { "" },
                    rate(Some(t.rate))
                ),
            ])
        });
    let table = Table::new(rows, [Constraint::Min(20), Constraint::Length(10)])
        .header(Row::new(["TOPIC", "MSGS/S"]).style(HEADER))
        .block(pane_block(
            format!(
                " busiest topics ({} active) sort: {key}{} ",
                s.topics.len(),
                if s.topics.iter().any(|t| t.estimated) {
                    "  ~ estimated from a sample of the ring"
                } else {
                    ""
                }
            ),
            ui.focus == Pane::Topics,
        ));
    f.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    fn known() -> Snapshot {
        Snapshot {
            bus: "quotes".into(),
            layout_version: 3,
            policy: "block".into(),
            segment_bytes: 9 << 20,
            ring_bytes: 1 << 20,
            uptime_secs: 3725,
            arena_used: Some(1 << 20),
            arena_capacity: Some(4 << 20),
            interval_secs: Some(1.0),
            removed: false,
            producers: vec![
                ProducerRow {
                    id: 0,
                    pid: 4242,
                    name: "feed".into(),
                    alive: true,
                    attached: true,
                    msgs_per_sec: Some(1234.0),
                    bytes_per_sec: Some(118_464.0),
                    published: 99_000,
                    sequence: 99_000,
                    ring_fill: 0.5,
                    unread_bytes: 1 << 19,
                    full_waits: 7,
                    full_waits_per_sec: Some(2.0),
                },
                ProducerRow {
                    id: 1,
                    pid: 4343,
                    name: "crashed feed".into(),
                    alive: false,
                    attached: true,
                    msgs_per_sec: Some(0.0),
                    bytes_per_sec: Some(0.0),
                    published: 10,
                    sequence: 10,
                    ring_fill: 0.0,
                    unread_bytes: 0,
                    full_waits: 0,
                    full_waits_per_sec: Some(0.0),
                },
            ],
            subscribers: vec![
                SubscriberRow {
                    id: 0,
                    pid: 5000,
                    name: "stuck worker".into(),
                    alive: true,
                    msgs_per_sec: Some(0.0),
                    received: 5,
                    lag_bytes: 1 << 19,
                    lag_messages: Some(5461),
                    lagged: 0,
                    sleeping: false,
                    holding_back: true,
                },
                SubscriberRow {
                    id: 1,
                    pid: 5001,
                    name: "fast worker".into(),
                    alive: true,
                    msgs_per_sec: Some(1234.0),
                    received: 99_000,
                    lag_bytes: 0,
                    lag_messages: Some(0),
                    lagged: 0,
                    sleeping: true,
                    holding_back: false,
                },
            ],
            groups: vec![],
            topics: vec![
                TopicRow {
                    topic: "md.XNAS.AAPL.trade".into(),
                    rate: 1000.0,
                    estimated: false,
                },
                TopicRow {
                    topic: "md.BATS.IBM.quote".into(),
                    rate: 234.0,
                    estimated: true,
                },
            ],
        }
    }

    fn render(s: &Snapshot, ui: &Ui) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(140, 30)).unwrap();
        t.draw(|f| draw(f, s, ui)).unwrap();
        let buf = t.backend().buffer().clone();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect()
    }

    fn line_with<'a>(lines: &'a [String], needle: &str) -> &'a str {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", lines.join("\n")))
    }

    #[test]
    fn renders_a_known_state() {
        let lines = render(&known(), &Ui::default());
        let head = line_with(&lines, "bus `quotes`");
        for part in [
            "layout v3",
            "policy block",
            "segment 9.0 MiB",
            "up 1h02m",
            "arena 1.0 MiB of 4.0 MiB (25%)",
        ] {
            assert!(head.contains(part), "{part:?} in {head}");
        }
        let feed = line_with(&lines, "feed  ");
        for part in [
            "4242",
            "alive",
            "1234",
            "115.7 KiB/s",
            "99000",
            "50%",
            "7 (+2.0)",
        ] {
            assert!(feed.contains(part), "{part:?} in {feed}");
        }
        // A dead process is marked, not hidden.
        assert!(line_with(&lines, "crashed feed").contains("DEAD"));
        let stuck = line_with(&lines, "stuck worker");
        for part in ["HOLDING BACK", "512.0 KiB", "5461"] {
            assert!(stuck.contains(part), "{part:?} in {stuck}");
        }
        assert!(line_with(&lines, "fast worker").contains("sleeping"));
        assert!(line_with(&lines, "md.XNAS.AAPL.trade").contains("1000"));
        assert!(line_with(&lines, "md.BATS.IBM.quote").contains("~234"));
        assert!(line_with(&lines, "busiest topics").contains("estimated"));
        // The focused pane shows its sort key.
        assert!(line_with(&lines, "producers (2)").contains("sort: slot"));
    }

    #[test]
    fn dead_rows_are_red_and_the_focus_moves() {
        let mut t = Terminal::new(TestBackend::new(140, 30)).unwrap();
        let mut ui = Ui::default();
        ui.next_pane();
        ui.next_sort();
        ui.next_sort();
        assert_eq!(
            (ui.focus, ui.key(Pane::Subscribers)),
            (Pane::Subscribers, "lag")
        );
        t.draw(|f| draw(f, &known(), &ui)).unwrap();
        let buf = t.backend().buffer().clone();
        let row = (0..buf.area.height)
            .find(|&y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .contains("crashed feed")
            })
            .unwrap();
        assert_eq!(buf[(3, row)].fg, Color::Red);
        let text = render(&known(), &ui);
        assert!(line_with(&text, "subscribers (2)").contains("sort: lag"));
        // Sorted by lag: the stuck worker comes first.
        let stuck = text
            .iter()
            .position(|l| l.contains("stuck worker"))
            .unwrap();
        let fast = text.iter().position(|l| l.contains("fast worker")).unwrap();
        assert!(stuck < fast);
        ui.prev_pane();
        ui.prev_pane();
        assert_eq!(ui.focus, Pane::Topics);
    }

    fn with_groups() -> Snapshot {
        use super::super::model::MemberRow;
        let member = |slot: u32, pid: u32, name: &str, alive: bool, done: u64| MemberRow {
            slot,
            pid,
            name: name.into(),
            alive,
            adopted: false,
            departed: false,
            busy: alive,
            claimed: done,
            done,
            done_per_sec: Some(if alive { 500.0 } else { 0.0 }),
        };
        let mut s = known();
        s.groups = vec![
            GroupRow {
                slot: 0,
                name: "fills".into(),
                mode: "at-least-once".into(),
                patterns: vec!["orders.{venue}.fill".into()],
                live_members: 1,
                members: vec![
                    member(0, 6001, "fill worker 1", true, 700),
                    member(1, 6002, "fill worker 2", false, 300),
                    MemberRow {
                        departed: true,
                        ..member(2, 6003, "fill worker 3", false, 0)
                    },
                ],
                claimed: 1000,
                done: 1000,
                claimed_per_sec: Some(1000.0),
                done_per_sec: Some(1000.0),
                backlog: 42,
                redelivered: 3,
                lost: 0,
                lagged: 0,
                claims: 125,
                stalled: false,
                removing: false,
            },
            GroupRow {
                slot: 1,
                name: "orphans".into(),
                mode: "at-most-once".into(),
                patterns: vec!["md.**".into()],
                live_members: 0,
                members: vec![],
                claimed: 10,
                done: 9,
                claimed_per_sec: Some(0.0),
                done_per_sec: Some(0.0),
                backlog: 7,
                redelivered: 0,
                lost: 1,
                lagged: 0,
                claims: 2,
                stalled: true,
                removing: false,
            },
        ];
        s
    }

    #[test]
    fn the_groups_pane_shows_members_rates_backlog_and_stalls() {
        let s = with_groups();
        let mut t = Terminal::new(TestBackend::new(140, 40)).unwrap();
        let mut ui = Ui::default();
        ui.set_groups(true);
        t.draw(|f| draw(f, &s, &ui)).unwrap();
        let lines = render(&s, &ui);
        assert!(line_with(&lines, "groups 2 (1 live)").contains("subscribers"));
        let fills = line_with(&lines, "fills  ");
        for part in [
            "1 live",
            "1000",
            "42",
            "3",
            "at-least-once",
            "orders.{venue}.fill",
        ] {
            assert!(fills.contains(part), "{part:?} in {fills}");
        }
        let w1 = line_with(&lines, "fill worker 1");
        for part in ["6001", "busy", "500", "700"] {
            assert!(w1.contains(part), "{part:?} in {w1}");
        }
        assert!(line_with(&lines, "fill worker 2").contains("DEAD"));
        assert!(line_with(&lines, "fill worker 3").contains("departed"));
        assert!(line_with(&lines, "orphans").contains("STALLED"));
        // Tab goes through the groups pane when it is shown, not otherwise.
        ui.next_pane();
        ui.next_pane();
        assert_eq!(ui.focus, Pane::Groups);
        ui.next_sort();
        ui.next_sort();
        let lines = render(&s, &ui);
        assert!(line_with(&lines, "worker groups (2)").contains("sort: backlog"));
        let fills = lines.iter().position(|l| l.contains("fills  ")).unwrap();
        let orphans = lines.iter().position(|l| l.contains("orphans")).unwrap();
        assert!(fills < orphans, "backlog 42 before 7");
        ui.set_groups(false);
        assert_eq!(ui.focus, Pane::Topics);
        ui.prev_pane();
        assert_eq!(ui.focus, Pane::Subscribers);
        // No groups: no groups pane.
        let lines = render(&known(), &Ui::default());
        assert!(!lines.iter().any(|l| l.contains("worker groups")));
    }

    #[test]
    fn rates_are_dashes_before_the_second_reading() {
        let mut s = known();
        s.interval_secs = None;
        s.producers[0].msgs_per_sec = None;
        s.producers[0].bytes_per_sec = None;
        let lines = render(&s, &Ui::default());
        assert!(line_with(&lines, "refresh").contains("first reading"));
        assert!(line_with(&lines, "feed  ").contains(" - "));
    }
}
