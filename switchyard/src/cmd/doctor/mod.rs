//! `switchyard doctor`: checks, in order, what a newcomer most often gets wrong.
//!
//! Control plane reachable (gRPC health) → join token accepted (an agent Hello) → backends in the
//! routing table → edge holds a table (`/health/readiness`) → a test request (`/v1/models`, and
//! one tiny chat with `--chat`). A check whose prerequisite failed is skipped, not failed twice.

use std::fmt;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use switchyard_proto::tls::TlsFiles;
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::edge_service_client::EdgeServiceClient;
use switchyard_proto::v1::{
    AgentMessage, ControlMessage, Hello, RoutingTable, WatchRoutingTableRequest,
};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// `switchyard doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Control-plane gRPC URL (any voter).
    #[arg(
        long,
        env = "SWITCHYARD_CONTROL_PLANE",
        default_value = "http://127.0.0.1:7700"
    )]
    pub control_plane: String,
    /// Join token to test, as a node agent would present it (empty when not given).
    #[arg(long, env = "SWITCHYARD_JOIN_TOKEN", hide_env_values = true)]
    pub join_token: Option<String>,
    /// Edge base URL (with or without `/v1`).
    #[arg(long, env = "SWITCHYARD_EDGE", default_value = "http://127.0.0.1:8080")]
    pub edge: String,
    /// Client API key for the edge's `/v1`, when the cluster has client keys.
    #[arg(long, env = "SWITCHYARD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Also send one short chat request to the first listed model (may cost money).
    #[arg(long)]
    pub chat: bool,
    /// Skip the edge checks (for a machine that runs only a voter or an agent).
    #[arg(long)]
    pub no_edge: bool,
    /// Only check that the control plane (and the edge, unless `--no-edge`) answer health
    /// checks: no agent session, no requests. Suits container health checks.
    #[arg(long)]
    pub quick: bool,
    /// Name the join-token check says Hello under (default `doctor-<hostname>`).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Milliseconds each check may take.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// config.yaml to check (either format): its warnings (LiteLLM settings Switchyard does not
    /// implement, unusable providers) are listed.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// CA certificate (PEM) to trust for an `https://` `--edge` (one serving `--https-cert`),
    /// instead of the system's roots.
    #[arg(long, env = "SWITCHYARD_HTTPS_CA")]
    pub https_ca: Option<std::path::PathBuf>,
    /// The control plane's mutual TLS, when the cluster runs it: any node's files will do.
    #[command(flatten)]
    pub tls: super::flags::TlsArgs,
}

/// How one check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Pass,
    /// Works, but something deserves attention.
    Warn,
    /// Broken.
    Fail,
    /// Not run, because something it needs failed or was not asked for.
    Skip,
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked, e.g. `control plane reachable`.
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do about a failure or warning.
    pub hint: Option<String>,
}

