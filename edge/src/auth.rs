//! Client authentication: keys checked against the table's SHA-256 hashes in constant time,
//! the bootstrap key, expiry, revocation and allowed-model globs.
//!
//! A key is accepted in whatever format it was imported (LiteLLM's `master_key`, LLMProxy's
//! and lmrelay's tokens, `switchyard keys import`): only its hash decides. `sy_live_`/`sy_test_`
//! is the format of keys Switchyard mints; it only shapes the error for a key that is not found.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchyard_proto::v1;

use crate::error::ApiError;

/// Prefixes every Switchyard client key starts with.
pub const KEY_PREFIXES: [&str; 2] = ["sy_live_", "sy_test_"];
/// Shortest random part accepted after the prefix.
const MIN_RANDOM_LEN: usize = 16;

/// A SHA-256 digest of a full secret key.
pub type KeyHash = [u8; 32];

/// Hashes a presented secret the way the control plane stores it.
pub fn hash(secret: &str) -> KeyHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// Checks the shape of a key (prefix and random part), without looking it up.
pub fn check_format(secret: &str) -> Result<(), &'static str> {
    let Some(random) = KEY_PREFIXES.iter().find_map(|p| secret.strip_prefix(p)) else {
        return Err("the key does not start with sy_live_ or sy_test_");
    };
    if random.len() < MIN_RANDOM_LEN {
        return Err("the key is too short");
    }
    if !random
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("the key holds characters other than letters, digits, `_` and `-`");
    }
    Ok(())
}

/// A client key as the edge enforces it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    /// Short public id, safe for logs and metrics.
    pub id: Arc<str>,
    /// SHA-256 of the secret.
    pub sha256: KeyHash,
    /// Model globs the key may use; empty means every model.
    pub allowed_models: Vec<String>,
    /// Unix ms after which the key is refused; 0 = never.
    pub expires_at_ms: i64,
    /// Revoked keys are refused.
    pub revoked: bool,
    /// Most requests in flight at once, across all edges; 0 = unlimited.
    pub max_concurrent: u32,
    /// Requests per minute, across all edges; 0 = unlimited.
    pub rpm: u64,
    /// Tokens per minute (prompt estimate + max_tokens), across all edges; 0 = unlimited.
    pub tpm: u64,
    /// Requests per day, across all edges; 0 = unlimited.
    pub rpd: u64,
    /// Money per UTC day in billionths of a US dollar, across all edges; 0 = no budget.
    pub budget_day_nanos: u64,
    /// Money per UTC calendar month in billionths of a US dollar; 0 = no budget.
    pub budget_month_nanos: u64,
}

impl ClientKey {
    /// Compiles a wire key; `None` when its hash is not 32 bytes (such a key can never match).
    pub fn compile(wire: &v1::ClientKey) -> Option<Self> {
        let sha256: KeyHash = wire.sha256.as_slice().try_into().ok()?;
        Some(Self {
            id: Arc::from(wire.id.as_str()),
            sha256,
            allowed_models: wire.allowed_models.clone(),
            expires_at_ms: wire.expires_at_ms,
            revoked: wire.revoked,
            max_concurrent: wire.limits.as_ref().map_or(0, |l| l.max_concurrent),
            rpm: wire.limits.as_ref().map_or(0, |l| l.rpm),
            tpm: wire.limits.as_ref().map_or(0, |l| l.tpm),
            rpd: wire.limits.as_ref().map_or(0, |l| l.rpd),
            budget_day_nanos: crate::limits::spend::usd_to_nanos(wire.budget_usd_per_day),
            budget_month_nanos: crate::limits::spend::usd_to_nanos(wire.budget_usd_per_month),
        })
    }

    /// Whether the key may use the model named `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.allowed_models.is_empty() || self.allowed_models.iter().any(|g| glob(g, model))
    }
}

/// The table's keys, looked up by hash.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyStore {
    by_hash: HashMap<KeyHash, Arc<ClientKey>>,
}

impl KeyStore {
    /// Compiles the wire keys; keys with malformed hashes are skipped.
    pub fn compile(keys: &[v1::ClientKey]) -> Self {
        let by_hash = keys
            .iter()
            .filter_map(ClientKey::compile)
            .map(|k| (k.sha256, Arc::new(k)))
            .collect();
        Self { by_hash }
    }

    /// Whether the cluster has no keys at all.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    /// Nobody: the edge serves without keys (none configured, loopback or `insecure_no_auth`).
    Open,
    /// The bootstrap key from the edge's config.
    Bootstrap,
    /// A key from the table.
    Key(Arc<ClientKey>),
}

