//! `switchyard status`: the cluster as one voter sees it.

use std::io::Write;

use clap::Args;
use switchyard_control_plane::admin::views::StatusView;

use super::admin::{AdminArgs, print_json, table};
use super::{Run, Shutdown};

/// `switchyard status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

impl Run for StatusArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let status = self.admin.client()?.status().await?;
        let mut out = std::io::stdout().lock();
        if self.admin.json {
            return print_json(&mut out, &status);
        }
        show(&mut out, &status)
    }
}

/// Writes the summary lines, then members, nodes and endpoints as tables.
fn show(out: &mut impl Write, s: &StatusView) -> anyhow::Result<()> {
    writeln!(out, "cluster   {}", s.cluster_id)?;
    writeln!(
        out,
        "node      {} ({}), term {}, leader {}",
        s.node_id,
        s.role,
        s.term,
        s.leader_id.map_or("unknown".into(), |id| format!(
            "{id} at {}",
            s.leader_addr.clone().unwrap_or_default()
        ))
    )?;
    writeln!(
        out,
        "log       last {}, commit {}, applied {}, snapshot {} ({})",
        s.last_log_index,
        s.commit_index,
        s.applied_index,
        s.snapshot_index,
        s.snapshot_age_ms
            .map_or("none yet".into(), |ms| format!("{}s ago", ms / 1000))
    )?;
    writeln!(
        out,
        "revision  {}  digest {}",
        s.revision,
        &s.digest[..16.min(s.digest.len())]
    )?;
    writeln!(out, "\nMEMBERS")?;
    super::members::members_table(out, &s.members)?;
    writeln!(out, "\nNODES")?;
    table(
        out,
        &["NAME", "STATUS", "VERSION", "LAST SEEN", "GPUS"],
        s.nodes
            .iter()
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.status.clone(),
                    n.version.clone(),
                    n.last_seen_ms_ago
                        .map_or("-".into(), |ms| format!("{:.1}s ago", ms as f64 / 1000.0)),
                    n.gpus
                        .iter()
                        .map(|g| {
                            format!(
                                "{} {}/{} MiB",
                                g.name, g.memory_used_mib, g.memory_total_mib
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect(),
    )?;
    writeln!(out, "\nENDPOINTS")?;
    super::endpoints::endpoints_table(out, &s.endpoints)
}
