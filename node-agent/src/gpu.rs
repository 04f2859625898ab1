//! The host's NVIDIA GPUs, read from `nvidia-smi`'s CSV output (no CUDA or NVML needed).
//!
//! `nvidia-smi` can hang for seconds on a wedged driver, so it runs under a timeout and is killed
//! when it overruns. A host without it simply reports no GPUs.

use std::time::Duration;

use switchyard_proto::v1::Gpu;
use tokio::process::Command;

use crate::error::Error;

/// The arguments the agent runs `nvidia-smi` with: one CSV line per GPU with these fields, in order.
pub const QUERY_ARGS: [&str; 2] = [
    "--query-gpu=index,name,memory.total,memory.used,utilization.gpu",
    "--format=csv,noheader,nounits",
];

/// Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.used,utilization.gpu
/// --format=csv,noheader,nounits` output.
///
/// A value that is `[N/A]`, `[Not Supported]` or otherwise not a number is unknown: memory becomes
/// 0 and utilisation -1. A line without five fields or without a numeric index is skipped.
pub fn parse_csv(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            // GPU names never contain commas in practice, but join the middle fields to be safe.
            if fields.len() < 5 {
                return None;
            }
            let n = fields.len();
            let index = fields[0].parse::<u32>().ok()?;
            let name = fields[1..n - 3].join(",");
            let mib = |s: &str| {
                s.parse::<f64>()
                    .ok()
                    .map_or(0, |v| v.max(0.0).round() as u64)
            };
            let utilization_pct = fields[n - 1]
                .parse::<f64>()
                .ok()
                .map_or(-1, |v| v.clamp(0.0, 100.0).round() as i32);
            Some(Gpu {
                index,
                name,
                memory_total_mib: mib(fields[n - 3]),
                memory_used_mib: mib(fields[n - 2]),
                utilization_pct,
            })
        })
        .collect()
}

/// Runs `command` (normally `nvidia-smi`) with the query and parses its output.
///
/// `Ok(None)` when the command does not exist (no NVIDIA driver: nothing to report);
/// an error when it exists but fails, overruns `timeout` or exits non-zero.
pub async fn query(command: &str, timeout: Duration) -> Result<Option<Vec<Gpu>>, Error> {
    let child = Command::new(command)
        .args(QUERY_ARGS)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Gpu {
                reason: format!("cannot run {command}: {e}"),
            });
        }
    };
    // Dropping the future on timeout drops the child, which kills it (kill_on_drop).
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| Error::Gpu {
            reason: format!("{command} did not finish within {timeout:?}"),
        })?
        .map_err(|e| Error::Gpu {
            reason: format!("{command}: {e}"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(Error::Gpu {
            reason: format!(
                "{command} exited with {}: {}",
                output.status,
                stderr.trim().chars().take(200).collect::<String>()
            ),
        });
    }
    Ok(Some(parse_csv(&String::from_utf8_lossy(&output.stdout))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(index: u32, name: &str, total: u64, used: u64, util: i32) -> Gpu {
        Gpu {
            index,
            name: name.to_owned(),
            memory_total_mib: total,
            memory_used_mib: used,
            utilization_pct: util,
        }
    }

    #[test]
    fn parses_fixtures() {
        let cases: &[(&str, &str, Vec<Gpu>)] = &[
            (
                "two H100s",
                "0, NVIDIA H100 80GB HBM3, 81559, 1234, 0\n1, NVIDIA H100 80GB HBM3, 81559, 40960, 97\n",
                vec![
                    gpu(0, "NVIDIA H100 80GB HBM3", 81559, 1234, 0),
                    gpu(1, "NVIDIA H100 80GB HBM3", 81559, 40960, 97),
                ],
            ),
            (
                "MIG / unsupported fields are unknown",
                "0, NVIDIA A100-SXM4-40GB MIG 1g.5gb, [N/A], [N/A], [Not Supported]\n",
                vec![gpu(0, "NVIDIA A100-SXM4-40GB MIG 1g.5gb", 0, 0, -1)],
            ),
            (
                "GB10 with unified memory reports N/A memory",
                "0, NVIDIA GB10, [N/A], [N/A], 12\r\n",
                vec![gpu(0, "NVIDIA GB10", 0, 0, 12)],
            ),
            (
                "blank lines, short lines and error text are skipped",
                "\nNVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n0, X, 1\n",
                vec![],
            ),
            ("no GPUs", "", vec![]),
        ];
        for (name, text, want) in cases {
            assert_eq!(parse_csv(text), *want, "{name}");
        }
    }

    #[tokio::test]
    async fn missing_command_means_no_gpus() {
        let got = query(
            "/nonexistent/switchyard-test/nvidia-smi",
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        assert_eq!(got, None);
    }
}
