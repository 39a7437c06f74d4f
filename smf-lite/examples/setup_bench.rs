//! Session setup time and setup rate of the SMF against the real UPF, both
//! on the loopback of a namespace made for the run (root; the UPF makes a
//! TUN). The gNB is an in-process N2-lite stub.
//!
//! ```text
//! cargo run --release -p smf-lite --example setup_bench -- [SETUPS] [CONCURRENT]
//! ```
//!
//! Prints: setup time (API request to its answer, which the SMF sends after
//! the Session Modification Response) median / p99 over SETUPS sequential
//! setups; the rate with CONCURRENT requests in flight from 64 client
//! threads; and, as the baseline measured in the same run, the round trip of
//! an API call that touches neither UPF nor gNB (GET of a missing session),
//! with the ratio of the two.

use smf_lite::client::SmfClient;
use smf_lite::Config;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use wire::ctl::{GnbRef, SessionRequest, TunnelSetup};

#[path = "../tests/common/loopback.rs"]
mod loopback;

use loopback::{block_on, edge1_session, fake_gnb_with, gnb_ref, netns, GnbOpts};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let setups: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let concurrent: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("setup_bench: needs root (a namespace and a TUN for the UPF)");
        std::process::exit(2);
    }
    let ns = netns(format!("smfb{}", std::process::id() % 100_000));
    let r = std::panic::catch_unwind(|| block_on(&ns, move || bench(setups, concurrent)));
    drop(ns);
    if r.is_err() {
        std::process::exit(1);
    }
}

/// The stub gNB: downlink on 127.0.0.1, TEIDs counted from 1, deletes
/// always answered 204.
async fn gnb() -> SocketAddr {
    let opts = GnbOpts {
        dl_addr: Ipv4Addr::LOCALHOST,
        teid: |_, seq, _| seq,
        strict_delete: false,
    };
    fake_gnb_with(opts).await.0
}

/// The SMF on loopback with one UPF `name` at `n4` serving DNN edge1 from
/// `pool`, then `dnn_extra` TOML for that DNN; and the gNB to name in
/// its requests.
async fn start_smf(
    name: &str,
    n4: SocketAddr,
    pool: &str,
    dnn_extra: &str,
    gnb_addr: SocketAddr,
) -> (smf_lite::daemon::Running, String, GnbRef) {
    let cfg = Config::parse(&format!(
        "node_id = \"127.0.0.1\"\nn4_bind = \"127.0.0.1:0\"\napi_bind = \"127.0.0.1:0\"\n\
         [[upf]]\nname = \"{name}\"\nn4 = \"{n4}\"\n\
         [[upf.dnn]]\nname = \"edge1\"\npool = \"{pool}\"\n{dnn_extra}"
    ))
    .expect("valid");
    let smf = smf_lite::daemon::start(cfg).await.expect("SMF starts");
    let api = smf.api_addr.to_string();
    (smf, api, gnb_ref(gnb_addr))
}

/// Waits (deadline 2 s) until the SMF's one UPF is associated.
fn wait_associated(c: &SmfClient) {
    assert!(
        testkit::wait_until(Duration::from_secs(2), || c
            .upfs()
            .is_ok_and(|u| u[0]["state"] == "associated")),
        "the UPF did not associate within 2 s"
    );
}

/// Sets up sessions `req(0..n)` one after the other: each one's setup time (ms).
fn timed_setups(c: &SmfClient, n: usize, req: impl Fn(usize) -> SessionRequest) -> Vec<f64> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let r = req(i);
        let t = Instant::now();
        c.create(&r).expect("create");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat
}

