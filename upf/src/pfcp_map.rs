//! PFCP IEs (`wire::pfcp`) to and from the UPF's rule model.
//!
//! Lenient where SMFs differ (every Outer Header Removal description, PDIs
//! with or without 3GPP Interface Type, Create BAR, unknown optional IEs),
//! strict where the UPF cannot do what is asked: such requests are refused
//! with the cause and Offending IE that say why (76 Service not supported
//! for IPv6 tunnels, UE address allocation, duplication; 69 for a Flow
//! Description that does not parse; 67 for a FAR ID or Forwarding
//! Parameters that a PDR/FAR needs).

use std::net::SocketAddrV4;
use std::time::{Duration, Instant, SystemTime};

use wire::pfcp::{self, ie_type as t};

use crate::rules::{
    Cause, FTeidSpec, Far, FarAction, Gate, Interface, Modification, OuterHeader, Pdi, Pdr, Qer,
    SessionRules, Urr, VolumeThreshold,
};
use crate::sdf::FlowDescription;
use crate::session::{no_rule, CreatedPdr, ReportTrigger, Session, SessionError, UsageReport};

fn refuse(cause: Cause, ie: u16, msg: impl Into<String>) -> SessionError {
    SessionError {
        cause,
        offending_ie: Some(ie),
        message: msg.into(),
    }
}

fn src_iface(s: pfcp::SourceInterface) -> Interface {
    match s {
        pfcp::SourceInterface::Access => Interface::Access,
        pfcp::SourceInterface::Core => Interface::Core,
        pfcp::SourceInterface::SgiLanN6Lan => Interface::SgiLan,
        pfcp::SourceInterface::CpFunction => Interface::CpFunction,
        other => Interface::Other(u8::from(other)),
    }
}

fn dst_iface(s: pfcp::DestinationInterface) -> Interface {
    match s {
        pfcp::DestinationInterface::Access => Interface::Access,
        pfcp::DestinationInterface::Core => Interface::Core,
        pfcp::DestinationInterface::SgiLanN6Lan => Interface::SgiLan,
        pfcp::DestinationInterface::CpFunction => Interface::CpFunction,
        other => Interface::Other(u8::from(other)),
    }
}

fn pdi(p: &pfcp::Pdi) -> Result<Pdi, SessionError> {
    let local_fteid = match p.local_f_teid {
        None => None,
        Some(pfcp::FTeid::Assigned { teid, ipv4, .. }) => {
            if ipv4.is_none() {
                return Err(refuse(
                    Cause::ServiceNotSupported,
                    t::F_TEID,
                    "F-TEID without an IPv4 address (IPv6 N3 not supported)",
                ));
            }
            Some(FTeidSpec::Given(teid))
        }
        Some(pfcp::FTeid::Choose { v4, choose_id, .. }) => {
            if !v4 {
                return Err(refuse(
                    Cause::InvalidFTeidAllocationOption,
                    t::F_TEID,
                    "CHOOSE without V4 (only IPv4 N3 addresses here)",
                ));
            }
            Some(FTeidSpec::Choose(choose_id))
        }
    };
    let mut ue_ip = None;
    for u in &p.ue_ip_addresses {
        if u.choose_v4 || u.choose_v6 {
            return Err(refuse(
                Cause::ServiceNotSupported,
                t::UE_IP_ADDRESS,
                "UE address allocation by the UPF (CHV4/CHV6) not supported",
            ));
        }
        if let Some(a) = u.ipv4 {
            ue_ip.get_or_insert(a);
        }
    }
    let mut sdf_filters = Vec::new();
    for f in &p.sdf_filters {
        let Some(fd) = &f.flow_description else {
            return Err(refuse(
                Cause::ServiceNotSupported,
                t::SDF_FILTER,
                "SDF filter without a Flow Description (ToS/SPI/Flow Label only) not supported",
            ));
        };
        sdf_filters.push(FlowDescription::parse(fd).map_err(|e| {
            refuse(
                Cause::MandatoryIeIncorrect,
                t::SDF_FILTER,
                format!("flow description {fd:?}: {e}"),
            )
        })?);
    }
    Ok(Pdi {
        source_interface: src_iface(p.source_interface),
        local_fteid,
        ue_ip,
        qfi: p.qfis.first().map(|q| q.0),
        sdf_filters,
        network_instance: p.network_instance.as_ref().map(|n| n.name()),
    })
}

