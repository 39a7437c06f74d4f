//! N1-lite for CSM migrations (DESIGN.md section 5): the UE registers the
//! service it plays, asks for migrations, learns every step the SMF's
//! migration manager takes (also steps it did not ask about at that moment)
//! and reports its stream switch. Every call goes through the UE's gNB, as
//! the session calls do; there is no SMF-to-UE path outside N1.
//!
//! | call | method and path | body | answer |
//! |---|---|---|---|
//! | UE -> gNB | `POST http://GNB_RADIO:7001/n1/services` | [`ServiceRegistration`] | 201 [`ServiceInfo`] |
//! | UE -> gNB | `POST http://GNB_RADIO:7001/n1/migrations` | [`MigrationRequest`] | 202 [`MigrationAccepted`] |
//! | UE -> gNB | `POST http://GNB_RADIO:7001/n1/migrations/{id}/switched` | [`SwitchReport`] | 204 |
//! | UE -> gNB | `POST http://GNB_RADIO:7001/n1/migrations/{id}/abandon` | [`AbandonReport`] | 204 |
//! | UE -> gNB | `GET http://GNB_RADIO:7001/n1/events/{ue_id}?after=SEQ&wait_ms=MS` | - | 200 [`UeEvents`] (long poll) |
//! | gNB -> SMF | the same paths on `http://SMF:7000` | the same bodies | the same answers |
//! | SMF API | `GET /migrations`, `GET /services` | - | [`MigrationRecord`]s, [`ServiceInfo`]s |
//!
//! The event long poll answers at once when the UE has events after `after`
//! (the highest `seq` it has seen; 0 at first), otherwise when one arrives or
//! after `wait_ms` (at most [`EVENTS_MAX_WAIT_MS`]) with an empty list.
//! Events are kept per UE, in order, up to [`EVENTS_KEPT`]; a UE that fell
//! further behind sees `first_seq` above its `after + 1`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::SessionInfo;

/// Longest wait of an event long poll.
pub const EVENTS_MAX_WAIT_MS: u64 = 30_000;
/// Events kept per UE for its long poll.
pub const EVENTS_KEPT: usize = 256;

/// How an instance is rendered and streamed (the destination instance of a
/// migration gets the same as the source). Absent fields take the agent's
/// defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Encoder bitrate, bit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u32>,
    /// Scene name (`snake`, `textured`, `static`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<String>,
}

/// The UE tells the migration manager which service it plays, where: the
/// service record the manager keeps for the UE starts from this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRegistration {
    pub ue_id: String,
    /// Application name (as in the repositories).
    pub app: String,
    /// The user's account at the cloud logic server, and its token: a
    /// destination instance logs in with them.
    pub account: String,
    pub token: String,
    /// The edge that serves it now.
    pub edge: String,
    /// The PDU session the service runs over (anchored at that edge's UPF).
    pub pdu_session_id: u8,
    /// The serving instance's id at that edge's agent.
    pub instance: String,
    /// The UDP port the serving instance takes input on, at the edge's
    /// application server (the agent's `input_port` of that instance): a
    /// switch back to this edge while it is copilot steers input there.
    pub input_port: u16,
    /// The UDP port the UE receives the video stream on, on every session's
    /// address (a destination instance streams to `new_address:stream_port`).
    pub stream_port: u16,
    #[serde(default)]
    pub params: StreamParams,
}

/// The service record as the manager reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub ue_id: String,
    pub app: String,
    pub account: String,
    /// The edge whose stream the UE displays and whose instance is primary.
    pub serving: Endpoint,
    /// The other edge, kept as copilot until its countdown ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copilot: Option<Endpoint>,
    /// Milliseconds left of the copilot's delayed-release countdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub countdown_ms: Option<u64>,
    /// The migration in progress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating: Option<u64>,
}

/// One edge's side of a service: its session and its instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub edge: String,
    pub pdu_session_id: u8,
    pub instance: String,
}

/// The UE asks for a migration: to the named edge, or (no `to`) to the edge
/// the manager picks by latency measured from the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationRequest {
    pub ue_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A full migration sets up a new session and a new instance; a switch-only
/// one goes back to a copilot still inside its countdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationKind {
    Full,
    SwitchOnly,
}

