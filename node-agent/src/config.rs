//! The agent's configuration: where to report, what to probe, how often; validated before use.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Node-agent configuration. Load it, then call [`Config::validate`] before [`crate::run`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Control-plane gRPC URL, e.g. `http://127.0.0.1:7700` (`http://` is assumed when no scheme).
    /// Default `http://127.0.0.1:7700`.
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
    /// Servers to probe. Default [`ProbeTarget::local_defaults`].
    pub targets: Vec<ProbeTarget>,
    /// How reported backend ids are formed. Default [`Naming::NodeSuffix`].
    pub naming: Naming,
    /// Consecutive failed scans before a backend is reported removed. Default 2, minimum 1.
    pub fail_threshold: u32,
    /// Milliseconds between heartbeats on the report stream. Default 2000.
    pub heartbeat_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            control_plane: "http://127.0.0.1:7700".to_owned(),
            node_name: local_hostname(),
            join_token: String::new(),
            scan_interval_ms: 5000,
            probe_timeout_ms: 1500,
            targets: ProbeTarget::local_defaults(),
            naming: Naming::default(),
            fail_threshold: 2,
            heartbeat_interval_ms: 2000,
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
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .finish()
    }
}

impl Config {
    /// Checks every field, failing with the name of the first bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field, reason: &str| Error::InvalidConfig {
            field,
            reason: reason.to_owned(),
        };
        if self.control_plane.trim().is_empty() {
            return Err(bad("control_plane", "must not be empty"));
        }
        let url = control_plane_url(&self.control_plane);
        tonic::transport::Endpoint::from_shared(url.clone()).map_err(|e| Error::InvalidConfig {
            field: "control_plane",
            reason: format!("{url:?} is not a valid URL: {e}"),
        })?;
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
        ] {
            if value == 0 {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        if self.fail_threshold == 0 {
            return Err(bad("fail_threshold", "must be at least 1"));
        }
        if self.targets.is_empty() {
            return Err(bad("targets", "must name at least one server to probe"));
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

fn redact(secret: &str) -> String {
    let len = secret.chars().count();
    match len {
        0 => String::new(),
        // Short secrets would be given away by their tail, so hide them whole.
        1..=8 => "****".to_owned(),
        _ => format!("****{}", secret.chars().skip(len - 4).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::ServerKind;

    fn valid() -> Config {
        Config {
            node_name: "gpu01".to_owned(),
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
            ("control_plane", |c| c.control_plane = String::new()),
            ("control_plane", |c| {
                c.control_plane = "http://bad host:1".to_owned()
            }),
            ("node_name", |c| c.node_name = String::new()),
            ("node_name", |c| c.node_name = "two words".to_owned()),
            ("scan_interval_ms", |c| c.scan_interval_ms = 0),
            ("probe_timeout_ms", |c| c.probe_timeout_ms = 0),
            ("heartbeat_interval_ms", |c| c.heartbeat_interval_ms = 0),
            ("fail_threshold", |c| c.fail_threshold = 0),
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
