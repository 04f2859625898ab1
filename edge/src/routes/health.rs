//! `GET /health/liveliness` and `GET /health/readiness`: probes for load balancers and
//! Kubernetes; `GET /health`: the per-deployment report in LiteLLM's shape.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::routing::RoutingTable;
use crate::state::EdgeState;

/// The process is up and answering.
pub async fn liveliness() -> Json<&'static str> {
    Json("I'm alive!")
}

/// Ready once a routing table is held (from the control plane or the cache); 503 before.
/// This is a probe answer, not an API error, so it picks its own status.
pub async fn readiness(State(state): State<EdgeState>) -> (StatusCode, Json<Value>) {
    match state.table() {
        Some(table) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "table_version": table.version})),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "table_version": null})),
        ),
    }
}

/// `GET /health`: every deployment with its endpoint's health, in LiteLLM's shape
/// (`healthy_endpoints`, `unhealthy_endpoints` and their counts). Answered from the routing
/// table, which carries the cluster's last active check results: no request goes upstream.
/// Callers authenticate as for `/v1/models`, since the answer names upstream servers.
pub async fn report(
    State(state): State<EdgeState>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, crate::error::ApiError> {
    let table = state
        .table_or_wait()
        .await
        .ok_or(crate::error::ApiError::NoRoutingTable)?;
    crate::auth::authenticate(&headers, &table.keys, state.bootstrap(), now_ms())?;
    Ok(Json(health_report(&table)))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `/health` body for `table`, sorted by model then endpoint.
pub fn health_report(table: &RoutingTable) -> Value {
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    let mut groups: Vec<_> = table.models.values().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    for group in groups {
        for d in &group.deployments {
            let e = &d.endpoint;
            let mut entry = json!({
                "model": &*group.name,
                "upstream_model": &*d.upstream_model,
                "endpoint": &*e.id,
                "api_base": without_userinfo(&e.base_url),
            });
            if let Some((_, at_ms, error)) = &e.checked {
                entry["checked_at_ms"] = json!(at_ms);
                if !error.is_empty() {
                    entry["error"] = json!(error);
                }
            }
            let passed = e.checked.as_ref().is_none_or(|(passed, _, _)| *passed);
            if e.healthy && passed {
                healthy.push(entry);
            } else {
                unhealthy.push(entry);
            }
        }
    }
    json!({
        "healthy_count": healthy.len(),
        "unhealthy_count": unhealthy.len(),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
    })
}

/// A base URL without `user:password@`, which must not leave the edge.
fn without_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1;

    #[test]
    fn report_splits_deployments_by_health_and_hides_userinfo() {
        let endpoint = |id: &str, healthy: bool, checked: bool, passed: bool| v1::RouteEndpoint {
            id: id.into(),
            kind: "openai".into(),
            base_url: format!("http://user:pw@{id}:8000/v1"),
            healthy,
            checked,
            check_passed: passed,
            check_error: if passed {
                String::new()
            } else {
                "connect".into()
            },
            ..Default::default()
        };
        let wire = v1::RoutingTable {
            version: 1,
            endpoints: vec![
                endpoint("a", true, true, true),
                endpoint("b", false, true, false),
                endpoint("c", true, false, false),
            ],
            models: ["a", "b", "c"]
                .map(|id| v1::ModelRoute {
                    name: "m".into(),
                    deployments: vec![v1::Deployment {
                        endpoint_id: id.into(),
                        upstream_model: "x".into(),
                        weight: 1,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .into_iter()
                .enumerate()
                .map(|(i, mut r)| {
                    r.name = format!("m{i}");
                    r
                })
                .collect(),
            ..Default::default()
        };
        let report = health_report(&RoutingTable::compile(&wire, None));
        assert_eq!(report["healthy_count"], 2);
        assert_eq!(report["unhealthy_count"], 1);
        assert_eq!(report["unhealthy_endpoints"][0]["endpoint"], "b");
        assert_eq!(report["unhealthy_endpoints"][0]["error"], "connect");
        assert_eq!(
            report["healthy_endpoints"][0]["api_base"],
            "http://a:8000/v1"
        );
        assert!(
            report["healthy_endpoints"][1]
                .get("checked_at_ms")
                .is_none()
        );
    }
}
