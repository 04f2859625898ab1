//! The second check: the join token is accepted, as a node agent would present it. The probe
//! says Hello (twice when the first is accepted: once more with a wrong token, to tell a voter
//! that checks tokens from one that checks none); a pure judgement words the answer.

use std::time::Duration;

use futures::StreamExt;
use switchyard_proto::v1::agent_message::Body as AgentBody;
use switchyard_proto::v1::agent_service_client::AgentServiceClient;
use switchyard_proto::v1::control_message::Body as ControlBody;
use switchyard_proto::v1::{AgentMessage, ControlMessage, Hello};
use tonic::transport::Channel;

use super::{DoctorArgs, Status, Verdict, or_unknown};

/// The control plane's first answer to a Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Acknowledged: the leader admitted the agent.
    Ack,
    /// A follower names the leader; it checked the token first.
    Redirect {
        /// The leader's address, possibly empty.
        leader: String,
    },
    /// Refused, with the control plane's reason.
    Rejected {
        /// Why.
        reason: String,
    },
    /// A message without a body.
    Empty,
    /// The stream closed without an answer.
    Closed,
    /// The stream failed (the gRPC status message).
    Failed(String),
    /// No answer in time.
    Silent(Duration),
}

/// What the probe found: whether a token was given, the answer, and whether a wrong token
/// was accepted too (asked only when the given one was acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// `--join-token` was given (not empty).
    pub token_given: bool,
    /// The answer to the Hello with it.
    pub answer: Answer,
    /// A Hello with a wrong token was acknowledged as well.
    pub any_token_passes: bool,
}

/// Says Hello as a node agent would and reads the first answer, then hangs up.
///
/// Admission is checked before anything is committed, so a rejected token leaves no trace. An
/// accepted one is recorded as a node called `doctor-<host>` that goes down when we hang up; a
/// follower redirects before committing anything.
pub async fn probe(args: &DoctorArgs, channel: Channel, timeout: Duration) -> Admission {
    let token = args.join_token.clone().unwrap_or_default();
    let node_name = args
        .node_name
        .clone()
        .unwrap_or_else(|| format!("doctor-{}", switchyard_node_agent::config::local_hostname()));
    let answer = answer_of(
        hello(channel.clone(), &node_name, &token, timeout).await,
        timeout,
    );
    let token_given = !token.is_empty();
    let mut any_token_passes = false;
    if answer == Answer::Ack && token_given {
        // Would a wrong token pass too? Then the voters check none.
        let wrong = format!("{token}-not-the-token");
        any_token_passes =
            answer_of(hello(channel, &node_name, &wrong, timeout).await, timeout) == Answer::Ack;
    }
    Admission {
        token_given,
        answer,
        any_token_passes,
    }
}

