//! Canonical requests as Gemini `generateContent` bodies, and back. The conversation becomes
//! `contents` of `user` and `model` turns; a tool result is a `functionResponse` part, which
//! Gemini wants named, so the name is looked up from the call it answers; calls carry the
//! documented "unsigned" thought signature, as Gemini 3 requires one. Tool schemas lose
//! the JSON-schema keywords Gemini's schema subset refuses (`$schema`, `additionalProperties`).

use http::Uri;
use serde_json::{Map, Value, json};

use crate::dialect::canonical::{Message, Part, Request, Role, Tool, ToolChoice};

/// The `thoughtSignature` that tells Gemini to skip validating a call's signature.
pub const UNSIGNED: &str = "skip_thought_signature_validator";

/// `{base}/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` for a stream
/// (Gemini's SSE; without `alt=sse` it streams one JSON array).
pub fn uri(base_url: &str, model: &str, stream: bool) -> Option<Uri> {
    let base = base_url.trim_end_matches('/');
    let model = model.strip_prefix("models/").unwrap_or(model);
    let uri = if stream {
        format!("{base}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base}/models/{model}:generateContent")
    };
    uri.parse().ok()
}

/// The `generateContent` body of a canonical request (the model and `stream` go in the URL;
/// `user` has no field).
pub fn encode(request: &Request) -> Value {
    let mut body = Map::new();
    let mut names: Vec<(&str, &str)> = Vec::new();
    let contents: Vec<Value> = request
        .messages
        .iter()
        .filter(|m| !m.parts.is_empty())
        .map(|m| {
            for part in &m.parts {
                if let Part::ToolCall { id, name, .. } = part {
                    names.push((id, name));
                }
            }
            let parts: Vec<Value> = m
                .parts
                .iter()
                .filter_map(|p| encode_part(p, &names))
                .collect();
            let role = if m.role == Role::User {
                "user"
            } else {
                "model"
            };
            json!({"role": role, "parts": parts})
        })
        .collect();
    body.insert("contents".into(), Value::Array(contents));
    if !request.system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": request.system.join("\n\n")}]}),
        );
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request.tools.iter().map(encode_tool).collect();
        body.insert(
            "tools".into(),
            json!([{"functionDeclarations": declarations}]),
        );
    }
    if let Some(choice) = &request.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::Any => json!({"mode": "ANY"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Tool(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({"functionCallingConfig": config}),
        );
    }
    let mut generation = Map::new();
    for (key, value) in [
        ("maxOutputTokens", request.max_tokens.map(|v| json!(v))),
        ("temperature", request.temperature.map(|v| json!(v))),
        ("topP", request.top_p.map(|v| json!(v))),
        ("topK", request.top_k.map(|v| json!(v))),
        (
            "stopSequences",
            (!request.stop.is_empty()).then(|| json!(request.stop)),
        ),
    ] {
        if let Some(v) = value {
            generation.insert(key.into(), v);
        }
    }
    if let Some(schema) = &request.json {
        generation.insert("responseMimeType".into(), json!("application/json"));
        if !schema.is_null() {
            generation.insert("responseSchema".into(), sanitize(schema));
        }
    }
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Value::Object(body)
}

/// One canonical part as a Gemini part; `names` maps earlier call ids to their tools.
/// Reasoning is not sent back: Gemini's thoughts are its own (signed) state.
fn encode_part(part: &Part, names: &[(&str, &str)]) -> Option<Value> {
    Some(match part {
        Part::Text(t) => json!({"text": t}),
        Part::Image { media_type, data } if media_type.is_empty() => {
            json!({"fileData": {"mimeType": mime_of_url(data), "fileUri": data}})
        }
        Part::Image { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        // Gemini 3 refuses a call in the history without the signature of the thoughts behind
        // it. Those never survive the client's round trip, so the calls carry the sentinel
        // Gemini documents for history it did not sign (replayed or from another model).
        Part::ToolCall {
            id,
            name,
            arguments,
        } => json!({"functionCall": {"id": id, "name": name, "args": arguments},
                    "thoughtSignature": UNSIGNED}),
        Part::ToolResult {
            call_id,
            content,
            is_error,
        } => {
            let name = names
                .iter()
                .rev()
                .find(|(id, _)| id == call_id)
                .map_or("tool", |(_, name)| name);
            let key = if *is_error { "error" } else { "output" };
            json!({"functionResponse": {"id": call_id, "name": name,
                                        "response": {key: content}}})
        }
        Part::Thinking { .. } => return None,
    })
}

fn encode_tool(tool: &Tool) -> Value {
    let mut declaration = json!({"name": tool.name});
    if let Some(d) = &tool.description {
        declaration["description"] = json!(d);
    }
    // Gemini refuses an OBJECT schema without properties: such a tool takes no parameters.
    let empty = tool.parameters["type"] == "object"
        && tool.parameters["properties"]
            .as_object()
            .is_none_or(Map::is_empty);
    if !empty && !tool.parameters.is_null() {
        declaration["parameters"] = sanitize(&tool.parameters);
    }
    declaration
}

/// A JSON schema without the keywords Gemini's schema subset refuses.
fn sanitize(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "additionalProperties"))
                .map(|(k, v)| (k.clone(), sanitize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(sanitize).collect()),
        v => v.clone(),
    }
}

