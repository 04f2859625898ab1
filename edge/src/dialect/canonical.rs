//! The canonical chat form every dialect translates to and from: a conversation of messages
//! made of parts (text, images, tool calls, tool results, reasoning), the tools on offer, the
//! sampling knobs, and on the way back an answer or a stream of events with a stop reason and
//! usage. N inbound plus M outbound translations, never N × M. Tool-call arguments are parsed
//! JSON here; each dialect writes them as its wire wants (a string for OpenAI, an object for
//! Anthropic and Ollama).

use serde_json::Value;

/// A chat request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// The public model name.
    pub model: String,
    /// System instructions, in order.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// How the model may use them (`None`: the upstream's default).
    pub tool_choice: Option<ToolChoice>,
    /// Completion budget in tokens.
    pub max_tokens: Option<u64>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Top-k sampling (not every dialect has it).
    pub top_k: Option<u64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Stream the answer.
    pub stream: bool,
    /// An end-user id for the upstream's abuse tracking.
    pub user: Option<String>,
    /// A JSON schema the answer must follow (`Some(Value::Null)`: any JSON object).
    pub json: Option<Value>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client's side (tool results included).
    User,
    /// The model.
    Assistant,
}

/// One turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// What it holds, in order.
    pub parts: Vec<Part>,
}

/// A piece of a message or an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Plain text.
    Text(String),
    /// An image: inline base64 `data` of `media_type`, or a URL when `media_type` is empty.
    Image {
        /// `image/png`, …; empty for a URL.
        media_type: String,
        /// Base64 bytes, or the URL.
        data: String,
    },
    /// The model called a tool.
    ToolCall {
        /// The call's id (tool results refer to it).
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, parsed (an object).
        arguments: Value,
    },
    /// What a tool call returned.
    ToolResult {
        /// The call it answers.
        call_id: String,
        /// Its output as text.
        content: String,
        /// The tool failed.
        is_error: bool,
    },
    /// The model's visible reasoning.
    Thinking {
        /// The text.
        text: String,
        /// An opaque signature some upstreams require echoed back.
        signature: String,
    },
}

/// A tool on offer.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// JSON schema of its arguments.
    pub parameters: Value,
}

/// How the model may use tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// As it sees fit.
    Auto,
    /// At least one tool.
    Any,
    /// No tools.
    None,
    /// This tool.
    Tool(String),
}

/// Why the answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model finished.
    EndTurn,
    /// The token budget ran out.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model called tools and waits for their results.
    ToolUse,
    /// The upstream filtered the content.
    ContentFilter,
}

/// Tokens an answer used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Prompt tokens read from the upstream's cache.
    pub cached: u64,
}

/// A whole answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The upstream's id for it (empty when it gave none).
    pub id: String,
    /// The model that answered.
    pub model: String,
    /// What it said, in order.
    pub parts: Vec<Part>,
    /// Why it ended.
    pub stop: StopReason,
    /// What it cost.
    pub usage: Usage,
}

/// One step of a streamed answer. Tool calls are numbered by `index` in the order they start;
/// their arguments arrive as JSON text fragments.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The answer started (id and model as the upstream named them).
    Start {
        /// The upstream's id.
        id: String,
        /// The model.
        model: String,
    },
    /// More text.
    Text(String),
    /// More reasoning.
    Thinking(String),
    /// A tool call opens.
    ToolStart {
        /// Its number in this answer.
        index: usize,
        /// Its id.
        id: String,
        /// The tool.
        name: String,
    },
    /// More of a tool call's arguments (JSON text).
    ToolArgs {
        /// Which call.
        index: usize,
        /// The fragment.
        fragment: String,
    },
    /// The answer ended for this reason.
    Stop(StopReason),
    /// Usage so far (the last one counts).
    Usage(Usage),
    /// The upstream failed mid-stream.
    Error(String),
}

