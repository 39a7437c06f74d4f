//! Grouped IEs (TS 29.244 §7.5.2 to §7.5.8). Each is a struct of its IEs:
//! mandatory ones as plain fields, conditional/optional ones as `Option`,
//! repeatable ones as `Vec`, and `unknown` for the rest. Nesting is fixed by
//! the types (at most Message > Create PDR > PDI > leaf), so decoding never
//! recurses on input-controlled depth.

use super::ie_type as t;
use super::simple::*;
use crate::pfcp::codec::{grouped, grouped_ie};

grouped! {
    /// PDI (type 2), Table 7.5.2.2-2: what a PDR matches.
    pub struct Pdi {
        /// Source Interface.
        source_interface: M SourceInterface = t::SOURCE_INTERFACE,
        /// Local F-TEID (uplink on N3/N9), possibly CHOOSE.
        local_f_teid: O FTeid = t::F_TEID,
        /// Network Instance.
        network_instance: O NetworkInstance = t::NETWORK_INSTANCE,
        /// UE IP Address(es).
        ue_ip_addresses: V UeIpAddress = t::UE_IP_ADDRESS,
        /// SDF Filters.
        sdf_filters: V SdfFilter = t::SDF_FILTER,
        /// QFIs.
        qfis: V Qfi = t::QFI,
        /// Source Interface Type (3GPP Interface Type).
        source_interface_type: O InterfaceType = t::TGPP_INTERFACE_TYPE,
    }
}
grouped_ie!(Pdi);

grouped! {
    /// Create PDR (type 1), Table 7.5.2.2-1.
    pub struct CreatePdr {
        /// PDR ID.
        pdr_id: M u16 = t::PDR_ID,
        /// Precedence (lower value = higher precedence).
        precedence: M u32 = t::PRECEDENCE,
        /// PDI.
        pdi: M Pdi = t::PDI,
        /// Outer Header Removal.
        outer_header_removal: O OuterHeaderRemoval = t::OUTER_HEADER_REMOVAL,
        /// FAR ID.
        far_id: O u32 = t::FAR_ID,
        /// URR IDs.
        urr_ids: V u32 = t::URR_ID,
        /// QER IDs.
        qer_ids: V u32 = t::QER_ID,
    }
}
grouped_ie!(CreatePdr);

grouped! {
    /// Forwarding Parameters (type 4), Table 7.5.2.3-2.
    pub struct ForwardingParameters {
        /// Destination Interface.
        destination_interface: M DestinationInterface = t::DESTINATION_INTERFACE,
        /// Network Instance.
        network_instance: O NetworkInstance = t::NETWORK_INSTANCE,
        /// Outer Header Creation.
        outer_header_creation: O OuterHeaderCreation = t::OUTER_HEADER_CREATION,
        /// Transport Level Marking (ToS/Traffic Class and mask).
        transport_level_marking: O u16 = t::TRANSPORT_LEVEL_MARKING,
        /// Destination Interface Type (3GPP Interface Type).
        destination_interface_type: O InterfaceType = t::TGPP_INTERFACE_TYPE,
    }
}
grouped_ie!(ForwardingParameters);

impl ForwardingParameters {
    /// Forwarding to `destination_interface`, nothing else set.
    pub fn to(destination_interface: DestinationInterface) -> Self {
        ForwardingParameters {
            destination_interface,
            ..Default::default()
        }
    }
}

grouped! {
    /// Create FAR (type 3), Table 7.5.2.3-1.
    pub struct CreateFar {
        /// FAR ID.
        far_id: M u32 = t::FAR_ID,
        /// Apply Action.
        apply_action: M ApplyAction = t::APPLY_ACTION,
        /// Forwarding Parameters (when FORW).
        forwarding_parameters: O ForwardingParameters = t::FORWARDING_PARAMETERS,
        /// BAR ID (when BUFF).
        bar_id: O u8 = t::BAR_ID,
    }
}
grouped_ie!(CreateFar);

