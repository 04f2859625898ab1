//! `switchyard cooldowns …`: list or clear upstream cooldowns.

use std::io::Write;

use clap::{Args, Subcommand};

use super::admin::{AdminArgs, or_dash, print_json, table};
use super::{Run, Shutdown};

/// `switchyard cooldowns`.
#[derive(Debug, Args)]
pub struct CooldownsArgs {
    #[command(subcommand)]
    /// What to do (default `list`).
    pub cmd: Option<CooldownsCmd>,
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

/// `switchyard cooldowns …`.
#[derive(Debug, Subcommand)]
pub enum CooldownsCmd {
    /// List active cooldowns.
    List,
    /// Clear cooldowns, of one endpoint or all.
    Clear {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
    },
}

impl Run for CooldownsArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let client = self.admin.client()?;
        let json = self.admin.json;
        let mut out = std::io::stdout().lock();
        match self.cmd.unwrap_or(CooldownsCmd::List) {
            CooldownsCmd::List => {
                let c = client.cooldowns().await?;
                if json {
                    return print_json(&mut out, &c);
                }
                let now = switchyard_control_plane::service::agent::now_ms() as i64;
                table(
                    &mut out,
                    &["ENDPOINT", "CREDENTIAL", "MODEL", "REMAINING", "REASON"],
                    c.iter()
                        .map(|c| {
                            vec![
                                c.endpoint_id.clone(),
                                or_dash(&c.credential_id),
                                or_dash(&c.model),
                                format!("{}s", (c.until_ms - now).max(0) / 1000),
                                c.reason.clone(),
                            ]
                        })
                        .collect(),
                )
            }
            CooldownsCmd::Clear { endpoint } => {
                let cleared = client.clear_cooldowns(endpoint.as_deref()).await?;
                if json {
                    return print_json(&mut out, &cleared);
                }
                writeln!(out, "cleared (revision {})", cleared.revision)?;
                Ok(())
            }
        }
    }
}
