//! The SMF as an I/O-free state machine (quinn-proto style).
//!
//! [`Smf`] owns the PFCP association of every configured UPF, the session
//! registry, the UE address pools and the SEID space. It reads no clock and
//! opens no socket: every input takes `now`, and what it wants done comes out
//! of [`Smf::poll_action`] ([`Action`]: send a PFCP datagram, call the gNB's
//! N2-lite API, answer an API request). [`Smf::poll_timeout`] says when
//! [`Smf::handle_timeout`] must be called next.
//!
//! Inputs:
//! - [`Smf::create_session`] / [`Smf::release_session`]: API requests,
//!   answered later by [`Action::CreateDone`] / [`Action::ReleaseDone`]
//!   (or at once, when the request is refused before anything is sent);
//! - [`Smf::handle_pfcp`]: a datagram from N4;
//! - [`Smf::n2_setup_done`]: the gNB's answer to [`Action::N2Setup`];
//! - [`Smf::handle_timeout`]: T1 retransmission, heartbeats, association retries.
//!
//! A PDU session goes Establishing (PFCP Session Establishment with an
//! uplink PDR whose F-TEID the UPF CHOOSEs and a downlink FAR that BUFFers)
//! -> WaitN2 (the gNB gets the uplink F-TEID, answers its downlink one) ->
//! Modifying (Update FAR: FORW with Outer Header Creation to the gNB) ->
//! Active. Any failure on the way undoes what was done (PFCP Session
//! Deletion, N2 tunnel delete, address freed) before the API gets its error.
//!
//! When a UPF comes back with a new Recovery Time Stamp, every session it
//! anchored is established again (same UE address, same CP SEID, downlink
//! FAR forwarding straight to the gNB's known F-TEID); if the UPF chose a new
//! uplink F-TEID, the gNB's tunnel is replaced over N2.

use crate::config::{Config, Ipv4Net};
use crate::pool::AddrPool;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
use wire::ctl::{GnbRef, SessionInfo, SessionRequest, TunnelSetup, TunnelSetupResponse};
use wire::pfcp::{self, msg_type as mt, Cause, Message, MessageBody};

/// Identifies an API request so that its answer can be routed back.
pub type ReqId = u64;

/// A session's key: (UE id, PDU session id).
pub type SessionKey = (String, u8);

/// Why a request failed; each maps to an HTTP status and names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmfError {
    /// A request field is missing or wrong.
    #[error("{field}: {msg}")]
    BadRequest { field: &'static str, msg: String },
    /// The session already exists.
    #[error("session ({ue_id}, {psi}) already exists")]
    Duplicate { ue_id: String, psi: u8 },
    /// No such session.
    #[error("no session ({ue_id}, {psi})")]
    NotFound { ue_id: String, psi: u8 },
    /// The session is being set up, released or restored.
    #[error("session ({ue_id}, {psi}) is busy ({state})")]
    Busy {
        ue_id: String,
        psi: u8,
        state: &'static str,
    },
    /// The UPF's pool for the DNN has no free address.
    #[error("UE address pool of {upf}/{dnn} is exhausted")]
    PoolExhausted { upf: String, dnn: String },
    /// The UPF has no PFCP association.
    #[error("UPF {0} is not associated")]
    NotAssociated(String),
    /// The UPF did not answer after N1 retransmissions.
    #[error("UPF {upf} did not answer the {what}")]
    UpfTimeout { upf: String, what: &'static str },
    /// The UPF refused a request.
    #[error("UPF {upf} rejected the {what}: cause {cause}{}", offending_ie.map(|i| format!(", offending IE {i}")).unwrap_or_default())]
    UpfRejected {
        upf: String,
        what: &'static str,
        cause: u8,
        offending_ie: Option<u16>,
    },
    /// The UPF's answer lacked something we need.
    #[error("UPF {upf}: {msg}")]
    UpfBadAnswer { upf: String, msg: String },
    /// The gNB's N2-lite API failed.
    #[error("gNB {gnb}: {msg}")]
    N2Failed { gnb: String, msg: String },
    /// The UPF restarted or the session was lost while the request ran.
    #[error("{0}")]
    Aborted(String),
}

impl SmfError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            SmfError::BadRequest { .. } => 400,
            SmfError::Duplicate { .. } | SmfError::Busy { .. } => 409,
            SmfError::NotFound { .. } => 404,
            SmfError::PoolExhausted { .. } | SmfError::NotAssociated(_) => 503,
            SmfError::UpfTimeout { .. } => 504,
            SmfError::UpfRejected { .. }
            | SmfError::UpfBadAnswer { .. }
            | SmfError::N2Failed { .. }
            | SmfError::Aborted(_) => 502,
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            SmfError::BadRequest { field, .. } => Some(field),
            SmfError::Duplicate { .. } => Some("pdu_session_id"),
            SmfError::PoolExhausted { .. } => Some("dnn"),
            SmfError::NotAssociated(_) => Some("upf"),
            SmfError::N2Failed { .. } => Some("gnb"),
            _ => None,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a PFCP datagram.
    SendPfcp { to: SocketAddr, data: Vec<u8> },
    /// Call `POST /n2/tunnels` on the gNB (after `DELETE`ing
    /// `replace_dl_teid` first, if set) and feed the answer to
    /// [`Smf::n2_setup_done`] with `key` and `gen`.
    N2Setup {
        key: SessionKey,
        gen: u64,
        gnb: GnbRef,
        setup: TunnelSetup,
        replace_dl_teid: Option<u32>,
    },
    /// Call `DELETE /n2/tunnels/{dl_teid}` on the gNB (no answer expected).
    N2Delete { gnb: GnbRef, dl_teid: u32 },
    /// Answer a create request.
    CreateDone {
        req: ReqId,
        result: Result<SessionInfo, SmfError>,
    },
    /// Answer a release request.
    ReleaseDone {
        req: ReqId,
        result: Result<(), SmfError>,
    },
}

/// PFCP association state of a UPF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssocState {
    /// No association; Association Setup is retried every heartbeat interval.
    Down,
    /// Association Setup Request sent.
    Connecting,
    /// Associated; heartbeats running.
    Associated,
}

/// A UPF as `GET /upfs` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UpfStatus {
    pub name: String,
    pub n4: SocketAddr,
    pub state: AssocState,
    /// The UPF's Recovery Time Stamp (NTP seconds), once known.
    pub recovery_time_stamp: Option<u32>,
    /// Its Node ID as it sent it.
    pub node_id: Option<String>,
    /// Restarts detected (changed Recovery Time Stamp).
    pub restarts: u64,
    pub sessions: usize,
    pub pools: Vec<PoolStatus>,
}

/// A UE address pool's usage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PoolStatus {
    pub dnn: String,
    pub pool: String,
    pub in_use: usize,
    pub capacity: u32,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Establishing,
    WaitN2,
    Modifying,
    Active,
    Releasing,
    /// Its UPF restarted or went away; it is restored at the next association.
    Lost,
}

