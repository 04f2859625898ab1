//! The first check: the control plane answers gRPC health. The probe records what it saw; a
//! pure judgement turns that into the report's line.

use std::time::Duration;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{DoctorArgs, Status, Verdict, chain, grpc_url};

/// What asking the control plane's health service found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The `--tls-*` flags cannot be used (the reason).
    BadTls(String),
    /// No endpoint can be made of the URL and the PEM files.
    BadEndpoint {
        /// The URL dialled.
        url: String,
        /// Why not.
        error: String,
    },
    /// The connection failed.
    Unreachable {
        /// The URL dialled.
        url: String,
        /// The innermost cause.
        error: String,
    },
    /// The health service says SERVING.
    Serving {
        /// The URL dialled.
        url: String,
    },
    /// The health service answers another status.
    NotServing {
        /// The URL dialled.
        url: String,
        /// The status's name.
        status: String,
    },
    /// The health call failed: likely not a Switchyard control plane.
    Refused {
        /// The URL dialled.
        url: String,
        /// The gRPC status message.
        message: String,
    },
    /// No answer in time.
    Silent {
        /// The URL dialled.
        url: String,
        /// How long doctor waited.
        timeout: Duration,
    },
}

/// Connects and asks the gRPC health service. Returns what it found, whether mutual TLS was
/// used, and the channel when the control plane serves.
pub async fn probe(args: &DoctorArgs, timeout: Duration) -> (Health, bool, Option<Channel>) {
    let tls = match args.tls.files() {
        Ok(tls) => tls,
        Err(e) => return (Health::BadTls(e.to_string()), false, None),
    };
    let with_tls = tls.is_some();
    let url = switchyard_proto::tls::url_for(&grpc_url(&args.control_plane), with_tls);
    let endpoint = match switchyard_proto::tls::endpoint(&url, tls.as_ref()) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).timeout(timeout),
        Err(e) => {
            let error = chain(&e);
            return (Health::BadEndpoint { url, error }, with_tls, None);
        }
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            let error = chain(&e);
            return (Health::Unreachable { url, error }, with_tls, None);
        }
    };
    let mut health = HealthClient::new(channel.clone());
    let asked = health.check(HealthCheckRequest {
        service: String::new(),
    });
    let found = match tokio::time::timeout(timeout, asked).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => {
            return (Health::Serving { url }, with_tls, Some(channel));
        }
        Ok(Ok(response)) => {
            let status = ServingStatus::try_from(response.get_ref().status).map_or_else(
                |_| "an unknown status".to_owned(),
                |s| s.as_str_name().to_owned(),
            );
            Health::NotServing { url, status }
        }
        Ok(Err(status)) => Health::Refused {
            url,
            message: status.message().to_owned(),
        },
        Err(_) => Health::Silent { url, timeout },
    };
    (found, with_tls, None)
}

/// The report's line for what [`probe`] found; `tls` says whether doctor used mutual TLS
/// (without it, the advice mentions the `--tls-*` flags).
pub fn judge(health: &Health, tls: bool) -> Verdict {
    let unreachable = if tls {
        "is `switchyard control-plane` running with --tls-* files from the same CA as these, on \
         an address this machine can reach?"
    } else {
        "is `switchyard control-plane` running, listening on an address this machine can \
         reach (not 127.0.0.1 on another host), and is --control-plane / \
         SWITCHYARD_CONTROL_PLANE right? If the cluster runs mutual TLS, give doctor --tls-ca, \
         --tls-cert and --tls-key too."
    };
    match health {
        Health::BadTls(reason) => Verdict::new(Status::Fail, reason.clone()),
        Health::BadEndpoint { url, error } => {
            Verdict::new(Status::Fail, format!("{url:?}: {error}"))
                .hint("use http://HOST:7700, and readable PEM files for --tls-*")
        }
        Health::Unreachable { url, error } => {
            Verdict::new(Status::Fail, format!("cannot connect to {url}: {error}"))
                .hint(unreachable)
        }
        Health::Serving { url } => Verdict::new(Status::Pass, format!("{url} is serving")),
        Health::NotServing { url, status } => Verdict::new(
            Status::Fail,
            format!("{url} answers health checks with {status}"),
        )
        .hint("the voter is starting or shutting down; look at its log"),
        Health::Refused { url, message } => {
            Verdict::new(Status::Fail, format!("{url} answered: {message}")).hint(if tls {
                "is this a Switchyard control plane? (the edge listens on another port)"
            } else {
                "is this a Switchyard control plane? (the edge listens on another port) If \
                 the cluster runs mutual TLS, give doctor --tls-ca, --tls-cert and --tls-key."
            })
        }
        Health::Silent { url, timeout } => Verdict::new(
            Status::Fail,
            format!("{url} did not answer within {timeout:?}"),
        )
        .hint(unreachable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_answers_are_judged() {
        let url = || "http://cp:7700".to_owned();
        let cases = [
            (
                Health::BadTls("--tls-key is missing".into()),
                false,
                Status::Fail,
                "--tls-key is missing",
                None,
            ),
            (
                Health::BadEndpoint {
                    url: url(),
                    error: "bad PEM".into(),
                },
                true,
                Status::Fail,
                "\"http://cp:7700\": bad PEM",
                Some("use http://HOST:7700"),
            ),
            (
                Health::Unreachable {
                    url: url(),
                    error: "Connection refused".into(),
                },
                false,
                Status::Fail,
                "cannot connect to http://cp:7700: Connection refused",
                Some("give doctor --tls-ca"),
            ),
            (
                Health::Unreachable {
                    url: url(),
                    error: "Connection refused".into(),
                },
                true,
                Status::Fail,
                "cannot connect",
                Some("from the same CA"),
            ),
            (
                Health::Serving { url: url() },
                false,
                Status::Pass,
                "http://cp:7700 is serving",
                None,
            ),
            (
                Health::NotServing {
                    url: url(),
                    status: "NOT_SERVING".into(),
                },
                false,
                Status::Fail,
                "answers health checks with NOT_SERVING",
                Some("starting or shutting down"),
            ),
            (
                Health::Refused {
                    url: url(),
                    message: "unimplemented".into(),
                },
                true,
                Status::Fail,
                "http://cp:7700 answered: unimplemented",
                Some("the edge listens on another port)"),
            ),
            (
                Health::Silent {
                    url: url(),
                    timeout: Duration::from_secs(5),
                },
                false,
                Status::Fail,
                "did not answer within 5s",
                Some("is `switchyard control-plane` running"),
            ),
        ];
        for (health, tls, status, detail, hint) in cases {
            let v = judge(&health, tls);
            assert_eq!(v.status, status, "{health:?}");
            assert!(v.detail.contains(detail), "{:?} lacks {detail:?}", v.detail);
            match hint {
                Some(hint) => assert!(
                    v.hint.as_deref().is_some_and(|h| h.contains(hint)),
                    "{:?} lacks {hint:?}",
                    v.hint
                ),
                None => assert_eq!(v.hint, None),
            }
        }
        // The TLS advice is given only to a doctor that ran without TLS.
        let refused = Health::Refused {
            url: url(),
            message: "x".into(),
        };
        assert!(
            judge(&refused, false)
                .hint
                .is_some_and(|h| h.contains("--tls-ca"))
        );
        assert!(
            !judge(&refused, true)
                .hint
                .is_some_and(|h| h.contains("--tls-ca"))
        );
    }
}
