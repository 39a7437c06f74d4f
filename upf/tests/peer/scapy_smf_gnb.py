#!/usr/bin/python3
"""An independent PFCP + GTP-U peer for the UPF, built on scapy's PFCP and
GTP layers (scapy.contrib.pfcp / scapy.contrib.gtp), not on our codec.

It plays SMF and gNB from one namespace: heartbeat, association setup
(Node ID IPv4), session establishment with F-TEID CHOOSE, uplink and
downlink through the session (UDP echo on the edge), a modification that
switches the downlink tunnel (End Marker expected), deletion.

Usage: scapy_smf_gnb.py UPF_IP GNB_IP UE_IP EDGE_IP ECHO_PORT
Prints one JSON line with what it saw; exits 1 on the first failure.
Note: scapy 2.5's Apply Action IE is one octet long (an older release of
TS 29.244); the UPF must accept it.
"""
import json
import sys

from scapy.contrib.pfcp import (
    IE_ApplyAction, IE_CreatedPDR,
    IE_FAR_Id, IE_FSEID, IE_FTEID,
    IE_NodeId, IE_OuterHeaderCreation,
    IE_RecoveryTimeStamp, IE_UpdateFAR, IE_UpdateForwardingParameters,
    PFCPAssociationSetupRequest, PFCPAssociationSetupResponse,
    PFCPHeartbeatRequest, PFCPHeartbeatResponse,
    PFCPSessionDeletionRequest, PFCPSessionDeletionResponse,
    PFCPSessionEstablishmentRequest, PFCPSessionEstablishmentResponse,
    PFCPSessionModificationRequest, PFCPSessionModificationResponse,
)

from peer import END_MARKER, Peer, cause, fail, ie, out, session_ies

upf_ip, gnb_ip, ue_ip, edge_ip, echo_port = sys.argv[1:6]
echo_port = int(echo_port)
peer = Peer(upf_ip, gnb_ip)
request = peer.request


# Heartbeat (before any association).
r = request(PFCPHeartbeatRequest, [IE_RecoveryTimeStamp(timestamp=3900000000)])
if not r.haslayer(PFCPHeartbeatResponse):
    fail("no heartbeat response")
out["upf_recovery_ts"] = ie(r, PFCPHeartbeatResponse, IE_RecoveryTimeStamp).timestamp

# Association.
r = request(PFCPAssociationSetupRequest, [
    IE_NodeId(id_type="IPv4", ipv4=gnb_ip),
    IE_RecoveryTimeStamp(timestamp=3900000000),
])
out["association_cause"] = cause(r, PFCPAssociationSetupResponse)
if out["association_cause"] != 1:
    fail("association refused")

# Establishment: UL PDR with CHOOSE, DL PDR to the gNB tunnel 0x99.
r = request(PFCPSessionEstablishmentRequest, session_ies(gnb_ip, 0x1234, ue_ip, 0x99), seid=0)
out["establishment_cause"] = cause(r, PFCPSessionEstablishmentResponse)
if out["establishment_cause"] != 1:
    fail("establishment refused")
up_seid = ie(r, PFCPSessionEstablishmentResponse, IE_FSEID).seid
created = ie(r, PFCPSessionEstablishmentResponse, IE_CreatedPDR)
fteid = [x for x in created.IE_list if isinstance(x, IE_FTEID)][0]
out["teid"] = fteid.TEID
out["teid_addr"] = fteid.ipv4
out["response_seid"] = r.seid


def roundtrip(payload, expect_teid):
    return peer.roundtrip(fteid.TEID, ue_ip, edge_ip, echo_port, payload, expect_teid)


out["first_roundtrip"] = roundtrip(b"hello from scapy", 0x99)

# Path switch: new downlink TEID 0x9a; an End Marker must reach the old one.
r = request(PFCPSessionModificationRequest, [
    IE_UpdateFAR(IE_list=[
        IE_FAR_Id(id=2),
        IE_ApplyAction(FORW=1),
        IE_UpdateForwardingParameters(IE_list=[
            IE_OuterHeaderCreation(GTPUUDPIPV4=1, TEID=0x9a, ipv4=gnb_ip),
        ]),
    ]),
], seid=up_seid)
out["modification_cause"] = cause(r, PFCPSessionModificationResponse)
if out["modification_cause"] != 1:
    fail("modification refused")
g = peer.recv_n3(3)
if g is None:
    fail("no End Marker within 3 s")
out["end_marker"] = [g.gtp_type, g.teid]
if g.gtp_type != END_MARKER or g.teid != 0x99:
    fail("expected an End Marker on TEID 0x99")
out["second_roundtrip"] = roundtrip(b"after the switch", 0x9a)

r = request(PFCPSessionDeletionRequest, [], seid=up_seid)
out["deletion_cause"] = cause(r, PFCPSessionDeletionResponse)
if out["deletion_cause"] != 1:
    fail("deletion refused")
print(json.dumps(out))