impl Answer {
    /// The answer as the events a stream of it would carry.
    pub fn events(&self) -> Vec<Event> {
        let mut events = vec![Event::Start {
            id: self.id.clone(),
            model: self.model.clone(),
        }];
        let mut tools = 0;
        for part in &self.parts {
            match part {
                Part::Text(text) => events.push(Event::Text(text.clone())),
                Part::Thinking { text, .. } => events.push(Event::Thinking(text.clone())),
                Part::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    events.push(Event::ToolStart {
                        index: tools,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    events.push(Event::ToolArgs {
                        index: tools,
                        fragment: arguments.to_string(),
                    });
                    tools += 1;
                }
                Part::Image { .. } | Part::ToolResult { .. } => {}
            }
        }
        events.push(Event::Stop(self.stop));
        events.push(Event::Usage(self.usage));
        events
    }
}

/// Collects stream events back into a whole answer (tests and whole-body translations).
#[derive(Debug, Default)]
pub struct Collector {
    id: String,
    model: String,
    parts: Vec<Part>,
    /// Each tool call's place in `parts` and its argument text so far.
    calls: Vec<(usize, String)>,
    stop: Option<StopReason>,
    usage: Usage,
}

impl Collector {
    /// Takes one event.
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Start { id, model } => {
                self.id = id;
                self.model = model;
            }
            Event::Text(t) => match self.parts.last_mut() {
                Some(Part::Text(text)) => text.push_str(&t),
                _ => self.parts.push(Part::Text(t)),
            },
            Event::Thinking(t) => match self.parts.last_mut() {
                Some(Part::Thinking { text, .. }) => text.push_str(&t),
                _ => self.parts.push(Part::Thinking {
                    text: t,
                    signature: String::new(),
                }),
            },
            Event::ToolStart { index, id, name } => {
                if index >= self.calls.len() {
                    self.calls.resize(index + 1, (usize::MAX, String::new()));
                }
                self.calls[index].0 = self.parts.len();
                self.parts.push(Part::ToolCall {
                    id,
                    name,
                    arguments: Value::Null,
                });
            }
            Event::ToolArgs { index, fragment } => {
                if let Some(call) = self.calls.get_mut(index) {
                    call.1.push_str(&fragment);
                }
            }
            Event::Stop(stop) => self.stop = Some(stop),
            Event::Usage(usage) => self.usage = usage,
            Event::Error(_) => {}
        }
    }

    /// The answer so far.
    pub fn finish(mut self) -> Answer {
        for (at, text) in &self.calls {
            if let Some(Part::ToolCall { arguments, .. }) = self.parts.get_mut(*at) {
                *arguments = parse_arguments(text);
            }
        }
        let has_calls = !self.calls.is_empty();
        Answer {
            id: self.id,
            model: self.model,
            parts: self.parts,
            stop: self.stop.unwrap_or(if has_calls {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            }),
            usage: self.usage,
        }
    }
}

/// Adds a tool result to the conversation: consecutive results share one user turn (as
/// Anthropic requires), and so does the user text right after them.
pub fn push_tool_result(messages: &mut Vec<Message>, result: Part) {
    match messages.last_mut() {
        Some(last) if last.role == Role::User && only_results(last) => last.parts.push(result),
        _ => messages.push(Message {
            role: Role::User,
            parts: vec![result],
        }),
    }
}

/// Adds a message to the conversation: a user turn right after tool results joins their turn
/// (Anthropic keeps them in one).
pub fn push_message(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    match messages.last_mut() {
        Some(last) if role == Role::User && last.role == Role::User && only_results(last) => {
            last.parts.extend(parts);
        }
        _ => messages.push(Message { role, parts }),
    }
}

/// Whether a message holds tool results and nothing else.
pub fn only_results(message: &Message) -> bool {
    message
        .parts
        .iter()
        .all(|p| matches!(p, Part::ToolResult { .. }))
}

/// Tool-call arguments from their JSON text: an empty text is `{}`, and text that is not JSON
/// is kept as a string rather than lost.
pub fn parse_arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}
