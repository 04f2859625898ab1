//! Removing our own upstream credential from what an upstream sends back. Some servers and
//! debugging proxies echo the request headers in their error bodies; relaying that answer
//! as-is would hand the endpoint's API key to the client.

use std::borrow::Cow;

use http::HeaderValue;

/// Secrets this short are hidden whole, since their tail would give too much away.
const SHOW_TAIL_FROM: usize = 9;

/// The secret inside our `Authorization` value (`Bearer <secret>`), or the whole value.
pub fn secret_of(authorization: &HeaderValue) -> &[u8] {
    let bytes = authorization.as_bytes();
    bytes.strip_prefix(b"Bearer ").unwrap_or(bytes)
}

/// What a secret is shown as: `****` and, for secrets longer than eight bytes, its last four.
pub fn masked(secret: &[u8]) -> Vec<u8> {
    let mut out = b"****".to_vec();
    if secret.len() >= SHOW_TAIL_FROM {
        out.extend_from_slice(&secret[secret.len() - 4..]);
    }
    out
}

/// `text` with every occurrence of `secret` replaced by its masked form; borrowed when none.
pub fn redact<'a>(text: &'a [u8], secret: &[u8]) -> Cow<'a, [u8]> {
    if secret.is_empty() || memchr::memmem::find(text, secret).is_none() {
        return Cow::Borrowed(text);
    }
    let mask = masked(secret);
    let mut out = Vec::with_capacity(text.len());
    let mut last = 0;
    for at in memchr::memmem::find_iter(text, secret) {
        // Overlapping matches (a secret like `aaaa`) are already covered by the previous one.
        if at < last {
            continue;
        }
        out.extend_from_slice(&text[last..at]);
        out.extend_from_slice(&mask);
        last = at + secret.len();
    }
    out.extend_from_slice(&text[last..]);
    Cow::Owned(out)
}

/// Whether a header value carries `secret` (such a header is dropped, not relayed).
pub fn carries(value: &HeaderValue, secret: &[u8]) -> bool {
    !secret.is_empty() && memchr::memmem::find(value.as_bytes(), secret).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_echo_of_the_secret_is_masked() {
        let key = b"sk-upstream-0123456789abcd";
        let cases: [(&[u8], &[u8]); 5] = [
            (b"no secret here", b"no secret here"),
            (
                b"{\"message\":\"bad key Bearer sk-upstream-0123456789abcd\"}",
                b"{\"message\":\"bad key Bearer ****abcd\"}",
            ),
            (
                b"sk-upstream-0123456789abcd and sk-upstream-0123456789abcd",
                b"****abcd and ****abcd",
            ),
            (b"sk-upstream-0123456789abc", b"sk-upstream-0123456789abc"),
            (b"", b""),
        ];
        for (text, want) in cases {
            assert_eq!(
                redact(text, key).as_ref(),
                want,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(redact(b"xx aaaaa", b"aaaa").as_ref(), b"xx ****a");
        assert_eq!(redact(b"anything", b"").as_ref(), b"anything");
    }

    #[test]
    fn secret_is_read_from_a_bearer_value() {
        let v = HeaderValue::from_static("Bearer sk-1");
        assert_eq!(secret_of(&v), b"sk-1");
        let raw = HeaderValue::from_static("token");
        assert_eq!(secret_of(&raw), b"token");
        assert!(carries(&HeaderValue::from_static("x sk-1 y"), b"sk-1"));
        assert!(!carries(&HeaderValue::from_static("x"), b""));
    }
}
