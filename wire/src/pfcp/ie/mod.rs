//! PFCP information elements (TS 29.244 clause 8): type numbers, simple
//! (leaf) IEs in [`simple`], grouped IEs in [`grouped`].
//!
//! The leaf IEs live in one file a family: `node` (Cause, Node ID, F-SEID,
//! function features, Failed Rule ID), `detection` (what a PDI matches),
//! `forwarding` (Apply Action, outer headers), `qos` (QFI, gates, bit rates)
//! and `usage` (measurement, triggers, volumes); [`simple`] re-exports them.

mod detection;
mod forwarding;
pub mod grouped;
mod node;
mod qos;
pub mod simple;
mod usage;

pub use grouped::*;
pub use simple::*;

/// IE type numbers (TS 29.244 Table 8.1.2-1) of the IEs this crate knows.
pub mod ie_type {
    #![allow(missing_docs)]
    pub const CREATE_PDR: u16 = 1;
    pub const PDI: u16 = 2;
    pub const CREATE_FAR: u16 = 3;
    pub const FORWARDING_PARAMETERS: u16 = 4;
    pub const DUPLICATING_PARAMETERS: u16 = 5;
    pub const CREATE_URR: u16 = 6;
    pub const CREATE_QER: u16 = 7;
    pub const CREATED_PDR: u16 = 8;
    pub const UPDATE_PDR: u16 = 9;
    pub const UPDATE_FAR: u16 = 10;
    pub const UPDATE_FORWARDING_PARAMETERS: u16 = 11;
    /// Update BAR within a Session Report Response.
    pub const UPDATE_BAR_SESSION_REPORT_RESPONSE: u16 = 12;
    pub const UPDATE_URR: u16 = 13;
    pub const UPDATE_QER: u16 = 14;
    pub const REMOVE_PDR: u16 = 15;
    pub const REMOVE_FAR: u16 = 16;
    pub const REMOVE_URR: u16 = 17;
    pub const REMOVE_QER: u16 = 18;
    pub const CAUSE: u16 = 19;
    pub const SOURCE_INTERFACE: u16 = 20;
    pub const F_TEID: u16 = 21;
    pub const NETWORK_INSTANCE: u16 = 22;
    pub const SDF_FILTER: u16 = 23;
    pub const APPLICATION_ID: u16 = 24;
    pub const GATE_STATUS: u16 = 25;
    pub const MBR: u16 = 26;
    pub const GBR: u16 = 27;
    pub const QER_CORRELATION_ID: u16 = 28;
    pub const PRECEDENCE: u16 = 29;
    pub const TRANSPORT_LEVEL_MARKING: u16 = 30;
    pub const VOLUME_THRESHOLD: u16 = 31;
    pub const TIME_THRESHOLD: u16 = 32;
    pub const MONITORING_TIME: u16 = 33;
    pub const INACTIVITY_DETECTION_TIME: u16 = 36;
    pub const REPORTING_TRIGGERS: u16 = 37;
    pub const REPORT_TYPE: u16 = 39;
    pub const OFFENDING_IE: u16 = 40;
    pub const DESTINATION_INTERFACE: u16 = 42;
    pub const UP_FUNCTION_FEATURES: u16 = 43;
    pub const APPLY_ACTION: u16 = 44;
    pub const DOWNLINK_DATA_NOTIFICATION_DELAY: u16 = 46;
    pub const PFCPSMREQ_FLAGS: u16 = 49;
    pub const PFCPSRRSP_FLAGS: u16 = 50;
    pub const LOAD_CONTROL_INFORMATION: u16 = 51;
    pub const OVERLOAD_CONTROL_INFORMATION: u16 = 54;
    pub const PDR_ID: u16 = 56;
    pub const F_SEID: u16 = 57;
    pub const NODE_ID: u16 = 60;
    pub const MEASUREMENT_METHOD: u16 = 62;
    pub const USAGE_REPORT_TRIGGER: u16 = 63;
    pub const MEASUREMENT_PERIOD: u16 = 64;
    pub const VOLUME_MEASUREMENT: u16 = 66;
    pub const DURATION_MEASUREMENT: u16 = 67;
    pub const TIME_OF_FIRST_PACKET: u16 = 69;
    pub const TIME_OF_LAST_PACKET: u16 = 70;
    pub const QUOTA_HOLDING_TIME: u16 = 71;
    pub const VOLUME_QUOTA: u16 = 73;
    pub const TIME_QUOTA: u16 = 74;
    pub const START_TIME: u16 = 75;
    pub const END_TIME: u16 = 76;
    pub const QUERY_URR: u16 = 77;
    /// Usage Report within a Session Modification Response.
    pub const USAGE_REPORT_MODIFICATION: u16 = 78;
    /// Usage Report within a Session Deletion Response.
    pub const USAGE_REPORT_DELETION: u16 = 79;
    /// Usage Report within a Session Report Request.
    pub const USAGE_REPORT_REPORT: u16 = 80;
    pub const URR_ID: u16 = 81;
    pub const LINKED_URR_ID: u16 = 82;
    pub const DOWNLINK_DATA_REPORT: u16 = 83;
    pub const OUTER_HEADER_CREATION: u16 = 84;
    pub const CREATE_BAR: u16 = 85;
    /// Update BAR within a Session Modification Request.
    pub const UPDATE_BAR: u16 = 86;
    pub const REMOVE_BAR: u16 = 87;
    pub const BAR_ID: u16 = 88;
    pub const CP_FUNCTION_FEATURES: u16 = 89;
    pub const USAGE_INFORMATION: u16 = 90;
    pub const UE_IP_ADDRESS: u16 = 93;
    pub const OUTER_HEADER_REMOVAL: u16 = 95;
    pub const RECOVERY_TIME_STAMP: u16 = 96;
    pub const MEASUREMENT_INFORMATION: u16 = 100;
    pub const UR_SEQN: u16 = 104;
    pub const FAR_ID: u16 = 108;
    pub const QER_ID: u16 = 109;
    pub const PFCP_ASSOCIATION_RELEASE_REQUEST: u16 = 111;
    pub const GRACEFUL_RELEASE_PERIOD: u16 = 112;
    pub const PDN_TYPE: u16 = 113;
    pub const FAILED_RULE_ID: u16 = 114;
    pub const USER_PLANE_INACTIVITY_TIMER: u16 = 117;
    pub const RQI: u16 = 123;
    pub const QFI: u16 = 124;
    pub const QUERY_URR_REFERENCE: u16 = 125;
    pub const SUGGESTED_BUFFERING_PACKETS_COUNT: u16 = 140;
    pub const APN_DNN: u16 = 159;
    /// 3GPP Interface Type (used as Source / Destination Interface Type).
    pub const TGPP_INTERFACE_TYPE: u16 = 160;
}