fn create_pdr(c: &pfcp::CreatePdr) -> Result<Pdr, SessionError> {
    let Some(far_id) = c.far_id else {
        return Err(refuse(
            Cause::ConditionalIeMissing,
            t::FAR_ID,
            format!("Create PDR {} without FAR ID", c.pdr_id),
        ));
    };
    Ok(Pdr {
        id: c.pdr_id,
        precedence: c.precedence,
        pdi: pdi(&c.pdi)?,
        outer_header_removal: c.outer_header_removal.is_some(),
        far_id,
        qer_ids: c.qer_ids.clone(),
        urr_ids: c.urr_ids.clone(),
    })
}

fn outer_header(o: &pfcp::OuterHeaderCreation) -> Result<OuterHeader, SessionError> {
    match (
        o.description & pfcp::OuterHeaderCreation::GTPU_UDP_IPV4 != 0,
        o.teid,
        o.ipv4,
    ) {
        (true, Some(teid), Some(a)) => Ok(OuterHeader {
            teid,
            peer: SocketAddrV4::new(a, crate::gtp::PORT),
        }),
        _ => Err(refuse(
            Cause::ServiceNotSupported,
            t::OUTER_HEADER_CREATION,
            format!(
                "Outer Header Creation {:#06x}: only GTP-U/UDP/IPv4 is supported",
                o.description
            ),
        )),
    }
}

fn far_action(
    far_id: u32,
    aa: pfcp::ApplyAction,
    destination: Option<Interface>,
    ohc: Option<&pfcp::OuterHeaderCreation>,
) -> Result<FarAction, SessionError> {
    use pfcp::ApplyAction as A;
    if aa.intersects(A::DUPL | A::IPMA | A::IPMD | A::MBSU) {
        return Err(refuse(
            Cause::ServiceNotSupported,
            t::APPLY_ACTION,
            format!("FAR {far_id}: apply action {:#06x} not supported", aa.0),
        ));
    }
    if aa.intersects(A::DROP) {
        Ok(FarAction::Drop)
    } else if aa.intersects(A::FORW) {
        let Some(destination) = destination else {
            return Err(refuse(
                Cause::ConditionalIeMissing,
                t::FORWARDING_PARAMETERS,
                format!("FAR {far_id}: FORW without Forwarding Parameters"),
            ));
        };
        Ok(FarAction::Forward {
            destination,
            outer_header: ohc.map(outer_header).transpose()?,
        })
    } else if aa.intersects(A::BUFF) {
        Ok(FarAction::Buffer)
    } else {
        Err(refuse(
            Cause::MandatoryIeIncorrect,
            t::APPLY_ACTION,
            format!("FAR {far_id}: none of DROP, FORW, BUFF"),
        ))
    }
}

fn create_far(c: &pfcp::CreateFar) -> Result<Far, SessionError> {
    let fp = c.forwarding_parameters.as_ref();
    Ok(Far {
        id: c.far_id,
        action: far_action(
            c.far_id,
            c.apply_action,
            fp.map(|f| dst_iface(f.destination_interface)),
            fp.and_then(|f| f.outer_header_creation.as_ref()),
        )?,
    })
}

fn gate(g: pfcp::Gate) -> Gate {
    if g == pfcp::Gate::Open {
        Gate::Open
    } else {
        Gate::Closed
    }
}

/// A bit rate in kbit/s as bit/s; 0 is no limit.
fn bps(kbps: u64) -> Option<u64> {
    (kbps > 0).then_some(kbps * 1000)
}

