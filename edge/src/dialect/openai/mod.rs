//! OpenAI chat completions as a dialect of the canonical form. Requests that arrive as OpenAI
//! and go to an OpenAI-compatible upstream never come here (their bytes pass through); this is
//! the side other dialects translate through: the canonical request as an OpenAI chat body,
//! and OpenAI answers, chunks and errors as canonical ones.

pub mod request;
pub mod response;
pub mod stream;
