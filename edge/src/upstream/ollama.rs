//! Ollama's native API, for Ollama servers without the OpenAI surface (older releases, or a
//! proxy exposing only `/api/*`): an OpenAI chat, text completion or embeddings request becomes
//! `/api/chat`, `/api/generate` or `/api/embed`, and the answer (JSON, an NDJSON stream, an
//! error) becomes exactly what an OpenAI endpoint sends. Everything here is pure: the clock and ids come in as arguments.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::relay::ByteStream;
use super::sse::{self, Usage};
use crate::metrics::Route;

/// How long an endpoint is remembered to lack the OpenAI surface before `/v1` is tried again.
pub const REPROBE_AFTER_MS: i64 = 5 * 60 * 1000;

/// `system_fingerprint` on translated answers (what Ollama's own OpenAI surface sends).
const FINGERPRINT: &str = "fp_ollama";

/// A native operation the edge can fall back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeOp {
    /// `/v1/chat/completions` → `/api/chat`.
    Chat,
    /// `/v1/completions` → `/api/generate`.
    Generate,
    /// `/v1/embeddings` → `/api/embed`.
    Embed,
}

impl NativeOp {
    /// The native operation for a `/v1` route, when there is one.
    pub fn of(route: Route) -> Option<Self> {
        match route {
            Route::Chat => Some(Self::Chat),
            Route::Completions => Some(Self::Generate),
            Route::Embeddings => Some(Self::Embed),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Self::Chat => "/api/chat",
            Self::Generate => "/api/generate",
            Self::Embed => "/api/embed",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Chat => 0,
            Self::Generate => 1,
            Self::Embed => 2,
        }
    }
}

/// The native URI for `op` on the server whose OpenAI base URL is `base_url` (`…/v1`, or the
/// bare server root); `None` when it does not parse.
pub fn native_uri(base_url: &str, op: NativeOp) -> Option<http::Uri> {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    format!("{root}{}", op.path()).parse().ok()
}

/// Whether a 404 from `/v1/…` means the OpenAI surface is absent rather than the model: Ollama's
/// surface reports a missing model as an OpenAI error object, while a server or proxy without
/// the route answers plain text, HTML, or a non-OpenAI body.
pub fn surface_absent(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct OpenAiError {
        error: Map<String, Value>,
    }
    serde_json::from_slice::<OpenAiError>(body).map_or(true, |e| e.error.is_empty())
}

/// Per server (keyed by base URL) and operation: until when its OpenAI surface is known to be
/// absent, so later requests go straight to the native API until the next probe.
#[derive(Debug, Default)]
pub struct Surfaces {
    absent_until: RwLock<HashMap<Arc<str>, [i64; 3]>>,
}

impl Surfaces {
    /// Whether requests for `op` on `base_url` should go to the native API at `now_ms`.
    pub fn go_native(&self, base_url: &str, op: NativeOp, now_ms: i64) -> bool {
        let map = self
            .absent_until
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(base_url).is_some_and(|u| u[op.index()] > now_ms)
    }

    /// Remembers that `base_url` lacks the OpenAI surface for `op`, until a re-probe is due.
    pub fn mark_absent(&self, base_url: &Arc<str>, op: NativeOp, now_ms: i64) {
        let mut map = self
            .absent_until
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(base_url.clone()).or_default()[op.index()] = now_ms + REPROBE_AFTER_MS;
    }
}

/// Why a request cannot be expressed in the native API: the client's error (400), naming the
/// parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The offending parameter.
    pub param: &'static str,
    /// What is wrong.
    pub message: &'static str,
}

const fn refuse(param: &'static str, message: &'static str) -> Refusal {
    Refusal { param, message }
}

/// A translated request.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeRequest {
    /// The JSON body for the native endpoint.
    pub body: Vec<u8>,
    /// OpenAI fields that have no native meaning and were dropped (for a debug log).
    pub dropped: Vec<String>,
    /// Embeddings only: the client asked for `encoding_format: "base64"`.
    pub base64: bool,
}

/// Translates an OpenAI chat request (already carrying the upstream model id) to `/api/chat`.
pub fn chat_request(openai: &[u8]) -> Result<NativeRequest, Refusal> {
    let request = object(openai)?;
    let mut out = Map::new();
    let mut options = client_options(&request);
    let tools_off = request.get("tool_choice").and_then(Value::as_str) == Some("none");
    let mut dropped = Vec::new();
    for (key, value) in request {
        match key.as_str() {
            "model" => {
                out.insert(key, value);
            }
            "messages" => {
                out.insert(key, messages(value)?);
            }
            "stream" => {
                out.insert(key, Value::Bool(value.as_bool().unwrap_or(false)));
            }
            "tools" if !tools_off => {
                if let Some(tools) = tools(value, &mut dropped)? {
                    out.insert(key, tools);
                }
            }
            k if SAMPLING.contains(&k) => sampling(k, value, &mut options)?,
            "response_format" => {
                if let Some(format) = format(&value)? {
                    out.insert("format".to_owned(), format);
                }
            }
            // Ollama's own fields, meaningful as they are.
            "keep_alive" | "think" => {
                out.insert(key, value);
            }
            // Read elsewhere: `options` above, `n` by the edge (n > 1 is refused for Ollama),
            // `stream_options` by the edge's usage handling, `tool_choice: none` above.
            "options" | "n" | "stream_options" => {}
            "tool_choice" if matches!(value.as_str(), Some("auto" | "none")) || value.is_null() => {
            }
            _ => dropped.push(key),
        }
    }
    if !out.contains_key("messages") {
        return Err(refuse("messages", "messages must be a list of messages"));
    }
    Ok(finish(out, options, dropped))
}

