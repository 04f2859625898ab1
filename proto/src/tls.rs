//! Mutual TLS for Switchyard's gRPC links (agent → control plane, edge → control plane, voter
//! → voter): one CA, and a certificate and key per node, usually made by `switchyard certs
//! init`. A server built from [`TlsFiles`] accepts only clients presenting a certificate that
//! CA signed; a client presents its own and checks the server's against the same CA.
//!
//! Files are read each time a channel or server is built, so a renewed certificate is picked
//! up on the next reconnect.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only some of the three files were given.
    #[error("mutual TLS needs all of {flags}; {missing} is missing")]
    Incomplete {
        /// The flags (or fields) that go together.
        flags: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {what} {path}")]
    Read {
        /// Which file it is (CA certificate, certificate, key).
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM block of the expected kind.
    #[error("{path} holds no PEM {kind}")]
    NotPem {
        /// The file.
        path: String,
        /// What was expected (`CERTIFICATE`, `PRIVATE KEY`).
        kind: &'static str,
    },
    /// The URL is not one tonic accepts.
    #[error("invalid gRPC URL {url:?}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// rustls refused the settings or the key (e.g. a key that is not the certificate's).
    #[error("{0}")]
    Rustls(String),
    /// tonic refused the TLS settings.
    #[error("cannot apply the TLS settings")]
    Config(#[source] tonic::transport::Error),
}

impl TlsError {
    /// The config field the problem is in: `tls_ca`, `tls_key`, or else `tls_cert`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Incomplete { missing, .. } if missing.contains("CA") => "tls_ca",
            Self::Incomplete { missing, .. } if missing.contains("key") => "tls_key",
            Self::Read { what, .. } if what.contains("CA") => "tls_ca",
            Self::Read { what, .. } if what.contains("key") => "tls_key",
            _ => "tls_cert",
        }
    }

    /// The message followed by every cause, for a config error's reason.
    pub fn reason(&self) -> String {
        let mut reason = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            reason = format!("{reason}: {c}");
            cause = c.source();
        }
        reason
    }
}

/// The CA certificate, this node's certificate and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate that signs every node's certificate.
    pub ca: PathBuf,
    /// This node's certificate.
    pub cert: PathBuf,
    /// This node's private key (PKCS#8 PEM). Its contents are never logged.
    pub key: PathBuf,
}

impl TlsFiles {
    /// All three files, none of them (plaintext), or an error naming the missing one.
    /// `flags` names them for the message, e.g. `"--tls-ca, --tls-cert and --tls-key"`.
    pub fn from_parts(
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        flags: &'static str,
    ) -> Result<Option<Self>, TlsError> {
        match (ca, cert, key) {
            (None, None, None) => Ok(None),
            (Some(ca), Some(cert), Some(key)) => Ok(Some(Self { ca, cert, key })),
            (ca, cert, _) => Err(TlsError::Incomplete {
                flags,
                missing: if ca.is_none() {
                    "the CA certificate"
                } else if cert.is_none() {
                    "the certificate"
                } else {
                    "the key"
                },
            }),
        }
    }

    /// From a config's `tls_ca`, `tls_cert` and `tls_key` fields (every role names them so).
    pub fn from_fields(
        ca: &Option<PathBuf>,
        cert: &Option<PathBuf>,
        key: &Option<PathBuf>,
    ) -> Result<Option<Self>, TlsError> {
        Self::from_parts(
            ca.clone(),
            cert.clone(),
            key.clone(),
            "tls_ca, tls_cert and tls_key",
        )
    }

    /// Reads and checks the three files, so a bad path fails at start, not at first connect.
    pub fn check(&self) -> Result<(), TlsError> {
        self.ca_certificate()?;
        self.identity()?;
        Ok(())
    }

    /// Server settings: this node's identity; clients must present a certificate the CA signed.
    pub fn server_config(&self) -> Result<ServerTlsConfig, TlsError> {
        Ok(ServerTlsConfig::new()
            .identity(self.identity()?)
            .client_ca_root(self.ca_certificate()?)
            .client_auth_optional(false))
    }

