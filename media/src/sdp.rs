//! Session descriptions (RFC 8866) of the application's H.264 stream
//! (RFC 6184, packetization-mode=1), such that
//! `ffplay -protocol_whitelist file,udp,rtp stream.sdp` plays it.

use std::net::IpAddr;

/// `profile-level-id` announced: Constrained Baseline (what openh264
/// produces), level 3.1 (enough for 1280x720 at 30 or 640x360 at 60).
pub const PROFILE_LEVEL_ID: &str = "42e01f";

/// The SDP of an RTP/H.264 stream sent to `dest:port` with `payload_type`:
/// a receiver at `dest` listens on `port` (RTCP would be `port + 1`).
pub fn h264(dest: IpAddr, port: u16, payload_type: u8) -> String {
    let fam = if dest.is_ipv6() { "IP6" } else { "IP4" };
    let pt = payload_type & 0x7f;
    format!(
        "v=0\r\n\
         o=- 0 0 IN {fam} {dest}\r\n\
         s=MiniEdgeCore snake\r\n\
         c=IN {fam} {dest}\r\n\
         t=0 0\r\n\
         m=video {port} RTP/AVP {pt}\r\n\
         a=rtpmap:{pt} H264/90000\r\n\
         a=fmtp:{pt} packetization-mode=1;profile-level-id={PROFILE_LEVEL_ID}\r\n\
         a=recvonly\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fixture() {
        let s = h264("10.60.0.1".parse().expect("addr"), 5004, 96);
        assert_eq!(
            s,
            "v=0\r\no=- 0 0 IN IP4 10.60.0.1\r\ns=MiniEdgeCore snake\r\nc=IN IP4 10.60.0.1\r\n\
             t=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\na=recvonly\r\n"
        );
    }

    #[test]
    fn ipv6_uses_ip6() {
        let s = h264("::1".parse().expect("addr"), 6000, 97);
        assert!(s.contains("c=IN IP6 ::1\r\n"));
        assert!(s.contains("m=video 6000 RTP/AVP 97\r\n"));
        assert!(s.contains("a=rtpmap:97 H264/90000\r\n"));
    }
}
