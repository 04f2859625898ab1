//! What `switchyard top` shows, read from the admin API in one round of concurrent calls.

use std::time::Duration;

use switchyard_control_plane::Error;
use switchyard_control_plane::admin::client::AdminClient;
use switchyard_control_plane::admin::ui::pages::KeyRow;
use switchyard_control_plane::admin::ui::usage::{DAY_MS, Usage, UsageReport};
use switchyard_control_plane::admin::views::{ModelView, StatusView};
use switchyard_control_plane::state::Cooldown;

/// How long one round of reads may take before the view shows the voter as unreachable.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// One round of reads. Each part is kept or fails on its own, so a voter that lacks one route
/// still shows the rest.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `GET /api/v1/status`.
    pub status: Option<StatusView>,
    /// `GET /api/v1/models`.
    pub models: Vec<ModelView>,
    /// `GET /api/v1/keys`.
    pub keys: Vec<KeyRow>,
    /// `GET /api/v1/cooldowns`.
    pub cooldowns: Vec<Cooldown>,
    /// The last day's usage by key.
    pub usage_by_key: Option<Usage>,
    /// The last day's usage by hour.
    pub usage_by_hour: Option<Usage>,
    /// When it was read, Unix ms.
    pub at_ms: u64,
    /// The first read that failed, for the status line.
    pub error: Option<String>,
}

/// Reads everything `top` shows from `client`.
pub async fn fetch(client: &AdminClient, now_ms: u64) -> Snapshot {
    let from = now_ms.saturating_sub(DAY_MS);
    let read_usage = |group_by: &'static str| {
        let path = format!("/api/v1/usage?from={from}&to={now_ms}&group_by={group_by}");
        async move { client.get::<UsageReport>(&path).await }
    };
    let reads = async {
        futures::join!(
            client.status(),
            client.models(),
            client.get::<Vec<KeyRow>>("/api/v1/keys"),
            client.cooldowns(),
            read_usage("key"),
            read_usage("hour"),
        )
    };
    let Ok((status, models, keys, cooldowns, by_key, by_hour)) =
        tokio::time::timeout(READ_TIMEOUT, reads).await
    else {
        return Snapshot {
            at_ms: now_ms,
            error: Some(format!("no answer within {READ_TIMEOUT:?}")),
            ..Snapshot::default()
        };
    };
    let mut error = None;
    let status = keep(status, &mut error);
    let models = keep(models, &mut error).unwrap_or_default();
    let keys = keep(keys, &mut error).unwrap_or_default();
    let cooldowns = keep(cooldowns, &mut error).unwrap_or_default();
    let usage_by_key = keep(usage(by_key), &mut error);
    let usage_by_hour = keep(usage(by_hour), &mut error);
    Snapshot {
        status,
        models,
        keys,
        cooldowns,
        usage_by_key,
        usage_by_hour,
        at_ms: now_ms,
        error,
    }
}

/// The value of `result`; its error, if the first, goes to `error`.
fn keep<T>(result: Result<T, Error>, error: &mut Option<String>) -> Option<T> {
    result
        .map_err(|e| {
            error.get_or_insert_with(|| e.to_string());
        })
        .ok()
}

/// A usage answer; a voter without the route (404) reads as [`Usage::Missing`], not an error.
fn usage(result: Result<UsageReport, Error>) -> Result<Usage, Error> {
    match result {
        Ok(report) => Ok(Usage::Report(report)),
        Err(Error::Admin { status: 404, .. }) => Ok(Usage::Missing),
        Err(e) => Err(e),
    }
}
