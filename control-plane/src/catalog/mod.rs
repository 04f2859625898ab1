//! Catalogs that stay true: listing what each declared endpoint offers, filtering free from
//! paid, probing models with each credential, and reporting chains that name nothing servable.
//!
//! - [`filter`]: the pure decision of which listed models an endpoint serves;
//! - [`listing`]: reading an endpoint's own listing (`/v1/models`, Ollama's `/api/tags`);
//! - [`refresh`]: the leader's task that lists on a schedule and on demand, committing changes only;
//! - [`probe`]: 1-token chats per model × credential, a failure cache, dead models pruned;
//! - [`rot`]: fallbacks and aliases naming unknown, filtered or dead groups;
//! - [`capability`]: the built-in aliases (`fast`, `coding`, `vision`, ...) resolved from facts.

pub mod capability;
pub mod filter;
pub mod listing;
pub mod probe;
pub mod refresh;
pub mod rot;

pub use probe::Auditor;
pub use refresh::{Catalogue, RefreshReport};
