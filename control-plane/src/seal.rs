//! Secrets: the cluster key that seals upstream credentials stored by value, client-key
//! generation and hashing.
//!
//! A credential declared by value is sealed (ChaCha20-Poly1305, random nonce) by the voter that
//! proposes it, so the raft log, snapshots and backups hold only ciphertext; it is opened only
//! into the routing table sent to edges. Every voter of a cluster needs the same key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{self, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Error;

/// Prefix of client keys, so a leaked one is recognisable.
pub const CLIENT_KEY_PREFIX: &str = "sy_live_";

/// The symmetric key sealing credentials at rest.
pub struct ClusterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(****)")
    }
}

impl ClusterKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| Error::Config {
            field: "cluster_key",
            reason: "must be 32 bytes (base64url-encoded in files and env)".into(),
        })?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// A key from its base64url text (padding and surrounding whitespace allowed).
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim().trim_end_matches('='))
            .map_err(|e| Error::Config {
                field: "cluster_key",
                reason: format!("is not base64url: {e}"),
            })?;
        Self::from_bytes(&bytes)
    }

    /// Loads the key file at `path`, creating it with a fresh random key (mode 0600) when
    /// `create` and it does not exist.
    pub fn load_or_create(path: &Path, create: bool) -> Result<Self, Error> {
        let data_dir = |source| Error::DataDir {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_text(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut bytes = [0u8; 32];
                random(&mut bytes)?;
                let text = URL_SAFE_NO_PAD.encode(bytes);
                write_private(path, text.as_bytes()).map_err(data_dir)?;
                tracing::info!(path = %path.display(), "created a new cluster key; copy it to every voter");
                Self::from_bytes(&bytes)
            }
            Err(e) => Err(data_dir(e)),
        }
    }

    /// Seals `plain` into base64url(nonce || ciphertext || tag).
    pub fn seal(&self, plain: &str) -> Result<String, Error> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        random(&mut nonce)?;
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                aead::Aad::empty(),
                &mut buf,
            )
            .map_err(|_| Error::Crypto("sealing a credential failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`ClusterKey::seal`] made; `None` for a wrong key or damaged text.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < aead::NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(aead::NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, aead::Aad::empty(), &mut rest)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

/// Fills `buf` from the system's secure random source.
pub fn random(buf: &mut [u8]) -> Result<(), Error> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::Crypto("the system random source failed".into()))
}

/// A random id of `bytes` random bytes, base64url.
pub fn random_id(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    random(&mut buf)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// Lowercase hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new client key: `sy_live_` + 32 random bytes in base64url.
pub fn new_client_secret() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    random(&mut bytes)?;
    Ok(format!(
        "{CLIENT_KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The last four characters of a secret, shown in listings.
pub fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = ClusterKey::from_bytes(&[7u8; 32]).unwrap();
        let other = ClusterKey::from_bytes(&[8u8; 32]).unwrap();
        let sealed = key.seal("gsk_secret").unwrap();
        assert!(!sealed.contains("gsk_secret"));
        assert_eq!(key.open(&sealed).as_deref(), Some("gsk_secret"));
        assert_eq!(other.open(&sealed), None);
        assert_eq!(key.open("garbage!"), None);
        assert_ne!(key.seal("gsk_secret").unwrap(), sealed, "nonces differ");
    }

    #[test]
    fn key_text_and_files() {
        assert!(ClusterKey::from_text("short").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.key");
        assert!(ClusterKey::load_or_create(&path, false).is_err());
        let a = ClusterKey::load_or_create(&path, true).unwrap();
        let b = ClusterKey::load_or_create(&path, false).unwrap();
        assert_eq!(b.open(&a.seal("x").unwrap()).as_deref(), Some("x"));
        assert_eq!(format!("{a:?}"), "ClusterKey(****)");
    }

    #[test]
    fn client_secrets_have_prefix_and_hash() {
        let s = new_client_secret().unwrap();
        assert!(s.starts_with(CLIENT_KEY_PREFIX));
        assert_eq!(s.len(), CLIENT_KEY_PREFIX.len() + 43);
        assert_eq!(sha256_hex("abc").len(), 64);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(last4("sy_live_abcdef"), "cdef");
        assert_eq!(last4("ab"), "ab");
    }
}
