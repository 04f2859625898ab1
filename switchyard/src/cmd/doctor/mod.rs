//! `switchyard doctor`: checks, in order, what a newcomer most often gets wrong.
//!
//! Control plane reachable (gRPC health) → join token accepted (an agent Hello) → backends in the
//! routing table → edge holds a table (`/health/readiness`) → a test request (`/v1/models`, and
//! one tiny chat with `--chat`). A check whose prerequisite failed is skipped, not failed twice.
//!
//! Each check is a probe that records what it saw and a pure judgement that words it as a
//! [`Verdict`], table-tested beside it: [`control_plane`], [`join_token`], [`table`], [`edge`].

use std::fmt;
use std::time::Duration;

use clap::Args;

pub mod control_plane;
pub mod edge;
pub mod join_token;
pub mod table;

pub use table::{judge_chains, judge_table};

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

/// What a judgement says about one check: its line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The outcome.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do about a failure or warning.
    pub hint: Option<String>,
}

impl Verdict {
    /// A verdict without advice.
    pub fn new(status: Status, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            hint: None,
        }
    }

    /// The same verdict with advice.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
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

    fn add(&mut self, name: &'static str, v: Verdict) {
        self.checks.push(Check {
            name,
            status: v.status,
            detail: v.detail,
            hint: v.hint,
        });
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
    let (health, tls, channel) = control_plane::probe(args, timeout).await;
    report.add(names::CONTROL_PLANE, control_plane::judge(&health, tls));

    if args.quick {
        for name in [names::JOIN_TOKEN, names::BACKENDS, names::CHAINS] {
            report.push(name, Status::Skip, "skipped (--quick)");
        }
    } else if let Some(channel) = &channel {
        let admission = join_token::probe(args, channel.clone(), timeout).await;
        report.add(names::JOIN_TOKEN, join_token::judge(&admission));
        let (backends, chains) = table::judge(&table::probe(channel.clone(), timeout).await);
        report.add(names::BACKENDS, backends);
        report.add(names::CHAINS, chains);
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
    let readiness = edge::probe_readiness(&client, &edge).await;
    let edge_ready = readiness == edge::Readiness::Ready;
    report.add(names::EDGE_TABLE, edge::judge_readiness(&edge, &readiness));
    if args.quick {
        report.push(names::TEST_REQUEST, Status::Skip, "skipped (--quick)");
    } else if edge_ready {
        edge::test_request(args, &client, &edge, &mut report).await;
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
}