/// Every check, in the order they ran.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The check called `name`, if it ran or was skipped.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn push(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            status,
            detail: detail.into(),
            hint: None,
        });
    }

    fn push_hint(
        &mut self,
        name: &'static str,
        status: Status,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.checks.push(Check {
            name,
            status,
            detail: detail.into(),
            hint: Some(hint.into()),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for check in &self.checks {
            let mark = match check.status {
                Status::Pass => "✓",
                Status::Warn => "!",
                Status::Fail => "✗",
                Status::Skip => "-",
            };
            writeln!(f, "{mark} {:<width$}  {}", check.name, check.detail)?;
            if let Some(hint) = &check.hint {
                writeln!(f, "  {:<width$}  → {hint}", "")?;
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        if failed == 0 {
            write!(f, "all {} checks passed", self.checks.len())
        } else {
            write!(f, "{failed} of {} checks failed", self.checks.len())
        }
    }
}

/// Check names, shared by the report and its tests.
pub mod names {
    /// gRPC health of the control plane.
    pub const CONTROL_PLANE: &str = "control plane reachable";
    /// An agent Hello with the join token.
    pub const JOIN_TOKEN: &str = "join token accepted";
    /// Endpoints and models in the routing table.
    pub const BACKENDS: &str = "backends discovered";
    /// Fallbacks and aliases all name a group that serves something.
    pub const CHAINS: &str = "fallbacks and aliases resolve";
    /// Edge `/health/readiness`.
    pub const EDGE_TABLE: &str = "edge has a routing table";
    /// `/v1/models` (and a chat with `--chat`).
    pub const TEST_REQUEST: &str = "test request succeeds";
    /// `--config`: the file loads, and what it warns about.
    pub const CONFIG: &str = "config file loads";
}

impl super::Run for DoctorArgs {
    /// Runs every check and prints the report; fails when any check failed.
    async fn run(self, _: super::Shutdown) -> anyhow::Result<()> {
        use std::io::Write;
        let report = check(&self).await;
        writeln!(std::io::stdout().lock(), "{report}")?;
        if report.ok() {
            Ok(())
        } else {
            anyhow::bail!("doctor found problems (see the report above)")
        }
    }
}

/// Runs every check and returns what each found.
pub async fn check(args: &DoctorArgs) -> Report {
    let timeout = Duration::from_millis(args.timeout_ms.max(1));
    let mut report = Report::default();
    if let Some(path) = &args.config {
        config_file(path, &mut report);
    }
    let channel = control_plane(args, timeout, &mut report).await;

    if args.quick {
        for name in [names::JOIN_TOKEN, names::BACKENDS, names::CHAINS] {
            report.push(name, Status::Skip, "skipped (--quick)");
        }
    } else if let Some(channel) = &channel {
        join_token(args, channel.clone(), timeout, &mut report).await;
        backends(channel.clone(), timeout, &mut report).await;
    } else {
        for name in [names::JOIN_TOKEN, names::BACKENDS, names::CHAINS] {
            report.push(
                name,
                Status::Skip,
                "skipped: the control plane is unreachable",
            );
        }
    }

    if args.no_edge {
        for name in [names::EDGE_TABLE, names::TEST_REQUEST] {
            report.push(name, Status::Skip, "skipped (--no-edge)");
        }
        return report;
    }
    let client = match super::flags::http_client(timeout, args.https_ca.as_deref()) {
        Ok(client) => client,
        Err(e) => {
            report.push(
                names::EDGE_TABLE,
                Status::Fail,
                format!("no HTTP client: {e}"),
            );
            return report;
        }
    };
    let edge = edge_base(&args.edge);
    let edge_ready = edge_table(&client, &edge, &mut report).await;
    if args.quick {
        report.push(names::TEST_REQUEST, Status::Skip, "skipped (--quick)");
    } else if edge_ready {
        test_request(args, &client, &edge, &mut report).await;
    } else {
        report.push(
            names::TEST_REQUEST,
            Status::Skip,
            "skipped: the edge is not ready",
        );
    }
    report
}

/// Loads the config file as a voter would and lists its warnings.
fn config_file(path: &std::path::Path, report: &mut Report) {
    let env = std::env::vars().collect();
    match switchyard_control_plane::config::lint(path, &env) {
        Ok(warnings) if warnings.is_empty() => {
            report.push(names::CONFIG, Status::Pass, "no warnings");
        }
        Ok(warnings) => report.push_hint(
            names::CONFIG,
            Status::Warn,
            format!(
                "{}:\n    {}",
                plural(warnings.len(), "warning"),
                warnings.join("\n    ")
            ),
            "these settings are accepted but not acted on; docs/migrate-from-litellm.md says \
             what Switchyard does with each LiteLLM key",
        ),
        Err(e) => report.push_hint(
            names::CONFIG,
            Status::Fail,
            e.to_string(),
            "fix the named field; the control plane refuses to start with this file",
        ),
    }
}

/// Connects and asks the gRPC health service; returns the channel when it serves.
async fn control_plane(
    args: &DoctorArgs,
    timeout: Duration,
    report: &mut Report,
) -> Option<Channel> {
    let tls = match TlsFiles::from_parts(
        args.tls.tls_ca.clone(),
        args.tls.tls_cert.clone(),
        args.tls.tls_key.clone(),
        "--tls-ca, --tls-cert and --tls-key",
    ) {
        Ok(tls) => tls,
        Err(e) => {
            report.push(names::CONTROL_PLANE, Status::Fail, e.to_string());
            return None;
        }
    };
    let url = switchyard_proto::tls::url_for(&grpc_url(&args.control_plane), tls.is_some());
    let hint = if tls.is_some() {
        "is `switchyard control-plane` running with --tls-* files from the same CA as these, on \
         an address this machine can reach?"
    } else {
        "is `switchyard control-plane` running, listening on an address this machine can \
         reach (not 127.0.0.1 on another host), and is --control-plane / \
         SWITCHYARD_CONTROL_PLANE right? If the cluster runs mutual TLS, give doctor --tls-ca, \
         --tls-cert and --tls-key too."
    };
    let endpoint = match switchyard_proto::tls::endpoint(&url, tls.as_ref()) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(e) => {
            report.push_hint(
                names::CONTROL_PLANE,
                Status::Fail,
                format!("{url:?}: {}", chain(&e)),
                "use http://HOST:7700, and readable PEM files for --tls-*",
            );
            return None;
        }
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            report.push_hint(
                names::CONTROL_PLANE,
                Status::Fail,
                format!("cannot connect to {url}: {}", chain(&e)),
                hint,
            );
            return None;
        }
    };
    let mut health = HealthClient::new(channel.clone());
    let asked = health.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => {
            report.push(
                names::CONTROL_PLANE,
                Status::Pass,
                format!("{url} is serving"),
            );
            Some(channel)
        }
        Ok(Ok(response)) => {
            let status = ServingStatus::try_from(response.get_ref().status).map_or_else(
                |_| "an unknown status".to_owned(),
                |s| s.as_str_name().to_owned(),
            );
            report.push_hint(
                names::CONTROL_PLANE,
                Status::Fail,
                format!("{url} answers health checks with {status}"),
                "the voter is starting or shutting down; look at its log",
            );
            None
        }
        Ok(Err(status)) => {
            report.push_hint(
                names::CONTROL_PLANE,
                Status::Fail,
                format!("{url} answered: {}", status.message()),
                if tls.is_some() {
                    "is this a Switchyard control plane? (the edge listens on another port)"
                } else {
                    "is this a Switchyard control plane? (the edge listens on another port) If \
                     the cluster runs mutual TLS, give doctor --tls-ca, --tls-cert and --tls-key."
                },
            );
            None
        }
        Err(_) => {
            report.push_hint(
                names::CONTROL_PLANE,
                Status::Fail,
                format!("{url} did not answer within {timeout:?}"),
                hint,
            );
            None
        }
    }
}

