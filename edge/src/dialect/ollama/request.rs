//! OpenAI requests as Ollama native requests.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::*;

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
pub(super) fn prompt(value: Value) -> Result<Value, Refusal> {
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
pub(super) fn client_options(request: &Map<String, Value>) -> Map<String, Value> {
    match request.get("options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    }
}

/// OpenAI sampling fields that map onto Ollama `options`.
pub(super) const SAMPLING: [&str; 8] = [
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
pub(super) fn sampling(
    key: &str,
    value: Value,
    options: &mut Map<String, Value>,
) -> Result<(), Refusal> {
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
pub(super) fn finish(
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

pub(super) fn object(bytes: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(refuse("body", "the request body must be a JSON object")),
    }
}

pub(super) fn to_vec(value: &impl Serialize) -> Vec<u8> {
    // Serialising a Value or plain structs into a Vec cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// OpenAI messages → Ollama messages: content parts joined, data-URL images as base64
/// `images`, tool-call arguments as objects, tool results naming their tool.
pub(super) fn messages(value: Value) -> Result<Value, Refusal> {
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
pub(super) fn content(value: Option<Value>) -> Result<(String, Vec<Value>), Refusal> {
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
pub(super) fn data_url_base64(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    meta.ends_with(";base64").then_some(data)
}

/// An assistant history tool call: `arguments` (a JSON string) becomes an object.
pub(super) fn history_call(
    call: Value,
    names: &mut HashMap<String, String>,
) -> Result<Value, Refusal> {
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
pub(super) fn tools(value: Value, dropped: &mut Vec<String>) -> Result<Option<Value>, Refusal> {
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
pub(super) fn format(value: &Value) -> Result<Option<Value>, Refusal> {
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
