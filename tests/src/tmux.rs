//! A detached tmux session on a private socket, for testing terminal programs: start a command
//! in it, send keys, and read the screen. The tmux server is killed when the session is dropped.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::harness::wait_for;

/// One session running one command.
pub struct Tmux {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Tmux {
    /// Starts `command` (a shell line) in a `width` × `height` detached session.
    pub fn start(command: &str, width: u16, height: u16) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let tmux = Self {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ])
        .context("starting tmux (install it with `apt-get install -y tmux`, as .ci/run does)")?;
        Ok(tmux)
    }

    /// Sends `keys` as tmux names them (`Right`, `q`, `C-c`, …).
    pub fn send(&self, keys: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args).map(|_| ())
    }

    /// The visible screen as text.
    pub fn screen(&self) -> anyhow::Result<String> {
        let out = self.run(&["capture-pane", "-p", "-t", "t"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the screen holds every one of `wants`; the error shows the last screen.
    pub async fn wait_for_screen(
        &self,
        wants: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let found = wait_for(timeout, "the screen", || async {
            let screen = self.screen().ok()?;
            wants.iter().all(|w| screen.contains(w)).then_some(screen)
        })
        .await;
        match found {
            Ok(screen) => Ok(screen),
            Err(_) => bail!(
                "the screen never showed {wants:?}; it shows:\n{}",
                self.screen().unwrap_or_default()
            ),
        }
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .context("running tmux")?;
        if !out.status.success() {
            bail!(
                "tmux {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _gone = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}
