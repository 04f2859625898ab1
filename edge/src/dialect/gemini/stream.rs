//! `streamGenerateContent?alt=sse` as canonical events. Each `data:` is a whole
//! `GenerateContentResponse` holding only the new parts; calls arrive whole; the last
//! `usageMetadata` is the final count; and no event ends the stream: it is complete when the
//! body closes after a `finishReason`. Usage goes out once, at that close.

use serde_json::Value;

use super::response::{call_id, stop_of, usage_of};
use crate::dialect::canonical::{Event, Usage};
use crate::dialect::upstream::Decode;

/// Reads Gemini stream chunks; see the module doc.
#[derive(Debug)]
pub struct Decoder {
    started: bool,
    /// Tool calls seen so far (the next call's canonical index).
    calls: usize,
    /// Ids for calls that bring none.
    salt: u64,
    finished: bool,
    usage: Option<Usage>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            started: false,
            calls: 0,
            salt: fastrand::u64(..),
            finished: false,
            usage: None,
        }
    }
}

impl Decode for Decoder {
    fn decode(&mut self, data: &[u8], out: &mut Vec<Event>) -> bool {
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            return false;
        };
        if let Some(error) = chunk.get("error") {
            let message = error["message"]
                .as_str()
                .unwrap_or("the upstream failed mid-stream");
            out.push(Event::Error(message.to_owned()));
            return false;
        }
        if !self.started {
            self.started = true;
            out.push(Event::Start {
                id: chunk["responseId"].as_str().unwrap_or_default().to_owned(),
                model: chunk["modelVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        let candidate = &chunk["candidates"][0];
        for part in candidate["content"]["parts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(call) = part.get("functionCall") {
                let index = self.calls;
                self.calls += 1;
                out.push(Event::ToolStart {
                    index,
                    id: call_id(&call["id"], self.salt, index),
                    name: call["name"].as_str().unwrap_or_default().to_owned(),
                });
                let args = call
                    .get("args")
                    .filter(|a| !a.is_null())
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                out.push(Event::ToolArgs {
                    index,
                    fragment: args,
                });
            } else if let Some(text) = part["text"].as_str().filter(|t| !t.is_empty()) {
                out.push(if part["thought"] == true {
                    Event::Thinking(text.to_owned())
                } else {
                    Event::Text(text.to_owned())
                });
            }
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            self.finished = true;
            out.push(Event::Stop(stop_of(reason, self.calls > 0)));
        } else if chunk["promptFeedback"]["blockReason"].is_string() {
            self.finished = true;
            out.push(Event::Stop(stop_of("SAFETY", false)));
        }
        if chunk["usageMetadata"].is_object() {
            self.usage = Some(usage_of(&chunk["usageMetadata"]));
        }
        false
    }

    fn ends_at_close(&self) -> bool {
        self.finished
    }

    fn close(&mut self, out: &mut Vec<Event>) {
        if let Some(usage) = self.usage.take() {
            out.push(Event::Usage(usage));
        }
    }
}