/// Says Hello as a node agent would and reads the first answer, then hangs up.
///
/// Admission is checked before anything is committed, so a rejected token leaves no trace. An
/// accepted one is recorded as a node called `doctor-<host>` that goes down when we hang up; a
/// follower redirects before committing anything.
async fn join_token(args: &DoctorArgs, channel: Channel, timeout: Duration, report: &mut Report) {
    let token = args.join_token.clone().unwrap_or_default();
    let node_name = args
        .node_name
        .clone()
        .unwrap_or_else(|| format!("doctor-{}", switchyard_node_agent::config::local_hostname()));
    let answer = hello(channel.clone(), &node_name, &token, timeout).await;
    let hint = "give agents the voters' SWITCHYARD_JOIN_TOKEN (--join-token), and pass the same \
                to doctor";
    match answer {
        Ok(Ok(Some(message))) => match message.body {
            Some(ControlBody::Ack(_)) if token.is_empty() => report.push_hint(
                names::JOIN_TOKEN,
                Status::Warn,
                "the control plane accepts agents without a join token",
                "set SWITCHYARD_JOIN_TOKEN on the voters so only your agents can report",
            ),
            Some(ControlBody::Ack(_)) => {
                // Would a wrong token pass too? Then the voters check none.
                let wrong = format!("{token}-not-the-token");
                let open = matches!(
                    hello(channel, &node_name, &wrong, timeout).await,
                    Ok(Ok(Some(ControlMessage {
                        body: Some(ControlBody::Ack(_))
                    })))
                );
                if open {
                    report.push_hint(
                        names::JOIN_TOKEN,
                        Status::Warn,
                        "accepted, but so is any other token: the voters have no join token",
                        "set SWITCHYARD_JOIN_TOKEN on the voters so only your agents can report",
                    );
                } else {
                    report.push(names::JOIN_TOKEN, Status::Pass, "accepted by the leader");
                }
            }
            Some(ControlBody::Redirect(redirect)) => report.push(
                names::JOIN_TOKEN,
                Status::Pass,
                format!(
                    "accepted by a follower (leader: {})",
                    or_unknown(&redirect.leader_addr)
                ),
            ),
            Some(ControlBody::Rejected(rejected)) if token.is_empty() => report.push_hint(
                names::JOIN_TOKEN,
                Status::Fail,
                format!("rejected without a token: {}", rejected.reason),
                "the cluster requires a join token; pass it with --join-token",
            ),
            Some(ControlBody::Rejected(rejected)) => report.push_hint(
                names::JOIN_TOKEN,
                Status::Fail,
                format!("rejected: {}", rejected.reason),
                hint,
            ),
            None => report.push(
                names::JOIN_TOKEN,
                Status::Fail,
                "the control plane sent an empty answer",
            ),
        },
        Ok(Ok(None)) => report.push(
            names::JOIN_TOKEN,
            Status::Fail,
            "the control plane closed the stream without answering",
        ),
        Ok(Err(status)) => report.push_hint(
            names::JOIN_TOKEN,
            Status::Fail,
            format!("the report stream failed: {}", status.message()),
            "a cluster without a leader cannot admit agents; check the voters' logs",
        ),
        Err(_) => report.push_hint(
            names::JOIN_TOKEN,
            Status::Fail,
            format!("no answer within {timeout:?}"),
            "a cluster without a leader cannot admit agents; check the voters' logs",
        ),
    }
}

