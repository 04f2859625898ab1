//! The HTTP client for upstream model servers and the failures an attempt can end in.

use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::error::Error;
use crate::metrics::AttemptOutcome;
use crate::routing::Candidate;

/// Why an attempt at one upstream failed; failover reads the variant, never the text.
/// Messages carry no URLs (a base URL may embed credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, DNS, TLS, connect timeout).
    #[error("cannot connect")]
    Connect,
    /// No response head (or first body byte) within the per-try timeout or the deadline.
    #[error("no answer within {after:?}")]
    Timeout {
        /// The time allowed.
        after: Duration,
    },
    /// 429: the target is rate limited; `wait` is what its headers asked for, if anything.
    #[error("rate limited")]
    RateLimited {
        /// The wait the headers asked for.
        wait: Option<Duration>,
    },
    /// 401/403: the upstream refused our credential.
    #[error("credential refused with {status}")]
    Credential {
        /// The status.
        status: StatusCode,
    },
    /// 5xx, 408, or 404 (the server lacks the model).
    #[error("answered {status}")]
    Status {
        /// The status.
        status: StatusCode,
    },
    /// The connection broke, or the answer was malformed or too large.
    #[error("protocol error: {what}")]
    Protocol {
        /// What went wrong, from a fixed set.
        what: &'static str,
    },
}

impl UpstreamError {
    /// Whether the failure concerns the whole endpoint (every model and credential on it).
    pub fn endpoint_wide(&self) -> bool {
        matches!(self, Self::Connect)
    }

    /// The metric label.
    pub fn outcome(&self) -> AttemptOutcome {
        match self {
            Self::Connect => AttemptOutcome::Connect,
            Self::Timeout { .. } => AttemptOutcome::Timeout,
            Self::RateLimited { .. } => AttemptOutcome::RateLimited,
            Self::Credential { .. } => AttemptOutcome::Credential,
            Self::Status { .. } => AttemptOutcome::ServerError,
            Self::Protocol { .. } => AttemptOutcome::Protocol,
        }
    }
}

/// One pooled HTTP client shared by every request to every upstream.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
}

impl UpstreamClient {
    /// Builds the client; `connect_timeout` bounds opening a connection. Requests carry no
    /// total timeout (streams run long): callers bound the wait for the first byte.
    pub fn new(connect_timeout: Duration) -> Result<Self, Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self { http })
    }

    /// POSTs `body` to `{base_url}{path}` of `candidate` with its credential, forwarding only
    /// the client's `content-type` and `accept` (never its `authorization`); returns once the
    /// response head arrives.
    pub async fn send(
        &self,
        candidate: &Candidate,
        path: &str,
        client_headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let endpoint = &candidate.deployment.endpoint;
        let mut url = String::with_capacity(endpoint.base_url.len() + path.len());
        url.push_str(&endpoint.base_url);
        url.push_str(path);
        let content_type = client_headers
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json"));
        let mut request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, content_type)
            .body(body);
        if let Some(accept) = client_headers.get(ACCEPT) {
            request = request.header(ACCEPT, accept.clone());
        }
        if let Some(credential) = endpoint.credentials.get(candidate.slot) {
            request = request.header(AUTHORIZATION, credential.authorization.clone());
        }
        request.send().await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect
            } else if e.is_timeout() {
                UpstreamError::Timeout {
                    after: Duration::ZERO,
                }
            } else {
                UpstreamError::Protocol {
                    what: "the connection failed before a response",
                }
            }
        })
    }
}

/// reqwest is built with `rustls-no-provider`, so TLS needs a process-wide crypto provider.
/// Installing twice is harmless: the first one stays.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::trace!("rustls crypto provider already installed");
    }
}
