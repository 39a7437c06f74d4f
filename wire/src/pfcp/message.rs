//! PFCP messages (TS 29.244 clause 7): one struct per message, and
//! [`Message`], header plus body, with parse and emit.

use super::codec::{grouped, IeCodec, IeIter, RawIe, Writer};
use super::error::{MsgContext, PfcpError};
use super::header::{Header, RawHeader, FIRST_SESSION_MSG_TYPE};
use super::ie::ie_type as t;
use super::ie::*;

grouped! {
    /// Heartbeat Request (type 1), §7.4.2.1.
    pub struct HeartbeatRequest {
        /// Recovery Time Stamp (NTP seconds of the sender's last start).
        recovery_time_stamp: M u32 = t::RECOVERY_TIME_STAMP,
    }
}

grouped! {
    /// Heartbeat Response (type 2), §7.4.2.2.
    pub struct HeartbeatResponse {
        /// Recovery Time Stamp.
        recovery_time_stamp: M u32 = t::RECOVERY_TIME_STAMP,
    }
}

grouped! {
    /// Association Setup Request (type 5), Table 7.4.4.1-1.
    pub struct AssociationSetupRequest {
        /// Node ID of the sender.
        node_id: M NodeId = t::NODE_ID,
        /// Recovery Time Stamp.
        recovery_time_stamp: M u32 = t::RECOVERY_TIME_STAMP,
        /// UP Function Features (sent by a UP function).
        up_function_features: O FunctionFeatures = t::UP_FUNCTION_FEATURES,
        /// CP Function Features (sent by a CP function).
        cp_function_features: O FunctionFeatures = t::CP_FUNCTION_FEATURES,
    }
}

grouped! {
    /// Association Setup Response (type 6), Table 7.4.4.2-1.
    pub struct AssociationSetupResponse {
        /// Node ID of the sender.
        node_id: M NodeId = t::NODE_ID,
        /// Cause.
        cause: M Cause = t::CAUSE,
        /// Recovery Time Stamp.
        recovery_time_stamp: M u32 = t::RECOVERY_TIME_STAMP,
        /// UP Function Features.
        up_function_features: O FunctionFeatures = t::UP_FUNCTION_FEATURES,
        /// CP Function Features.
        cp_function_features: O FunctionFeatures = t::CP_FUNCTION_FEATURES,
    }
}

grouped! {
    /// Association Update Request (type 7), Table 7.4.4.3-1.
    pub struct AssociationUpdateRequest {
        /// Node ID of the sender.
        node_id: M NodeId = t::NODE_ID,
        /// UP Function Features.
        up_function_features: O FunctionFeatures = t::UP_FUNCTION_FEATURES,
        /// CP Function Features.
        cp_function_features: O FunctionFeatures = t::CP_FUNCTION_FEATURES,
        /// PFCP Association Release Request flags (bit 1 SARR, bit 2 URSS).
        association_release_request: O u8 = t::PFCP_ASSOCIATION_RELEASE_REQUEST,
        /// Graceful Release Period (timer octet).
        graceful_release_period: O u8 = t::GRACEFUL_RELEASE_PERIOD,
    }
}

grouped! {
    /// Association Update Response (type 8), Table 7.4.4.4-1.
    pub struct AssociationUpdateResponse {
        /// Node ID of the sender.
        node_id: M NodeId = t::NODE_ID,
        /// Cause.
        cause: M Cause = t::CAUSE,
        /// UP Function Features.
        up_function_features: O FunctionFeatures = t::UP_FUNCTION_FEATURES,
        /// CP Function Features.
        cp_function_features: O FunctionFeatures = t::CP_FUNCTION_FEATURES,
    }
}

grouped! {
    /// Association Release Request (type 9), Table 7.4.4.5-1.
    pub struct AssociationReleaseRequest {
        /// Node ID of the sender.
        node_id: M NodeId = t::NODE_ID,
    }
}

grouped! {
    /// Association Release Response (type 10), Table 7.4.4.6-1.
    pub struct AssociationReleaseResponse {
        /// Node ID of the sender.
        node_id: M NodeId = t::NODE_ID,
        /// Cause.
        cause: M Cause = t::CAUSE,
    }
}

grouped! {
    /// Version Not Supported Response (type 11), §7.4.4.7: no IEs.
    pub struct VersionNotSupportedResponse {}
}

