//! The UE's service and its CSM migration agent (DESIGN.md section 5): the
//! long-running part of `ue run`.
//!
//! `POST /play` starts a [`Service`] over an established session: a
//! streaming-client thread and one-frame buffer per stream, the screen
//! (the display thread, with the stream selector: [`crate::stream::screen`]),
//! the input bot, and the migration agent, which registers the service
//! with the SMF's migration manager and follows its events, all over N1
//! through the gNB:
//!
//! - `session_ready`: the parallel session is installed (address, table,
//!   rule) and a streaming client listens on its address;
//! - `stream_ready`: a key-frame request goes to the destination instance
//!   from the new session's address, and the selector begins watching;
//! - the selector's decision: the input switches to the destination (the
//!   SWITCH flag, the last inputs resent) and the switch is reported;
//! - `released`: the old stream stops and its session is removed;
//! - `abandoned`: whatever was made for the destination goes.
//!
//! `POST /follow` shows another edge's stream once it shows frames, without
//! the SMF (the state-copy baselines: [`FollowRequest`]).
//!
//! `POST /migrate` asks for a migration; with a latency trigger the agent
//! asks on its own when the serving edge's latency stays high.

pub mod api;
pub mod figures;
mod runtime;

use std::sync::Arc;

pub use api::{
    ControlWindow, FollowRequest, LatencyTrigger, MigrateRequest, PlayOutcome, PlayStart,
    SelectorSettings, UeMigration, UeMigrationState, UeStatus,
};
pub use runtime::Service;

/// A service request failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A field of the request is wrong.
    #[error("{field}: {msg}")]
    Bad {
        /// Which field.
        field: &'static str,
        /// Why.
        msg: String,
    },
    /// No service is playing.
    #[error("no service is playing (POST /play first)")]
    NotPlaying,
    /// A service is playing already.
    #[error("a service is playing already (DELETE /play first)")]
    Playing,
    /// The network refused (status and its reason).
    #[error("{reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The network's reason.
        reason: String,
        /// The field it named.
        field: Option<String>,
    },
    /// The streaming parts failed.
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
    /// A session operation failed.
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
}

/// The shared handle of the daemon's service slot.
pub type Slot = Arc<tokio::sync::Mutex<Option<Arc<Service>>>>;
