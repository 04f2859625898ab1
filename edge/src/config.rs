//! The edge's configuration: where the control plane is, where to cache the table, limits and timeouts.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::Error;

/// Default largest request body the edge reads: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// How an edge finds the control plane and how it treats requests and upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC URL of a control-plane voter, e.g. `http://127.0.0.1:7700`. Default `http://127.0.0.1:7700`.
    pub control_plane: String,
    /// This edge's name, sent to the control plane for its logs. Default `edge`.
    pub edge_name: String,
    /// File holding the last routing table (protobuf bytes), loaded at start so a restarted edge
    /// serves without a control plane. Default none (nothing persisted).
    pub table_cache: Option<PathBuf>,
    /// Largest request body accepted, in bytes; larger bodies get 413. Default 10 MiB.
    pub max_body_bytes: usize,
    /// Time allowed to open a TCP (and TLS) connection to an upstream or the control plane,
    /// in milliseconds. Default 2000.
    pub connect_timeout_ms: u64,
    /// Time allowed from sending a request upstream until its response headers arrive,
    /// in milliseconds; the body that follows has no deadline (streams run long). Default 120000.
    pub first_byte_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            control_plane: "http://127.0.0.1:7700".to_owned(),
            edge_name: "edge".to_owned(),
            table_cache: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            connect_timeout_ms: 2_000,
            first_byte_timeout_ms: 120_000,
        }
    }
}

impl Config {
    /// Checks every field, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &'static str, reason: String| Error::InvalidConfig { field, reason };
        let uri: http::Uri = self
            .control_plane
            .parse()
            .map_err(|e| invalid("control_plane", format!("not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(
                "control_plane",
                "must be an http:// or https:// URL with a host".to_owned(),
            ));
        }
        if self.edge_name.trim().is_empty() {
            return Err(invalid("edge_name", "must not be empty".to_owned()));
        }
        if self.max_body_bytes == 0 {
            return Err(invalid(
                "max_body_bytes",
                "must be greater than 0".to_owned(),
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(invalid(
                "connect_timeout_ms",
                "must be greater than 0".to_owned(),
            ));
        }
        if self.first_byte_timeout_ms == 0 {
            return Err(invalid(
                "first_byte_timeout_ms",
                "must be greater than 0".to_owned(),
            ));
        }
        Ok(())
    }

    /// [`Config::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`Config::first_byte_timeout_ms`] as a duration.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(Config::default().validate().ok(), Some(()));
    }

    #[test]
    fn validate_names_the_bad_field() {
        let cases: Vec<(&str, Config)> = vec![
            (
                "control_plane",
                Config {
                    control_plane: "not a url".into(),
                    ..Config::default()
                },
            ),
            (
                "control_plane",
                Config {
                    control_plane: "ftp://x:1".into(),
                    ..Config::default()
                },
            ),
            (
                "edge_name",
                Config {
                    edge_name: " ".into(),
                    ..Config::default()
                },
            ),
            (
                "max_body_bytes",
                Config {
                    max_body_bytes: 0,
                    ..Config::default()
                },
            ),
            (
                "connect_timeout_ms",
                Config {
                    connect_timeout_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "first_byte_timeout_ms",
                Config {
                    first_byte_timeout_ms: 0,
                    ..Config::default()
                },
            ),
        ];
        for (field, cfg) in cases {
            match cfg.validate() {
                Err(Error::InvalidConfig { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn deserializes_partial_and_rejects_unknown_fields() {
        let cfg: Config =
            serde_json::from_str(r#"{"edge_name":"e1","first_byte_timeout_ms":500}"#).unwrap();
        assert_eq!(cfg.edge_name, "e1");
        assert_eq!(cfg.first_byte_timeout(), Duration::from_millis(500));
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(serde_json::from_str::<Config>(r#"{"edge_nam":"e1"}"#).is_err());
    }
}
