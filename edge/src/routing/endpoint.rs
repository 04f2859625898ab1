//! Compiling an endpoint's wire facts from the table: its operation URIs and `host` header,
//! the fixed headers its requests carry, the parameters it refuses, and its credentials with
//! the header each goes in.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use switchyard_proto::v1;
use tracing::warn;

use super::table::{Credential, EndpointKind, USER_AGENT};

/// The three operation URIs under `base`, each with `query` (Azure's `api-version`) when
/// set; a bad base URL is logged and leaves none.
pub(super) fn operation_uris(id: &str, base: &str, query: &str) -> Option<[http::Uri; 3]> {
    let parse = |path: &str| {
        if query.is_empty() {
            format!("{base}{path}").parse::<http::Uri>()
        } else {
            format!("{base}{path}?{query}").parse::<http::Uri>()
        }
    };
    match (
        parse("/chat/completions"),
        parse("/completions"),
        parse("/embeddings"),
    ) {
        (Ok(a), Ok(b), Ok(c)) if a.scheme().is_some() && a.host().is_some() => Some([a, b, c]),
        _ => {
            warn!(endpoint = %id, "endpoint base URL is not a valid http(s) URL; it cannot be used");
            None
        }
    }
}

/// The `host` header a request to `uri` carries.
pub(super) fn host_header(uri: &http::Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    match uri.port_u16() {
        Some(port) if port != default_port => HeaderValue::from_str(&format!("{host}:{port}")).ok(),
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// What an endpoint refuses: the table's list, and `n` where the kind ignores it.
pub(super) fn unsupported_params(e: &v1::RouteEndpoint) -> Vec<String> {
    let mut out = e.unsupported_params.clone();
    if !EndpointKind::parse(&e.kind).supports_n() && !out.iter().any(|p| p == "n") {
        out.push("n".into());
    }
    out
}

/// The fixed headers of an endpoint's requests: its own, and a `user-agent` unless it sets
/// one. Names or values that are not valid headers are skipped with a warning.
pub(super) fn request_headers(e: &v1::RouteEndpoint) -> Vec<(HeaderName, HeaderValue)> {
    let mut out: Vec<(HeaderName, HeaderValue)> = e
        .headers
        .iter()
        .filter_map(|(name, value)| {
            match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
                (Ok(n), Ok(v)) => Some((n, v)),
                _ => {
                    warn!(endpoint = %e.id, header = %name, "endpoint header is not a valid header; skipped");
                    None
                }
            }
        })
        .collect();
    if !out.iter().any(|(n, _)| n == http::header::USER_AGENT) {
        out.push((
            http::header::USER_AGENT,
            HeaderValue::from_static(USER_AGENT),
        ));
    }
    // Anthropic's API refuses requests that name no version.
    let version = HeaderName::from_static("anthropic-version");
    if EndpointKind::parse(&e.kind) == EndpointKind::Anthropic
        && !out.iter().any(|(n, _)| *n == version)
    {
        out.push((version, HeaderValue::from_static("2023-06-01")));
    }
    out.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    out
}

/// Resolves an endpoint's credentials: values as given, `env` names from this process's
/// environment. Unusable ones are skipped with a warning naming only the id and variable.
pub(super) fn resolve_credentials(e: &v1::RouteEndpoint) -> Vec<Credential> {
    // Anthropic and Gemini take the bare key in a header of their own unless told otherwise.
    let by_kind = match EndpointKind::parse(&e.kind) {
        EndpointKind::Anthropic => "x-api-key",
        EndpointKind::Gemini => "x-goog-api-key",
        EndpointKind::OpenAi | EndpointKind::Ollama => "",
    };
    let auth_header = if e.auth_header.is_empty() {
        by_kind
    } else {
        e.auth_header.as_str()
    };
    let header = match auth_header {
        "" => None,
        name => match HeaderName::try_from(name) {
            Ok(h) => Some(h),
            Err(_) => {
                warn!(endpoint = %e.id, header = %name, "auth header is not a valid header name; using authorization");
                None
            }
        },
    };
    e.credentials
        .iter()
        .filter_map(|c| {
            let secret = if !c.value.is_empty() {
                c.value.clone()
            } else if !c.env.is_empty() {
                match std::env::var(&c.env) {
                    Ok(v) if !v.is_empty() => v,
                    _ => {
                        warn!(
                            endpoint = %e.id,
                            credential = %c.id,
                            env = %c.env,
                            "credential's environment variable is not set on this edge; skipped"
                        );
                        return None;
                    }
                }
            } else {
                warn!(endpoint = %e.id, credential = %c.id, "credential has neither value nor env; skipped");
                return None;
            };
            let value = match header {
                None => HeaderValue::from_str(&format!("Bearer {secret}")),
                Some(_) => HeaderValue::from_str(&secret),
            };
            let Ok(mut authorization) = value else {
                warn!(endpoint = %e.id, credential = %c.id, "credential is not a valid header value; skipped");
                return None;
            };
            authorization.set_sensitive(true);
            Some(Credential {
                id: Arc::from(c.id.as_str()),
                header: header.clone().unwrap_or(http::header::AUTHORIZATION),
                authorization,
                id_header: HeaderValue::from_str(&c.id).ok(),
                models: c.models.clone(),
            })
        })
        .collect()
}
