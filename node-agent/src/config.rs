//! The agent's configuration: where to report, what to probe, how often; validated before use.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_proto::tls::{TlsError, TlsFiles};

use crate::error::Error;
use crate::probe::ProbeTarget;

/// How the agent names the backends it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// The id is the kind name (`ollama`, `lmstudio`, `vllm`, `litellm`); for the single-host `up`.
    Bare,
    /// The id is `<kind>-<node_name>`; for a standalone agent in a cluster, where ids must not collide.
    #[default]
    NodeSuffix,
}

/// Environment variable listing discovery peers (comma-separated); replaces `discovery.peers`.
pub const PEERS_ENV: &str = "LLM_PROXY_DISCOVERY_PEERS";
/// Environment variable that turns local probing off with `0`, `false`, `off`, `no` or empty.
pub const LOCAL_DISCOVERY_ENV: &str = "LLM_PROXY_LOCAL_DISCOVERY";

/// A secret string (an upstream API key) whose `Debug` shows only its tail.
pub use switchyard_proto::secret::Secret;
use switchyard_proto::secret::redact;

/// One discovery peer: `host` (all four default ports) or `host:port` (that port, any kind), with an
/// optional API key for a secured server there (a LiteLLM with a master key, vLLM with `--api-key`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PeerEntry {
    /// `"10.0.0.5"`, `"nas.lan:11435"`, `"[fd7a:115c:a1e0::1]:8000"`.
    Address(String),
    /// `{"address": "10.0.0.5:4000", "api_key": "sk-..."}`.
    WithKey {
        /// As in [`PeerEntry::Address`].
        address: String,
        /// Sent as `Authorization: Bearer` to every probe of this peer, and reported with its
        /// backends so edges can call them. Never logged.
        api_key: Option<Secret>,
    },
}

impl PeerEntry {
    /// The `host[:port]` text.
    pub fn address(&self) -> &str {
        match self {
            Self::Address(a) | Self::WithKey { address: a, .. } => a,
        }
    }

    /// The API key, when one is configured.
    pub fn api_key(&self) -> Option<&Secret> {
        match self {
            Self::Address(_) => None,
            Self::WithKey { api_key, .. } => api_key.as_ref(),
        }
    }
}

/// Where Tailscale's status comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TailscaleConfig {
    /// Probe online tailnet peers. Default true; quietly off when Tailscale is not installed.
    pub enabled: bool,
    /// tailscaled's LocalAPI socket. Default: the platform's usual paths
    /// (`/var/run/tailscale/tailscaled.sock`, `/run/tailscale/tailscaled.sock`, `/var/run/tailscaled.socket`).
    pub socket: Option<PathBuf>,
    /// The CLI run as `<cli> status --json` when no socket answers. Default `tailscale`.
    pub cli: String,
}

impl Default for TailscaleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: None,
            cli: "tailscale".to_owned(),
        }
    }
}

/// Where the agent looks for model servers beyond its configured targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Probe `targets` (loopback) and `host.docker.internal`. Default true;
    /// `LLM_PROXY_LOCAL_DISCOVERY=0` turns it off.
    pub local_scan: bool,
    /// Also probe `host.docker.internal` on the four default ports when it resolves to a
    /// non-loopback address. Default true.
    pub docker_host: bool,
    /// Remote hosts to probe. Default empty; `LLM_PROXY_DISCOVERY_PEERS` replaces it.
    pub peers: Vec<PeerEntry>,
    /// Tailnet peers.
    pub tailscale: TailscaleConfig,
    /// Announce this agent over mDNS, and find the control plane that way when `control_plane`
    /// is empty. Default true.
    pub mdns: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            local_scan: true,
            docker_host: true,
            peers: Vec::new(),
            tailscale: TailscaleConfig::default(),
            mdns: true,
        }
    }
}

