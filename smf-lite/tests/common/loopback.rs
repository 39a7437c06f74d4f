//! Loopback plumbing shared by the tests and `examples/setup_bench.rs` (which
//! includes this file by path, so it uses nothing else of `common`): a
//! network namespace that goes on drop (testkit's), an axum app served on loopback, a
//! fake gNB (N2-lite) and the UPF's configuration on loopback.
#![allow(dead_code)]

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use wire::ctl::{GnbRef, SessionRequest, TunnelSetup, TunnelSetupResponse};

pub use testkit::Netns;

/// Namespace `name` (a stale one of that name removed first) with `lo` up;
/// deleted on drop (also on panic).
pub fn netns(name: String) -> Netns {
    let _ = Command::new("ip").args(["netns", "del", &name]).output();
    Netns::new(&name).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs the future `f` makes on a two-worker tokio runtime on a thread
/// inside `ns` (threads it spawns, tokio workers and the UPF's, inherit
/// it); a panic in it goes on in the caller.
pub fn block_on<F: Future + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> F + Send + 'static,
) -> F::Output
where
    F::Output: Send,
{
    ns.spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f())
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Serves `app` on a fresh loopback port until the runtime ends.
pub async fn serve(app: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

/// The tunnels a fake gNB holds, by downlink TEID.
pub type Tunnels = Arc<Mutex<HashMap<u32, TunnelSetup>>>;

/// How a fake gNB answers.
#[derive(Clone, Copy)]
pub struct GnbOpts {
    /// The downlink address it gives.
    pub dl_addr: Ipv4Addr,
    /// The downlink TEID of a setup: from the tunnels held, the setups made
    /// before (from 1) and the request.
    pub teid: fn(held: usize, seq: u32, req: &TunnelSetup) -> u32,
    /// A delete of a tunnel it does not hold answers 404 (else 204).
    pub strict_delete: bool,
}

#[derive(Clone)]
struct GnbState {
    tunnels: Tunnels,
    seq: Arc<AtomicU32>,
    opts: GnbOpts,
}

/// A fake gNB's N2-lite API on loopback: its address and its tunnels.
pub async fn fake_gnb_with(opts: GnbOpts) -> (SocketAddr, Tunnels) {
    let st = GnbState {
        tunnels: Arc::default(),
        seq: Arc::new(AtomicU32::new(1)),
        opts,
    };
    async fn setup(
        State(st): State<GnbState>,
        Json(req): Json<TunnelSetup>,
    ) -> (StatusCode, Json<TunnelSetupResponse>) {
        let seq = st.seq.fetch_add(1, Ordering::Relaxed);
        let mut t = st.tunnels.lock().expect("lock");
        let teid = (st.opts.teid)(t.len(), seq, &req);
        t.insert(teid, req);
        (
            StatusCode::CREATED,
            Json(TunnelSetupResponse {
                dl_teid: teid,
                dl_addr: IpAddr::V4(st.opts.dl_addr),
            }),
        )
    }
    async fn del(State(st): State<GnbState>, Path(teid): Path<u32>) -> StatusCode {
        match st.tunnels.lock().expect("lock").remove(&teid) {
            None if st.opts.strict_delete => StatusCode::NOT_FOUND,
            _ => StatusCode::NO_CONTENT,
        }
    }
    let tunnels = st.tunnels.clone();
    let app = Router::new()
        .route("/n2/tunnels", post(setup))
        .route("/n2/tunnels/{teid}", delete(del))
        .with_state(st);
    (serve(app).await, tunnels)
}

/// The gNB "gnb1" whose N2-lite API is at `addr`.
pub fn gnb_ref(addr: SocketAddr) -> GnbRef {
    GnbRef {
        name: "gnb1".into(),
        n2_api: addr.to_string(),
    }
}

/// A request for PDU session `psi` of `ue_id` on DNN edge1, through `gnb`,
/// at whichever UPF serves edge1.
pub fn edge1_session(ue_id: String, psi: u8, gnb: &GnbRef) -> SessionRequest {
    SessionRequest {
        ue_id,
        pdu_session_id: psi,
        dnn: "edge1".into(),
        upf: None,
        gnb: Some(gnb.clone()),
    }
}

/// The real UPF's configuration on loopback: N3 on 127.0.0.1 (any port),
/// N4 at `n4`, TUN `tun` for UE pool `pool`, metrics on any port.
pub fn upf_config(node_id: &str, n4: SocketAddr, tun: String, pool: &str) -> upf::config::Config {
    let mut c = upf::config::Config {
        node_id: node_id.into(),
        ..Default::default()
    };
    c.n3.addrs = vec![Ipv4Addr::LOCALHOST];
    c.n3.port = 0;
    c.n4.addr = n4;
    c.n6.tun = tun;
    c.n6.ue_pools = vec![pool.into()];
    c.metrics.addr = SocketAddr::from(([127, 0, 0, 1], 0));
    c
}
