//! Anthropic Messages (`/v1/messages`): requests ([`request`]), whole answers and errors
//! ([`response`]) and the stream's event sequence ([`stream`]), to and from the canonical form.

pub mod request;
pub mod response;
pub mod stream;
