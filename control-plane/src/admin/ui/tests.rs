//! The dashboard's renderers as tables, and its sign-in flow against a stand-in `/api/v1`.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tower::ServiceExt;

use super::html::{PAGES, count, esc, usd, utc};
use super::pages::{self, KeyRow, Page};
use super::usage::{Counters, HOUR_MS, Range, Usage, UsageReport, UsageRow, per_bucket};
use crate::admin::views::{EndpointView, StatusView};
use crate::state::Cooldown;

#[test]
fn text_from_the_cluster_is_escaped() {
    assert_eq!(
        esc("<b a=\"x\">&'</b>"),
        "&lt;b a=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;"
    );
}

#[test]
fn numbers_and_times_format_for_people() {
    let cases: &[(u64, &str)] = &[(0, "0"), (999, "999"), (1_000, "1\u{2009}000")];
    for (n, want) in cases {
        assert_eq!(count(*n), *want);
    }
    assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
    assert_eq!(usd(0.0), "$0.00");
    assert_eq!(usd(0.0042), "$0.0042");
    assert_eq!(usd(12.5), "$12.50");
    assert_eq!(utc(0), "-");
    // 2024-02-29 13:07:00 UTC, a leap day.
    assert_eq!(utc(1_709_212_020_000), "2024-02-29 13:07 UTC");
    assert_eq!(utc(1_767_225_600_000), "2026-01-01 00:00 UTC");
}

#[test]
fn pages_follow_the_navigation_order() {
    assert_eq!(Page::ALL.len(), PAGES.len());
    for (i, (page, (path, _))) in Page::ALL.into_iter().zip(PAGES).enumerate() {
        assert_eq!(page.path_and_title().0, *path);
        assert_eq!(page.index(), i);
    }
}

fn row(at: Option<u64>, group: &str, requests: u64) -> UsageRow {
    UsageRow {
        group: group.into(),
        bucket_start_ms: at,
        counters: Counters {
            requests,
            errors: 1,
            input_tokens: 10 * requests,
            output_tokens: 5,
            cost_usd: 0.5,
            latency_ms_sum: 100 * requests,
        },
    }
}

#[test]
fn buckets_cover_the_range_and_rows_land_in_theirs() {
    let range = Range::named(Some("24h"));
    let now = 50 * HOUR_MS + 123;
    let starts = range.starts(now);
    assert_eq!(starts.len(), 24);
    assert_eq!(starts[23], 50 * HOUR_MS);
    assert_eq!(starts[0], 27 * HOUR_MS);
    assert_eq!(Range::named(Some("nonsense")), range);
    assert_eq!(Range::named(Some("7d")).group_by(), "day");

    let report = UsageReport {
        rows: vec![
            row(Some(50 * HOUR_MS), "a", 3),
            // A finer bucket inside the same hour adds to it.
            row(Some(50 * HOUR_MS + 60_000), "b", 2),
            row(Some(27 * HOUR_MS), "c", 1),
            // Outside the range, or without a time: ignored.
            row(Some(3 * HOUR_MS), "d", 7),
            row(None, "e", 9),
        ],
        ..Default::default()
    };
    let buckets = per_bucket(&report, &starts, HOUR_MS);
    assert_eq!(buckets[23].requests, 5);
    assert_eq!(buckets[23].errors, 2);
    assert_eq!(buckets[23].mean_latency_ms(), 100);
    assert_eq!(buckets[0].requests, 1);
    assert_eq!(buckets.iter().map(|c| c.requests).sum::<u64>(), 6);
    assert_eq!(Counters::default().mean_latency_ms(), 0);
}