grouped! {
    /// Create URR (type 6), Table 7.5.2.4-1.
    pub struct CreateUrr {
        /// URR ID.
        urr_id: M u32 = t::URR_ID,
        /// Measurement Method.
        measurement_method: M MeasurementMethod = t::MEASUREMENT_METHOD,
        /// Reporting Triggers.
        reporting_triggers: M ReportingTriggers = t::REPORTING_TRIGGERS,
        /// Measurement Period, seconds (PERIO).
        measurement_period: O u32 = t::MEASUREMENT_PERIOD,
        /// Volume Threshold, octets (VOLTH).
        volume_threshold: O Volume = t::VOLUME_THRESHOLD,
        /// Volume Quota, octets (VOLQU).
        volume_quota: O Volume = t::VOLUME_QUOTA,
        /// Time Threshold, seconds.
        time_threshold: O u32 = t::TIME_THRESHOLD,
        /// Time Quota, seconds.
        time_quota: O u32 = t::TIME_QUOTA,
        /// Quota Holding Time, seconds.
        quota_holding_time: O u32 = t::QUOTA_HOLDING_TIME,
        /// Measurement Information flags (MBQE, INAM, RADI, ISTM, ...).
        measurement_information: O u8 = t::MEASUREMENT_INFORMATION,
        /// Linked URR IDs.
        linked_urr_ids: V u32 = t::LINKED_URR_ID,
    }
}
grouped_ie!(CreateUrr);

grouped! {
    /// Create QER (type 7), Table 7.5.2.5-1.
    pub struct CreateQer {
        /// QER ID.
        qer_id: M u32 = t::QER_ID,
        /// QER Correlation ID.
        qer_correlation_id: O u32 = t::QER_CORRELATION_ID,
        /// Gate Status.
        gate_status: M GateStatus = t::GATE_STATUS,
        /// Maximum Bit Rate.
        mbr: O BitRate = t::MBR,
        /// Guaranteed Bit Rate.
        gbr: O BitRate = t::GBR,
        /// QoS Flow Identifier (for downlink PDU Session Container).
        qfi: O Qfi = t::QFI,
        /// RQI octet (bit 1: Reflective QoS).
        rqi: O u8 = t::RQI,
    }
}
grouped_ie!(CreateQer);

grouped! {
    /// Create BAR (type 85), Table 7.5.2.6-1.
    pub struct CreateBar {
        /// BAR ID.
        bar_id: M u8 = t::BAR_ID,
        /// Downlink Data Notification Delay (units of 50 ms).
        downlink_data_notification_delay: O u8 = t::DOWNLINK_DATA_NOTIFICATION_DELAY,
        /// Suggested Buffering Packets Count.
        suggested_buffering_packets_count: O u8 = t::SUGGESTED_BUFFERING_PACKETS_COUNT,
    }
}
grouped_ie!(CreateBar);

grouped! {
    /// Update BAR: type 86 in a Session Modification Request (Table
    /// 7.5.4.11-1), type 12 in a Session Report Response (Table 7.5.9.2-1).
    pub struct UpdateBar {
        /// BAR ID.
        bar_id: M u8 = t::BAR_ID,
        /// Downlink Data Notification Delay.
        downlink_data_notification_delay: O u8 = t::DOWNLINK_DATA_NOTIFICATION_DELAY,
        /// Suggested Buffering Packets Count.
        suggested_buffering_packets_count: O u8 = t::SUGGESTED_BUFFERING_PACKETS_COUNT,
    }
}
grouped_ie!(UpdateBar);

grouped! {
    /// Created PDR (type 8), Table 7.5.3.2-1: what the UP function allocated.
    pub struct CreatedPdr {
        /// PDR ID.
        pdr_id: M u16 = t::PDR_ID,
        /// Local F-TEID chosen by the UP function (CHOOSE).
        local_f_teid: O FTeid = t::F_TEID,
        /// UE IP Address(es) chosen by the UP function.
        ue_ip_addresses: V UeIpAddress = t::UE_IP_ADDRESS,
    }
}
grouped_ie!(CreatedPdr);

