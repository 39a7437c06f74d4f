//! A UE -- gNB -- UPF topology in three namespaces, the gNB in-process or
//! as a process, a fake UPF that answers G-PDUs, a routed stand-in UPF, and
//! a fake SMF that drives the gNB's N2-lite API the way the real SMF does.
//! Used by the gnb and ue tests and the gNB throughput example.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wire::ctl::{ApiError, SessionInfo, SessionRequest, TunnelSetup, TunnelSetupResponse};
use wire::gtpu::{decap, encap_in_place, GpduHeader, MessageType, PduSessionInfo};

use crate::{unique, wait_until, KitResult, Netns, Process, StopOnDrop, TempFile};

/// Addresses of [`Topo`].
pub mod addr {
    use std::net::Ipv4Addr;
    /// The UE's own address on the radio link.
    pub const UE_RADIO: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 2);
    /// The gNB's radio address (the UE's gateway, N1 relay).
    pub const GNB_RADIO: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 1);
    /// The gNB's N3 (and, in this topology, control-plane) address.
    pub const GNB_N3: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 1);
    /// The UPF's N3 address (the fake SMF listens here too).
    pub const UPF_N3: Ipv4Addr = Ipv4Addr::new(10, 3, 0, 2);
    /// A data-network host behind the UPF (the fake UPF echoes as if it
    /// were this host).
    pub const DN_HOST: Ipv4Addr = Ipv4Addr::new(10, 60, 0, 1);
}

/// `ue -- radio -- gnb -- n3 -- upf`, three namespaces with unique names.
/// Interfaces are called `radio` (UE and gNB side) and `n3` (gNB and UPF).
#[derive(Debug)]
pub struct Topo {
    /// The UE's namespace.
    pub ue: Netns,
    /// The gNB's namespace.
    pub gnb: Netns,
    /// The fake UPF's (and fake SMF's) namespace.
    pub upf: Netns,
}

impl Topo {
    /// Builds the three namespaces and links, addresses up.
    pub fn new(tag: &str) -> KitResult<Topo> {
        let base = unique(tag);
        let t = Topo {
            ue: Netns::new(&format!("{base}u"))?,
            gnb: Netns::new(&format!("{base}g"))?,
            upf: Netns::new(&format!("{base}p"))?,
        };
        t.ue.veth("radio", &t.gnb, "radio")?;
        t.gnb.veth("n3", &t.upf, "n3")?;
        let a = |ip: Ipv4Addr| format!("{ip}/24");
        t.ue.addr_up("radio", &a(addr::UE_RADIO))?;
        t.gnb.addr_up("radio", &a(addr::GNB_RADIO))?;
        t.gnb.addr_up("n3", &a(addr::GNB_N3))?;
        t.upf.addr_up("n3", &a(addr::UPF_N3))?;
        Ok(t)
    }

    /// A gNB configuration for this topology (N2 on the N3 address, SMF
    /// API at the UPF's address).
    pub fn gnb_config(&self, smf_port: u16) -> gnb::GnbConfig {
        let mut c = gnb::GnbConfig::with_name("gnb-test");
        c.radio_addr = addr::GNB_RADIO;
        c.n3_addr = addr::GNB_N3;
        c.cp_addr = addr::GNB_N3;
        c.smf_api = SocketAddr::from((addr::UPF_N3, smf_port));
        c
    }

    /// Starts the `gnb` binary in the gNB namespace with `cfg` (written to
    /// a temporary file) and waits until its N2 API answers.
    pub fn start_gnb(&self, bin: &str, cfg: &gnb::GnbConfig) -> KitResult<(Process, TempFile)> {
        let file = TempFile::new(&format!("{}.toml", self.gnb.name), &cfg.to_toml())?;
        let mut p = self
            .gnb
            .spawn_process(bin, &["run", "--config", file.path()])?;
        let api = cfg.n2_api();
        let ns = &self.gnb;
        let ok = wait_until(Duration::from_secs(10), || {
            ns.run(move || {
                std::net::TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok()
            })
            .unwrap_or(false)
        });
        if !ok {
            let running = p.running();
            return Err(format!(
                "gNB N2 API {api} did not come up (process running: {running})"
            ));
        }
        Ok((p, file))
    }
}

/// A gNB running in-process on a thread inside its namespace; stopped
/// (rule, routes and TUN removed) on drop.
#[derive(Debug)]
pub struct InProcessGnb {
    run: StopOnDrop<Result<(), String>>,
}