fn status() -> StatusView {
    serde_json::from_value(json!({
        "cluster_id": "c1", "node_id": 2, "role": "follower", "term": 3, "leader_id": 1,
        "leader_addr": "127.0.0.11:7000", "last_log_index": 9, "commit_index": 9,
        "applied_index": 9, "snapshot_index": 0, "snapshot_age_ms": null, "revision": 7,
        "digest": "abcdef0123456789", "members": [
            {"id": 1, "addr": "127.0.0.11:7000", "voter": true},
            {"id": 2, "addr": "127.0.0.12:7000", "voter": true},
            {"id": 3, "addr": "127.0.0.13:7000", "voter": false}],
        "nodes": [{"name": "dgx<1>", "status": "up", "since_ms": 1, "version": "0.1",
            "addresses": ["10.0.0.5"], "last_seen_ms_ago": 1500, "gpus": [{"index": 0,
            "name": "H100", "memory_total_mib": 81920, "memory_used_mib": 1024,
            "utilization_pct": 37}]}],
        "endpoints": []
    }))
    .unwrap()
}

#[test]
fn cluster_page_marks_the_leader_and_the_answering_voter() {
    let html = pages::cluster(&status(), 2, 1, &Usage::Missing);
    assert!(html.contains("voter 1 at 127.0.0.11:7000"), "{html}");
    assert!(html.contains("2 (answering, follower)"), "{html}");
    assert!(html.contains("learner"), "{html}");
    assert!(html.contains("no usage recorded"), "{html}");
}

#[test]
fn nodes_page_escapes_names_and_lists_gpus() {
    let html = pages::nodes(&status());
    assert!(html.contains("dgx&lt;1&gt;"), "{html}");
    assert!(!html.contains("dgx<1>"), "{html}");
    assert!(html.contains("H100 · 1024 / 81920 MiB · 37%"), "{html}");
    assert!(html.contains("1 s ago"), "{html}");
    // A follower says where heartbeats live.
    assert!(html.contains("open the leader"), "{html}");
}

