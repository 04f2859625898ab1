//! The OpenAI model list (`GET /v1/models` → `{"data":[{"id":..}]}`) shared by LM Studio, vLLM and LiteLLM.

use super::{ServerKind, collect_ids, listing_array};
use crate::error::Error;

/// Parses an OpenAI model list into model ids, tolerating extra and missing fields.
///
/// Entries without a string `id` are skipped; a body without a `data` array is an error.
pub fn parse_model_list(kind: ServerKind, body: &[u8]) -> Result<Vec<String>, Error> {
    let entries = listing_array(kind, body, "data")?;
    Ok(collect_ids(entries.iter(), &["id"]))
}
