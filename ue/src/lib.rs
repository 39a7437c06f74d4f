//! UE: PDU sessions through the gNB's N1 relay (DESIGN.md section 4, step 5).
//!
//! Each session's address goes on the radio interface as a /32, with a
//! routing table per session (`default via GNB dev RADIO`) and a rule
//! `from UE_ADDR lookup TABLE`: an application picks a session by binding
//! to its address. [`session::SessionManager`] does that over rtnetlink;
//! [`daemon`] keeps the sessions and serves the API the CLI talks to.
//! Many UEs: one daemon per namespace, or several in one namespace with
//! distinct `ue_id`, `table_base` and `api`.
//!
//! [`stream`] is the streaming client of issue 6: one receiving thread and
//! one-frame buffer per stream, the display sink, the input bot and the
//! play report (`ue play`). The stream selector and migration agent of the
//! CSM system come with later issues.

pub mod config;
pub mod daemon;
pub mod service;
pub mod session;
pub mod stream;

pub use config::{ConfigError, SessionSpec, UeConfig};
pub use daemon::{run, AddSession, UeError};
pub use session::{SessionError, SessionManager};
pub use stream::{PlayConfig, PlayReport, StreamError};