impl InProcessGnb {
    /// Starts [`gnb::run`] with `cfg` in `ns` and waits until its N2 API
    /// accepts connections.
    pub fn start(ns: &Netns, cfg: gnb::GnbConfig) -> KitResult<InProcessGnb> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let api = cfg.n2_api();
        let thread = ns.spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(gnb::run(cfg, async {
                let _ = rx.await;
            }))
            .map_err(|e| e.to_string())
        })?;
        let g = InProcessGnb {
            run: StopOnDrop::new(tx, thread),
        };
        let ok = wait_until(Duration::from_secs(10), || {
            if g.run.is_finished() {
                return true;
            }
            ns.run(move || {
                std::net::TcpStream::connect_timeout(&api, Duration::from_millis(200)).is_ok()
            })
            .unwrap_or(false)
        });
        if g.run.is_finished() {
            return Err(match g.run.join() {
                Some(Ok(Err(e))) => format!("gNB failed: {e}"),
                _ => "gNB thread ended".into(),
            });
        }
        if !ok {
            return Err(format!("gNB N2 API {api} did not come up"));
        }
        Ok(g)
    }
}

/// One uplink G-PDU as the fake UPF saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UlSeen {
    /// Its TEID.
    pub teid: u32,
    /// QFI of its PDU Session Container (None: no container).
    pub qfi: Option<u8>,
    /// Whether the container was an UL PDU SESSION INFORMATION.
    pub ul_container: bool,
    /// Inner source and destination.
    pub src: Ipv4Addr,
    /// Inner destination.
    pub dst: Ipv4Addr,
    /// Inner length.
    pub len: usize,
}

/// A session the fake UPF knows: uplink TEID -> where its downlink goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeSession {
    /// The gNB's TEID.
    pub dl_teid: u32,
    /// The gNB's N3 address.
    pub gnb: SocketAddr,
    /// QFI.
    pub qfi: u8,
}

/// A fake UPF on `UPF_N3:2152`: records every uplink G-PDU, and answers
/// each one of a known session with the same inner packet, addresses and
/// UDP/TCP ports swapped (so the UE sees a reply from the host it sent to),
/// as a DL G-PDU on the session's downlink tunnel. Also records Error
/// Indications and Echo Responses.
#[derive(Debug)]
pub struct FakeUpf {
    /// Uplink tunnel -> downlink tunnel.
    pub sessions: Arc<Mutex<HashMap<u32, FakeSession>>>,
    /// Every uplink G-PDU seen.
    pub seen: Arc<Mutex<Vec<UlSeen>>>,
    /// TEIDs of Error Indications received (TEID Data I).
    pub error_indications: Arc<Mutex<Vec<u32>>>,
    /// Echo Responses received.
    pub echo_responses: Arc<AtomicU64>,
    /// The socket (a clone) to send test packets from 2152.
    pub sock: UdpSocket,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUpf {
    /// Starts it in `ns`, bound to `addr:2152`.
    pub fn start(ns: &Netns, addr: Ipv4Addr) -> KitResult<FakeUpf> {
        let sock = ns.udp((addr, wire::gtpu::PORT))?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        let sessions: Arc<Mutex<HashMap<u32, FakeSession>>> = Arc::default();
        let seen: Arc<Mutex<Vec<UlSeen>>> = Arc::default();
        let errs: Arc<Mutex<Vec<u32>>> = Arc::default();
        let echo = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rx = sock.try_clone().map_err(|e| e.to_string())?;
        let (s2, seen2, errs2, echo2, stop2) = (
            sessions.clone(),
            seen.clone(),
            errs.clone(),
            echo.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 70000];
            let mut out = vec![0u8; 70000];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = rx.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(d) = decap(&buf[..n]) else { continue };
                match d.message_type {
                    MessageType::GPdu => {
                        let p = d.payload;
                        if p.len() < 20 {
                            continue;
                        }
                        let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                        let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
                        seen2
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(UlSeen {
                                teid: d.teid,
                                qfi: d.qfi(),
                                ul_container: matches!(d.pdu_session, Some(PduSessionInfo::Ul(_))),
                                src,
                                dst,
                                len: p.len(),
                            });
                        let sess = s2
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get(&d.teid)
                            .copied();
                        let Some(sess) = sess else { continue };
                        let head = 16;
                        let inner = &mut out[head..head + p.len()];
                        inner.copy_from_slice(p);
                        swap_addresses(inner);
                        if let Ok(pkt) = encap_in_place(
                            &mut out,
                            head,
                            p.len(),
                            &GpduHeader::dl(sess.dl_teid, sess.qfi),
                        ) {
                            let _ = rx.send_to(pkt, sess.gnb);
                        }
                    }
                    MessageType::ErrorIndication => {
                        if let Ok(wire::gtpu::Repr {
                            message: wire::gtpu::Message::ErrorIndication { teid_data, .. },
                            ..
                        }) = wire::gtpu::Repr::parse_bytes(&buf[..n])
                        {
                            errs2
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(teid_data);
                        }
                    }
                    MessageType::EchoResponse => {
                        echo2.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                let _ = from;
            }
        });
        Ok(FakeUpf {
            sessions,
            seen,
            error_indications: errs,
            echo_responses: echo,
            sock,
            stop,
            thread: Some(thread),
        })
    }

