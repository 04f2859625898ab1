//! `switchyard members …`: list, add, promote or remove control-plane members.

use std::io::Write;

use clap::{Args, Subcommand};
use switchyard_control_plane::admin::views::NewMember;
use switchyard_control_plane::raft::Member;

use super::admin::{AdminArgs, print_json, table};
use super::{Run, Shutdown};

/// `switchyard members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    #[command(subcommand)]
    /// What to do (default `list`).
    pub cmd: Option<MembersCmd>,
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

/// `switchyard members …`.
#[derive(Debug, Subcommand)]
pub enum MembersCmd {
    /// List raft members.
    List,
    /// Add a voter (or, with --learner, a learner).
    Add {
        /// Raft node id.
        id: u64,
        /// Its gRPC address (host:port).
        addr: String,
        /// Leave it a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner to voter.
    Promote {
        /// Raft node id.
        id: u64,
    },
    /// Remove a member.
    Rm {
        /// Raft node id.
        id: u64,
    },
}

impl Run for MembersArgs {
    async fn run(self, _: Shutdown) -> anyhow::Result<()> {
        let client = self.admin.client()?;
        // Every change answers with the membership after it.
        let members = match self.cmd.unwrap_or(MembersCmd::List) {
            MembersCmd::List => client.members().await?,
            MembersCmd::Add { id, addr, learner } => {
                client
                    .add_member(&NewMember {
                        id,
                        addr,
                        voter: !learner,
                    })
                    .await?
            }
            MembersCmd::Promote { id } => client.promote_member(id).await?,
            MembersCmd::Rm { id } => client.remove_member(id).await?,
        };
        let mut out = std::io::stdout().lock();
        if self.admin.json {
            return print_json(&mut out, &members);
        }
        members_table(&mut out, &members)
    }
}

/// Members as `ID ADDRESS ROLE` rows (also under `status`).
pub fn members_table(out: &mut impl Write, members: &[Member]) -> anyhow::Result<()> {
    table(
        out,
        &["ID", "ADDRESS", "ROLE"],
        members
            .iter()
            .map(|m| {
                vec![
                    m.id.to_string(),
                    m.addr.clone(),
                    if m.voter { "voter" } else { "learner" }.into(),
                ]
            })
            .collect(),
    )
}
