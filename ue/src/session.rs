//! The UE's PDU sessions: ask through the gNB's N1 relay, then give each
//! session its address (/32 on the radio interface), a routing table
//! (`default via GATEWAY dev RADIO onlink`) and a rule
//! (`from UE_ADDR lookup TABLE`), so that an application picks a session by
//! binding to its address. Release undoes all three.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use topo::netcfg::{Net, NetError};
use tracing::{debug, info, warn};
use wire::ctl::{ApiError, SessionInfo, SessionRequest};

use crate::config::UeConfig;

/// A session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session id is out of range.
    #[error("PDU session id {0} is not in 1..=15")]
    BadPsi(u8),
    /// The UE already has this session.
    #[error("session {0} already exists")]
    Exists(u8),
    /// The UE has no such session.
    #[error("no session {0}")]
    NotFound(u8),
    /// The gNB or the SMF refused (their status and error).
    #[error("network refused ({status}): {}", .error.error)]
    Rejected {
        /// HTTP status.
        status: u16,
        /// Their error body.
        error: ApiError,
    },
    /// The gNB could not be reached, or its answer was not understood.
    #[error("N1 relay: {0}")]
    Relay(String),
    /// Setting up the address, rule or route failed (the session was
    /// released again).
    #[error("installing the session: {0}")]
    Net(#[from] NetError),
}

/// A session the UE holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UeSession {
    /// What the SMF said.
    pub info: SessionInfo,
    /// Its routing table.
    pub table: u32,
}

/// The UE's sessions, one manager per UE identity.
#[derive(Debug)]
pub struct SessionManager {
    cfg: UeConfig,
    net: Net,
    radio_index: u32,
    gateway: Ipv4Addr,
    http: ctlhttp::Client,
    sessions: tokio::sync::Mutex<BTreeMap<u8, UeSession>>,
    metrics: Metrics,
}

/// Upper bounds (seconds) of the session setup time histogram.
const SETUP_BUCKETS: [f64; 10] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 2.0];

/// Lock-free counters of a UE, served as Prometheus text.
#[derive(Debug, Default)]
struct Metrics {
    established: AtomicU64,
    rejected: AtomicU64,
    relay_errors: AtomicU64,
    install_errors: AtomicU64,
    released: AtomicU64,
    release_errors: AtomicU64,
    /// Counts per bucket of SETUP_BUCKETS (each its own), then +Inf.
    setup_buckets: [AtomicU64; SETUP_BUCKETS.len() + 1],
    setup_sum_ns: AtomicU64,
    /// Installing address, route and rule (successful setups).
    install: ctlhttp::metrics::Timed,
}

impl Metrics {
    fn observe_setup(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = SETUP_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(SETUP_BUCKETS.len());
        self.setup_buckets[i].fetch_add(1, Relaxed);
        self.setup_sum_ns
            .fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
    }
}

