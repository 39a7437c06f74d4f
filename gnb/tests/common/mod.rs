//! Helpers of the gNB's namespace tests: HTTP from a namespace, N2 setups
//! as the SMF makes them, a UE's session routing, a UDP echo through the
//! fake UPF, the gNB's tunnels and metrics.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use gnb::tunnels::TunnelView;
use testkit::gnb::{addr, FakeSession, RoutedUpf, Topo};
use testkit::Netns;
use wire::ctl::{TunnelSetup, TunnelSetupResponse};

/// A client for calls from the thread that makes it (its namespace).
pub fn client() -> ctlhttp::blocking::Client {
    ctlhttp::blocking::Client::new(Duration::from_secs(10))
}

/// One HTTP call from inside `ns`: (status, body).
pub fn http(ns: &Netns, method: &'static str, url: String, body: Option<String>) -> (u16, String) {
    ns.run(move || {
        let c = client();
        let r = match (method, body) {
            ("POST", Some(b)) => c.post_json(&url, b),
            ("DELETE", _) => c.delete(&url),
            _ => c.get(&url),
        };
        let r = r.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        (r.status, r.text())
    })
    .unwrap()
}

pub fn n2() -> String {
    format!("http://{}:{}", addr::GNB_N3, wire::ctl::GNB_N2_PORT)
}

/// The gNB's N1 relay for sessions, as the UE calls it.
pub fn n1_sessions() -> String {
    format!(
        "http://{}:{}/n1/sessions",
        addr::GNB_RADIO,
        wire::ctl::GNB_N1_PORT
    )
}

/// Sets a tunnel up as the SMF would; returns the gNB's answer.
pub fn setup(
    upf: &Netns,
    ue: &str,
    psi: u8,
    ue_addr: Ipv4Addr,
    ul_teid: u32,
) -> TunnelSetupResponse {
    let req = TunnelSetup {
        ue_id: ue.into(),
        pdu_session_id: psi,
        ue_addr,
        ul_teid,
        ul_addr: addr::UPF_N3.into(),
        qfi: 9,
    };
    let (st, body) = http(
        upf,
        "POST",
        format!("{}/n2/tunnels", n2()),
        Some(serde_json::to_string(&req).unwrap()),
    );
    assert_eq!(st, 201, "{body}");
    let r: TunnelSetupResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(r.dl_addr, std::net::IpAddr::V4(addr::GNB_N3));
    r
}

/// Releases the tunnel `dl_teid` as the SMF would: (status, body).
pub fn release(upf: &Netns, dl_teid: u32) -> (u16, String) {
    http(
        upf,
        "DELETE",
        format!("{}/n2/tunnels/{dl_teid}", n2()),
        None,
    )
}

/// The UE's socket on `a` that [`dl_udp`] packets are for (port 5555).
pub fn ue_dl_socket(ue: &Netns, a: Ipv4Addr, timeout: Duration) -> UdpSocket {
    let s = ue.udp((a, 5555)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s
}

/// A fake UPF's session state: downlink to the gNB's N3 on `dl_teid`, QFI 9.
pub fn to_gnb(dl_teid: u32) -> FakeSession {
    FakeSession {
        dl_teid,
        gnb: SocketAddr::from((addr::GNB_N3, 2152)),
        qfi: 9,
    }
}

/// A session `a` through the routing fake `upf` (UL TEID `ul_teid`),
/// routed on the UE side with table `table`.
pub fn routed_session(topo: &Topo, upf: &RoutedUpf, a: Ipv4Addr, ul_teid: u32, table: u32) {
    let r = setup(
        &topo.upf,
        &format!("imsi-00101000000{table}"),
        5,
        a,
        ul_teid,
    );
    upf.sessions.lock().unwrap().insert(a, to_gnb(r.dl_teid));
    ue_session(&topo.ue, a, table);
}

pub fn hash(b: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// Sends `len` bytes over TCP from `a` to an echo server on the DN host
/// (behind the UPF) at `port` and reads them back; asserts length, hash
/// and bytes. The address the server saw the connection from.
pub fn tcp_echo(topo: &Topo, a: Ipv4Addr, port: u16, len: usize) -> SocketAddr {
    let listener = topo
        .upf
        .run(move || std::net::TcpListener::bind((addr::DN_HOST, port)).unwrap())
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, peer) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                return peer;
            }
            c.write_all(&buf[..n]).unwrap();
        }
    });
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251 + i / 4099) as u8).collect();
    let sent = data.clone();
    let back = topo
        .ue
        .run(move || {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&SocketAddr::from((a, 0)).into()).unwrap();
            s.connect_timeout(
                &SocketAddr::from((addr::DN_HOST, port)).into(),
                Duration::from_secs(5),
            )
            .unwrap();
            let mut c: std::net::TcpStream = s.into();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut w = c.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(&sent).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut back = Vec::new();
            c.read_to_end(&mut back).unwrap();
            writer.join().unwrap();
            back
        })
        .unwrap();
    let peer = server.join().unwrap();
    assert_eq!(back.len(), len);
    assert_eq!(hash(&back), hash(&data), "{len} bytes: hash differs");
    assert!(back == data, "{len} bytes differ");
    peer
}