/// Names the outcome of one Hello.
fn answer_of(
    result: Result<Result<Option<ControlMessage>, tonic::Status>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Answer {
    match result {
        Ok(Ok(Some(message))) => match message.body {
            Some(ControlBody::Ack(_)) => Answer::Ack,
            Some(ControlBody::Redirect(r)) => Answer::Redirect {
                leader: r.leader_addr,
            },
            Some(ControlBody::Rejected(r)) => Answer::Rejected { reason: r.reason },
            None => Answer::Empty,
        },
        Ok(Ok(None)) => Answer::Closed,
        Ok(Err(status)) => Answer::Failed(status.message().to_owned()),
        Err(_) => Answer::Silent(timeout),
    }
}

/// The report's line for what [`probe`] found.
pub fn judge(a: &Admission) -> Verdict {
    let set_token = "set SWITCHYARD_JOIN_TOKEN on the voters so only your agents can report";
    let no_leader = "a cluster without a leader cannot admit agents; check the voters' logs";
    match &a.answer {
        Answer::Ack if !a.token_given => Verdict::new(
            Status::Warn,
            "the control plane accepts agents without a join token",
        )
        .hint(set_token),
        Answer::Ack if a.any_token_passes => Verdict::new(
            Status::Warn,
            "accepted, but so is any other token: the voters have no join token",
        )
        .hint(set_token),
        Answer::Ack => Verdict::new(Status::Pass, "accepted by the leader"),
        Answer::Redirect { leader } => Verdict::new(
            Status::Pass,
            format!("accepted by a follower (leader: {})", or_unknown(leader)),
        ),
        Answer::Rejected { reason } if !a.token_given => {
            Verdict::new(Status::Fail, format!("rejected without a token: {reason}"))
                .hint("the cluster requires a join token; pass it with --join-token")
        }
        Answer::Rejected { reason } => Verdict::new(Status::Fail, format!("rejected: {reason}"))
            .hint(
                "give agents the voters' SWITCHYARD_JOIN_TOKEN (--join-token), and pass the same \
                 to doctor",
            ),
        Answer::Empty => Verdict::new(Status::Fail, "the control plane sent an empty answer"),
        Answer::Closed => Verdict::new(
            Status::Fail,
            "the control plane closed the stream without answering",
        ),
        Answer::Failed(message) => {
            Verdict::new(Status::Fail, format!("the report stream failed: {message}"))
                .hint(no_leader)
        }
        Answer::Silent(timeout) => {
            Verdict::new(Status::Fail, format!("no answer within {timeout:?}")).hint(no_leader)
        }
    }
}

/// Opens a report stream, says Hello and returns the first answer; the call closes on return.
async fn hello(
    channel: Channel,
    node_name: &str,
    token: &str,
    timeout: Duration,
) -> Result<Result<Option<ControlMessage>, tonic::Status>, tokio::time::error::Elapsed> {
    let hello = AgentMessage {
        body: Some(AgentBody::Hello(Hello {
            node_name: node_name.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            join_token: token.to_owned(),
            addresses: Vec::new(),
        })),
    };
    // Kept open until we drop it, so the voter answers before it sees the stream end.
    let outbound = futures::stream::iter([hello]).chain(futures::stream::pending());
    let exchange = async {
        let mut client = AgentServiceClient::new(channel);
        let mut inbound = client.report(outbound).await?.into_inner();
        inbound.message().await
    };
    tokio::time::timeout(timeout, exchange).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_answers_are_judged() {
        let admission = |token_given, answer, any_token_passes| Admission {
            token_given,
            answer,
            any_token_passes,
        };
        let rejected = || Answer::Rejected {
            reason: "bad token".into(),
        };
        let cases = [
            (
                admission(false, Answer::Ack, false),
                Status::Warn,
                "without a join token",
            ),
            (
                admission(true, Answer::Ack, true),
                Status::Warn,
                "so is any other token",
            ),
            (
                admission(true, Answer::Ack, false),
                Status::Pass,
                "accepted by the leader",
            ),
            (
                admission(
                    true,
                    Answer::Redirect {
                        leader: "cp2:7700".into(),
                    },
                    false,
                ),
                Status::Pass,
                "accepted by a follower (leader: cp2:7700)",
            ),
            (
                admission(
                    true,
                    Answer::Redirect {
                        leader: String::new(),
                    },
                    false,
                ),
                Status::Pass,
                "(leader: unknown)",
            ),
            (
                admission(false, rejected(), false),
                Status::Fail,
                "rejected without a token: bad token",
            ),
            (
                admission(true, rejected(), false),
                Status::Fail,
                "rejected: bad token",
            ),
            (
                admission(true, Answer::Empty, false),
                Status::Fail,
                "empty answer",
            ),
            (
                admission(true, Answer::Closed, false),
                Status::Fail,
                "closed the stream",
            ),
            (
                admission(true, Answer::Failed("no leader".into()), false),
                Status::Fail,
                "the report stream failed: no leader",
            ),
            (
                admission(true, Answer::Silent(Duration::from_secs(5)), false),
                Status::Fail,
                "no answer within 5s",
            ),
        ];
        for (a, status, detail) in cases {
            let v = judge(&a);
            assert_eq!(v.status, status, "{a:?}");
            assert!(v.detail.contains(detail), "{:?} lacks {detail:?}", v.detail);
            // Advice comes with every warning and with every failure but the two odd answers.
            let advised = status == Status::Warn
                || (status == Status::Fail && !matches!(a.answer, Answer::Empty | Answer::Closed));
            assert_eq!(v.hint.is_some(), advised, "{a:?}: {:?}", v.hint);
        }
    }
}