grouped! {
    /// Update PDR (type 9), Table 7.5.4.2-1.
    pub struct UpdatePdr {
        /// PDR ID.
        pdr_id: M u16 = t::PDR_ID,
        /// Outer Header Removal.
        outer_header_removal: O OuterHeaderRemoval = t::OUTER_HEADER_REMOVAL,
        /// Precedence.
        precedence: O u32 = t::PRECEDENCE,
        /// PDI (replaces the old one).
        pdi: O Pdi = t::PDI,
        /// FAR ID.
        far_id: O u32 = t::FAR_ID,
        /// URR IDs.
        urr_ids: V u32 = t::URR_ID,
        /// QER IDs.
        qer_ids: V u32 = t::QER_ID,
    }
}
grouped_ie!(UpdatePdr);

grouped! {
    /// Update Forwarding Parameters (type 11), Table 7.5.4.3-2.
    pub struct UpdateForwardingParameters {
        /// Destination Interface.
        destination_interface: O DestinationInterface = t::DESTINATION_INTERFACE,
        /// Network Instance.
        network_instance: O NetworkInstance = t::NETWORK_INSTANCE,
        /// Outer Header Creation (a new peer: path switch).
        outer_header_creation: O OuterHeaderCreation = t::OUTER_HEADER_CREATION,
        /// Transport Level Marking.
        transport_level_marking: O u16 = t::TRANSPORT_LEVEL_MARKING,
        /// PFCPSMReq-Flags (bit 1 DROBU, bit 2 SNDEM: send End Marker).
        pfcpsmreq_flags: O u8 = t::PFCPSMREQ_FLAGS,
        /// Destination Interface Type.
        destination_interface_type: O InterfaceType = t::TGPP_INTERFACE_TYPE,
    }
}
grouped_ie!(UpdateForwardingParameters);

grouped! {
    /// Update FAR (type 10), Table 7.5.4.3-1.
    pub struct UpdateFar {
        /// FAR ID.
        far_id: M u32 = t::FAR_ID,
        /// Apply Action.
        apply_action: O ApplyAction = t::APPLY_ACTION,
        /// Update Forwarding Parameters.
        update_forwarding_parameters: O UpdateForwardingParameters = t::UPDATE_FORWARDING_PARAMETERS,
        /// BAR ID.
        bar_id: O u8 = t::BAR_ID,
    }
}
grouped_ie!(UpdateFar);

grouped! {
    /// Update URR (type 13), Table 7.5.4.4-1.
    pub struct UpdateUrr {
        /// URR ID.
        urr_id: M u32 = t::URR_ID,
        /// Measurement Method.
        measurement_method: O MeasurementMethod = t::MEASUREMENT_METHOD,
        /// Reporting Triggers.
        reporting_triggers: O ReportingTriggers = t::REPORTING_TRIGGERS,
        /// Measurement Period.
        measurement_period: O u32 = t::MEASUREMENT_PERIOD,
        /// Volume Threshold.
        volume_threshold: O Volume = t::VOLUME_THRESHOLD,
        /// Volume Quota.
        volume_quota: O Volume = t::VOLUME_QUOTA,
        /// Time Threshold.
        time_threshold: O u32 = t::TIME_THRESHOLD,
        /// Time Quota.
        time_quota: O u32 = t::TIME_QUOTA,
        /// Quota Holding Time.
        quota_holding_time: O u32 = t::QUOTA_HOLDING_TIME,
        /// Measurement Information.
        measurement_information: O u8 = t::MEASUREMENT_INFORMATION,
        /// Linked URR IDs.
        linked_urr_ids: V u32 = t::LINKED_URR_ID,
    }
}
grouped_ie!(UpdateUrr);

