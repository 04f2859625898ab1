//! `EdgeService.ReportUsage`: an edge's batch of usage aggregates becomes one committed command.
//!
//! Any voter takes the batch; [`Consensus::write`] forwards it to the leader. The batch number
//! makes a retry after a lost answer harmless (the state machine skips numbers it applied).

use switchyard_proto::v1::{UsageAck, UsageReport};
use tonic::Status;

use crate::raft::Consensus;
use crate::service::agent::now_ms;
use crate::state::usage::{MinuteRow, Retention, Row, Totals};
use crate::state::{Command, Outcome};

/// Most rows one batch may carry; an edge sends more as several batches.
pub const MAX_ROWS: usize = 10_000;

/// Commits `report` with the usage retention of this voter's configuration.
pub async fn report_usage(
    consensus: &Consensus,
    keep: Retention,
    report: UsageReport,
) -> Result<UsageAck, Status> {
    if report.edge_name.is_empty() {
        return Err(Status::invalid_argument("edge_name is required"));
    }
    if report.rows.len() > MAX_ROWS {
        return Err(Status::invalid_argument(format!(
            "a usage batch holds at most {MAX_ROWS} rows"
        )));
    }
    let rows: Vec<MinuteRow> = report
        .rows
        .into_iter()
        .map(|r| MinuteRow {
            minute_ms: u64::try_from(r.minute_ms).unwrap_or(0),
            row: Row {
                key: r.key_id,
                model: r.model,
                deployment: r.deployment,
                totals: Totals {
                    requests: r.requests,
                    errors: r.errors,
                    input_tokens: r.input_tokens,
                    output_tokens: r.output_tokens,
                    latency_ms_sum: r.latency_ms_sum,
                    cost_nanos: r.cost_nanos,
                },
            },
        })
        .collect();
    let count = rows.len();
    let command = Command::RecordUsage {
        // Batch numbers count per edge process.
        edge: format!("{}#{}", report.edge_name, report.instance),
        batch: report.batch,
        rows,
        keep,
        at_ms: now_ms(),
    };
    match consensus.write(command).await {
        Ok(Outcome::Rejected { reason }) => Err(Status::invalid_argument(reason)),
        Ok(_) => {
            tracing::debug!(edge = %report.edge_name, batch = report.batch, rows = count, "usage recorded");
            Ok(UsageAck {})
        }
        Err(e) => Err(Status::from(e)),
    }
}