impl SessionState {
    fn name(self) -> &'static str {
        match self {
            SessionState::Establishing => "establishing",
            SessionState::WaitN2 => "waiting for the gNB",
            SessionState::Modifying => "modifying",
            SessionState::Active => "active",
            SessionState::Releasing => "releasing",
            SessionState::Lost => "lost",
        }
    }
}

/// Usage the UPF reported for a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub reports: u64,
    pub ul_bytes: u64,
    pub dl_bytes: u64,
}

/// Counters, rendered by [`Smf::metrics_text`].
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub pfcp_tx: u64,
    pub pfcp_rx: u64,
    pub pfcp_rx_errors: u64,
    pub pfcp_retransmissions: u64,
    pub pfcp_timeouts: u64,
    pub heartbeats_rx: u64,
    pub session_reports_rx: u64,
    pub sessions_created: u64,
    pub sessions_failed: u64,
    pub sessions_released: u64,
    pub sessions_restored: u64,
    pub upf_restarts: u64,
    pub setup_seconds_sum: f64,
    pub setup_seconds_count: u64,
    /// Cumulative counts for [`SETUP_BUCKETS`].
    pub setup_buckets: [u64; SETUP_BUCKETS.len()],
}

/// Bucket bounds (seconds) of the setup-time histogram.
pub const SETUP_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.2, 1.0];

const PDR_UL: u16 = 1;
const PDR_DL: u16 = 2;
const FAR_UL: u32 = 1;
const FAR_DL: u32 = 2;
const QER_ID: u32 = 1;
const URR_ID: u32 = 1;
const RESPONSE_CACHE: usize = 64;

struct Dnn {
    name: String,
    ni: pfcp::NetworkInstance,
    pool: AddrPool,
}

struct Peer {
    name: String,
    addr: SocketAddr,
    dnns: Vec<Dnn>,
    state: AssocState,
    recovery_ts: Option<u32>,
    node_id: Option<String>,
    restarts: u64,
    /// Next heartbeat (associated) or association attempt (down).
    next_timer: Instant,
    hb_outstanding: bool,
    /// Association Setups unanswered in a row (for rate-limited logging).
    assoc_failures: u32,
    /// Answers to the UPF's recent requests, by sequence number, resent
    /// when a request is retransmitted.
    answered: VecDeque<(u32, u8, Vec<u8>)>,
}

#[derive(Debug, Clone)]
enum TxnKind {
    Association,
    Heartbeat,
    Establish {
        key: SessionKey,
        gen: u64,
    },
    Modify {
        key: SessionKey,
        gen: u64,
    },
    Delete {
        key: SessionKey,
        gen: u64,
    },
    /// Deleting what a failed setup left; nobody waits for it.
    Cleanup,
}

struct Txn {
    upf: usize,
    data: Vec<u8>,
    deadline: Instant,
    retries_left: u32,
    kind: TxnKind,
}

struct Session {
    info: SessionInfo,
    upf: usize,
    dnn: usize,
    gnb: GnbRef,
    state: SessionState,
    /// Restoring after a UPF restart: no API request waits.
    restoring: bool,
    /// Bumped at every new attempt so late answers of older ones are ignored.
    gen: u64,
    pending: Option<ReqId>,
    started: Instant,
    usage: Usage,
}

/// A session as the API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionView {
    #[serde(flatten)]
    pub info: SessionInfo,
    pub state: SessionState,
    pub usage: Usage,
}

/// The SMF state machine.
pub struct Smf {
    node_id: pfcp::NodeId,
    cp_addr: Ipv4Addr,
    recovery_ts: u32,
    qfi: u8,
    mbr: pfcp::BitRate,
    urr_period: u32,
    t1: Duration,
    n1: u32,
    hb: Duration,
    default_gnb: Option<GnbRef>,
    peers: Vec<Peer>,
    sessions: HashMap<SessionKey, Session>,
    by_seid: HashMap<u64, SessionKey>,
    txns: HashMap<u32, Txn>,
    next_seq: u32,
    next_seid: u64,
    next_gen: u64,
    actions: VecDeque<Action>,
    metrics: Metrics,
}

impl Smf {
    /// A new SMF; `recovery_ts` is our Recovery Time Stamp (NTP seconds of
    /// this start). Association Setup goes to every UPF at the first
    /// [`Smf::handle_timeout`].
    pub fn new(cfg: &Config, recovery_ts: u32, now: Instant) -> Smf {
        let peers = cfg
            .upf
            .iter()
            .map(|u| Peer {
                name: u.name.clone(),
                addr: u.n4,
                dnns: u
                    .dnn
                    .iter()
                    .map(|d| Dnn {
                        name: d.name.clone(),
                        ni: pfcp::NetworkInstance::from_dnn(
                            d.network_instance.as_deref().unwrap_or(&d.name),
                        ),
                        // validated by Config::validate; an invalid one gets an empty /32
                        pool: AddrPool::new(d.pool.parse().unwrap_or(Ipv4Net {
                            addr: Ipv4Addr::UNSPECIFIED,
                            len: 32,
                        })),
                    })
                    .collect(),
                state: AssocState::Down,
                recovery_ts: None,
                node_id: None,
                restarts: 0,
                next_timer: now,
                hb_outstanding: false,
                assoc_failures: 0,
                answered: VecDeque::new(),
            })
            .collect();
        Smf {
            node_id: cfg.pfcp_node_id(),
            cp_addr: cfg.cp_ipv4().unwrap_or(Ipv4Addr::LOCALHOST),
            recovery_ts,
            qfi: cfg.qfi,
            mbr: pfcp::BitRate {
                ul_kbps: cfg.mbr.ul_kbps,
                dl_kbps: cfg.mbr.dl_kbps,
            },
            urr_period: cfg.usage_report_period_s,
            t1: cfg.timers.t1(),
            n1: cfg.timers.n1,
            hb: cfg.timers.heartbeat(),
            default_gnb: cfg.default_gnb.clone(),
            peers,
            sessions: HashMap::new(),
            by_seid: HashMap::new(),
            txns: HashMap::new(),
            next_seq: 1,
            next_seid: 1,
            next_gen: 1,
            actions: VecDeque::new(),
            metrics: Metrics::default(),
        }
    }

