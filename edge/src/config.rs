//! The edge's configuration: where the control plane is, where to cache the table, auth posture,
//! limits and timeouts.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use switchyard_proto::https::HttpsFiles;
use switchyard_proto::tls::{TlsError, TlsFiles};

use crate::error::Error;
pub use crate::telemetry::outbox::DropPolicy;

/// Default largest request body the edge reads: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// How an edge finds the control plane and how it treats requests and upstreams.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// gRPC URL of a control-plane voter, e.g. `http://127.0.0.1:7700`, or several separated by
    /// commas (`http://cp-0:7700,http://cp-1:7700,http://cp-2:7700`): the edge follows the first
    /// that answers and moves on when a voter fails or loses contact with the leader. Default
    /// `http://127.0.0.1:7700`.
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
    /// Overall deadline for one request across all its attempts until the first byte reaches
    /// the client, in milliseconds; the table's `settings.timeout_ms` overrides it. Default 600000.
    pub request_timeout_ms: u64,
    /// Longest silence allowed between two chunks of an upstream body once it started, in
    /// milliseconds; a stream that stalls longer ends with an error event. Default 300000.
    pub stream_idle_timeout_ms: u64,
    /// Largest upstream response body relayed, in bytes; a larger one is cut off (streams end
    /// with an error event, non-streaming answers fail over). Default 64 MiB.
    pub max_response_bytes: usize,
    /// A client key accepted besides the table's keys, for first use before any key exists
    /// (env `SWITCHYARD_BOOTSTRAP_KEY` in the binary). Default none.
    pub bootstrap_key: Option<Secret>,
    /// Serve without client keys even on a non-loopback address (while the table holds no keys
    /// and no bootstrap key is set). Default false: such an edge refuses to start.
    pub insecure_no_auth: bool,
    /// Time a client has to send a request's headers, from the connection's start or the first
    /// byte of a later request, in milliseconds; slower connections are closed. Default 10000.
    pub header_read_timeout_ms: u64,
    /// Time a keep-alive connection may sit idle between requests, and the longest a response
    /// write may wait on a client that reads nothing, in milliseconds. Default 90000.
    pub idle_timeout_ms: u64,
    /// Time a client has to send a request's whole body after its headers, in milliseconds;
    /// slower bodies get 408 and the connection is closed. Default 60000.
    pub body_read_timeout_ms: u64,
    /// Most client connections served at once; more wait in the listen backlog. Default 10000.
    pub max_connections: usize,
    /// Threads serving client connections, each with its own event loop and upstream
    /// connection pool; 0 means one per CPU. Default 0.
    pub workers: usize,
    /// CA certificate (PEM) for mutual TLS to the control plane; set all three `tls_*` or
    /// none. `http://` control-plane URLs are then dialled as `https://`. Default none.
    pub tls_ca: Option<PathBuf>,
    /// This edge's certificate (PEM), e.g. from `switchyard certs init`. Default none.
    pub tls_cert: Option<PathBuf>,
    /// This edge's private key (PEM). Default none.
    pub tls_key: Option<PathBuf>,
    /// Certificate chain (PEM) to serve `/v1` over HTTPS with; set both `https_*` or neither.
    /// Reread when the file changes. Default none (plain HTTP).
    pub https_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key (PEM). Default none.
    pub https_key: Option<PathBuf>,
    /// Count usage per (client key, model, deployment, minute) and report it to the control
    /// plane. Default true; off only to measure what accounting costs.
    pub usage_accounting: bool,
    /// Time between usage reports to the control plane, in milliseconds: what a crashed edge
    /// can lose. Default 10000.
    pub usage_flush_ms: u64,
    /// URL the usage webhook `POST`s batches of per-request events to (a JSON array).
    /// Default none (no webhook).
    pub usage_webhook: Option<String>,
    /// Bearer token sent to the usage webhook. Default none.
    pub usage_webhook_token: Option<Secret>,
    /// File the request log appends one JSON line per request to; `-` writes to stdout.
    /// Default none (no request log).
    pub request_log: Option<PathBuf>,
    /// OTLP/HTTP base URL traces are exported to (`{url}/v1/traces`, JSON), e.g.
    /// `http://127.0.0.1:4318`. Default none (no tracing).
    pub otlp_endpoint: Option<String>,
    /// Most events each telemetry sink queues while its receiver is slow or down; beyond that
    /// events are dropped and counted. Default 10000.
    pub telemetry_queue: usize,
    /// Most events in one webhook or OTLP request (or one request-log write). Default 500.
    pub telemetry_batch: usize,
    /// Longest time an event waits before its batch is sent, in milliseconds. Default 1000.
    pub telemetry_flush_ms: u64,
    /// Which event a full telemetry queue drops: `oldest` or `newest`. Default `oldest`.
    pub telemetry_drop: DropPolicy,
}

