//! Responses requests as canonical requests, and back. `input` is a string (one user turn) or
//! a list of items: messages (`input_text`, `input_image`, and `output_text` for assistant
//! history), `function_call` and `function_call_output`. Reasoning items are dropped: their
//! encrypted content means something only to the upstream that wrote it. Freeform (`custom`)
//! tools and their `custom_tool_call` items become function tools and calls taking an `input`
//! string.

use serde_json::{Map, Value, json};

use crate::dialect::canonical::{
    Message, Part, Request, Role, Tool, ToolChoice, parse_arguments, push_message, push_tool_result,
};
use crate::dialect::openai::request::image_of_url;
use crate::error::ApiError;

/// The canonical request of a Responses body; `Err` is the client's error (OpenAI's shape).
pub fn decode(body: &Value) -> Result<Request, ApiError> {
    let object = body.as_object().ok_or(ApiError::NotAnObject)?;
    stateless(object)?;
    let invalid = |message: String| ApiError::InvalidRequest { message };
    let model = object
        .get("model")
        .and_then(Value::as_str)
        .ok_or(ApiError::MissingModel)?;
    let mut request = Request {
        model: model.to_owned(),
        max_tokens: object.get("max_output_tokens").and_then(Value::as_u64),
        temperature: object.get("temperature").and_then(Value::as_f64),
        top_p: object.get("top_p").and_then(Value::as_f64),
        stream: object.get("stream").and_then(Value::as_bool) == Some(true),
        user: object
            .get("user")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Request::default()
    };
    match object.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => request.system.push(s.clone()),
        Some(_) => return Err(invalid("instructions: must be a string".into())),
    }
    request.tools = tools(object.get("tools")).map_err(invalid)?;
    request.tool_choice = tool_choice(object.get("tool_choice")).map_err(invalid)?;
    request.json = match &body["text"]["format"]["type"] {
        Value::String(t) if t == "json_object" => Some(Value::Null),
        Value::String(t) if t == "json_schema" => Some(body["text"]["format"]["schema"].clone()),
        _ => None,
    };
    match object.get("input") {
        Some(Value::String(s)) => request.messages.push(Message {
            role: Role::User,
            parts: vec![Part::Text(s.clone())],
        }),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                decode_item(item, &mut request).map_err(|e| invalid(format!("input[{i}]: {e}")))?;
            }
        }
        None | Some(Value::Null) => {
            return Err(ApiError::MissingParam { param: "input" });
        }
        Some(_) => return Err(invalid("input: must be a string or a list of items".into())),
    }
    Ok(request)
}

/// Refuses what needs conversation state the edge does not keep.
fn stateless(object: &Map<String, Value>) -> Result<(), ApiError> {
    let set = |k: &str| object.get(k).is_some_and(|v| !v.is_null());
    if set("previous_response_id") {
        return Err(ApiError::InvalidParam {
            param: "previous_response_id",
            message: "this gateway keeps no conversation state: `previous_response_id` is not \
                      supported; send the whole conversation in `input`",
        });
    }
    if set("conversation") {
        return Err(ApiError::InvalidParam {
            param: "conversation",
            message: "this gateway keeps no conversation state: `conversation` is not \
                      supported; send the whole conversation in `input`",
        });
    }
    if object.get("store").and_then(Value::as_bool) == Some(true) {
        return Err(ApiError::InvalidParam {
            param: "store",
            message: "this gateway keeps no conversation state: responses cannot be stored; \
                      send `store: false` (or leave it out) and the whole conversation in `input`",
        });
    }
    Ok(())
}

/// Function tools, which Responses writes flat (`{type, name, parameters}`); hosted tools run
/// at OpenAI and cannot be served here.
fn tools(tools: Option<&Value>) -> Result<Vec<Tool>, String> {
    let mut out = Vec::new();
    for (i, tool) in tools
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        match tool["type"].as_str() {
            Some("function") => {}
            Some("custom") => {
                let tool = custom_tool(tool);
                out.push(tool.ok_or_else(|| format!("tools[{i}].name: Field required"))?);
                continue;
            }
            Some(other) => {
                return Err(format!(
                    "tools[{i}]: tool type '{other}' runs at OpenAI and is not supported here; \
                     only function tools are"
                ));
            }
            None => return Err(format!("tools[{i}].type: Field required")),
        }
        let name = tool["name"]
            .as_str()
            .ok_or_else(|| format!("tools[{i}].name: Field required"))?;
        out.push(Tool {
            name: name.to_owned(),
            description: tool["description"].as_str().map(str::to_owned),
            parameters: tool.get("parameters").cloned().unwrap_or(json!({})),
        });
    }
    Ok(out)
}

/// A freeform (`custom`) tool, such as Codex's `apply_patch`, as a function tool taking its
/// text in `input` (the shape of Codex's own function variant of `apply_patch`). Its grammar, when
/// it has one, goes in the description so the model still sees the format.
fn custom_tool(tool: &Value) -> Option<Tool> {
    let name = tool["name"].as_str()?;
    let mut description = tool["description"].as_str().unwrap_or_default().to_owned();
    let format = &tool["format"];
    if let Some(definition) = format["definition"].as_str() {
        let syntax = format["syntax"].as_str().unwrap_or("grammar");
        description.push_str(&format!(
            "\n\nThe input is free text in this {syntax} grammar:\n{definition}"
        ));
    }
    Some(Tool {
        name: name.to_owned(),
        description: (!description.is_empty()).then_some(description),
        parameters: json!({"type": "object", "required": ["input"],
                           "properties": {"input": {"type": "string"}}}),
    })
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice>, String> {
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(match s.as_str() {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Any,
            "none" => ToolChoice::None,
            other => return Err(format!("tool_choice: unknown value '{other}'")),
        }),
        Some(v) if v["type"] == "function" => Some(ToolChoice::Tool(
            v["name"]
                .as_str()
                .ok_or("tool_choice.name: Field required")?
                .to_owned(),
        )),
        Some(_) => return Err("tool_choice: only auto, required, none or a function".into()),
    })
}