/// What the UE does for a session, with `ip`: address, rule, table.
pub fn ue_session(ue: &Netns, ue_addr: Ipv4Addr, table: u32) {
    let a = format!("{ue_addr}/32");
    let t = table.to_string();
    ue.ip(&["addr", "add", &a, "dev", "radio"]).unwrap();
    ue.ip(&["rule", "add", "from", &a, "lookup", &t, "pref", "100"])
        .unwrap();
    ue.ip(&[
        "route",
        "add",
        "default",
        "via",
        &addr::GNB_RADIO.to_string(),
        "dev",
        "radio",
        "table",
        &t,
    ])
    .unwrap();
}

/// Sends `msg` from `src` (bound) to the DN host and waits for the echo.
pub fn udp_echo(ue: &Netns, src: Ipv4Addr, msg: &'static [u8]) -> Option<(Vec<u8>, SocketAddr)> {
    testkit::gnb::dn_round_trip(ue, src, 7777, msg).unwrap()
}

pub fn tunnels(from: &Netns) -> Vec<TunnelView> {
    let (st, body) = http(from, "GET", format!("{}/tunnels", n2()), None);
    assert_eq!(st, 200);
    serde_json::from_str(&body).unwrap()
}

pub fn metric(from: &Netns, name: &str) -> u64 {
    let (st, body) = http(from, "GET", format!("{}/metrics", n2()), None);
    assert_eq!(st, 200);
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// A DL G-PDU on `teid` carrying UDP from the DN host (port 7777) to
/// `dst:5555` with a 4-byte payload.
pub fn dl_udp(teid: u32, dst: Ipv4Addr, payload: &[u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 16 + 28 + 4];
    let inner = &mut p[16..];
    inner[0] = 0x45;
    inner[2..4].copy_from_slice(&32u16.to_be_bytes());
    inner[8] = 64;
    inner[9] = 17;
    inner[12..16].copy_from_slice(&addr::DN_HOST.octets());
    inner[16..20].copy_from_slice(&dst.octets());
    let mut sum = 0u32;
    for i in (0..20).step_by(2) {
        sum += u32::from(u16::from_be_bytes([inner[i], inner[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    inner[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    inner[20..22].copy_from_slice(&7777u16.to_be_bytes());
    inner[22..24].copy_from_slice(&5555u16.to_be_bytes());
    inner[24..26].copy_from_slice(&12u16.to_be_bytes());
    inner[28..32].copy_from_slice(payload);
    wire::gtpu::encap_in_place(&mut p, 16, 32, &wire::gtpu::GpduHeader::dl(teid, 9))
        .unwrap()
        .to_vec()
}

/// A root-only topology `tag` (see [`root_topo`]) with a fake UPF (`start`:
/// `FakeUpf::start` or `RoutedUpf::start`) on the UPF's N3 address and the
/// gNB binary `bin` running, its SMF at port 7000 of the UPF's namespace.
/// Bind the three in this order: they are dropped gNB first, namespaces last.
pub fn gnb_with_upf<U>(
    tag: &str,
    bin: &str,
    start: impl FnOnce(&Netns, Ipv4Addr) -> testkit::KitResult<U>,
) -> (Topo, U, (testkit::Process, testkit::TempFile)) {
    let topo = root_topo(tag);
    let upf = start(&topo.upf, addr::UPF_N3).unwrap();
    let gnb = topo.start_gnb(bin, &topo.gnb_config(7000)).unwrap();
    (topo, upf, gnb)
}

/// The three namespaces of [`Topo`] for a root-only test that runs the gNB
/// (needs root and `nft`; fails, not skips, without them).
pub fn root_topo(tag: &str) -> Topo {
    testkit::require_root();
    testkit::require_tool("nft");
    Topo::new(tag).unwrap()
}
