//! The HTTP client for upstream model servers and the failures an attempt can end in.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

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

    /// Whether trying the same deployment again, after a pause, may succeed: a server error
    /// or timeout may pass. A dead endpoint, a rate limit (its cooldown decides), a refused
    /// credential or a missing model will not.
    pub fn worth_retrying_in_place(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Protocol { .. } => true,
            Self::Status { status } => status.is_server_error() || status.as_u16() == 408,
            Self::Connect | Self::RateLimited { .. } | Self::Credential { .. } => false,
        }
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

/// The upstream connector: plain TCP for `http://`, rustls (native roots) for `https://`.
pub(crate) type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// A pooled client over that connector.
type Pool = Client<Connector, Full<Bytes>>;

/// A connector that dials `http://` in plain TCP and `https://` with rustls over the native
/// roots, opening connections within `connect_timeout` (shared with the telemetry senders).
pub(crate) fn https_connector(connect_timeout: Duration) -> Connector {
    install_crypto_provider();
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    tcp.enforce_http(false);
    // A host without CA certificates still serves plain-http upstreams; https ones then
    // fail to connect (and say so) instead of the edge refusing to start.
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no native CA certificates; https upstreams will fail");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        });
    tls.https_or_http().enable_http1().wrap_connector(tcp)
}

/// One pooled HTTP client shared by every request to every upstream. It is hyper's own pooled
/// client with nothing layered on top (no redirects, no retries, no URL re-parsing): the edge
/// decides retries itself. Each edge worker thread has a pool of its own (built at its first
/// request), so a request never waits on a connection task running on another thread; callers
/// off the workers share one more.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    connector: Connector,
    pools: Arc<[OnceLock<Pool>]>,
}

impl UpstreamClient {
    /// Builds the client; `connect_timeout` bounds opening a connection. Requests carry no
    /// total timeout (streams run long): callers bound the wait for the first byte.
    pub fn new(connect_timeout: Duration, workers: usize) -> Result<Self, Error> {
        let connector = https_connector(connect_timeout);
        let pools = (0..=crate::worker::count(workers))
            .map(|_| OnceLock::new())
            .collect();
        Ok(Self { connector, pools })
    }

    /// This thread's pool: its worker's, or the shared one.
    fn pool(&self) -> &Pool {
        let n = self.pools.len();
        let slot = match crate::worker::index() {
            Some(worker) if n > 1 => 1 + worker % (n - 1),
            _ => 0,
        };
        self.pools[slot].get_or_init(|| {
            Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(self.connector.clone())
        })
    }

    /// POSTs `body` to the candidate's `uri` with its credential, forwarding only the client's
    /// `content-type` and `accept` (never its `authorization`); returns once the response head
    /// arrives.
    pub async fn send(
        &self,
        candidate: &Candidate,
        uri: Uri,
        client_headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let endpoint = &candidate.deployment.endpoint;
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            client_headers
                .get(CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/json")),
        );
        if let Some(accept) = client_headers.get(ACCEPT) {
            headers.insert(ACCEPT, accept.clone());
        }
        // Every URI sent to an endpoint (its `/v1` operations, Ollama's native API) has the
        // authority of its base URL, which the header was made from.
        if let Some(host) = &endpoint.host_header {
            headers.insert(HOST, host.clone());
        }
        for (name, value) in &endpoint.request_headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(credential) = endpoint.credentials.get(candidate.slot) {
            headers.insert(credential.header.clone(), credential.authorization.clone());
        }
        self.pool().request(request).await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect
            } else {
                UpstreamError::Protocol {
                    what: "the connection failed before a response",
                }
            }
        })
    }
}

/// TLS needs a process-wide crypto provider (the workspace builds rustls without a default).
/// Installing twice is harmless: the first one stays.
pub(crate) fn install_crypto_provider() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::trace!("rustls crypto provider already installed");
    }
}