/// Node-agent configuration. Load it, apply [`Config::apply_env`], then call
/// [`Config::validate`] before [`crate::run`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Control-plane gRPC URL, e.g. `http://127.0.0.1:7700` (`http://` is assumed when no scheme).
    /// Empty (the default) finds one over mDNS (`_switchyard._tcp.local.`).
    pub control_plane: String,
    /// Name this node reports itself under. Default: the hostname (`/etc/hostname`, then `$HOSTNAME`,
    /// else `node`).
    pub node_name: String,
    /// Shared secret proving the agent may report; empty when the cluster has none. Default empty.
    /// Never logged: `Debug` redacts it.
    pub join_token: String,
    /// Milliseconds between scans of all targets. Default 5000.
    pub scan_interval_ms: u64,
    /// Milliseconds one probe request may take before the target counts as down. Default 1500.
    pub probe_timeout_ms: u64,
    /// Local servers to probe (named as local hits). Default [`ProbeTarget::local_defaults`].
    pub targets: Vec<ProbeTarget>,
    /// How local backend ids are formed. Default [`Naming::NodeSuffix`].
    pub naming: Naming,
    /// Consecutive failed scans before a backend is reported unhealthy. Default 2, minimum 1.
    pub fail_threshold: u32,
    /// Consecutive successful scans before an unhealthy backend is reported healthy again.
    /// Default 2, minimum 1. A newly found backend is healthy at once.
    pub success_threshold: u32,
    /// Milliseconds a backend may go unanswered before it is reported removed. Default 0, which
    /// means ten scan intervals (50 s with the default interval). Never less than the time to
    /// become unhealthy.
    pub remove_after_ms: u64,
    /// Milliseconds between heartbeats on the report stream. Default 2000.
    pub heartbeat_interval_ms: u64,
    /// Command run (with a timeout) for GPU facts. Default `nvidia-smi`; empty disables GPU facts.
    pub nvidia_smi: String,
    /// Milliseconds between GPU samples. Default 10000.
    pub gpu_interval_ms: u64,
    /// Where else to look for model servers.
    pub discovery: DiscoveryConfig,
    /// CA certificate (PEM) for mutual TLS to the control plane; set all three `tls_*` or
    /// none. Control-plane URLs are then dialled as `https://`. Default none (plaintext).
    pub tls_ca: Option<PathBuf>,
    /// This agent's certificate (PEM), e.g. from `switchyard certs init`. Default none.
    pub tls_cert: Option<PathBuf>,
    /// This agent's private key (PEM). Default none.
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            control_plane: String::new(),
            node_name: local_hostname(),
            join_token: String::new(),
            scan_interval_ms: 5000,
            probe_timeout_ms: 1500,
            targets: ProbeTarget::local_defaults(),
            naming: Naming::default(),
            fail_threshold: 2,
            success_threshold: 2,
            remove_after_ms: 0,
            heartbeat_interval_ms: 2000,
            nvidia_smi: "nvidia-smi".to_owned(),
            gpu_interval_ms: 10_000,
            discovery: DiscoveryConfig::default(),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hand-written only to keep the join token out of logs.
        f.debug_struct("Config")
            .field("control_plane", &self.control_plane)
            .field("node_name", &self.node_name)
            .field("join_token", &redact(&self.join_token))
            .field("scan_interval_ms", &self.scan_interval_ms)
            .field("probe_timeout_ms", &self.probe_timeout_ms)
            .field("targets", &self.targets)
            .field("naming", &self.naming)
            .field("fail_threshold", &self.fail_threshold)
            .field("success_threshold", &self.success_threshold)
            .field("remove_after_ms", &self.remove_after_ms)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("nvidia_smi", &self.nvidia_smi)
            .field("gpu_interval_ms", &self.gpu_interval_ms)
            .field("discovery", &self.discovery)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

impl Config {
    /// Applies `LLM_PROXY_DISCOVERY_PEERS` and `LLM_PROXY_LOCAL_DISCOVERY` from the process
    /// environment (see [`Config::apply_env_from`]).
    pub fn apply_env(&mut self) -> Result<(), Error> {
        self.apply_env_from(|name| std::env::var(name).ok())
    }