fn create_qer(c: &pfcp::CreateQer) -> Qer {
    Qer {
        id: c.qer_id,
        gate_ul: gate(c.gate_status.ul),
        gate_dl: gate(c.gate_status.dl),
        mbr_ul: c.mbr.and_then(|m| bps(m.ul_kbps)),
        mbr_dl: c.mbr.and_then(|m| bps(m.dl_kbps)),
        qfi: c.qfi.map(|q| q.0),
    }
}

fn threshold(v: pfcp::Volume) -> VolumeThreshold {
    VolumeThreshold {
        total: v.total,
        uplink: v.uplink,
        downlink: v.downlink,
    }
}

/// A Measurement Period in seconds; 0 is none.
fn period(secs: u32) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(u64::from(secs)))
}

fn urr(
    id: u32,
    triggers: pfcp::ReportingTriggers,
    period_secs: Option<u32>,
    th: Option<pfcp::Volume>,
) -> Urr {
    use pfcp::ReportingTriggers as R;
    Urr {
        id,
        volume_threshold: if triggers.intersects(R::VOLTH) {
            th.map(threshold)
        } else {
            None
        },
        measurement_period: if triggers.intersects(R::PERIO) {
            period_secs.and_then(period)
        } else {
            None
        },
    }
}

/// The Create PDR, FAR, QER and URR IEs of an establishment or a
/// modification as rules (no buffer size: that comes with a Create BAR).
fn created_rules(
    pdrs: &[pfcp::CreatePdr],
    fars: &[pfcp::CreateFar],
    qers: &[pfcp::CreateQer],
    urrs: &[pfcp::CreateUrr],
) -> Result<SessionRules, SessionError> {
    Ok(SessionRules {
        pdrs: pdrs.iter().map(create_pdr).collect::<Result<_, _>>()?,
        fars: fars.iter().map(create_far).collect::<Result<_, _>>()?,
        qers: qers.iter().map(create_qer).collect(),
        urrs: urrs
            .iter()
            .map(|c| {
                urr(
                    c.urr_id,
                    c.reporting_triggers,
                    c.measurement_period,
                    c.volume_threshold,
                )
            })
            .collect(),
        buffer_packets: None,
    })
}

/// A Session Establishment Request as rules.
pub fn establishment(
    req: &pfcp::SessionEstablishmentRequest,
) -> Result<SessionRules, SessionError> {
    Ok(SessionRules {
        buffer_packets: req
            .create_bar
            .as_ref()
            .and_then(|b| b.suggested_buffering_packets_count)
            .map(u32::from),
        ..created_rules(
            &req.create_pdrs,
            &req.create_fars,
            &req.create_qers,
            &req.create_urrs,
        )?
    })
}

fn missing(ie: u16, what: String) -> SessionError {
    refuse(Cause::RuleCreationModificationFailure, ie, what)
}

/// The rule an Update IE (`ie`) names: a copy of the session's `kind`
/// rule `id`, or the refusal that it has none.
fn updated<T: Clone>(
    old: Option<&T>,
    ie: u16,
    kind: &str,
    id: impl std::fmt::Display,
) -> Result<T, SessionError> {
    old.cloned().ok_or_else(|| no_rule(ie, "Update", kind, id))
}

