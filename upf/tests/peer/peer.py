"""What the independent PFCP + GTP-U peers share: an SMF's N4 socket and a
gNB's N3 socket on one address, built on scapy's PFCP and GTP layers
(scapy.contrib.pfcp / scapy.contrib.gtp), not on the project's codec.

The N4 socket is bound to port 8805, where the UPF sends its own requests
(Session Report Requests): those that arrive while the peer waits for an
answer are answered (cause 1) and kept in `Peer.reports`.
"""
import json
import socket
import sys
import time

from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.pfcp import (
    PFCP, IE_ApplyAction, IE_Cause, IE_CreateFAR, IE_CreatePDR,
    IE_DestinationInterface, IE_FAR_Id, IE_FSEID, IE_FTEID,
    IE_ForwardingParameters, IE_NodeId, IE_OuterHeaderCreation,
    IE_OuterHeaderRemoval, IE_PDI, IE_PDR_Id, IE_Precedence,
    IE_SourceInterface, IE_UE_IP_Address, PFCPSessionReportRequest,
    PFCPSessionReportResponse,
)
from scapy.layers.inet import IP, UDP

PFCP_PORT = 8805
GTPU_PORT = 2152
G_PDU = 255
END_MARKER = 254
ERROR_INDICATION = 26

out = {}


def fail(msg):
    """Prints what was seen so far with the failure, and exits 1."""
    out["error"] = msg
    print(json.dumps(out))
    sys.exit(1)


def ie(p, layer, cls):
    """The first IE of class `cls` in message `layer` of `p`, or None."""
    for x in p[layer].IE_list:
        if isinstance(x, cls):
            return x
    return None


def sub(grouped, cls):
    """The first IE of class `cls` inside a grouped IE, or None."""
    for x in grouped.IE_list:
        if isinstance(x, cls):
            return x
    return None


def cause(p, layer):
    c = ie(p, layer, IE_Cause)
    return None if c is None else c.cause


def session_ies(smf_ip, cp_seid, ue_ip, dl_teid, ul_rules=(), dl_rules=()):
    """A Session Establishment's IEs: UL PDR 1 (F-TEID CHOOSE, outer header
    removal) -> FAR 1 to the core; DL PDR 2 on `ue_ip` -> FAR 2 into the
    gNB tunnel `dl_teid` at `smf_ip` (the peer plays both); `ul_rules` and
    `dl_rules` are more IEs of each PDR (URR and QER IDs)."""
    return [
        IE_NodeId(id_type="IPv4", ipv4=smf_ip),
        IE_FSEID(v4=1, seid=cp_seid, ipv4=smf_ip),
        IE_CreatePDR(IE_list=[
            IE_PDR_Id(id=1), IE_Precedence(precedence=100),
            IE_PDI(IE_list=[
                IE_SourceInterface(interface="Access"),
                IE_FTEID(V4=1, CH=1, CHID=1, choose_id=7),
                IE_UE_IP_Address(V4=1, ipv4=ue_ip),
            ]),
            IE_OuterHeaderRemoval(header="GTP-U/UDP/IPv4"),
            IE_FAR_Id(id=1),
        ] + list(ul_rules)),
        IE_CreatePDR(IE_list=[
            IE_PDR_Id(id=2), IE_Precedence(precedence=100),
            IE_PDI(IE_list=[
                IE_SourceInterface(interface="Core"),
                IE_UE_IP_Address(V4=1, SD=1, ipv4=ue_ip),
            ]),
            IE_FAR_Id(id=2),
        ] + list(dl_rules)),
        IE_CreateFAR(IE_list=[
            IE_FAR_Id(id=1), IE_ApplyAction(FORW=1),
            IE_ForwardingParameters(IE_list=[IE_DestinationInterface(interface="Core")]),
        ]),
        IE_CreateFAR(IE_list=[
            IE_FAR_Id(id=2), IE_ApplyAction(FORW=1),
            IE_ForwardingParameters(IE_list=[
                IE_DestinationInterface(interface="Access"),
                IE_OuterHeaderCreation(GTPUUDPIPV4=1, TEID=dl_teid, ipv4=smf_ip),
            ]),
        ]),
    ]


