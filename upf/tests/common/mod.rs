//! Namespaces for the UPF's tests: a gNB, the UPF and an N6 edge, each in
//! its own network namespace, joined by veth pairs; all removed on drop.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
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

pub use testkit::Netns;

/// Namespace `name` (a stale one of that name removed first), with `lo`
/// up; deleted on drop. Fails the test unless it runs as root.
pub fn netns(name: String) -> Netns {
    testkit::require_root();
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    Netns::new(&name).unwrap_or_else(|e| panic!("{e}"))
}

/// What a test kit step made, failing the test on its error (`ip`, a
/// thread in a namespace that panicked).
pub fn must<T>(r: testkit::KitResult<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
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
    /// The UDP echo on the edge at `ECHO_PORT`.
    _echo: testkit::UdpServer,
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
        let gnb = netns(format!("{tag}g"));
        let upf_ns = netns(format!("{tag}u"));
        let edge = netns(format!("{tag}e"));
        let (g1, u1) = (format!("{tag}gu"), format!("{tag}ug"));
        let (u2, e2) = (format!("{tag}ue"), format!("{tag}eu"));
        must(gnb.veth(&g1, &upf_ns, &u1));
        must(upf_ns.veth(&u2, &edge, &e2));
        must(gnb.addr_up(&g1, "10.0.1.1/24"));
        must(upf_ns.addr_up(&u1, "10.0.1.2/24"));
        must(upf_ns.addr_up(&u2, "10.0.2.1/24"));
        must(edge.addr_up(&e2, "10.0.2.2/24"));
        must(edge.ip(&["route", "add", "10.60.0.0/16", "via", "10.0.2.1"]));
        for knob in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            sh(&["ip", "netns", "exec", &upf_ns.name, "sysctl", "-qw", knob]);
        }
        let mut cfg = config(&tag);
        edit(&mut cfg);
        let upf = must(upf_ns.run(move || Upf::start(cfg).expect("UPF starts")));
        let gnb_sock = must(gnb.udp((GNB_N3, 2152)));
        gnb_sock
            .set_read_timeout(Some(Duration::from_millis(5000)))
            .expect("timeout");
        let edge_sock = must(edge.udp((EDGE, 0)));
        edge_sock
            .set_read_timeout(Some(Duration::from_millis(5000)))
            .expect("timeout");
        // UDP echo server on the edge, stopped with the bed.
        let echo = must(testkit::udp_echo(must(edge.udp((EDGE, ECHO_PORT)))));
        Bed {
            tag,
            gnb,
            upf_ns,
            edge,
            upf: Some(upf),
            gnb_sock,
            edge_sock,
            _echo: echo,
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
