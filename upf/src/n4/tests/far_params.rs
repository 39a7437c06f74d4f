//! A FAR keeps its forwarding while it buffers or drops: an Update FAR
//! changes only what it names (TS 29.244 7.5.4.3), so FORW after BUFF needs
//! no Forwarding Parameters, and new ones replace only what they carry.

use super::*;
use crate::n4::fixtures::dl_far_to_gnb;
use crate::rules::{FarAction, Interface};

/// Session Modification of UP SEID `seid` by SMF 0 with `fars`: the cause.
fn update(sim: &mut Sim, seid: u64, fars: Vec<pfcp::UpdateFar>) -> pfcp::Cause {
    let req = pfcp::SessionModificationRequest {
        update_fars: fars,
        ..Default::default()
    };
    sim.modify(0, seid, req).cause
}

fn action(aa: pfcp::ApplyAction) -> Vec<pfcp::UpdateFar> {
    vec![pfcp::UpdateFar {
        far_id: 2,
        apply_action: Some(aa),
        ..Default::default()
    }]
}

/// FAR 2's (destination, gNB TEID) if it forwards.
fn forwarding(sim: &Sim, seid: u64) -> Option<(Interface, Option<u32>)> {
    match &sim.table.session(seid)?.far(2)?.action {
        FarAction::Forward {
            destination,
            outer_header,
        } => Some((*destination, outer_header.map(|o| o.teid))),
        _ => None,
    }
}

#[test]
fn forw_after_buff_or_drop_keeps_the_forwarding_parameters() {
    let mut sim = Sim::new(params());
    sim.associate(0, RECOVERY);
    let (seid, _) = sim.establish(0, 0x31);
    let accepted = pfcp::Cause::RequestAccepted;
    // FAR 2 of the paging session buffers and never forwarded: FORW alone
    // has nothing to forward with.
    let c = update(&mut sim, seid, action(pfcp::ApplyAction::FORW));
    assert_eq!(c, pfcp::Cause::ConditionalIeMissing);
    assert_eq!(update(&mut sim, seid, dl_far_to_gnb(0x98)), accepted);
    assert_eq!(
        forwarding(&sim, seid),
        Some((Interface::Access, Some(0x98)))
    );
    // BUFF (the AN is released), then FORW alone: the same tunnel again.
    let buff = pfcp::ApplyAction::BUFF | pfcp::ApplyAction::NOCP;
    assert_eq!(update(&mut sim, seid, action(buff)), accepted);
    assert_eq!(forwarding(&sim, seid), None);
    assert_eq!(
        update(&mut sim, seid, action(pfcp::ApplyAction::FORW)),
        accepted
    );
    assert_eq!(
        forwarding(&sim, seid),
        Some((Interface::Access, Some(0x98)))
    );
    // DROP, then FORW with only a new Outer Header Creation (a new gNB
    // TEID): the destination interface is kept.
    assert_eq!(
        update(&mut sim, seid, action(pfcp::ApplyAction::DROP)),
        accepted
    );
    let mut fars = dl_far_to_gnb(0x99);
    if let Some(p) = fars[0].update_forwarding_parameters.as_mut() {
        p.destination_interface = None;
    }
    assert_eq!(update(&mut sim, seid, fars), accepted);
    assert_eq!(
        forwarding(&sim, seid),
        Some((Interface::Access, Some(0x99)))
    );
}
