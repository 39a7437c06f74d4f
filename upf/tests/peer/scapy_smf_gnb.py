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
import socket
import sys

from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.pfcp import (
    PFCP, IE_ApplyAction, IE_Cause, IE_CreateFAR, IE_CreatePDR, IE_CreatedPDR,
    IE_DestinationInterface, IE_FAR_Id, IE_FSEID, IE_FTEID,
    IE_ForwardingParameters, IE_NodeId, IE_OuterHeaderCreation,
    IE_OuterHeaderRemoval, IE_PDI, IE_PDR_Id, IE_Precedence,
    IE_RecoveryTimeStamp, IE_SourceInterface, IE_UE_IP_Address,
    IE_UpdateFAR, IE_UpdateForwardingParameters,
    PFCPAssociationSetupRequest, PFCPAssociationSetupResponse,
    PFCPHeartbeatRequest, PFCPHeartbeatResponse,
    PFCPSessionDeletionRequest, PFCPSessionDeletionResponse,
    PFCPSessionEstablishmentRequest, PFCPSessionEstablishmentResponse,
    PFCPSessionModificationRequest, PFCPSessionModificationResponse,
)
from scapy.layers.inet import IP, UDP

upf_ip, gnb_ip, ue_ip, edge_ip, echo_port = sys.argv[1:6]
echo_port = int(echo_port)
out = {}


def fail(msg):
    out["error"] = msg
    print(json.dumps(out))
    sys.exit(1)


n4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n4.bind((gnb_ip, 0))
n4.settimeout(3)
n3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
n3.bind((gnb_ip, 2152))
n3.settimeout(3)
seq = [0]


def request(msg_cls, ies, seid=None):
    seq[0] += 1
    if seid is None:
        hdr = PFCP(version=1, S=0, seq=seq[0])
    else:
        hdr = PFCP(version=1, S=1, seid=seid, seq=seq[0])
    n4.sendto(bytes(hdr / msg_cls(IE_list=ies)), (upf_ip, 8805))
    while True:
        data, _ = n4.recvfrom(65535)
        p = PFCP(data)
        if p.seq == seq[0]:
            return p


def ie(p, layer, cls):
    for x in p[layer].IE_list:
        if isinstance(x, cls):
            return x
    return None


def cause(p, layer):
    c = ie(p, layer, IE_Cause)
    return None if c is None else c.cause


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
r = request(PFCPSessionEstablishmentRequest, [
    IE_NodeId(id_type="IPv4", ipv4=gnb_ip),
    IE_FSEID(v4=1, seid=0x1234, ipv4=gnb_ip),
    IE_CreatePDR(IE_list=[
        IE_PDR_Id(id=1), IE_Precedence(precedence=100),
        IE_PDI(IE_list=[
            IE_SourceInterface(interface="Access"),
            IE_FTEID(V4=1, CH=1, CHID=1, choose_id=7),
            IE_UE_IP_Address(V4=1, ipv4=ue_ip),
        ]),
        IE_OuterHeaderRemoval(header="GTP-U/UDP/IPv4"),
        IE_FAR_Id(id=1),
    ]),
    IE_CreatePDR(IE_list=[
        IE_PDR_Id(id=2), IE_Precedence(precedence=100),
        IE_PDI(IE_list=[
            IE_SourceInterface(interface="Core"),
            IE_UE_IP_Address(V4=1, SD=1, ipv4=ue_ip),
        ]),
        IE_FAR_Id(id=2),
    ]),
    IE_CreateFAR(IE_list=[
        IE_FAR_Id(id=1), IE_ApplyAction(FORW=1),
        IE_ForwardingParameters(IE_list=[IE_DestinationInterface(interface="Core")]),
    ]),
    IE_CreateFAR(IE_list=[
        IE_FAR_Id(id=2), IE_ApplyAction(FORW=1),
        IE_ForwardingParameters(IE_list=[
            IE_DestinationInterface(interface="Access"),
            IE_OuterHeaderCreation(GTPUUDPIPV4=1, TEID=0x99, ipv4=gnb_ip),
        ]),
    ]),
], seid=0)
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
    pkt = GTP_U_Header(teid=fteid.TEID, gtp_type=255) / IP(src=ue_ip, dst=edge_ip) / UDP(sport=5000, dport=echo_port) / payload
    n3.sendto(bytes(pkt), (upf_ip, 2152))
    seen = []
    while True:
        data, _ = n3.recvfrom(65535)
        g = GTP_U_Header(data)
        seen.append((g.gtp_type, g.teid))
        if g.gtp_type == 255:
            if g.teid != expect_teid:
                fail("downlink TEID %#x, expected %#x" % (g.teid, expect_teid))
            if bytes(g[UDP].payload) != payload:
                fail("payload changed")
            return seen


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
data, _ = n3.recvfrom(65535)
g = GTP_U_Header(data)
out["end_marker"] = [g.gtp_type, g.teid]
if g.gtp_type != 254 or g.teid != 0x99:
    fail("expected an End Marker on TEID 0x99")
out["second_roundtrip"] = roundtrip(b"after the switch", 0x9a)

r = request(PFCPSessionDeletionRequest, [], seid=up_seid)
out["deletion_cause"] = cause(r, PFCPSessionDeletionResponse)
if out["deletion_cause"] != 1:
    fail("deletion refused")
print(json.dumps(out))
