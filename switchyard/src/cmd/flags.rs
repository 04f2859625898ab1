//! Flag groups more than one subcommand flattens in, and the listening helpers the roles share.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use switchyard_node_agent::{ProbeTarget, ServerKind};
use switchyard_proto::tls::TlsFiles;
use tokio::net::TcpListener;

/// Mutual TLS on the gRPC links between edges, agents and voters (`switchyard certs init`
/// makes the files). All three or none.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// CA certificate (PEM) that signed every node's certificate; turns mutual TLS on.
    #[arg(long, env = "SWITCHYARD_TLS_CA", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM).
    #[arg(long, env = "SWITCHYARD_TLS_CERT", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "SWITCHYARD_TLS_KEY", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The three files, or none; clap has already refused some-but-not-all.
    pub fn files(&self) -> Result<Option<TlsFiles>, switchyard_proto::tls::TlsError> {
        TlsFiles::from_parts(
            self.tls_ca.clone(),
            self.tls_cert.clone(),
            self.tls_key.clone(),
            "--tls-ca, --tls-cert and --tls-key",
        )
    }
}

/// The edge's optional telemetry sinks: a usage webhook, a request log and OTLP traces. Unset
/// flags keep the edge's defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct TelemetryArgs {
    /// URL to POST batches of per-request usage events to (a JSON array).
    #[arg(long, env = "SWITCHYARD_USAGE_WEBHOOK")]
    pub usage_webhook: Option<String>,
    /// Bearer token sent to the usage webhook.
    #[arg(long, env = "SWITCHYARD_USAGE_WEBHOOK_TOKEN", hide_env_values = true)]
    pub usage_webhook_token: Option<String>,
    /// File to append one JSON line per request to (`-` for stdout); never prompts or keys.
    #[arg(long, env = "SWITCHYARD_REQUEST_LOG")]
    pub request_log: Option<PathBuf>,
    /// OTLP/HTTP base URL to export a trace span per request to (`{url}/v1/traces`, JSON).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Most events each sink queues while its receiver is down (then drops and counts them)
    /// [default: 10000].
    #[arg(long, env = "SWITCHYARD_TELEMETRY_QUEUE")]
    pub telemetry_queue: Option<usize>,
    /// Most events per webhook or OTLP request [default: 500].
    #[arg(long, env = "SWITCHYARD_TELEMETRY_BATCH")]
    pub telemetry_batch: Option<usize>,
    /// Longest milliseconds an event waits before it is sent [default: 1000].
    #[arg(long, env = "SWITCHYARD_TELEMETRY_FLUSH_MS")]
    pub telemetry_flush_ms: Option<u64>,
    /// Which event a full queue drops: `oldest` or `newest` [default: oldest].
    #[arg(long, env = "SWITCHYARD_TELEMETRY_DROP")]
    pub telemetry_drop: Option<switchyard_edge::config::DropPolicy>,
}

impl TelemetryArgs {
    /// Sets what was given on `cfg`.
    pub fn apply(self, cfg: &mut switchyard_edge::Config) {
        cfg.usage_webhook = self.usage_webhook.or(cfg.usage_webhook.take());
        if let Some(token) = self.usage_webhook_token {
            cfg.usage_webhook_token = Some(switchyard_edge::config::Secret::new(token));
        }
        cfg.request_log = self.request_log.or(cfg.request_log.take());
        cfg.otlp_endpoint = self.otlp_endpoint.or(cfg.otlp_endpoint.take());
        cfg.telemetry_queue = self.telemetry_queue.unwrap_or(cfg.telemetry_queue);
        cfg.telemetry_batch = self.telemetry_batch.unwrap_or(cfg.telemetry_batch);
        cfg.telemetry_flush_ms = self.telemetry_flush_ms.unwrap_or(cfg.telemetry_flush_ms);
        cfg.telemetry_drop = self.telemetry_drop.unwrap_or(cfg.telemetry_drop);
    }
}

