//! Port allocation for instances: an input (UDP) and a metrics (TCP) port
//! each, from the configured ranges.
//!
//! A port is taken while a start that reserved it is in progress or while
//! the process of the instance that got it runs: the ports of an instance
//! that exited (on its own, or stopped) go back to the pool at once, even
//! while its record stays listed (until `DELETE`). A port some other
//! process holds is skipped (each candidate is test-bound first).

use std::collections::HashSet;
use std::net::{IpAddr, TcpListener as StdTcpListener, UdpSocket};

use super::{Agent, AgentError, PortRange};

/// The ports reserved for a start in progress; released on drop (by then
/// the started instance, if any, holds them).
pub(super) struct PortLease<'a> {
    agent: &'a Agent,
    ports: Vec<(bool, u16)>,
    /// The input (UDP) port.
    pub(super) input: u16,
    /// The metrics/control (TCP) port.
    pub(super) metrics: u16,
}

impl Drop for PortLease<'_> {
    fn drop(&mut self) {
        if let Ok(mut r) = self.agent.reserved.lock() {
            for p in &self.ports {
                r.remove(p);
            }
        }
    }
}

impl Agent {
    /// Reserves an input and a metrics port that neither a running
    /// instance nor another start holds.
    pub(super) fn lease_ports(&self) -> Result<PortLease<'_>, AgentError> {
        let (taken_in, taken_m): (HashSet<u16>, HashSet<u16>) = {
            let l = self
                .instances
                .lock()
                .map_err(|_| AgentError::Internal("instance lock poisoned".into()))?;
            l.values()
                .filter(|i| i.proc.poll().is_none())
                .map(|i| {
                    let i = &i.started.instance;
                    (i.input_port, i.metrics.port())
                })
                .unzip()
        };
        let input =
            self.alloc_port(self.args.input_ports, true, self.args.input_host, &taken_in)?;
        let mut lease = PortLease {
            agent: self,
            ports: vec![(true, input)],
            input,
            metrics: 0,
        };
        lease.metrics = self.alloc_port(
            self.args.metrics_ports,
            false,
            self.args.metrics_host,
            &taken_m,
        )?;
        lease.ports.push((false, lease.metrics));
        Ok(lease)
    }

    fn alloc_port(
        &self,
        range: PortRange,
        udp: bool,
        host: IpAddr,
        taken: &HashSet<u16>,
    ) -> Result<u16, AgentError> {
        let mut r = self
            .reserved
            .lock()
            .map_err(|_| AgentError::Internal("port lock poisoned".into()))?;
        for p in range.low..=range.high {
            if taken.contains(&p) || r.contains(&(udp, p)) {
                continue;
            }
            let free = if udp {
                UdpSocket::bind((host, p)).is_ok()
            } else {
                StdTcpListener::bind((host, p)).is_ok()
            };
            if free {
                r.insert((udp, p));
                return Ok(p);
            }
        }
        Err(AgentError::NoPort {
            what: if udp { "input (UDP)" } else { "metrics (TCP)" },
            range,
        })
    }
}
