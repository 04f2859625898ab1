//! OpenAI Responses (`POST /v1/responses`, what Codex CLI and `client.responses` speak):
//! requests ([`request`]), whole answers ([`response`]) and the stream's numbered event
//! sequence ([`stream`]), to and from the canonical form. The edge keeps no conversation
//! state, so `previous_response_id`, `conversation` and `store: true` are refused; errors are
//! OpenAI's own error JSON.

pub mod request;
pub mod response;
pub mod stream;
