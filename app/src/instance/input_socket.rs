//! The input thread: reads the UE's input datagrams from the instance's
//! UDP socket, takes only those from the UE's address, and hands them to
//! an [`InputPort`], which decides what each becomes.

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::{InputOutcome, InputPort, Shared};

/// Takes the UE's input datagrams: only from `ue_ip`, the session address
/// the instance streams to (DESIGN.md section 3: nobody else plays, or
/// switches, for the UE's account through this instance).
pub(super) fn input_loop(sock: &UdpSocket, sh: &Shared, ue_ip: IpAddr) {
    let mut buf = [0u8; 2048];
    let mut port = InputPort::default();
    while !sh.stopping() {
        match sock.recv_from(&mut buf) {
            Ok((_, from)) if from.ip() != ue_ip => {
                let k = sh.metrics.inputs_foreign.fetch_add(1, Ordering::Relaxed) + 1;
                if k % 100 == 1 {
                    warn!(%from, ue = %ue_ip, foreign = k, "input datagram not from the UE's address: dropped");
                }
            }
            Ok((n, from)) => {
                let rep = port.handle(&buf[..n], Instant::now(), sh.role(), sh, &sh.metrics);
                if let InputOutcome::Malformed(e) = &rep.outcome {
                    let k = sh.metrics.inputs_malformed.load(Ordering::Relaxed);
                    if k % 100 == 1 {
                        warn!(%from, error = %e, malformed = k, "malformed input datagram");
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                warn!(error = %e, "input socket");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
