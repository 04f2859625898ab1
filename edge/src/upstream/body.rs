//! The forwarded request body: reads the fields routing needs and rewrites only `model`,
//! keeping every other field's bytes and order as the client sent them.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::ApiError;

/// A client's JSON object body, split into top-level fields whose values stay unparsed.
#[derive(Debug)]
pub struct RequestBody<'a> {
    fields: Vec<(String, &'a RawValue)>,
}

impl<'a> RequestBody<'a> {
    /// Parses `bytes` as a JSON object; not JSON or not an object is the client's error.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ApiError> {
        // Validate the whole document first so "not JSON" and "not an object" read differently.
        let raw: &'a RawValue =
            serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidJson {
                reason: e.to_string(),
            })?;
        let Fields(fields) = serde_json::from_str(raw.get()).map_err(|_| ApiError::NotAnObject)?;
        Ok(Self { fields })
    }

    /// The `model` the client asked for; absent or not a string is the client's error.
    /// With duplicate keys the last wins, as in most JSON parsers.
    pub fn model(&self) -> Result<String, ApiError> {
        let raw = self
            .fields
            .iter()
            .rev()
            .find(|(key, _)| key == "model")
            .map(|(_, value)| *value)
            .ok_or(ApiError::MissingModel)?;
        serde_json::from_str::<String>(raw.get()).map_err(|_| ApiError::MissingModel)
    }

    /// The body to send upstream: the same fields in the same order, with `model` replaced.
    pub fn with_model(&self, model: &str) -> Vec<u8> {
        let model_json = serde_json::Value::from(model).to_string();
        let mut out = Vec::with_capacity(
            self.fields
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
                + model_json.len(),
        );
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(serde_json::Value::from(key.as_str()).to_string().as_bytes());
            out.push(b':');
            let value = if key == "model" {
                model_json.as_str()
            } else {
                value.get()
            };
            out.extend_from_slice(value.as_bytes());
        }
        out.push(b'}');
        out
    }
}

/// Top-level object fields in document order, values borrowed unparsed.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

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
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
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
        let out = String::from_utf8(parsed.with_model("up\"stream")).unwrap();
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
    fn escaped_keys_and_duplicate_models() {
        let parsed = RequestBody::parse(br#"{"mod\u0065l":"a","model":"b"}"#).unwrap();
        assert_eq!(parsed.model().unwrap(), "b");
        assert_eq!(
            parsed.with_model("c"),
            br#"{"model":"c","model":"c"}"#.to_vec()
        );
    }
}
