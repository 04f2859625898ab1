//! Google's Gemini `generateContent` API as an outbound dialect: the canonical request as a
//! Gemini body and its URL ([`request`]), whole answers, usage and errors, with the failover
//! meaning of an error's `status` ([`response`]), and `streamGenerateContent?alt=sse` chunks
//! as canonical events ([`stream`]).

pub mod request;
pub mod response;
pub mod stream;