/// A Session Modification Request as a modification of `s`. Update IEs are
/// merged with the rules they update.
pub fn modification(
    req: &pfcp::SessionModificationRequest,
    s: &Session,
) -> Result<Modification, SessionError> {
    let mut m = Modification {
        create: created_rules(
            &req.create_pdrs,
            &req.create_fars,
            &req.create_qers,
            &req.create_urrs,
        )?,
        remove_pdrs: req.remove_pdrs.iter().map(|r| r.pdr_id).collect(),
        remove_fars: req.remove_fars.iter().map(|r| r.far_id).collect(),
        remove_qers: req.remove_qers.iter().map(|r| r.qer_id).collect(),
        remove_urrs: req.remove_urrs.iter().map(|r| r.urr_id).collect(),
        query_urrs: req.query_urrs.iter().map(|q| q.urr_id).collect(),
        ..Default::default()
    };
    for u in &req.update_pdrs {
        let mut p = updated(s.pdr(u.pdr_id), t::UPDATE_PDR, "PDR", u.pdr_id)?;
        if let Some(x) = u.precedence {
            p.precedence = x;
        }
        if let Some(x) = &u.pdi {
            p.pdi = pdi(x)?;
        }
        if let Some(x) = u.far_id {
            p.far_id = x;
        }
        if u.outer_header_removal.is_some() {
            p.outer_header_removal = true;
        }
        if !u.qer_ids.is_empty() {
            p.qer_ids = u.qer_ids.clone();
        }
        if !u.urr_ids.is_empty() {
            p.urr_ids = u.urr_ids.clone();
        }
        m.update_pdrs.push(p);
    }
    for u in &req.update_fars {
        let old = updated(s.far(u.far_id), t::UPDATE_FAR, "FAR", u.far_id)?;
        // A FAR that buffers or drops keeps the forwarding it had.
        let (old_dest, old_ohc) = match s.forwarding(u.far_id) {
            Some(FarAction::Forward {
                destination,
                outer_header,
            }) => (Some(*destination), *outer_header),
            _ => (None, None),
        };
        let ufp = u.update_forwarding_parameters.as_ref();
        let dest = ufp
            .and_then(|f| f.destination_interface)
            .map(dst_iface)
            .or(old_dest);
        let new_ohc = match ufp.and_then(|f| f.outer_header_creation.as_ref()) {
            Some(o) => Some(outer_header(o)?),
            None => old_ohc,
        };
        let aa = u.apply_action.unwrap_or(match old.action {
            FarAction::Drop => pfcp::ApplyAction::DROP,
            FarAction::Buffer => pfcp::ApplyAction::BUFF,
            FarAction::Forward { .. } => pfcp::ApplyAction::FORW,
        });
        let action = match far_action(u.far_id, aa, dest, None)? {
            FarAction::Forward { destination, .. } => FarAction::Forward {
                destination,
                outer_header: new_ohc,
            },
            other => other,
        };
        m.update_fars.push(Far {
            id: u.far_id,
            action,
        });
    }
    for u in &req.update_qers {
        let mut q = updated(s.qer(u.qer_id), t::UPDATE_QER, "QER", u.qer_id)?;
        if let Some(g) = u.gate_status {
            q.gate_ul = gate(g.ul);
            q.gate_dl = gate(g.dl);
        }
        if let Some(mbr) = u.mbr {
            q.mbr_ul = bps(mbr.ul_kbps);
            q.mbr_dl = bps(mbr.dl_kbps);
        }
        if let Some(x) = u.qfi {
            q.qfi = Some(x.0);
        }
        m.update_qers.push(q);
    }
    for u in &req.update_urrs {
        let mut n = updated(s.urr(u.urr_id), t::UPDATE_URR, "URR", u.urr_id)?;
        if let Some(tr) = u.reporting_triggers {
            n = urr(u.urr_id, tr, u.measurement_period, u.volume_threshold);
        } else {
            if let Some(v) = u.volume_threshold {
                n.volume_threshold = Some(threshold(v));
            }
            if let Some(p) = u.measurement_period {
                n.measurement_period = period(p);
            }
        }
        m.update_urrs.push(n);
    }
    Ok(m)
}