grouped! {
    /// Session Establishment Request (type 50), Table 7.5.2.1-1.
    pub struct SessionEstablishmentRequest {
        /// Node ID of the CP function.
        node_id: M NodeId = t::NODE_ID,
        /// CP F-SEID: the SEID the UP function puts in its messages to the CP.
        cp_f_seid: M FSeid = t::F_SEID,
        /// Create PDR, one or more.
        create_pdrs: V1 CreatePdr = t::CREATE_PDR,
        /// Create FAR, one or more.
        create_fars: V1 CreateFar = t::CREATE_FAR,
        /// Create URR.
        create_urrs: V CreateUrr = t::CREATE_URR,
        /// Create QER.
        create_qers: V CreateQer = t::CREATE_QER,
        /// Create BAR.
        create_bar: O CreateBar = t::CREATE_BAR,
        /// PDN Type (1 IPv4, 2 IPv6, 3 IPv4v6, 4 Non-IP, 5 Ethernet).
        pdn_type: O u8 = t::PDN_TYPE,
        /// User Plane Inactivity Timer, seconds.
        user_plane_inactivity_timer: O u32 = t::USER_PLANE_INACTIVITY_TIMER,
    }
}

grouped! {
    /// Session Establishment Response (type 51), Table 7.5.3.1-1.
    pub struct SessionEstablishmentResponse {
        /// Node ID of the UP function.
        node_id: M NodeId = t::NODE_ID,
        /// Cause.
        cause: M Cause = t::CAUSE,
        /// Offending IE (with a rejection cause about an IE).
        offending_ie: O u16 = t::OFFENDING_IE,
        /// UP F-SEID (when accepted).
        up_f_seid: O FSeid = t::F_SEID,
        /// Created PDR: what the UP function allocated (F-TEID CHOOSE).
        created_pdrs: V CreatedPdr = t::CREATED_PDR,
        /// Failed Rule ID (with cause 73).
        failed_rule_id: O FailedRuleId = t::FAILED_RULE_ID,
    }
}

grouped! {
    /// Session Modification Request (type 52), Table 7.5.4.1-1.
    pub struct SessionModificationRequest {
        /// CP F-SEID (when the CP function changes it).
        cp_f_seid: O FSeid = t::F_SEID,
        /// Remove PDR.
        remove_pdrs: V RemovePdr = t::REMOVE_PDR,
        /// Remove FAR.
        remove_fars: V RemoveFar = t::REMOVE_FAR,
        /// Remove URR.
        remove_urrs: V RemoveUrr = t::REMOVE_URR,
        /// Remove QER.
        remove_qers: V RemoveQer = t::REMOVE_QER,
        /// Remove BAR.
        remove_bar: O RemoveBar = t::REMOVE_BAR,
        /// Create PDR.
        create_pdrs: V CreatePdr = t::CREATE_PDR,
        /// Create FAR.
        create_fars: V CreateFar = t::CREATE_FAR,
        /// Create URR.
        create_urrs: V CreateUrr = t::CREATE_URR,
        /// Create QER.
        create_qers: V CreateQer = t::CREATE_QER,
        /// Create BAR.
        create_bar: O CreateBar = t::CREATE_BAR,
        /// Update PDR.
        update_pdrs: V UpdatePdr = t::UPDATE_PDR,
        /// Update FAR.
        update_fars: V UpdateFar = t::UPDATE_FAR,
        /// Update URR.
        update_urrs: V UpdateUrr = t::UPDATE_URR,
        /// Update QER.
        update_qers: V UpdateQer = t::UPDATE_QER,
        /// Update BAR.
        update_bar: O UpdateBar = t::UPDATE_BAR,
        /// PFCPSMReq-Flags (bit 1 DROBU, bit 2 SNDEM, bit 3 QAURR).
        pfcpsmreq_flags: O u8 = t::PFCPSMREQ_FLAGS,
        /// Query URR.
        query_urrs: V QueryUrr = t::QUERY_URR,
        /// User Plane Inactivity Timer.
        user_plane_inactivity_timer: O u32 = t::USER_PLANE_INACTIVITY_TIMER,
    }
}

grouped! {
    /// Session Modification Response (type 53), Table 7.5.5.1-1.
    pub struct SessionModificationResponse {
        /// Cause.
        cause: M Cause = t::CAUSE,
        /// Offending IE.
        offending_ie: O u16 = t::OFFENDING_IE,
        /// Created PDR.
        created_pdrs: V CreatedPdr = t::CREATED_PDR,
        /// Usage Report (type 78).
        usage_reports: V UsageReport = t::USAGE_REPORT_MODIFICATION,
        /// Failed Rule ID.
        failed_rule_id: O FailedRuleId = t::FAILED_RULE_ID,
    }
}

grouped! {
    /// Session Deletion Request (type 54), §7.5.6: no IEs.
    pub struct SessionDeletionRequest {}
}

