//! Namespaces for the UPF's tests: a gNB, the UPF and an N6 edge, each in
//! its own network namespace, joined by veth pairs; all removed on drop.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use upf::config::Config;
use upf::daemon::Upf;

pub mod pfcp;

pub const GNB_N3: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
pub const UPF_N3: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
pub const UPF_N6: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 1);
pub const EDGE: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const UE: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 1);
pub const ECHO_PORT: u16 = 7000;

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop (with every link in it).
pub struct Netns(pub String);

impl Netns {
    /// Fails the test unless it runs as root.
    pub fn new(name: String) -> Netns {
        testkit::require_root();
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["ip", "-n", &self.0];
        v.extend_from_slice(args);
        sh(&v);
    }
    pub fn exec(&self, args: &[&str]) {
        let mut v = vec!["ip", "netns", "exec", &self.0];
        v.extend_from_slice(args);
        sh(&v);
    }
    /// Run `f` on a thread that entered this namespace (and whatever it
    /// creates: sockets, TUN, threads, stays there).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let f_ns = std::fs::File::open(&path).expect("netns file");
            // SAFETY: setns on a valid namespace fd affects only this thread.
            let r = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A unique short tag for names (interface names are at most 15 chars).
pub fn tag() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("u{}{}", std::process::id() % 100_000, n)
}

/// gnb --N3-- upf(TUN) --N6-- edge, with a UDP echo server on the edge.
pub struct Bed {
    pub tag: String,
    pub gnb: Netns,
    pub upf_ns: Netns,
    pub edge: Netns,
    pub upf: Option<Upf>,
    /// The test gNB's GTP-U socket (bound in the gnb namespace).
    pub gnb_sock: UdpSocket,
    /// A socket on the edge (for sending downlink traffic first).
    pub edge_sock: UdpSocket,
}

pub fn config(tag: &str) -> Config {
    let mut c = Config {
        node_id: UPF_N3.to_string(),
        ..Config::default()
    };
    c.n3.addrs = vec![UPF_N3];
    c.n4.addr = SocketAddr::from((UPF_N3, 8805));
    c.n6.tun = format!("{tag}t");
    c.n6.ue_pools = vec!["10.60.0.0/16".into()];
    c.metrics.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}

impl Bed {
    pub fn new() -> Bed {
        Self::with_config(|_| {})
    }

