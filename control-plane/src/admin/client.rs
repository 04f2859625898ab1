//! A client for the admin API, used by the `switchyard` CLI verbs and by tests.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::aliases::{AliasView, LatencyCommitted, LatencyReport};
use super::usage::UsageView;
use super::views::{
    BrokenLinkView, Cleared, CreatedKey, EndpointView, ErrorBody, KeyView, ModelView, NewEndpoint,
    NewKey, NewMember, ReloadReport, StatusView,
};
use crate::catalog::probe::{AuditReport, AuditRequest};
use crate::catalog::refresh::{EndpointCatalog, RefreshReport};
use crate::error::Error;
use crate::raft::Member;
use crate::state::Cooldown;

/// Talks to one voter's admin API.
#[derive(Clone)]
pub struct AdminClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminClient({})", self.base)
    }
}

impl AdminClient {
    /// A client for the admin API at `base` (`http://host:port`), presenting `token`.
    pub fn new(base: &str, token: &str) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::BadRequest(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self::with_http(base, token, http))
    }

    /// [`AdminClient::new`] over `http` (e.g. one trusting a private CA for `https://`).
    pub fn with_http(base: &str, token: &str, http: reqwest::Client) -> Self {
        let base = if base.starts_with("http://") || base.starts_with("https://") {
            base.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", base.trim_end_matches('/'))
        };
        Self {
            base,
            token: token.to_string(),
            http,
        }
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, Error> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Error::Admin {
            status: 0,
            message: format!("cannot reach {}: {e}", self.base),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| Error::Admin {
            status: status.as_u16(),
            message: e.to_string(),
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Error::Admin {
                status: status.as_u16(),
                message,
            });
        }
        // 204 and friends carry no body.
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| Error::Admin {
            status: status.as_u16(),
            message: format!("unexpected answer: {e}"),
        })
    }

    /// `GET {path}` (with its query), parsed as `T`: for routes without a method of their own.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// `GET /api/v1/usage?…`; `query` is `(name, value)` pairs, encoded here.
    pub async fn usage(&self, query: &[(&str, String)]) -> Result<UsageView, Error> {
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        self.get(&format!("/api/v1/usage?{}", qs.join("&"))).await
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<StatusView, Error> {
        self.get("/api/v1/status").await
    }

    /// `GET /api/v1/endpoints`.
    pub async fn endpoints(&self) -> Result<Vec<EndpointView>, Error> {
        self.get("/api/v1/endpoints").await
    }

    /// `GET /api/v1/endpoints?consistent=true`: a linearizable read, answered only by the
    /// leader after it confirmed its leadership with a quorum.
    pub async fn endpoints_consistent(&self) -> Result<Vec<EndpointView>, Error> {
        self.get("/api/v1/endpoints?consistent=true").await
    }

    /// `POST /api/v1/endpoints`.
    pub async fn add_endpoint(&self, body: &NewEndpoint) -> Result<EndpointView, Error> {
        self.call(Method::POST, "/api/v1/endpoints", Some(body))
            .await
    }

    /// `DELETE /api/v1/endpoints/{id}`.
    pub async fn remove_endpoint(&self, id: &str) -> Result<(), Error> {
        self.call::<(), Option<()>>(Method::DELETE, &format!("/api/v1/endpoints/{id}"), None)
            .await
            .map(|_| ())
    }

    /// `GET /api/v1/models`.
    pub async fn models(&self) -> Result<Vec<ModelView>, Error> {
        self.get("/api/v1/models").await
    }

    /// `GET /api/v1/keys`.
    pub async fn keys(&self) -> Result<Vec<KeyView>, Error> {
        self.get("/api/v1/keys").await
    }

    /// `POST /api/v1/keys`: the answer holds the secret, shown only this once.
    pub async fn create_key(&self, body: &NewKey) -> Result<CreatedKey, Error> {
        self.call(Method::POST, "/api/v1/keys", Some(body)).await
    }

    /// `POST /api/v1/keys/{id}/revoke`.
    pub async fn revoke_key(&self, id: &str) -> Result<KeyView, Error> {
        self.call::<(), KeyView>(Method::POST, &format!("/api/v1/keys/{id}/revoke"), None)
            .await
    }

    /// `GET /api/v1/cooldowns`.
    pub async fn cooldowns(&self) -> Result<Vec<Cooldown>, Error> {
        self.get("/api/v1/cooldowns").await
    }

    /// `DELETE /api/v1/cooldowns[?endpoint=ID]`.
    pub async fn clear_cooldowns(&self, endpoint: Option<&str>) -> Result<Cleared, Error> {
        let path = match endpoint {
            Some(id) => format!("/api/v1/cooldowns?endpoint={id}"),
            None => "/api/v1/cooldowns".into(),
        };
        self.call::<(), Cleared>(Method::DELETE, &path, None).await
    }

    /// `GET /api/v1/members`.
    pub async fn members(&self) -> Result<Vec<Member>, Error> {
        self.get("/api/v1/members").await
    }

    /// `POST /api/v1/members`.
    pub async fn add_member(&self, body: &NewMember) -> Result<Vec<Member>, Error> {
        self.call(Method::POST, "/api/v1/members", Some(body)).await
    }

    /// `POST /api/v1/members/{id}/promote`.
    pub async fn promote_member(&self, id: u64) -> Result<Vec<Member>, Error> {
        self.call::<(), Vec<Member>>(Method::POST, &format!("/api/v1/members/{id}/promote"), None)
            .await
    }

    /// `DELETE /api/v1/members/{id}`.
    pub async fn remove_member(&self, id: u64) -> Result<Vec<Member>, Error> {
        self.call::<(), Vec<Member>>(Method::DELETE, &format!("/api/v1/members/{id}"), None)
            .await
    }

    /// `POST /api/v1/reload`.
    pub async fn reload(&self) -> Result<ReloadReport, Error> {
        self.call::<(), ReloadReport>(Method::POST, "/api/v1/reload", None)
            .await
    }

    /// `GET /api/v1/catalog`.
    pub async fn catalog(&self) -> Result<Vec<EndpointCatalog>, Error> {
        self.get("/api/v1/catalog").await
    }

    /// `POST /api/v1/catalog/refresh`.
    pub async fn refresh_catalog(&self) -> Result<RefreshReport, Error> {
        self.call::<(), RefreshReport>(Method::POST, "/api/v1/catalog/refresh", None)
            .await
    }

    /// `POST /api/v1/catalog/audit`.
    pub async fn audit_catalog(&self, request: &AuditRequest) -> Result<AuditReport, Error> {
        self.call(Method::POST, "/api/v1/catalog/audit", Some(request))
            .await
    }

    /// `GET /api/v1/aliases`.
    pub async fn aliases(&self) -> Result<Vec<AliasView>, Error> {
        self.get("/api/v1/aliases").await
    }

    /// `POST /api/v1/latency`.
    pub async fn report_latency(&self, report: &LatencyReport) -> Result<LatencyCommitted, Error> {
        self.call(Method::POST, "/api/v1/latency", Some(report))
            .await
    }

    /// `GET /api/v1/chains`.
    pub async fn chains(&self) -> Result<Vec<BrokenLinkView>, Error> {
        self.get("/api/v1/chains").await
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
