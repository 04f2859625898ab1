//! Reads the admin API in-process: the dashboard calls the same `/api/v1` routes the CLI calls,
//! presenting the visitor's own token, so a page shows exactly what `switchyard` would and a
//! read-only token sees what it may read.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use super::usage::{Usage, UsageReport};
use crate::admin::views::ErrorBody;

/// Largest API answer a page reads (a big cluster's key or usage list stays far below).
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// Why a read gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The token is not accepted.
    Unauthorized,
    /// The route does not exist on this voter.
    Missing,
    /// The API answered an error, or something unreadable.
    Failed(String),
}

/// The `/api/v1` router and the token to present to it.
#[derive(Clone)]
pub struct ApiReader {
    api: Router,
    token: String,
}

impl ApiReader {
    /// A reader of `api` (the router nested under `/api/v1`) presenting `token`.
    pub fn new(api: Router, token: String) -> Self {
        Self { api, token }
    }

    /// `GET /api/v1{path}` (path with its query), parsed as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ReadError> {
        let request = Request::get(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(Body::empty())
            .map_err(|e| ReadError::Failed(format!("bad API path `{path}`: {e}")))?;
        let response = match self.api.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| ReadError::Failed(format!("reading {path}: {e}")))?;
        match status {
            s if s.is_success() => serde_json::from_slice(&bytes)
                .map_err(|e| ReadError::Failed(format!("unexpected answer from {path}: {e}"))),
            StatusCode::UNAUTHORIZED => Err(ReadError::Unauthorized),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => Err(ReadError::Missing),
            s => Err(ReadError::Failed(
                serde_json::from_slice::<ErrorBody>(&bytes)
                    .map(|b| b.error.message)
                    .unwrap_or_else(|_| format!("{path} answered {s}")),
            )),
        }
    }

    /// `GET /api/v1/usage` over `[from_ms, to_ms)` grouped by `group_by`. A voter without the
    /// route reads as [`Usage::Missing`]; a refused token is still an error.
    pub async fn usage(
        &self,
        from_ms: u64,
        to_ms: u64,
        group_by: &str,
    ) -> Result<Usage, ReadError> {
        let path = format!("/usage?from={from_ms}&to={to_ms}&group_by={group_by}");
        match self.get::<UsageReport>(&path).await {
            Ok(report) => Ok(Usage::Report(report)),
            Err(ReadError::Missing) => Ok(Usage::Missing),
            Err(e) => Err(e),
        }
    }
}