/// The manager took the request (steps follow as [`UeEvent`]s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationAccepted {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub kind: MigrationKind,
}

/// The UE switched its display (and input) to the destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchReport {
    pub ue_id: String,
    /// SSIM of the frame pair that decided the switch (absent with the
    /// threshold mechanism off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssim: Option<f64>,
}

/// The UE gave the switch up (the streams never became similar): the
/// manager abandons the migration and leaves the source untouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbandonReport {
    pub ue_id: String,
    pub reason: String,
}

/// One step of a migration, told to the UE.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UeEventKind {
    /// The parallel PDU session to the destination is up: install it.
    SessionReady { edge: String, session: SessionInfo },
    /// The destination instance streams to the new session's address; its
    /// input goes to `input`. For a switch-only migration it is the copilot
    /// that already streams.
    StreamReady {
        edge: String,
        instance: String,
        input: SocketAddr,
        /// The instance's SDP (codec parameters of the stream).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp: Option<String>,
    },
    /// The migration ended with the UE on the destination; the source stays
    /// copilot for `countdown_ms`.
    Completed { edge: String, countdown_ms: u64 },
    /// The countdown ended: the old session is released (its address is
    /// gone) and its instance ended.
    Released { edge: String, pdu_session_id: u8 },
    /// The migration was given up or failed; the source is untouched and
    /// whatever was made for the destination is gone.
    Abandoned { reason: String },
}

/// A [`UeEventKind`] with its place in the UE's event list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UeEvent {
    /// 1, 2, ... per UE.
    pub seq: u64,
    /// The migration it belongs to.
    pub migration: u64,
    /// When the manager emitted it, ns of CLOCK_REALTIME.
    pub at_ns: u64,
    #[serde(flatten)]
    pub kind: UeEventKind,
}

/// The query of the event long poll (`?after=SEQ&wait_ms=MS`), both
/// optional (0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsQuery {
    /// Only events with a higher sequence number.
    #[serde(default)]
    pub after: u64,
    /// How long to hold the call while there is none (capped at
    /// [`EVENTS_MAX_WAIT_MS`]).
    #[serde(default)]
    pub wait_ms: u64,
}

/// The answer of the event long poll.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UeEvents {
    /// The oldest event still kept for this UE (0: none yet).
    pub first_seq: u64,
    pub events: Vec<UeEvent>,
}

/// A migration as the SMF API shows it: every phase with its time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigrationRecord {
    pub id: u64,
    pub ue_id: String,
    pub from: String,
    pub to: String,
    pub kind: MigrationKind,
    /// `running`, `completed`, `abandoned`.
    pub state: String,
    /// Why it was abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was requested, ns of CLOCK_REALTIME.
    pub requested_ns: u64,
    /// Each phase reached, in order, with ms since the request
    /// (`session_ready`, `instance_ready`, `stream_ready`, `switched`,
    /// `released`, `abandoned`, ...).
    pub phases: Vec<Phase>,
    /// The switch report's SSIM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssim: Option<f64>,
    /// The parallel session's setup time and the destination instance's
    /// start time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_start_ms: Option<f64>,
}

/// A phase of a migration and when it was reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub phase: String,
    pub ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_and_flat() {
        let e = UeEvent {
            seq: 3,
            migration: 1,
            at_ns: 5,
            kind: UeEventKind::Released {
                edge: "edge1".into(),
                pdu_session_id: 1,
            },
        };
        let j = serde_json::to_value(&e).expect("serialize");
        assert_eq!(
            j,
            serde_json::json!({"seq": 3, "migration": 1, "at_ns": 5,
                "event": "released", "edge": "edge1", "pdu_session_id": 1})
        );
        assert_eq!(serde_json::from_value::<UeEvent>(j).expect("parse"), e);
    }

    #[test]
    fn unknown_fields_are_refused_from_the_ue() {
        let r = serde_json::from_str::<MigrationRequest>(r#"{"ue_id":"u","to":"edge2","x":1}"#);
        assert!(r.is_err());
        let r: MigrationRequest = serde_json::from_str(r#"{"ue_id":"u"}"#).expect("parse");
        assert_eq!(r.to, None);
        assert_eq!(
            serde_json::to_string(&MigrationKind::SwitchOnly).expect("ser"),
            "\"switch_only\""
        );
    }
}
