//! The agent's configuration: `app agent`'s command line and port ranges.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// An inclusive port range, written `LOW-HIGH` (or one port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let low: u16 = a.trim().parse().map_err(|_| format!("bad port {a:?}"))?;
        let high: u16 = b.trim().parse().map_err(|_| format!("bad port {b:?}"))?;
        if low == 0 || high < low {
            return Err(format!(
                "bad port range {s:?} (want LOW-HIGH, 0 < LOW <= HIGH)"
            ));
        }
        Ok(PortRange { low, high })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.low, self.high)
    }
}

/// Command-line arguments of `app agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// HTTP API listen address.
    #[arg(long, default_value = "0.0.0.0:7400")]
    pub listen: SocketAddr,
    /// The edge repository directory (created if missing).
    #[arg(long)]
    pub repo: PathBuf,
    /// Base URL of the cloud repository.
    #[arg(long, default_value = "http://127.0.0.1:7310")]
    pub cloud_repo: String,
    /// The cloud logic server's sync address, given to instances as --cloud.
    #[arg(long, default_value = "127.0.0.1:7300")]
    pub cloud_sync: String,
    /// The binary run as `APP_BIN instance ...` (default: this executable).
    #[arg(long)]
    pub app_bin: Option<PathBuf>,
    /// UDP ports for the instances' input (one per instance).
    #[arg(long, default_value = "7500-7599")]
    pub input_ports: PortRange,
    /// TCP ports for the instances' metrics/control HTTP (one per instance).
    #[arg(long, default_value = "7600-7699")]
    pub metrics_ports: PortRange,
    /// Directory for instance logs and SDP files (created if missing).
    #[arg(long, default_value = "/tmp/app-agent")]
    pub run_dir: PathBuf,
    /// Address instances listen for input on.
    #[arg(long, default_value = "0.0.0.0")]
    pub input_host: IpAddr,
    /// Address instances send RTP from (--bind).
    #[arg(long, default_value = "0.0.0.0")]
    pub instance_bind: IpAddr,
    /// Address instances serve metrics/control on.
    #[arg(long, default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Prefix of instance names given to the cloud (`<name>-<id>`).
    #[arg(long, default_value = "edge")]
    pub name: String,
    /// Seconds an instance has to become ready.
    #[arg(long, default_value_t = 10.0)]
    pub start_timeout: f64,
    /// Seconds between SIGTERM and SIGKILL when stopping an instance.
    #[arg(long, default_value_t = 5.0)]
    pub stop_timeout: f64,
    /// Where this agent receives state copies (e.g. its inter-edge
    /// address, 10.80.0.2:7500); off when not given.
    #[arg(long)]
    pub copy_listen: Option<SocketAddr>,
    /// Seconds a pull may take in all.
    #[arg(long, default_value_t = 600.0)]
    pub pull_timeout: f64,
    /// The API's token: every request but `GET /healthz` and `GET /metrics`
    /// must carry `Authorization: Bearer TOKEN` (401 otherwise); also sent
    /// to the destination agent of a state copy. Without it the API is
    /// open to whoever reaches it (logged at start).
    #[arg(long, env = "APP_AGENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(
            "7500-7599".parse::<PortRange>(),
            Ok(PortRange {
                low: 7500,
                high: 7599
            })
        );
        assert_eq!(
            "7500".parse::<PortRange>(),
            Ok(PortRange {
                low: 7500,
                high: 7500
            })
        );
        assert!("7599-7500".parse::<PortRange>().is_err());
        assert!("0-5".parse::<PortRange>().is_err());
    }
}
