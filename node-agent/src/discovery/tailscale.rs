//! Tailnet peers, from tailscaled's LocalAPI (`GET /localapi/v0/status` over its unix socket, Host
//! `local-tailscaled.sock`) or else `tailscale status --json`, which prints the same structure.
//!
//! Tailscale being absent is normal and silent: no socket and no CLI means no tailnet peers. Only
//! a Tailscale that is present but answers badly (permission denied, garbage) is worth a warning.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::process::Command;

use crate::config::TailscaleConfig;
use crate::error::Error;

/// The Host header tailscaled's LocalAPI requires.
pub const LOCALAPI_HOST: &str = "local-tailscaled.sock";
/// The status request path.
pub const STATUS_PATH: &str = "/localapi/v0/status";
/// Where tailscaled listens when no socket is configured: Linux (both spellings), then macOS.
pub const DEFAULT_SOCKETS: [&str; 3] = [
    "/var/run/tailscale/tailscaled.sock",
    "/run/tailscale/tailscaled.sock",
    "/var/run/tailscaled.socket",
];

/// One online tailnet peer worth probing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailnetPeer {
    /// The peer's host name (for logs).
    pub host_name: String,
    /// Its Tailscale addresses, IPv4 first.
    pub ips: Vec<IpAddr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Status {
    #[serde(default)]
    backend_state: String,
    #[serde(default)]
    peer: Option<std::collections::BTreeMap<String, PeerStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PeerStatus {
    #[serde(default)]
    host_name: String,
    #[serde(default, rename = "TailscaleIPs")]
    tailscale_ips: Vec<String>,
    #[serde(default)]
    online: bool,
}

/// Parses an `ipnstate.Status` JSON body into its online peers, sorted by host name.
///
/// A tailnet that is not `Running` has no reachable peers, so it yields none.
pub fn parse_status(body: &[u8]) -> Result<Vec<TailnetPeer>, String> {
    let status: Status = serde_json::from_slice(body)
        .map_err(|e| format!("status is not the expected JSON: {e}"))?;
    if status.backend_state != "Running" {
        return Ok(Vec::new());
    }
    let mut peers: Vec<TailnetPeer> = status
        .peer
        .unwrap_or_default()
        .into_values()
        .filter(|p| p.online)
        .filter_map(|p| {
            let mut ips: Vec<IpAddr> = p
                .tailscale_ips
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect();
            ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            (!ips.is_empty()).then_some(TailnetPeer {
                host_name: p.host_name,
                ips,
            })
        })
        .collect();
    peers.sort_by(|a, b| (&a.host_name, &a.ips).cmp(&(&b.host_name, &b.ips)));
    Ok(peers)
}

/// Reads the tailnet's online peers per `cfg`: the LocalAPI socket if one exists, else the CLI.
///
/// `Ok(None)` means Tailscale is not there (no socket, no CLI, or the CLI cannot reach tailscaled).
pub async fn online_peers(
    cfg: &TailscaleConfig,
    timeout: Duration,
) -> Result<Option<Vec<TailnetPeer>>, Error> {
    if !cfg.enabled {
        return Ok(None);
    }
    if let Some(socket) = socket_path(cfg) {
        return localapi_status(&socket, timeout).await.map(Some);
    }
    cli_status(&cfg.cli, timeout).await
}

/// The socket to use: the configured one when it exists, else the first default that exists.
fn socket_path(cfg: &TailscaleConfig) -> Option<PathBuf> {
    match &cfg.socket {
        Some(path) => path.exists().then(|| path.clone()),
        None => DEFAULT_SOCKETS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    }
}

/// `GET /localapi/v0/status` over the unix socket at `socket`.
pub async fn localapi_status(socket: &Path, timeout: Duration) -> Result<Vec<TailnetPeer>, Error> {
    let failed = |reason: String| Error::Tailscale {
        from: format!("LocalAPI socket {}", socket.display()),
        reason,
    };
    let client = reqwest::Client::builder()
        .unix_socket(socket)
        .timeout(timeout)
        .build()
        .map_err(|e| failed(format!("cannot build client: {e}")))?;
    // The URL's host becomes the Host header, which tailscaled checks.
    let url = format!("http://{LOCALAPI_HOST}{STATUS_PATH}");
    let response = client
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(format!("request failed: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| failed(format!("reading the answer failed: {e}")))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(failed(format!(
            "HTTP {}: {}",
            status.as_u16(),
            text.trim().chars().take(200).collect::<String>()
        )));
    }
    parse_status(&body).map_err(failed)
}