impl Principal {
    /// Whether this caller may use `model` (any of the names it resolves through).
    pub fn allows(&self, model: &str) -> bool {
        match self {
            Self::Open | Self::Bootstrap => true,
            Self::Key(key) => key.allows(model),
        }
    }

    /// A bounded label naming the caller for logs: the key id, never the secret.
    pub fn id(&self) -> &str {
        match self {
            Self::Open => "-",
            Self::Bootstrap => "bootstrap",
            Self::Key(key) => &key.id,
        }
    }
}

/// Headers a key may arrive in besides `Authorization: Bearer`: Anthropic's clients send
/// `x-api-key`, Azure OpenAI's send `api-key`.
const KEY_HEADERS: [&str; 2] = ["x-api-key", "api-key"];

/// The secret a request presents: `Authorization: Bearer …`, else `x-api-key`, else
/// `api-key`. `Err(())` when the Authorization header is present but not a bearer token.
fn presented(headers: &HeaderMap) -> Result<Option<&str>, ()> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ())?.trim();
        if value.is_empty() || value.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let (scheme, token) = value.split_once(' ').ok_or(())?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(());
        }
        return Ok(Some(token.trim()));
    }
    Ok(KEY_HEADERS
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::trim))
}

/// Authenticates a request against `keys` and the optional bootstrap key hash at `now_ms`.
/// With neither, the edge is open (its start-up checks made sure that is allowed).
pub fn authenticate(
    headers: &HeaderMap,
    keys: &KeyStore,
    bootstrap: Option<&KeyHash>,
    now_ms: i64,
) -> Result<Principal, ApiError> {
    if keys.is_empty() && bootstrap.is_none() {
        return Ok(Principal::Open);
    }
    let secret = match presented(headers) {
        Ok(Some(secret)) if !secret.is_empty() => secret,
        Ok(_) => return Err(ApiError::AuthMissing),
        Err(()) => return Err(ApiError::AuthMalformed),
    };
    let digest = hash(secret);
    if let Some(boot) = bootstrap
        && bool::from(boot.ct_eq(&digest))
    {
        return Ok(Principal::Bootstrap);
    }
    // The map finds the candidate by digest (timing depends only on the digest, not on the
    // secret); the constant-time compare then decides.
    let Some(key) = keys
        .by_hash
        .get(&digest)
        .filter(|k| bool::from(k.sha256.ct_eq(&digest)))
    else {
        // Not found: a key in our own format is a wrong or deleted key; anything else may be
        // a key from another gateway that was never imported, so say how to import it.
        return Err(match check_format(secret) {
            Ok(()) => ApiError::AuthUnknown,
            Err(_) => ApiError::AuthMalformed,
        });
    };
    if key.revoked {
        return Err(ApiError::AuthRevoked);
    }
    if key.expires_at_ms != 0 && now_ms >= key.expires_at_ms {
        return Err(ApiError::AuthExpired {
            at_ms: key.expires_at_ms,
        });
    }
    Ok(Principal::Key(key.clone()))
}

