//! Peer fixtures: PFCP messages built by scapy's independent PFCP layer
//! (tests/fixtures/pfcp/gen_scapy.py; scapy 2.5.0 follows TS 29.244 V15.6.0)
//! must parse to exactly the messages scapy was told to build, including the
//! older, shorter IE forms. Re-emitting gives the current forms, which must
//! parse back to the same message.
//!
//! What scapy was told to build is our own sample of the same name
//! (`pfcp_samples.rs`), minus what scapy (Rel-15) lacks or the script
//! leaves out: [`expected`] lists those differences.
#[path = "pfcp_samples.rs"]
mod samples;

use samples::*;
use std::net::Ipv4Addr;
use wire::pfcp::*;

fn fixture(name: &str) -> Vec<u8> {
    read_hex(&fixture_dir().join("scapy").join(format!("{name}.hex")))
}

fn check(name: &str, expected: Message) {
    let raw = fixture(name);
    let got = Message::parse(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(got, expected, "{name}");
    // Our re-encoding (current release forms) parses back to the same message.
    let again = Message::parse(&got.to_vec().expect("emit")).expect("reparse");
    assert_eq!(again, expected, "{name} after re-emit");
}

/// Our sample `name` (from [`all_messages`]).
fn sample(name: &str) -> Message {
    all_messages()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no sample {name}"))
        .1
}

/// The usage report gen_scapy.py writes: our sample's volumes with
/// `trigger`, without packet counts, duration and packet times.
fn scapy_usage_report(trigger: UsageReportTrigger) -> UsageReport {
    let mut u = usage_report();
    u.usage_report_trigger = trigger;
    u.duration_measurement = None;
    u.time_of_first_packet = None;
    u.time_of_last_packet = None;
    let v = u.volume_measurement.as_mut().expect("volumes");
    (v.total_packets, v.uplink_packets, v.downlink_packets) = (None, None, None);
    u
}

/// What gen_scapy.py builds for fixture `name`: our sample of that name,
/// changed where the script differs.
fn expected(name: &str) -> Message {
    let mut m = sample(name);
    match &mut m.body {
        MessageBody::AssociationSetupRequest(r) => r.node_id = NodeId::fqdn("smf.scapy.example"),
        MessageBody::SessionEstablishmentRequest(req) => {
            req.create_pdrs[0].outer_header_removal = Some(OuterHeaderRemoval::of(
                OuterHeaderRemovalDescription::GtpuUdpIpv4,
            ));
            req.create_pdrs[1].urr_ids.clear();
            req.create_pdrs[1].qer_ids.clear();
            req.create_fars[0]
                .forwarding_parameters
                .as_mut()
                .expect("fwd params")
                .destination_interface_type = None;
            req.create_urrs[0].measurement_method = MeasurementMethod::VOLUM;
            req.pdn_type = None;
        }
        MessageBody::SessionModificationRequest(r) => {
            r.remove_pdrs.clear();
            r.update_fars[0]
                .update_forwarding_parameters
                .as_mut()
                .expect("update fwd params")
                .destination_interface_type = None;
        }
        MessageBody::SessionDeletionResponse(r) => {
            r.usage_reports = vec![scapy_usage_report(UsageReportTrigger::TERMR)];
        }
        MessageBody::SessionReportRequest(r) => {
            r.usage_reports = vec![scapy_usage_report(UsageReportTrigger::VOLTH)];
        }
        _ => {}
    }
    m
}

/// Every fixture scapy built, each against what it was told to build.
#[test]
fn scapy_fixtures_parse_to_what_the_script_built() {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir().join("scapy"))
        .expect("scapy fixtures")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().ok()?;
            Some(name.strip_suffix(".hex")?.to_string())
        })
        .collect();
    names.sort();
    // The ten messages of gen_scapy.py's MESSAGES.
    assert_eq!(names.len(), 10, "{names:?}");
    for name in &names {
        check(name, expected(name));
    }
}

#[test]
fn scapy_association_setup_response_has_ftup() {
    let MessageBody::AssociationSetupResponse(r) = expected("association_setup_response").body
    else {
        unreachable!()
    };
    assert!(r
        .up_function_features
        .is_some_and(|f| f.has(up_features::FTUP)));
}

#[test]
fn scapy_session_establishment_request() {
    // Spot checks of what the UPF uses, in case the sample itself is wrong.
    let MessageBody::SessionEstablishmentRequest(r) =
        expected("session_establishment_request").body
    else {
        unreachable!()
    };
    assert_eq!(r.cp_f_seid.seid, 0x1001);
    assert_eq!(
        r.create_pdrs[0].pdi.local_f_teid,
        Some(FTeid::Choose {
            v4: true,
            v6: false,
            choose_id: Some(1)
        })
    );
    assert_eq!(
        r.create_fars[1].apply_action,
        ApplyAction::BUFF | ApplyAction::NOCP
    );
    assert_eq!(
        r.create_pdrs[1].pdi.ue_ip_addresses[0].ipv4,
        Some(Ipv4Addr::new(10, 45, 0, 2))
    );
    assert!(r.create_pdrs[1].pdi.ue_ip_addresses[0].is_destination);
}
