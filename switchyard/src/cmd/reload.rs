//! `switchyard reload`: a voter re-reads its config file and environment and applies the
//! difference.

use std::io::Write;

use clap::Args;

use super::admin::{AdminArgs, print_json};
use super::{Run, Shutdown};

/// `switchyard reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

impl Run for ReloadArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let r = self.admin.client()?.reload().await?;
        let mut out = std::io::stdout().lock();
        if self.admin.json {
            return print_json(&mut out, &r);
        }
        let what = if r.changed {
            "applied changes"
        } else {
            "no changes"
        };
        writeln!(out, "{what} (revision {})", r.revision)?;
        for w in &r.warnings {
            writeln!(out, "warning: {w}")?;
        }
        Ok(())
    }
}