/// Opens a report stream, says Hello and returns the first answer; the call closes on return.
async fn hello(
    channel: Channel,
    node_name: &str,
    token: &str,
    timeout: Duration,
) -> Result<Result<Option<ControlMessage>, tonic::Status>, tokio::time::error::Elapsed> {
    let hello = AgentMessage {
        body: Some(AgentBody::Hello(Hello {
            node_name: node_name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            join_token: token.to_owned(),
            addresses: Vec::new(),
        })),
    };
    // Kept open until we drop it, so the voter answers before it sees the stream end.
    let outbound = futures::stream::iter([hello]).chain(futures::stream::pending());
    let exchange = async {
        let mut client = AgentServiceClient::new(channel);
        let mut inbound = client.report(outbound).await?.into_inner();
        inbound.message().await
    };
    tokio::time::timeout(timeout, exchange).await
}

/// Reads the routing table once and counts what is in it.
async fn backends(channel: Channel, timeout: Duration, report: &mut Report) {
    let first = async {
        let mut client = EdgeServiceClient::new(channel);
        let mut tables = client
            .watch_routing_table(WatchRoutingTableRequest {
                since_version: 0,
                edge_name: "doctor".to_owned(),
            })
            .await?
            .into_inner();
        tables.message().await
    };
    match tokio::time::timeout(timeout, first).await {
        Ok(Ok(Some(table))) => {
            let (status, detail, hint) = judge_table(&table);
            match hint {
                Some(hint) => report.push_hint(names::BACKENDS, status, detail, hint),
                None => report.push(names::BACKENDS, status, detail),
            }
            match judge_chains(&table) {
                (status, detail, Some(hint)) => {
                    report.push_hint(names::CHAINS, status, detail, hint);
                }
                (status, detail, None) => report.push(names::CHAINS, status, detail),
            }
            return;
        }
        Ok(Ok(None)) => report.push(
            names::BACKENDS,
            Status::Fail,
            "the control plane closed the table stream without a table",
        ),
        Ok(Err(status)) => report.push(
            names::BACKENDS,
            Status::Fail,
            format!("cannot read the routing table: {}", status.message()),
        ),
        Err(_) => report.push_hint(
            names::BACKENDS,
            Status::Fail,
            format!("no routing table within {timeout:?}"),
            "the cluster may have no leader yet; check the voters' logs",
        ),
    }
    report.push(
        names::CHAINS,
        Status::Skip,
        "skipped: no routing table to check",
    );
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

/// `GET /health/readiness`; true when the edge holds a table.
async fn edge_table(client: &reqwest::Client, edge: &str, report: &mut Report) -> bool {
    let url = format!("{edge}/health/readiness");
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => {
            report.push(names::EDGE_TABLE, Status::Pass, format!("{edge} is ready"));
            true
        }
        Ok(response) => {
            report.push_hint(
                names::EDGE_TABLE,
                Status::Fail,
                format!("{url} answered {}", response.status()),
                "the edge has no routing table yet: does its --control-plane point at a voter \
                 it can reach?",
            );
            false
        }
        Err(e) => {
            report.push_hint(
                names::EDGE_TABLE,
                Status::Fail,
                format!("cannot reach {url}: {}", chain(&e)),
                "is `switchyard edge` running there? pass its address with --edge",
            );
            false
        }
    }
}

