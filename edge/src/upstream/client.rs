//! The HTTP client for upstream model servers and the failures it reports.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_TYPE, HeaderValue};

use crate::error::Error;
use crate::routing::Candidate;

/// Why an upstream could not answer; failover reads [`UpstreamError::retry_is_safe`], never the text.
/// Messages carry no URLs (a base URL may embed credentials).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be opened (refused, unreachable, DNS, TLS, connect timeout).
    #[error("cannot connect to endpoint {endpoint}")]
    Connect {
        /// The endpoint id.
        endpoint: Arc<str>,
        /// The transport failure, its URL stripped.
        #[source]
        source: reqwest::Error,
    },
    /// The request was sent but no response headers arrived in time.
    #[error("endpoint {endpoint} sent no response within {after:?}")]
    Timeout {
        /// The endpoint id.
        endpoint: Arc<str>,
        /// The first-byte timeout that elapsed.
        after: Duration,
    },
    /// The connection broke or the response was malformed after the request went out.
    #[error("protocol error talking to endpoint {endpoint}")]
    Protocol {
        /// The endpoint id.
        endpoint: Arc<str>,
        /// The transport failure, its URL stripped.
        #[source]
        source: reqwest::Error,
    },
}

impl UpstreamError {
    /// Whether another upstream may be tried: the failed one either never got the request or
    /// never answered it, and the client has seen no byte.
    pub fn retry_is_safe(&self) -> bool {
        match self {
            // Nothing was sent.
            Self::Connect { .. } => true,
            // Nothing came back; the client has seen no byte, so a second upstream is its best hope.
            Self::Timeout { .. } => true,
            // The upstream may have received the request and begun work (and billing).
            Self::Protocol { .. } => false,
        }
    }

    /// A bounded label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Timeout { .. } => "timeout",
            Self::Protocol { .. } => "protocol",
        }
    }
}

/// One pooled HTTP client shared by every request to every upstream.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
    first_byte_timeout: Duration,
}

impl UpstreamClient {
    /// Builds the client; `connect_timeout` bounds opening a connection, `first_byte_timeout`
    /// bounds waiting for response headers. Response bodies have no deadline (streams run long).
    pub fn new(connect_timeout: Duration, first_byte_timeout: Duration) -> Result<Self, Error> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(Error::HttpClient)?;
        Ok(Self {
            http,
            first_byte_timeout,
        })
    }

    /// POSTs `body` to `{base_url}{path}` of `candidate`, forwarding only the client's
    /// `content-type` and `accept` (never its `authorization`), and returns once headers arrive.
    pub async fn send(
        &self,
        candidate: &Candidate,
        path: &str,
        client_headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = format!("{}{path}", candidate.base_url);
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
        let endpoint = candidate.endpoint_id.clone();
        match tokio::time::timeout(self.first_byte_timeout, request.send()).await {
            Err(_elapsed) => Err(UpstreamError::Timeout {
                endpoint,
                after: self.first_byte_timeout,
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect {
                endpoint,
                source: e.without_url(),
            }),
            Ok(Err(e)) if e.is_timeout() => Err(UpstreamError::Timeout {
                endpoint,
                after: self.first_byte_timeout,
            }),
            Ok(Err(e)) => Err(UpstreamError::Protocol {
                endpoint,
                source: e.without_url(),
            }),
        }
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