    /// The uplink G-PDUs seen so far.
    pub fn seen(&self) -> Vec<UlSeen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends raw GTP-U bytes from the fake UPF's socket.
    pub fn send(&self, bytes: &[u8], to: SocketAddr) -> KitResult<()> {
        self.sock
            .send_to(bytes, to)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Sends a message built from `repr`.
    pub fn send_repr(&self, repr: &wire::gtpu::Repr, to: SocketAddr) -> KitResult<()> {
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(&mut b).map_err(|e| e.to_string())?;
        self.send(&b, to)
    }
}

impl Drop for FakeUpf {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A fake UPF that routes: uplink G-PDUs on `UPF_N3:2152` are decapsulated
/// into a TUN (`n6`, address `DN_HOST`, so the namespace's own sockets on
/// `DN_HOST` are the data network), and packets the kernel routes to the UE
/// pool (10.45.0.0/16) into that TUN are encapsulated towards the gNB's
/// downlink TEID. TCP works through it. Used by the TCP test and the
/// throughput example.
#[derive(Debug)]
pub struct RoutedUpf {
    /// UE address -> downlink tunnel.
    pub sessions: Arc<Mutex<HashMap<Ipv4Addr, FakeSession>>>,
    /// Uplink G-PDUs decapsulated.
    pub ul_packets: Arc<AtomicU64>,
    /// Downlink G-PDUs sent.
    pub dl_packets: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl RoutedUpf {
    /// Starts it in `ns` (its TUN is `n6`).
    pub fn start(ns: &Netns, addr: Ipv4Addr) -> KitResult<RoutedUpf> {
        let (sock, tun) = ns.run(move || {
            let sock = UdpSocket::bind((addr, wire::gtpu::PORT)).map_err(|e| e.to_string())?;
            let tun = gnb::tun::Tun::open("n6").map_err(|e| e.to_string())?;
            Ok::<_, String>((sock, tun))
        })??;
        ns.ip(&["link", "set", "n6", "up"])?;
        ns.ip(&["addr", "add", &format!("{}/32", addr::DN_HOST), "dev", "n6"])?;
        ns.ip(&["route", "add", "10.45.0.0/16", "dev", "n6"])?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .map_err(|e| e.to_string())?;
        let sessions: Arc<Mutex<HashMap<Ipv4Addr, FakeSession>>> = Arc::default();
        let (ul, dl) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (sock, tun, stop, ul) = (
                sock.try_clone().map_err(|e| e.to_string())?,
                tun.try_clone().map_err(|e| e.to_string())?,
                stop.clone(),
                ul.clone(),
            );
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 70000];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, _)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Ok(d) = decap(&buf[..n]) {
                        if d.message_type == MessageType::GPdu {
                            ul.fetch_add(1, Ordering::Relaxed);
                            let _ = tun.send(d.payload);
                        }
                    }
                }
            }));
        }
        {
            let (sessions, stop, dl) = (sessions.clone(), stop.clone(), dl.clone());
            let tun = tun;
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 70000];
                while !stop.load(Ordering::Relaxed) {
                    if !tun
                        .wait_readable(Duration::from_millis(50))
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    let Ok(n) = tun.recv(&mut buf[16..]) else {
                        continue;
                    };
                    if n < 20 {
                        continue;
                    }
                    let dst = Ipv4Addr::new(buf[32], buf[33], buf[34], buf[35]);
                    let sess = sessions
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&dst)
                        .copied();
                    let Some(sess) = sess else { continue };
                    if let Ok(pkt) =
                        encap_in_place(&mut buf, 16, n, &GpduHeader::dl(sess.dl_teid, sess.qfi))
                    {
                        if sock.send_to(pkt, sess.gnb).is_ok() {
                            dl.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        Ok(RoutedUpf {
            sessions,
            ul_packets: ul,
            dl_packets: dl,
            stop,
            threads,
        })
    }
}

