//! Helpers shared by the integration tests: unique names, an isolated state
//! directory, a UDP echo and a TCP throughput meter between namespaces.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use topo::{Running, UpOptions};

static N: AtomicUsize = AtomicUsize::new(0);

/// A unique namespace prefix and a private state directory, removed on drop.
pub struct Env {
    pub prefix: String,
    pub state: PathBuf,
}

impl Env {
    pub fn new(tag: &str) -> Env {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = format!("t{}{tag}{n}-", pid % 100_000);
        let state = std::env::temp_dir().join(format!("topo-test-{pid}-{tag}-{n}"));
        let _ = std::fs::remove_dir_all(&state);
        Env { prefix, state }
    }

    pub fn opts(&self) -> UpOptions {
        let mut o = UpOptions::with_state_dir(&self.state);
        o.topo_bin = Some(PathBuf::from(env!("CARGO_BIN_EXE_topo")));
        o
    }

    pub fn state_dir(&self) -> topo::StateDir {
        topo::StateDir::new(&self.state)
    }

    /// Namespaces under /run/netns that start with our prefix.
    pub fn namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir("/run/netns")
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Emulator processes whose config lives in our state directory.
    pub fn emu_processes(&self) -> Vec<i32> {
        let want = self.state.to_string_lossy().to_string();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cl) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cl = String::from_utf8_lossy(&cl).replace('\0', " ");
            if cl.contains("emu-run") && cl.contains(&want) {
                out.push(pid);
            }
        }
        out
    }

    /// Runs the topo binary with our state directory.
    pub fn topo(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_topo"));
        c.env("MINEDGE_STATE_DIR", &self.state)
            .env("RUST_LOG", "info");
        c
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Best effort: anything a failed test left behind.
        let _ = topo::down_all(&self.state_dir());
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Sends `n` UDP datagrams from `client` (bound to `src`, or any address) to
/// an echo server on `server` at `dst`; returns the round-trip times.
pub fn udp_echo(
    r: &Running,
    client: &str,
    src: Option<&str>,
    server: &str,
    dst: &str,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let dst: SocketAddr = dst.parse().map_err(|e| format!("{dst}: {e}"))?;
    let bind_any: SocketAddr = if dst.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let srv = r
        .run_in(server, move || UdpSocket::bind(dst))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind {dst} in {server}: {e}"))?;
    srv.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for _ in 0..n {
            match srv.recv_from(&mut buf) {
                Ok((len, from)) => {
                    let _ = srv.send_to(&buf[..len], from);
                }
                Err(_) => return,
            }
        }
    });
    let src: SocketAddr = match src {
        Some(s) => format!("{s}:0").parse().map_err(|e| format!("{s}: {e}"))?,
        None => bind_any,
    };
    let cli = r
        .run_in(client, move || UdpSocket::bind(src))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind in {client}: {e}"))?;
    cli.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut rtts = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..n {
        let msg = format!("ping {i} from {client}");
        let t = Instant::now();
        cli.send_to(msg.as_bytes(), dst)
            .map_err(|e| format!("send {client} -> {dst}: {e}"))?;
        let (len, from) = cli
            .recv_from(&mut buf)
            .map_err(|e| format!("no echo {client} -> {server} {dst}: {e}"))?;
        if &buf[..len] != msg.as_bytes() || from != dst {
            return Err(format!("wrong echo from {from}"));
        }
        rtts.push(t.elapsed());
    }
    let _ = echo.join();
    Ok(rtts)
}

/// TCP goodput (bits/s) from `from` to `to` (listening on `dst`) over about `dur`.
pub fn tcp_goodput(r: &Running, from: &str, to: &str, dst: &str, dur: Duration) -> f64 {
    let dst: SocketAddr = dst.parse().unwrap();
    let l = r
        .run_in(to, move || TcpListener::bind(dst))
        .unwrap()
        .unwrap();
    let rx = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 18];
        let mut total = 0u64;
        let mut first: Option<Instant> = None;
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if first.is_none() {
                first = Some(Instant::now());
                continue; // the clock starts after the first read
            }
            total += n as u64;
        }
        (total, first.map(|f| f.elapsed()).unwrap_or_default())
    });
    let mut s = r
        .run_in(from, move || TcpStream::connect(dst))
        .unwrap()
        .unwrap();
    let buf = vec![0x5au8; 1 << 16];
    let t = Instant::now();
    while t.elapsed() < dur {
        s.write_all(&buf).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    drop(s);
    let (bytes, el) = rx.join().unwrap();
    bytes as f64 * 8.0 / el.as_secs_f64()
}

/// What htb counts per full TCP segment (Ethernet + IP + TCP with timestamps
/// + 1448 bytes of payload) over the payload: goodput x this = layer-2 rate.
pub const L2_PER_PAYLOAD: f64 = 1514.0 / 1448.0;
