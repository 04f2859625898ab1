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