grouped! {
    /// Session Deletion Response (type 55), Table 7.5.7.1-1.
    pub struct SessionDeletionResponse {
        /// Cause.
        cause: M Cause = t::CAUSE,
        /// Offending IE.
        offending_ie: O u16 = t::OFFENDING_IE,
        /// Usage Report (type 79): the final counts.
        usage_reports: V UsageReport = t::USAGE_REPORT_DELETION,
    }
}

grouped! {
    /// Session Report Request (type 56), Table 7.5.8.1-1.
    pub struct SessionReportRequest {
        /// Report Type.
        report_type: M ReportType = t::REPORT_TYPE,
        /// Downlink Data Report (DLDR).
        downlink_data_report: O DownlinkDataReport = t::DOWNLINK_DATA_REPORT,
        /// Usage Report (type 80, USAR).
        usage_reports: V UsageReport = t::USAGE_REPORT_REPORT,
    }
}

grouped! {
    /// Session Report Response (type 57), Table 7.5.9.1-1.
    pub struct SessionReportResponse {
        /// Cause.
        cause: M Cause = t::CAUSE,
        /// Offending IE.
        offending_ie: O u16 = t::OFFENDING_IE,
        /// Update BAR (type 12).
        update_bar: O UpdateBar = t::UPDATE_BAR_SESSION_REPORT_RESPONSE,
        /// PFCPSRRsp-Flags (bit 1 DROBU).
        pfcpsrrsp_flags: O u8 = t::PFCPSRRSP_FLAGS,
        /// CP F-SEID.
        cp_f_seid: O FSeid = t::F_SEID,
    }
}

