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
//! The streaming client, stream selector and migration agent of the CSM
//! system come with later issues.

pub mod config;
pub mod daemon;
pub mod session;

pub use config::{ConfigError, SessionSpec, UeConfig};
pub use daemon::{run, AddSession, UeError};
pub use session::{SessionError, SessionManager};
