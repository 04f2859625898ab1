//! The third check: what the routing table holds (backends, and whether fallbacks and aliases
//! resolve). The probe reads the table once; the judgements are pure.

use std::time::Duration;

use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{RoutingTable, WatchRoutingTableRequest};
use tonic::transport::Channel;

use super::{Status, Verdict, plural};

/// What reading the routing table once found.
#[derive(Debug, Clone, PartialEq)]
pub enum TableAnswer {
    /// The table.
    Table(Box<RoutingTable>),
    /// The stream closed before a table.
    Closed,
    /// The watch failed (the gRPC status message).
    Failed(String),
    /// No table in time.
    Silent(Duration),
}

/// Reads the routing table once, as an edge would.
pub async fn probe(channel: Channel, timeout: Duration) -> TableAnswer {
    let first = async {
        let mut client = EdgeServiceClient::new(channel);
        let mut tables = client
            .watch_routing_table(WatchRoutingTableRequest {
                since_version: 0,
                edge_name: "doctor".to_owned(),
                deltas: false,
                cluster_id: String::new(),
            })
            .await?
            .into_inner();
        tables.message().await
    };
    match tokio::time::timeout(timeout, first).await {
        Ok(Ok(Some(table))) => TableAnswer::Table(Box::new(table)),
        Ok(Ok(None)) => TableAnswer::Closed,
        Ok(Err(status)) => TableAnswer::Failed(status.message().to_owned()),
        Err(_) => TableAnswer::Silent(timeout),
    }
}

/// The backends line and the chains line for what [`probe`] found; without a table the
/// chains check is skipped.
pub fn judge(answer: &TableAnswer) -> (Verdict, Verdict) {
    let backends = match answer {
        TableAnswer::Table(table) => {
            let (status, detail, hint) = judge_table(table);
            let (c_status, c_detail, c_hint) = judge_chains(table);
            return (
                Verdict {
                    status,
                    detail,
                    hint,
                },
                Verdict {
                    status: c_status,
                    detail: c_detail,
                    hint: c_hint,
                },
            );
        }
        TableAnswer::Closed => Verdict::new(
            Status::Fail,
            "the control plane closed the table stream without a table",
        ),
        TableAnswer::Failed(message) => Verdict::new(
            Status::Fail,
            format!("cannot read the routing table: {message}"),
        ),
        TableAnswer::Silent(timeout) => {
            Verdict::new(Status::Fail, format!("no routing table within {timeout:?}"))
                .hint("the cluster may have no leader yet; check the voters' logs")
        }
    };
    let chains = Verdict::new(Status::Skip, "skipped: no routing table to check");
    (backends, chains)
}

/// What the table's broken links say: a chain or alias naming a group that serves nothing is
/// a warning (the request path skips it), listed one per line.
pub fn judge_chains(table: &RoutingTable) -> (Status, String, Option<String>) {
    let links = &table.broken_links;
    if links.is_empty() {
        let chains = table.fallbacks.len() + table.aliases.len();
        return (
            Status::Pass,
            format!(
                "{} name servable groups",
                plural(chains, "fallback chain or alias")
            ),
            None,
        );
    }
    let lines: Vec<String> = links
        .iter()
        .map(|l| {
            let what = match l.kind.as_str() {
                "alias" => format!("alias {}", l.owner),
                "context_fallback" => format!("context-window fallback of {}", l.owner),
                _ => format!("fallback of {}", l.owner),
            };
            format!("{what} -> {} ({})", l.target, l.reason)
        })
        .collect();
    (
        Status::Warn,
        format!(
            "{} skipped: {}",
            plural(links.len(), "link"),
            lines.join("; ")
        ),
        Some(
            "fix the name in config.yaml, or see `switchyard catalog` for filtered and dead models"
                .into(),
        ),
    )
}