    /// Fails the test unless it runs as root (namespaces, TUN).
    pub fn with_config(edit: impl FnOnce(&mut Config)) -> Bed {
        testkit::require_root();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let tag = tag();
        let gnb = Netns::new(format!("{tag}g"));
        let upf_ns = Netns::new(format!("{tag}u"));
        let edge = Netns::new(format!("{tag}e"));
        let (g1, u1) = (format!("{tag}gu"), format!("{tag}ug"));
        let (u2, e2) = (format!("{tag}ue"), format!("{tag}eu"));
        sh(&[
            "ip", "link", "add", &g1, "netns", &gnb.0, "type", "veth", "peer", "name", &u1,
            "netns", &upf_ns.0,
        ]);
        sh(&[
            "ip", "link", "add", &u2, "netns", &upf_ns.0, "type", "veth", "peer", "name", &e2,
            "netns", &edge.0,
        ]);
        gnb.ip(&["addr", "add", "10.0.1.1/24", "dev", &g1]);
        gnb.ip(&["link", "set", &g1, "up"]);
        upf_ns.ip(&["addr", "add", "10.0.1.2/24", "dev", &u1]);
        upf_ns.ip(&["link", "set", &u1, "up"]);
        upf_ns.ip(&["addr", "add", "10.0.2.1/24", "dev", &u2]);
        upf_ns.ip(&["link", "set", &u2, "up"]);
        edge.ip(&["addr", "add", "10.0.2.2/24", "dev", &e2]);
        edge.ip(&["link", "set", &e2, "up"]);
        edge.ip(&["route", "add", "10.60.0.0/16", "via", "10.0.2.1"]);
        upf_ns.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        upf_ns.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
        upf_ns.exec(&["sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0"]);
        let mut cfg = config(&tag);
        edit(&mut cfg);
        let upf = upf_ns.run(move || Upf::start(cfg).expect("UPF starts"));
        let gnb_sock = gnb.run(|| UdpSocket::bind((GNB_N3, 2152)).expect("gnb socket"));
        gnb_sock
            .set_read_timeout(Some(Duration::from_millis(5000)))
            .expect("timeout");
        let edge_sock = edge.run(|| UdpSocket::bind((EDGE, 0)).expect("edge socket"));
        edge_sock
            .set_read_timeout(Some(Duration::from_millis(5000)))
            .expect("timeout");
        // UDP echo server on the edge: a detached thread that ends when its
        // socket's namespace goes away (recv times out, stop flag).
        let echo = edge.run(|| UdpSocket::bind((EDGE, ECHO_PORT)).expect("echo socket"));
        echo.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut idle = 0;
            while idle < 100 {
                match echo.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        idle = 0;
                        let _ = echo.send_to(&buf[..n], from);
                    }
                    Err(_) => idle += 1,
                }
            }
        });
        Bed {
            tag,
            gnb,
            upf_ns,
            edge,
            upf: Some(upf),
            gnb_sock,
            edge_sock,
        }
    }

    pub fn upf(&self) -> &Upf {
        self.upf.as_ref().expect("running")
    }

    /// Send a G-PDU from the gNB.
    pub fn send_gpdu(&self, teid: u32, qfi: Option<u8>, inner: &[u8]) {
        let buf = upf::gtp::ul_gpdu(teid, qfi, inner);
        self.gnb_sock
            .send_to(&buf, SocketAddrV4::new(UPF_N3, 2152))
            .expect("send");
    }

    /// Receive one GTP-U packet at the gNB (None on timeout).
    pub fn recv_gtp(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        match self.gnb_sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Receive one GTP-U packet at the gNB within `wait` (the usual
    /// 5 s read timeout again afterwards).
    pub fn recv_gtp_within(&self, wait: Duration) -> Option<Vec<u8>> {
        self.gnb_sock.set_read_timeout(Some(wait)).expect("timeout");
        let r = self.recv_gtp();
        self.gnb_sock
            .set_read_timeout(Some(Duration::from_millis(5000)))
            .expect("timeout");
        r
    }

    /// Receive GTP-U at the gNB until a G-PDU arrives.
    pub fn recv_gpdu(&self) -> Option<Vec<u8>> {
        loop {
            let p = self.recv_gtp()?;
            if p.get(1) == Some(&upf::gtp::G_PDU) {
                return Some(p);
            }
        }
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(u) = self.upf.take() {
            u.stop();
        }
    }
}

// Session rules shared by the data-path tests: UL PDR 1 (CHOOSE) -> FAR 1
// (N6), DL PDR 2 on the UE address -> FAR 2, QER 1 (QFI 9, not attached).
use upf::rules::*;

/// Uplink PDR `id` with SDF filters `sdf` (none: all), CHOOSE ID 1.
pub fn ul_pdr(id: u16, prec: u32, far: u32, sdf: &[&str]) -> Pdr {
    let sdf = sdf
        .iter()
        .map(|s| upf::sdf::FlowDescription::parse(s).expect("sdf"))
        .collect();
    let mut p = Pdr::uplink(id, prec, far, FTeidSpec::Choose(Some(1)), UE, sdf);
    p.pdi.network_instance = Some("internet".into());
    p
}

/// Downlink PDR `id` on the UE address.
pub fn dl_pdr(id: u16, far: u32) -> Pdr {
    let mut p = Pdr::downlink(id, 100, far, UE);
    p.pdi.network_instance = Some("internet".into());
    p
}

/// Forward to the test gNB with `teid`.
pub fn to_gnb(teid: u32) -> FarAction {
    FarAction::to_access(teid, SocketAddrV4::new(GNB_N3, 2152))
}

/// UL PDR 1 -> N6, DL PDR 2 -> `dl`, QER 1 (QFI 9) not attached.
pub fn rules(dl: FarAction) -> SessionRules {
    SessionRules {
        pdrs: vec![ul_pdr(1, 100, 1, &[]), dl_pdr(2, 2)],
        fars: vec![
            Far {
                id: 1,
                action: FarAction::to_core(),
            },
            Far { id: 2, action: dl },
        ],
        qers: vec![Qer::open(1, Some(9))],
        ..Default::default()
    }
}
