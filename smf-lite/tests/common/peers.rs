//! The daemon's peers on loopback for the daemon tests: a fake UPF
//! (wire::pfcp over UDP, from a thread) and a fake gNB (N2-lite over HTTP),
//! with helpers to configure the daemon and call its API.

pub use super::loopback::Tunnels;
use super::loopback::{fake_gnb_with, GnbOpts};
use super::FakeUpf;
use smf_lite::client::SmfClient;
use smf_lite::Config;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake UPF answering on a UDP socket from a thread; stopped on drop.
pub struct UdpUpf {
    pub addr: SocketAddr,
    pub upf: Arc<Mutex<FakeUpf>>,
    _server: testkit::UdpServer,
}

impl UdpUpf {
    pub fn start(name: &str) -> UdpUpf {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = sock.local_addr().expect("addr");
        let upf = Arc::new(Mutex::new(FakeUpf::new(name, 4242, 0x100)));
        let u = upf.clone();
        let server = testkit::udp_server(sock, move |sock, req, from| {
            let rsp = u.lock().expect("lock").handle(req);
            if let Some(r) = rsp {
                let _ = sock.send_to(&r, from);
            }
        })
        .expect("fake UPF thread");
        UdpUpf {
            addr,
            upf,
            _server: server,
        }
    }
}

/// The fake gNB of the daemon tests: downlink on 10.3.0.1, TEIDs from
/// 0x9000 by the tunnels held, a delete of an unknown tunnel is a 404.
pub async fn fake_gnb() -> (SocketAddr, Tunnels) {
    fake_gnb_with(GnbOpts {
        dl_addr: Ipv4Addr::new(10, 3, 0, 1),
        teid: |held, _, _| 0x9000 + held as u32,
        strict_delete: true,
    })
    .await
}

/// A configuration on loopback with these UPFs (name, N4, DNN, pool) and
/// short PFCP timers, then `extra` TOML.
pub fn config_text(upfs: &[(&str, SocketAddr, &str, &str)], extra: &str) -> String {
    let mut t = String::from(
        "node_id = \"127.0.0.1\"\nn4_bind = \"127.0.0.1:0\"\napi_bind = \"127.0.0.1:0\"\n\
         [timers]\nt1_ms = 200\nn1 = 2\nheartbeat_ms = 500\n",
    );
    for (name, n4, dnn, pool) in upfs {
        t.push_str(&format!(
            "[[upf]]\nname = \"{name}\"\nn4 = \"{n4}\"\n[[upf.dnn]]\nname = \"{dnn}\"\npool = \"{pool}\"\n"
        ));
    }
    t + extra
}

pub fn config(upfs: &[(&str, SocketAddr, &str, &str)]) -> Config {
    Config::parse(&config_text(upfs, "")).expect("valid")
}

/// Blocking calls on the blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("join")
}

/// testkit::wait_until from a test on tokio's multi-thread runtime: the
/// runtime hands this worker's other tasks to another thread meanwhile.
/// `f` may call the blocking client, or `Handle::current().block_on`.
pub fn wait_in_place(timeout: Duration, f: impl FnMut() -> bool) -> bool {
    tokio::task::block_in_place(|| testkit::wait_until(timeout, f))
}

pub async fn wait_associated(c: &SmfClient, n: usize) {
    let mut upfs = Vec::new();
    let associated = wait_in_place(Duration::from_secs(5), || {
        upfs = c.upfs().expect("GET /upfs");
        upfs.iter().filter(|u| u["state"] == "associated").count() == n
    });
    assert!(associated, "not associated within 5 s: {upfs:?}");
}

pub fn raw(method: &str, url: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let c = ctlhttp::blocking::Client::new(Duration::from_secs(30));
    let r = match (method, body) {
        ("POST", Some(b)) => c.post_json(url, b.to_owned()),
        ("GET", _) => c.get(url),
        ("DELETE", _) => c.delete(url),
        _ => panic!("unsupported"),
    };
    let r = r.expect("transport");
    let (status, text) = (r.status, r.text());
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}
