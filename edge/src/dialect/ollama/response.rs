//! Ollama native answers and errors as OpenAI answers and errors.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::to_vec;
use super::stream::{TextChoice, text_choice};
use super::*;
use crate::upstream::sse::Usage;

/// Makes answer ids: `chatcmpl-…` for completions, `call_…` for tool calls.
#[derive(Debug, Clone)]
pub struct Ids {
    rng: fastrand::Rng,
}

impl Ids {
    /// Ids drawn from `seed` (random in the edge, fixed in tests).
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    fn token(&mut self, len: usize) -> String {
        (0..len).map(|_| self.rng.alphanumeric()).collect()
    }

    /// A completion id.
    pub fn completion(&mut self) -> String {
        format!("chatcmpl-{}", self.token(24))
    }

    /// A text completion id.
    pub fn text_completion(&mut self) -> String {
        format!("cmpl-{}", self.token(24))
    }

    /// A tool-call id.
    pub fn call(&mut self) -> String {
        format!("call_{}", self.token(24))
    }
}

/// One line (or whole answer) of `/api/chat`. Every field may be absent (`omitempty`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct NativeChat {
    pub(super) model: Option<String>,
    pub(super) message: Option<NativeMessage>,
    /// `/api/generate`'s text.
    pub(super) response: Option<String>,
    #[serde(default)]
    pub(super) done: bool,
    pub(super) done_reason: Option<String>,
    pub(super) prompt_eval_count: Option<u64>,
    pub(super) eval_count: Option<u64>,
    pub(super) error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NativeMessage {
    pub(super) content: Option<String>,
    pub(super) thinking: Option<String>,
    pub(super) tool_calls: Option<Vec<NativeToolCall>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct NativeToolCall {
    function: NativeFunction,
}

#[derive(Debug, Deserialize)]
pub(super) struct NativeFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

impl NativeChat {
    pub(super) fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_eval_count.unwrap_or(0),
            completion_tokens: self.eval_count.unwrap_or(0),
        }
    }

    pub(super) fn error_message(&self) -> Option<String> {
        match self.error.as_ref()? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(
                other
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| other.to_string(), str::to_owned),
            ),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ToolCallOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut,
}

#[derive(Debug, Serialize)]
pub(super) struct FunctionOut {
    name: String,
    arguments: String,
}