/// `<cli> status --json`; `Ok(None)` when the CLI is missing or cannot reach tailscaled.
pub async fn cli_status(cli: &str, timeout: Duration) -> Result<Option<Vec<TailnetPeer>>, Error> {
    let failed = |reason: String| Error::Tailscale {
        from: format!("{cli} status --json"),
        reason,
    };
    let child = Command::new(cli)
        .args(["status", "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("no answer within {timeout:?}")))?
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        // Installed but tailscaled is not running (or we may not talk to it): Tailscale is off here.
        tracing::debug!(cli = %cli, status = %output.status, "tailscale CLI cannot reach tailscaled");
        return Ok(None);
    }
    parse_status(&output.stdout).map(Some).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like `tailscale status --json` on a tailnet with one online and one offline peer.
    const STATUS: &str = r#"{"Version":"1.90.1","BackendState":"Running",
      "TailscaleIPs":["100.101.102.103","fd7a:115c:a1e0::1"],
      "Self":{"ID":"n1","HostName":"gpu-box","DNSName":"gpu-box.tailnet-abc.ts.net.","OS":"linux",
              "TailscaleIPs":["100.101.102.103"],"Online":true},
      "MagicDNSSuffix":"tailnet-abc.ts.net",
      "Peer":{
        "nodekey:ab12":{"HostName":"mac-studio","DNSName":"mac-studio.tailnet-abc.ts.net.","OS":"macOS",
          "TailscaleIPs":["fd7a:115c:a1e0::2","100.98.112.23"],"Online":true,"Active":false,"Tags":["tag:llm"]},
        "nodekey:cd34":{"HostName":"old-laptop","TailscaleIPs":["100.66.12.82"],"Online":false},
        "nodekey:ef56":{"HostName":"no-ips","TailscaleIPs":[],"Online":true}}}"#;

    #[test]
    fn parses_online_peers() {
        let peers = parse_status(STATUS.as_bytes()).unwrap();
        assert_eq!(
            peers,
            vec![TailnetPeer {
                host_name: "mac-studio".to_owned(),
                ips: vec![
                    "100.98.112.23".parse().unwrap(),
                    "fd7a:115c:a1e0::2".parse().unwrap()
                ],
            }]
        );
        let stopped = r#"{"BackendState":"Stopped","Peer":{"k":{"HostName":"x","TailscaleIPs":["100.1.1.1"],"Online":true}}}"#;
        assert_eq!(parse_status(stopped.as_bytes()).unwrap(), vec![]);
        assert_eq!(
            parse_status(br#"{"BackendState":"Running"}"#).unwrap(),
            vec![]
        );
        assert!(parse_status(b"status access denied").is_err());
    }

    #[tokio::test]
    async fn absent_tailscale_is_quietly_off() {
        let cfg = TailscaleConfig {
            enabled: true,
            socket: Some(PathBuf::from(
                "/nonexistent/switchyard-test/tailscaled.sock",
            )),
            cli: "/nonexistent/switchyard-test/tailscale".to_owned(),
        };
        assert_eq!(
            online_peers(&cfg, Duration::from_secs(1)).await.unwrap(),
            None
        );
        let off = TailscaleConfig {
            enabled: false,
            ..cfg
        };
        assert_eq!(
            online_peers(&off, Duration::from_secs(1)).await.unwrap(),
            None
        );
    }
}
