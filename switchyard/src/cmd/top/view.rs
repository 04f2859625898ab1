//! Draws one frame of `switchyard top` from a [`Snapshot`]: a tab bar, the chosen view, and a
//! status line. Pure over its inputs, so tests draw it on ratatui's `TestBackend`.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table, Tabs};
use switchyard_control_plane::admin::ui::html::{ago, count, usd, utc};
use switchyard_control_plane::admin::ui::usage::{Counters, HOUR_MS, Range, Usage, per_bucket};

use super::snapshot::Snapshot;

/// The views, in tab order (the dashboard's pages); their digit (1-6) selects them.
pub use switchyard_control_plane::admin::ui::pages::Page as View;

const HEADER: Style = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
const GOOD: Style = Style::new().fg(Color::Green);
const BAD: Style = Style::new().fg(Color::Red);
const WARN: Style = Style::new().fg(Color::Yellow);
const DIM: Style = Style::new().fg(Color::DarkGray);

/// Draws `view` of `snapshot`; `server` names the voter in the status line.
pub fn draw(frame: &mut Frame<'_>, view: View, snapshot: &Snapshot, server: &str) {
    let [tabs, body, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let titles = View::ALL
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{} {}", i + 1, v.title()));
    frame.render_widget(
        Tabs::new(titles)
            .select(view.index())
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)),
        tabs,
    );
    match view {
        View::Cluster => cluster(frame, body, snapshot),
        View::Nodes => nodes(frame, body, snapshot),
        View::Endpoints => endpoints(frame, body, snapshot),
        View::Models => models(frame, body, snapshot),
        View::Keys => keys(frame, body, snapshot),
        View::Usage => usage(frame, body, snapshot),
    }
    let line = match &snapshot.error {
        Some(e) => Line::from(vec![
            Span::styled(format!(" {server}: "), BAD),
            Span::raw(e.clone()),
        ]),
        None => Line::from(vec![
            Span::styled(format!(" {server}"), DIM),
            Span::styled(format!(" · read {}", utc(snapshot.at_ms)), DIM),
        ]),
    };
    let help = " ←/→ or 1-6 views · r refresh · q quit ";
    let [left, right] = Layout::horizontal([
        Constraint::Min(0),
        Constraint::Length(help.chars().count() as u16),
    ])
    .areas(status);
    frame.render_widget(Paragraph::new(line), left);
    frame.render_widget(Paragraph::new(Span::styled(help, DIM)), right);
}

/// A table with a bold header row, columns sized by `widths`, in a titled block.
fn table<'a>(
    title: &'a str,
    header: &[&'a str],
    rows: Vec<Row<'a>>,
    widths: &[Constraint],
) -> Table<'a> {
    Table::new(rows, widths.to_vec())
        .header(Row::new(header.iter().map(|h| Cell::from(*h))).style(HEADER))
        .block(Block::bordered().title(title))
}

fn empty<'a>(title: &'a str, what: &'a str) -> Paragraph<'a> {
    Paragraph::new(Span::styled(what, DIM)).block(Block::bordered().title(title))
}

fn cluster(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    let Some(status) = &s.status else {
        frame.render_widget(empty("Cluster", "no answer from the admin API"), area);
        return;
    };
    let [summary, members] =
        Layout::vertical([Constraint::Length(5), Constraint::Min(0)]).areas(area);
    let leader = match (status.leader_id, &status.leader_addr) {
        (Some(id), Some(addr)) => Span::styled(format!("voter {id} at {addr}"), GOOD),
        (Some(id), None) => Span::styled(format!("voter {id}"), GOOD),
        _ => Span::styled("no leader", BAD),
    };
    let up = status.nodes.iter().filter(|n| n.status == "up").count();
    let healthy = status.endpoints.iter().filter(|e| e.healthy).count();
    let requests = match s.usage_by_key.as_ref().and_then(Usage::recorded) {
        Some(u) => count(u.totals.requests),
        None => "no usage recorded".into(),
    };
    let lines = vec![
        Line::from(vec![Span::raw("Leader    "), leader]),
        Line::from(format!(
            "Term {}  revision {}  log {}  committed {}  applied {}",
            status.term,
            status.revision,
            status.last_log_index,
            status.commit_index,
            status.applied_index
        )),
        Line::from(format!(
            "Nodes up {up} of {}  healthy endpoints {healthy} of {}  models {}  keys {}  requests 24 h {requests}",
            status.nodes.len(),
            status.endpoints.len(),
            s.models.len(),
            s.keys.len(),
        )),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(format!("Cluster {}", status.cluster_id))),
        summary,
    );
    let rows = status
        .members
        .iter()
        .map(|m| {
            let role = if Some(m.id) == status.leader_id {
                Span::styled("leader", GOOD)
            } else if m.voter {
                Span::raw("voter")
            } else {
                Span::styled("learner", WARN)
            };
            let here = if m.id == status.node_id {
                format!("{} (answering)", m.id)
            } else {
                m.id.to_string()
            };
            Row::new(vec![
                Cell::from(here),
                Cell::from(m.addr.clone()),
                Cell::from(role),
            ])
        })
        .collect();
    frame.render_widget(
        table(
            "Members",
            &["ID", "ADDRESS", "ROLE"],
            rows,
            &[
                Constraint::Length(16),
                Constraint::Length(24),
                Constraint::Min(8),
            ],
        ),
        members,
    );
}

