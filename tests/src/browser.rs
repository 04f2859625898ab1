//! A real headless browser for dashboard tests: Debian's `chromium` (installed by `.ci/run`),
//! run once per page with a fresh profile, root-safe, with nothing reaching the network but the
//! page asked for. A missing browser is a failure that says how to install it, never a skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

/// How long one page load may take, start-up included (a busy 2-core machine needs seconds).
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// The flags every run gets: headless, no sandbox (tests run as root in CI), no GPU, and none
/// of the browser's own background traffic.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// The installed chromium.
pub struct Browser {
    bin: PathBuf,
}

impl Browser {
    /// `$CHROMIUM`, else `chromium` on `PATH`.
    pub fn find() -> anyhow::Result<Self> {
        if let Some(path) = std::env::var_os("CHROMIUM") {
            return Ok(Self { bin: path.into() });
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|dir| dir.join("chromium"))
            .find(|candidate| candidate.is_file())
            .map(|bin| Self { bin })
            .context("no `chromium` on PATH; install it with `apt-get install -y chromium` (as .ci/run does)")
    }

    /// The DOM of `url` after it loaded, serialised.
    pub async fn dump_dom(&self, url: &str) -> anyhow::Result<String> {
        let out = self.run(&["--dump-dom", url]).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// A PNG of `url` rendered in a `width` × `height` window, written to `file`.
    pub async fn screenshot(
        &self,
        url: &str,
        file: &Path,
        width: u32,
        height: u32,
    ) -> anyhow::Result<()> {
        let _stale = std::fs::remove_file(file);
        self.run(&[
            &format!("--screenshot={}", file.display()),
            &format!("--window-size={width},{height}"),
            url,
        ])
        .await?;
        let png = std::fs::read(file).with_context(|| format!("no screenshot of {url}"))?;
        if !png.starts_with(b"\x89PNG") {
            bail!("the screenshot of {url} is not a PNG");
        }
        Ok(())
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<Vec<u8>> {
        let profile = tempfile::tempdir()?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().context("starting chromium")?;
        let out = tokio::time::timeout(PAGE_TIMEOUT, child.wait_with_output())
            .await
            .with_context(|| format!("chromium took over {PAGE_TIMEOUT:?} on {args:?}"))??;
        if !out.status.success() {
            bail!(
                "chromium {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out.stdout)
    }
}
