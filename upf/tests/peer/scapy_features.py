#!/usr/bin/python3
"""The UPF's features, checked by an independent PFCP + GTP-U peer built on
scapy's layers (not on the project's codec), one phase after another:

  1. association, and a session with a QER (gate, MBR) and two URRs
     (volume threshold; periodic)
  2. a Session Modification that mixes valid IEs with an invalid one is
     rejected and changes nothing (downlink tunnel, gate, threshold)
  3. usage reports: the volume threshold report with the exact uplink
     volume; periodic reports
  4. QER: a closed downlink gate drops the echo; an uplink MBR lets a burst
     through only as far as the rate allows
  5. Error Indication for a G-PDU on an unknown TEID
  6. a retransmitted request (same sequence number) is answered with the
     same bytes and applied once
  7. buffering: BUFF|NOCP buffers the downlink and sends a Downlink Data
     Report; FORW (the Apply Action alone) flushes what was buffered into
     the same tunnel
  8. an Association Release Request from another address is refused and
     changes nothing
  9. a Heartbeat with a new Recovery Time Stamp (the SMF restarted) makes
     the UPF delete its sessions and the association

Usage: scapy_features.py UPF_IP SMF_IP ROGUE_IP UE_IP EDGE_IP ECHO_PORT
(SMF_IP plays SMF and gNB; ROGUE_IP is another address of the same host.)
Prints one JSON line with what it saw; exits 1 on the first failure.
"""
import json
import sys
import time

from scapy.contrib.gtp import IE_GSNAddress, IE_TEIDI
from scapy.contrib.pfcp import (
    IE_ApplyAction, IE_CreateQER, IE_CreateURR,
    IE_CreatedPDR, IE_DestinationInterface, IE_DownlinkDataReport,
    IE_FAR_Id, IE_FSEID, IE_FTEID, IE_GateStatus,
    IE_MBR, IE_MeasurementMethod, IE_MeasurementPeriod, IE_NodeId,
    IE_OuterHeaderCreation, IE_PDR_Id,
    IE_QER_Id, IE_RecoveryTimeStamp, IE_RemovePDR,
    IE_ReportingTriggers, IE_ReportType, IE_URR_Id, IE_UpdateFAR, IE_UpdateForwardingParameters,
    IE_UpdateQER, IE_UpdateURR, IE_UsageReport_SRR, IE_UsageReportTrigger,
    IE_VolumeMeasurement, IE_VolumeThreshold, PFCP,
    PFCPAssociationReleaseRequest, PFCPAssociationReleaseResponse,
    PFCPAssociationSetupRequest, PFCPAssociationSetupResponse,
    PFCPHeartbeatRequest, PFCPHeartbeatResponse,
    PFCPSessionEstablishmentRequest, PFCPSessionEstablishmentResponse,
    PFCPSessionModificationRequest, PFCPSessionModificationResponse,
    PFCPSessionReportRequest,
)

from peer import (
    END_MARKER, ERROR_INDICATION, G_PDU, Peer, cause, fail, ie, out, session_ies, sub,
)

upf_ip, smf_ip, rogue_ip, ue_ip, edge_ip, echo_port = sys.argv[1:7]
echo_port = int(echo_port)
peer = Peer(upf_ip, smf_ip)
RTS = 3900000000
CP_SEID = 0x1234
DL_TEID = 0x99
THRESHOLD = 2000
PAYLOAD = 1000
IP_UDP = 28  # the inner IPv4 and UDP headers counted in the volume


