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
    HttpClient(#[source] std::io::Error),
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
    /// A parameter the endpoint requires is absent or of the wrong type.
    #[error("missing required parameter: '{param}'")]
    MissingParam {
        /// The parameter's name.
        param: &'static str,
    },
    /// A parameter has a value the edge cannot serve.
    #[error("{message}")]
    InvalidParam {
        /// The parameter's name.
        param: &'static str,
        /// What is wrong.
        message: &'static str,
    },
    /// A request another dialect's shape cannot be served as (Anthropic, Ollama, Responses).
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, naming the field.
        message: String,
    },
    /// No key was presented.
    #[error("missing API key: send it as `Authorization: Bearer sy_live_...`")]
    AuthMissing,
    /// The presented credential matches no key and is not in Switchyard's own format.
    #[error(
        "incorrect API key provided: it matches no key of this cluster and is not a Switchyard key \
         (sy_live_... or sy_test_...); a key from another gateway works once imported with \
         `switchyard keys import NAME --secret ...`"
    )]
    AuthMalformed,
    /// No key with that secret exists.
    #[error("incorrect API key provided")]
    AuthUnknown,
    /// The key was revoked.
    #[error("this API key has been revoked")]
    AuthRevoked,
    /// The key expired.
    #[error("this API key expired (at unix ms {at_ms})")]
    AuthExpired {
        /// When it expired, unix ms.
        at_ms: i64,
    },
    /// The key may not use this model.
    #[error("this API key is not allowed to use model `{model}`")]
    ModelNotAllowed {
        /// The name the client asked for.
        model: String,
    },
    /// The key has too many requests in flight.
    #[error("too many concurrent requests for this API key (limit {limit})")]
    KeyConcurrency {
        /// The key's limit.
        limit: u32,
    },
    /// The key spent its money budget for the day or the month, cluster-wide.
    #[error(
        "budget exhausted for this API key: {budget_usd} US dollars per {period}; retry after {retry_after_ms} ms"
    )]
    KeyBudgetExhausted {
        /// The budget, US dollars.
        budget_usd: f64,
        /// `day` or `month` (UTC).
        period: &'static str,
        /// When the next day or month starts.
        retry_after_ms: u64,
    },
    /// The key spent a windowed limit, cluster-wide.
    #[error("rate limit reached for this API key: {limit} {unit}; retry after {retry_after_ms} ms")]
    KeyRateLimited {
        /// The limit that was reached.
        limit: u64,
        /// What it counts: `requests per minute`, `tokens per minute`, `requests per day`.
        unit: &'static str,
        /// When the window has capacity again.
        retry_after_ms: u64,
    },
    /// No model group of that name exists in the routing table.
    #[error("The model `{model}` does not exist or you do not have access to it.")]
    ModelNotFound {
        /// The name the client asked for.
        model: String,
    },
    /// The edge has not received a routing table yet.
    #[error("the gateway has no routing table yet; retry shortly")]
    NoRoutingTable,
    /// Every upstream for the model is cooling down after rate limits.
    #[error("every upstream for model `{model}` is rate limited; retry after {retry_after_ms} ms")]
    RateLimited {
        /// The public model name.
        model: String,
        /// Milliseconds until the first upstream is usable again.
        retry_after_ms: u64,
    },
    /// Every candidate upstream failed before sending a byte.
    #[error("no upstream could serve model `{model}` after {attempts} attempt(s)")]
    UpstreamUnavailable {
        /// The public model name.
        model: String,
        /// How many upstreams were tried.
        attempts: usize,
    },
    /// No upstream can be tried at all (every one is cooling down after failures).
    #[error(
        "no upstream is available for model `{model}` right now; retry after {retry_after_ms} ms"
    )]
    NoUpstreamAvailable {
        /// The public model name.
        model: String,
        /// Milliseconds until the first upstream is usable again.
        retry_after_ms: u64,
    },
    /// Every attempt timed out, or the request's deadline passed.
    #[error("upstreams for model `{model}` did not answer in time after {attempts} attempt(s)")]
    UpstreamTimeout {
        /// The public model name.
        model: String,
        /// How many upstreams were tried.
        attempts: usize,
    },
    /// The prompt is larger than every deployment's context window.
    #[error(
        "the prompt (about {estimate} tokens) exceeds the context window of every deployment of `{model}`"
    )]
    ContextTooLong {
        /// The public model name.
        model: String,
        /// The edge's token estimate.
        estimate: u64,
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
    pub fn parts(&self) -> Parts {
        use StatusCode as S;
        match self {
            Self::BodyTooLarge { .. } => {
                invalid(S::PAYLOAD_TOO_LARGE, None, Some("request_too_large"))
            }
            Self::BodyUnreadable => invalid(S::BAD_REQUEST, None, None),
            Self::InvalidJson { .. } | Self::NotAnObject => {
                invalid(S::BAD_REQUEST, None, Some("invalid_json"))
            }
            Self::MissingModel => invalid(S::BAD_REQUEST, Some("model"), None),
            Self::MissingParam { param } => invalid(
                S::BAD_REQUEST,
                Some(param),
                Some("missing_required_parameter"),
            ),
            Self::InvalidRequest { .. } => invalid(S::BAD_REQUEST, None, None),
            Self::InvalidParam { param, .. } => {
                invalid(S::BAD_REQUEST, Some(param), Some("unsupported_parameter"))
            }
            Self::AuthMissing => auth("missing_api_key"),
            Self::AuthMalformed => auth("malformed_api_key"),
            Self::AuthUnknown => auth("invalid_api_key"),
            Self::AuthRevoked => auth("revoked_api_key"),
            Self::AuthExpired { .. } => auth("expired_api_key"),
            Self::ModelNotAllowed { .. } => (
                S::FORBIDDEN,
                "permission_error",
                Some("model"),
                Some("model_not_allowed"),
            ),
            Self::KeyConcurrency { .. } => failure(
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "concurrency_limit_exceeded",
            ),
            Self::KeyRateLimited { .. } | Self::RateLimited { .. } => failure(
                S::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            // OpenAI's type for money running out; the code names the gateway's budget.
            Self::KeyBudgetExhausted { .. } => failure(
                S::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "budget_exceeded",
            ),
            Self::ModelNotFound { .. } => {
                invalid(S::NOT_FOUND, Some("model"), Some("model_not_found"))
            }
            Self::NoRoutingTable => {
                failure(S::SERVICE_UNAVAILABLE, "api_error", "no_routing_table")
            }
            Self::UpstreamUnavailable { .. } => {
                failure(S::BAD_GATEWAY, "api_error", "upstream_unavailable")
            }
            Self::NoUpstreamAvailable { .. } => {
                failure(S::SERVICE_UNAVAILABLE, "api_error", "no_upstream_available")
            }
            Self::UpstreamTimeout { .. } => {
                failure(S::GATEWAY_TIMEOUT, "timeout_error", "upstream_timeout")
            }
            Self::ContextTooLong { .. } => invalid(
                S::BAD_REQUEST,
                Some("messages"),
                Some("context_length_exceeded"),
            ),
            Self::UnknownRoute { .. } => invalid(S::NOT_FOUND, None, Some("unknown_url")),
            Self::MethodNotAllowed { .. } => invalid(S::METHOD_NOT_ALLOWED, None, None),
        }
    }

    /// Milliseconds a client should wait before retrying, for errors that say so.
    fn retry_after_ms(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_ms, .. }
            | Self::KeyRateLimited { retry_after_ms, .. }
            | Self::KeyBudgetExhausted { retry_after_ms, .. }
            | Self::NoUpstreamAvailable { retry_after_ms, .. } => Some(*retry_after_ms),
            Self::KeyConcurrency { .. } => Some(1_000),
            _ => None,
        }
    }
}

