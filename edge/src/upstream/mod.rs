//! Talking to upstream model servers: the forwarded request body, the HTTP client, rate-limit
//! headers, and relaying SSE and JSON answers back.

pub mod body;
pub mod client;
pub mod ratelimit;
pub mod redact;
pub mod relay;
pub mod sse;

pub use body::RequestBody;
pub use client::{UpstreamClient, UpstreamError};