fn nodes(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    let nodes = s
        .status
        .as_ref()
        .map(|st| st.nodes.as_slice())
        .unwrap_or_default();
    if nodes.is_empty() {
        frame.render_widget(empty("Nodes", "no node agents have registered"), area);
        return;
    }
    let rows = nodes
        .iter()
        .map(|n| {
            let state = if n.status == "up" {
                Span::styled("up", GOOD)
            } else {
                Span::styled(n.status.clone(), BAD)
            };
            let gpus = n
                .gpus
                .iter()
                .map(|g| {
                    let util = if g.utilization_pct < 0 {
                        "?".into()
                    } else {
                        format!("{}%", g.utilization_pct)
                    };
                    format!(
                        "#{} {} {}/{} MiB {util}",
                        g.index, g.name, g.memory_used_mib, g.memory_total_mib
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            Row::new(vec![
                Cell::from(n.name.clone()),
                Cell::from(state),
                Cell::from(
                    n.last_seen_ms_ago
                        .map_or_else(|| "-".into(), |ms| format!("{} ago", ago(ms))),
                ),
                Cell::from(n.version.clone()),
                Cell::from(if gpus.is_empty() { "-".into() } else { gpus }),
            ])
        })
        .collect();
    frame.render_widget(
        table(
            "Nodes",
            &["NODE", "STATE", "LAST HEARD", "VERSION", "GPUS"],
            rows,
            &[
                Constraint::Length(18),
                Constraint::Length(6),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Min(20),
            ],
        ),
        area,
    );
}

fn endpoints(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    let endpoints = s
        .status
        .as_ref()
        .map(|st| st.endpoints.as_slice())
        .unwrap_or_default();
    let [top, bottom] = Layout::vertical([
        Constraint::Length(endpoints.len().max(1) as u16 + 3),
        Constraint::Min(0),
    ])
    .areas(area);
    let rows = endpoints
        .iter()
        .map(|e| {
            let resting = s.cooldowns.iter().filter(|c| c.endpoint_id == e.id).count();
            let health = match (e.healthy, resting) {
                (false, _) => Span::styled("unhealthy", BAD),
                (true, 0) => Span::styled("healthy", GOOD),
                (true, n) => Span::styled(format!("cooling ({n})"), WARN),
            };
            Row::new(vec![
                Cell::from(e.id.clone()),
                Cell::from(e.kind.clone()),
                Cell::from(health),
                Cell::from(e.models.join(", ")),
                Cell::from(e.base_url.clone()),
            ])
        })
        .collect();
    frame.render_widget(
        table(
            "Endpoints",
            &["ENDPOINT", "KIND", "HEALTH", "MODELS", "BASE URL"],
            rows,
            &[
                Constraint::Length(18),
                Constraint::Length(9),
                Constraint::Length(12),
                Constraint::Length(24),
                Constraint::Min(10),
            ],
        ),
        top,
    );
    let now = i64::try_from(s.at_ms).unwrap_or(i64::MAX);
    let rows = s
        .cooldowns
        .iter()
        .map(|c| {
            let left = u64::try_from(c.until_ms.saturating_sub(now)).unwrap_or(0);
            Row::new(vec![
                c.endpoint_id.clone(),
                if c.model.is_empty() {
                    "all".into()
                } else {
                    c.model.clone()
                },
                c.reason.clone(),
                format!("in {}", ago(left)),
            ])
        })
        .collect::<Vec<_>>();
    if rows.is_empty() {
        frame.render_widget(empty("Cooldowns", "no cooldowns in force"), bottom);
    } else {
        frame.render_widget(
            table(
                "Cooldowns",
                &["ENDPOINT", "MODEL", "REASON", "ENDS"],
                rows,
                &[
                    Constraint::Length(18),
                    Constraint::Length(24),
                    Constraint::Length(18),
                    Constraint::Min(8),
                ],
            ),
            bottom,
        );
    }
}

fn models(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    if s.models.is_empty() {
        frame.render_widget(empty("Models", "no models"), area);
        return;
    }
    let dash = |v: &[String], sep: &str| {
        if v.is_empty() {
            "-".into()
        } else {
            v.join(sep)
        }
    };
    let rows = s
        .models
        .iter()
        .map(|m| {
            let deployments = m
                .deployments
                .iter()
                .map(|d| {
                    let mark = if d.healthy { "" } else { " (down)" };
                    format!("{}→{}{mark}", d.endpoint_id, d.upstream_model)
                })
                .collect::<Vec<_>>()
                .join(", ");
            Row::new(vec![
                m.name.clone(),
                deployments,
                dash(&m.aliases, ", "),
                dash(&m.fallbacks, " → "),
            ])
        })
        .collect();
    frame.render_widget(
        table(
            "Models",
            &["MODEL", "DEPLOYMENTS", "ALIASES", "FALLBACKS"],
            rows,
            &[
                Constraint::Length(20),
                Constraint::Min(24),
                Constraint::Length(16),
                Constraint::Length(24),
            ],
        ),
        area,
    );
}

fn keys(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    if s.keys.is_empty() {
        frame.render_widget(empty("Keys", "no client keys"), area);
        return;
    }
    let usage = s.usage_by_key.clone().unwrap_or(Usage::Missing);
    let recorded = usage.recorded().is_some();
    let rows = s
        .keys
        .iter()
        .map(|row| {
            let k = &row.key;
            let state = if k.revoked {
                Span::styled("revoked", BAD)
            } else {
                Span::styled("active", GOOD)
            };
            let c = usage.of(&k.id).or_else(|| usage.of(&k.name));
            let cell = |f: fn(&Counters) -> String| c.as_ref().map_or_else(|| "-".into(), f);
            let spend = |v: Option<f64>| v.map_or_else(|| "-".into(), usd);
            Row::new(vec![
                Cell::from(k.name.clone()),
                Cell::from(k.id.clone()),
                Cell::from(state),
                Cell::from(cell(|c| count(c.requests))),
                Cell::from(cell(|c| count(c.tokens()))),
                Cell::from(cell(|c| usd(c.cost_usd))),
                Cell::from(spend(row.spend_today_usd)),
                Cell::from(spend(row.spend_month_usd)),
            ])
        })
        .collect();
    let title = if recorded {
        "Keys (usage: last 24 h)"
    } else {
        "Keys (no usage recorded)"
    };
    frame.render_widget(
        table(
            title,
            &[
                "KEY",
                "ID",
                "STATE",
                "REQ 24H",
                "TOKENS 24H",
                "COST 24H",
                "TODAY",
                "MONTH",
            ],
            rows,
            &[
                Constraint::Length(16),
                Constraint::Length(14),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(11),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(9),
            ],
        ),
        area,
    );
}

fn usage(frame: &mut Frame<'_>, area: Rect, s: &Snapshot) {
    let Some(report) = s.usage_by_hour.as_ref().and_then(Usage::recorded) else {
        frame.render_widget(empty("Usage, last 24 h", "no usage recorded"), area);
        return;
    };
    let range = Range::named(Some("24h"));
    let starts = range.starts(s.at_ms);
    let buckets = per_bucket(report, &starts, HOUR_MS);
    let t = report.totals;
    let charts: [(String, Vec<u64>, Color); 4] = [
        (
            format!("Requests per hour (24 h: {})", count(t.requests)),
            buckets.iter().map(|c| c.requests).collect(),
            Color::Blue,
        ),
        (
            format!(
                "Tokens per hour (24 h: {} in, {} out)",
                count(t.input_tokens),
                count(t.output_tokens)
            ),
            buckets.iter().map(Counters::tokens).collect(),
            Color::Magenta,
        ),
        (
            format!("Errors per hour (24 h: {})", count(t.errors)),
            buckets.iter().map(|c| c.errors).collect(),
            Color::Red,
        ),
        (
            format!("Mean latency per hour (24 h: {} ms)", t.mean_latency_ms()),
            buckets.iter().map(Counters::mean_latency_ms).collect(),
            Color::Green,
        ),
    ];
    let areas = Layout::vertical([Constraint::Ratio(1, 4); 4]).split(area);
    for ((title, data, color), area) in charts.into_iter().zip(areas.iter()) {
        frame.render_widget(
            Sparkline::default()
                .block(Block::bordered().title(title))
                .data(data)
                .style(Style::new().fg(color)),
            *area,
        );
    }
}
