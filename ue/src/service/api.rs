//! The bodies of the UE daemon's CSM API (see [`crate::service`]).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use wire::ctl::migration::{MigrationKind, StreamParams};

use crate::stream::PlayReport;

/// `POST /play`: play a service over an established session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayStart {
    pub app: String,
    pub account: String,
    pub token: String,
    /// The serving edge (its name in the SMF's `[[edge]]`).
    pub edge: String,
    /// The PDU session the stream runs over (established before).
    pub psi: u8,
    /// The serving instance's id at that edge's agent.
    pub instance: String,
    /// The instance's input address (the edge's N6 address and port).
    pub input: SocketAddr,
    /// UDP port the video arrives on, on every session's address.
    #[serde(default = "d_stream_port")]
    pub stream_port: u16,
    #[serde(default)]
    pub params: StreamParams,
    /// Bot inputs per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_rate: Option<f64>,
    /// Write the displayed frames to this Y4M file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    /// Write the record of every displayed frame (JSON lines: display,
    /// decode, arrival and render times, stream, sequence, SSIM against
    /// the frame before) to this file when the play stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_log: Option<String>,
    #[serde(default)]
    pub selector: SelectorSettings,
    /// Let the UE's migration agent ask for a migration itself when the
    /// latency to the serving edge stays high.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<LatencyTrigger>,
}

fn d_stream_port() -> u16 {
    5004
}

/// The stream selector's settings (each mechanism can be switched off:
/// the paper's Table V ablations).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectorSettings {
    /// SSIM threshold of the switch.
    pub threshold: f64,
    /// Length of the frame slide, ms (N = this at the frame rate).
    pub blend_ms: u64,
    /// Give the switch up after this long without a similar pair, ms.
    pub give_up_ms: u64,
    pub use_threshold: bool,
    pub use_sliding: bool,
    pub use_one_frame_buffer: bool,
    /// Show each frame at its render slot plus a playout delay
    /// ([`crate::stream::pacer`]); off: when decoded.
    pub use_pacing: bool,
    /// How long a late frame holds the playout delay up, ms
    /// ([`crate::stream::pacer::PacingConfig::window`]).
    pub pacing_window_ms: u64,
    /// Inputs sent again at a switch (the cloud dedupes them).
    pub resend: usize,
}

impl Default for SelectorSettings {
    fn default() -> Self {
        SelectorSettings {
            threshold: crate::stream::selector::DEFAULT_THRESHOLD,
            blend_ms: 200,
            give_up_ms: 10_000,
            use_threshold: true,
            use_sliding: true,
            use_one_frame_buffer: true,
            use_pacing: true,
            pacing_window_ms: crate::stream::pacer::DEFAULT_WINDOW_MS,
            resend: 8,
        }
    }
}

/// The UE migration agent's own trigger: latency to the serving edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTrigger {
    /// Ask for a migration when the latency stays above this...
    pub threshold_ms: f64,
    /// ...for this long.
    pub for_ms: u64,
    /// Measure every this many ms.
    #[serde(default = "d_probe_ms")]
    pub probe_ms: u64,
}

fn d_probe_ms() -> u64 {
    100
}

/// `POST /migrate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// `POST /follow`: show another edge's stream as soon as it shows frames,
/// without the SMF: the state-copy baselines, where the testbed moves the
/// instance between the edges' agents and the UE only follows its stream
/// over a session to the destination set up before. The first request
/// (before the copy) opens the stream and watches it; the destination's
/// input address, known once its instance started, comes in a second
/// request with `input` (the bot's input moves there then, or at the
/// switch if it comes first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// The destination edge (a name for its stream).
    pub edge: String,
    /// The UE's session to that edge (established before).
    pub psi: u8,
    /// The destination instance's input address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<SocketAddr>,
}

/// Where a migration is, as the UE sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UeMigrationState {
    Running,
    Switched,
    Completed,
    Abandoned,
}

