//! The subcommands, one module each (as mini-redis's `cmd/`): a clap `Args` type and its
//! [`Run`] impl. Adding a verb is a new file here and one line in [`commands!`] below.
//!
//! - roles: [`up`], [`control_plane`], [`node_agent`], [`edge`];
//! - admin verbs over a voter's admin API: [`status`], [`endpoints`], [`keys`], [`cooldowns`],
//!   [`models`], [`members`], [`reload`], [`usage`] (shared access flags and table output in
//!   [`admin`]);
//! - tools: [`doctor`], [`certs`], [`top`] (the live terminal view, feature `top`);
//! - catalogs and providers: [`catalog`], [`ping`], [`bench`] (latency per deployment);
//! - a first config: [`init`];
//! - pointing coding tools at an edge: [`bind`] (their config files), [`run`] (their variables);
//! - flag groups more than one verb flattens in: [`flags`].

use std::future::Future;
use std::pin::Pin;

pub mod admin;
pub mod bench;
pub mod bind;
pub mod catalog;
pub mod certs;
pub mod control_plane;
pub mod cooldowns;
pub mod doctor;
pub mod edge;
pub mod endpoints;
pub mod flags;
pub mod init;
pub mod keys;
pub mod members;
pub mod models;
pub mod node_agent;
pub mod ping;
pub mod reload;
pub mod run;
pub mod status;
pub mod top;
pub mod up;
pub mod usage;

/// Resolves when the process should stop (Ctrl-C, SIGTERM, or a test's signal).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A subcommand: runs until it is done or `shutdown` resolves.
pub trait Run {
    /// Does what the subcommand says; verbs that finish on their own ignore `shutdown`.
    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>>;
}

impl<T: Run> Run for Box<T> {
    fn run(self, shutdown: Shutdown) -> impl Future<Output = anyhow::Result<()>> {
        (*self).run(shutdown)
    }
}

/// Declares [`Command`] (one variant per subcommand, its doc line the help text) and its
/// dispatch, so registering a verb is one line.
macro_rules! commands {
    ($( $(#[$doc:meta])* $variant:ident($args:ty), )*) => {
        /// The roles and tools.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $( $(#[$doc])* $variant($args), )*
        }

        impl Run for Command {
            async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
                match self {
                    $( Self::$variant(args) => args.run(shutdown).await, )*
                }
            }
        }
    };
}

commands! {
    /// Run everything in one process: control plane, node agent and edge.
    Up(up::UpArgs),
    /// Run a control-plane voter.
    ControlPlane(Box<control_plane::ControlPlaneArgs>),
    /// Run a node agent that discovers model servers on this host.
    NodeAgent(node_agent::NodeAgentArgs),
    /// Run an edge serving the OpenAI-compatible /v1 API.
    Edge(edge::EdgeArgs),
    /// Show the cluster: members, leader, term, indexes, nodes and endpoints.
    Status(status::StatusArgs),
    /// List, add or remove endpoints.
    Endpoints(endpoints::EndpointsArgs),
    /// Create, list or revoke client keys.
    Keys(keys::KeysArgs),
    /// List or clear upstream cooldowns.
    Cooldowns(cooldowns::CooldownsArgs),
    /// List model groups (deployments, aliases, fallbacks) and aliases with their members.
    Models(models::ModelsArgs),
    /// List, add, promote or remove control-plane members.
    Members(members::MembersArgs),
    /// Re-read the config file and environment on a voter and apply the difference.
    Reload(reload::ReloadArgs),
    /// Check, step by step, that control plane, agents and edge work together.
    Doctor(doctor::DoctorArgs),
    /// Make a CA and per-node certificates for mutual TLS between the roles.
    Certs(certs::CertsArgs),
    /// A live terminal view of the cluster: members, nodes, endpoints, models, keys, usage.
    Top(top::TopArgs),
    /// Show or refresh what declared endpoints list, serve and filter out.
    Catalog(catalog::CatalogArgs),
    /// Write a coding tool's config (aider, continue, claude-code, codex, open-webui, opencode)
    /// to use the edge, showing a diff and keeping a backup.
    Bind(bind::BindArgs),
    /// Start claude, codex or aider with the variables that point it at the edge.
    Run(run::RunArgs),
    /// List providers (on/off) and send each a 1-token chat.
    Ping(ping::PingArgs),
    /// Show requests, tokens and spend per key, model, deployment, hour or day.
    Usage(usage::UsageArgs),
    /// Time a few chats per deployment (p50/p95 time to first byte and total); feeds `fast`.
    Bench(bench::BenchArgs),
    /// Write a first config.yaml: providers with keys in the environment, local servers, a key.
    Init(init::InitArgs),
}