grouped! {
    /// Update QER (type 14), Table 7.5.4.5-1.
    pub struct UpdateQer {
        /// QER ID.
        qer_id: M u32 = t::QER_ID,
        /// QER Correlation ID.
        qer_correlation_id: O u32 = t::QER_CORRELATION_ID,
        /// Gate Status.
        gate_status: O GateStatus = t::GATE_STATUS,
        /// MBR.
        mbr: O BitRate = t::MBR,
        /// GBR.
        gbr: O BitRate = t::GBR,
        /// QFI.
        qfi: O Qfi = t::QFI,
        /// RQI.
        rqi: O u8 = t::RQI,
    }
}
grouped_ie!(UpdateQer);

/// Grouped IEs made of one mandatory rule ID alone, each with `grouped_ie!`.
macro_rules! id_only {
    ($( $(#[$attr:meta])* $name:ident { $field:ident: $t:ty = $code:expr, $fdoc:literal } )+) => {$(
        grouped! {
            $(#[$attr])*
            pub struct $name {
                #[doc = $fdoc]
                $field: M $t = $code,
            }
        }
        grouped_ie!($name);
    )+};
}

id_only! {
    /// Remove PDR (type 15).
    RemovePdr { pdr_id: u16 = t::PDR_ID, "PDR ID." }
    /// Remove FAR (type 16).
    RemoveFar { far_id: u32 = t::FAR_ID, "FAR ID." }
    /// Remove URR (type 17).
    RemoveUrr { urr_id: u32 = t::URR_ID, "URR ID." }
    /// Remove QER (type 18).
    RemoveQer { qer_id: u32 = t::QER_ID, "QER ID." }
    /// Remove BAR (type 87).
    RemoveBar { bar_id: u8 = t::BAR_ID, "BAR ID." }
    /// Query URR (type 77): ask for an immediate usage report.
    QueryUrr { urr_id: u32 = t::URR_ID, "URR ID." }
}

grouped! {
    /// Usage Report: type 80 in a Session Report Request (Table 7.5.8.3-1),
    /// 78 in a Session Modification Response (Table 7.5.5.2-1), 79 in a
    /// Session Deletion Response (Table 7.5.7.2-1). Times are NTP seconds.
    pub struct UsageReport {
        /// URR ID.
        urr_id: M u32 = t::URR_ID,
        /// UR-SEQN: per-URR report sequence number.
        ur_seqn: M u32 = t::UR_SEQN,
        /// Usage Report Trigger.
        usage_report_trigger: M UsageReportTrigger = t::USAGE_REPORT_TRIGGER,
        /// Start Time (NTP seconds).
        start_time: O u32 = t::START_TIME,
        /// End Time (NTP seconds).
        end_time: O u32 = t::END_TIME,
        /// Volume Measurement.
        volume_measurement: O VolumeMeasurement = t::VOLUME_MEASUREMENT,
        /// Duration Measurement, seconds.
        duration_measurement: O u32 = t::DURATION_MEASUREMENT,
        /// Time of First Packet (NTP seconds).
        time_of_first_packet: O u32 = t::TIME_OF_FIRST_PACKET,
        /// Time of Last Packet (NTP seconds).
        time_of_last_packet: O u32 = t::TIME_OF_LAST_PACKET,
        /// Usage Information flags (BEF, AFT, UAE, UBE).
        usage_information: O u8 = t::USAGE_INFORMATION,
        /// Query URR Reference.
        query_urr_reference: O u32 = t::QUERY_URR_REFERENCE,
    }
}
grouped_ie!(UsageReport);

grouped! {
    /// Downlink Data Report (type 83), Table 7.5.8.2-1.
    pub struct DownlinkDataReport {
        /// PDR IDs of the buffered packets.
        pdr_ids: V1 u16 = t::PDR_ID,
    }
}
grouped_ie!(DownlinkDataReport);
