//! The forwarded request body: reads the fields routing needs and rewrites only `model`,
//! keeping every other field's bytes and order as the client sent them.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A client's JSON object body, split into top-level fields whose values stay unparsed, plus
/// the few fields routing reads.
#[derive(Debug)]
pub struct RequestBody<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// `stream: true` was asked.
    pub stream: bool,
    /// `n`, when given as a number.
    pub n: Option<u64>,
    /// The client asked for `stream_options.include_usage: true`.
    pub client_wants_usage: bool,
    /// `max_tokens` or `max_completion_tokens`, when given.
    pub max_tokens: Option<u64>,
}

impl<'a> RequestBody<'a> {
    /// Parses `bytes` as a JSON object; not JSON or not an object is the client's error.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        // One pass on the happy path; a failure is told apart as "not JSON" or "not an
        // object" by a second look, on the error path only.
        let Fields(fields) = serde_json::from_slice(bytes).map_err(|e| {
            match serde_json::from_slice::<&RawValue>(bytes) {
                Err(invalid) => ApiError::InvalidJson {
                    reason: invalid.to_string(),
                },
                // Valid JSON yet failing as fields: not an object, or a key that cannot be
                // decoded (a lone surrogate escape), which is not JSON the edge can route.
                Ok(raw) if raw.get().starts_with('{') => ApiError::InvalidJson {
                    reason: e.to_string(),
                },
                Ok(_) => ApiError::NotAnObject,
            }
        })?;
        let mut body = Self {
            fields,
            stream: false,
            n: None,
            client_wants_usage: false,
            max_tokens: None,
        };
        for (key, value) in &body.fields {
            match &**key {
                "stream" => body.stream = value.get() == "true",
                "n" => body.n = value.get().parse().ok(),
                "max_tokens" | "max_completion_tokens" => {
                    body.max_tokens = value.get().parse().ok();
                }
                "stream_options" => {
                    body.client_wants_usage = serde_json::from_str::<StreamOptions>(value.get())
                        .is_ok_and(|o| o.include_usage == Some(true));
                }
                _ => {}
            }
        }
        Ok(body)
    }

    fn field(&self, name: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// The `model` the client asked for; absent or not a string is the client's error.
    /// With duplicate keys the last wins, as in most JSON parsers.
    pub fn model(&self) -> Result<String, ApiError> {
        let raw = self.field("model").ok_or(ApiError::MissingModel)?;
        serde_json::from_str::<String>(raw.get()).map_err(|_| ApiError::MissingModel)
    }

    /// Fails with the parameter's name unless `param` is present and not null.
    pub fn require(&self, param: &'static str) -> Result<(), ApiError> {
        match self.field(param) {
            Some(v) if v.get() != "null" => Ok(()),
            _ => Err(ApiError::MissingParam { param }),
        }
    }

    /// A rough token estimate of the prompt (`messages`, `prompt` or `input`, about four bytes
    /// a token) plus the completion budget, for context-window decisions.
    pub fn token_estimate(&self) -> u64 {
        let prompt: usize = ["messages", "prompt", "input"]
            .iter()
            .filter_map(|f| self.field(f))
            .map(|v| v.get().len())
            .sum();
        (prompt as u64).div_ceil(4) + self.max_tokens.unwrap_or(0)
    }

    /// The body to send upstream: the same fields in the same order, with `model` replaced;
    /// with `add_usage`, `stream_options.include_usage` is set (added when absent).
    pub fn upstream_body(&self, model: &str, add_usage: bool) -> Vec<u8> {
        self.upstream_body_without(model, add_usage, &[])
    }

    /// [`Self::upstream_body`] without the top-level fields named in `drop` (the parameters a
    /// target refuses, under `drop_params`).
    pub fn upstream_body_without(&self, model: &str, add_usage: bool, drop: &[String]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.fields
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
                + model.len()
                + 48,
        );
        out.push(b'{');
        let mut usage_written = false;
        let mut first = true;
        for (key, value) in &self.fields {
            if !drop.is_empty() && drop.iter().any(|d| d == &**key) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_str(&mut out, key);
            out.push(b':');
            match &**key {
                "model" => write_json_str(&mut out, model),
                "stream_options" if add_usage => {
                    write_stream_options(&mut out, value);
                    usage_written = true;
                }
                _ => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        if add_usage && !usage_written {
            if !first {
                out.push(b',');
            }
            out.extend_from_slice(br#""stream_options":{"include_usage":true}"#);
        }
        out.push(b'}');
        out
    }
}

/// The part of `stream_options` the edge reads.
#[derive(serde::Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Writes the client's `stream_options` object with `include_usage: true`, keeping its other
/// members; anything that is not an object is replaced.
fn write_stream_options(out: &mut Vec<u8>, value: &RawValue) {
    let mut options =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value.get())
            .unwrap_or_default();
    options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
    if serde_json::to_writer(&mut *out, &options).is_err() {
        out.extend_from_slice(br#"{"include_usage":true}"#);
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail; fall back to a lossless debug form if it did.
    if serde_json::to_writer(&mut *out, s).is_err() {
        let _ = write!(out, "{s:?}");
    }
}

/// A key borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Top-level object fields in document order, values borrowed unparsed.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_model_and_keeps_everything_else_verbatim() {
        let body = br#" {"messages":[{"role":"user","content":"hi \u00e9"}], "model":"pub",
            "temperature":0.10000000000000001,"big":123456789012345678901234567890,"stream":true} "#;
        let parsed = RequestBody::parse(body).unwrap();
        assert_eq!(parsed.model().unwrap(), "pub");
        let out = String::from_utf8(parsed.upstream_body("up\"stream", false)).unwrap();
        assert_eq!(
            out,
            r#"{"messages":[{"role":"user","content":"hi \u00e9"}],"model":"up\"stream","temperature":0.10000000000000001,"big":123456789012345678901234567890,"stream":true}"#
        );
    }

    #[test]
    fn classifies_bad_bodies() {
        // (body, expected error) — the model rules follow OpenAI's
        let cases: Vec<(&[u8], &str)> = vec![
            (b"not json", "InvalidJson"),
            (b"{\"model\":\"x\"", "InvalidJson"),
            (b"[1,2]", "NotAnObject"),
            (b"\"model\"", "NotAnObject"),
            (b"{}", "MissingModel"),
            (b"{\"model\":3}", "MissingModel"),
            (b"{\"model\":null}", "MissingModel"),
        ];
        for (body, want) in cases {
            let got = RequestBody::parse(body).and_then(|b| b.model());
            let name = match got {
                Err(ApiError::InvalidJson { .. }) => "InvalidJson",
                Err(ApiError::NotAnObject) => "NotAnObject",
                Err(ApiError::MissingModel) => "MissingModel",
                other => panic!("{}: unexpected {other:?}", String::from_utf8_lossy(body)),
            };
            assert_eq!(name, want, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn stream_options_are_added_or_completed() {
        // (body, add_usage) → upstream body, and whether the client asked for usage
        let cases: Vec<(&str, bool, &str, bool)> = vec![
            (
                r#"{"model":"p","stream":true}"#,
                true,
                r#"{"model":"u","stream":true,"stream_options":{"include_usage":true}}"#,
                false,
            ),
            (
                r#"{"model":"p","stream":true,"stream_options":{"include_usage":true}}"#,
                false,
                r#"{"model":"u","stream":true,"stream_options":{"include_usage":true}}"#,
                true,
            ),
            (
                r#"{"model":"p","stream_options":{"include_obfuscation":false},"stream":true}"#,
                true,
                r#"{"model":"u","stream_options":{"include_obfuscation":false,"include_usage":true},"stream":true}"#,
                false,
            ),
            (
                r#"{"model":"p","stream_options":null,"stream":true}"#,
                true,
                r#"{"model":"u","stream_options":{"include_usage":true},"stream":true}"#,
                false,
            ),
        ];
        for (body, add, want, wants_usage) in cases {
            let parsed = RequestBody::parse(body.as_bytes()).unwrap();
            assert!(parsed.stream);
            assert_eq!(parsed.client_wants_usage, wants_usage, "{body}");
            assert_eq!(
                String::from_utf8(parsed.upstream_body("u", add)).unwrap(),
                want
            );
        }
    }

    #[test]
    fn reads_routing_fields() {
        let body = br#"{"model":"m","n":3,"max_tokens":100,"messages":[{"role":"user","content":"12345678"}]}"#;
        let parsed = RequestBody::parse(body).unwrap();
        assert_eq!(parsed.n, Some(3));
        assert!(!parsed.stream);
        assert_eq!(parsed.max_tokens, Some(100));
        assert!(parsed.require("messages").is_ok());
        assert!(matches!(
            parsed.require("input"),
            Err(ApiError::MissingParam { param: "input" })
        ));
        // 40 bytes of messages → 10 tokens, plus 100
        assert_eq!(parsed.token_estimate(), 110);
    }

    #[test]
    fn escaped_keys_and_duplicate_models() {
        let parsed = RequestBody::parse(br#"{"mod\u0065l":"a","model":"b"}"#).unwrap();
        assert_eq!(parsed.model().unwrap(), "b");
        assert_eq!(
            parsed.upstream_body("c", false),
            br#"{"model":"c","model":"c"}"#.to_vec()
        );
    }
}
