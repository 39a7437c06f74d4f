//! Rate shaping with htb (and netem, where the kernel has it), applied with
//! one `tc -batch -` process per namespace.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::config::Shape;

/// A tc invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum TcError {
    /// tc could not be run.
    #[error("cannot run tc in namespace `{ns}`: {source}")]
    Spawn {
        /// Namespace.
        ns: String,
        /// Error.
        source: std::io::Error,
    },
    /// tc refused the commands.
    #[error("tc in namespace `{ns}` failed: {stderr}\ncommands:\n{commands}")]
    Failed {
        /// Namespace.
        ns: String,
        /// tc's stderr.
        stderr: String,
        /// The batch.
        commands: String,
    },
    /// Namespace problem.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

/// What is currently installed on one interface's egress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressState {
    /// An htb root with class 1:1 is installed.
    pub htb: bool,
    /// A netem qdisc is installed (under 1:1, or at the root without htb).
    pub netem: bool,
}

/// Commands turning `cur` into `want` on `dev`; updates `cur`. `use_netem`
/// says whether delay/loss go to netem (else they are the emulator's job).
pub fn commands(dev: &str, cur: &mut EgressState, want: &Shape, use_netem: bool) -> Vec<String> {
    let mut c = Vec::new();
    let want_netem = use_netem && want.impaired();
    let want_htb = want.rate_bps.is_some();
    // Structure changes: rebuild from scratch.
    if cur.htb != want_htb || (cur.netem != want_netem && !want_htb) {
        if cur.htb || cur.netem {
            c.push(format!("qdisc del dev {dev} root"));
        }
        *cur = EgressState::default();
    }
    if let (Some(rate), Some(burst)) = (want.rate_bps, want.effective_burst()) {
        if !cur.htb {
            c.push(format!("qdisc add dev {dev} root handle 1: htb default 1"));
        }
        let quantum = burst.clamp(1514, 200_000);
        let verb = if cur.htb { "change" } else { "add" };
        c.push(format!(
            "class {verb} dev {dev} parent 1: classid 1:1 htb rate {rate}bit ceil {rate}bit burst {burst}b cburst {burst}b quantum {quantum}"
        ));
        cur.htb = true;
        if want_netem {
            let verb = if cur.netem { "change" } else { "add" };
            c.push(format!(
                "qdisc {verb} dev {dev} parent 1:1 handle 10: {}",
                netem_args(want)
            ));
            cur.netem = true;
        } else if cur.netem {
            c.push(format!("qdisc del dev {dev} parent 1:1 handle 10:"));
            cur.netem = false;
        }
    } else if want_netem {
        let verb = if cur.netem { "change" } else { "add" };
        c.push(format!(
            "qdisc {verb} dev {dev} root handle 10: {}",
            netem_args(want)
        ));
        cur.netem = true;
    }
    c
}

fn netem_args(s: &Shape) -> String {
    let mut a = format!("netem limit 100000 delay {}us", s.delay_us);
    if s.jitter_us > 0 {
        a.push_str(&format!(" {}us", s.jitter_us));
    }
    if s.loss_ppm > 0 {
        a.push_str(&format!(" loss {}%", s.loss_ppm as f64 / 10_000.0));
    }
    a
}

/// Runs a tc batch inside namespace `ns`.
pub fn run_batch(ns: &str, cmds: &[String]) -> Result<(), TcError> {
    if cmds.is_empty() {
        return Ok(());
    }
    let text = cmds.join("\n") + "\n";
    tracing::debug!(ns, "tc batch:\n{text}");
    let ns_owned = ns.to_string();
    let out = crate::netns::run_in_netns(ns, move || -> std::io::Result<std::process::Output> {
        let mut child = Command::new("tc")
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(text.as_bytes())?;
        }
        child.wait_with_output()
    })?
    .map_err(|source| TcError::Spawn {
        ns: ns_owned.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(TcError::Failed {
            ns: ns_owned,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            commands: cmds.join("\n"),
        });
    }
    Ok(())
}

static NETEM: OnceLock<bool> = OnceLock::new();

/// Whether the kernel has netem: tries to add a netem qdisc on `lo` in a
/// scratch namespace (made with unshare on a throwaway thread, never bound
/// to a name, gone when the thread ends). Cached for the process.
pub fn netem_available() -> bool {
    *NETEM.get_or_init(|| {
        let r = std::thread::spawn(|| -> bool {
            if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                return false;
            }
            Command::new("tc")
                .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
        .join()
        .unwrap_or(false);
        tracing::info!(
            "kernel netem qdisc: {}",
            if r {
                "available"
            } else {
                "not available (delay/loss use the userspace emulator)"
            }
        );
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions() {
        let mut st = EgressState::default();
        let s = Shape {
            rate_bps: Some(200_000_000),
            ..Default::default()
        };
        let c = commands("eth0", &mut st, &s, false);
        assert_eq!(c.len(), 2);
        assert!(c[1].contains("class add dev eth0 parent 1: classid 1:1 htb rate 200000000bit ceil 200000000bit burst 50000b"), "{c:?}");
        let s2 = Shape {
            rate_bps: Some(5_000_000_000),
            ..Default::default()
        };
        let c = commands("eth0", &mut st, &s2, false);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].starts_with("class change"), "{c:?}");
        let c = commands("eth0", &mut st, &Shape::default(), false);
        assert_eq!(c, vec!["qdisc del dev eth0 root".to_string()]);
        assert_eq!(st, EgressState::default());
        let imp = Shape {
            rate_bps: Some(1_000_000),
            delay_us: 10_000,
            ..Default::default()
        };
        let c = commands("x", &mut st, &imp, true);
        assert!(c[2].contains("netem limit 100000 delay 10000us"), "{c:?}");
    }
}