    // ----- outputs -----

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Smf::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.txns.values().map(|t| t.deadline);
        let p = self.peers.iter().filter_map(|p| match p.state {
            AssocState::Connecting => None,
            AssocState::Associated if p.hb_outstanding => None,
            _ => Some(p.next_timer),
        });
        t.chain(p).min()
    }

    // ----- queries -----

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Every UPF's state.
    pub fn upfs(&self) -> Vec<UpfStatus> {
        self.peers
            .iter()
            .enumerate()
            .map(|(i, p)| UpfStatus {
                name: p.name.clone(),
                n4: p.addr,
                state: p.state,
                recovery_time_stamp: p.recovery_ts,
                node_id: p.node_id.clone(),
                restarts: p.restarts,
                sessions: self.sessions.values().filter(|s| s.upf == i).count(),
                pools: p
                    .dnns
                    .iter()
                    .map(|d| PoolStatus {
                        dnn: d.name.clone(),
                        pool: d.pool.net().to_string(),
                        in_use: d.pool.in_use(),
                        capacity: d.pool.capacity(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every session, sorted by key.
    pub fn sessions(&self) -> Vec<SessionView> {
        let mut v: Vec<_> = self.sessions.values().map(Self::view).collect();
        v.sort_by(|a, b| {
            (&a.info.ue_id, a.info.pdu_session_id).cmp(&(&b.info.ue_id, b.info.pdu_session_id))
        });
        v
    }

    /// One session.
    pub fn session(&self, ue_id: &str, psi: u8) -> Option<SessionView> {
        self.sessions.get(&(ue_id.to_owned(), psi)).map(Self::view)
    }

    fn view(s: &Session) -> SessionView {
        SessionView {
            info: s.info.clone(),
            state: s.state,
            usage: s.usage,
        }
    }

    /// Prometheus text exposition.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let m = &self.metrics;
        let mut o = String::new();
        let counters: [(&str, &str, u64); 12] = [
            ("smf_pfcp_tx_total", "PFCP messages sent", m.pfcp_tx),
            ("smf_pfcp_rx_total", "PFCP messages received", m.pfcp_rx),
            (
                "smf_pfcp_rx_errors_total",
                "PFCP datagrams that did not parse or match",
                m.pfcp_rx_errors,
            ),
            (
                "smf_pfcp_retransmissions_total",
                "PFCP requests retransmitted (T1)",
                m.pfcp_retransmissions,
            ),
            (
                "smf_pfcp_timeouts_total",
                "PFCP requests given up after N1",
                m.pfcp_timeouts,
            ),
            (
                "smf_pfcp_heartbeats_rx_total",
                "Heartbeat Requests answered",
                m.heartbeats_rx,
            ),
            (
                "smf_pfcp_session_reports_total",
                "Session Report Requests answered",
                m.session_reports_rx,
            ),
            (
                "smf_sessions_created_total",
                "PDU sessions set up",
                m.sessions_created,
            ),
            (
                "smf_sessions_failed_total",
                "PDU session setups that failed",
                m.sessions_failed,
            ),
            (
                "smf_sessions_released_total",
                "PDU sessions released",
                m.sessions_released,
            ),
            (
                "smf_sessions_restored_total",
                "PDU sessions re-established after a UPF restart",
                m.sessions_restored,
            ),
            (
                "smf_upf_restarts_total",
                "UPF restarts detected by Recovery Time Stamp",
                m.upf_restarts,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let _ = writeln!(
            o,
            "# HELP smf_sessions Sessions by state\n# TYPE smf_sessions gauge"
        );
        for st in [
            SessionState::Establishing,
            SessionState::WaitN2,
            SessionState::Modifying,
            SessionState::Active,
            SessionState::Releasing,
            SessionState::Lost,
        ] {
            let n = self.sessions.values().filter(|s| s.state == st).count();
            let _ = writeln!(o, "smf_sessions{{state=\"{st:?}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "# HELP smf_upf_associated 1 if the UPF has a PFCP association\n# TYPE smf_upf_associated gauge"
        );
        for p in &self.peers {
            let _ = writeln!(
                o,
                "smf_upf_associated{{upf=\"{}\"}} {}",
                p.name,
                u8::from(p.state == AssocState::Associated)
            );
        }
        let _ = writeln!(
            o,
            "# HELP smf_pool_addresses_in_use UE addresses allocated\n# TYPE smf_pool_addresses_in_use gauge"
        );
        for p in &self.peers {
            for d in &p.dnns {
                let _ = writeln!(
                    o,
                    "smf_pool_addresses_in_use{{upf=\"{}\",dnn=\"{}\"}} {}",
                    p.name,
                    d.name,
                    d.pool.in_use()
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP smf_session_setup_seconds API request to Session Modification Response\n# TYPE smf_session_setup_seconds histogram"
        );
        for (b, n) in SETUP_BUCKETS.iter().zip(m.setup_buckets) {
            let _ = writeln!(o, "smf_session_setup_seconds_bucket{{le=\"{b}\"}} {n}");
        }
        let _ = writeln!(
            o,
            "smf_session_setup_seconds_bucket{{le=\"+Inf\"}} {}\nsmf_session_setup_seconds_sum {}\nsmf_session_setup_seconds_count {}",
            m.setup_seconds_count, m.setup_seconds_sum, m.setup_seconds_count
        );
        o
    }

    // ----- API inputs -----

    /// Starts a PDU session. Refusals before anything is sent are answered
    /// at once with [`Action::CreateDone`].
    pub fn create_session(&mut self, now: Instant, req: ReqId, r: SessionRequest) {
        if let Err(e) = self.try_create(now, req, r) {
            self.metrics.sessions_failed += 1;
            self.actions.push_back(Action::CreateDone {
                req,
                result: Err(e),
            });
        }
    }

    fn try_create(&mut self, now: Instant, req: ReqId, r: SessionRequest) -> Result<(), SmfError> {
        if r.ue_id.is_empty() {
            return Err(SmfError::BadRequest {
                field: "ue_id",
                msg: "must not be empty".into(),
            });
        }
        if !(1..=15).contains(&r.pdu_session_id) {
            return Err(SmfError::BadRequest {
                field: "pdu_session_id",
                msg: format!("{} is not in 1..=15", r.pdu_session_id),
            });
        }
        if r.dnn.is_empty() {
            return Err(SmfError::BadRequest {
                field: "dnn",
                msg: "must not be empty".into(),
            });
        }
        let key = (r.ue_id.clone(), r.pdu_session_id);
        if self.sessions.contains_key(&key) {
            return Err(SmfError::Duplicate {
                ue_id: r.ue_id,
                psi: r.pdu_session_id,
            });
        }
        let (upf, dnn) = self.select_upf(&r)?;
        let gnb =
            r.gnb
                .clone()
                .or_else(|| self.default_gnb.clone())
                .ok_or(SmfError::BadRequest {
                    field: "gnb",
                    msg: "no gNB in the request and no default_gnb configured".into(),
                })?;
        if gnb.n2_api.parse::<SocketAddr>().is_err() {
            return Err(SmfError::BadRequest {
                field: "gnb.n2_api",
                msg: format!("`{}` is not IP:PORT", gnb.n2_api),
            });
        }
        if self.peers[upf].state != AssocState::Associated {
            return Err(SmfError::NotAssociated(self.peers[upf].name.clone()));
        }
        let peer = &mut self.peers[upf];
        let ue_addr = peer.dnns[dnn]
            .pool
            .allocate()
            .ok_or_else(|| SmfError::PoolExhausted {
                upf: peer.name.clone(),
                dnn: r.dnn.clone(),
            })?;
        let cp_seid = self.alloc_seid();
        let gen = self.gen();
        let info = SessionInfo {
            ue_id: r.ue_id,
            pdu_session_id: r.pdu_session_id,
            dnn: r.dnn,
            upf: self.peers[upf].name.clone(),
            ue_addr,
            qfi: self.qfi,
            ul_teid: 0,
            ul_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dl_teid: 0,
            dl_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            cp_seid,
            up_seid: 0,
            gnb: gnb.name.clone(),
        };
        debug!(ue = %info.ue_id, psi = info.pdu_session_id, upf = %info.upf, %ue_addr, "session establishment");
        let s = Session {
            info,
            upf,
            dnn,
            gnb,
            state: SessionState::Establishing,
            restoring: false,
            gen,
            pending: Some(req),
            started: now,
            usage: Usage::default(),
        };
        let msg = self.establishment(&s, None);
        self.by_seid.insert(cp_seid, key.clone());
        self.sessions.insert(key.clone(), s);
        self.send_request(
            now,
            upf,
            Message::session(0, 0, msg),
            TxnKind::Establish { key, gen },
        );
        Ok(())
    }

    fn select_upf(&self, r: &SessionRequest) -> Result<(usize, usize), SmfError> {
        if let Some(name) = &r.upf {
            let i = self
                .peers
                .iter()
                .position(|p| &p.name == name)
                .ok_or_else(|| SmfError::BadRequest {
                    field: "upf",
                    msg: format!("no UPF named `{name}`"),
                })?;
            let d = self.peers[i]
                .dnns
                .iter()
                .position(|d| d.name == r.dnn)
                .ok_or_else(|| SmfError::BadRequest {
                    field: "dnn",
                    msg: format!("UPF `{name}` does not serve DNN `{}`", r.dnn),
                })?;
            return Ok((i, d));
        }
        // Serving UPFs, associated ones first, then the one with the most free addresses.
        self.peers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.dnns
                    .iter()
                    .position(|d| d.name == r.dnn)
                    .map(|d| (i, d, p))
            })
            .max_by_key(|(_, d, p)| {
                let pool = &p.dnns[*d].pool;
                (
                    p.state == AssocState::Associated,
                    u64::from(pool.capacity()) - pool.in_use() as u64,
                )
            })
            .map(|(i, d, _)| (i, d))
            .ok_or_else(|| SmfError::BadRequest {
                field: "dnn",
                msg: format!("no UPF serves DNN `{}`", r.dnn),
            })
    }

    /// Releases a session; answered with [`Action::ReleaseDone`].
    pub fn release_session(&mut self, now: Instant, req: ReqId, ue_id: &str, psi: u8) {
        let key = (ue_id.to_owned(), psi);
        let Some(s) = self.sessions.get_mut(&key) else {
            self.actions.push_back(Action::ReleaseDone {
                req,
                result: Err(SmfError::NotFound {
                    ue_id: ue_id.to_owned(),
                    psi,
                }),
            });
            return;
        };
        match s.state {
            SessionState::Active => {}
            SessionState::Lost => {
                // The UPF is unreachable or restarted: answer now, and ask it
                // (best effort) to delete what it may still hold.
                let s = self.remove(&key);
                if let Some(s) = s {
                    self.n2_delete(&s);
                    if s.info.up_seid != 0 {
                        self.send_request(
                            now,
                            s.upf,
                            Message::session(
                                s.info.up_seid,
                                0,
                                pfcp::SessionDeletionRequest::default(),
                            ),
                            TxnKind::Cleanup,
                        );
                    }
                }
                self.metrics.sessions_released += 1;
                self.actions.push_back(Action::ReleaseDone {
                    req,
                    result: Ok(()),
                });
                return;
            }
            st => {
                self.actions.push_back(Action::ReleaseDone {
                    req,
                    result: Err(SmfError::Busy {
                        ue_id: ue_id.to_owned(),
                        psi,
                        state: st.name(),
                    }),
                });
                return;
            }
        }
        let gen = self.next_gen;
        self.next_gen += 1;
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.state = SessionState::Releasing;
        s.pending = Some(req);
        s.gen = gen;
        let (upf, up_seid) = (s.upf, s.info.up_seid);
        let snapshot = (s.gnb.clone(), s.info.dl_teid);
        self.actions.push_back(Action::N2Delete {
            gnb: snapshot.0,
            dl_teid: snapshot.1,
        });
        self.send_request(
            now,
            upf,
            Message::session(up_seid, 0, pfcp::SessionDeletionRequest::default()),
            TxnKind::Delete { key, gen },
        );
    }

    // ----- N2 input -----

    /// The gNB's answer to [`Action::N2Setup`].
    pub fn n2_setup_done(
        &mut self,
        now: Instant,
        key: &SessionKey,
        gen: u64,
        gnb: &GnbRef,
        result: Result<TunnelSetupResponse, String>,
    ) {
        let current = self
            .sessions
            .get(key)
            .is_some_and(|s| s.gen == gen && s.state == SessionState::WaitN2);
        if !current {
            if let Ok(r) = result {
                // The session went away (or moved on) meanwhile: the gNB's
                // tunnel is orphaned.
                debug!(?key, "stale N2 answer; deleting its tunnel");
                self.actions.push_back(Action::N2Delete {
                    gnb: gnb.clone(),
                    dl_teid: r.dl_teid,
                });
            }
            return;
        }
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        match result {
            Ok(r) => {
                let changed = (s.info.dl_teid, s.info.dl_addr) != (r.dl_teid, r.dl_addr);
                s.info.dl_teid = r.dl_teid;
                s.info.dl_addr = r.dl_addr;
                if s.restoring && !changed {
                    // The establishment already forwarded to this F-TEID.
                    self.restored(key);
                    return;
                }
                s.state = SessionState::Modifying;
                let (upf, up_seid, gen) = (s.upf, s.info.up_seid, s.gen);
                let m = self.modification(key);
                self.send_request(
                    now,
                    upf,
                    Message::session(up_seid, 0, m),
                    TxnKind::Modify {
                        key: key.clone(),
                        gen,
                    },
                );
            }
            Err(msg) => {
                let e = SmfError::N2Failed {
                    gnb: s.gnb.name.clone(),
                    msg,
                };
                self.fail(now, key, e, false);
            }
        }
    }

    // ----- PFCP input -----

    /// A datagram from N4.
    pub fn handle_pfcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.metrics.pfcp_rx += 1;
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.pfcp_rx_errors += 1;
                debug!(%from, "undecodable PFCP: {e}");
                return;
            }
        };
        let peer = self.peers.iter().position(|p| p.addr == from);
        let Some(upf) = peer else {
            if let MessageBody::HeartbeatRequest(_) = msg.body {
                // Heartbeats are answered whoever asks (TS 29.244 §6.2.2).
                let rsp = Message::node(
                    msg.header.seq,
                    pfcp::HeartbeatResponse {
                        recovery_time_stamp: self.recovery_ts,
                        ..Default::default()
                    },
                );
                self.emit(from, &rsp);
                self.metrics.heartbeats_rx += 1;
            } else {
                self.metrics.pfcp_rx_errors += 1;
                debug!(%from, "PFCP from an unknown peer ignored");
            }
            return;
        };
        let ty = msg.msg_type();
        let is_request = matches!(
            ty,
            mt::HeartbeatRequest
                | mt::AssociationSetupRequest
                | mt::AssociationUpdateRequest
                | mt::AssociationReleaseRequest
                | mt::SessionReportRequest
        );
        if is_request {
            let seq = msg.header.seq;
            if let Some((_, _, data)) = self.peers[upf]
                .answered
                .iter()
                .find(|(s, t, _)| *s == seq && *t == ty)
            {
                let data = data.clone();
                self.push_send(from, data);
                return;
            }
            self.handle_request(now, upf, msg);
            return;
        }
        let seq = msg.header.seq;
        let matches = self
            .txns
            .get(&seq)
            .is_some_and(|t| t.upf == upf && t.data.get(1).map(|b| b + 1) == Some(ty));
        if !matches {
            self.metrics.pfcp_rx_errors += 1;
            debug!(upf = %self.peers[upf].name, seq, ty, "PFCP response to no outstanding request");
            return;
        }
        let Some(txn) = self.txns.remove(&seq) else {
            return;
        };
        self.handle_response(now, upf, txn.kind, msg.body);
    }

    fn handle_request(&mut self, now: Instant, upf: usize, msg: Message) {
        let seq = msg.header.seq;
        let ty = msg.msg_type();
        let rsp = match msg.body {
            MessageBody::HeartbeatRequest(h) => {
                self.metrics.heartbeats_rx += 1;
                self.peer_recovery(now, upf, h.recovery_time_stamp, false);
                Message::node(
                    seq,
                    pfcp::HeartbeatResponse {
                        recovery_time_stamp: self.recovery_ts,
                        ..Default::default()
                    },
                )
            }
            MessageBody::AssociationSetupRequest(a) => {
                info!(upf = %self.peers[upf].name, node = %a.node_id, "association set up by the UPF");
                // TS 29.244 §6.2.6.2.2: a setup from a UPF we are associated
                // with replaces the association whatever its Recovery Time
                // Stamp; the UPF restarted and lost its sessions (a restart
                // within the same second keeps the time stamp).
                if self.peers[upf].state == AssocState::Associated {
                    warn!(upf = %self.peers[upf].name, "UPF set up the association again: restarted");
                    self.peers[upf].recovery_ts = None;
                    self.peers[upf].restarts += 1;
                    self.metrics.upf_restarts += 1;
                    self.lose_sessions(upf);
                }
                self.peers[upf].node_id = Some(a.node_id.to_string());
                self.peer_recovery(now, upf, a.recovery_time_stamp, true);
                Message::node(
                    seq,
                    pfcp::AssociationSetupResponse {
                        node_id: self.node_id.clone(),
                        cause: Cause::RequestAccepted,
                        recovery_time_stamp: self.recovery_ts,
                        cp_function_features: Some(pfcp::FunctionFeatures(vec![0])),
                        ..Default::default()
                    },
                )
            }
            MessageBody::AssociationUpdateRequest(_) => Message::node(
                seq,
                pfcp::AssociationUpdateResponse {
                    node_id: self.node_id.clone(),
                    cause: Cause::RequestAccepted,
                    ..Default::default()
                },
            ),
            MessageBody::AssociationReleaseRequest(_) => {
                warn!(upf = %self.peers[upf].name, "UPF released the association");
                self.peer_down(now, upf);
                Message::node(
                    seq,
                    pfcp::AssociationReleaseResponse {
                        node_id: self.node_id.clone(),
                        cause: Cause::RequestAccepted,
                        ..Default::default()
                    },
                )
            }
            MessageBody::SessionReportRequest(r) => {
                self.metrics.session_reports_rx += 1;
                let seid = msg.header.seid.unwrap_or(0);
                let key = self.by_seid.get(&seid).cloned();
                match key.and_then(|k| self.sessions.get_mut(&k)) {
                    Some(s) => {
                        for u in &r.usage_reports {
                            s.usage.reports += 1;
                            if let Some(v) = u.volume_measurement {
                                s.usage.ul_bytes += v.uplink_volume.unwrap_or(0);
                                s.usage.dl_bytes += v.downlink_volume.unwrap_or(0);
                            }
                        }
                        Message::session(
                            s.info.up_seid,
                            seq,
                            pfcp::SessionReportResponse {
                                cause: Cause::RequestAccepted,
                                ..Default::default()
                            },
                        )
                    }
                    None => Message::session(
                        0,
                        seq,
                        pfcp::SessionReportResponse {
                            cause: Cause::SessionContextNotFound,
                            ..Default::default()
                        },
                    ),
                }
            }
            _ => return,
        };
        let to = self.peers[upf].addr;
        if let Some(data) = self.emit(to, &rsp) {
            let cache = &mut self.peers[upf].answered;
            if cache.len() >= RESPONSE_CACHE {
                cache.pop_front();
            }
            cache.push_back((seq, ty, data));
        }
    }

    fn handle_response(&mut self, now: Instant, upf: usize, kind: TxnKind, body: MessageBody) {
        match (kind, body) {
            (TxnKind::Association, MessageBody::AssociationSetupResponse(a)) => {
                let p = &mut self.peers[upf];
                if !a.cause.is_accepted() {
                    warn!(upf = %p.name, cause = ?a.cause, "association refused");
                    p.state = AssocState::Down;
                    p.next_timer = now + self.hb;
                    return;
                }
                info!(upf = %p.name, node = %a.node_id, rts = a.recovery_time_stamp, "PFCP association up");
                p.node_id = Some(a.node_id.to_string());
                self.peer_recovery(now, upf, a.recovery_time_stamp, true);
            }
            (TxnKind::Heartbeat, MessageBody::HeartbeatResponse(h)) => {
                self.peers[upf].hb_outstanding = false;
                self.peers[upf].next_timer = now + self.hb;
                self.peer_recovery(now, upf, h.recovery_time_stamp, false);
            }
            (TxnKind::Establish { key, gen }, MessageBody::SessionEstablishmentResponse(r)) => {
                self.on_established(now, &key, gen, r)
            }
            (TxnKind::Modify { key, gen }, MessageBody::SessionModificationResponse(r)) => {
                let Some(s) = self.sessions.get(&key) else {
                    return;
                };
                if s.gen != gen || s.state != SessionState::Modifying {
                    return;
                }
                if r.cause.is_accepted() {
                    if s.restoring {
                        self.restored(&key);
                    } else {
                        self.activated(now, &key);
                    }
                } else {
                    let e = SmfError::UpfRejected {
                        upf: self.peers[upf].name.clone(),
                        what: "Session Modification",
                        cause: r.cause.into(),
                        offending_ie: r.offending_ie,
                    };
                    self.fail(now, &key, e, true);
                }
            }
            (TxnKind::Delete { key, gen }, MessageBody::SessionDeletionResponse(r)) => {
                if !r.cause.is_accepted() {
                    warn!(?key, cause = ?r.cause, "UPF refused the Session Deletion; released anyway");
                }
                self.released(&key, gen, &r.usage_reports);
            }
            (TxnKind::Cleanup, MessageBody::SessionDeletionResponse(_)) => {}
            (kind, body) => {
                self.metrics.pfcp_rx_errors += 1;
                debug!(?kind, ty = body.msg_type(), "unexpected response type");
            }
        }
    }

    /// A Recovery Time Stamp seen from `upf`; `setup`: it came with an
    /// association setup (so the association is now up).
    fn peer_recovery(&mut self, now: Instant, upf: usize, ts: u32, setup: bool) {
        let p = &mut self.peers[upf];
        let restarted = p.recovery_ts.is_some_and(|old| old != ts);
        p.recovery_ts = Some(ts);
        if restarted {
            p.restarts += 1;
            self.metrics.upf_restarts += 1;
            warn!(upf = %p.name, rts = ts, "UPF restarted (new Recovery Time Stamp)");
        }
        if setup {
            p.assoc_failures = 0;
            p.state = AssocState::Associated;
            p.hb_outstanding = false;
            p.next_timer = now + self.hb;
            // Restore what the UPF lost (or, without a restart, what we
            // marked lost when it stopped answering).
            self.restore_sessions(now, upf, restarted);
        } else if restarted {
            // Its sessions and our association are gone: set it up again,
            // then restore.
            self.lose_sessions(upf);
            self.start_association(now, upf);
        }
    }

    fn start_association(&mut self, now: Instant, upf: usize) {
        // Drop the heartbeat/association transactions still running.
        self.txns.retain(|_, t| {
            !(t.upf == upf && matches!(t.kind, TxnKind::Heartbeat | TxnKind::Association))
        });
        let p = &mut self.peers[upf];
        p.state = AssocState::Connecting;
        p.hb_outstanding = false;
        let msg = pfcp::AssociationSetupRequest {
            node_id: self.node_id.clone(),
            recovery_time_stamp: self.recovery_ts,
            cp_function_features: Some(pfcp::FunctionFeatures(vec![0])),
            ..Default::default()
        };
        self.send_request(now, upf, Message::node(0, msg), TxnKind::Association);
    }

    fn peer_down(&mut self, now: Instant, upf: usize) {
        let p = &mut self.peers[upf];
        p.state = AssocState::Down;
        p.hb_outstanding = false;
        p.next_timer = now + self.hb;
        self.txns.retain(|_, t| {
            !(t.upf == upf && matches!(t.kind, TxnKind::Heartbeat | TxnKind::Association))
        });
        self.lose_sessions(upf);
    }

    /// Marks the UPF's active sessions lost (to be restored).
    fn lose_sessions(&mut self, upf: usize) {
        for s in self.sessions.values_mut() {
            if s.upf == upf && s.state == SessionState::Active {
                s.state = SessionState::Lost;
            }
        }
    }

    fn restore_sessions(&mut self, now: Instant, upf: usize, restarted: bool) {
        let keys: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.upf == upf
                    && (s.state == SessionState::Lost
                        || (restarted && s.state == SessionState::Active))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if !keys.is_empty() {
            info!(upf = %self.peers[upf].name, n = keys.len(), "re-establishing sessions");
        }
        for key in keys {
            let gen = self.gen();
            let Some(s) = self.sessions.get_mut(&key) else {
                continue;
            };
            s.state = SessionState::Establishing;
            s.restoring = true;
            s.gen = gen;
            let old_up_seid = s.info.up_seid;
            if !restarted && old_up_seid != 0 {
                // Same UPF life: it may still hold the session (or may have
                // dropped it with the association). Delete it first so the
                // new one does not collide; "not found" is fine.
                self.send_request(
                    now,
                    upf,
                    Message::session(old_up_seid, 0, pfcp::SessionDeletionRequest::default()),
                    TxnKind::Cleanup,
                );
            }
            let Some(s) = self.sessions.get(&key) else {
                continue;
            };
            let dl = Some((s.info.dl_teid, s.info.dl_addr));
            let s = &self.sessions[&key];
            let msg = self.establishment(s, dl);
            self.send_request(
                now,
                upf,
                Message::session(0, 0, msg),
                TxnKind::Establish { key, gen },
            );
        }
    }

    fn on_established(
        &mut self,
        now: Instant,
        key: &SessionKey,
        gen: u64,
        r: pfcp::SessionEstablishmentResponse,
    ) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        if s.gen != gen || s.state != SessionState::Establishing {
            return;
        }
        let upf_name = self.peers[s.upf].name.clone();
        if !r.cause.is_accepted() {
            if r.cause == Cause::NoEstablishedPfcpAssociation {
                // It forgot us (restarted before we noticed).
                let upf = s.upf;
                self.start_association(now, upf);
                let Some(s) = self.sessions.get_mut(key) else {
                    return;
                };
                if s.restoring {
                    s.state = SessionState::Lost;
                    return;
                }
            }
            let e = SmfError::UpfRejected {
                upf: upf_name,
                what: "Session Establishment",
                cause: r.cause.into(),
                offending_ie: r.offending_ie,
            };
            self.fail(now, key, e, false);
            return;
        }
        if let Some(f) = r.up_f_seid {
            s.info.up_seid = f.seid;
        }
        let ul = r
            .created_pdrs
            .iter()
            .find(|c| c.pdr_id == PDR_UL)
            .and_then(|c| c.local_f_teid);
        let ul = match ul {
            Some(pfcp::FTeid::Assigned {
                teid,
                ipv4: Some(a),
                ..
            }) => Some((teid, IpAddr::V4(a))),
            Some(pfcp::FTeid::Assigned {
                teid,
                ipv6: Some(a),
                ..
            }) => Some((teid, IpAddr::V6(a))),
            _ => None,
        };
        let (Some(_), Some((ul_teid, ul_addr))) = (r.up_f_seid, ul) else {
            let e = SmfError::UpfBadAnswer {
                upf: upf_name,
                msg: "Session Establishment Response without UP F-SEID or Created PDR F-TEID"
                    .into(),
            };
            self.fail(now, key, e, true);
            return;
        };
        let same_ul = (s.info.ul_teid, s.info.ul_addr) == (ul_teid, ul_addr);
        s.info.ul_teid = ul_teid;
        s.info.ul_addr = ul_addr;
        if s.restoring && same_ul {
            self.restored(key);
            return;
        }
        s.state = SessionState::WaitN2;
        let replace = s.restoring.then_some(s.info.dl_teid);
        self.actions.push_back(Action::N2Setup {
            key: key.clone(),
            gen,
            gnb: s.gnb.clone(),
            setup: TunnelSetup {
                ue_id: s.info.ue_id.clone(),
                pdu_session_id: s.info.pdu_session_id,
                ue_addr: s.info.ue_addr,
                ul_teid,
                ul_addr,
                qfi: s.info.qfi,
            },
            replace_dl_teid: replace,
        });
    }

    fn activated(&mut self, now: Instant, key: &SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.state = SessionState::Active;
        let secs = now.saturating_duration_since(s.started).as_secs_f64();
        let m = &mut self.metrics;
        m.sessions_created += 1;
        m.setup_seconds_sum += secs;
        m.setup_seconds_count += 1;
        for (b, n) in SETUP_BUCKETS.iter().zip(m.setup_buckets.iter_mut()) {
            if secs <= *b {
                *n += 1;
            }
        }
        info!(ue = %s.info.ue_id, psi = s.info.pdu_session_id, upf = %s.info.upf, ue_addr = %s.info.ue_addr,
              ul_teid = s.info.ul_teid, dl_teid = s.info.dl_teid, "session up");
        if let Some(req) = s.pending.take() {
            self.actions.push_back(Action::CreateDone {
                req,
                result: Ok(s.info.clone()),
            });
        }
    }

    fn restored(&mut self, key: &SessionKey) {
        let Some(s) = self.sessions.get_mut(key) else {
            return;
        };
        s.state = SessionState::Active;
        s.restoring = false;
        self.metrics.sessions_restored += 1;
        info!(ue = %s.info.ue_id, psi = s.info.pdu_session_id, upf = %s.info.upf, "session restored");
    }

    fn released(&mut self, key: &SessionKey, gen: u64, reports: &[pfcp::UsageReport]) {
        if self.sessions.get(key).is_none_or(|s| s.gen != gen) {
            return;
        }
        if let Some(mut s) = self.remove(key) {
            for u in reports {
                s.usage.reports += 1;
                if let Some(v) = u.volume_measurement {
                    s.usage.ul_bytes += v.uplink_volume.unwrap_or(0);
                    s.usage.dl_bytes += v.downlink_volume.unwrap_or(0);
                }
            }
            self.metrics.sessions_released += 1;
            info!(ue = %s.info.ue_id, psi = s.info.pdu_session_id, ul_bytes = s.usage.ul_bytes,
                  dl_bytes = s.usage.dl_bytes, "session released");
            if let Some(req) = s.pending {
                self.actions.push_back(Action::ReleaseDone {
                    req,
                    result: Ok(()),
                });
            }
        }
    }

    /// A setup step failed: undo everything and answer the API.
    /// `pfcp_made`: the UPF holds the session (delete it); the gNB's tunnel
    /// exists when we are past WaitN2.
    fn fail(&mut self, now: Instant, key: &SessionKey, e: SmfError, pfcp_made: bool) {
        let Some(s) = self.sessions.get(key) else {
            return;
        };
        let gnb_made = s.state == SessionState::Modifying;
        let (upf, up_seid, restoring) = (s.upf, s.info.up_seid, s.restoring);
        warn!(?key, "session setup failed: {e}");
        let Some(s) = self.remove(key) else {
            return;
        };
        if gnb_made || (restoring && s.info.dl_teid != 0) {
            self.n2_delete(&s);
        }
        if (pfcp_made || s.state == SessionState::WaitN2 || gnb_made) && up_seid != 0 {
            self.send_request(
                now,
                upf,
                Message::session(up_seid, 0, pfcp::SessionDeletionRequest::default()),
                TxnKind::Cleanup,
            );
        }
        self.metrics.sessions_failed += 1;
        if let Some(req) = s.pending {
            self.actions.push_back(Action::CreateDone {
                req,
                result: Err(e),
            });
        }
    }

    fn n2_delete(&mut self, s: &Session) {
        if s.info.dl_teid != 0 {
            self.actions.push_back(Action::N2Delete {
                gnb: s.gnb.clone(),
                dl_teid: s.info.dl_teid,
            });
        }
    }

    /// Takes a session out of the registry and frees its address and SEID.
    fn remove(&mut self, key: &SessionKey) -> Option<Session> {
        let s = self.sessions.remove(key)?;
        self.by_seid.remove(&s.info.cp_seid);
        self.peers[s.upf].dnns[s.dnn].pool.free(s.info.ue_addr);
        Some(s)
    }

    // ----- timers -----

    /// Runs what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .txns
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            let Some(t) = self.txns.get_mut(&seq) else {
                continue;
            };
            if t.retries_left > 0 {
                t.retries_left -= 1;
                t.deadline = now + self.t1;
                let (to, data) = (self.peers[t.upf].addr, t.data.clone());
                self.metrics.pfcp_retransmissions += 1;
                self.push_send(to, data);
            } else if let Some(t) = self.txns.remove(&seq) {
                self.metrics.pfcp_timeouts += 1;
                self.give_up(now, t);
            }
        }
        for upf in 0..self.peers.len() {
            let p = &mut self.peers[upf];
            if p.next_timer > now {
                continue;
            }
            match p.state {
                AssocState::Down => self.start_association(now, upf),
                AssocState::Associated if !p.hb_outstanding => {
                    p.hb_outstanding = true;
                    let msg = pfcp::HeartbeatRequest {
                        recovery_time_stamp: self.recovery_ts,
                        ..Default::default()
                    };
                    self.send_request(now, upf, Message::node(0, msg), TxnKind::Heartbeat);
                }
                _ => {}
            }
        }
    }

    fn give_up(&mut self, now: Instant, t: Txn) {
        let name = self.peers[t.upf].name.clone();
        match t.kind {
            TxnKind::Association => {
                let p = &mut self.peers[t.upf];
                if p.assoc_failures % 12 == 0 {
                    warn!(upf = %name, addr = %p.addr, tries = p.assoc_failures + 1,
                          "no answer to Association Setup; retrying every heartbeat interval");
                }
                p.assoc_failures += 1;
                p.state = AssocState::Down;
                p.next_timer = now + self.hb;
            }
            TxnKind::Heartbeat => {
                warn!(upf = %name, "heartbeat unanswered: UPF down");
                self.peer_down(now, t.upf);
            }
            TxnKind::Establish { key, gen } => {
                if self.sessions.get(&key).is_some_and(|s| s.gen == gen) {
                    if self.sessions[&key].restoring {
                        if let Some(s) = self.sessions.get_mut(&key) {
                            s.state = SessionState::Lost;
                        }
                        return;
                    }
                    let e = SmfError::UpfTimeout {
                        upf: name,
                        what: "Session Establishment Request",
                    };
                    self.fail(now, &key, e, false);
                }
            }
            TxnKind::Modify { key, gen } => {
                if self.sessions.get(&key).is_some_and(|s| s.gen == gen) {
                    if self.sessions[&key].restoring {
                        if let Some(s) = self.sessions.get_mut(&key) {
                            s.state = SessionState::Lost;
                        }
                        return;
                    }
                    let e = SmfError::UpfTimeout {
                        upf: name,
                        what: "Session Modification Request",
                    };
                    self.fail(now, &key, e, true);
                }
            }
            TxnKind::Delete { key, gen } => {
                warn!(?key, upf = %name, "no answer to Session Deletion; released anyway");
                self.released(&key, gen, &[]);
            }
            TxnKind::Cleanup => {}
        }
    }

    // ----- message building -----

    fn establishment(
        &self,
        s: &Session,
        dl: Option<(u32, IpAddr)>,
    ) -> pfcp::SessionEstablishmentRequest {
        use pfcp::*;
        let ni = self.peers[s.upf].dnns[s.dnn].ni.clone();
        let ue = s.info.ue_addr;
        let dl_far = match dl {
            Some((teid, addr)) if teid != 0 => CreateFar {
                far_id: FAR_DL,
                apply_action: ApplyAction::FORW,
                forwarding_parameters: Some(ForwardingParameters {
                    destination_interface: DestinationInterface::Access,
                    network_instance: Some(ni.clone()),
                    outer_header_creation: Some(ohc(teid, addr)),
                    destination_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                    ..Default::default()
                }),
                ..Default::default()
            },
            _ => CreateFar {
                far_id: FAR_DL,
                apply_action: ApplyAction::BUFF,
                bar_id: Some(1),
                ..Default::default()
            },
        };
        SessionEstablishmentRequest {
            node_id: self.node_id.clone(),
            cp_f_seid: FSeid {
                seid: s.info.cp_seid,
                ipv4: Some(self.cp_addr),
                ipv6: None,
            },
            create_pdrs: vec![
                CreatePdr {
                    pdr_id: PDR_UL,
                    precedence: 255,
                    pdi: Pdi {
                        source_interface: SourceInterface::Access,
                        local_f_teid: Some(FTeid::Choose {
                            v4: true,
                            v6: false,
                            choose_id: None,
                        }),
                        network_instance: Some(ni.clone()),
                        ue_ip_addresses: vec![UeIpAddress {
                            ipv4: Some(ue),
                            ..Default::default()
                        }],
                        qfis: vec![Qfi(s.info.qfi)],
                        source_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                        ..Default::default()
                    },
                    outer_header_removal: Some(OuterHeaderRemoval {
                        description: OuterHeaderRemovalDescription::GtpuUdpIpv4,
                        gtpu_extension_header_deletion: None,
                    }),
                    far_id: Some(FAR_UL),
                    urr_ids: vec![URR_ID],
                    qer_ids: vec![QER_ID],
                    ..Default::default()
                },
                CreatePdr {
                    pdr_id: PDR_DL,
                    precedence: 255,
                    pdi: Pdi {
                        source_interface: SourceInterface::Core,
                        network_instance: Some(ni.clone()),
                        ue_ip_addresses: vec![UeIpAddress {
                            is_destination: true,
                            ipv4: Some(ue),
                            ..Default::default()
                        }],
                        source_interface_type: Some(InterfaceType::N6),
                        ..Default::default()
                    },
                    far_id: Some(FAR_DL),
                    urr_ids: vec![URR_ID],
                    qer_ids: vec![QER_ID],
                    ..Default::default()
                },
            ],
            create_fars: vec![
                CreateFar {
                    far_id: FAR_UL,
                    apply_action: ApplyAction::FORW,
                    forwarding_parameters: Some(ForwardingParameters {
                        destination_interface: DestinationInterface::Core,
                        network_instance: Some(ni),
                        destination_interface_type: Some(InterfaceType::N6),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                dl_far,
            ],
            create_urrs: vec![CreateUrr {
                urr_id: URR_ID,
                measurement_method: MeasurementMethod::VOLUM,
                reporting_triggers: if self.urr_period > 0 {
                    ReportingTriggers::PERIO
                } else {
                    ReportingTriggers::default()
                },
                measurement_period: (self.urr_period > 0).then_some(self.urr_period),
                ..Default::default()
            }],
            create_qers: vec![CreateQer {
                qer_id: QER_ID,
                gate_status: GateStatus::OPEN,
                mbr: Some(self.mbr),
                qfi: Some(Qfi(s.info.qfi)),
                ..Default::default()
            }],
            create_bar: dl.is_none_or(|(t, _)| t == 0).then_some(CreateBar {
                bar_id: 1,
                ..Default::default()
            }),
            pdn_type: Some(1),
            ..Default::default()
        }
    }

    fn modification(&self, key: &SessionKey) -> pfcp::SessionModificationRequest {
        use pfcp::*;
        let s = &self.sessions[key];
        let ni = self.peers[s.upf].dnns[s.dnn].ni.clone();
        SessionModificationRequest {
            update_fars: vec![UpdateFar {
                far_id: FAR_DL,
                apply_action: Some(ApplyAction::FORW),
                update_forwarding_parameters: Some(UpdateForwardingParameters {
                    destination_interface: Some(DestinationInterface::Access),
                    network_instance: Some(ni),
                    outer_header_creation: Some(ohc(s.info.dl_teid, s.info.dl_addr)),
                    destination_interface_type: Some(InterfaceType::N3ThreeGppAccess),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    // ----- plumbing -----

    fn gen(&mut self) -> u64 {
        let g = self.next_gen;
        self.next_gen += 1;
        g
    }

    fn alloc_seid(&mut self) -> u64 {
        loop {
            let s = self.next_seid;
            self.next_seid = self.next_seid.wrapping_add(1).max(1);
            if !self.by_seid.contains_key(&s) {
                return s;
            }
        }
    }

    fn alloc_seq(&mut self) -> u32 {
        loop {
            let s = self.next_seq;
            self.next_seq = if s >= 0x00ff_ffff { 1 } else { s + 1 };
            if !self.txns.contains_key(&s) {
                return s;
            }
        }
    }

    fn send_request(&mut self, now: Instant, upf: usize, mut msg: Message, kind: TxnKind) {
        let seq = self.alloc_seq();
        msg.header.seq = seq;
        let to = self.peers[upf].addr;
        let Some(data) = self.emit(to, &msg) else {
            return;
        };
        self.txns.insert(
            seq,
            Txn {
                upf,
                data,
                deadline: now + self.t1,
                retries_left: self.n1,
                kind,
            },
        );
    }

    /// Encodes and queues `msg`; returns the bytes.
    fn emit(&mut self, to: SocketAddr, msg: &Message) -> Option<Vec<u8>> {
        match msg.to_vec() {
            Ok(data) => {
                self.push_send(to, data.clone());
                Some(data)
            }
            Err(e) => {
                // Only a message over 64 KiB can fail; ours are small.
                warn!("cannot encode PFCP message: {e}");
                None
            }
        }
    }

    fn push_send(&mut self, to: SocketAddr, data: Vec<u8>) {
        self.metrics.pfcp_tx += 1;
        self.actions.push_back(Action::SendPfcp { to, data });
    }
}

fn ohc(teid: u32, addr: IpAddr) -> pfcp::OuterHeaderCreation {
    match addr {
        IpAddr::V4(a) => pfcp::OuterHeaderCreation::gtpu_ipv4(teid, a),
        IpAddr::V6(a) => pfcp::OuterHeaderCreation::gtpu_ipv6(teid, a),
    }
}
