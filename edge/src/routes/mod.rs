//! The HTTP surface: one file per endpoint, assembled here into the edge's router.

pub mod chat_completions;
pub mod completions;
pub mod embeddings;
pub mod forward;
pub mod health;
pub mod metrics;
pub mod models;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::state::EdgeState;

/// The edge's router, shared by `run` and tests.
pub fn app(state: EdgeState) -> Router {
    let max_body_bytes = state.config().max_body_bytes;
    Router::new()
        .route("/v1/chat/completions", post(chat_completions::handle))
        .route("/v1/completions", post(completions::handle))
        .route("/v1/embeddings", post(embeddings::handle))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::retrieve))
        .route("/metrics", get(metrics::render))
        .route("/health/liveliness", get(health::liveliness))
        .route("/health/readiness", get(health::readiness))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // Outermost first: trace sees every request, including ones the body limit rejects.
        .layer(DefaultBodyLimit::max(max_body_bytes))
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
