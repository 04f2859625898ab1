//! What the admin verbs share: where the voter's admin API is and how to authenticate, and
//! how answers are shown (aligned tables or, with `--json`, JSON).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use switchyard_control_plane::admin::client::AdminClient;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API address of any voter.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_URL",
        default_value = "http://127.0.0.1:7701"
    )]
    pub server: String,
    /// Admin token (default: the one generated in `<data-dir>/admin.token`).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Data directory holding the generated admin token, when `--token` is not given.
    #[arg(
        long = "token-dir",
        global = true,
        env = "SWITCHYARD_DATA_DIR",
        default_value = "switchyard-data"
    )]
    pub token_dir: PathBuf,
    /// CA certificate (PEM) to trust for an `https://` `--server` (a voter serving
    /// `--https-cert`), instead of the system's roots.
    #[arg(long, global = true, env = "SWITCHYARD_HTTPS_CA")]
    pub https_ca: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl AdminArgs {
    /// A client for `--server`, authenticated with `--token` or the data directory's token.
    pub fn client(&self) -> anyhow::Result<AdminClient> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => {
                let path = self.token_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!("no --token given and {} cannot be read", path.display())
                    })?
                    .trim()
                    .to_string()
            }
        };
        let http = super::flags::http_client(
            std::time::Duration::from_secs(30),
            self.https_ca.as_deref(),
        )?;
        Ok(AdminClient::with_http(&self.server, &token, http))
    }
}

/// `-` for 0 (unlimited).
pub fn limit(n: u64) -> String {
    if n == 0 { "-".into() } else { n.to_string() }
}

/// `-` for an empty cell.
pub fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// Writes `value` as pretty JSON and a newline.
pub fn print_json(out: &mut impl Write, value: &impl Serialize) -> anyhow::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes rows under headers, columns padded to their widest cell.
pub fn table(out: &mut impl Write, headers: &[&str], rows: Vec<Vec<String>>) -> anyhow::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(
        out,
        "{}",
        line(headers.iter().map(|h| h.to_string()).collect())
    )?;
    if rows.is_empty() {
        writeln!(out, "(none)")?;
    }
    for row in rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut out = Vec::new();
        table(
            &mut out,
            &["ID", "URL"],
            vec![
                vec!["groq".into(), "https://api.groq.com/openai/v1".into()],
                vec!["a".into(), "http://x".into()],
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "ID    URL\ngroq  https://api.groq.com/openai/v1\na     http://x\n"
        );
        let mut out = Vec::new();
        table(&mut out, &["ID"], vec![]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "ID\n(none)\n");
    }
}