    /// Applies the discovery environment variables, read through `lookup`:
    /// a non-blank [`PEERS_ENV`] replaces `discovery.peers`; [`LOCAL_DISCOVERY_ENV`] set to `0`,
    /// `false`, `off`, `no` or empty turns `discovery.local_scan` off, and `1`, `true`, `on`, `yes`
    /// turns it on.
    pub fn apply_env_from(&mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<(), Error> {
        if let Some(peers) = lookup(PEERS_ENV).filter(|p| !p.trim().is_empty()) {
            self.discovery.peers = peers
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| PeerEntry::Address(p.to_owned()))
                .collect();
        }
        if let Some(value) = lookup(LOCAL_DISCOVERY_ENV) {
            self.discovery.local_scan = match value.trim().to_ascii_lowercase().as_str() {
                "" | "0" | "false" | "off" | "no" => false,
                "1" | "true" | "on" | "yes" => true,
                other => {
                    return Err(Error::InvalidConfig {
                        field: LOCAL_DISCOVERY_ENV,
                        reason: format!(
                            "{other:?} is not one of 0, false, off, no, 1, true, on, yes"
                        ),
                    });
                }
            };
        }
        Ok(())
    }

    /// Checks every field, failing with the name of the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| Error::InvalidConfig {
            field,
            reason: reason.to_owned(),
        };
        if self.control_plane.trim().is_empty() {
            if !self.discovery.mdns {
                return Err(bad(
                    "control_plane",
                    "must be set when discovery.mdns is off (nothing else can find one)",
                ));
            }
        } else {
            let url = control_plane_url(&self.control_plane);
            tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| {
                Error::InvalidConfig {
                    field: "control_plane",
                    reason: format!("{url:?} is not a valid URL: {e}"),
                }
            })?;
        }
        if self.node_name.is_empty() || self.node_name.chars().any(char::is_whitespace) {
            return Err(bad(
                "node_name",
                "must be non-empty and contain no whitespace",
            ));
        }
        for (field, value) in [
            ("scan_interval_ms", self.scan_interval_ms),
            ("probe_timeout_ms", self.probe_timeout_ms),
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("gpu_interval_ms", self.gpu_interval_ms),
        ] {
            if value == 0 {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        if self.fail_threshold == 0 {
            return Err(bad("fail_threshold", "must be at least 1"));
        }
        if self.success_threshold == 0 {
            return Err(bad("success_threshold", "must be at least 1"));
        }
        if self.discovery.local_scan && self.targets.is_empty() {
            return Err(bad(
                "targets",
                "must name at least one server to probe (or set discovery.local_scan to false)",
            ));
        }
        for peer in &self.discovery.peers {
            crate::discovery::peers::parse(peer.address()).map_err(|e| Error::InvalidConfig {
                field: "discovery.peers",
                reason: e.to_string(),
            })?;
            if peer.api_key().is_some_and(|k| k.expose().trim().is_empty()) {
                return Err(Error::InvalidConfig {
                    field: "discovery.peers",
                    reason: format!("peer {:?} has an empty api_key", peer.address()),
                });
            }
        }
        if self.discovery.tailscale.enabled && self.discovery.tailscale.cli.trim().is_empty() {
            return Err(bad(
                "discovery.tailscale.cli",
                "must name the tailscale command (or set discovery.tailscale.enabled to false)",
            ));
        }
        if let Some(files) = self.tls_files()? {
            files.check().map_err(tls_invalid)?;
        }
        let mut seen = BTreeSet::new();
        for t in &self.targets {
            if t.host.trim().is_empty() {
                return Err(bad("targets", "a target has an empty host"));
            }
            if t.port == 0 {
                return Err(bad("targets", "a target has port 0"));
            }
            if !seen.insert((t.kind, t.host.as_str(), t.port)) {
                return Err(Error::InvalidConfig {
                    field: "targets",
                    reason: format!("{} at {}:{} is listed twice", t.kind, t.host, t.port),
                });
            }
        }
        Ok(())
    }

    /// The mutual-TLS files, when all three `tls_*` fields are set.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, Error> {
        TlsFiles::from_fields(&self.tls_ca, &self.tls_cert, &self.tls_key).map_err(tls_invalid)
    }

    /// Time between scans.
    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_interval_ms)
    }

    /// Time one probe may take.
    pub fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms)
    }

    /// Time between heartbeats.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    /// Time a backend may go unanswered before it is removed: `remove_after_ms`, or ten scan
    /// intervals when 0, and never less than `fail_threshold` scans.
    pub fn remove_after(&self) -> Duration {
        let auto = self.scan_interval_ms.saturating_mul(10);
        let floor = self
            .scan_interval_ms
            .saturating_mul(u64::from(self.fail_threshold));
        let ms = if self.remove_after_ms == 0 {
            auto
        } else {
            self.remove_after_ms
        };
        Duration::from_millis(ms.max(floor))
    }

    /// Time between GPU samples.
    pub fn gpu_interval(&self) -> Duration {
        Duration::from_millis(self.gpu_interval_ms)
    }
}

