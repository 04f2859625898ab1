//! Key handling as a table, and each view drawn on a test terminal.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;
use switchyard_control_plane::admin::ui::usage::{Counters, HOUR_MS, Usage, UsageReport, UsageRow};

use super::snapshot::Snapshot;
use super::view::{View, draw};
use super::{Action, on_key};

#[test]
fn keys_move_between_views_and_quit() {
    let key = |code| KeyEvent::new(code, KeyModifiers::NONE);
    let cases = [
        (
            View::Cluster,
            key(KeyCode::Right),
            Action::Show(View::Nodes),
        ),
        (View::Cluster, key(KeyCode::Left), Action::Show(View::Usage)),
        (View::Usage, key(KeyCode::Tab), Action::Show(View::Cluster)),
        (
            View::Nodes,
            key(KeyCode::Char('h')),
            Action::Show(View::Cluster),
        ),
        (
            View::Cluster,
            key(KeyCode::Char('5')),
            Action::Show(View::Keys),
        ),
        (
            View::Keys,
            key(KeyCode::Char('1')),
            Action::Show(View::Cluster),
        ),
        (View::Keys, key(KeyCode::Char('7')), Action::Ignore),
        (View::Keys, key(KeyCode::Char('r')), Action::Refresh),
        (View::Keys, key(KeyCode::Char('q')), Action::Quit),
        (View::Keys, key(KeyCode::Esc), Action::Quit),
        (
            View::Keys,
            KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Action::Quit,
        ),
    ];
    for (view, k, want) in cases {
        assert_eq!(on_key(view, k), want, "{view:?} {k:?}");
    }
}

fn snapshot() -> Snapshot {
    let status = serde_json::from_value(json!({
        "cluster_id": "c1", "node_id": 1, "role": "leader", "term": 2, "leader_id": 1,
        "leader_addr": "10.0.0.1:7700", "last_log_index": 5, "commit_index": 5,
        "applied_index": 5, "snapshot_index": 0, "snapshot_age_ms": null, "revision": 4,
        "digest": "d", "members": [{"id": 1, "addr": "10.0.0.1:7700", "voter": true}],
        "nodes": [{"name": "dgx-01", "status": "up", "since_ms": 1, "version": "0.1",
            "addresses": [], "last_seen_ms_ago": 300, "gpus": [{"index": 0, "name": "H100",
            "memory_total_mib": 80000, "memory_used_mib": 100, "utilization_pct": 9}]}],
        "endpoints": [{"id": "vllm", "kind": "openai", "base_url": "http://x/v1",
            "source": "api", "node": null, "healthy": true, "models": ["llama3"],
            "credentials": [], "weight": 1}]
    }))
    .unwrap();
    let at = 10 * HOUR_MS;
    let counters = Counters {
        requests: 12,
        errors: 2,
        input_tokens: 90,
        output_tokens: 120,
        cost_usd: 0.25,
        latency_ms_sum: 600,
    };
    Snapshot {
        status: Some(status),
        usage_by_hour: Some(Usage::Report(UsageReport {
            rows: vec![UsageRow {
                group: "h".into(),
                bucket_start_ms: Some(at),
                counters,
            }],
            totals: counters,
            ..Default::default()
        })),
        usage_by_key: Some(Usage::Missing),
        at_ms: at + 1,
        ..Default::default()
    }
}

fn screen(view: View, snapshot: &Snapshot) -> String {
    let mut terminal = Terminal::new(TestBackend::new(110, 30)).unwrap();
    terminal
        .draw(|f| draw(f, view, snapshot, "http://voter:7701"))
        .unwrap();
    let buffer = terminal.backend().buffer();
    buffer
        .content()
        .chunks(buffer.area.width as usize)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_view_shows_its_part_of_the_snapshot() {
    let s = snapshot();
    let cases: &[(View, &[&str])] = &[
        (
            View::Cluster,
            &[
                "voter 1 at 10.0.0.1:7700",
                "1 (answering)",
                "no usage recorded",
            ],
        ),
        (
            View::Nodes,
            &["dgx-01", "H100 100/80000 MiB 9%", "300 ms ago"],
        ),
        (
            View::Endpoints,
            &["vllm", "healthy", "no cooldowns in force"],
        ),
        (View::Models, &["no models"]),
        (View::Keys, &["no client keys"]),
        (
            View::Usage,
            &[
                "Requests per hour (24 h: 12)",
                "90 in, 120 out",
                "Errors per hour (24 h: 2)",
                "50 ms",
            ],
        ),
    ];
    for (view, wants) in cases {
        let text = screen(*view, &s);
        assert!(text.contains("q quit"), "{text}");
        for want in *wants {
            assert!(text.contains(want), "{view:?} lacks `{want}`:\n{text}");
        }
    }
    let unreachable = Snapshot {
        error: Some("cannot reach http://voter:7701".into()),
        ..Default::default()
    };
    let text = screen(View::Usage, &unreachable);
    assert!(
        text.contains("no usage recorded") && text.contains("cannot reach"),
        "{text}"
    );
}
