//! Property tests of the request-body parser and rewrite: any bytes and any JSON value are
//! handled without a panic, and a valid body comes out with only `model` changed. 256 cases
//! per property by default; `PROPTEST_CASES=100000` runs longer (see docs/reliability.md).

use proptest::prelude::*;
use serde_json::{Map, Value};
use switchyard_edge::ApiError;
use switchyard_edge::upstream::RequestBody;

/// Any JSON value, nested up to a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Exercises every reader of a parsed body; none may panic.
fn read_everything(body: &RequestBody<'_>) {
    let _model = body.model();
    for param in ["messages", "prompt", "input"] {
        let _present = body.require(param);
    }
    let _estimate = body.token_estimate();
    for add_usage in [false, true] {
        let out = body.upstream_body("rewritten", add_usage);
        // Whatever was accepted is forwarded as an object the upstream can parse (values are
        // passed on verbatim, so only a value serde_json rejects, e.g. a lone surrogate, may
        // make it unparsable).
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&out) {
            if map.contains_key("model") {
                assert_eq!(map["model"], "rewritten");
            }
            if add_usage {
                assert_eq!(map["stream_options"]["include_usage"], true);
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(body) = RequestBody::parse(&bytes) {
            read_everything(&body);
        }
    }

    #[test]
    fn json_like_bytes_never_panic(text in r#"[\[\]{}",:0-9a-z\\ .eE+\-]{0,200}"#) {
        if let Ok(body) = RequestBody::parse(text.as_bytes()) {
            read_everything(&body);
        }
    }

    #[test]
    fn any_json_value_is_accepted_exactly_when_it_is_an_object(value in json()) {
        let text = serde_json::to_vec(&value).unwrap();
        match (RequestBody::parse(&text), &value) {
            (Ok(body), Value::Object(_)) => read_everything(&body),
            (Err(ApiError::NotAnObject), v) => prop_assert!(!v.is_object()),
            (result, _) => prop_assert!(false, "{value}: {result:?}"),
        }
    }

    /// A valid body keeps every other field byte for byte, in order, with `model` rewritten.
    #[test]
    fn only_model_is_rewritten(
        fields in prop::collection::btree_map(any::<String>(), json(), 0..8),
        model in any::<String>(),
        upstream in any::<String>(),
        pretty in any::<bool>(),
    ) {
        let mut original: Map<String, Value> = fields.into_iter().collect();
        original.insert("model".to_owned(), Value::String(model.clone()));
        let text = if pretty {
            serde_json::to_vec_pretty(&original).unwrap()
        } else {
            serde_json::to_vec(&original).unwrap()
        };
        let body = RequestBody::parse(&text).unwrap();
        prop_assert_eq!(body.model().unwrap(), model);
        let out = body.upstream_body(&upstream, false);
        let mut expected = original.clone();
        expected.insert("model".to_owned(), Value::String(upstream.clone()));
        // Compared as parsed from text on both sides: serde_json's float parsing may differ
        // from the generated value in the last digit.
        let expected_value: Value = serde_json::from_str(&serde_json::to_string(&expected).unwrap()).unwrap();
        if pretty {
            let got: Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&got, &expected_value);
        } else {
            // Compact in, compact out: the very same bytes but for the model's value.
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&expected).unwrap()
            );
        }
        let with_usage: Value = serde_json::from_slice(&body.upstream_body(&upstream, true)).unwrap();
        prop_assert_eq!(&with_usage["stream_options"]["include_usage"], &Value::Bool(true));
        for (key, value) in expected_value.as_object().unwrap() {
            if key != "stream_options" {
                prop_assert_eq!(&with_usage[key.as_str()], value);
            }
        }
    }
}

/// Found while writing these properties: an object whose key cannot be decoded (a lone
/// surrogate escape) was answered "must be a JSON object"; it is reported as invalid JSON.
#[test]
fn an_undecodable_key_is_invalid_json_not_a_non_object() {
    match RequestBody::parse(br#"{"\ud800":1,"model":"m"}"#) {
        Err(ApiError::InvalidJson { reason }) => assert!(reason.contains("escape"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        RequestBody::parse(b" [1]"),
        Err(ApiError::NotAnObject)
    ));
}