impl SessionManager {
    /// Opens netlink in the current namespace and finds the radio
    /// interface. Inside a tokio runtime.
    pub async fn new(cfg: UeConfig) -> Result<SessionManager, SessionError> {
        let net = Net::open()?;
        let radio_index = net.link_index(&cfg.radio_iface).await?;
        // validate() made sure there is one.
        let gateway = cfg.gateway().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let http = ctlhttp::Client::new(Duration::from_secs(15));
        Ok(SessionManager {
            cfg,
            net,
            radio_index,
            gateway,
            http,
            sessions: tokio::sync::Mutex::new(BTreeMap::new()),
            metrics: Metrics::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &UeConfig {
        &self.cfg
    }

    /// One N1-lite call through the gNB's relay: its status and body.
    pub async fn n1(
        &self,
        method: &'static str,
        path: String,
        body: Option<String>,
    ) -> Result<(u16, String), SessionError> {
        self.n1_with(&self.http, method, path, body).await
    }

    /// [`SessionManager::n1`] with another client (e.g. a longer timeout
    /// for the event long poll).
    pub async fn n1_with(
        &self,
        http: &ctlhttp::Client,
        method: &'static str,
        path: String,
        body: Option<String>,
    ) -> Result<(u16, String), SessionError> {
        let url = format!("http://{}{}", self.cfg.gnb_n1, path);
        let r = match (method, body) {
            ("POST", Some(b)) => http.post_json(&url, b).await,
            ("GET", _) => http.get(&url).await,
            _ => http.delete(&url).await,
        };
        let r = r.map_err(|e| SessionError::Relay(e.to_string()))?;
        Ok((r.status, r.text()))
    }

    /// The N1 client (cheap to clone; `with_timeout` for a long poll).
    pub fn http(&self) -> &ctlhttp::Client {
        &self.http
    }

    /// An error answer as a [`SessionError::Rejected`].
    pub fn rejected(status: u16, body: &str) -> SessionError {
        let error = serde_json::from_str::<ApiError>(body).unwrap_or(ApiError {
            error: if body.is_empty() {
                format!("HTTP {status}")
            } else {
                body.to_string()
            },
            field: None,
        });
        SessionError::Rejected { status, error }
    }

    /// Establishes session `psi` and installs its address, table and rule.
    pub async fn establish(
        &self,
        psi: u8,
        dnn: &str,
        upf: Option<&str>,
    ) -> Result<SessionInfo, SessionError> {
        let t0 = Instant::now();
        let r = self.establish_inner(psi, dnn, upf).await;
        let m = &self.metrics;
        match &r {
            Ok(_) => {
                m.established.fetch_add(1, Relaxed);
                m.observe_setup(t0.elapsed());
            }
            Err(SessionError::Rejected { .. }) => {
                m.rejected.fetch_add(1, Relaxed);
            }
            Err(SessionError::Relay(_)) => {
                m.relay_errors.fetch_add(1, Relaxed);
            }
            Err(SessionError::Net(_)) => {
                m.install_errors.fetch_add(1, Relaxed);
            }
            Err(_) => {}
        }
        r
    }

    async fn establish_inner(
        &self,
        psi: u8,
        dnn: &str,
        upf: Option<&str>,
    ) -> Result<SessionInfo, SessionError> {
        if !(1..=15).contains(&psi) {
            return Err(SessionError::BadPsi(psi));
        }
        let mut sessions = self.sessions.lock().await;
        if sessions.contains_key(&psi) {
            return Err(SessionError::Exists(psi));
        }
        let req = SessionRequest {
            ue_id: self.cfg.ue_id.clone(),
            pdu_session_id: psi,
            dnn: dnn.into(),
            upf: upf.map(str::to_string),
            gnb: None,
        };
        let body = serde_json::to_string(&req).map_err(|e| SessionError::Relay(e.to_string()))?;
        let (status, body) = self.n1("POST", "/n1/sessions".into(), Some(body)).await?;
        if status != 201 && status != 200 {
            return Err(SessionManager::rejected(status, &body));
        }
        let info: SessionInfo = serde_json::from_str(&body)
            .map_err(|e| SessionError::Relay(format!("bad SessionInfo: {e}: {body}")))?;
        let table = self.cfg.table(psi);
        let t_install = Instant::now();
        if let Err(e) = self.install(info.ue_addr, table, true).await {
            // Nothing half made: undo locally and at the network.
            let _ = self.install(info.ue_addr, table, false).await;
            let _ = self.n1("DELETE", self.release_path(psi), None).await;
            return Err(e.into());
        }
        self.metrics.install.observe(t_install);
        info!(ue = %self.cfg.ue_id, psi, ue_addr = %info.ue_addr, upf = %info.upf, table, "session up");
        sessions.insert(
            psi,
            UeSession {
                info: info.clone(),
                table,
            },
        );
        Ok(info)
    }

    /// Installs a session the network set up on its own (CSM's parallel
    /// session, told over N1 by the SMF's migration manager): address,
    /// table and rule, as for one the UE asked for.
    pub async fn adopt(&self, info: SessionInfo) -> Result<(), SessionError> {
        let psi = info.pdu_session_id;
        if !(1..=15).contains(&psi) {
            return Err(SessionError::BadPsi(psi));
        }
        let mut sessions = self.sessions.lock().await;
        if sessions.contains_key(&psi) {
            return Err(SessionError::Exists(psi));
        }
        let table = self.cfg.table(psi);
        if let Err(e) = self.install(info.ue_addr, table, true).await {
            let _ = self.install(info.ue_addr, table, false).await;
            return Err(e.into());
        }
        self.metrics.established.fetch_add(1, Relaxed);
        info!(ue = %self.cfg.ue_id, psi, ue_addr = %info.ue_addr, upf = %info.upf, table, "session up (set up by the network)");
        sessions.insert(psi, UeSession { info, table });
        Ok(())
    }

    /// Removes a session the network released (its address, table and
    /// rule); nothing is sent.
    pub async fn forget(&self, psi: u8) -> Result<(), SessionError> {
        let mut sessions = self.sessions.lock().await;
        let s = sessions.remove(&psi).ok_or(SessionError::NotFound(psi))?;
        self.install(s.info.ue_addr, s.table, false).await?;
        self.metrics.released.fetch_add(1, Relaxed);
        info!(ue = %self.cfg.ue_id, psi, "session released by the network");
        Ok(())
    }

    /// The session `psi`, if the UE has it.
    pub async fn get(&self, psi: u8) -> Option<SessionInfo> {
        self.sessions.lock().await.get(&psi).map(|s| s.info.clone())
    }

    fn release_path(&self, psi: u8) -> String {
        format!("/n1/sessions/{}/{psi}", self.cfg.ue_id)
    }

    /// Adds (or removes) address, route and rule of a session.
    async fn install(&self, addr: Ipv4Addr, table: u32, add: bool) -> Result<(), NetError> {
        let (net, idx, prio) = (&self.net, self.radio_index, self.cfg.rule_priority);
        if add {
            // Independent of each other: one round trip to the kernel for
            // the three (the caller undoes all on any error).
            let (a, r, u) = tokio::join!(
                net.addr_add(idx, addr, 32),
                net.route_via(true, Ipv4Addr::UNSPECIFIED, 0, self.gateway, idx, table),
                net.rule_from(true, addr, table, prio)
            );
            a.and(r).and(u)
        } else {
            // Each step even if an earlier one failed; the first error wins.
            let r1 = net.rule_from(false, addr, table, prio).await;
            let r2 = net
                .route_via(false, Ipv4Addr::UNSPECIFIED, 0, self.gateway, idx, table)
                .await;
            let r3 = net.addr_del(idx, addr, 32).await;
            r1.and(r2).and(r3)
        }
    }

    /// Releases session `psi`: local state first (the address goes even if
    /// the network is unreachable), then the network.
    pub async fn release(&self, psi: u8) -> Result<(), SessionError> {
        let r = self.release_inner(psi).await;
        match &r {
            Ok(()) => self.metrics.released.fetch_add(1, Relaxed),
            Err(SessionError::NotFound(_)) => 0,
            Err(_) => self.metrics.release_errors.fetch_add(1, Relaxed),
        };
        r
    }

    async fn release_inner(&self, psi: u8) -> Result<(), SessionError> {
        let mut sessions = self.sessions.lock().await;
        let s = sessions.remove(&psi).ok_or(SessionError::NotFound(psi))?;
        let local = self.install(s.info.ue_addr, s.table, false).await;
        let (status, body) = self.n1("DELETE", self.release_path(psi), None).await?;
        info!(ue = %self.cfg.ue_id, psi, status, "session released");
        local?;
        if status != 204 && status != 200 && status != 404 {
            return Err(SessionManager::rejected(status, &body));
        }
        Ok(())
    }

    /// Releases what the network still holds for this UE from an earlier
    /// life of the daemon (one killed before it could release its
    /// sessions): a UE that starts registers afresh, and as a 5G core
    /// releases a re-registering UE's old PDU sessions, the daemon releases
    /// its own, listed by the gNB's N1 relay (which shows a UE only its
    /// own sessions), before it sets up its configured ones, and removes
    /// the address, route and rule the earlier life installed for each.
    /// Returns the
    /// ids released; a release the network refuses is logged and skipped.
    pub async fn release_leftovers(&self) -> Result<Vec<u8>, SessionError> {
        /// What the N1 relay's `GET /n1/sessions` says of a session (the
        /// rest of its fields are not needed here).
        #[derive(serde::Deserialize)]
        struct Listed {
            pdu_session_id: u8,
            ue_addr: Ipv4Addr,
        }
        let (status, body) = self.n1("GET", "/n1/sessions".into(), None).await?;
        if status != 200 {
            return Err(SessionManager::rejected(status, &body));
        }
        let listed: Vec<Listed> = serde_json::from_str(&body)
            .map_err(|e| SessionManager::rejected(status, &format!("bad session list: {e}")))?;
        let mut released = Vec::new();
        for Listed {
            pdu_session_id: psi,
            ue_addr,
        } in listed
        {
            if self.sessions.lock().await.contains_key(&psi) {
                continue;
            }
            // The earlier life's address, route and rule, where it left
            // them (each step is tried; what is already gone is no error).
            if let Err(e) = self.install(ue_addr, self.cfg.table(psi), false).await {
                debug!(ue = %self.cfg.ue_id, psi, %ue_addr, error = %e, "nothing (or not all) of the earlier life's address, route and rule was left");
            }
            let (status, body) = self.n1("DELETE", self.release_path(psi), None).await?;
            if matches!(status, 200 | 204 | 404) {
                info!(ue = %self.cfg.ue_id, psi, "session left by an earlier life released");
                released.push(psi);
            } else {
                warn!(ue = %self.cfg.ue_id, psi, status, body = %body.trim(), "session left by an earlier life not released");
            }
        }
        Ok(released)
    }

    /// Releases every session (daemon exit).
    pub async fn release_all(&self) {
        let psis: Vec<u8> = self.sessions.lock().await.keys().copied().collect();
        for psi in psis {
            if let Err(e) = self.release(psi).await {
                warn!(psi, error = %e, "release failed");
            }
        }
    }

    /// The sessions, by id.
    pub async fn list(&self) -> Vec<SessionInfo> {
        self.sessions
            .lock()
            .await
            .values()
            .map(|s| s.info.clone())
            .collect()
    }

    /// The UE's counters as Prometheus text (exposition format 0.0.4,
    /// through `ctlhttp::metrics`), copied out when asked.
    pub async fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let n = self.sessions.lock().await.len();
        let counters: Vec<(&'static str, &'static str, u64)> = [
            (
                "ue_sessions_established_total",
                "PDU sessions established (address, table and rule installed).",
                &m.established,
            ),
            (
                "ue_sessions_rejected_total",
                "Session requests the network refused.",
                &m.rejected,
            ),
            (
                "ue_relay_errors_total",
                "Session requests that got no valid answer from the gNB's N1 relay.",
                &m.relay_errors,
            ),
            (
                "ue_install_errors_total",
                "Sessions whose address, route or rule could not be installed (released again).",
                &m.install_errors,
            ),
            (
                "ue_sessions_released_total",
                "PDU sessions released.",
                &m.released,
            ),
            (
                "ue_release_errors_total",
                "Releases that failed locally or at the network.",
                &m.release_errors,
            ),
        ]
        .into_iter()
        .map(|(name, help, v)| (name, help, v.load(Relaxed)))
        .collect();
        let buckets: Vec<(f64, u64)> = SETUP_BUCKETS
            .iter()
            .zip(&m.setup_buckets)
            .map(|(b, n)| (*b, n.load(Relaxed)))
            .collect();
        let count = m.setup_buckets.iter().map(|n| n.load(Relaxed)).sum();
        let sum = m.setup_sum_ns.load(Relaxed) as f64 / 1e9;
        let install = m.install.histogram();
        let ue = self.cfg.ue_id.clone();
        ctlhttp::metrics::encode_fn(move |f| {
            let me = [("ue", ue.as_str())];
            for (name, help, v) in &counters {
                f.counter(name, help, [(me, *v)])?;
            }
            f.gauge("ue_sessions", "Sessions held now.", [(me, n)])?;
            let setup = ctlhttp::metrics::Histogram {
                sum,
                count,
                buckets: &buckets,
            };
            f.histogram(
                "ue_session_setup_seconds",
                "From the request to the N1 relay to the address, table and rule installed.",
                [(me, setup)],
            )?;
            f.histogram(
                "ue_session_install_seconds",
                "Installing a new session's address, table and rule.",
                [(me, install)],
            )
        })
    }
}