/// One migration, with the figures the UE measures (CLOCK_REALTIME ns).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UeMigration {
    pub id: u64,
    pub from: String,
    pub to: String,
    pub kind: MigrationKind,
    pub state: UeMigrationState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the UE's agent asked on its own (latency trigger).
    #[serde(default)]
    pub triggered: bool,
    /// A follow (`POST /follow`): the SMF took no part.
    #[serde(default)]
    pub local: bool,
    pub requested_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_ready_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_dest_frame_ns: Option<u64>,
    /// First output frame with a destination contribution - decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_ms: Option<f64>,
    /// Decision - request (monotonic clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssim_at_switch: Option<f64>,
    #[serde(default)]
    pub frames_blended: u32,
    /// Inputs sent again at this migration's switch: datagrams that left
    /// (at most the configured `resend`; fewer if fewer were sent before,
    /// or the bot had not yet taken the switch up).
    #[serde(default)]
    pub inputs_resent: u64,
    /// Longest gap between displayed frames within 1 s of the switch,
    /// minus the p99 gap away from switches (filled in at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<f64>,
    /// Of the gap that made `stall_ms`, how long its closing frame was
    /// shown after it was due: the display thread's own share (filled in
    /// at the end; with pacing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_display_late_ms: Option<f64>,
    /// Where the gap that made `stall_ms` ended, from the switch decision
    /// (ms, negative before it; filled in at the end): a gap far from the
    /// switch is only inside its window, and two switches less than 2 s
    /// apart can see the same gap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_offset_ms: Option<f64>,
    /// Display freeze: the longest interval between displayed frames from
    /// the request to 1 s after the first destination frame (filled in at
    /// the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_ms: Option<f64>,
    /// Lowest SSIM between consecutive displayed frames within 1 s of the
    /// switch (filled in at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_displayed_ssim: Option<f64>,
}

/// `GET /status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UeStatus {
    pub ue_id: String,
    /// The edge shown.
    pub serving: String,
    /// The edge kept as copilot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copilot: Option<String>,
    /// Migration in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrating: Option<u64>,
    /// Whether the SMF knows the service (migrations possible).
    pub registered: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_error: Option<String>,
    pub frames_displayed: u64,
    /// Inputs the bot sent so far (each sequence number once; resends at
    /// switches are not counted).
    #[serde(default)]
    pub inputs_sent: u64,
    pub migrations: Vec<UeMigration>,
}

impl UeStatus {
    /// The migration of this id.
    pub fn migration(&self, id: u64) -> Option<&UeMigration> {
        self.migrations.iter().find(|m| m.id == id)
    }
}

impl UeMigration {
    /// Whether it is still going on (no switch nor end yet).
    pub fn running(&self) -> bool {
        self.state == UeMigrationState::Running
    }
}

impl UeMigrationState {
    /// The name in the API (`running`, `switched`, `completed`, `abandoned`).
    pub fn as_str(self) -> &'static str {
        match self {
            UeMigrationState::Running => "running",
            UeMigrationState::Switched => "switched",
            UeMigrationState::Completed => "completed",
            UeMigrationState::Abandoned => "abandoned",
        }
    }
}

/// `DELETE /play`: what the run displayed and the migrations' figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlayOutcome {
    pub report: PlayReport,
    pub migrations: Vec<UeMigration>,
    /// p99 of the gap between displayed frames away from switches, ms.
    pub stall_baseline_ms: Option<f64>,
    /// 1st percentile of the SSIM between consecutive displayed frames
    /// away from switches.
    pub smoothness_baseline: Option<f64>,
    /// The stall and smoothness measures at instants away from every
    /// switch (a control: what a window without a switch scores).
    #[serde(default)]
    pub controls: Vec<ControlWindow>,
}

/// The measures of a switch's window, taken at an instant without one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlWindow {
    /// The instant (CLOCK_REALTIME ns).
    pub at_ns: u64,
    /// As `stall_ms` of a migration, ms.
    pub stall_ms: Option<f64>,
    /// As `min_displayed_ssim` of a migration.
    pub min_ssim: Option<f64>,
}