class Peer:
    """An SMF (N4) and a gNB (N3) on address `ip`, talking to `upf_ip`."""

    def __init__(self, upf_ip, ip, n4_port=PFCP_PORT):
        self.upf_ip = upf_ip
        self.ip = ip
        self.n4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.n4.bind((ip, n4_port))
        self.n4.settimeout(3)
        self.n3 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # Room for a burst of echoes (the MBR check sends 100 at once).
        self.n3.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.n3.bind((ip, GTPU_PORT))
        self.n3.settimeout(3)
        self.seq = 0
        self.reports = []

    def pfcp(self, msg_cls, ies, seid=None, seq=None):
        """The bytes of a PFCP request (the next sequence number unless
        `seq` is given)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        if seid is None:
            hdr = PFCP(version=1, S=0, seq=seq)
        else:
            hdr = PFCP(version=1, S=1, seid=seid, seq=seq)
        return bytes(hdr / msg_cls(IE_list=ies))

    def send(self, raw):
        self.n4.sendto(raw, (self.upf_ip, PFCP_PORT))

    def receive(self, deadline):
        """The next PFCP message other than a Session Report Request (those
        are answered and kept), or None at `deadline` (monotonic)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.n4.settimeout(min(left, 0.2))
            try:
                data, src = self.n4.recvfrom(65535)
            except socket.timeout:
                continue
            p = PFCP(data)
            if not p.haslayer(PFCPSessionReportRequest):
                return data
            self.reports.append((time.monotonic(), p))
            self.ack_report(p, src)

    def answer(self, seq, timeout=3):
        """The UPF's message with sequence number `seq` (raw bytes)."""
        deadline = time.monotonic() + timeout
        while True:
            data = self.receive(deadline)
            if data is None:
                fail("no answer to PFCP sequence %d within %d s" % (seq, timeout))
            if PFCP(data).seq == seq:
                return data

    def request(self, msg_cls, ies, seid=None):
        """Sends a request and returns the parsed answer."""
        raw = self.pfcp(msg_cls, ies, seid)
        self.send(raw)
        return PFCP(self.answer(self.seq))

    def ack_report(self, p, src):
        """Answers a Session Report Request with cause 1 (the SEID is the
        one this peer gave the UPF, which the tests choose as 0x1234)."""
        r = PFCP(version=1, S=1, seid=p.seid, seq=p.seq) / PFCPSessionReportResponse(
            IE_list=[IE_Cause(cause=1)])
        self.n4.sendto(bytes(r), src)

    def wait_report(self, pred, timeout):
        """Waits until a kept report satisfies `pred`; returns it (None
        after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            for _, p in self.reports:
                if pred(p):
                    return p
            if time.monotonic() >= deadline:
                return None
            self.receive(min(deadline, time.monotonic() + 0.2))

    def gpdu(self, teid, ue_ip, edge_ip, echo_port, payload):
        """The bytes of an uplink G-PDU carrying UDP `payload` to the echo."""
        return bytes(GTP_U_Header(teid=teid, gtp_type=G_PDU)
                     / IP(src=ue_ip, dst=edge_ip)
                     / UDP(sport=5000, dport=echo_port) / payload)

    def send_n3(self, raw):
        self.n3.sendto(raw, (self.upf_ip, GTPU_PORT))

    def recv_n3(self, timeout):
        """The next GTP-U message from the UPF, or None after `timeout`."""
        self.n3.settimeout(timeout)
        try:
            data, _ = self.n3.recvfrom(65535)
        except socket.timeout:
            return None
        return GTP_U_Header(data)

    def drain_n3(self, quiet=0.3):
        """Every GTP-U message until the UPF is quiet for `quiet` s."""
        seen = []
        while True:
            g = self.recv_n3(quiet)
            if g is None:
                return seen
            seen.append(g)

    def roundtrip(self, teid, ue_ip, edge_ip, echo_port, payload, expect_teid):
        """Sends one G-PDU up; returns the types and TEIDs seen until the
        echo comes back down (which must carry `expect_teid` and the same
        payload)."""
        self.send_n3(self.gpdu(teid, ue_ip, edge_ip, echo_port, payload))
        seen = []
        while True:
            g = self.recv_n3(3)
            if g is None:
                fail("no echo of %r came back (seen %r)" % (payload, seen))
            seen.append((g.gtp_type, g.teid))
            if g.gtp_type == G_PDU:
                if g.teid != expect_teid:
                    fail("downlink TEID %#x, expected %#x" % (g.teid, expect_teid))
                if bytes(g[UDP].payload) != payload:
                    fail("payload changed")
                return seen