/// Translates an OpenAI text completion request (carrying the upstream model id) to
/// `/api/generate` (the model's template applies, as on Ollama's own OpenAI surface).
pub fn completion_request(openai: &[u8]) -> Result<NativeRequest, Refusal> {
    let request = object(openai)?;
    let mut out = Map::new();
    let mut options = client_options(&request);
    let mut dropped = Vec::new();
    for (key, value) in request {
        match key.as_str() {
            "model" | "suffix" | "keep_alive" | "think" | "raw" => {
                out.insert(key, value);
            }
            "prompt" => {
                out.insert(key, prompt(value)?);
            }
            "stream" => {
                out.insert(key, Value::Bool(value.as_bool().unwrap_or(false)));
            }
            k if SAMPLING.contains(&k) => sampling(k, value, &mut options)?,
            "options" | "n" | "stream_options" => {}
            _ => dropped.push(key),
        }
    }
    if !out.contains_key("prompt") {
        return Err(refuse("prompt", "prompt must be a string"));
    }
    Ok(finish(out, options, dropped))
}

/// One prompt: a string, or a list holding one string.
fn prompt(value: Value) -> Result<Value, Refusal> {
    match value {
        Value::String(_) => Ok(value),
        Value::Array(mut items) if items.len() == 1 && items[0].is_string() => Ok(items.remove(0)),
        Value::Array(items) if items.len() > 1 && items.iter().all(Value::is_string) => {
            Err(refuse(
                "prompt",
                "this Ollama server takes one prompt per request; send each prompt separately",
            ))
        }
        _ => Err(refuse(
            "prompt",
            "prompt must be a string (token arrays are not supported by this Ollama server)",
        )),
    }
}

/// The client's own Ollama `options`, which the mapped OpenAI fields then override.
fn client_options(request: &Map<String, Value>) -> Map<String, Value> {
    match request.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    }
}

/// OpenAI sampling fields that map onto Ollama `options`.
const SAMPLING: [&str; 8] = [
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "stop",
];

/// Maps one of [`SAMPLING`] into `options` (null means unset).
fn sampling(key: &str, value: Value, options: &mut Map<String, Value>) -> Result<(), Refusal> {
    match (key, value) {
        (_, Value::Null) => {}
        ("max_tokens" | "max_completion_tokens", v) => {
            options.insert("num_predict".to_owned(), v);
        }
        ("stop", v @ Value::String(_)) => {
            options.insert("stop".to_owned(), Value::Array(vec![v]));
        }
        ("stop", Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            options.insert("stop".to_owned(), Value::Array(stops));
        }
        ("stop", _) => return Err(refuse("stop", "stop must be a string or a list of strings")),
        (k, v) => {
            options.insert(k.to_owned(), v);
        }
    }
    Ok(())
}

/// The native request: `stream` explicit (Ollama streams unless told otherwise; OpenAI does
/// not) and `options` when any.
fn finish(
    mut out: Map<String, Value>,
    options: Map<String, Value>,
    dropped: Vec<String>,
) -> NativeRequest {
    out.entry("stream").or_insert(Value::Bool(false));
    if !options.is_empty() {
        out.insert("options".to_owned(), Value::Object(options));
    }
    NativeRequest {
        body: to_vec(&Value::Object(out)),
        dropped,
        base64: false,
    }
}

fn object(bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(refuse("body", "the request body must be a JSON object")),
    }
}

fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // Serialising a Value or plain structs into a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// OpenAI messages → Ollama messages: content parts joined, data-URL images as base64
/// `images`, tool-call arguments as objects, tool results naming their tool.
fn messages(value: Value) -> Result<Value, Refusal> {
    const BAD: Refusal = refuse("messages", "each message must be an object with a role");
    let Value::Array(list) = value else {
        return Err(refuse("messages", "messages must be a list of messages"));
    };
    let mut tool_names: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(list.len());
    for message in list {
        let Value::Object(mut m) = message else {
            return Err(BAD);
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some("developer") => "system".to_owned(),
            Some(role) => role.to_owned(),
            None => return Err(BAD),
        };
        let (content, images) = content(m.remove("content"))?;
        let mut native = Map::new();
        native.insert("role".to_owned(), Value::String(role.clone()));
        native.insert("content".to_owned(), Value::String(content));
        if !images.is_empty() {
            native.insert("images".to_owned(), Value::Array(images));
        }
        match m.remove("tool_calls") {
            Some(Value::Array(calls)) if !calls.is_empty() => {
                let calls = calls
                    .into_iter()
                    .map(|call| history_call(call, &mut tool_names))
                    .collect::<Result<Vec<_>, _>>()?;
                native.insert("tool_calls".to_owned(), Value::Array(calls));
            }
            _ => {}
        }
        if role == "tool"
            && let Some(id) = m.get("tool_call_id").and_then(Value::as_str)
        {
            if let Some(name) = tool_names.get(id) {
                native.insert("tool_name".to_owned(), Value::String(name.clone()));
            }
            native.insert("tool_call_id".to_owned(), Value::String(id.to_owned()));
        }
        out.push(Value::Object(native));
    }
    Ok(Value::Array(out))
}

/// Message content: a string, null, or a list of text and image parts.
fn content(value: Option<Value>) -> Result<(String, Vec<Value>), Refusal> {
    match value {
        None | Some(Value::Null) => Ok((String::new(), Vec::new())),
        Some(Value::String(s)) => Ok((s, Vec::new())),
        Some(Value::Array(parts)) => {
            let mut texts: Vec<String> = Vec::new();
            let mut images = Vec::new();
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => match part.get("text").and_then(Value::as_str) {
                        Some(t) => texts.push(t.to_owned()),
                        None => return Err(refuse("messages", "a text part needs a text string")),
                    },
                    Some("image_url") => {
                        let url = match part.get("image_url") {
                            Some(Value::String(u)) => Some(u.as_str()),
                            Some(o) => o.get("url").and_then(Value::as_str),
                            None => None,
                        };
                        let data = url.and_then(data_url_base64).ok_or(refuse(
                            "messages",
                            "images must be base64 data URLs (data:image/...;base64,...) for this Ollama server",
                        ))?;
                        images.push(Value::String(data.to_owned()));
                    }
                    _ => {
                        return Err(refuse(
                            "messages",
                            "only text and image_url content parts are supported by this Ollama server",
                        ));
                    }
                }
            }
            Ok((texts.join("\n"), images))
        }
        Some(_) => Err(refuse(
            "messages",
            "message content must be a string or a list of parts",
        )),
    }
}

