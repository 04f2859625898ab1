//! Loading the declared sources into the cluster: at start, on `SIGHUP` and on
//! `POST /api/v1/reload`. Each source is replaced whole, so only the difference changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::admin::views::ReloadReport;
use crate::config::{self, Sealer};
use crate::error::Error;
use crate::raft::Consensus;
use crate::seal::ClusterKey;
use crate::service::agent::now_ms;
use crate::state::{Command, Outcome, Source};

/// Where the environment comes from.
#[derive(Debug, Clone)]
pub enum EnvSource {
    /// This process's environment, read at every load.
    Process,
    /// A fixed map (tests).
    Fixed(BTreeMap<String, String>),
}

/// The declared sources of one voter.
#[derive(Debug, Clone)]
pub struct Declarations {
    /// `config.yaml` in either format, when given.
    pub file: Option<PathBuf>,
    /// The environment.
    pub env: EnvSource,
    /// Seals secrets given by value.
    pub key: Option<Arc<ClusterKey>>,
}

impl Declarations {
    /// Reads the sources and commits the difference through the leader.
    ///
    /// Give every voter the same file and environment: each applies its own on start and reload.
    pub async fn apply(&self, consensus: &Consensus) -> Result<ReloadReport, Error> {
        let env = match &self.env {
            EnvSource::Process => std::env::vars().collect(),
            EnvSource::Fixed(map) => map.clone(),
        };
        let current = consensus.state().await;
        let sealer = Sealer::new(self.key.as_deref(), &current);
        let loaded = config::load(self.file.as_deref(), &env, &sealer)?;
        for warning in &loaded.warnings {
            tracing::warn!(warning = %warning, "config");
        }
        let mut changed = false;
        let mut revision = current.revision;
        // A voter without a config file leaves the file's declarations alone (another voter
        // may have one); the environment counts once it declares anything or a file is given.
        let mut sources = Vec::new();
        if self.file.is_some() {
            sources.push((Source::Config, loaded.config));
        }
        if self.file.is_some() || !loaded.env.endpoints.is_empty() || !loaded.env.keys.is_empty() {
            sources.push((Source::Env, loaded.env));
        }
        for (source, declared) in sources {
            let command = Command::ReplaceSource {
                source,
                declared,
                at_ms: now_ms(),
            };
            match consensus.write(command).await? {
                Outcome::Changed { revision: r } => {
                    changed = true;
                    revision = r;
                }
                Outcome::Unchanged { revision: r } => revision = r,
                Outcome::WindowGranted { .. } | Outcome::SlotsHeld { .. } => {}
                Outcome::Rejected { reason } => {
                    return Err(Error::ConfigFile {
                        path: self
                            .file
                            .as_ref()
                            .map_or_else(|| "(environment)".into(), |p| p.display().to_string()),
                        reason,
                    });
                }
            }
        }
        tracing::info!(changed, revision, "declared configuration applied");
        let mut warnings = loaded.warnings;
        // A chain naming a group that serves nothing is accepted (the group may appear with
        // the next listing) but said out loud, at every load.
        let state = consensus.state().await;
        for link in crate::table::compile(&state, None).table.broken_links {
            let line = crate::catalog::rot::describe(&link);
            tracing::warn!(kind = %link.kind, owner = %link.owner, target = %link.target, reason = %link.reason, "{line}");
            warnings.push(line);
        }
        Ok(ReloadReport {
            changed,
            revision,
            warnings,
        })
    }
}