/// `GET /v1/models`, then (with `--chat`) one short chat to the first model.
async fn test_request(
    args: &DoctorArgs,
    client: &reqwest::Client,
    edge: &str,
    report: &mut Report,
) {
    let authed = |request: reqwest::RequestBuilder| match &args.api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let models = match fetch_models(authed(client.get(format!("{edge}/v1/models")))).await {
        Ok(models) => models,
        Err((detail, hint)) => {
            report.push_hint(names::TEST_REQUEST, Status::Fail, detail, hint);
            return;
        }
    };
    let Some(first) = models.first() else {
        report.push_hint(
            names::TEST_REQUEST,
            Status::Fail,
            "GET /v1/models lists no models",
            "the edge serves, but no backend offers a model yet",
        );
        return;
    };
    let listed = preview(&models);
    if !args.chat {
        report.push(
            names::TEST_REQUEST,
            Status::Pass,
            format!("GET /v1/models lists {listed} (add --chat to send one chat to {first})"),
        );
        return;
    }
    let body = serde_json::json!({
        "model": first,
        "messages": [{"role": "user", "content": "Reply with the word ok."}],
        "max_tokens": 8,
    });
    let request = authed(
        client
            .post(format!("{edge}/v1/chat/completions"))
            .json(&body),
    );
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            let served = response
                .headers()
                .get("x-switchyard-endpoint")
                .and_then(|v| v.to_str().ok())
                .map(|e| format!(" via {e}"))
                .unwrap_or_default();
            report.push(
                names::TEST_REQUEST,
                Status::Pass,
                format!("GET /v1/models lists {listed}; a chat to {first} answered{served}"),
            );
        }
        Ok(response) => {
            let status = response.status();
            let message = error_message(response).await;
            report.push_hint(
                names::TEST_REQUEST,
                Status::Fail,
                format!("a chat to {first} answered {status}: {message}"),
                "the edge routed the request but the upstream refused it; check the \
                 endpoint's URL and provider key",
            );
        }
        Err(e) => report.push(
            names::TEST_REQUEST,
            Status::Fail,
            format!("a chat to {first} failed: {}", chain(&e)),
        ),
    }
}