/// A TLS problem as a config error, with its cause.
pub(crate) fn tls_invalid(e: TlsError) -> Error {
    Error::InvalidConfig {
        field: e.field(),
        reason: e.reason(),
    }
}

/// Turns a control-plane address into a URL: `host:port` becomes `http://host:port`.
pub fn control_plane_url(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// This host's name: `/etc/hostname`, then `$HOSTNAME`, else `node`.
pub fn local_hostname() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned());
    let from_env = std::env::var("HOSTNAME").ok().map(|s| s.trim().to_owned());
    from_file
        .into_iter()
        .chain(from_env)
        .find(|name| !name.is_empty() && !name.chars().any(char::is_whitespace))
        .unwrap_or_else(|| "node".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ServerKind;

    fn valid() -> Config {
        Config {
            node_name: "gpu01".to_owned(),
            control_plane: "http://127.0.0.1:7700".to_owned(),
            ..Config::default()
        }
    }

    #[test]
    fn default_is_valid() {
        valid().validate().unwrap();
    }

    #[test]
    fn validate_names_the_bad_field() {
        type Edit = fn(&mut Config);
        let cases: &[(&str, Edit)] = &[
            ("control_plane", |c| {
                c.control_plane = String::new();
                c.discovery.mdns = false;
            }),
            ("control_plane", |c| {
                c.control_plane = "http://bad host:1".to_owned()
            }),
            ("node_name", |c| c.node_name = String::new()),
            ("node_name", |c| c.node_name = "two words".to_owned()),
            ("scan_interval_ms", |c| c.scan_interval_ms = 0),
            ("probe_timeout_ms", |c| c.probe_timeout_ms = 0),
            ("heartbeat_interval_ms", |c| c.heartbeat_interval_ms = 0),
            ("fail_threshold", |c| c.fail_threshold = 0),
            ("success_threshold", |c| c.success_threshold = 0),
            ("gpu_interval_ms", |c| c.gpu_interval_ms = 0),
            ("discovery.peers", |c| {
                c.discovery.peers = vec![PeerEntry::Address("10.0.0.1:99999".to_owned())]
            }),
            ("discovery.peers", |c| {
                c.discovery.peers = vec![PeerEntry::WithKey {
                    address: "10.0.0.1".to_owned(),
                    api_key: Some(Secret::new(" ")),
                }]
            }),
            ("discovery.tailscale.cli", |c| {
                c.discovery.tailscale.cli = String::new()
            }),
            ("targets", |c| c.targets.clear()),
            ("targets", |c| c.targets[0].port = 0),
            ("targets", |c| c.targets[0].host = " ".to_owned()),
            ("targets", |c| {
                let dup = c.targets[0].clone();
                c.targets.push(dup);
            }),
        ];
        for (want, edit) in cases {
            let mut cfg = valid();
            edit(&mut cfg);
            match cfg.validate() {
                Err(Error::InvalidConfig { field, .. }) => assert_eq!(field, *want, "{cfg:?}"),
                other => panic!("expected invalid {want}, got {other:?}"),
            }
        }
    }

    #[test]
    fn empty_control_plane_means_mdns_and_no_local_scan_allows_no_targets() {
        let mut cfg = valid();
        cfg.control_plane = String::new();
        cfg.validate().unwrap();
        cfg.targets.clear();
        cfg.discovery.local_scan = false;
        cfg.validate().unwrap();
    }

    #[test]
    fn environment_overrides_discovery() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let mut cfg = valid();
        cfg.discovery.peers = vec![PeerEntry::Address("from-config".to_owned())];
        cfg.apply_env_from(env(&[])).unwrap();
        assert_eq!(cfg.discovery.peers[0].address(), "from-config");
        assert!(cfg.discovery.local_scan);

        cfg.apply_env_from(env(&[(
            PEERS_ENV,
            " 10.0.0.1, nas.lan:4000,,[fd7a::1]:8000 ",
        )]))
        .unwrap();
        let peers: Vec<&str> = cfg.discovery.peers.iter().map(PeerEntry::address).collect();
        assert_eq!(peers, ["10.0.0.1", "nas.lan:4000", "[fd7a::1]:8000"]);
        // A blank variable leaves the config's peers alone.
        cfg.apply_env_from(env(&[(PEERS_ENV, " ")])).unwrap();
        assert_eq!(cfg.discovery.peers.len(), 3);

        for (value, want) in [
            ("0", false),
            ("false", false),
            ("OFF", false),
            ("no", false),
            ("", false),
            ("1", true),
            ("yes", true),
        ] {
            let mut cfg = valid();
            cfg.discovery.local_scan = !want;
            cfg.apply_env_from(|name| (name == LOCAL_DISCOVERY_ENV).then(|| value.to_owned()))
                .unwrap();
            assert_eq!(cfg.discovery.local_scan, want, "{value:?}");
        }
        let err = valid()
            .apply_env_from(env(&[(LOCAL_DISCOVERY_ENV, "nope")]))
            .unwrap_err();
        assert!(err.to_string().contains(LOCAL_DISCOVERY_ENV), "{err}");
    }

    #[test]
    fn remove_after_defaults_to_ten_scans_and_never_undercuts_unhealthy() {
        let mut cfg = valid();
        cfg.scan_interval_ms = 100;
        assert_eq!(cfg.remove_after(), Duration::from_millis(1000));
        cfg.remove_after_ms = 50;
        cfg.fail_threshold = 3;
        assert_eq!(cfg.remove_after(), Duration::from_millis(300));
        cfg.remove_after_ms = 60_000;
        assert_eq!(cfg.remove_after(), Duration::from_secs(60));
    }

    #[test]
    fn peers_with_keys_parse_and_keys_stay_out_of_debug() {
        let cfg: Config = serde_json::from_str(
            r#"{"discovery":{"peers":["10.0.0.1",{"address":"10.0.0.2:4000","api_key":"sk-litellm-master-9876"}],
                "local_scan":false,"tailscale":{"socket":"/tmp/ts.sock"}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.discovery.peers[1].address(), "10.0.0.2:4000");
        assert_eq!(
            cfg.discovery.peers[1].api_key().map(Secret::expose),
            Some("sk-litellm-master-9876")
        );
        assert!(!cfg.discovery.local_scan);
        assert!(cfg.discovery.tailscale.enabled);
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("master"), "{shown}");
        assert!(shown.contains("****9876"), "{shown}");
    }

    #[test]
    fn control_plane_without_scheme_is_valid() {
        let cfg = Config {
            control_plane: "10.0.0.5:7700".to_owned(),
            ..valid()
        };
        cfg.validate().unwrap();
        assert_eq!(
            control_plane_url(&cfg.control_plane),
            "http://10.0.0.5:7700"
        );
        assert_eq!(control_plane_url("https://cp:1"), "https://cp:1");
    }

    #[test]
    fn partial_json_fills_defaults_and_unknown_fields_fail() {
        let cfg: Config = serde_json::from_str(
            r#"{"control_plane":"http://cp:7700","naming":"bare",
                "targets":[{"kind":"lmstudio","host":"10.0.0.2","port":1234}]}"#,
        )
        .unwrap();
        assert_eq!(cfg.naming, Naming::Bare);
        assert_eq!(cfg.scan_interval_ms, 5000);
        assert_eq!(cfg.targets[0].kind, ServerKind::LmStudio);
        let err = serde_json::from_str::<Config>(r#"{"contrl_plane":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("contrl_plane"), "{err}");
    }

    #[test]
    fn debug_redacts_join_token() {
        let cfg = Config {
            join_token: "sy_join_supersecret_abcd".to_owned(),
            ..valid()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("****abcd"), "{shown}");
    }
}