/// One input item into the conversation.
fn decode_item(item: &Value, request: &mut Request) -> Result<(), String> {
    let s = |k: &str| item[k].as_str().unwrap_or_default().to_owned();
    match item["type"].as_str() {
        Some("message") | None => decode_message(item, request),
        kind @ Some("function_call" | "custom_tool_call") => {
            let arguments = if kind == Some("custom_tool_call") {
                json!({"input": s("input")})
            } else {
                parse_arguments(item["arguments"].as_str().unwrap_or_default())
            };
            let call = Part::ToolCall {
                id: s("call_id"),
                name: item["name"]
                    .as_str()
                    .ok_or("name: Field required")?
                    .to_owned(),
                arguments,
            };
            match request.messages.last_mut() {
                Some(last) if last.role == Role::Assistant => last.parts.push(call),
                _ => request.messages.push(Message {
                    role: Role::Assistant,
                    parts: vec![call],
                }),
            }
            Ok(())
        }
        Some("function_call_output" | "custom_tool_call_output") => {
            let content = match &item["output"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
                other => other.to_string(),
            };
            let result = Part::ToolResult {
                call_id: s("call_id"),
                content,
                is_error: false,
            };
            push_tool_result(&mut request.messages, result);
            Ok(())
        }
        Some("reasoning") => Ok(()),
        Some(other) => Err(format!("item type '{other}' is not supported")),
    }
}

fn decode_message(item: &Value, request: &mut Request) -> Result<(), String> {
    let mut parts = Vec::new();
    match &item["content"] {
        Value::String(s) => parts.push(Part::Text(s.clone())),
        Value::Array(list) => {
            for (j, c) in list.iter().enumerate() {
                match c["type"].as_str() {
                    Some("input_text" | "output_text" | "text") => {
                        parts.push(Part::Text(
                            c["text"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                    Some("input_image") => {
                        let url = c["image_url"]
                            .as_str()
                            .ok_or_else(|| format!("content[{j}].image_url: Field required"))?;
                        parts.push(image_of_url(url));
                    }
                    Some("refusal") => {
                        parts.push(Part::Text(
                            c["refusal"].as_str().unwrap_or_default().to_owned(),
                        ));
                    }
                    Some(other) => {
                        return Err(format!(
                            "content[{j}]: part type '{other}' is not supported"
                        ));
                    }
                    None => return Err(format!("content[{j}].type: Field required")),
                }
            }
        }
        _ => return Err("content: Field required".into()),
    }
    let role = match item["role"].as_str() {
        Some("system" | "developer") => {
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
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        _ => return Err("role: must be user, assistant, system or developer".into()),
    };
    push_message(&mut request.messages, role, parts);
    Ok(())
}

/// The Responses body of a canonical request (stop sequences and top-k have no field there).
pub fn encode(request: &Request) -> Value {
    let mut input = Vec::new();
    for message in &request.messages {
        let mut content = Vec::new();
        let mut after = Vec::new();
        for part in &message.parts {
            match part {
                Part::Text(text) if message.role == Role::Assistant => {
                    content.push(json!({"type": "output_text", "text": text, "annotations": []}));
                }
                Part::Text(text) => content.push(json!({"type": "input_text", "text": text})),
                Part::Image { media_type, data } => {
                    let url = if media_type.is_empty() {
                        data.clone()
                    } else {
                        format!("data:{media_type};base64,{data}")
                    };
                    content
                        .push(json!({"type": "input_image", "image_url": url, "detail": "auto"}));
                }
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => after.push(json!({"type": "function_call", "call_id": id, "name": name,
                                       "arguments": arguments.to_string()})),
                Part::ToolResult {
                    call_id, content, ..
                } => input.push(json!({"type": "function_call_output", "call_id": call_id,
                                       "output": content})),
                Part::Thinking { .. } => {}
            }
        }
        if !content.is_empty() {
            let role = if message.role == Role::User {
                "user"
            } else {
                "assistant"
            };
            input.push(json!({"type": "message", "role": role, "content": content}));
        }
        input.extend(after);
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("input".into(), Value::Array(input));
    if !request.system.is_empty() {
        body.insert("instructions".into(), json!(request.system.join("\n\n")));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"type": "function", "name": t.name,
                                      "parameters": t.parameters});
                if let Some(d) = &t.description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::Any => json!("required"),
            ToolChoice::None => json!("none"),
            ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    for (key, value) in [
        ("max_output_tokens", request.max_tokens.map(|v| json!(v))),
        ("temperature", request.temperature.map(|v| json!(v))),
        ("top_p", request.top_p.map(|v| json!(v))),
        ("user", request.user.as_ref().map(|v| json!(v))),
    ] {
        if let Some(v) = value {
            body.insert(key.into(), v);
        }
    }
    match &request.json {
        Some(Value::Null) => {
            body.insert("text".into(), json!({"format": {"type": "json_object"}}));
        }
        Some(schema) => {
            body.insert(
                "text".into(),
                json!({"format": {"type": "json_schema", "name": "answer", "schema": schema}}),
            );
        }
        None => {}
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    body.insert("store".into(), json!(false));
    Value::Object(body)
}