/// The model ids of a `/v1/models` answer, or what went wrong and what to do.
async fn fetch_models(request: reqwest::RequestBuilder) -> Result<Vec<String>, (String, String)> {
    let response = request.send().await.map_err(|e| {
        (
            format!("GET /v1/models failed: {}", chain(&e)),
            "the edge answered its health check but not /v1; look at its log".to_owned(),
        )
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        let message = error_message(response).await;
        return Err((
            format!("GET /v1/models answered {status}: {message}"),
            "the cluster has client keys: pass one with --api-key (SWITCHYARD_API_KEY)".into(),
        ));
    }
    if !status.is_success() {
        let message = error_message(response).await;
        return Err((
            format!("GET /v1/models answered {status}: {message}"),
            "look at the edge's log".into(),
        ));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| {
        (
            format!("GET /v1/models did not return JSON: {e}"),
            "is --edge pointing at a Switchyard edge?".to_owned(),
        )
    })?;
    Ok(body
        .get("data")
        .and_then(|d| d.as_array())
        .map(|models| {
            models
                .iter()
                .filter_map(|m| m.get("id")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The OpenAI-shaped error message of a response, or its status text.
async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Option<serde_json::Value> = response.json().await.ok();
    body.as_ref()
        .and_then(|b| b.pointer("/error/message"))
        .and_then(|m| m.as_str())
        .map_or_else(|| status.to_string(), str::to_owned)
}

/// `3 models (a, b, c)` with at most five names.
fn preview(models: &[String]) -> String {
    let shown: Vec<&str> = models.iter().take(5).map(String::as_str).collect();
    let more = if models.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    let noun = if models.len() == 1 { "model" } else { "models" };
    format!("{} {noun} ({}{more})", models.len(), shown.join(", "))
}

/// `http://` is assumed when the URL has no scheme.
pub fn grpc_url(text: &str) -> String {
    let text = text.trim().trim_end_matches('/');
    if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    }
}

/// The edge's base URL without a trailing `/` or `/v1`, `http://` assumed.
pub fn edge_base(text: &str) -> String {
    let url = grpc_url(text);
    url.strip_suffix("/v1").map_or(url.clone(), str::to_owned)
}

/// `1 model`, `3 models`.
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

fn or_unknown(text: &str) -> &str {
    if text.is_empty() { "unknown" } else { text }
}

/// The innermost cause of an error (`Connection refused (os error 111)`), which is the part
/// that tells a newcomer what is wrong; connect errors wrap it in several layers.
fn chain(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
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
    fn urls_are_normalised() {
        assert_eq!(grpc_url("cp:7700"), "http://cp:7700");
        assert_eq!(grpc_url("https://cp:7700/"), "https://cp:7700");
        assert_eq!(edge_base("localhost:8080/v1"), "http://localhost:8080");
        assert_eq!(edge_base("http://e/v1/"), "http://e");
        assert_eq!(edge_base("http://e"), "http://e");
    }

    #[test]
    fn report_marks_and_counts() {
        let mut report = Report::default();
        report.push(names::CONTROL_PLANE, Status::Pass, "up");
        report.push_hint(names::JOIN_TOKEN, Status::Fail, "rejected", "fix it");
        let text = report.to_string();
        assert!(text.contains("✓ control plane reachable"), "{text}");
        assert!(text.contains("✗ join token accepted"), "{text}");
        assert!(text.contains("→ fix it"), "{text}");
        assert!(text.ends_with("1 of 2 checks failed"), "{text}");
        assert!(!report.ok());
    }

    #[test]
    fn previews_are_short() {
        let many: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        assert_eq!(preview(&many), "7 models (m0, m1, m2, m3, m4, …)");
        assert_eq!(preview(&many[..1]), "1 model (m0)");
    }
}