/// The OpenAI error object for `message`, as bytes (used for bodies and stream error events).
pub fn error_json(
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> serde_json::Value {
    json!({
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code,
        }
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, param, code) = self.parts();
        let body = error_json(&self.to_string(), kind, param, code);
        let mut response = (status, Json(body)).into_response();
        if let Some(ms) = self.retry_after_ms() {
            let headers = response.headers_mut();
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from(ms.div_ceil(1_000).max(1)),
            );
            headers.insert("retry-after-ms", http::HeaderValue::from(ms));
        }
        response
    }
}

/// An error's status, OpenAI `type`, `param` and `code` ([`ApiError::parts`]).
pub type Parts = (
    StatusCode,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// A request the client must fix: OpenAI's `invalid_request_error`.
fn invalid(status: StatusCode, param: Option<&'static str>, code: Option<&'static str>) -> Parts {
    (status, "invalid_request_error", param, code)
}

/// A key that does not authenticate: 401 `authentication_error`.
fn auth(code: &'static str) -> Parts {
    (
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        None,
        Some(code),
    )
}

/// Any other failure, named by its `type` and `code`, with no `param`.
fn failure(status: StatusCode, kind: &'static str, code: &'static str) -> Parts {
    (status, kind, None, Some(code))
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
                "param": "model",
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

    #[tokio::test]
    async fn statuses_and_types() {
        // (error, status, type)
        let cases = [
            (ApiError::AuthMissing, 401, "authentication_error"),
            (ApiError::AuthRevoked, 401, "authentication_error"),
            (
                ApiError::ModelNotAllowed { model: "m".into() },
                403,
                "permission_error",
            ),
            (
                ApiError::RateLimited {
                    model: "m".into(),
                    retry_after_ms: 1500,
                },
                429,
                "rate_limit_error",
            ),
            (
                ApiError::UpstreamTimeout {
                    model: "m".into(),
                    attempts: 2,
                },
                504,
                "timeout_error",
            ),
            (
                ApiError::BodyTooLarge { limit: 1 },
                413,
                "invalid_request_error",
            ),
        ];
        for (err, status, kind) in cases {
            let (got_status, body) = render(err).await;
            assert_eq!(got_status.as_u16(), status);
            assert_eq!(body["error"]["type"], kind);
        }
    }

    #[test]
    fn rate_limits_carry_retry_after_rounded_up() {
        let resp = ApiError::RateLimited {
            model: "m".into(),
            retry_after_ms: 1500,
        }
        .into_response();
        assert_eq!(resp.headers()["retry-after"], "2");
        assert_eq!(resp.headers()["retry-after-ms"], "1500");
    }
}