    /// Client settings: trust only the CA, and present this node's identity.
    pub fn client_config(&self) -> Result<ClientTlsConfig, TlsError> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(self.ca_certificate()?)
            .identity(self.identity()?))
    }

    fn ca_certificate(&self) -> Result<Certificate, TlsError> {
        Ok(Certificate::from_pem(read_pem(
            &self.ca,
            "CA certificate",
            "CERTIFICATE",
        )?))
    }

    fn identity(&self) -> Result<Identity, TlsError> {
        let cert = read_pem(&self.cert, "certificate", "CERTIFICATE")?;
        let key = read_pem(&self.key, "key", "PRIVATE KEY")?;
        Ok(Identity::from_pem(cert, key))
    }
}

/// Reads `path` and checks it holds a PEM block whose label ends with `kind`.
fn read_pem(path: &Path, what: &'static str, kind: &'static str) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let found = text.lines().any(|l| {
        l.strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
            .is_some_and(|label| label.ends_with(kind))
    });
    if !found {
        return Err(TlsError::NotPem {
            path: path.display().to_string(),
            kind,
        });
    }
    Ok(bytes)
}

/// `url` with `https://` when `tls` is set (an `http://` URL is upgraded, a bare `host:port`
/// gets the scheme), as given otherwise (`http://` added to a bare `host:port`).
pub fn url_for(url: &str, tls: bool) -> String {
    let url = url.trim();
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match (rest, tls) {
        (Some(rest), true) => format!("https://{rest}"),
        (None, true) => format!("https://{url}"),
        (Some(_), false) => url.to_owned(),
        (None, false) => format!("http://{url}"),
    }
}

/// A tonic endpoint for `url`: with `tls`, over https presenting this node's certificate;
/// without, as the URL says.
pub fn endpoint(url: &str, tls: Option<&TlsFiles>) -> Result<Endpoint, TlsError> {
    let url = url_for(url, tls.is_some());
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|source| TlsError::Url {
        url: url.clone(),
        source,
    })?;
    match tls {
        Some(files) => endpoint
            .tls_config(files.client_config()?)
            .map_err(TlsError::Config),
        None => Ok(endpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_tls_setting() {
        let cases = [
            ("http://cp:7700", true, "https://cp:7700"),
            ("https://cp:7700", true, "https://cp:7700"),
            ("cp:7700", true, "https://cp:7700"),
            ("http://cp:7700", false, "http://cp:7700"),
            ("https://cp:7700", false, "https://cp:7700"),
            ("10.0.0.5:7700", false, "http://10.0.0.5:7700"),
            (" http://[::1]:1 ", true, "https://[::1]:1"),
        ];
        for (url, tls, want) in cases {
            assert_eq!(url_for(url, tls), want, "{url} tls={tls}");
        }
    }

    #[test]
    fn all_three_files_or_none() {
        let p = |s: &str| Some(PathBuf::from(s));
        let flags = "--tls-ca, --tls-cert and --tls-key";
        assert_eq!(
            TlsFiles::from_parts(None, None, None, flags).ok(),
            Some(None)
        );
        assert!(matches!(
            TlsFiles::from_parts(p("ca"), p("c"), p("k"), flags),
            Ok(Some(_))
        ));
        for (ca, cert, key, missing) in [
            (None, p("c"), p("k"), "the CA certificate"),
            (p("ca"), None, p("k"), "the certificate"),
            (p("ca"), p("c"), None, "the key"),
        ] {
            match TlsFiles::from_parts(ca, cert, key, flags) {
                Err(TlsError::Incomplete { missing: got, .. }) => assert_eq!(got, missing),
                other => panic!("expected Incomplete, got {other:?}"),
            }
        }
    }

    #[test]
    fn unreadable_or_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("sy-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let files = TlsFiles {
            ca: junk.clone(),
            cert: dir.join("missing.pem"),
            key: junk.clone(),
        };
        assert!(matches!(files.check(), Err(TlsError::NotPem { .. })));
        let files = TlsFiles {
            ca: dir.join("missing.pem"),
            cert: junk.clone(),
            key: junk,
        };
        assert!(matches!(files.check(), Err(TlsError::Read { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
