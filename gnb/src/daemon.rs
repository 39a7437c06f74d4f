//! The gNB daemon: sets up the TUN and the policy routing, starts the data
//! path and the two HTTP APIs, and undoes everything on shutdown.

use std::future::{Future, IntoFuture};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::config::GnbConfig;
use crate::datapath::{Datapath, DatapathEvent, DrainBarrier, GnbCounters, DRAIN_DEADLINE};
use crate::firewall::{Firewall, FirewallError, FirewallSpec};
use crate::radio::{Attachments, RadioLink, RadioPeer};
use crate::tun::{Tun, TunError};
use crate::tunnels::TunnelTable;
use topo::netcfg::{net_sysctl, Net, NetError};

/// Tells the SMF that this gNB started without tunnels (`POST /n2/gnbs`,
/// as an NG Setup would), so that the sessions it had before a crash get
/// their tunnels again; retried every second until the SMF answers.
async fn announce(gnb: Arc<Gnb>) {
    let url = format!("http://{}/n2/gnbs", gnb.cfg.smf_api);
    let body = serde_json::json!({
        "name": gnb.cfg.name,
        "n2_api": gnb.cfg.n2_api().to_string(),
    })
    .to_string();
    let mut tries = 0u64;
    loop {
        tries += 1;
        match gnb.http.post_json(&url, body.clone()).await {
            Ok(r) if (200..300).contains(&r.status) => {
                info!(smf = %gnb.cfg.smf_api, tries, "SMF told that this gNB started");
                return;
            }
            Ok(r) if (400..500).contains(&r.status) => {
                warn!(smf = %gnb.cfg.smf_api, status = r.status, body = %r.text(),
                      "the SMF refused this gNB's start announcement; sessions of an earlier life stay without tunnels");
                return;
            }
            Ok(r) if tries == 1 => {
                warn!(smf = %gnb.cfg.smf_api, status = r.status, "start announcement not taken; retrying every second")
            }
            Err(e) if tries == 1 => {
                warn!(smf = %gnb.cfg.smf_api, error = %e, "SMF unreachable for the start announcement; retrying every second")
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// An End Marker on a draining tunnel: once every data-path worker has
/// handled what it received before it ([`DrainBarrier`], at most
/// [`DRAIN_DEADLINE`]), the tunnel goes, and the UE's address with its
/// last tunnel.
async fn end_marker(gnb: Arc<Gnb>, table: Arc<TunnelTable>, teid: u32) {
    let drained = &gnb.counters.worker_n3_drained;
    let barrier = DrainBarrier::new(drained.counts());
    let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
    loop {
        let waiting = barrier.waiting(&drained.counts());
        if waiting.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(teid, workers = ?waiting, "End Marker: workers still busy after the drain deadline, the old tunnel goes anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if let Some(a) = crate::datapath::end_marker_teardown(&table, teid) {
        gnb.close_addr(a).await;
    }
}

/// The main routing table (host routes towards the UEs go here).
pub const MAIN_TABLE: u32 = 254;

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum GnbError {
    /// A netlink step failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The TUN device could not be made.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// The radio-side packet filter could not be installed.
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    /// A socket could not be bound or a thread started.
    #[error("{what}: {source}")]
    Io {
        /// What.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GnbError {
    let what = what.into();
    move |source| GnbError::Io { what, source }
}

/// State shared by the APIs.
#[derive(Debug)]
pub struct Gnb {
    /// Configuration.
    pub cfg: GnbConfig,
    /// Tunnels.
    pub table: Arc<TunnelTable>,
    /// Counters.
    pub counters: Arc<GnbCounters>,
    /// Netlink in the gNB's namespace.
    pub net: Net,
    /// Index of the radio interface.
    pub radio_index: u32,
    /// HTTP client of the N1 relay (keep-alive to the SMF).
    pub http: ctlhttp::Client,
    /// Time spent in N1 relays and N2 setups.
    pub timing: crate::api::ApiTiming,
    /// Which UE is which radio peer (bound by the N1 relay).
    pub attached: Attachments,
    /// The radio-side packet filter (None: `radio_firewall = false`).
    pub firewall: Option<Firewall>,
}

impl Gnb {
    /// Adds or removes the host route `UE_ADDR dev RADIO` (downlink).
    pub async fn route_ue(&self, add: bool, ue_addr: Ipv4Addr) -> Result<(), NetError> {
        self.net
            .route_dev(add, ue_addr, 32, self.radio_index, MAIN_TABLE)
            .await
    }

    /// Opens the radio side for session address `ue_addr` of UE `ue_id`:
    /// the host route (downlink), then [`Gnb::bind_addr`].
    /// On a point-to-point link that another UE attached on, nothing is
    /// opened: every frame on that link is that UE's, so the other UE's
    /// uplink could only be spoofed and its downlink would reach the wrong
    /// UE.
    pub async fn open_addr(&self, ue_id: &str, ue_addr: Ipv4Addr) -> Result<(), String> {
        if let Some(owner) = self.attached.link_owner_other_than(ue_id) {
            warn!(ue = %ue_id, %ue_addr, link_ue = %owner, "tunnel for a UE that is not on this point-to-point radio link: its address stays closed on the radio side");
            return Ok(());
        }
        self.route_ue(true, ue_addr)
            .await
            .map_err(|e| format!("cannot route {ue_addr} to the radio link: {e}"))?;
        self.bind_addr(ue_id, ue_addr).await
    }

    /// Binds `ue_addr` to its UE in the filter: its uplink is let in from
    /// the MAC the UE attached with on a shared cell (by address on a
    /// point-to-point link, or for a UE that never attached through this
    /// gNB's N1 relay), and that MAC is pinned as the address's permanent
    /// neighbour, so another UE's ARP cannot take its downlink.
    pub async fn bind_addr(&self, ue_id: &str, ue_addr: Ipv4Addr) -> Result<(), String> {
        let Some(fw) = &self.firewall else {
            return Ok(());
        };
        let mac = match self.attached.link() {
            RadioLink::PointToPoint | RadioLink::EmulatedUes => None,
            RadioLink::Shared => self.attached.peer_of(ue_id).map(|p| p.mac),
        };
        if mac.is_none() && self.attached.link() == RadioLink::Shared {
            warn!(ue = %ue_id, %ue_addr, "tunnel for a UE that did not attach through this gNB's N1 relay: its uplink is checked by address only until it does");
        }
        fw.allow_uplink(ue_addr, mac)
            .map_err(|e| format!("cannot open the uplink filter for {ue_addr}: {e}"))?;
        if let Some(m) = mac {
            self.net
                .neigh_permanent(true, self.radio_index, ue_addr, m.0)
                .await
                .map_err(|e| format!("cannot pin {ue_addr}'s neighbour entry: {e}"))?;
        }
        Ok(())
    }

    /// Closes the radio side for `ue_addr` (its last tunnel is gone): host
    /// route, filter entry, pinned neighbour. Failures are logged.
    pub async fn close_addr(&self, ue_addr: Ipv4Addr) {
        if let Err(e) = self.route_ue(false, ue_addr).await {
            warn!(error = %e, "host route removal failed");
        }
        let Some(fw) = &self.firewall else {
            return;
        };
        match fw.forget_uplink(ue_addr) {
            Ok(Some(Some(m))) => {
                if let Err(e) = self
                    .net
                    .neigh_permanent(false, self.radio_index, ue_addr, m.0)
                    .await
                {
                    warn!(error = %e, %ue_addr, "could not remove the pinned neighbour entry");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, %ue_addr, "could not remove the uplink filter entry"),
        }
    }

    /// A UE attached: the tunnels set up for it before (a gNB restart, or
    /// set up without N1) are now bound to its MAC; on a point-to-point
    /// link, other UEs' addresses opened before anyone attached are closed
    /// (see [`Gnb::open_addr`]).
    pub async fn attached_now(&self, ue_id: &str, peer: RadioPeer) {
        info!(ue = %ue_id, peer = %peer, "UE attached on the radio side");
        let p2p = self.attached.link() == RadioLink::PointToPoint;
        for t in self.table.list().iter() {
            if t.ue_id == ue_id {
                if let Err(e) = self.bind_addr(ue_id, t.ue_addr).await {
                    warn!(error = %e, "could not bind the session address to the UE");
                }
            } else if p2p {
                warn!(ue = %t.ue_id, ue_addr = %t.ue_addr, link_ue = %ue_id, "closing the radio side of a UE that is not on this point-to-point link");
                self.close_addr(t.ue_addr).await;
            }
        }
    }
}

/// Runs the gNB until `shutdown` completes, then removes its rule, routes
/// and TUN. Must run inside a tokio runtime, in the gNB's namespace.
pub async fn run(cfg: GnbConfig, shutdown: impl Future<Output = ()>) -> Result<(), GnbError> {
    if cfg.sysctl {
        for (k, v) in [
            ("ipv4/ip_forward", "1"),
            ("ipv4/conf/all/rp_filter", "0"),
            ("ipv4/conf/default/rp_filter", "0"),
        ] {
            if let Err(e) = net_sysctl(k, v) {
                warn!(key = k, error = %e, "sysctl failed");
            }
        }
    }
    let net = Net::open()?;
    let radio_index = net.link_index(&cfg.radio_iface).await?;
    if cfg.radio_link == RadioLink::EmulatedUes {
        warn!("radio_link = \"emulated-ues\": the N1 relay trusts the UE id of every request; a UE can act for any other (benchmarks only)");
    }
    let firewall = radio_firewall(&cfg)?;
    let workers = dpio::reuseport::workers(cfg.workers).map_err(io_err("data-path workers"))?;
    let (tuns, offloads) = Tun::open_offload_queues(&cfg.tun_name, workers)?;
    if offloads.tso() {
        info!(tun = %cfg.tun_name, queues = tuns.len(), "{offloads}");
    } else {
        warn!(tun = %cfg.tun_name, queues = tuns.len(), "{offloads}");
    }
    let tun_index = net.link_index(&cfg.tun_name).await?;
    // The tunnels carry IPv4 only: without this, the kernel's own IPv6
    // router solicitations on the new TUN show up as uplink junk.
    if let Err(e) = net_sysctl(&format!("ipv6/conf/{}/disable_ipv6", cfg.tun_name), "1") {
        warn!(error = %e, "could not disable IPv6 on the TUN");
    }
    tuns[0].bring_up(cfg.tun_mtu, &[])?;
    if cfg.sysctl {
        let _ = net_sysctl(&format!("ipv4/conf/{}/rp_filter", cfg.tun_name), "0");
    }
    let setup = async {
        net.route_dev(true, Ipv4Addr::UNSPECIFIED, 0, tun_index, cfg.table)
            .await?;
        net.rule_iif(true, &cfg.radio_iface, cfg.table, cfg.rule_priority)
            .await
    };
    if let Err(e) = setup.await {
        let _ = net
            .rule_iif(false, &cfg.radio_iface, cfg.table, cfg.rule_priority)
            .await;
        return Err(e.into());
    }
    let result = serve(&cfg, net.clone(), radio_index, tuns, firewall, shutdown).await;
    // Undo: the rule; host routes of remaining tunnels; the TUN (and its
    // table route) goes when its last handle closed in `serve`.
    let _ = net
        .rule_iif(false, &cfg.radio_iface, cfg.table, cfg.rule_priority)
        .await;
    let _ = net
        .route_dev(false, Ipv4Addr::UNSPECIFIED, 0, tun_index, cfg.table)
        .await;
    result
}

/// Installs the radio-side filter and its ARP sysctls (or warns that it
/// is off).
fn radio_firewall(cfg: &GnbConfig) -> Result<Option<Firewall>, GnbError> {
    if !cfg.radio_firewall {
        warn!("radio_firewall = false: the radio side can reach the gNB's cp and N3 addresses, and the uplink is not checked per UE");
        return Ok(None);
    }
    // ARP on the radio link only for the radio address.
    for (k, v) in [("arp_ignore", "1"), ("arp_announce", "2")] {
        let key = format!("ipv4/conf/{}/{k}", cfg.radio_iface);
        net_sysctl(&key, v).map_err(io_err(format!("sysctl {key}={v}")))?;
    }
    let fw = Firewall::install(&FirewallSpec {
        radio_iface: cfg.radio_iface.clone(),
        radio_addr: cfg.radio_addr,
        n1_port: cfg.n1_port,
        tun: cfg.tun_name.clone(),
    })?;
    info!(
        table = crate::firewall::TABLE,
        "radio-side packet filter installed"
    );
    Ok(Some(fw))
}

async fn serve(
    cfg: &GnbConfig,
    net: Net,
    radio_index: u32,
    tuns: Vec<Tun>,
    firewall: Option<Firewall>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), GnbError> {
    let n3 = SocketAddrV4::new(cfg.n3_addr, cfg.gtpu_port);
    let group = dpio::reuseport::bind_group(n3, tuns.len())
        .map_err(io_err(format!("bind N3 {n3} ({} workers)", tuns.len())))?;
    if let Some(e) = &group.steering_error {
        warn!(error = %e, "N3: datagrams are not steered to workers by source port; the kernel spreads them by a hash");
    }
    let table = Arc::new(TunnelTable::new());
    let counters = Arc::new(GnbCounters::with_workers(tuns.len()));
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut datapath = Datapath::start(tuns, group.sockets, table.clone(), counters.clone(), ev_tx)
        .map_err(io_err("start data path"))?;
    let http = ctlhttp::Client::new(Duration::from_secs(10));
    let gnb = Arc::new(Gnb {
        cfg: cfg.clone(),
        table: table.clone(),
        counters,
        net,
        radio_index,
        http,
        timing: Default::default(),
        attached: Attachments::new(cfg.radio_link),
        firewall,
    });
    let n2 = tokio::net::TcpListener::bind(cfg.n2_api())
        .await
        .map_err(io_err(format!("bind N2 API {}", cfg.n2_api())))?;
    let n1 = tokio::net::TcpListener::bind(cfg.n1_api())
        .await
        .map_err(io_err(format!("bind N1 relay {}", cfg.n1_api())))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let n2_task = tokio::spawn(
        axum::serve(n2, crate::api::n2_router(gnb.clone()))
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    // The N1 relay needs each request's peer: who it is on the radio side.
    let n1_task = tokio::spawn(
        axum::serve(
            n1,
            crate::api::n1_router(gnb.clone())
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop_rx))
        .into_future(),
    );
    info!(
        name = %cfg.name, n2 = %cfg.n2_api(), n1 = %cfg.n1_api(),
        n3 = %cfg.n3_addr, tun = %cfg.tun_name, "gNB ready"
    );
    let announce_task = tokio::spawn(announce(gnb.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            ev = ev_rx.recv() => match ev {
                Some(DatapathEvent::EndMarker(teid)) => {
                    tokio::spawn(end_marker(gnb.clone(), table.clone(), teid));
                }
                None => break,
            },
        }
    }
    info!("gNB stopping");
    announce_task.abort();
    let _ = stop_tx.send(true);
    let _ = n2_task.await;
    let _ = n1_task.await;
    datapath.stop();
    for t in table.list() {
        gnb.close_addr(t.ue_addr).await;
    }
    if let Some(fw) = &gnb.firewall {
        if let Err(e) = fw.remove() {
            warn!(error = %e, "could not remove the radio-side packet filter");
        }
    }
    Ok(())
}
