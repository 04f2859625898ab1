//! Two Linux network namespaces joined by a veth pair, for LAN scenarios (mDNS) that must cross a
//! real link rather than loopback. Needs root and iproute2; removed on drop, even after a panic.

use std::process::Command;

use anyhow::{Context, bail};

/// A pair of namespaces `a` and `b`, linked by a veth pair with `10.231.0.1/24` in `a` and
/// `10.231.0.2/24` in `b`, loopback up in both.
pub struct NetnsPair {
    /// Name of the first namespace.
    pub a: String,
    /// Name of the second namespace.
    pub b: String,
}

/// Address of the veth end in namespace `a`.
pub const ADDR_A: &str = "10.231.0.1";
/// Address of the veth end in namespace `b`.
pub const ADDR_B: &str = "10.231.0.2";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().with_context(|| {
        format!(
            "cannot run `ip {}` (is iproute2 installed?)",
            args.join(" ")
        )
    })?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

impl NetnsPair {
    /// Creates the namespaces and the link; names carry `tag` and the process id so parallel runs
    /// do not collide. Fails with the failing `ip` command when it cannot (not root, no iproute2).
    pub fn create(tag: &str) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let pair = Self {
            a: format!("sy-{tag}-a-{pid}"),
            b: format!("sy-{tag}-b-{pid}"),
        };
        // From here on, Drop cleans up whatever part was made.
        let veth_a = format!("sya{pid}");
        let veth_b = format!("syb{pid}");
        ip(&["netns", "add", &pair.a])?;
        ip(&["netns", "add", &pair.b])?;
        ip(&[
            "link", "add", &veth_a, "netns", &pair.a, "type", "veth", "peer", "name", &veth_b,
            "netns", &pair.b,
        ])?;
        for (ns, dev, addr) in [(&pair.a, &veth_a, ADDR_A), (&pair.b, &veth_b, ADDR_B)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "multicast", "on", "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace also deletes the veth end inside it (and so its peer).
        for ns in [&self.a, &self.b] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                tracing::warn!(namespace = %ns, error = %e, "cannot delete test namespace");
            }
        }
    }
}