/// The session's BAR ID after a Session Modification's Remove, Create and
/// Update BAR (in that order), given its BAR now; refused (73, naming the
/// IE) when a Remove or Update names another BAR or a Create finds one.
pub fn bar_after(
    req: &pfcp::SessionModificationRequest,
    current: Option<u8>,
) -> Result<Option<u8>, SessionError> {
    let mut bar = current;
    if let Some(r) = &req.remove_bar {
        if bar != Some(r.bar_id) {
            return Err(missing(
                t::REMOVE_BAR,
                format!("Remove BAR: no BAR {}", r.bar_id),
            ));
        }
        bar = None;
    }
    if let Some(c) = &req.create_bar {
        if let Some(old) = bar {
            return Err(missing(
                t::CREATE_BAR,
                format!("Create BAR {}: the session has BAR {old}", c.bar_id),
            ));
        }
        bar = Some(c.bar_id);
    }
    if let Some(u) = &req.update_bar {
        if bar != Some(u.bar_id) {
            return Err(missing(
                t::UPDATE_BAR,
                format!("Update BAR: no BAR {}", u.bar_id),
            ));
        }
    }
    Ok(bar)
}

pub use wire::pfcp::NTP_UNIX_OFFSET;

/// NTP seconds of an `Instant`, given the current pair of clocks.
pub fn ntp_secs(at: Instant, now: Instant, wall: SystemTime) -> u32 {
    let wall_at = wall
        .checked_sub(now.saturating_duration_since(at))
        .unwrap_or(wall);
    pfcp::ntp_seconds(wall_at)
}

/// Created PDR IEs: the F-TEIDs the UPF chose.
pub fn created_pdrs(created: &[CreatedPdr]) -> Vec<pfcp::CreatedPdr> {
    created
        .iter()
        .map(|c| pfcp::CreatedPdr {
            pdr_id: c.pdr_id,
            local_f_teid: Some(pfcp::FTeid::ipv4(c.teid, c.addr)),
            ..Default::default()
        })
        .collect()
}