/// The image type a URL's extension names (`fileData` must say one).
fn mime_of_url(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        _ => "image/jpeg",
    }
}

/// The canonical request of a `generateContent` body for `model` (what an upstream would
/// read); `Err` names what is wrong.
pub fn decode(body: &Value, model: &str, stream: bool) -> Result<Request, String> {
    let object = body.as_object().ok_or("the body must be a JSON object")?;
    let generation = &body["generationConfig"];
    let mut request = Request {
        model: model.to_owned(),
        stream,
        max_tokens: generation["maxOutputTokens"].as_u64(),
        temperature: generation["temperature"].as_f64(),
        top_p: generation["topP"].as_f64(),
        top_k: generation["topK"].as_u64(),
        stop: generation["stopSequences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        ..Request::default()
    };
    if generation["responseMimeType"] == "application/json" {
        request.json = Some(generation["responseSchema"].clone());
    }
    if let Some(parts) = body["systemInstruction"]["parts"].as_array() {
        request
            .system
            .push(parts.iter().filter_map(|p| p["text"].as_str()).collect());
    }
    for declaration in body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["functionDeclarations"].as_array())
        .flatten()
    {
        request.tools.push(Tool {
            name: declaration["name"]
                .as_str()
                .ok_or("functionDeclarations[].name is required")?
                .to_owned(),
            description: declaration["description"].as_str().map(str::to_owned),
            parameters: declaration
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    let calling = &body["toolConfig"]["functionCallingConfig"];
    request.tool_choice = match calling["mode"].as_str() {
        Some("AUTO") => Some(ToolChoice::Auto),
        Some("NONE") => Some(ToolChoice::None),
        Some("ANY") => match calling["allowedFunctionNames"]
            .as_array()
            .map(Vec::as_slice)
        {
            Some([name]) => Some(ToolChoice::Tool(
                name.as_str().unwrap_or_default().to_owned(),
            )),
            _ => Some(ToolChoice::Any),
        },
        _ => None,
    };
    let contents = object
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("contents must be an array")?;
    for content in contents {
        let role = match content["role"].as_str() {
            Some("model") => Role::Assistant,
            _ => Role::User,
        };
        let parts = content["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(decode_part)
            .collect();
        request.messages.push(Message { role, parts });
    }
    Ok(request)
}

/// One Gemini part of a request (thoughts are dropped).
fn decode_part(part: &Value) -> Option<Part> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    if part["thought"] == true {
        return None;
    }
    if let Some(text) = part["text"].as_str() {
        return Some(Part::Text(text.to_owned()));
    }
    if let Some(inline) = part.get("inlineData") {
        return Some(Part::Image {
            media_type: s(&inline["mimeType"]),
            data: s(&inline["data"]),
        });
    }
    if let Some(file) = part.get("fileData") {
        return Some(Part::Image {
            media_type: String::new(),
            data: s(&file["fileUri"]),
        });
    }
    if let Some(call) = part.get("functionCall") {
        return Some(Part::ToolCall {
            id: s(&call["id"]),
            name: s(&call["name"]),
            arguments: call.get("args").cloned().unwrap_or_else(|| json!({})),
        });
    }
    let response = part.get("functionResponse")?;
    let r = &response["response"];
    let (content, is_error) = match (r.get("output"), r.get("error")) {
        (Some(Value::String(s)), _) => (s.clone(), false),
        (_, Some(Value::String(s))) => (s.clone(), true),
        _ => (r.to_string(), false),
    };
    Some(Part::ToolResult {
        call_id: s(&response["id"]),
        content,
        is_error,
    })
}