#[test]
fn endpoints_page_shows_health_and_cooldowns() {
    let endpoint = |id: &str, healthy: bool| EndpointView {
        id: id.into(),
        kind: "openai".into(),
        base_url: "http://up".into(),
        source: "api".into(),
        node: None,
        healthy,
        models: vec!["m".into()],
        credentials: vec![],
        weight: 1,
        ..Default::default()
    };
    let cooldowns = [Cooldown {
        endpoint_id: "b".into(),
        credential_id: String::new(),
        model: "m".into(),
        until_ms: 61_000,
        reason: "rate_limited".into(),
    }];
    let html = pages::endpoints(
        &[
            endpoint("a", true),
            endpoint("b", true),
            endpoint("c", false),
        ],
        &cooldowns,
        1_000,
    );
    for want in [
        "healthy",
        "cooling (1)",
        "unhealthy",
        "rate_limited",
        "in 60 s",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let none = pages::endpoints(&[], &[], 0);
    assert!(none.contains("no endpoints") && none.contains("no cooldowns in force"));
}

fn key(id: &str, revoked: bool) -> KeyRow {
    // From JSON, as the page reads it, so fields the API adds later need no change here.
    serde_json::from_value(json!({
        "id": id, "name": format!("{id}-name"), "last4": "abcd", "allowed_models": [],
        "expires_at_ms": 0, "revoked": revoked, "limits": {"rpm": 60, "tpm": 0, "rpd": 0,
        "max_concurrent": 0}, "created_ms": 0, "source": "api", "spend_today_usd": 1.25
    }))
    .unwrap()
}

#[test]
fn keys_page_joins_usage_by_key_and_never_invents_it() {
    let keys = [key("k1", false), key("k2", true)];
    let html = pages::keys_page(&keys, &Usage::Missing, 0);
    assert!(html.contains("no usage recorded"), "{html}");
    assert!(
        html.contains("revoked") && html.contains("60 rpm"),
        "{html}"
    );
    assert!(html.contains("$1.25"), "{html}");

    let usage = Usage::Report(UsageReport {
        group_by: "key".into(),
        rows: vec![row(None, "k1", 4)],
        totals: row(None, "", 4).counters,
        ..Default::default()
    });
    let html = pages::keys_page(&keys, &usage, 0);
    assert!(!html.contains("no usage recorded"), "{html}");
    // k1: 4 requests, 45 tokens, $0.50.
    assert!(
        html.contains("<td>4</td><td>45</td><td>$0.50</td>"),
        "{html}"
    );
}

#[test]
fn usage_page_draws_four_charts_or_says_nothing_is_recorded() {
    let range = Range::named(None);
    let starts = range.starts(30 * HOUR_MS);
    let empty = pages::usage_page(range, &starts, &Usage::Missing, &Usage::Missing);
    assert!(empty.contains("no usage recorded") && !empty.contains("<svg"));
    let empty_report = Usage::Report(UsageReport::default());
    let html = pages::usage_page(range, &starts, &empty_report, &empty_report);
    assert!(html.contains("no usage recorded"), "{html}");

    let hourly = Usage::Report(UsageReport {
        group_by: "hour".into(),
        rows: vec![row(Some(30 * HOUR_MS), "30", 8)],
        totals: row(None, "", 8).counters,
        ..Default::default()
    });
    let by_model = Usage::Report(UsageReport {
        group_by: "model".into(),
        rows: vec![row(None, "m<x>", 8)],
        totals: row(None, "", 8).counters,
        ..Default::default()
    });
    let html = pages::usage_page(range, &starts, &hourly, &by_model);
    assert_eq!(html.matches("<svg").count(), 4, "{html}");
    for want in [
        "Requests",
        "Tokens",
        "Errors",
        "Mean latency",
        "succeeded: 7",
        "input: 80",
        "latency: 100 ms",
        "m&lt;x&gt;",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
}

/// A stand-in `/api/v1` accepting one token.
fn api() -> Router {
    let status = serde_json::to_value(status()).unwrap();
    Router::new()
        .route("/status", get(move || async move { axum::Json(status) }))
        .route("/models", get(|| async { axum::Json(json!([])) }))
        .route("/keys", get(|| async { axum::Json(json!([])) }))
        .route("/cooldowns", get(|| async { axum::Json(json!([])) }))
        .layer(axum::middleware::from_fn(
            |request: Request<Body>, next: axum::middleware::Next| async move {
                let ok = request.headers().get(header::AUTHORIZATION)
                    == Some(&"Bearer good".parse().unwrap());
                if ok {
                    next.run(request).await
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            },
        ))
}

async fn get_page(uri: &str, cookie: Option<&str>) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(uri);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if uri.contains("via=https") {
        request = request.header("x-forwarded-proto", "https");
    }
    let response = super::router(api())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn a_visitor_without_a_token_is_sent_to_sign_in() {
    let (status, headers, _) = get_page("/ui/nodes", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/login");
    let (status, headers, body) = get_page("/ui/login", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"token\""), "{body}");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
}

#[tokio::test]
async fn a_token_in_the_query_becomes_a_cookie_and_leaves_the_address() {
    let (status, headers, _) = get_page("/ui/usage?range=7d&token=good", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/ui/usage?range=7d");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("good"),
        "the cookie carries the token encoded"
    );
    let pair = cookie.split(';').next().unwrap();

    let (status, headers, body) = get_page("/ui/nodes", Some(pair)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert!(
        body.contains("H100") && body.contains("Answered by voter 2"),
        "{body}"
    );

    let (_, headers, _) = get_page("/ui/nodes?token=good", None).await;
    assert!(
        !headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Secure")
    );
    let (_, headers, _) = get_page("/ui/nodes?token=good&via=https", None).await;
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .ends_with("; Secure")
    );

    let (status, _, body) = get_page("/ui/usage?token=bad", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("not accepted"), "{body}");
}

#[tokio::test]
async fn a_stale_cookie_is_dropped_and_usage_without_a_route_reads_as_none() {
    let (status, headers, _) = get_page("/ui", Some("switchyard_ui=YmFk")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    // "good", base64url.
    let (status, _, body) = get_page("/ui/usage", Some("other=1; switchyard_ui=Z29vZA")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("no usage recorded"), "{body}");
}