/// The base64 payload of a `data:…;base64,…` URL.
fn data_url_base64(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    meta.ends_with(";base64").then_some(data)
}

/// An assistant history tool call: `arguments` (a JSON string) becomes an object.
fn history_call(call: Value, names: &mut HashMap<String, String>) -> Result<Value, Refusal> {
    const BAD: Refusal = refuse(
        "messages",
        "tool call arguments must be a JSON object encoded as a string",
    );
    let function = call.get("function").ok_or(BAD)?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or(refuse("messages", "a tool call needs a function name"))?;
    let arguments = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(BAD),
        },
        // Lenient: an object sent as is.
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return Err(BAD),
    };
    if let Some(id) = call.get("id").and_then(Value::as_str) {
        names.insert(id.to_owned(), name.to_owned());
    }
    Ok(serde_json::json!({"function": {"name": name, "arguments": arguments}}))
}

/// OpenAI function tools → Ollama tools (`strict` and non-function tools dropped).
fn tools(value: Value, dropped: &mut Vec<String>) -> Result<Option<Value>, Refusal> {
    let Value::Array(list) = value else {
        if value.is_null() {
            return Ok(None);
        }
        return Err(refuse("tools", "tools must be a list"));
    };
    let mut out = Vec::with_capacity(list.len());
    for tool in list {
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        let Some(function) = tool.get("function").filter(|_| kind == "function") else {
            dropped.push(format!("tools[type={kind}]"));
            continue;
        };
        if function.get("name").and_then(Value::as_str).is_none() {
            return Err(refuse("tools", "a function tool needs a name"));
        }
        let mut f = Map::new();
        for field in ["name", "description", "parameters"] {
            if let Some(v) = function.get(field) {
                f.insert(field.to_owned(), v.clone());
            }
        }
        out.push(serde_json::json!({"type": "function", "function": f}));
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// `response_format` → `format`: `"json"` for json_object, the schema for json_schema.
fn format(value: &Value) -> Result<Option<Value>, Refusal> {
    const BAD: Refusal = refuse(
        "response_format",
        "response_format must be text, json_object or json_schema",
    );
    if value.is_null() {
        return Ok(None);
    }
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Value::String("json".to_owned()))),
        Some("json_schema") => Ok(Some(
            value
                .get("json_schema")
                .and_then(|s| s.get("schema"))
                .cloned()
                .unwrap_or_else(|| Value::String("json".to_owned())),
        )),
        _ => Err(BAD),
    }
}

/// Translates an OpenAI embeddings request (carrying the upstream model id) to `/api/embed`.
pub fn embed_request(openai: &[u8]) -> Result<NativeRequest, Refusal> {
    const TOKENS: Refusal = refuse(
        "input",
        "input must be a string or a list of strings for this Ollama server (token arrays are not supported)",
    );
    let request = object(openai)?;
    let mut out = Map::new();
    let mut dropped = Vec::new();
    let mut base64 = false;
    for (key, value) in request {
        match key.as_str() {
            "model" | "dimensions" | "truncate" | "keep_alive" | "options" => {
                out.insert(key, value);
            }
            "input" => {
                match &value {
                    Value::String(_) => {}
                    Value::Array(items) if items.is_empty() => {
                        return Err(refuse("input", "input must not be empty"));
                    }
                    Value::Array(items) if items.iter().all(Value::is_string) => {}
                    _ => return Err(TOKENS),
                }
                out.insert(key, value);
            }
            "encoding_format" => match value.as_str() {
                None | Some("float") => {}
                Some("base64") => base64 = true,
                Some(_) => {
                    return Err(refuse(
                        "encoding_format",
                        "encoding_format must be float or base64",
                    ));
                }
            },
            _ => dropped.push(key),
        }
    }
    Ok(NativeRequest {
        body: to_vec(&Value::Object(out)),
        dropped,
        base64,
    })
}

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
struct NativeChat {
    model: Option<String>,
    message: Option<NativeMessage>,
    /// `/api/generate`'s text.
    response: Option<String>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct NativeMessage {
    content: Option<String>,
    thinking: Option<String>,
    tool_calls: Option<Vec<NativeToolCall>>,
}

#[derive(Debug, Deserialize)]
struct NativeToolCall {
    function: NativeFunction,
}

#[derive(Debug, Deserialize)]
struct NativeFunction {
    name: String,
    #[serde(default)]
    arguments: Value,
}

impl NativeChat {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_eval_count.unwrap_or(0),
            completion_tokens: self.eval_count.unwrap_or(0),
        }
    }

    fn error_message(&self) -> Option<String> {
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
struct ToolCallOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut,
}

#[derive(Debug, Serialize)]
struct FunctionOut {
    name: String,
    arguments: String,
}

