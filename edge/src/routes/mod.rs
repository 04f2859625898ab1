//! The HTTP surface: the forwarding path for the model POSTs of every dialect (OpenAI `/v1`,
//! Responses `/v1/responses`, Anthropic `/v1/messages`, Ollama's `/api/*`) and one file per
//! other endpoint, assembled here into the edge's service.

pub mod anthropic;
pub mod forward;
pub mod health;
pub mod metrics;
pub mod models;
pub mod ollama;

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt as _;
use tower::{Service, ServiceExt as _};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::dialect::Inbound;
use crate::error::ApiError;
use crate::metrics::Operation;
use crate::state::EdgeState;

/// Where OpenAI Responses clients (Codex CLI, `client.responses`) POST.
pub const RESPONSES: &str = "/v1/responses";

/// The edge's HTTP service, shared by `run` and tests. The three `/v1` POST operations, the
/// data plane's hot path, go straight to [`forward::forward`] with a panic guard of their
/// own; everything else (and those paths with another method) goes through [`router`]. The
/// router costs a clone of its layered route, an extension map and several wrapped futures per
/// request: together about a fifth of the edge's own CPU time per forwarded request.
#[derive(Clone)]
pub struct App {
    state: EdgeState,
    router: Router,
}

/// The edge's HTTP service for `state`; see [`App`].
pub fn app(state: EdgeState) -> App {
    App {
        router: router(state.clone()),
        state,
    }
}

impl App {
    /// The operation and dialect a request is, when it goes to the forwarding path.
    fn operation<B>(request: &Request<B>) -> Option<(Operation, Inbound)> {
        if request.method() != Method::POST {
            return None;
        }
        let path = request.uri().path();
        if let Some(op) = Operation::ALL.into_iter().find(|op| op.path() == path) {
            return Some((op, Inbound::OpenAi));
        }
        if anthropic::MESSAGES.contains(&path) {
            return Some((Operation::Chat, Inbound::Anthropic));
        }
        if path == RESPONSES {
            return Some((Operation::Chat, Inbound::Responses));
        }
        ollama::operation(path)
    }
}

impl<B> Service<Request<B>> for App
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let request = request.map(Body::new);
        match Self::operation(&request) {
            Some((operation, inbound)) => {
                let state = self.state.clone();
                Box::pin(async move {
                    let served = forward::forward(&state, operation, inbound, request);
                    let served = AssertUnwindSafe(served).catch_unwind().await;
                    Ok(served.unwrap_or_else(panic_response))
                })
            }
            None => Box::pin(self.router.clone().oneshot(request)),
        }
    }
}

/// Everything but the forwarding path: model listing, metrics, health and the OpenAI errors
/// for unknown routes and methods. The POST operations are here too, so that another method on
/// their paths is answered 405, not 404.
fn router(state: EdgeState) -> Router {
    let max_body_bytes = state.config().max_body_bytes;
    let mut router = Router::new();
    for operation in Operation::ALL {
        let handle = move |State(state): State<EdgeState>, request: axum::extract::Request| async move {
            forward::forward(&state, operation, Inbound::OpenAi, request).await
        };
        router = router.route(operation.path(), post(handle));
    }
    for (path, operation, inbound) in ollama::POSTS {
        let handle = move |State(state): State<EdgeState>, request: axum::extract::Request| async move {
            forward::forward(&state, operation, inbound, request).await
        };
        router = router.route(path, post(handle));
    }
    for path in anthropic::MESSAGES {
        let handle = |State(state): State<EdgeState>, request: axum::extract::Request| async move {
            forward::forward(&state, Operation::Chat, Inbound::Anthropic, request).await
        };
        router = router.route(path, post(handle));
    }
    let responses = |State(state): State<EdgeState>, request: axum::extract::Request| async move {
        forward::forward(&state, Operation::Chat, Inbound::Responses, request).await
    };
    router
        .route(RESPONSES, post(responses))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route(
            "/anthropic/v1/messages/count_tokens",
            post(anthropic::count_tokens),
        )
        .route("/anthropic/v1/models", get(anthropic::models))
        .route("/", get(ollama::running).head(ollama::running))
        .route("/api/version", get(ollama::version).head(ollama::version))
        .route("/api/tags", get(ollama::tags).head(ollama::tags))
        .route("/api/ps", get(ollama::ps))
        .route("/api/show", post(ollama::show))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::retrieve))
        .route("/metrics", get(metrics::render))
        .route("/health", get(health::report))
        .route("/health/liveliness", get(health::liveliness))
        .route("/health/readiness", get(health::readiness))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: a panic becomes a 500 the trace layer still sees; trace sees every
        // request, including ones the body limit rejects.
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::UnknownRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// A handler that panicked answers 500 in OpenAI's error shape. Neither the request nor the
/// panic message reaches the client: either may hold a key or a prompt.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    let body = crate::error::error_json(
        "the gateway hit an internal error",
        "api_error",
        None,
        Some("internal_error"),
    );
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_an_openai_500_without_the_request() {
        crate::upstream::client::install_crypto_provider();
        let app: Router = Router::new()
            .route(
                "/boom",
                post(|body: String| async move {
                    assert!(body.is_empty(), "handler failed on {body}");
                    "unreachable with a body"
                }),
            )
            .layer(CatchPanicLayer::custom(panic_response));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/boom"))
            .bearer_auth("sy_live_panicsecret0123456789")
            .body("prompt with sy_live_panicsecret0123456789")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let text = response.text().await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["error"]["type"], "api_error");
        assert_eq!(json["error"]["code"], "internal_error");
        assert!(!text.contains("panicsecret"), "{text}");
        server.abort();
    }
}
