//! `switchyard top`: a live terminal view of the cluster for a box without a browser. It reads
//! the same admin API as the CLI and the web dashboard, every `--interval-ms`, and shows the
//! dashboard's views as tabs.
//!
//! - [`snapshot`]: one round of admin reads;
//! - [`view`]: draws a frame from a snapshot (pure; tested on ratatui's `TestBackend`).
//!
//! Keys: `1`-`6` or ←/→ (also Tab, h/l) pick a view, `r` reads again now, `q`, Esc or Ctrl-C quit.

#[cfg(feature = "top")]
pub mod snapshot;
#[cfg(feature = "top")]
pub mod view;

use clap::Args;

use super::admin::AdminArgs;
use super::{Run, Shutdown};
#[cfg(feature = "top")]
use {
    anyhow::{Context, bail},
    ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    snapshot::{Snapshot, fetch},
    std::io::IsTerminal,
    std::time::Duration,
    switchyard_control_plane::service::agent::now_ms,
    tokio::sync::mpsc,
    view::View,
};

/// `switchyard top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Milliseconds between reads of the admin API.
    #[arg(long, default_value_t = 2000)]
    pub interval_ms: u64,
    #[command(flatten)]
    /// Admin API access.
    pub admin: AdminArgs,
}

impl Run for TopArgs {
    async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        #[cfg(feature = "top")]
        return run(self, shutdown).await;
        #[cfg(not(feature = "top"))]
        {
            drop((self, shutdown));
            anyhow::bail!("this switchyard was built without `top` (cargo feature `top`)")
        }
    }
}

/// What a key asks for.
#[cfg(feature = "top")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Show this view.
    Show(View),
    /// Read the API again now.
    Refresh,
    /// Leave.
    Quit,
    /// Nothing.
    Ignore,
}

/// The action of `key` while `current` is shown.
#[cfg(feature = "top")]
pub fn on_key(current: View, key: KeyEvent) -> Action {
    let step = |by: isize| {
        let n = View::ALL.len() as isize;
        let i = (current.index() as isize + by).rem_euclid(n);
        Action::Show(View::ALL[i as usize])
    };
    match key.code {
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Action::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Action::Quit,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Right | KeyCode::Tab | KeyCode::Char('l') => step(1),
        KeyCode::Left | KeyCode::BackTab | KeyCode::Char('h') => step(-1),
        KeyCode::Char(d @ '1'..='6') => Action::Show(View::ALL[usize::from(d as u8 - b'1')]),
        _ => Action::Ignore,
    }
}

/// Runs the view until a quit key or `shutdown`.
#[cfg(feature = "top")]
async fn run(args: TopArgs, mut shutdown: Shutdown) -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("`switchyard top` needs a terminal; use `switchyard status --json` in scripts");
    }
    let client = args.admin.client()?;
    let interval = Duration::from_millis(args.interval_ms.max(200));
    let (keys_tx, mut keys) = mpsc::channel(16);
    // crossterm's reads block, so they get their own thread; it ends when the receiver does.
    std::thread::Builder::new()
        .name("top-keys".into())
        .spawn(move || read_keys(&keys_tx))
        .context("starting the key reader")?;
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let server = args.admin.server.clone();
    let drawn = async {
        let mut view = View::Cluster;
        let mut snapshot = Snapshot::default();
        let mut stale = true;
        loop {
            if stale {
                snapshot = fetch(&client, now_ms()).await;
                stale = false;
            }
            terminal.draw(|frame| view::draw(frame, view, &snapshot, &server))?;
            tokio::select! {
                key = keys.recv() => match key.map(|k| on_key(view, k)) {
                    None | Some(Action::Quit) => return Ok::<_, anyhow::Error>(()),
                    Some(Action::Show(next)) => view = next,
                    Some(Action::Refresh) => stale = true,
                    Some(Action::Ignore) => {}
                },
                () = tokio::time::sleep(interval) => stale = true,
                () = &mut shutdown => return Ok(()),
            }
        }
    }
    .await;
    ratatui::try_restore().context("cannot restore the terminal")?;
    drawn
}

/// Forwards key presses to `keys` until it closes or the terminal fails.
#[cfg(feature = "top")]
fn read_keys(keys: &mpsc::Sender<KeyEvent>) {
    loop {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    if keys.blocking_send(key).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the terminal");
                    return;
                }
            },
            Ok(false) if keys.is_closed() => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot poll the terminal");
                return;
            }
        }
    }
}

#[cfg(all(test, feature = "top"))]
mod tests;