/// What a routing table says about backends: status, what was seen, and advice.
pub fn judge_table(table: &RoutingTable) -> (Status, String, Option<String>) {
    let endpoints = table.endpoints.len();
    let healthy = table.endpoints.iter().filter(|e| e.healthy).count();
    let mut nodes: Vec<&str> = table
        .endpoints
        .iter()
        .filter(|e| e.source == "discovered" && !e.node.is_empty())
        .map(|e| e.node.as_str())
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    let discovered = table
        .endpoints
        .iter()
        .filter(|e| e.source == "discovered")
        .count();
    let models = table.models.len();
    if endpoints == 0 {
        return (
            Status::Fail,
            format!(
                "the routing table (version {}) has no endpoints",
                table.version
            ),
            Some(
                "run `switchyard node-agent` on a host with Ollama, LM Studio, vLLM or LiteLLM \
                 (same join token), or declare endpoints in config.yaml"
                    .to_owned(),
            ),
        );
    }
    let found = if discovered == 0 {
        "none discovered by node agents".to_owned()
    } else {
        format!("{discovered} discovered on {}", nodes.join(", "))
    };
    let detail = format!(
        "{} ({found}), {healthy} healthy, {}",
        plural(endpoints, "endpoint"),
        plural(models, "model")
    );
    if models == 0 {
        return (
            Status::Fail,
            detail,
            Some("the endpoints list no models; is the model server's model list empty?".into()),
        );
    }
    if healthy == 0 {
        return (
            Status::Warn,
            detail,
            Some("no endpoint is healthy: are the model servers and their agents up?".into()),
        );
    }
    (Status::Pass, detail, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_proto::v1::{ModelRoute, RouteEndpoint};

    fn endpoint(id: &str, source: &str, node: &str, healthy: bool) -> RouteEndpoint {
        RouteEndpoint {
            id: id.into(),
            source: source.into(),
            node: node.into(),
            healthy,
            ..Default::default()
        }
    }

    fn model(name: &str) -> ModelRoute {
        ModelRoute {
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn tables_are_judged() {
        let cases = [
            (vec![], vec![], Status::Fail, "no endpoints"),
            (
                vec![endpoint("a", "discovered", "dgx", true)],
                vec![],
                Status::Fail,
                "0 models",
            ),
            (
                vec![endpoint("a", "discovered", "dgx", false)],
                vec![model("m")],
                Status::Warn,
                "0 healthy",
            ),
            (
                vec![
                    endpoint("a", "discovered", "dgx", true),
                    endpoint("b", "discovered", "dgx", true),
                    endpoint("c", "config", "", true),
                ],
                vec![model("m")],
                Status::Pass,
                "3 endpoints (2 discovered on dgx), 3 healthy, 1 model",
            ),
            (
                vec![endpoint("demo", "demo", "", true)],
                vec![model("demo")],
                Status::Pass,
                "none discovered",
            ),
        ];
        for (endpoints, models, want, text) in cases {
            let table = RoutingTable {
                endpoints,
                models,
                ..Default::default()
            };
            let (status, detail, _) = judge_table(&table);
            assert_eq!(status, want, "{detail}");
            assert!(detail.contains(text), "{detail:?} lacks {text:?}");
        }
    }

    #[test]
    fn table_answers_are_judged() {
        let table = RoutingTable {
            endpoints: vec![endpoint("a", "config", "", true)],
            models: vec![model("m")],
            ..Default::default()
        };
        let (backends, chains) = judge(&TableAnswer::Table(Box::new(table)));
        assert_eq!(
            (backends.status, chains.status),
            (Status::Pass, Status::Pass)
        );
        let cases = [
            (TableAnswer::Closed, "closed the table stream", false),
            (
                TableAnswer::Failed("no leader".into()),
                "cannot read the routing table: no leader",
                false,
            ),
            (
                TableAnswer::Silent(Duration::from_secs(5)),
                "no routing table within 5s",
                true,
            ),
        ];
        for (answer, detail, advised) in cases {
            let (backends, chains) = judge(&answer);
            assert_eq!(backends.status, Status::Fail, "{answer:?}");
            assert!(
                backends.detail.contains(detail),
                "{:?} lacks {detail:?}",
                backends.detail
            );
            assert_eq!(backends.hint.is_some(), advised, "{answer:?}");
            assert_eq!(chains.status, Status::Skip, "{answer:?}");
        }
    }
}
