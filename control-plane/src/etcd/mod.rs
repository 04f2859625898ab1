//! The etcd backend: the cluster state kept in an existing etcd 3.4+ cluster instead of the
//! embedded raft (cargo feature `etcd`).
//!
//! etcd is used as the replicated command log. A write appends the serialised [`Command`] under
//! `<prefix>/log/<seq>` in one transaction that also advances the counter `<prefix>/log-next`,
//! so commands get a gap-free total order. Every control-plane node follows the log (a range
//! read, then a watch from the read's revision) and applies each command with the same pure
//! [`ClusterState::apply`](crate::state::ClusterState::apply), publishing the compiled routing
//! table as the raft state machine does. A writer waits until its own command is applied
//! locally and answers that command's `Outcome`, so lease grants stay exact. A snapshot of the
//! state at sequence N under `<prefix>/snapshot` replaces the log entries up to N.
//!
//! One node at a time holds `<prefix>/leader` under an etcd lease: it commits nodes as down and
//! takes agent sessions, exactly like the raft leader. The settings and status types here are
//! always compiled (so a build without the feature can name what it lacks); the client code is
//! behind the feature.

#[cfg(feature = "etcd")]
mod backend;
pub mod keys;

#[cfg(feature = "etcd")]
pub use backend::EtcdConsensus;
pub use keys::Keys;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which consensus keeps the state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// The embedded openraft cluster (the default).
    #[default]
    Raft,
    /// An existing etcd 3.4+ cluster (needs a build with the `etcd` feature).
    Etcd,
}

/// How to reach the etcd cluster and where in it the state lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtcdSettings {
    /// Client URLs of etcd members (`http://host:2379` or `https://…`). Required.
    pub endpoints: Vec<String>,
    /// Key prefix every Switchyard key lives under. Default `/switchyard`.
    pub prefix: String,
    /// etcd user, when etcd has authentication enabled. Default none.
    pub username: Option<String>,
    /// That user's password. Prefer `password_env`. Default none.
    pub password: Option<String>,
    /// Environment variable holding the password. Default none.
    pub password_env: Option<String>,
    /// CA certificate (PEM) that signs the etcd members' certificates. Default: system roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for etcd's mutual TLS; needs `key_file`. Default none.
    pub cert_file: Option<std::path::PathBuf>,
    /// Client private key (PEM) for `cert_file`. Default none.
    pub key_file: Option<std::path::PathBuf>,
    /// Server name to verify in the members' certificates, when it differs from the URL's host.
    pub tls_server_name: Option<String>,
    /// Write a snapshot and delete the log behind it after this many commands. Default 1000.
    pub snapshot_every: u64,
    /// Seconds the leader key outlives a silent holder. Default 5.
    pub leader_ttl_s: u64,
    /// Deadline for one etcd request, in ms. Default 5000.
    pub timeout_ms: u64,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            prefix: "/switchyard".into(),
            username: None,
            password: None,
            password_env: None,
            ca_file: None,
            cert_file: None,
            key_file: None,
            tls_server_name: None,
            snapshot_every: 1_000,
            leader_ttl_s: 5,
            timeout_ms: 5_000,
        }
    }
}

