//! A secret string (a client key, an upstream API key, a join token) that never prints itself:
//! the one `Secret` the edge's and the node agent's configs share.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret string whose `Debug` shows only its last four characters (nothing of a short one).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends or checks it; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// `secret` as a log line may show it: `****` and its last four characters, or only `****` when
/// it has eight or fewer (its tail would give too much of it away); empty stays empty.
pub fn redact(secret: &str) -> String {
    let len = secret.chars().count();
    match len {
        0 => String::new(),
        1..=8 => "****".to_owned(),
        _ => format!("****{}", secret.chars().skip(len - 4).collect::<String>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_at_most_the_tail() {
        let cases = [
            ("", ""),
            ("hunter2", "****"),
            ("12345678", "****"),
            ("sy_live_supersecretvalue", "****alue"),
            ("sk-ünïcödé-tail", "****tail"),
        ];
        for (secret, shown) in cases {
            assert_eq!(format!("{:?}", Secret::new(secret)), shown, "{secret:?}");
        }
    }

    #[test]
    fn serializes_as_the_bare_string() {
        let s: Secret = serde_json::from_str("\"sk-abc\"").unwrap();
        assert_eq!(s.expose(), "sk-abc");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"sk-abc\"");
    }
}