def text(tag):
    """PAYLOAD bytes of readable text (binary filler can look like another
    protocol to Wireshark's heuristic dissectors)."""
    return (tag.encode() + b" ") * (PAYLOAD // (len(tag) + 1)) + b"." * (PAYLOAD % (len(tag) + 1))


def modify(ies):
    r = peer.request(PFCPSessionModificationRequest, ies, seid=up_seid)
    return cause(r, PFCPSessionModificationResponse)


def must_modify(ies, what):
    c = modify(ies)
    if c != 1:
        fail("%s: cause %s" % (what, c))


def dl_far(action, teid=DL_TEID):
    return IE_UpdateFAR(IE_list=[
        IE_FAR_Id(id=2), action,
        IE_UpdateForwardingParameters(IE_list=[
            IE_DestinationInterface(interface="Access"),
            IE_OuterHeaderCreation(GTPUUDPIPV4=1, TEID=teid, ipv4=smf_ip),
        ]),
    ])


def roundtrip(payload, expect_teid=DL_TEID):
    return peer.roundtrip(teid, ue_ip, edge_ip, echo_port, payload, expect_teid)


def urr_id(p):
    """The URR ID of a report's usage report (0: it has none)."""
    u = usage(p)
    return u[0] if u else 0


def usage(p):
    """(URR ID, trigger, volume measurement) of a Session Report Request's
    usage report, or None."""
    u = ie(p, PFCPSessionReportRequest, IE_UsageReport_SRR)
    if u is None:
        return None
    return sub(u, IE_URR_Id).id, sub(u, IE_UsageReportTrigger), sub(u, IE_VolumeMeasurement)


# 1. Association and a session.
r = peer.request(PFCPHeartbeatRequest, [IE_RecoveryTimeStamp(timestamp=RTS)])
if not r.haslayer(PFCPHeartbeatResponse):
    fail("no heartbeat response")
r = peer.request(PFCPAssociationSetupRequest, [
    IE_NodeId(id_type="IPv4", ipv4=smf_ip),
    IE_RecoveryTimeStamp(timestamp=RTS),
])
if cause(r, PFCPAssociationSetupResponse) != 1:
    fail("association refused")
r = peer.request(PFCPSessionEstablishmentRequest, session_ies(
    smf_ip, CP_SEID, ue_ip, DL_TEID,
    ul_rules=[IE_URR_Id(id=1), IE_URR_Id(id=2), IE_QER_Id(id=1)],
    dl_rules=[IE_QER_Id(id=1)],
) + [
    IE_CreateQER(IE_list=[
        IE_QER_Id(id=1), IE_GateStatus(ul=0, dl=0),
        IE_MBR(ul=10000000, dl=10000000),
    ]),
    IE_CreateURR(IE_list=[
        IE_URR_Id(id=1), IE_MeasurementMethod(VOLUM=1),
        IE_ReportingTriggers(volume_threshold=1),
        IE_VolumeThreshold(TOVOL=1, total=THRESHOLD),
    ]),
    IE_CreateURR(IE_list=[
        IE_URR_Id(id=2), IE_MeasurementMethod(VOLUM=1),
        IE_ReportingTriggers(periodic_reporting=1),
        IE_MeasurementPeriod(period=1),
    ]),
], seid=0)
if cause(r, PFCPSessionEstablishmentResponse) != 1:
    fail("establishment refused: cause %s" % cause(r, PFCPSessionEstablishmentResponse))
up_seid = ie(r, PFCPSessionEstablishmentResponse, IE_FSEID).seid
created = ie(r, PFCPSessionEstablishmentResponse, IE_CreatedPDR)
teid = sub(created, IE_FTEID).TEID

# 2. Valid IEs (downlink tunnel, gate, threshold) with a Remove PDR of a
#    PDR the session does not have: all refused, nothing changed.
c = modify([
    dl_far(IE_ApplyAction(FORW=1), teid=0x9b),
    IE_UpdateQER(IE_list=[IE_QER_Id(id=1), IE_GateStatus(ul=1, dl=1)]),
    IE_UpdateURR(IE_list=[
        IE_URR_Id(id=1), IE_VolumeThreshold(TOVOL=1, total=1000000),
    ]),
    IE_RemovePDR(IE_list=[IE_PDR_Id(id=42)]),
])
out["mixed_modification_cause"] = c
if c == 1:
    fail("a modification removing an unknown PDR was accepted")

# 3. Usage: uplink volume past the threshold (the echoes still come back
#    on the first tunnel through an open gate: the rejected request changed
#    nothing); the report's volume is exactly what was sent up to it.
sent = 0
for i in range(3):
    seen = roundtrip(text("volume %d" % i))
    if any(t != G_PDU for t, _ in seen):
        fail("unexpected GTP-U before the echo: %r" % seen)
    sent += PAYLOAD + IP_UDP
    if sent >= THRESHOLD:
        break
rep = peer.wait_report(lambda p: urr_id(p) == 1, 3)
if rep is None:
    fail("no volume threshold report within 3 s")
urr, trig, vol = usage(rep)
out["threshold_report"] = {"urr": urr, "volth": trig.VOLTH, "total": vol.total,
                           "uplink": vol.uplink, "sent": sent}
if trig.VOLTH != 1 or vol.uplink != sent or vol.total != sent:
    fail("threshold report %r, %d bytes sent" % (out["threshold_report"], sent))
t0 = time.monotonic()
periodic = []
while len(periodic) < 2 and time.monotonic() - t0 < 5:
    peer.wait_report(lambda p: False, 0.5)
    periodic = [p for _, p in peer.reports if urr_id(p) == 2]
out["periodic_reports"] = len(periodic)
if len(periodic) < 2 or any(usage(p)[1].PERIO != 1 for p in periodic):
    fail("expected 2 periodic reports of URR 2 within 5 s, got %d" % len(periodic))

# 4. QER: downlink gate closed -> the echo is dropped; open again, then an
#    uplink MBR of 100 kbit/s passes a burst of 100 packets only in part.
must_modify([IE_UpdateQER(IE_list=[IE_QER_Id(id=1), IE_GateStatus(ul=0, dl=1)])],
            "closing the downlink gate")
peer.send_n3(peer.gpdu(teid, ue_ip, edge_ip, echo_port, b"gate closed"))
seen = peer.drain_n3(0.5)
out["echoes_through_closed_gate"] = len(seen)
if seen:
    fail("the closed downlink gate let %d packets through" % len(seen))
must_modify([IE_UpdateQER(IE_list=[IE_QER_Id(id=1), IE_GateStatus(ul=0, dl=0)])],
            "opening the gate")
roundtrip(b"gate open")


def burst(n):
    for i in range(n):
        peer.send_n3(peer.gpdu(teid, ue_ip, edge_ip, echo_port, text("burst %d" % i)))
    return len([g for g in peer.drain_n3(0.5) if g.gtp_type == G_PDU])


out["burst_echoes_unlimited"] = burst(100)
must_modify([IE_UpdateQER(IE_list=[IE_QER_Id(id=1), IE_MBR(ul=100, dl=10000000)])],
            "setting an uplink MBR")
out["burst_echoes_100kbit"] = burst(100)
if out["burst_echoes_unlimited"] < 80 or not 1 <= out["burst_echoes_100kbit"] <= 20:
    fail("MBR: %d of 100 echoes unlimited, %d at 100 kbit/s" % (
        out["burst_echoes_unlimited"], out["burst_echoes_100kbit"]))
must_modify([IE_UpdateQER(IE_list=[IE_QER_Id(id=1), IE_MBR(ul=10000000, dl=10000000)])],
            "lifting the MBR")

# 5. A G-PDU on a TEID no session has: an Error Indication naming it.
peer.send_n3(peer.gpdu(0x0BADBEEF, ue_ip, edge_ip, echo_port, b"nobody"))
g = peer.recv_n3(3)
if g is None or g.gtp_type != ERROR_INDICATION:
    fail("no Error Indication for TEID 0x0badbeef (got %r)" % g)
teidi = [x for x in g.IE_list if isinstance(x, IE_TEIDI)]
gsn = [x for x in g.IE_list if isinstance(x, IE_GSNAddress)]
out["error_indication"] = {"teid": teidi[0].TEIDI if teidi else None,
                           "gsn": gsn[0].ipv4_address if gsn else None}
if out["error_indication"] != {"teid": 0x0BADBEEF, "gsn": upf_ip}:
    fail("Error Indication %r" % out["error_indication"])

# 6. The same request twice (same sequence number): the same answer twice,
#    applied once (a second Create URR 3 would be refused, another answer).
raw = peer.pfcp(PFCPSessionModificationRequest, [
    IE_CreateURR(IE_list=[
        IE_URR_Id(id=3), IE_MeasurementMethod(VOLUM=1),
        IE_ReportingTriggers(volume_threshold=1),
        IE_VolumeThreshold(TOVOL=1, total=1 << 40),
    ]),
], seid=up_seid)
peer.send(raw)
first = peer.answer(peer.seq)
peer.send(raw)
second = peer.answer(peer.seq)
out["retransmission"] = {"cause": cause(PFCP(first), PFCPSessionModificationResponse),
                         "same_answer": first == second}
if out["retransmission"] != {"cause": 1, "same_answer": True}:
    fail("retransmission: %r" % out["retransmission"])

# 7. Buffering: BUFF|NOCP -> the echo is buffered and reported (Downlink
#    Data Report for PDR 2); FORW -> the buffered echo is sent.
# Both changes name only the Apply Action: the FAR keeps its forwarding
# parameters while it buffers (TS 29.244: an Update FAR changes what it
# names), as after an AN release and a Service Request to the same tunnel.
must_modify([IE_UpdateFAR(IE_list=[IE_FAR_Id(id=2), IE_ApplyAction(BUFF=1, NOCP=1)])],
            "buffering")
peer.send_n3(peer.gpdu(teid, ue_ip, edge_ip, echo_port, b"buffer me"))
rep = peer.wait_report(
    lambda p: ie(p, PFCPSessionReportRequest, IE_ReportType) is not None
    and ie(p, PFCPSessionReportRequest, IE_ReportType).DLDR == 1, 3)
if rep is None:
    fail("no Downlink Data Report within 3 s")
dldr = ie(rep, PFCPSessionReportRequest, IE_DownlinkDataReport)
out["dldr_pdr"] = sub(dldr, IE_PDR_Id).id if dldr is not None else None
out["dldr_seid"] = rep.seid
if out["dldr_pdr"] != 2 or rep.seid != CP_SEID:
    fail("Downlink Data Report for PDR %r, SEID %#x" % (out["dldr_pdr"], rep.seid))
# (The UPF sends an End Marker on the old tunnel when its FAR stops
# forwarding there, buffering included; nothing else may come.)
early = [(g.gtp_type, g.teid) for g in peer.drain_n3(0.3)]
out["while_buffering"] = early
if any(t != END_MARKER for t, _ in early):
    fail("sent while buffering: %r" % early)
must_modify([IE_UpdateFAR(IE_list=[IE_FAR_Id(id=2), IE_ApplyAction(FORW=1)])],
            "forwarding again with the Apply Action alone")
g = peer.recv_n3(3)
out["flushed"] = None if g is None else bytes(g.payload.payload.payload)
if out["flushed"] != b"buffer me":
    fail("the buffered echo was not flushed (got %r)" % out["flushed"])
out["flushed"] = out["flushed"].decode()

# 8. Another address speaks for the SMF: refused, the session stays.
rogue = Peer(upf_ip, rogue_ip)
r = rogue.request(PFCPAssociationReleaseRequest, [IE_NodeId(id_type="IPv4", ipv4=smf_ip)])
out["rogue_release_cause"] = cause(r, PFCPAssociationReleaseResponse)
if out["rogue_release_cause"] == 1:
    fail("an Association Release from %s was accepted" % rogue_ip)
roundtrip(b"still associated")

# 9. The SMF restarted: a Heartbeat with a newer Recovery Time Stamp. The
#    session and the association go; its TEID now gets an Error Indication.
r = peer.request(PFCPHeartbeatRequest, [IE_RecoveryTimeStamp(timestamp=RTS + 1)])
if not r.haslayer(PFCPHeartbeatResponse):
    fail("no heartbeat response after the restart")
c = modify([dl_far(IE_ApplyAction(FORW=1))])
out["after_restart_modification_cause"] = c
if c != 72:
    fail("a modification after the restart got cause %s, expected 72" % c)
peer.send_n3(peer.gpdu(teid, ue_ip, edge_ip, echo_port, b"after the restart"))
g = peer.recv_n3(3)
out["after_restart_gtpu"] = None if g is None else g.gtp_type
if out["after_restart_gtpu"] != ERROR_INDICATION:
    fail("after the restart the session's TEID got %r, not an Error Indication" % g)
out["reports"] = len(peer.reports)
print(json.dumps(out))