impl EtcdSettings {
    /// Checks the fields, naming the offending one.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, reason: String| Err(Error::Config { field, reason });
        if self.endpoints.is_empty() {
            return bad(
                "etcd.endpoints",
                "name at least one etcd client URL, e.g. http://127.0.0.1:2379".into(),
            );
        }
        for url in &self.endpoints {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            match rest {
                Some(host) if !host.trim_end_matches('/').is_empty() && !host.contains(' ') => {}
                _ => {
                    return bad(
                        "etcd.endpoints",
                        format!("{url:?} is not an http:// or https:// URL"),
                    );
                }
            }
        }
        if !self.prefix.starts_with('/') || self.prefix.len() < 2 || self.prefix.ends_with('/') {
            return bad(
                "etcd.prefix",
                format!(
                    "{:?} must start with '/', not end with '/' and not be the root",
                    self.prefix
                ),
            );
        }
        if self.username.is_some() != (self.password.is_some() || self.password_env.is_some()) {
            return bad(
                "etcd.username",
                "give both a username and a password (password or password_env), or neither".into(),
            );
        }
        if self.password.is_some() && self.password_env.is_some() {
            return bad(
                "etcd.password",
                "give password or password_env, not both".into(),
            );
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return bad(
                "etcd.cert_file",
                "a client certificate needs key_file and the other way round".into(),
            );
        }
        let https = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if https && self.endpoints.iter().any(|e| e.starts_with("http://")) {
            return bad(
                "etcd.endpoints",
                "mixes http:// and https:// URLs; use one scheme".into(),
            );
        }
        if https && self.ca_file.is_none() {
            return bad(
                "etcd.ca_file",
                "https:// endpoints need the CA certificate that signed etcd's certificates".into(),
            );
        }
        if !https
            && (self.ca_file.is_some()
                || self.cert_file.is_some()
                || self.tls_server_name.is_some())
        {
            return bad(
                "etcd.ca_file",
                "TLS settings need https:// endpoints".into(),
            );
        }
        if self.snapshot_every == 0 {
            return bad("etcd.snapshot_every", "must be at least 1".into());
        }
        if self.leader_ttl_s < 2 {
            return bad("etcd.leader_ttl_s", "must be at least 2".into());
        }
        if self.timeout_ms == 0 {
            return bad("etcd.timeout_ms", "must be at least 1".into());
        }
        Ok(())
    }

    /// Whether the endpoints use TLS.
    pub fn uses_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.starts_with("https://"))
    }
}

/// What a node of the etcd backend knows about etcd and its progress through the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdStatus {
    /// The configured etcd client URLs.
    pub endpoints: Vec<String>,
    /// The key prefix.
    pub prefix: String,
    /// Whether the last request to etcd succeeded.
    pub reachable: bool,
    /// etcd's version, as the answering member reports it.
    pub version: String,
    /// etcd's store revision at the last successful request.
    pub revision: i64,
    /// etcd's raft term.
    pub raft_term: u64,
    /// The id of etcd's own raft leader.
    pub etcd_leader: u64,
    /// Sequence number of the last applied command.
    pub applied_seq: u64,
    /// Sequence number the snapshot in etcd covers.
    pub snapshot_seq: u64,
    /// The last error talking to etcd, when it is unreachable.
    pub last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_field_by_field() {
        let ok = EtcdSettings {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let cases: Vec<(EtcdSettings, &str)> = vec![
            (EtcdSettings::default(), "etcd.endpoints"),
            (
                EtcdSettings {
                    endpoints: vec!["127.0.0.1:2379".into()],
                    ..ok.clone()
                },
                "etcd.endpoints",
            ),
            (
                EtcdSettings {
                    prefix: "switchyard".into(),
                    ..ok.clone()
                },
                "etcd.prefix",
            ),
            (
                EtcdSettings {
                    prefix: "/".into(),
                    ..ok.clone()
                },
                "etcd.prefix",
            ),
            (
                EtcdSettings {
                    username: Some("sy".into()),
                    ..ok.clone()
                },
                "etcd.username",
            ),
            (
                EtcdSettings {
                    username: Some("sy".into()),
                    password: Some("a".into()),
                    password_env: Some("B".into()),
                    ..ok.clone()
                },
                "etcd.password",
            ),
            (
                EtcdSettings {
                    cert_file: Some("c.pem".into()),
                    ..ok.clone()
                },
                "etcd.cert_file",
            ),
            (
                EtcdSettings {
                    endpoints: vec!["https://etcd:2379".into()],
                    ..ok.clone()
                },
                "etcd.ca_file",
            ),
            (
                EtcdSettings {
                    ca_file: Some("ca.pem".into()),
                    ..ok.clone()
                },
                "etcd.ca_file",
            ),
            (
                EtcdSettings {
                    snapshot_every: 0,
                    ..ok.clone()
                },
                "etcd.snapshot_every",
            ),
            (
                EtcdSettings {
                    leader_ttl_s: 1,
                    ..ok.clone()
                },
                "etcd.leader_ttl_s",
            ),
        ];
        for (i, (settings, field)) in cases.into_iter().enumerate() {
            match settings.validate() {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "case {i}"),
                other => panic!("case {i}: expected an error on {field}, got {other:?}"),
            }
        }
    }
}