impl Drop for RoutedUpf {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Swaps the IPv4 source and destination addresses and, for UDP and TCP,
/// the ports. The checksums stay valid (the sums are order-independent).
pub fn swap_addresses(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    for i in 0..4 {
        p.swap(12 + i, 16 + i);
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if (p[9] == 17 || p[9] == 6) && p.len() >= ihl + 4 {
        p.swap(ihl, ihl + 2);
        p.swap(ihl + 1, ihl + 3);
    }
}

/// A UDP round trip through the data network: from `src` (a session
/// address of the UE in `ue`, bound) to [`addr::DN_HOST`] at `port`, up to
/// three tries 300 ms apart (the first packet may wait for ARP on either
/// link). The answer and who sent it, or `None` when none came.
pub fn dn_round_trip(
    ue: &Netns,
    src: Ipv4Addr,
    port: u16,
    msg: &'static [u8],
) -> KitResult<Option<(Vec<u8>, SocketAddr)>> {
    ue.run(move || -> KitResult<Option<(Vec<u8>, SocketAddr)>> {
        let s = UdpSocket::bind((src, 0)).map_err(|e| format!("bind {src}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .map_err(|e| format!("read timeout: {e}"))?;
        let mut buf = [0u8; 2048];
        for _ in 0..3 {
            s.send_to(msg, (addr::DN_HOST, port))
                .map_err(|e| format!("send from {src}: {e}"))?;
            if let Ok((n, from)) = s.recv_from(&mut buf) {
                return Ok(Some((buf[..n].to_vec(), from)));
            }
        }
        Ok(None)
    })?
}

/// The fake core in `ns` (the UPF's namespace of a [`Topo`]): a [`FakeUpf`]
/// at [`addr::UPF_N3`] and a [`FakeSmf`] on its port 7000 (where
/// `Topo::gnb_config(7000)` sends the gNB) that tells that UPF of sessions.
pub fn fake_core(ns: &Netns) -> KitResult<(FakeUpf, FakeSmf)> {
    let upf = FakeUpf::start(ns, addr::UPF_N3)?;
    let smf = FakeSmf::start(
        ns,
        SocketAddr::from((addr::UPF_N3, 7000)),
        addr::UPF_N3,
        upf.sessions.clone(),
    )?;
    Ok((upf, smf))
}

/// A fake SMF HTTP API (`POST /sessions`, `DELETE /sessions/{ue}/{psi}`,
/// `GET /sessions`) that allocates addresses from 10.45.0.0/24 and uplink
/// TEIDs, calls the gNB's N2-lite API like the real SMF, and tells the fake
/// UPF about the session.
#[derive(Debug)]
pub struct FakeSmf {
    /// Sessions established: (ue_id, psi) -> info.
    pub sessions: Arc<Mutex<HashMap<(String, u8), SessionInfo>>>,
    _run: StopOnDrop<()>,
}

#[derive(Clone)]
struct SmfState {
    sessions: Arc<Mutex<HashMap<(String, u8), SessionInfo>>>,
    upf: Arc<Mutex<HashMap<u32, FakeSession>>>,
    upf_addr: Ipv4Addr,
    next: Arc<AtomicU32>,
}

impl FakeSmf {
    /// Starts it in `ns` on `listen`; `upf_sessions` is the fake UPF's map.
    pub fn start(
        ns: &Netns,
        listen: SocketAddr,
        upf_addr: Ipv4Addr,
        upf_sessions: Arc<Mutex<HashMap<u32, FakeSession>>>,
    ) -> KitResult<FakeSmf> {
        use axum::routing::{delete, post};
        let sessions: Arc<Mutex<HashMap<(String, u8), SessionInfo>>> = Arc::default();
        let st = SmfState {
            sessions: sessions.clone(),
            upf: upf_sessions,
            upf_addr,
            next: Arc::new(AtomicU32::new(2)),
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<KitResult<()>>();
        let thread = ns.spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let l = match tokio::net::TcpListener::bind(listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("fake SMF bind {listen}: {e}")));
                        return;
                    }
                };
                let app = axum::Router::new()
                    .route("/sessions", post(smf_create).get(smf_list))
                    .route("/sessions/{ue}/{psi}", delete(smf_delete))
                    .with_state(st);
                let _ = ready_tx.send(Ok(()));
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        })?;
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|e| format!("fake SMF: {e}"))??;
        Ok(FakeSmf {
            sessions,
            _run: StopOnDrop::new(tx, thread),
        })
    }
}

