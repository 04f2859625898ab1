//! Discovery peers: parsing `host` / `host:port` entries and naming what is found on them.
//!
//! Accepted forms: a DNS name or IPv4 (`nas.lan`, `100.98.112.23`), either with `:port`; an IPv6
//! address bare (`fd7a:115c:a1e0::1`) or in brackets with or without a port (`[fd7a::1]:8000`).
//! An `http://` prefix and a trailing `/` are tolerated. A bare host is probed on all four default
//! ports; `host:port` only on that port, matched against every kind's signature.

use std::net::IpAddr;

use crate::error::Error;
use crate::probe::ServerKind;

/// A parsed peer entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddr {
    /// Host name or IP address (IPv6 without brackets), lowercased.
    pub host: String,
    /// The port when one was given.
    pub port: Option<u16>,
}

impl PeerAddr {
    /// `http://host:port` with IPv6 bracketed.
    pub fn origin(&self, port: u16) -> String {
        origin(&self.host, port)
    }
}

/// `http://host:port`, bracketing IPv6 hosts.
pub fn origin(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Parses one peer entry.
pub fn parse(entry: &str) -> Result<PeerAddr, Error> {
    let invalid = |reason: &str| Error::InvalidPeer {
        entry: entry.to_owned(),
        reason: reason.to_owned(),
    };
    let text = entry.trim();
    let text = text.strip_prefix("http://").unwrap_or(text);
    let text = text.strip_suffix('/').unwrap_or(text);
    if text.is_empty() {
        return Err(invalid("empty"));
    }
    if text.contains(['/', '@', '?', '#']) || text.chars().any(char::is_whitespace) {
        return Err(invalid("expected host or host:port, not a URL with a path"));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(invalid("unclosed `[`"));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("brackets must hold an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(invalid("expected `:port` after `]`")),
            },
        }
    } else if text.matches(':').count() > 1 {
        // Bare IPv6 (no port can be given without brackets).
        if text.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(invalid("not an IPv6 address; write [addr]:port"));
        }
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    let port = match port {
        None => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| invalid("port must be 1-65535"))?,
        ),
    };
    let is_ip = host.parse::<IpAddr>().is_ok();
    if !is_ip
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(invalid("host has characters a DNS name cannot have"));
    }
    Ok(PeerAddr {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// `<kind>-<host with every character but letters, digits and `-` as `-`>`, e.g.
/// `lmstudio-100-98-112-23`, `vllm-fd7a--1`, `ollama-nas-lan`.
pub fn peer_id(kind: ServerKind, host: &str) -> String {
    format!("{kind}-{}", host_slug(host))
}

/// A host as an id fragment: `.`, `:` and anything else not alphanumeric or `-` become `-`.
pub fn host_slug(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The (kind, port) pairs probed for a peer: every kind on its default port for a bare host, else
/// `None` for "identify the kind at this port".
pub fn probes(peer: &PeerAddr) -> Vec<(Option<ServerKind>, u16)> {
    match peer.port {
        Some(port) => vec![(None, port)],
        None => ServerKind::ALL
            .into_iter()
            .map(|k| (Some(k), k.default_port()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries() {
        let ok = |host: &str, port: Option<u16>| {
            Some(PeerAddr {
                host: host.to_owned(),
                port,
            })
        };
        let cases: &[(&str, Option<PeerAddr>)] = &[
            ("100.98.112.23", ok("100.98.112.23", None)),
            ("100.108.97.78:8000", ok("100.108.97.78", Some(8000))),
            ("nas.lan", ok("nas.lan", None)),
            ("NAS.lan:11435", ok("nas.lan", Some(11435))),
            (" http://gpu-box:1234/ ", ok("gpu-box", Some(1234))),
            (
                "[fd7a:115c:a1e0::1]:8000",
                ok("fd7a:115c:a1e0::1", Some(8000)),
            ),
            ("[fd7a::1]", ok("fd7a::1", None)),
            ("fd7a:115c:a1e0::1", ok("fd7a:115c:a1e0::1", None)),
            ("", None),
            ("host:", None),
            ("host:0", None),
            ("host:70000", None),
            ("host:abc", None),
            ("[fd7a::1", None),
            ("[nas.lan]:80", None),
            ("[fd7a::1]8000", None),
            ("fd7a::zz", None),
            ("http://host/path", None),
            ("user@host", None),
            ("two words", None),
            ("bad!host", None),
            (":8000", None),
        ];
        for (entry, want) in cases {
            assert_eq!(parse(entry).ok(), *want, "{entry:?}");
        }
    }

    #[test]
    fn names_follow_the_llmproxy_rule() {
        let cases: &[(ServerKind, &str, &str)] = &[
            (
                ServerKind::LmStudio,
                "100.98.112.23",
                "lmstudio-100-98-112-23",
            ),
            (
                ServerKind::Vllm,
                "fd7a:115c:a1e0::1",
                "vllm-fd7a-115c-a1e0--1",
            ),
            (ServerKind::Ollama, "nas.lan", "ollama-nas-lan"),
            (
                ServerKind::Litellm,
                "host.docker.internal",
                "litellm-host-docker-internal",
            ),
            (ServerKind::Ollama, "Gpu_Box", "ollama-gpu-box"),
        ];
        for (kind, host, want) in cases {
            assert_eq!(peer_id(*kind, host), *want);
        }
    }

    #[test]
    fn bare_hosts_get_every_default_port_and_ports_get_identified() {
        let bare = parse("10.0.0.5").unwrap();
        assert_eq!(
            probes(&bare),
            vec![
                (Some(ServerKind::Ollama), 11434),
                (Some(ServerKind::LmStudio), 1234),
                (Some(ServerKind::Vllm), 8000),
                (Some(ServerKind::Litellm), 4000),
            ]
        );
        assert_eq!(probes(&parse("10.0.0.5:9000").unwrap()), vec![(None, 9000)]);
        assert_eq!(bare.origin(8000), "http://10.0.0.5:8000");
        assert_eq!(
            parse("fd7a::1").unwrap().origin(8000),
            "http://[fd7a::1]:8000"
        );
    }
}