/// `url` parsed, when it is an `http://` or `https://` URL with a host; else why not.
pub(crate) fn http_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(format!(
            "{url:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(uri)
}

/// A secret string whose `Debug` shows only its tail; shared with the node agent's config.
pub use switchyard_proto::secret::Secret;

impl Default for Config {
    fn default() -> Self {
        Self {
            control_plane: "http://127.0.0.1:7700".to_owned(),
            edge_name: "edge".to_owned(),
            table_cache: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            connect_timeout_ms: 2_000,
            first_byte_timeout_ms: 120_000,
            request_timeout_ms: 600_000,
            stream_idle_timeout_ms: 300_000,
            max_response_bytes: 64 * 1024 * 1024,
            bootstrap_key: None,
            insecure_no_auth: false,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 90_000,
            body_read_timeout_ms: 60_000,
            max_connections: 10_000,
            workers: 0,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            https_cert: None,
            https_key: None,
            usage_accounting: true,
            usage_flush_ms: 10_000,
            usage_webhook: None,
            usage_webhook_token: None,
            request_log: None,
            otlp_endpoint: None,
            telemetry_queue: 10_000,
            telemetry_batch: 500,
            telemetry_flush_ms: 1_000,
            telemetry_drop: DropPolicy::Oldest,
        }
    }
}

impl Config {
    /// The control-plane voters' URLs from [`Config::control_plane`], in the order given.
    pub fn control_plane_urls(&self) -> Vec<String> {
        self.control_plane
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The first control-plane URL: where leases and cooldown reports start (they follow the
    /// leader from there).
    pub fn primary_control_plane(&self) -> String {
        self.control_plane_urls()
            .into_iter()
            .next()
            .unwrap_or_else(|| self.control_plane.clone())
    }

    /// Checks every field, naming the first one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field: &'static str, reason: String| Error::InvalidConfig { field, reason };
        if self.control_plane_urls().is_empty() {
            return Err(invalid(
                "control_plane",
                "must name at least one URL".to_owned(),
            ));
        }
        for url in self.control_plane_urls() {
            http_url(&url).map_err(|reason| invalid("control_plane", reason))?;
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
        for (field, value) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("stream_idle_timeout_ms", self.stream_idle_timeout_ms),
            ("max_response_bytes", self.max_response_bytes as u64),
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("max_connections", self.max_connections as u64),
            ("usage_flush_ms", self.usage_flush_ms),
            ("telemetry_queue", self.telemetry_queue as u64),
            ("telemetry_batch", self.telemetry_batch as u64),
            ("telemetry_flush_ms", self.telemetry_flush_ms),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be greater than 0".to_owned()));
            }
        }
        if let Some(url) = &self.usage_webhook {
            http_url(url).map_err(|reason| invalid("usage_webhook", reason))?;
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            crate::telemetry::otlp::traces_uri(endpoint)
                .map_err(|reason| invalid("otlp_endpoint", reason))?;
        }
        self.tls_files()?;
        self.https_acceptor()?;
        if let Some(key) = &self.bootstrap_key {
            crate::auth::check_format(key.expose()).map_err(|reason| {
                invalid(
                    "bootstrap_key",
                    format!("{reason}; client keys look like sy_live_<random> or sy_test_<random>"),
                )
            })?;
        }
        Ok(())
    }

    /// Checks that serving on `addr` is safe: a non-loopback edge needs a bootstrap key (the
    /// table's keys arrive later) unless `insecure_no_auth` is set.
    pub fn validate_listen(&self, addr: std::net::SocketAddr) -> Result<(), Error> {
        if addr.ip().is_loopback() || self.bootstrap_key.is_some() || self.insecure_no_auth {
            return Ok(());
        }
        Err(Error::InvalidConfig {
            field: "bootstrap_key",
            reason: format!(
                "the edge listens on {addr}, which is not loopback, and no client key is configured; \
                 set a bootstrap key (SWITCHYARD_BOOTSTRAP_KEY) or pass --insecure-no-auth"
            ),
        })
    }

    /// The mutual-TLS files, when all three `tls_*` fields are set.
    pub fn tls_files(&self) -> Result<Option<TlsFiles>, Error> {
        let files = TlsFiles::from_fields(&self.tls_ca, &self.tls_cert, &self.tls_key);
        let invalid = |e: TlsError| Error::InvalidConfig {
            field: e.field(),
            reason: e.reason(),
        };
        let files = files.map_err(invalid)?;
        if let Some(f) = &files {
            f.check().map_err(invalid)?;
        }
        Ok(files)
    }

    /// The TLS acceptor for `/v1` when both `https_*` fields are set (the pair is read now).
    pub fn https_acceptor(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, Error> {
        HttpsFiles::acceptor_for(self.https_cert.clone(), self.https_key.clone())
            .map_err(|(field, reason)| Error::InvalidConfig { field, reason })
    }

    /// A gRPC endpoint for the control-plane voter at `url`: over mutual TLS when the `tls_*`
    /// files are set (an `http://` URL is then dialled as `https://`).
    pub fn control_plane_endpoint(&self, url: &str) -> Result<tonic::transport::Endpoint, Error> {
        let tls = self.tls_files()?;
        switchyard_proto::tls::endpoint(url, tls.as_ref()).map_err(|e| match e {
            TlsError::Url { source, .. } => Error::ControlPlaneConnect {
                url: url.to_owned(),
                source,
            },
            other => Error::InvalidConfig {
                field: "tls_cert",
                reason: other.to_string(),
            },
        })
    }

    /// [`Config::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`Config::stream_idle_timeout_ms`] as a duration.
    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.stream_idle_timeout_ms)
    }

    /// [`Config::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`Config::first_byte_timeout_ms`] as a duration.
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.first_byte_timeout_ms)
    }

    /// [`Config::header_read_timeout_ms`] as a duration.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// [`Config::idle_timeout_ms`] as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }

    /// [`Config::body_read_timeout_ms`] as a duration.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
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
    fn several_control_plane_voters_are_listed_in_order() {
        let cfg = Config {
            control_plane: "http://a:7700, http://b:7700,,http://c:7700".into(),
            ..Config::default()
        };
        assert_eq!(cfg.validate().ok(), Some(()));
        assert_eq!(
            cfg.control_plane_urls(),
            vec!["http://a:7700", "http://b:7700", "http://c:7700"]
        );
        assert_eq!(cfg.primary_control_plane(), "http://a:7700");
        let bad = Config {
            control_plane: "http://a:7700,ftp://b:1".into(),
            ..Config::default()
        };
        let err = bad
            .validate()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("control_plane") && err.contains("ftp://b:1"),
            "{err}"
        );
        let empty = Config {
            control_plane: " , ".into(),
            ..Config::default()
        };
        assert!(empty.validate().is_err());
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
            (
                "request_timeout_ms",
                Config {
                    request_timeout_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "max_response_bytes",
                Config {
                    max_response_bytes: 0,
                    ..Config::default()
                },
            ),
            (
                "header_read_timeout_ms",
                Config {
                    header_read_timeout_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "idle_timeout_ms",
                Config {
                    idle_timeout_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "body_read_timeout_ms",
                Config {
                    body_read_timeout_ms: 0,
                    ..Config::default()
                },
            ),
            (
                "max_connections",
                Config {
                    max_connections: 0,
                    ..Config::default()
                },
            ),
            (
                "usage_webhook",
                Config {
                    usage_webhook: Some("ftp://x/hook".into()),
                    ..Config::default()
                },
            ),
            (
                "otlp_endpoint",
                Config {
                    otlp_endpoint: Some("localhost:4318".into()),
                    ..Config::default()
                },
            ),
            (
                "telemetry_queue",
                Config {
                    telemetry_queue: 0,
                    ..Config::default()
                },
            ),
            (
                "bootstrap_key",
                Config {
                    bootstrap_key: Some(Secret::new("hunter2")),
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
    fn non_loopback_needs_a_key_or_the_insecure_flag() {
        let public: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let open = Config::default();
        assert!(open.validate_listen(local).is_ok());
        assert!(matches!(
            open.validate_listen(public),
            Err(Error::InvalidConfig {
                field: "bootstrap_key",
                ..
            })
        ));
        let keyed = Config {
            bootstrap_key: Some(Secret::new("sy_live_abcdefghijklmnop")),
            ..Config::default()
        };
        assert!(keyed.validate_listen(public).is_ok());
        let insecure = Config {
            insecure_no_auth: true,
            ..Config::default()
        };
        assert!(insecure.validate_listen(public).is_ok());
    }

    #[test]
    fn secret_debug_hides_all_but_the_tail() {
        let s = Secret::new("sy_live_supersecretvalue");
        assert_eq!(format!("{s:?}"), "****alue");
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