pub use switchyard_proto::glob;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "sy_live_0123456789abcdefXYZ";

    fn store(keys: Vec<v1::ClientKey>) -> KeyStore {
        KeyStore::compile(&keys)
    }

    fn wire_key(secret: &str, f: impl FnOnce(&mut v1::ClientKey)) -> v1::ClientKey {
        let mut k = v1::ClientKey {
            id: "k1".into(),
            sha256: hash(secret).to_vec(),
            name: "test".into(),
            ..Default::default()
        };
        f(&mut k);
        k
    }

    fn bearer(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, v.parse().unwrap());
        h
    }

    fn outcome(r: Result<Principal, ApiError>) -> String {
        match r {
            Ok(Principal::Open) => "open".into(),
            Ok(Principal::Bootstrap) => "bootstrap".into(),
            Ok(Principal::Key(k)) => format!("key:{}", k.id),
            Err(e) => format!("{e:?}")
                .split([' ', '{'])
                .next()
                .unwrap()
                .to_owned(),
        }
    }

    #[test]
    fn authenticate_table() {
        let other = "sy_test_zzzzzzzzzzzzzzzzzzzz";
        let keys = store(vec![
            wire_key(GOOD, |_| {}),
            wire_key("sy_live_revokedrevokedrevoked", |k| {
                k.id = "k2".into();
                k.revoked = true;
            }),
            wire_key("sy_live_expiredexpiredexpired", |k| {
                k.id = "k3".into();
                k.expires_at_ms = 1_000;
            }),
        ]);
        let boot = hash(other);
        let none = KeyStore::default();
        let imported = store(vec![wire_key("sk-litellm-local", |k| {
            k.id = "master".into()
        })]);
        // (headers, keys, bootstrap, now) → outcome
        let cases: Vec<(HeaderMap, &KeyStore, Option<&KeyHash>, i64, &str)> = vec![
            (HeaderMap::new(), &none, None, 0, "open"),
            (bearer("Bearer junk"), &none, None, 0, "open"),
            (HeaderMap::new(), &keys, None, 0, "AuthMissing"),
            (bearer("Bearer "), &keys, None, 0, "AuthMissing"),
            (bearer("Basic abc"), &keys, None, 0, "AuthMalformed"),
            (bearer("Bearer sk-openai"), &keys, None, 0, "AuthMalformed"),
            (
                bearer("Bearer sk-litellm-local"),
                &imported,
                None,
                0,
                "key:master",
            ),
            (
                bearer("Bearer sk-litellm-locaX"),
                &imported,
                None,
                0,
                "AuthMalformed",
            ),
            (
                bearer("Bearer sy_live_short"),
                &keys,
                None,
                0,
                "AuthMalformed",
            ),
            (
                bearer("Bearer sy_live_0123456789abcdefXYW"),
                &keys,
                None,
                0,
                "AuthUnknown",
            ),
            (bearer(&format!("Bearer {GOOD}")), &keys, None, 0, "key:k1"),
            (bearer(&format!("bearer  {GOOD}")), &keys, None, 0, "key:k1"),
            (
                bearer("Bearer sy_live_revokedrevokedrevoked"),
                &keys,
                None,
                0,
                "AuthRevoked",
            ),
            (
                bearer("Bearer sy_live_expiredexpiredexpired"),
                &keys,
                None,
                999,
                "key:k3",
            ),
            (
                bearer("Bearer sy_live_expiredexpiredexpired"),
                &keys,
                None,
                1_000,
                "AuthExpired",
            ),
            (
                bearer(&format!("Bearer {other}")),
                &none,
                Some(&boot),
                0,
                "bootstrap",
            ),
            (HeaderMap::new(), &none, Some(&boot), 0, "AuthMissing"),
            (
                bearer(&format!("Bearer {GOOD}")),
                &none,
                Some(&boot),
                0,
                "AuthUnknown",
            ),
        ];
        for (i, (headers, keys, boot, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                outcome(authenticate(&headers, keys, boot, now)),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn anthropic_and_azure_key_headers_are_accepted() {
        let keys = store(vec![wire_key("free-form token 42", |_| {})]);
        for name in ["x-api-key", "api-key"] {
            let mut h = HeaderMap::new();
            h.insert(name, "free-form token 42".parse().unwrap());
            assert_eq!(
                outcome(authenticate(&h, &keys, None, 0)),
                "key:k1",
                "{name}"
            );
        }
    }

    #[test]
    fn globs() {
        let cases = [
            ("*", "anything", true),
            ("llama*", "llama3.1-8b", true),
            ("llama*", "mistral", false),
            ("groq/*", "groq/llama3", true),
            ("groq/*", "openai/gpt", false),
            ("gpt-4?", "gpt-4o", true),
            ("gpt-4?", "gpt-4", false),
            ("*-mini", "gpt-4o-mini", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("exact", "exact", true),
            ("", "", true),
            ("", "x", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob(p, n), want, "{p} vs {n}");
        }
        let key = ClientKey::compile(&wire_key(GOOD, |k| {
            k.allowed_models = vec!["llama*".into(), "embed".into()]
        }))
        .unwrap();
        assert!(key.allows("llama3") && key.allows("embed") && !key.allows("gpt-4o"));
    }

    #[test]
    fn key_formats() {
        assert!(check_format(GOOD).is_ok());
        assert!(check_format("sy_test_abcdefghijklmnop").is_ok());
        assert!(check_format("sy_prod_abcdefghijklmnop").is_err());
        assert!(check_format("sy_live_abc").is_err());
        assert!(check_format("sy_live_abcdefghijklmnop!").is_err());
    }

    #[test]
    fn malformed_hashes_never_match() {
        let mut k = wire_key(GOOD, |_| {});
        k.sha256.truncate(5);
        assert!(store(vec![k]).is_empty());
    }
}
