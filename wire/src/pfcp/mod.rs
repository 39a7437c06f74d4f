//! PFCP (3GPP TS 29.244), the N4 protocol between SMF and UPF: owned,
//! structured messages with parse/emit pairs.
//!
//! - [`Message`] = [`Header`] (SEID, sequence number, priority) +
//!   [`MessageBody`], one variant per message type, each a struct whose
//!   fields are its IEs: mandatory IEs as plain fields, conditional/optional
//!   ones as `Option`, repeatable ones as `Vec`, and `unknown: Vec<RawIe>` for
//!   IEs not modelled (unknown, enterprise-specific, Load/Overload Control...),
//!   kept in order so they can be counted and re-emitted.
//! - Grouped IEs ([`CreatePdr`], [`Pdi`], [`CreateFar`], [`UsageReport`], ...)
//!   are structs of the same shape and nest.
//! - Enumerated values keep unknown code points (`Unknown(n)`); bit fields are
//!   flag newtypes ([`ApplyAction`], [`ReportingTriggers`], ...).
//! - Errors are [`PfcpError`]: a missing mandatory IE, a short IE or a bad
//!   value is a typed error that carries the IE type, the grouped IE it sat
//!   in, and the message type / sequence number / SEID of the request, and
//!   maps to the cause to answer with ([`PfcpError::cause`],
//!   [`PfcpError::offending_ie`]).
//!
//! Parsing never panics and never reads past the buffer; the nesting of
//! grouped IEs is fixed by the types, so input cannot make it recurse.
//!
//! A UPF answering a Session Establishment Request whose uplink PDR asked
//! for F-TEID CHOOSE, and turning a parse error into a rejection:
//!
//! ```
//! use std::net::Ipv4Addr;
//! use wire::pfcp::*;
//!
//! fn answer(datagram: &[u8], my_node: NodeId, teid: u32) -> Option<Vec<u8>> {
//!     let n3 = Ipv4Addr::new(10, 3, 0, 2);
//!     let (seq, cp_seid, body) = match Message::parse(datagram) {
//!         Ok(Message { header, body: MessageBody::SessionEstablishmentRequest(req) }) => {
//!             let created_pdrs = req
//!                 .create_pdrs
//!                 .iter()
//!                 .filter(|p| matches!(p.pdi.local_f_teid, Some(FTeid::Choose { .. })))
//!                 .map(|p| CreatedPdr {
//!                     pdr_id: p.pdr_id,
//!                     local_f_teid: Some(FTeid::ipv4(teid, n3)),
//!                     ..Default::default()
//!                 })
//!                 .collect();
//!             let rsp = SessionEstablishmentResponse {
//!                 node_id: my_node,
//!                 cause: Cause::RequestAccepted,
//!                 up_f_seid: Some(FSeid { seid: 0x2002, ipv4: Some(Ipv4Addr::new(10, 100, 0, 2)), ipv6: None }),
//!                 created_pdrs,
//!                 ..Default::default()
//!             };
//!             (header.seq, req.cp_f_seid.seid, rsp)
//!         }
//!         Ok(_) => return None,
//!         Err(e) => {
//!             // Cause 66/68/69 with the Offending IE, addressed with the
//!             // request's sequence number and the CP SEID if readable.
//!             let ctx = e.context()?;
//!             let rsp = SessionEstablishmentResponse {
//!                 node_id: my_node,
//!                 cause: e.cause(),
//!                 offending_ie: e.offending_ie(),
//!                 ..Default::default()
//!             };
//!             (ctx.seq, Message::peek_f_seid(datagram).map_or(0, |f| f.seid), rsp)
//!         }
//!     };
//!     Message::session(cp_seid, seq, body).to_vec().ok()
//! }
//! # let req = Message::session(0, 7, SessionEstablishmentRequest {
//! #     node_id: NodeId::Ipv4(Ipv4Addr::new(10, 100, 0, 1)),
//! #     cp_f_seid: FSeid { seid: 0x1001, ipv4: Some(Ipv4Addr::new(10, 100, 0, 1)), ipv6: None },
//! #     create_pdrs: vec![CreatePdr { pdr_id: 1, pdi: Pdi { local_f_teid: Some(FTeid::Choose { v4: true, v6: false, choose_id: None }), ..Default::default() }, ..Default::default() }],
//! #     create_fars: vec![CreateFar { far_id: 1, apply_action: ApplyAction::FORW, ..Default::default() }],
//! #     ..Default::default()
//! # });
//! # let out = answer(&req.to_vec().unwrap(), NodeId::fqdn("upf1"), 0x101).unwrap();
//! # let rsp = Message::parse(&out).unwrap();
//! # assert_eq!((rsp.header.seid, rsp.header.seq), (Some(0x1001), 7));
//! # let MessageBody::SessionEstablishmentResponse(r) = rsp.body else { panic!() };
//! # assert_eq!(r.created_pdrs[0].local_f_teid.and_then(|f| f.teid()), Some(0x101));
//! # let mut bad = req.to_vec().unwrap();
//! # bad.truncate(bad.len() - 8); // cut into the Create FAR
//! # let len = (bad.len() - 4) as u16;
//! # bad[2..4].copy_from_slice(&len.to_be_bytes());
//! # let out = answer(&bad, NodeId::fqdn("upf1"), 0x101).unwrap();
//! # let MessageBody::SessionEstablishmentResponse(r) = Message::parse(&out).unwrap().body else { panic!() };
//! # assert_eq!((r.cause, r.offending_ie), (Cause::InvalidLength, Some(3)));
//! ```

mod codec;
pub mod error;
pub mod header;
pub mod ie;
pub mod message;

pub use codec::RawIe;
pub use error::{MsgContext, PfcpError};
pub use header::{Header, RawHeader};
pub use ie::*;
pub use message::*;

/// The PFCP UDP port (TS 29.244 §4.2.2).
pub const PFCP_PORT: u16 = 8805;

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A time as the 32-bit NTP seconds that Recovery Time Stamp, Start Time,
/// End Time etc. carry (wraps in 2036 as NTP era 0 does).
pub fn ntp_seconds(t: std::time::SystemTime) -> u32 {
    let unix = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (unix + NTP_UNIX_OFFSET) as u32
}

/// Parses one PFCP message; see [`Message::parse`].
pub fn parse(buf: &[u8]) -> Result<Message, PfcpError> {
    Message::parse(buf)
}

#[cfg(test)]
mod tests;