/// Sets up PDU session `psi` of `concurrent` UEs (IMSIs `prefix` and an
/// 8-digit number) from 64 client threads at most: the failures, the wall
/// time and the process's CPU time (s).
fn concurrent_setups(
    api: &str,
    gnb: &GnbRef,
    concurrent: usize,
    prefix: &'static str,
    psi: u8,
) -> (usize, f64, f64) {
    let threads = 64.min(concurrent.max(1));
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|k| {
            let c = SmfClient::new(api);
            let gnb = gnb.clone();
            std::thread::spawn(move || {
                (k..concurrent)
                    .step_by(threads)
                    .filter(|i| {
                        let r = edge1_session(format!("{prefix}{i:08}"), psi, &gnb);
                        c.create(&r).is_err()
                    })
                    .count()
            })
        })
        .collect();
    let fails: usize = hs.into_iter().map(|h| h.join().unwrap_or(usize::MAX)).sum();
    let elapsed = t0.elapsed().as_secs_f64();
    (fails, elapsed, cpu_seconds() - cpu0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

async fn bench(setups: usize, concurrent: usize) {
    let n4 = SocketAddr::from(([127, 0, 0, 1], 8805));
    let mut uc = loopback::upf_config("upf1.bench", n4, "benchtun".into(), "10.60.0.0/16");
    uc.limits.max_sessions = 100_000;
    let upf = upf::daemon::Upf::start(uc).expect("UPF starts");
    let gnb_addr = gnb().await;
    let ni = "network_instance = \"internet\"\n";
    let (smf, api, gnb_ref) = start_smf("upf1", n4, "10.60.0.0/16", ni, gnb_addr).await;
    let c = SmfClient::new(&api);
    let report = tokio::task::spawn_blocking(move || {
        wait_associated(&c);
        let req = |i: usize, psi: u8| edge1_session(format!("imsi-0010100{i:08}"), psi, &gnb_ref);
        // Warm-up (connections, allocations).
        for i in 0..50 {
            c.create(&req(i, 15)).expect("warm-up create");
            c.release(&format!("imsi-0010100{i:08}"), 15)
                .expect("warm-up release");
        }
        // Baseline: an API round trip that reaches the SMF core only.
        let mut base = Vec::with_capacity(setups);
        for _ in 0..setups {
            let t = Instant::now();
            let _ = c.get("nobody", 1);
            base.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // Component baselines: one N2-lite call to the stub gNB, and one
        // PFCP Session Establishment round trip to the UPF, from this thread.
        let http = smf_lite::client::Http::new(Duration::from_secs(5));
        let mut n2 = Vec::with_capacity(setups);
        for i in 0..setups {
            let t = Instant::now();
            let ts = TunnelSetup {
                ue_id: "x".into(),
                pdu_session_id: 1,
                ue_addr: Ipv4Addr::new(10, 60, 0, 1),
                ul_teid: i as u32,
                ul_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                qfi: 9,
            };
            let _: wire::ctl::TunnelSetupResponse = http
                .post_json(&format!("http://{}/n2/tunnels", gnb_ref.n2_api), &ts)
                .expect("n2");
            n2.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let pfcp = pfcp_rtts(n4, setups);
        // Sequential setups.
        let lat = timed_setups(&c, setups, |i| req(i, 1));
        for i in 0..setups {
            c.release(&format!("imsi-0010100{i:08}"), 1)
                .expect("release");
        }
        // Concurrent setups: `concurrent` UEs from 64 client threads.
        let (fails, elapsed, cpu) =
            concurrent_setups(&api, &gnb_ref, concurrent, "imsi-0010200", 2);
        let listed = c.list().map(|l| l.len()).unwrap_or(0);
        (base, lat, fails, elapsed, listed, n2, pfcp, cpu)
    })
    .await
    .expect("bench thread");
    let (mut base, mut lat, fails, elapsed, listed, mut n2, pfcp, cpu) = report;
    let (b50, b99) = (pct(&mut base, 0.5), pct(&mut base, 0.99));
    let k = (lat.len() / 10).max(1);
    let (mut first, mut last) = (lat[..k].to_vec(), lat[lat.len() - k..].to_vec());
    let (f50, z50) = (pct(&mut first, 0.5), pct(&mut last, 0.5));
    let (l50, l99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!("SMF session setup against the real UPF (loopback, in one namespace)");
    println!("baseline API round trip (GET, no N4/N2): median {b50:.3} ms  p99 {b99:.3} ms");
    println!(
        "N2-lite call to the stub gNB:          median {:.3} ms  p99 {:.3} ms",
        pct(&mut n2, 0.5),
        pct(&mut n2, 0.99)
    );
    let mut est: Vec<f64> = pfcp.iter().map(|p| p.0).collect();
    let mut md: Vec<f64> = pfcp.iter().map(|p| p.1).collect();
    println!(
        "PFCP RTT to the UPF (raw socket): establishment median {:.3} ms p99 {:.3} ms; modification BUFF->FORW median {:.3} ms p99 {:.3} ms",
        pct(&mut est, 0.5),
        pct(&mut est, 0.99),
        pct(&mut md, 0.5),
        pct(&mut md, 0.99)
    );
    println!(
        "session setup ({setups} sequential):       median {l50:.3} ms  p99 {l99:.3} ms   (goal: median < 2 ms)"
    );
    println!(
        "  first {k} setups (few sessions up): median {f50:.3} ms; last {k} (~{setups} up): median {z50:.3} ms"
    );
    println!("setup / baseline (median):             {:.1}x", l50 / b50);
    println!(
        "setup rate ({concurrent} UEs, 64 client threads): {:.0} sessions/s  ({fails} failed, {listed} listed)   (goal: > 2000/s)",
        (concurrent - fails.min(concurrent)) as f64 / elapsed
    );
    let ok = (concurrent - fails.min(concurrent)) as f64;
    println!(
        "CPU time of the whole process in that phase: {:.3} s = {:.0} setups per CPU-second \
         (SMF + UPF + gNB stub + 64 HTTP clients; load average now {})",
        cpu,
        ok / cpu.max(1e-9),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .next()
            .unwrap_or("?")
    );
    smf.stop().await;
    upf.stop();

    // The same concurrent phase against a minimal PFCP responder (O(1) per
    // message) instead of the real UPF: what the SMF itself sustains.
    let stub = stub_upf();
    let (smf, api, gnb_ref) = start_smf("stub", stub, "10.62.0.0/16", "", gnb_addr).await;
    let (rate, cpu, fails, mut lat) = tokio::task::spawn_blocking(move || {
        let c = SmfClient::new(&api);
        wait_associated(&c);
        let lat = timed_setups(&c, setups, |i| {
            edge1_session(format!("imsi-0010400{i:08}"), 1, &gnb_ref)
        });
        let (fails, el, cpu) = concurrent_setups(&api, &gnb_ref, concurrent, "imsi-0010300", 1);
        let ok = (concurrent - fails.min(concurrent)) as f64;
        (ok / el, ok / cpu.max(1e-9), fails, lat)
    })
    .await
    .expect("stub phase");
    println!(
        "against a minimal PFCP responder instead of the UPF: setup median {:.3} ms  p99 {:.3} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    println!(
        "same against a minimal PFCP responder:  {rate:.0} sessions/s, {cpu:.0} setups per CPU-second ({fails} failed)"
    );
    smf.stop().await;
}

/// A PFCP responder that accepts everything with O(1) work per message.
fn stub_upf() -> SocketAddr {
    use wire::pfcp::*;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = sock.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let mut seid = 1u64;
        let node = NodeId::fqdn("stub");
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(m) = Message::parse(&buf[..n]) else {
                continue;
            };
            let seq = m.header.seq;
            let rsp = match m.body {
                MessageBody::AssociationSetupRequest(_) => Message::node(
                    seq,
                    AssociationSetupResponse {
                        node_id: node.clone(),
                        cause: Cause::RequestAccepted,
                        recovery_time_stamp: 1,
                        ..Default::default()
                    },
                ),
                MessageBody::HeartbeatRequest(_) => Message::node(
                    seq,
                    HeartbeatResponse {
                        recovery_time_stamp: 1,
                        ..Default::default()
                    },
                ),
                MessageBody::SessionEstablishmentRequest(r) => {
                    seid += 1;
                    Message::session(
                        r.cp_f_seid.seid,
                        seq,
                        SessionEstablishmentResponse {
                            node_id: node.clone(),
                            cause: Cause::RequestAccepted,
                            up_f_seid: Some(FSeid {
                                seid,
                                ipv4: Some(Ipv4Addr::LOCALHOST),
                                ipv6: None,
                            }),
                            created_pdrs: vec![CreatedPdr {
                                pdr_id: 1,
                                local_f_teid: Some(FTeid::ipv4(seid as u32, Ipv4Addr::LOCALHOST)),
                                ..Default::default()
                            }],
                            ..Default::default()
                        },
                    )
                }
                MessageBody::SessionModificationRequest(_) => Message::session(
                    0,
                    seq,
                    SessionModificationResponse {
                        cause: Cause::RequestAccepted,
                        ..Default::default()
                    },
                ),
                MessageBody::SessionDeletionRequest(_) => Message::session(
                    0,
                    seq,
                    SessionDeletionResponse {
                        cause: Cause::RequestAccepted,
                        ..Default::default()
                    },
                ),
                _ => continue,
            };
            if let Ok(v) = rsp.to_vec() {
                let _ = sock.send_to(&v, from);
            }
        }
    });
    addr
}

/// User + system CPU time of this process, seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Session Establishment round trips to the UPF from a socket of our own
/// (associated first), each session deleted again.
fn pfcp_rtts(n4: SocketAddr, n: usize) -> Vec<(f64, f64)> {
    use upf::n4::fixtures;
    use wire::pfcp::*;
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let me = match sock.local_addr().expect("addr").ip() {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
    };
    let mut buf = [0u8; 65536];
    let mut rpc = |m: Message| -> Message {
        sock.send_to(&m.to_vec().expect("encode"), n4)
            .expect("send");
        let (k, _) = sock.recv_from(&mut buf).expect("UPF answers");
        Message::parse(&buf[..k]).expect("valid")
    };
    rpc(Message::node(
        1,
        AssociationSetupRequest {
            node_id: NodeId::Ipv4(me),
            recovery_time_stamp: ntp_seconds(std::time::SystemTime::now()),
            ..Default::default()
        },
    ));
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let ue = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 60, 200, 1)) + (i as u32 % 250));
        let req = SessionEstablishmentRequest {
            node_id: NodeId::Ipv4(me),
            cp_f_seid: FSeid::ipv4(1_000_000 + i as u64, me),
            create_pdrs: vec![CreatePdr {
                pdr_id: 1,
                precedence: 255,
                pdi: Pdi {
                    source_interface: SourceInterface::Access,
                    local_f_teid: Some(FTeid::choose_v4(None)),
                    network_instance: Some(NetworkInstance::from_dnn("internet")),
                    ue_ip_addresses: vec![UeIpAddress::source_v4(ue)],
                    ..Default::default()
                },
                far_id: Some(1),
                ..Default::default()
            }],
            create_fars: vec![fixtures::core_far(1)],
            ..Default::default()
        };
        let mut req = req;
        // As the SMF does: a downlink PDR/FAR that buffers, then a
        // modification that makes it forward to the gNB.
        let dl = fixtures::dl_pdr(2, 2, ue);
        req.create_pdrs.push(CreatePdr {
            pdi: Pdi {
                network_instance: Some(NetworkInstance::from_dnn("internet")),
                ..dl.pdi
            },
            ..dl
        });
        req.create_fars.push(CreateFar {
            far_id: 2,
            apply_action: ApplyAction::BUFF,
            bar_id: Some(1),
            ..Default::default()
        });
        req.create_bar = Some(CreateBar {
            bar_id: 1,
            ..Default::default()
        });
        let seq = 10 + 3 * i as u32;
        let t = Instant::now();
        let r = rpc(Message::session(0, seq, req));
        let est = t.elapsed().as_secs_f64() * 1e3;
        if let MessageBody::SessionEstablishmentResponse(r) = r.body {
            if let Some(f) = r.up_f_seid {
                let m = SessionModificationRequest {
                    update_fars: fixtures::dl_far_to(1, Ipv4Addr::LOCALHOST),
                    ..Default::default()
                };
                let t = Instant::now();
                rpc(Message::session(f.seid, seq + 1, m));
                v.push((est, t.elapsed().as_secs_f64() * 1e3));
                rpc(Message::session(
                    f.seid,
                    seq + 2,
                    SessionDeletionRequest::default(),
                ));
            }
        }
    }
    v
}