/// HTTPS on this role's HTTP listener (the edge's `/v1`, a voter's admin API), for a LAN or
/// tailnet with no TLS-terminating proxy in front. Both or neither; plain HTTP without them.
#[derive(Debug, Clone, Default, Args)]
pub struct HttpsArgs {
    /// Certificate chain (PEM) to serve HTTPS with; reread when the file changes.
    #[arg(long, env = "SWITCHYARD_HTTPS_CERT", requires = "https_key")]
    pub https_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key (PEM).
    #[arg(long, env = "SWITCHYARD_HTTPS_KEY", requires = "https_cert")]
    pub https_key: Option<PathBuf>,
}

/// An HTTP client with `timeout` that, given `ca` (PEM), trusts only that CA for `https://`.
pub fn http_client(
    timeout: std::time::Duration,
    ca: Option<&std::path::Path>,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("{} holds no PEM certificate", ca.display()))?;
        builder = builder.tls_certs_only([ca]);
    }
    Ok(builder.build()?)
}

/// Where and how often the node agent probes.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Probe a server kind on another port: `KIND=PORT` or `KIND=HOST:PORT`
    /// (KIND: ollama, lmstudio, vllm, litellm). Replaces the default targets when given.
    #[arg(long = "probe", value_name = "KIND=[HOST:]PORT")]
    pub probes: Vec<String>,
    /// Milliseconds between scans.
    #[arg(long, env = "SWITCHYARD_SCAN_INTERVAL_MS", default_value_t = 2_000)]
    pub scan_interval_ms: u64,
    /// Consecutive failed scans before a backend is reported gone.
    #[arg(long, default_value_t = 2)]
    pub fail_threshold: u32,
    /// Name this host reports itself under (default: hostname).
    #[arg(long, env = "SWITCHYARD_NODE_NAME")]
    pub node_name: Option<String>,
}

impl ProbeArgs {
    /// The `--probe` targets, or this host's default ports when none is given.
    pub fn targets(&self) -> anyhow::Result<Vec<ProbeTarget>> {
        if self.probes.is_empty() {
            return Ok(ProbeTarget::local_defaults());
        }
        self.probes.iter().map(|p| parse_probe(p)).collect()
    }

    /// `--node-name`, or the hostname.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(switchyard_node_agent::config::local_hostname)
    }
}

/// Parses `KIND=PORT` or `KIND=HOST:PORT` (host defaults to 127.0.0.1).
pub fn parse_probe(text: &str) -> anyhow::Result<ProbeTarget> {
    let Some((kind, place)) = text.split_once('=') else {
        bail!("--probe {text:?}: expected KIND=PORT or KIND=HOST:PORT");
    };
    let Some(kind) = ServerKind::ALL.into_iter().find(|k| k.as_str() == kind) else {
        bail!("--probe {text:?}: unknown kind {kind:?} (ollama, lmstudio, vllm, litellm)");
    };
    let (host, port) = match place.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port),
        None => ("127.0.0.1", place),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .with_context(|| format!("--probe {text:?}: {port:?} is not a port"))?;
    Ok(ProbeTarget::new(kind, host, port))
}

/// Writes `addrs` to `path` whole, then renames it, so a reader never sees half a file.
pub fn write_addr_file(path: &std::path::Path, addrs: &serde_json::Value) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addrs.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing --addr-file {}", path.display()))
}

/// Binds `addr`, naming the flag it came from when that fails.
pub async fn bind(addr: SocketAddr, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} ({flag}); is another Switchyard running?")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_flags_parse() {
        let cases = [
            ("ollama=11434", Some(("ollama", "127.0.0.1", 11434))),
            ("vllm=gpu01:8001", Some(("vllm", "gpu01", 8001))),
            (
                "lmstudio=[fd7a::1]:1234",
                Some(("lmstudio", "fd7a::1", 1234)),
            ),
            ("litellm=0", None),
            ("tgi=8080", None),
            ("ollama", None),
            ("ollama=x", None),
        ];
        for (text, want) in cases {
            let got = parse_probe(text).ok();
            let got = got
                .as_ref()
                .map(|t| (t.kind.as_str(), t.host.as_str(), t.port));
            assert_eq!(got, want, "{text}");
        }
    }
}