/// Native tool calls → OpenAI ones: generated ids, `arguments` as a JSON string.
fn tool_calls_out(
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
struct UsageOut {
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

fn finish_reason(tool_calls: bool, done_reason: Option<&str>) -> &'static str {
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
                Value::String(base64_encode(&bytes))
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

/// Standard base64 with padding (what OpenAI's `encoding_format: base64` uses).
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Longest upstream error text carried into a client's error message.
const MAX_ERROR_TEXT: usize = 500;

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
    let (kind, param, code) = match status {
        401 => ("authentication_error", None, None),
        403 => ("permission_error", None, None),
        404 => (
            "invalid_request_error",
            Some("model"),
            Some("model_not_found"),
        ),
        413 => ("invalid_request_error", None, Some("request_too_large")),
        429 => ("rate_limit_error", None, Some("rate_limit_exceeded")),
        500..=599 => ("api_error", None, None),
        _ => ("invalid_request_error", None, None),
    };
    Bytes::from(crate::error::error_json(&message, kind, param, code).to_string())
}

/// Translates a streamed `/api/chat` (or `/api/generate`) answer, line by line, into OpenAI SSE
/// chunks: chat deltas (the first with the assistant role, then content and tool calls) or
/// text completion pieces, the final one with `finish_reason`, then a usage-only chunk and
/// `[DONE]`. The usage chunk is always written; the relay removes it when the client did not
/// ask for usage, after metering it.
#[derive(Debug)]
pub struct NativeStream {
    id: String,
    created: i64,
    model: String,
    ids: Ids,
    /// Text completions (`/api/generate`) rather than chat.
    text: bool,
    /// The first event is out (for chat, the one with the role).
    started: bool,
    tool_calls: usize,
    finished: bool,
}

#[derive(Serialize)]
struct Chunk<'a, C> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

/// A text completion choice, whole or streamed.
#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut>,
}

impl NativeStream {
    /// A chat stream translator; `model` is used until the upstream names its own.
    pub fn chat(model: &str, created: i64, mut ids: Ids) -> Self {
        Self {
            id: ids.completion(),
            created,
            model: model.to_owned(),
            ids,
            text: false,
            started: false,
            tool_calls: 0,
            finished: false,
        }
    }

    /// A text completion stream translator.
    pub fn completion(model: &str, created: i64, mut ids: Ids) -> Self {
        Self {
            id: ids.text_completion(),
            text: true,
            ..Self::chat(model, created, ids)
        }
    }

    /// Whether the stream is over (`[DONE]` or an error event written).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Translates one NDJSON line, appending SSE events to `out`. Lines after the end are
    /// ignored; an upstream error line or a malformed line ends the stream with an error event.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = line.trim_ascii();
        if self.finished || line.is_empty() {
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<NativeChat>(line) else {
            self.fail(
                "the upstream sent a malformed stream line",
                "upstream_malformed_stream",
                out,
            );
            return;
        };
        if let Some(message) = chunk.error_message() {
            self.fail(&message, "upstream_error", out);
            return;
        }
        if let Some(model) = &chunk.model
            && !self.started
        {
            self.model.clone_from(model);
        }
        if self.text {
            self.text_line(chunk, out);
            return;
        }
        let usage = chunk.usage();
        let message = chunk.message.unwrap_or_default();
        let content = message.content.unwrap_or_default();
        let thinking = message.thinking.unwrap_or_default();
        let calls = tool_calls_out(
            message.tool_calls.unwrap_or_default(),
            &mut self.ids,
            Some(&mut self.tool_calls),
        );
        if !self.started || !content.is_empty() || !thinking.is_empty() || !calls.is_empty() {
            let first = !self.started;
            self.started = true;
            let delta = Delta {
                role: first.then_some("assistant"),
                content: (!content.is_empty() || (first && calls.is_empty()))
                    .then_some(content.as_str()),
                reasoning: (!thinking.is_empty()).then_some(thinking.as_str()),
                tool_calls: calls,
            };
            self.event(vec![choice(delta, None)], None, out);
        }
        if chunk.done {
            let reason = finish_reason(self.tool_calls > 0, chunk.done_reason.as_deref());
            self.event(vec![choice(Delta::default(), Some(reason))], None, out);
            self.end(usage, out);
        }
    }

    /// One `/api/generate` line: its text as a completion piece; at the end the finish reason.
    fn text_line(&mut self, chunk: NativeChat, out: &mut Vec<u8>) {
        let text = chunk.response.as_deref().unwrap_or_default();
        if !text.is_empty() {
            self.started = true;
            self.event(vec![text_choice(text, None)], None, out);
        }
        if chunk.done {
            let reason = finish_reason(false, chunk.done_reason.as_deref());
            self.event(vec![text_choice("", Some(reason))], None, out);
            self.end(chunk.usage(), out);
        }
    }

    /// The usage-only chunk and `[DONE]`.
    fn end(&mut self, usage: Usage, out: &mut Vec<u8>) {
        self.event(Vec::<TextChoice<'_>>::new(), Some(usage.into()), out);
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.finished = true;
    }

    fn event<C: Serialize>(&self, choices: Vec<C>, usage: Option<UsageOut>, out: &mut Vec<u8>) {
        let chunk = Chunk {
            id: &self.id,
            object: if self.text {
                "text_completion"
            } else {
                "chat.completion.chunk"
            },
            created: self.created,
            model: &self.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage,
        };
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&to_vec(&chunk));
        out.extend_from_slice(b"\n\n");
    }

    /// Ends the stream with an OpenAI error event and `[DONE]`.
    pub fn fail(&mut self, message: &str, code: &str, out: &mut Vec<u8>) {
        if !self.finished {
            out.extend_from_slice(&sse::error_event(message, code));
            self.finished = true;
        }
    }
}

fn choice<'a>(delta: Delta<'a>, finish_reason: Option<&'static str>) -> ChunkChoice<'a> {
    ChunkChoice {
        index: 0,
        delta,
        logprobs: None,
        finish_reason,
    }
}

fn text_choice<'a>(text: &'a str, finish_reason: Option<&'static str>) -> TextChoice<'a> {
    TextChoice {
        text,
        index: 0,
        logprobs: None,
        finish_reason,
    }
}

