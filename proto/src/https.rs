//! HTTPS for the HTTP listeners (the edge's `/v1`, the control plane's admin API), for a LAN
//! or tailnet with no terminating proxy in front: a certificate chain and its key (PEM), no
//! client certificates. Unlike the gRPC mutual TLS in [`crate::tls`], which re-reads its files
//! on reconnect, a listener lives for the process; so every handshake compares the two files'
//! modification times and sizes with what was loaded, and reads them again when they differ.
//! A renewed certificate (cert-manager, a Secret update, `certs init` again) is served to the
//! next new connection; connections already open keep theirs. A pair that does not load (half
//! written, key not matching) is logged and the last good one stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::tls::TlsError;

/// A listener's certificate chain and private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM). Its contents are never logged.
    pub key: PathBuf,
}

impl HttpsFiles {
    /// Both files, neither (plain HTTP), or an error naming the missing one. `flags` names
    /// them for the message, e.g. `"--https-cert and --https-key"`.
    pub fn from_parts(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        flags: &'static str,
    ) -> Result<Option<Self>, TlsError> {
        match (cert, key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (cert, _) => Err(TlsError::Incomplete {
                flags,
                missing: if cert.is_none() {
                    "the certificate"
                } else {
                    "the key"
                },
            }),
        }
    }

    /// The acceptor for a role's `https_cert`/`https_key` settings: `None` for plain HTTP, or
    /// an error as (the setting it is about, why), for the role's own config error.
    pub fn acceptor_for(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> Result<Option<TlsAcceptor>, (&'static str, String)> {
        let invalid = |e: TlsError| {
            let field = if e.field() == "tls_key" {
                "https_key"
            } else {
                "https_cert"
            };
            (field, e.reason())
        };
        let files = Self::from_parts(cert, key, "https_cert and https_key").map_err(invalid)?;
        files.map(|f| f.acceptor().map_err(invalid)).transpose()
    }

    /// Loads the pair now (so a bad file fails at start, naming it) and returns an acceptor
    /// that offers HTTP/2 and HTTP/1.1 and picks up a changed pair on the next handshake.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = ReloadingCert::load(self.clone(), provider.clone())?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// What identifies one version of a file on disk: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    // `metadata` follows symlinks, so a Kubernetes Secret volume's `..data` swap shows.
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The pair in service and the stamps of the files it was read from.
#[derive(Debug)]
struct Loaded {
    stamps: [Stamp; 2],
    key: Arc<CertifiedKey>,
}

/// Serves the last pair that loaded; reloads when either file's stamp changes.
#[derive(Debug)]
pub struct ReloadingCert {
    files: HttpsFiles,
    provider: Arc<CryptoProvider>,
    loaded: RwLock<Loaded>,
}

impl ReloadingCert {
    /// Reads the pair, failing with the file at fault.
    pub fn load(files: HttpsFiles, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = [stamp(&files.cert), stamp(&files.key)];
        let key = read_pair(&files, &provider)?;
        Ok(Self {
            files,
            provider,
            loaded: RwLock::new(Loaded { stamps, key }),
        })
    }

    /// The pair to offer now: the loaded one, or the files again when they changed since.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let stamps = [stamp(&self.files.cert), stamp(&self.files.key)];
        {
            let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
            if loaded.stamps == stamps {
                return loaded.key.clone();
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        if loaded.stamps == stamps {
            return loaded.key.clone();
        }
        // The stamps are kept even when the read fails, so a broken pair is tried (and
        // logged) once per change, not on every handshake.
        loaded.stamps = stamps;
        match read_pair(&self.files, &self.provider) {
            Ok(key) => {
                tracing::info!(cert = %self.files.cert.display(), "HTTPS certificate reloaded");
                loaded.key = key;
            }
            Err(e) => tracing::warn!(
                error = %e.reason(),
                "HTTPS certificate changed but does not load; still serving the previous one"
            ),
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn read_pair(files: &HttpsFiles, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path, what: &'static str| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.display().to_string(),
            source,
        })
    };
    let not_pem = |path: &Path, kind: &'static str| TlsError::NotPem {
        path: path.display().to_string(),
        kind,
    };
    let cert_pem = read(&files.cert, "certificate")?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| not_pem(&files.cert, "CERTIFICATE"))?;
    if certs.is_empty() {
        return Err(not_pem(&files.cert, "CERTIFICATE"));
    }
    let key_pem = read(&files.key, "key")?;
    let key =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| not_pem(&files.key, "PRIVATE KEY"))?;
    let certified = CertifiedKey::from_der(certs, key, provider)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", files.key.display())))?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.cert[0].as_ref().to_vec()
    }

    #[test]
    fn both_files_or_neither() {
        let p = |s: &str| Some(PathBuf::from(s));
        let flags = "--https-cert and --https-key";
        assert_eq!(HttpsFiles::from_parts(None, None, flags).ok(), Some(None));
        assert!(matches!(
            HttpsFiles::from_parts(p("c"), p("k"), flags),
            Ok(Some(_))
        ));
        for (cert, key, missing) in [(None, p("k"), "the certificate"), (p("c"), None, "the key")] {
            match HttpsFiles::from_parts(cert, key, flags) {
                Err(TlsError::Incomplete { missing: got, .. }) => assert_eq!(got, missing),
                other => panic!("expected Incomplete, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let files = HttpsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let (cert, key) = pair("one.test");
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = ReloadingCert::load(files.clone(), provider).unwrap();
        let first = leaf(&resolver.current());
        assert_eq!(
            leaf(&resolver.current()),
            first,
            "unchanged files are not reread"
        );

        // A longer name, so the files differ in size even within one mtime tick.
        let (cert2, key2) = pair("two.example.test");
        std::fs::write(&files.cert, &cert2).unwrap();
        std::fs::write(&files.key, &key2).unwrap();
        let second = leaf(&resolver.current());
        assert_ne!(second, first, "the new pair is served");

        // A certificate whose key is still the old one: the last good pair stays.
        std::fs::write(&files.cert, &cert).unwrap();
        assert_eq!(leaf(&resolver.current()), second);
        std::fs::write(&files.cert, "garbage").unwrap();
        assert_eq!(leaf(&resolver.current()), second);
    }

    #[test]
    fn bad_files_fail_at_start_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = HttpsFiles {
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("missing.key"),
        };
        std::fs::write(&files.cert, pair("x.test").0).unwrap();
        match files.acceptor() {
            Err(e @ TlsError::Read { .. }) => assert!(e.to_string().contains("missing.key")),
            other => panic!("expected a read error, got {:?}", other.err()),
        }
        std::fs::write(&files.key, "not a key").unwrap();
        assert!(matches!(files.acceptor(), Err(TlsError::NotPem { .. })));
    }
}
