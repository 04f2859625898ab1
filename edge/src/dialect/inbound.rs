//! The protocol a client spoke, and the turning of its request into the engine's OpenAI form
//! and of the engine's answer (whole, streamed, or an error) back into its own.

use axum::body::Body;
use axum::response::{IntoResponse as _, Response};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde_json::Value;
use tokio::time::Instant;

use super::ollama::inbound::{self as ollama, ApiOp};
use super::{anthropic, openai, responses, translate_sse};
use crate::error::ApiError;

/// Largest engine answer read whole to translate (the engine bounds upstream answers already).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// The dialect a client request arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// OpenAI: the engine's own form; nothing is translated.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Ollama's API, for this operation.
    Ollama(ApiOp),
    /// OpenAI Responses (`/v1/responses`); errors stay OpenAI's.
    Responses,
}

impl Inbound {
    /// The OpenAI chat body for the engine; `Err` is the client's error.
    pub fn request(self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson {
            reason: e.to_string(),
        })?;
        let openai_body = match self {
            Self::OpenAi => return Ok(body.to_vec()),
            Self::Anthropic => {
                let request = anthropic::request::decode(&value)
                    .map_err(|message| ApiError::InvalidRequest { message })?;
                if request.max_tokens.is_none() {
                    return Err(ApiError::InvalidRequest {
                        message: "max_tokens: Field required".into(),
                    });
                }
                openai::request::encode(&request)
            }
            Self::Ollama(op) => ollama::request(op, &value)
                .map_err(|message| ApiError::InvalidRequest { message })?,
            Self::Responses => openai::request::encode(&responses::request::decode(&value)?),
        };
        serde_json::to_vec(&openai_body).map_err(|e| ApiError::InvalidJson {
            reason: e.to_string(),
        })
    }

    /// An edge error in this dialect's shape.
    pub fn error(self, e: ApiError) -> Response {
        match self {
            Self::OpenAi | Self::Responses => e.into_response(),
            Self::Anthropic => {
                let message = e_message(&e);
                let mut response = e.into_response();
                let status = response.status();
                let body = anthropic::response::error_json(status.as_u16(), &message);
                *response.body_mut() = Body::from(body.to_string());
                response.headers_mut().remove(CONTENT_LENGTH);
                response
            }
            Self::Ollama(_) => {
                let message = e.to_string();
                let mut response = e.into_response();
                *response.body_mut() =
                    Body::from(serde_json::json!({"error": message}).to_string());
                response.headers_mut().remove(CONTENT_LENGTH);
                response
            }
        }
    }

    /// The engine's answer in this dialect: a stream translated event by event, a whole answer
    /// or an upstream's error translated at once. `started` is when the request arrived (for
    /// Ollama's durations).
    pub async fn answer(self, response: Response, model: &str, started: Instant) -> Response {
        let upstream_error = !response.status().is_success();
        if self == Self::OpenAi || (self == Self::Responses && upstream_error) {
            // Errors are OpenAI's own shape in Responses too.
            return response;
        }
        let (mut parts, body) = response.into_parts();
        parts.headers.remove(CONTENT_LENGTH);
        let is_sse = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if parts.status.is_success() && is_sse {
            let body = match self {
                Self::Ollama(op) => {
                    let ndjson = HeaderValue::from_static("application/x-ndjson");
                    parts.headers.insert(CONTENT_TYPE, ndjson);
                    translate_sse(body, ollama::Ndjson::new(op, model.to_owned()))
                }
                Self::Responses => {
                    let created = now_secs();
                    translate_sse(
                        body,
                        responses::stream::Encoder::new(model.to_owned(), created),
                    )
                }
                _ => translate_sse(body, anthropic::stream::Encoder::new(model.to_owned())),
            };
            return Response::from_parts(parts, body);
        }
        let whole = axum::body::to_bytes(body, MAX_ANSWER)
            .await
            .unwrap_or_default();
        parts
            .headers
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let translated = if parts.status.is_success() {
            let took = u64::try_from(started.elapsed().as_nanos())
                .unwrap_or(0)
                .max(1);
            let answer = match self {
                Self::Ollama(op @ (ApiOp::Embed | ApiOp::Embeddings)) => {
                    ollama::embeddings(op, model, &whole)
                }
                Self::Ollama(op) => {
                    openai::response::decode(&whole).map(|a| ollama::answer(op, model, &a, took))
                }
                Self::Responses => openai::response::decode(&whole).map(|mut a| {
                    a.model = model.to_owned();
                    responses::response::encode(&a, now_secs())
                }),
                _ => openai::response::decode(&whole).map(|a| anthropic::response::encode(&a)),
            };
            match answer {
                Some(answer) => answer,
                None => {
                    parts.status = StatusCode::BAD_GATEWAY;
                    self.error_json(502, "the upstream's answer was malformed")
                }
            }
        } else {
            let message = openai::response::error_message(&whole).unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&whole);
                let text = text.trim();
                if text.is_empty() {
                    format!("the upstream answered {}", parts.status.as_u16())
                } else {
                    text.chars().take(500).collect()
                }
            });
            self.error_json(parts.status.as_u16(), &message)
        };
        Response::from_parts(parts, Body::from(translated.to_string()))
    }
}

impl Inbound {
    /// An error body in this dialect's shape.
    fn error_json(self, status: u16, message: &str) -> Value {
        match self {
            Self::Ollama(_) => serde_json::json!({"error": message}),
            Self::OpenAi | Self::Responses => {
                crate::error::error_json(message, "api_error", None, Some("upstream_error"))
            }
            Self::Anthropic => anthropic::response::error_json(status, message),
        }
    }
}

/// Now in Unix seconds (`created_at`).
fn now_secs() -> i64 {
    crate::routing::target::now_ms() / 1000
}

/// An error's message without the OpenAI-specific wording about where keys go.
fn e_message(e: &ApiError) -> String {
    match e {
        ApiError::AuthMissing => {
            "missing API key: send it in `x-api-key` or as `Authorization: Bearer ...`".into()
        }
        e => e.to_string(),
    }
}