fn smf_err(code: u16, msg: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status =
        axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
    (
        status,
        axum::Json(ApiError {
            error: msg,
            field: None,
        }),
    )
        .into_response()
}

async fn smf_list(
    axum::extract::State(st): axum::extract::State<SmfState>,
) -> axum::Json<Vec<SessionInfo>> {
    axum::Json(
        st.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect(),
    )
}

/// The fake SMF's N2 calls to a gNB must be answered within this.
const N2_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST url` (a gNB's `/n2/tunnels`): its answer, or why not (naming
/// `url`, and the status if it is not a success).
async fn n2_setup(url: &str, setup: &TunnelSetup) -> Result<TunnelSetupResponse, String> {
    let body = serde_json::to_vec(setup).map_err(|e| format!("{url}: {e}"))?;
    let r = ctlhttp::Client::new(N2_TIMEOUT)
        .post_json(url, body)
        .await
        .map_err(|e| e.to_string())?;
    if !(200..300).contains(&r.status) {
        return Err(format!("{url}: HTTP {}: {}", r.status, r.text().trim()));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("{url}: {e}"))
}

async fn smf_create(
    axum::extract::State(st): axum::extract::State<SmfState>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let req: SessionRequest = match ctlhttp::server::parse_json(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(gnb) = req.gnb.clone() else {
        return smf_err(400, "no gNB in the request".into());
    };
    let n = st.next.fetch_add(1, Ordering::Relaxed);
    let ue_addr = Ipv4Addr::new(10, 45, 0, (n % 250) as u8);
    let ul_teid = 0x1000 + n;
    let qfi = 9;
    let setup = TunnelSetup {
        ue_id: req.ue_id.clone(),
        pdu_session_id: req.pdu_session_id,
        ue_addr,
        ul_teid,
        ul_addr: IpAddr::V4(st.upf_addr),
        qfi,
    };
    let url = format!("http://{}/n2/tunnels", gnb.n2_api);
    let resp = match n2_setup(&url, &setup).await {
        Ok(r) => r,
        Err(e) => return smf_err(502, e),
    };
    let gnb_n3 = match resp.dl_addr {
        IpAddr::V4(a) => SocketAddr::from((a, wire::gtpu::PORT)),
        IpAddr::V6(_) => return smf_err(502, "IPv6 dl_addr".into()),
    };
    st.upf.lock().unwrap_or_else(|e| e.into_inner()).insert(
        ul_teid,
        FakeSession {
            dl_teid: resp.dl_teid,
            gnb: gnb_n3,
            qfi,
        },
    );
    let info = SessionInfo {
        ue_id: req.ue_id.clone(),
        pdu_session_id: req.pdu_session_id,
        dnn: req.dnn.clone(),
        upf: req.upf.clone().unwrap_or_else(|| "upf1".into()),
        ue_addr,
        qfi,
        ul_teid,
        ul_addr: IpAddr::V4(st.upf_addr),
        dl_teid: resp.dl_teid,
        dl_addr: resp.dl_addr,
        cp_seid: u64::from(n),
        up_seid: u64::from(n),
        gnb: gnb.name,
    };
    st.sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((req.ue_id, req.pdu_session_id), info.clone());
    (axum::http::StatusCode::CREATED, axum::Json(info)).into_response()
}

async fn smf_delete(
    axum::extract::State(st): axum::extract::State<SmfState>,
    axum::extract::Path((ue, psi)): axum::extract::Path<(String, u8)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let info = st
        .sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(ue, psi));
    let Some(info) = info else {
        return smf_err(404, "no such session".into());
    };
    st.upf
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&info.ul_teid);
    // The gNB's N2 API is where the tunnel came from: its address is the
    // dl_addr, port 7002 unless the test moved it; the gNB ref is not kept
    // in SessionInfo, so look at the request-time value via dl_addr.
    let url = format!(
        "http://{}:{}/n2/tunnels/{}",
        info.dl_addr,
        wire::ctl::GNB_N2_PORT,
        info.dl_teid
    );
    let _ = ctlhttp::Client::new(N2_TIMEOUT).delete(&url).await;
    axum::http::StatusCode::NO_CONTENT.into_response()
}