/// Turns an NDJSON `/api/chat` or `/api/generate` body into an SSE body as it arrives: each upstream chunk's whole
/// lines are translated and passed on at once (nothing waits for the end). A line longer than
/// `max_line` ends the stream with an error event; upstream read errors pass through for the
/// relay to report.
pub fn sse_from_ndjson(
    upstream: ByteStream,
    translator: NativeStream,
    max_line: usize,
) -> ByteStream {
    struct Lines {
        upstream: ByteStream,
        translator: NativeStream,
        pending: BytesMut,
        max_line: usize,
        ended: bool,
    }
    let lines = Lines {
        upstream,
        translator,
        pending: BytesMut::new(),
        max_line,
        ended: false,
    };
    Box::pin(futures::stream::unfold(lines, |mut s| async move {
        loop {
            if s.ended || s.translator.finished() {
                return None;
            }
            let mut out = Vec::new();
            match s.upstream.next().await {
                None => {
                    // A last line without its newline still counts.
                    s.ended = true;
                    let rest = s.pending.split();
                    s.translator.line(&rest, &mut out);
                }
                Some(Err(e)) => {
                    s.ended = true;
                    return Some((Err(e), s));
                }
                Some(Ok(chunk)) => {
                    let mut start = 0;
                    while let Some(i) = memchr::memchr(b'\n', &chunk[start..]) {
                        let end = start + i;
                        if s.pending.is_empty() {
                            s.translator.line(&chunk[start..end], &mut out);
                        } else {
                            s.pending.extend_from_slice(&chunk[start..end]);
                            let line = s.pending.split();
                            s.translator.line(&line, &mut out);
                        }
                        start = end + 1;
                    }
                    s.pending.extend_from_slice(&chunk[start..]);
                    if s.pending.len() > s.max_line {
                        s.translator.fail(
                            "the upstream stream line exceeded the gateway's size limit",
                            "upstream_response_too_large",
                            &mut out,
                        );
                    }
                }
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), s));
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat(body: Value) -> Result<Value, Refusal> {
        chat_request(body.to_string().as_bytes()).map(|r| serde_json::from_slice(&r.body).unwrap())
    }

    #[test]
    fn chat_requests_translate() {
        // (OpenAI request, expected native request)
        let cases: Vec<(Value, Value)> = vec![
            (
                json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}),
                json!({"model": "llama3", "messages": [{"role": "user", "content": "hi"}], "stream": false}),
            ),
            (
                json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                       "max_completion_tokens": 50, "temperature": 0.2, "top_p": 0.9, "seed": 7,
                       "stop": "END", "frequency_penalty": 0.5, "presence_penalty": 0.25, "n": 1,
                       "messages": [{"role": "developer", "content": "be brief"}]}),
                json!({"model": "m", "stream": true,
                       "messages": [{"role": "system", "content": "be brief"}],
                       "options": {"num_predict": 50, "temperature": 0.2, "top_p": 0.9, "seed": 7,
                                   "stop": ["END"], "frequency_penalty": 0.5, "presence_penalty": 0.25}}),
            ),
            (
                json!({"model": "m", "max_tokens": 9, "stop": ["a", "b"], "options": {"num_ctx": 8192, "num_predict": 1},
                       "keep_alive": "5m", "response_format": {"type": "json_object"},
                       "messages": [{"role": "user", "content": [
                           {"type": "text", "text": "what is"},
                           {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                           {"type": "text", "text": "this?"}]}]}),
                json!({"model": "m", "stream": false, "keep_alive": "5m", "format": "json",
                       "messages": [{"role": "user", "content": "what is\nthis?", "images": ["iVBORw0K"]}],
                       "options": {"num_ctx": 8192, "num_predict": 9, "stop": ["a", "b"]}}),
            ),
            (
                json!({"model": "m", "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                       "messages": []}),
                json!({"model": "m", "stream": false, "messages": [], "format": {"type": "object"}}),
            ),
            // a tool-call round trip: tools, the assistant's call, the tool's result
            (
                json!({"model": "m", "tool_choice": "auto", "parallel_tool_calls": true,
                       "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                  "parameters": {"type": "object"}, "strict": true}}],
                       "messages": [
                           {"role": "user", "content": "weather?"},
                           {"role": "assistant", "content": null, "tool_calls": [
                               {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                           {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}]}),
                json!({"model": "m", "stream": false,
                       "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}}],
                       "messages": [
                           {"role": "user", "content": "weather?"},
                           {"role": "assistant", "content": "", "tool_calls": [
                               {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                           {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_a"}]}),
            ),
            // tool_choice none: no tools offered
            (
                json!({"model": "m", "tool_choice": "none", "messages": [],
                       "tools": [{"type": "function", "function": {"name": "f"}}]}),
                json!({"model": "m", "stream": false, "messages": []}),
            ),
        ];
        for (openai, native) in cases {
            assert_eq!(chat(openai.clone()).unwrap(), native, "{openai}");
        }
    }

    #[test]
    fn unknown_fields_are_dropped_and_named() {
        let body = json!({"model": "m", "messages": [], "user": "u1", "logprobs": true,
                          "tool_choice": "required",
                          "tools": [{"type": "code_interpreter"}]});
        let r = chat_request(body.to_string().as_bytes()).unwrap();
        let mut dropped = r.dropped.clone();
        dropped.sort();
        assert_eq!(
            dropped,
            vec![
                "logprobs",
                "tool_choice",
                "tools[type=code_interpreter]",
                "user"
            ]
        );
        let native: Value = serde_json::from_slice(&r.body).unwrap();
        assert!(native.get("tools").is_none());
    }

    #[test]
    fn bad_chat_requests_are_refused_with_the_param() {
        let cases: Vec<(Value, &str)> = vec![
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": "hi"}), "messages"),
            (
                json!({"model": "m", "messages": [{"content": "no role"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [
                    {"id": "c", "function": {"name": "f", "arguments": "not json"}}]}]}),
                "messages",
            ),
            (json!({"model": "m", "messages": [], "stop": 3}), "stop"),
            (
                json!({"model": "m", "messages": [], "response_format": {"type": "xml"}}),
                "response_format",
            ),
            (
                json!({"model": "m", "messages": [], "tools": [{"function": {}}]}),
                "tools",
            ),
        ];
        for (body, param) in cases {
            assert_eq!(
                chat(body.clone()).map(|_| ()).unwrap_err().param,
                param,
                "{body}"
            );
        }
    }

    #[test]
    fn chat_answers_translate() {
        let native = json!({"model": "llama3.2:latest", "created_at": "2024-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "Hi!"}, "done": true, "done_reason": "stop",
            "total_duration": 5, "prompt_eval_count": 26, "eval_count": 4});
        let t = chat_response(
            native.to_string().as_bytes(),
            "x",
            1_700_000_000,
            &mut Ids::new(1),
        )
        .unwrap();
        assert_eq!(
            t.usage,
            Usage {
                prompt_tokens: 26,
                completion_tokens: 4
            }
        );
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("chatcmpl-") && id.len() > 20, "{id}");
        assert_eq!(
            v,
            json!({"id": id, "object": "chat.completion", "created": 1_700_000_000,
                   "model": "llama3.2:latest", "system_fingerprint": "fp_ollama",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                                "logprobs": null, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 26, "completion_tokens": 4, "total_tokens": 30}})
        );
        let text = String::from_utf8(t.body.to_vec()).unwrap();
        assert!(
            text.starts_with("{\"id\":\"chatcmpl-"),
            "OpenAI's field order: {text}"
        );

        // tool calls: arguments become a string, ids are generated, finish_reason tool_calls
        let native = json!({"model": "m", "message": {"role": "assistant", "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                           {"function": {"name": "now", "arguments": {}}}]},
            "done": true, "done_reason": "stop"});
        let t = chat_response(native.to_string().as_bytes(), "x", 1, &mut Ids::new(2)).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let choice = &v["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let calls = choice["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert!(calls[0].get("index").is_none());
        let (a, b) = (
            calls[0]["id"].as_str().unwrap(),
            calls[1]["id"].as_str().unwrap(),
        );
        assert!(a.starts_with("call_") && a != b);
        assert_eq!(t.usage, Usage::default(), "omitted counts are zero");

        // length, and the model from the request when the answer names none
        let native = json!({"message": {"content": "cut"}, "done": true, "done_reason": "length",
                            "eval_count": 10});
        let t = chat_response(native.to_string().as_bytes(), "asked", 1, &mut Ids::new(3)).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["model"], "asked");
        assert_eq!(v["usage"]["total_tokens"], 10);

        for bad in ["not json", "{\"error\":\"boom\"}", "{\"done\":true}", "[]"] {
            assert!(
                chat_response(bad.as_bytes(), "m", 1, &mut Ids::new(4)).is_none(),
                "{bad}"
            );
        }
    }

    fn events(sse: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(sse).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let data = e.strip_prefix("data: ").unwrap();
                if data == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(data).unwrap()
                }
            })
            .collect()
    }

    fn stream(lines: &[Value]) -> Vec<Value> {
        let mut s = NativeStream::chat("asked", 1_700_000_000, Ids::new(9));
        let mut out = Vec::new();
        for line in lines {
            s.line(line.to_string().as_bytes(), &mut out);
        }
        assert!(s.finished());
        events(&out)
    }

    #[test]
    fn stream_lines_translate_to_chunks() {
        let got = stream(&[
            json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": false}),
            json!({"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": false}),
            json!({"model": "llama3.2", "message": {"role": "assistant", "content": "lo"}, "done": false}),
            json!({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": true,
                   "done_reason": "stop", "prompt_eval_count": 9, "eval_count": 2}),
            json!({"model": "ignored after the end", "done": true}),
        ]);
        let deltas: Vec<Value> = got
            .iter()
            .map(|e| e["choices"][0]["delta"].clone())
            .collect();
        assert_eq!(
            deltas,
            vec![
                json!({"role": "assistant", "content": ""}),
                json!({"content": "Hel"}),
                json!({"content": "lo"}),
                json!({}),
                Value::Null,
                Value::Null,
            ]
        );
        let id = got[0]["id"].as_str().unwrap();
        for e in &got[..5] {
            assert_eq!(e["id"], id);
            assert_eq!(e["model"], "llama3.2");
            assert_eq!(e["created"], 1_700_000_000);
        }
        assert_eq!(got[0]["object"], "chat.completion.chunk");
        assert_eq!(got[2]["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(got[3]["choices"][0]["finish_reason"], "stop");
        assert_eq!(got[3].get("usage"), None);
        assert_eq!(got[4]["choices"], json!([]));
        assert_eq!(
            got[4]["usage"],
            json!({"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11})
        );
        assert_eq!(got[5], json!("[DONE]"));
        // the usage chunk is the one the relay meters (and strips when unasked)
        let usage_event = format!("data: {}\n\n", got[4]);
        assert!(matches!(
            sse::classify(usage_event.as_bytes()),
            sse::EventKind::Usage {
                only_usage: true,
                usage: Usage {
                    prompt_tokens: 9,
                    completion_tokens: 2
                }
            }
        ));
    }

    #[test]
    fn streamed_tool_calls_get_indexes_and_ids() {
        let got = stream(&[
            json!({"message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "a", "arguments": {"x": 1}}}]}, "done": false}),
            json!({"message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "b", "arguments": {}}}]}, "done": false}),
            json!({"message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop"}),
        ]);
        let first = &got[0]["choices"][0]["delta"];
        assert_eq!(first["role"], "assistant");
        assert!(first.get("content").is_none());
        assert_eq!(first["tool_calls"][0]["index"], 0);
        assert_eq!(first["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        let second = &got[1]["choices"][0]["delta"];
        assert!(second.get("role").is_none());
        assert_eq!(second["tool_calls"][0]["index"], 1);
        assert_eq!(second["tool_calls"][0]["function"]["name"], "b");
        assert_ne!(first["tool_calls"][0]["id"], second["tool_calls"][0]["id"]);
        assert_eq!(got[2]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got[2]["model"], "asked", "no model named upstream");
    }

    #[test]
    fn stream_errors_end_with_an_error_event_and_done() {
        // (lines, expected code, expected message)
        let cases: Vec<(Vec<&str>, &str, &str)> = vec![
            (
                vec![
                    r#"{"message":{"content":"a"},"done":false}"#,
                    r#"{"error":"out of memory"}"#,
                ],
                "upstream_error",
                "out of memory",
            ),
            (
                vec!["{not json"],
                "upstream_malformed_stream",
                "the upstream sent a malformed stream line",
            ),
        ];
        for (lines, code, message) in cases {
            let mut s = NativeStream::chat("m", 1, Ids::new(1));
            let mut out = Vec::new();
            for line in &lines {
                s.line(line.as_bytes(), &mut out);
            }
            s.line(br#"{"message":{"content":"late"},"done":false}"#, &mut out);
            assert!(s.finished());
            let got = events(&out);
            let error = &got[got.len() - 2]["error"];
            assert_eq!(error["code"], code);
            assert_eq!(error["message"], message);
            assert_eq!(got[got.len() - 1], json!("[DONE]"));
            assert!(!String::from_utf8_lossy(&out).contains("late"));
        }
    }

    fn ok(s: &str) -> Result<Bytes, hyper::Error> {
        Ok(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[tokio::test]
    async fn ndjson_becomes_sse_as_it_arrives_across_any_split() {
        let body = concat!(
            r#"{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}"#,
            "\n",
            r#"{"model":"m","message":{"role":"assistant","content":"lo"},"done":false}"#,
            "\r\n",
            r#"{"model":"m","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":1,"eval_count":2}"#,
        );
        let want = {
            let mut s = NativeStream::chat("m", 5, Ids::new(1));
            let mut out = Vec::new();
            for line in body.split('\n') {
                s.line(line.as_bytes(), &mut out);
            }
            out
        };
        for cut in 0..body.len() {
            let chunks = vec![ok(&body[..cut]), ok(&body[cut..])];
            let upstream: ByteStream = Box::pin(futures::stream::iter(chunks));
            let sse = sse_from_ndjson(upstream, NativeStream::chat("m", 5, Ids::new(1)), 1 << 20);
            let parts: Vec<Bytes> = sse.map(|c| c.unwrap()).collect().await;
            assert!(parts.iter().all(|p| !p.is_empty()), "no empty writes");
            assert_eq!(parts.concat(), want, "cut at {cut}");
        }
        // one line per chunk: one client write per line, nothing held back
        let lines: Vec<_> = body.split_inclusive('\n').map(ok).collect();
        let upstream: ByteStream = Box::pin(futures::stream::iter(lines));
        let sse = sse_from_ndjson(upstream, NativeStream::chat("m", 5, Ids::new(1)), 1 << 20);
        let parts: Vec<Bytes> = sse.map(|c| c.unwrap()).collect().await;
        assert_eq!(parts.len(), 3);
        assert!(String::from_utf8_lossy(&parts[0]).contains("Hel"));
    }

    #[tokio::test]
    async fn an_overlong_line_ends_the_stream() {
        let upstream: ByteStream = Box::pin(futures::stream::iter(vec![
            ok("{\"message\":{\"content\":\""),
            ok(&"x".repeat(100)),
            ok("never read"),
        ]));
        let sse = sse_from_ndjson(upstream, NativeStream::chat("m", 5, Ids::new(1)), 64);
        let parts: Vec<Bytes> = sse.map(|c| c.unwrap()).collect().await;
        let text = String::from_utf8(parts.concat()).unwrap();
        assert!(text.contains("upstream_response_too_large"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
    }

    #[test]
    fn text_completions_translate() {
        // (OpenAI request, expected native request or refused param)
        let cases: Vec<(Value, Result<Value, &str>)> = vec![
            (
                json!({"model": "m", "prompt": "Once", "max_tokens": 5, "stop": "\n", "suffix": "end",
                       "echo": false, "logprobs": null, "stream": true}),
                Ok(
                    json!({"model": "m", "prompt": "Once", "suffix": "end", "stream": true,
                          "options": {"num_predict": 5, "stop": ["\n"]}}),
                ),
            ),
            (
                json!({"model": "m", "prompt": ["only one"]}),
                Ok(json!({"model": "m", "prompt": "only one", "stream": false})),
            ),
            (json!({"model": "m", "prompt": ["a", "b"]}), Err("prompt")),
            (json!({"model": "m", "prompt": [1, 2, 3]}), Err("prompt")),
            (json!({"model": "m"}), Err("prompt")),
        ];
        for (openai, want) in cases {
            let got = completion_request(openai.to_string().as_bytes())
                .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
                .map_err(|e| e.param);
            assert_eq!(got, want, "{openai}");
        }

        let native = json!({"model": "m", "created_at": "2024-01-01T00:00:00Z", "response": "upon a time",
                            "done": true, "done_reason": "length", "context": [1, 2],
                            "prompt_eval_count": 2, "eval_count": 5});
        let t =
            completion_response(native.to_string().as_bytes(), "x", 7, &mut Ids::new(1)).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("cmpl-"), "{id}");
        assert_eq!(
            v,
            json!({"id": id, "object": "text_completion", "created": 7, "model": "m",
                   "system_fingerprint": "fp_ollama",
                   "choices": [{"text": "upon a time", "index": 0, "logprobs": null, "finish_reason": "length"}],
                   "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}})
        );
        assert!(completion_response(b"{\"message\":{}}", "x", 7, &mut Ids::new(1)).is_none());

        let mut s = NativeStream::completion("asked", 7, Ids::new(2));
        let mut out = Vec::new();
        for line in [
            json!({"model": "m", "response": "up", "done": false}),
            json!({"model": "m", "response": "", "done": false}),
            json!({"model": "m", "response": "on", "done": false}),
            json!({"model": "m", "response": "", "done": true, "done_reason": "stop",
                   "prompt_eval_count": 2, "eval_count": 2}),
        ] {
            s.line(line.to_string().as_bytes(), &mut out);
        }
        let got = events(&out);
        let texts: Vec<Value> = got
            .iter()
            .map(|e| e["choices"][0]["text"].clone())
            .collect();
        assert_eq!(
            texts,
            vec![
                json!("up"),
                json!("on"),
                json!(""),
                Value::Null,
                Value::Null
            ]
        );
        assert_eq!(got[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(got[3]["choices"], json!([]));
        assert_eq!(got[3]["usage"]["total_tokens"], 4);
        for e in &got[..4] {
            assert_eq!(e["object"], "text_completion");
            assert!(e["id"].as_str().unwrap().starts_with("cmpl-"));
        }
    }

    #[test]
    fn embeddings_translate_both_ways() {
        let r = embed_request(
            json!({"model": "nomic", "input": ["a", "b"], "encoding_format": "base64", "user": "u", "dimensions": 2})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert!(r.base64);
        assert_eq!(r.dropped, vec!["user"]);
        let native: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            native,
            json!({"model": "nomic", "input": ["a", "b"], "dimensions": 2})
        );
        for (input, ok) in [
            (json!("one"), true),
            (json!([]), false),
            (json!([1, 2, 3]), false),
            (json!([[1, 2]]), false),
        ] {
            let got = embed_request(json!({"model": "m", "input": input}).to_string().as_bytes());
            assert_eq!(got.is_ok(), ok, "{input}");
            if let Err(e) = got {
                assert_eq!(e.param, "input");
            }
        }

        let answer = json!({"model": "nomic", "embeddings": [[0.5, -1.0], [0.25, 2.0]],
                            "total_duration": 1, "prompt_eval_count": 8});
        let t = embed_response(answer.to_string().as_bytes(), "x", false).unwrap();
        assert_eq!(
            t.usage,
            Usage {
                prompt_tokens: 8,
                completion_tokens: 0
            }
        );
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        assert_eq!(
            v,
            json!({"object": "list", "model": "nomic",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
                            {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]}],
                   "usage": {"prompt_tokens": 8, "total_tokens": 8}})
        );
        let t = embed_response(answer.to_string().as_bytes(), "x", true).unwrap();
        let v: Value = serde_json::from_slice(&t.body).unwrap();
        // 0.5f32 = 00 00 00 3f, -1.0f32 = 00 00 80 bf
        assert_eq!(v["data"][0]["embedding"], "AAAAPwAAgL8=");
        assert!(embed_response(b"{\"error\":\"x\"}", "m", false).is_none());
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        let cases: [(&[u8], &str); 5] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"\xff\xfe\x00hello", "//4AaGVsbG8="),
        ];
        for (bytes, want) in cases {
            assert_eq!(base64_encode(bytes), want);
        }
    }

    #[test]
    fn errors_become_openai_errors() {
        // (status, native body, type, code, message)
        let cases: Vec<(u16, &str, &str, Value, &str)> = vec![
            (
                404,
                r#"{"error":"model 'nope' not found"}"#,
                "invalid_request_error",
                json!("model_not_found"),
                "model 'nope' not found",
            ),
            (
                400,
                r#"{"error":"invalid options"}"#,
                "invalid_request_error",
                Value::Null,
                "invalid options",
            ),
            (
                500,
                "",
                "api_error",
                Value::Null,
                "the upstream answered 500",
            ),
            (
                502,
                "bad gateway\n",
                "api_error",
                Value::Null,
                "bad gateway",
            ),
            (
                429,
                r#"{"error":{"message":"slow down"}}"#,
                "rate_limit_error",
                json!("rate_limit_exceeded"),
                "slow down",
            ),
        ];
        for (status, body, kind, code, message) in cases {
            let v: Value = serde_json::from_slice(&error_body(status, body.as_bytes())).unwrap();
            assert_eq!(v["error"]["type"], kind, "{status}");
            assert_eq!(v["error"]["code"], code, "{status}");
            assert_eq!(v["error"]["message"], message, "{status}");
            assert!(v["error"].get("param").is_some());
        }
    }

    #[test]
    fn a_missing_surface_is_told_from_a_missing_model() {
        let cases: [(&str, bool); 5] = [
            ("404 page not found", true),
            ("<html><body>Not Found</body></html>", true),
            ("", true),
            (r#"{"error":"not found"}"#, true),
            (
                r#"{"error":{"message":"model \"x\" not found, try pulling it first","type":"api_error","param":null,"code":null}}"#,
                false,
            ),
        ];
        for (body, absent) in cases {
            assert_eq!(surface_absent(body.as_bytes()), absent, "{body}");
        }
    }

    #[test]
    fn native_uris_and_surface_memory() {
        let cases = [
            (
                "http://h:11434/v1",
                NativeOp::Chat,
                "http://h:11434/api/chat",
            ),
            (
                "http://h:11434/v1/",
                NativeOp::Embed,
                "http://h:11434/api/embed",
            ),
            ("http://h:11434", NativeOp::Chat, "http://h:11434/api/chat"),
            (
                "https://p.example/ollama/v1",
                NativeOp::Chat,
                "https://p.example/ollama/api/chat",
            ),
        ];
        for (base, op, want) in cases {
            assert_eq!(native_uri(base, op).unwrap().to_string(), want);
        }
        assert_eq!(NativeOp::of(Route::Completions), Some(NativeOp::Generate));

        let s = Surfaces::default();
        let base: Arc<str> = Arc::from("http://h:11434/v1");
        assert!(!s.go_native(&base, NativeOp::Chat, 0));
        s.mark_absent(&base, NativeOp::Chat, 1_000);
        // (op, now, native?)
        let steps = [
            (NativeOp::Chat, 1_000, true),
            (NativeOp::Chat, 1_000 + REPROBE_AFTER_MS - 1, true),
            (NativeOp::Chat, 1_000 + REPROBE_AFTER_MS, false),
            (NativeOp::Embed, 1_000, false),
        ];
        for (op, now, native) in steps {
            assert_eq!(s.go_native(&base, op, now), native, "{op:?} at {now}");
        }
        assert!(!s.go_native("http://other/v1", NativeOp::Chat, 1_000));
    }
}