/// A usage report as the wire IE.
pub fn usage_report(r: &UsageReport, now: Instant, wall: SystemTime) -> pfcp::UsageReport {
    use pfcp::UsageReportTrigger as T;
    pfcp::UsageReport {
        urr_id: r.urr_id,
        ur_seqn: r.seqn,
        usage_report_trigger: match r.trigger {
            ReportTrigger::VolumeThreshold => T::VOLTH,
            ReportTrigger::Period => T::PERIO,
            ReportTrigger::Termination => T::TERMR,
            ReportTrigger::Query => T::IMMER,
        },
        start_time: Some(ntp_secs(r.start, now, wall)),
        end_time: Some(ntp_secs(r.end, now, wall)),
        volume_measurement: Some(pfcp::VolumeMeasurement {
            total_volume: Some(r.ul_bytes + r.dl_bytes),
            uplink_volume: Some(r.ul_bytes),
            downlink_volume: Some(r.dl_bytes),
            total_packets: Some(r.ul_packets + r.dl_packets),
            uplink_packets: Some(r.ul_packets),
            downlink_packets: Some(r.dl_packets),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn req() -> pfcp::SessionEstablishmentRequest {
        pfcp::SessionEstablishmentRequest {
            node_id: pfcp::NodeId::fqdn("smf.test"),
            cp_f_seid: pfcp::FSeid::ipv4(9, Ipv4Addr::new(10, 0, 0, 1)),
            create_pdrs: vec![pfcp::CreatePdr {
                pdr_id: 1,
                precedence: 10,
                pdi: pfcp::Pdi {
                    source_interface: pfcp::SourceInterface::Access,
                    local_f_teid: Some(pfcp::FTeid::choose_v4(Some(3))),
                    ue_ip_addresses: vec![pfcp::UeIpAddress::source_v4(Ipv4Addr::new(
                        10, 60, 0, 1,
                    ))],
                    sdf_filters: vec![pfcp::SdfFilter::flow("permit out 17 from any to assigned")],
                    source_interface_type: Some(pfcp::InterfaceType::from(11)),
                    ..Default::default()
                },
                outer_header_removal: Some(pfcp::OuterHeaderRemoval {
                    description: pfcp::OuterHeaderRemovalDescription::GtpuUdpIp,
                    gtpu_extension_header_deletion: Some(1),
                }),
                far_id: Some(1),
                ..Default::default()
            }],
            create_fars: vec![crate::n4::fixtures::core_far(1)],
            create_bar: Some(pfcp::CreateBar {
                bar_id: 1,
                suggested_buffering_packets_count: Some(20),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn maps_establishment() {
        let r = establishment(&req()).expect("maps");
        let p = &r.pdrs[0];
        assert_eq!(p.pdi.local_fteid, Some(FTeidSpec::Choose(Some(3))));
        assert_eq!(p.pdi.ue_ip, Some(Ipv4Addr::new(10, 60, 0, 1)));
        assert!(p.outer_header_removal, "any description accepted");
        assert_eq!(p.pdi.sdf_filters.len(), 1);
        assert_eq!(r.buffer_packets, Some(20));
        assert!(matches!(
            r.fars[0].action,
            FarAction::Forward {
                destination: Interface::Core,
                outer_header: None
            }
        ));
    }

    #[test]
    fn refusals_name_the_ie() {
        type Edit = fn(&mut pfcp::SessionEstablishmentRequest);
        let cases: [(&str, Edit, Cause, u16); 6] = [
            (
                "bad sdf",
                |q| {
                    q.create_pdrs[0].pdi.sdf_filters =
                        vec![pfcp::SdfFilter::flow("permit out ip from nowhere to any")]
                },
                Cause::MandatoryIeIncorrect,
                t::SDF_FILTER,
            ),
            (
                "no far id",
                |q| q.create_pdrs[0].far_id = None,
                Cause::ConditionalIeMissing,
                t::FAR_ID,
            ),
            (
                "no fp",
                |q| q.create_fars[0].forwarding_parameters = None,
                Cause::ConditionalIeMissing,
                t::FORWARDING_PARAMETERS,
            ),
            (
                "dupl",
                |q| q.create_fars[0].apply_action = pfcp::ApplyAction::DUPL,
                Cause::ServiceNotSupported,
                t::APPLY_ACTION,
            ),
            (
                "chv4",
                |q| q.create_pdrs[0].pdi.ue_ip_addresses[0].choose_v4 = true,
                Cause::ServiceNotSupported,
                t::UE_IP_ADDRESS,
            ),
            (
                "ipv6 ohc",
                |q| {
                    q.create_fars[0].forwarding_parameters = Some(pfcp::ForwardingParameters {
                        destination_interface: pfcp::DestinationInterface::Access,
                        outer_header_creation: Some(pfcp::OuterHeaderCreation::gtpu_ipv6(
                            1,
                            "::1".parse().expect("v6"),
                        )),
                        ..Default::default()
                    })
                },
                Cause::ServiceNotSupported,
                t::OUTER_HEADER_CREATION,
            ),
        ];
        for (what, edit, cause, ie) in cases {
            let mut q = req();
            edit(&mut q);
            let e = establishment(&q).expect_err(what);
            assert_eq!((e.cause, e.offending_ie), (cause, Some(ie)), "{what}");
        }
    }

    #[test]
    fn mbr_kbps_to_bps_and_urr_triggers() {
        let q = create_qer(&pfcp::CreateQer {
            qer_id: 1,
            gate_status: pfcp::GateStatus {
                ul: pfcp::Gate::Closed,
                dl: pfcp::Gate::Open,
            },
            mbr: Some(pfcp::BitRate {
                ul_kbps: 0,
                dl_kbps: 8000,
            }),
            qfi: Some(pfcp::Qfi(9)),
            ..Default::default()
        });
        assert_eq!(
            (q.gate_ul, q.gate_dl, q.mbr_ul, q.mbr_dl, q.qfi),
            (Gate::Closed, Gate::Open, None, Some(8_000_000), Some(9))
        );
        let u = urr(
            1,
            pfcp::ReportingTriggers::VOLTH,
            Some(10),
            Some(pfcp::Volume {
                total: Some(5),
                ..Default::default()
            }),
        );
        assert_eq!(u.volume_threshold.map(|v| v.total), Some(Some(5)));
        assert_eq!(u.measurement_period, None, "PERIO not set");
    }
}