/// Native tool calls → OpenAI ones: generated ids, `arguments` as a JSON string.
pub(super) fn tool_calls_out(
    calls: Vec<NativeToolCall>,
    ids: &mut Ids,
    mut index: Option<&mut usize>,
) -> Vec<ToolCallOut> {
    calls
        .into_iter()
        .map(|c| {
            let arguments = match c.function.arguments {
                Value::String(s) => s,
                Value::Null => "{}".to_owned(),
                v => v.to_string(),
            };
            let index = index.as_deref_mut().map(|i| {
                *i += 1;
                *i - 1
            });
            ToolCallOut {
                index,
                id: ids.call(),
                kind: "function",
                function: FunctionOut {
                    name: c.function.name,
                    arguments,
                },
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub(super) struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        Self {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

pub(super) fn finish_reason(tool_calls: bool, done_reason: Option<&str>) -> &'static str {
    if tool_calls {
        "tool_calls"
    } else if done_reason == Some("length") {
        "length"
    } else {
        "stop"
    }
}

/// A translated whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The OpenAI JSON body.
    pub body: Bytes,
    /// Its token counts, for metering.
    pub usage: Usage,
}

/// Translates a non-streamed `/api/chat` answer into a `chat.completion`; `None` when it is not
/// a chat answer. `model` is used when the answer names none.
pub fn chat_response(
    native: &[u8],
    model: &str,
    created: i64,
    ids: &mut Ids,
) -> Option<Translated> {
    #[derive(Serialize)]
    struct Completion<'a> {
        id: String,
        object: &'static str,
        created: i64,
        model: &'a str,
        system_fingerprint: &'static str,
        choices: [Choice; 1],
        usage: UsageOut,
    }
    #[derive(Serialize)]
    struct Choice {
        index: u32,
        message: MessageOut,
        logprobs: Option<()>,
        finish_reason: &'static str,
    }
    #[derive(Serialize)]
    struct MessageOut {
        role: &'static str,
        content: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reasoning: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallOut>,
    }
    let answer: NativeChat = serde_json::from_slice(native).ok()?;
    if answer.error.is_some() {
        return None;
    }
    let usage = answer.usage();
    let message = answer.message?;
    let tool_calls = tool_calls_out(message.tool_calls.unwrap_or_default(), ids, None);
    let content = message.content.unwrap_or_default();
    let completion = Completion {
        id: ids.completion(),
        object: "chat.completion",
        created,
        model: answer.model.as_deref().unwrap_or(model),
        system_fingerprint: FINGERPRINT,
        choices: [Choice {
            index: 0,
            finish_reason: finish_reason(!tool_calls.is_empty(), answer.done_reason.as_deref()),
            message: MessageOut {
                role: "assistant",
                // OpenAI sends null content next to tool calls.
                content: (!content.is_empty() || tool_calls.is_empty()).then_some(content),
                reasoning: message.thinking.filter(|t| !t.is_empty()),
                tool_calls,
            },
            logprobs: None,
        }],
        usage: usage.into(),
    };
    Some(Translated {
        body: Bytes::from(to_vec(&completion)),
        usage,
    })
}

/// Translates a non-streamed `/api/generate` answer into a `text_completion`; `None` when it is
/// not one.
pub fn completion_response(
    native: &[u8],
    model: &str,
    created: i64,
    ids: &mut Ids,
) -> Option<Translated> {
    #[derive(Serialize)]
    struct Completion<'a> {
        id: String,
        object: &'static str,
        created: i64,
        model: &'a str,
        system_fingerprint: &'static str,
        choices: [TextChoice<'a>; 1],
        usage: UsageOut,
    }
    let answer: NativeChat = serde_json::from_slice(native).ok()?;
    if answer.error.is_some() {
        return None;
    }
    let usage = answer.usage();
    let completion = Completion {
        id: ids.text_completion(),
        object: "text_completion",
        created,
        model: answer.model.as_deref().unwrap_or(model),
        system_fingerprint: FINGERPRINT,
        choices: [text_choice(
            answer.response.as_deref()?,
            Some(finish_reason(false, answer.done_reason.as_deref())),
        )],
        usage: usage.into(),
    };
    Some(Translated {
        body: Bytes::from(to_vec(&completion)),
        usage,
    })
}

/// Translates an `/api/embed` answer into an OpenAI embeddings list (floats, or base64 of
/// little-endian f32 when asked); `None` when it is not an embed answer.
pub fn embed_response(native: &[u8], model: &str, base64: bool) -> Option<Translated> {
    #[derive(Deserialize)]
    struct Embed {
        model: Option<String>,
        embeddings: Vec<Vec<f64>>,
        prompt_eval_count: Option<u64>,
    }
    #[derive(Serialize)]
    struct List<'a> {
        object: &'static str,
        data: Vec<Item>,
        model: &'a str,
        usage: EmbedUsage,
    }
    #[derive(Serialize)]
    struct Item {
        object: &'static str,
        index: usize,
        embedding: Value,
    }
    #[derive(Serialize)]
    struct EmbedUsage {
        prompt_tokens: u64,
        total_tokens: u64,
    }
    let answer: Embed = serde_json::from_slice(native).ok()?;
    let data = answer
        .embeddings
        .into_iter()
        .enumerate()
        .map(|(index, vector)| Item {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                Value::String(base64_std(&bytes))
            } else {
                Value::from(vector)
            },
        })
        .collect();
    let tokens = answer.prompt_eval_count.unwrap_or(0);
    let list = List {
        object: "list",
        data,
        model: answer.model.as_deref().unwrap_or(model),
        usage: EmbedUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    Some(Translated {
        body: Bytes::from(to_vec(&list)),
        usage: Usage {
            prompt_tokens: tokens,
            completion_tokens: 0,
        },
    })
}

/// Longest upstream error text carried into a client's error message.
pub(super) const MAX_ERROR_TEXT: usize = 500;

/// An upstream error answer (`{"error":"…"}`, or anything else) as OpenAI error JSON for the
/// same status: 404 is `model_not_found`, 400 `invalid_request_error`, 5xx `api_error`, …
pub fn error_body(status: u16, native: &[u8]) -> Bytes {
    let parsed: Option<NativeChat> = serde_json::from_slice(native).ok();
    let message = parsed.and_then(|p| p.error_message()).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(native);
        let text = text.trim();
        if text.is_empty() {
            format!("the upstream answered {status}")
        } else {
            text.chars().take(MAX_ERROR_TEXT).collect()
        }
    });
    crate::dialect::openai::response::error_body(status, &message)
}

/// Standard base64 with padding (what OpenAI's `encoding_format: base64` uses).
fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
