//! A UDP responder on a thread inside a namespace (the edge side of
//! `testbed demo`'s probes and of `testbed bench sessions`), stopped and
//! joined when dropped.

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bed::BedError;

/// Answers every datagram on its socket with what `reply` writes.
pub(crate) struct UdpResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpResponder {
    /// Binds `addr` in namespace `netns` and answers each datagram `d`
    /// from `from` with the bytes `reply(d, from, out)` puts in `out`
    /// (cleared before each call). `what` names it in errors.
    pub(crate) fn start(
        netns: &str,
        addr: SocketAddrV4,
        what: &str,
        reply: impl Fn(&[u8], SocketAddr, &mut Vec<u8>) + Send + 'static,
    ) -> Result<UdpResponder, BedError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns, stop2) = (netns.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            let sock = topo::netns::enter(&ns)
                .map_err(|e| e.to_string())
                .and_then(|()| UdpSocket::bind(addr).map_err(|e| e.to_string()))
                .and_then(|s| {
                    // Bounds how long a stop waits.
                    s.set_read_timeout(Some(Duration::from_millis(50)))
                        .map(|()| s)
                        .map_err(|e| e.to_string())
                });
            let sock = match sock {
                Ok(s) => {
                    let _ = tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let mut buf = [0u8; 2048];
            let mut out = Vec::with_capacity(2200);
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                out.clear();
                reply(&buf[..n], from, &mut out);
                let _ = sock.send_to(&out, from);
            }
        });
        let r = UdpResponder {
            stop,
            thread: Some(thread),
        };
        match rx.recv() {
            Ok(Ok(())) => Ok(r),
            Ok(Err(e)) => Err(BedError::Request(format!(
                "{what} on {addr} in namespace {netns}: {e}"
            ))),
            Err(_) => Err(BedError::Request(format!(
                "{what} on {addr} in namespace {netns} did not start"
            ))),
        }
    }
}

impl Drop for UdpResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
