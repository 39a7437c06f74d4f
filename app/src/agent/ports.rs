//! Port allocation for instances: an input (UDP) and a metrics (TCP) port
//! each, from the configured ranges.

use std::collections::HashSet;
use std::net::{IpAddr, TcpListener as StdTcpListener, UdpSocket};

use super::{Agent, AgentError, PortRange};

/// Releases reserved ports on drop.
pub(super) struct PortLease<'a> {
    pub(super) agent: &'a Agent,
    pub(super) ports: Vec<(bool, u16)>,
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
    pub(super) fn alloc_port(
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