macro_rules! message_body {
    ( $( $(#[$vattr:meta])* $variant:ident = $code:expr ),+ $(,)? ) => {
        /// Message type numbers (TS 29.244 Table 7.3-1).
        pub mod msg_type {
            #![allow(missing_docs, non_upper_case_globals)]
            $( pub const $variant: u8 = $code; )+
        }

        /// The body of a PFCP message, by message type.
        // Control plane, not per packet: the size of the largest variant
        // (Session Modification Request) is not worth a box per message.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum MessageBody {
            $( $(#[$vattr])* $variant($variant), )+
            /// A message type not modelled here (PFD Management, Node Report,
            /// Session Set Deletion, ...), body kept as bytes.
            Unknown {
                /// The message type.
                msg_type: u8,
                /// The octets after the header.
                body: Vec<u8>,
            },
        }

        impl MessageBody {
            /// The message type number.
            pub fn msg_type(&self) -> u8 {
                match self {
                    $( MessageBody::$variant(_) => $code, )+
                    MessageBody::Unknown { msg_type, .. } => *msg_type,
                }
            }

            /// Whether `msg_type` is one of the modelled messages.
            pub fn is_known(msg_type: u8) -> bool {
                matches!(msg_type, $( $code )|+)
            }

            fn decode(msg_type: u8, body: &[u8]) -> Result<Self, PfcpError> {
                Ok(match msg_type {
                    $( $code => MessageBody::$variant($variant::decode_ies(body)?), )+
                    _ => MessageBody::Unknown { msg_type, body: body.to_vec() },
                })
            }

            fn body_len(&self) -> usize {
                match self {
                    $( MessageBody::$variant(m) => m.ies_len(), )+
                    MessageBody::Unknown { body, .. } => body.len(),
                }
            }

            fn encode(&self, w: &mut Writer<'_>) {
                match self {
                    $( MessageBody::$variant(m) => m.encode_ies(w), )+
                    MessageBody::Unknown { body, .. } => w.bytes(body),
                }
            }

            /// IEs kept unparsed (unknown or not modelled) at the top level,
            /// for counting; empty for `Unknown` messages.
            pub fn unknown_ies(&self) -> &[RawIe] {
                match self {
                    $( MessageBody::$variant(m) => &m.unknown, )+
                    MessageBody::Unknown { .. } => &[],
                }
            }
        }

        $(
            impl From<$variant> for MessageBody {
                fn from(m: $variant) -> Self {
                    MessageBody::$variant(m)
                }
            }
        )+
    };
}

message_body! {
    HeartbeatRequest = 1,
    HeartbeatResponse = 2,
    AssociationSetupRequest = 5,
    AssociationSetupResponse = 6,
    AssociationUpdateRequest = 7,
    AssociationUpdateResponse = 8,
    AssociationReleaseRequest = 9,
    AssociationReleaseResponse = 10,
    VersionNotSupportedResponse = 11,
    SessionEstablishmentRequest = 50,
    SessionEstablishmentResponse = 51,
    SessionModificationRequest = 52,
    SessionModificationResponse = 53,
    SessionDeletionRequest = 54,
    SessionDeletionResponse = 55,
    SessionReportRequest = 56,
    SessionReportResponse = 57,
}

/// A PFCP message: header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// SEID, sequence number, priority, FO flag.
    pub header: Header,
    /// The message.
    pub body: MessageBody,
}

/// The largest message the 16-bit length field allows.
pub const MAX_MESSAGE_LEN: usize = 0xffff + 4;

impl Message {
    /// A node-related message (no SEID).
    pub fn node(seq: u32, body: impl Into<MessageBody>) -> Self {
        Message {
            header: Header {
                seq,
                ..Default::default()
            },
            body: body.into(),
        }
    }

    /// A session-related message carrying `seid` (the peer's SEID; 0 when it
    /// is not known yet, e.g. a rejected establishment).
    pub fn session(seid: u64, seq: u32, body: impl Into<MessageBody>) -> Self {
        Message {
            header: Header {
                seid: Some(seid),
                seq,
                ..Default::default()
            },
            body: body.into(),
        }
    }

    /// The message type number.
    pub fn msg_type(&self) -> u8 {
        self.body.msg_type()
    }

    /// Parses one message that fills `buf` up to its length field (octets
    /// after it are ignored; see [`Message::parse_prefix`]).
    pub fn parse(buf: &[u8]) -> Result<Message, PfcpError> {
        Self::parse_prefix(buf).map(|(m, _)| m)
    }

    /// Parses the message at the start of `buf` and returns it with its length,
    /// for datagrams carrying several messages (FO flag).
    pub fn parse_prefix(buf: &[u8]) -> Result<(Message, usize), PfcpError> {
        let raw = RawHeader::parse(buf)?;
        let ctx = MsgContext {
            msg_type: raw.msg_type,
            seq: raw.header.seq,
            seid: raw.header.seid,
        };
        let known = MessageBody::is_known(raw.msg_type);
        let wants_seid = raw.msg_type >= FIRST_SESSION_MSG_TYPE;
        if known && wants_seid != raw.header.seid.is_some() {
            return Err(PfcpError::SeidFlag {
                msg_type: raw.msg_type,
                s: raw.header.seid.is_some(),
                ctx,
            });
        }
        // RawHeader::parse checked header_len <= total_len <= buf.len().
        let body = buf.get(raw.header_len..raw.total_len).unwrap_or(&[]);
        let body = MessageBody::decode(raw.msg_type, body).map_err(|e| e.in_message(ctx))?;
        Ok((
            Message {
                header: raw.header,
                body,
            },
            raw.total_len,
        ))
    }

    /// The value of the first top-level IE of type `ie_type` in the message
    /// at the start of `buf`, found without decoding the rest: lets a
    /// responder recover e.g. the CP F-SEID of a Session Establishment Request
    /// that failed to parse, to address its rejection.
    pub fn peek_ie(buf: &[u8], ie_type: u16) -> Option<&[u8]> {
        let raw = RawHeader::parse(buf).ok()?;
        let body = buf.get(raw.header_len..raw.total_len)?;
        IeIter::new(body)
            .map_while(Result::ok)
            .find(|ie| ie.ie_type == ie_type && ie.enterprise_id.is_none())
            .map(|ie| ie.data)
    }

    /// The CP F-SEID of a (possibly malformed) Session Establishment Request,
    /// if that IE itself is readable; see [`Message::peek_ie`].
    pub fn peek_f_seid(buf: &[u8]) -> Option<FSeid> {
        let v = Self::peek_ie(buf, t::F_SEID)?;
        <FSeid as IeCodec>::decode(t::F_SEID, v).ok()
    }

    /// Octets [`Message::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.header.len() + self.body.body_len()
    }

    /// Writes the message at the start of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, PfcpError> {
        let need = self.buffer_len();
        if buf.len() < need {
            return Err(PfcpError::BufferTooSmall {
                need,
                got: buf.len(),
            });
        }
        let mut w = Writer::new(buf);
        let at = self.header.emit(self.msg_type(), &mut w);
        self.body.encode(&mut w);
        w.patch_len(at, 0);
        w.finish()
    }

    /// Appends the message to `out`.
    pub fn emit_vec(&self, out: &mut Vec<u8>) -> Result<usize, PfcpError> {
        let start = out.len();
        out.resize(start + self.buffer_len(), 0);
        match self.emit(&mut out[start..]) {
            Ok(n) => Ok(n),
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// The message as a new vector.
    pub fn to_vec(&self) -> Result<Vec<u8>, PfcpError> {
        let mut v = Vec::new();
        self.emit_vec(&mut v)?;
        Ok(v)
    }
}
