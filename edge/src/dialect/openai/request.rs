//! Canonical requests as OpenAI chat bodies, and back.

use serde_json::{Map, Value, json};

use crate::dialect::canonical::{
    Message, Part, Request, Role, Tool, ToolChoice, push_message, push_tool_result,
};

/// The OpenAI chat body for `request`. A stream asks for the usage chunk, which the edge meters
/// and the translating dialect turns into its own usage.
pub fn encode(request: &Request) -> Value {
    let mut messages = Vec::new();
    for system in &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        encode_message(message, &mut messages);
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request.tools.iter().map(encode_tool).collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Any => json!("required"),
            ToolChoice::None => json!("none"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), choice);
    }
    if let Some(n) = request.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if !request.stop.is_empty() {
        body.insert("stop".into(), json!(request.stop));
    }
    if let Some(user) = &request.user {
        body.insert("user".into(), json!(user));
    }
    match &request.json {
        Some(Value::Null) => {
            body.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some(schema) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}),
            );
        }
        None => {}
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(body)
}

fn encode_tool(tool: &Tool) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), json!(tool.name));
    if let Some(d) = &tool.description {
        function.insert("description".into(), json!(d));
    }
    function.insert("parameters".into(), tool.parameters.clone());
    json!({"type": "function", "function": function})
}

/// One canonical message as OpenAI messages: tool results become `tool` messages placed before
/// the rest of their turn, an assistant's calls go in `tool_calls`.
fn encode_message(message: &Message, out: &mut Vec<Value>) {
    let mut content: Vec<Value> = Vec::new();
    let mut calls: Vec<Value> = Vec::new();
    let mut reasoning = String::new();
    for part in &message.parts {
        match part {
            Part::Text(text) => content.push(json!({"type": "text", "text": text})),
            Part::Image { media_type, data } => {
                let url = if media_type.is_empty() {
                    data.clone()
                } else {
                    format!("data:{media_type};base64,{data}")
                };
                content.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Part::ToolCall {
                id,
                name,
                arguments,
            } => calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()},
            })),
            Part::ToolResult {
                call_id, content, ..
            } => out.push(json!({"role": "tool", "tool_call_id": call_id, "content": content})),
            Part::Thinking { text, .. } => reasoning.push_str(text),
        }
    }
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    if content.is_empty() && calls.is_empty() {
        return;
    }
    // Text alone goes as a plain string, which every OpenAI-compatible server reads.
    let all_text = content.iter().all(|c| c["type"] == "text");
    let content = if content.is_empty() {
        Value::Null
    } else if all_text {
        Value::String(
            content
                .iter()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
        )
    } else {
        Value::Array(content)
    };
    let mut m = Map::new();
    m.insert("role".into(), json!(role));
    m.insert("content".into(), content);
    if !calls.is_empty() {
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    if !reasoning.is_empty() && message.role == Role::Assistant {
        m.insert("reasoning_content".into(), json!(reasoning));
    }
    out.push(Value::Object(m));
}

/// The canonical request of an OpenAI chat body; `Err` names what is wrong.
pub fn decode(body: &Value) -> Result<Request, String> {
    let object = body.as_object().ok_or("the body must be a JSON object")?;
    let mut request = Request {
        model: object
            .get("model")
            .and_then(Value::as_str)
            .ok_or("model is required")?
            .to_owned(),
        stream: object.get("stream").and_then(Value::as_bool) == Some(true),
        max_tokens: object
            .get("max_completion_tokens")
            .or_else(|| object.get("max_tokens"))
            .and_then(Value::as_u64),
        temperature: object.get("temperature").and_then(Value::as_f64),
        top_p: object.get("top_p").and_then(Value::as_f64),
        user: object
            .get("user")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Request::default()
    };
    match object.get("stop") {
        Some(Value::String(s)) => request.stop.push(s.clone()),
        Some(Value::Array(list)) => {
            request.stop = list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        _ => {}
    }
    for tool in object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = &tool["function"];
        request.tools.push(Tool {
            name: f["name"]
                .as_str()
                .ok_or("tools[].function.name is required")?
                .to_owned(),
            description: f["description"].as_str().map(str::to_owned),
            parameters: f.get("parameters").cloned().unwrap_or(json!({})),
        });
    }
    request.tool_choice = match object.get("tool_choice") {
        Some(Value::String(s)) if s == "auto" => Some(ToolChoice::Auto),
        Some(Value::String(s)) if s == "required" => Some(ToolChoice::Any),
        Some(Value::String(s)) if s == "none" => Some(ToolChoice::None),
        Some(Value::Object(o)) => o
            .get("function")
            .and_then(|f| f["name"].as_str())
            .map(|n| ToolChoice::Tool(n.to_owned())),
        _ => None,
    };
    request.json = match object.get("response_format").map(|f| &f["type"]) {
        Some(Value::String(t)) if t == "json_object" => Some(Value::Null),
        Some(Value::String(t)) if t == "json_schema" => {
            Some(body["response_format"]["json_schema"]["schema"].clone())
        }
        _ => None,
    };
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages must be an array")?;
    for m in messages {
        decode_message(m, &mut request)?;
    }
    Ok(request)
}

fn decode_message(m: &Value, request: &mut Request) -> Result<(), String> {
    let role = m["role"].as_str().ok_or("messages[].role is required")?;
    let mut parts = Vec::new();
    match &m["content"] {
        Value::String(s) if !s.is_empty() => parts.push(Part::Text(s.clone())),
        Value::Array(list) => {
            for c in list {
                match c["type"].as_str() {
                    Some("text") => parts.push(Part::Text(
                        c["text"].as_str().unwrap_or_default().to_owned(),
                    )),
                    Some("image_url") => {
                        let url = c["image_url"]["url"].as_str().unwrap_or_default();
                        parts.push(image_of_url(url));
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
    match role {
        "system" | "developer" => {
            let text: String = parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            request.system.push(text);
            return Ok(());
        }
        "tool" => {
            let result = Part::ToolResult {
                call_id: m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                content: parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::Text(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect(),
                is_error: false,
            };
            push_tool_result(&mut request.messages, result);
            return Ok(());
        }
        _ => {}
    }
    let role = if role == "assistant" {
        Role::Assistant
    } else {
        Role::User
    };
    if role == Role::Assistant {
        if let Some(r) = m["reasoning_content"].as_str().filter(|r| !r.is_empty()) {
            parts.insert(
                0,
                Part::Thinking {
                    text: r.to_owned(),
                    signature: String::new(),
                },
            );
        }
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            let f = &call["function"];
            parts.push(Part::ToolCall {
                id: call["id"].as_str().unwrap_or_default().to_owned(),
                name: f["name"].as_str().unwrap_or_default().to_owned(),
                arguments: crate::dialect::canonical::parse_arguments(
                    f["arguments"].as_str().unwrap_or_default(),
                ),
            });
        }
    }
    push_message(&mut request.messages, role, parts);
    Ok(())
}

/// An image part from an OpenAI `image_url`: inline when it is a base64 data URL.
pub fn image_of_url(url: &str) -> Part {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((media_type, data)) = rest.split_once(";base64,")
    {
        return Part::Image {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        };
    }
    Part::Image {
        media_type: String::new(),
        data: url.to_owned(),
    }
}
