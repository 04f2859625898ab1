//! The edge's errors: `Error` for running the edge, `ApiError` for what a client sees (the only
//! place that chooses HTTP status codes).

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the edge could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration field holds a value the edge cannot use.
    #[error("invalid config field `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client for upstreams could not be built.
    #[error("cannot build the upstream http client")]
    HttpClient(#[source] reqwest::Error),
    /// The HTTP server failed while serving.
    #[error("http server failed")]
    Serve(#[source] std::io::Error),
    /// The control plane could not be reached.
    #[error("cannot connect to control plane {url}")]
    ControlPlaneConnect {
        /// The control plane's URL.
        url: String,
        /// The transport failure.
        #[source]
        source: tonic::transport::Error,
    },
    /// The control plane refused or broke the routing-table watch.
    #[error("routing-table watch failed")]
    ControlPlaneWatch(#[source] Box<tonic::Status>),
    /// The routing-table cache could not be written.
    #[error("cannot write routing-table cache {path}")]
    CacheWrite {
        /// The cache file.
        path: PathBuf,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },
    /// The routing-table cache could not be read or decoded.
    #[error("cannot read routing-table cache {path}: {reason}")]
    CacheRead {
        /// The cache file.
        path: PathBuf,
        /// The IO or decode failure.
        reason: String,
    },
}

/// An error answered to an API client, rendered in OpenAI's
/// `{"error":{"message","type","param","code"}}` shape.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body exceeded `max_body_bytes`.
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The body could not be read from the client connection.
    #[error("could not read the request body")]
    BodyUnreadable,
    /// The body is not JSON.
    #[error("we could not parse the JSON body of your request: {reason}")]
    InvalidJson {
        /// The parser's complaint.
        reason: String,
    },
    /// The body is JSON but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// `model` is absent or not a string.
    #[error("you must provide a model parameter as a string")]
    MissingModel,
    /// No model group of that name exists in the routing table.
    #[error("The model `{model}` does not exist or you do not have access to it.")]
    ModelNotFound {
        /// The name the client asked for.
        model: String,
    },
    /// The edge has not received a routing table yet.
    #[error("the gateway has no routing table yet; retry shortly")]
    NoRoutingTable,
    /// Every candidate upstream failed before sending a byte.
    #[error("no upstream could serve model `{model}` after {attempts} attempt(s)")]
    UpstreamUnavailable {
        /// The public model name.
        model: String,
        /// How many upstreams were tried.
        attempts: usize,
    },
    /// No route matches the path.
    #[error("Invalid URL ({method} {path})")]
    UnknownRoute {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
    /// The path exists but not for this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
    },
}

impl ApiError {
    /// HTTP status, OpenAI error type, offending parameter and machine-readable code.
    fn parts(
        &self,
    ) -> (
        StatusCode,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    ) {
        const INVALID: &str = "invalid_request_error";
        match self {
            Self::BodyTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                INVALID,
                None,
                Some("request_too_large"),
            ),
            Self::BodyUnreadable => (StatusCode::BAD_REQUEST, INVALID, None, None),
            Self::InvalidJson { .. } | Self::NotAnObject => {
                (StatusCode::BAD_REQUEST, INVALID, None, None)
            }
            Self::MissingModel => (StatusCode::BAD_REQUEST, INVALID, Some("model"), None),
            Self::ModelNotFound { .. } => (
                StatusCode::NOT_FOUND,
                INVALID,
                None,
                Some("model_not_found"),
            ),
            Self::NoRoutingTable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                None,
                Some("no_routing_table"),
            ),
            Self::UpstreamUnavailable { .. } => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                None,
                Some("upstream_unavailable"),
            ),
            Self::UnknownRoute { .. } => (StatusCode::NOT_FOUND, INVALID, None, None),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, INVALID, None, None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, param, code) = self.parts();
        let body = json!({
            "error": {
                "message": self.to_string(),
                "type": kind,
                "param": param,
                "code": code,
            }
        });
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn render(err: ApiError) -> (StatusCode, serde_json::Value) {
        let resp = err.into_response();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn model_not_found_matches_openai() {
        let (status, body) = render(ApiError::ModelNotFound { model: "x".into() }).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            body,
            json!({"error": {
                "message": "The model `x` does not exist or you do not have access to it.",
                "type": "invalid_request_error",
                "param": null,
                "code": "model_not_found",
            }})
        );
    }

    #[tokio::test]
    async fn missing_model_names_the_param() {
        let (status, body) = render(ApiError::MissingModel).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["param"], "model");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}
