//! `testbed demo`: the main job on the embedded default topology.
//!
//! Brings the whole 5G user plane up, gives the first UE one PDU session per
//! UPF (session N through upfN to the edge behind it, in parallel, as CSM's
//! migration does), sends UDP probes bound to each session's address to an
//! echo server on that session's edge, reports what came back and how fast,
//! and takes everything down again (unless asked to keep it).
//!
//! The echo server answers `EDGE|SOURCE|payload`, so a probe proves which
//! edge it reached and with which source address it arrived there.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bed::{self, BedError, BedState, UpOpts};
use crate::responder::UdpResponder;

/// UDP port of the demo's echo servers on the edges.
pub const ECHO_PORT: u16 = 9000;

/// What one session did in the demo.
#[derive(Clone, Debug, Serialize)]
pub struct SessionResult {
    /// PDU session id.
    pub psi: u8,
    /// The UPF that anchors it, and the edge behind that UPF.
    pub upf: String,
    pub edge: String,
    /// The UE's address in this session.
    pub ue_addr: Ipv4Addr,
    /// Where the probes went (the edge's N6 address).
    pub target: SocketAddrV4,
    /// Probes sent, and answers that came from the right edge and saw the
    /// session's address as their source.
    pub sent: u32,
    pub answered: u32,
    /// Round-trip time of the answered probes, in microseconds.
    pub rtt_p50_us: Option<u64>,
    pub rtt_p99_us: Option<u64>,
}

/// The demo's result.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The run folder (configs and logs).
    pub run_dir: String,
    /// The UE that asked for the sessions.
    pub ue: String,
    pub sessions: Vec<SessionResult>,
    /// Whether the testbed was left up (`--keep`).
    pub kept: bool,
}

impl DemoReport {
    /// True when every probe of every session came back from the right edge.
    pub fn all_answered(&self) -> bool {
        !self.sessions.is_empty() && self.sessions.iter().all(|s| s.answered == s.sent)
    }
}

/// Runs the demo: `up`, one session per UPF for the first UE, `probes` UDP
/// probes per session, then `down` unless `keep`. Everything made is removed
/// also when a step fails.
pub fn run(
    opts: &UpOpts,
    probes: u32,
    keep: bool,
    on_progress: &mut dyn FnMut(&str),
) -> Result<DemoReport, BedError> {
    let (mut report, kept) = bed::up_run_down(opts, keep, on_progress, |st, on_progress| {
        Ok(DemoReport {
            run_dir: st.run_dir.display().to_string(),
            ue: st
                .plan
                .ues
                .first()
                .map(|u| u.name.clone())
                .unwrap_or_default(),
            sessions: sessions_and_probes(st, opts.bin_dir.as_deref(), probes, on_progress)?,
            kept: false,
        })
    })?;
    report.kept = kept;
    Ok(report)
}

fn sessions_and_probes(
    st: &BedState,
    bin_dir: Option<&Path>,
    probes: u32,
    on_progress: &mut dyn FnMut(&str),
) -> Result<Vec<SessionResult>, BedError> {
    let ue = st
        .plan
        .ues
        .first()
        .ok_or_else(|| BedError::Usage("the topology has no UE (a node named ue*)".into()))?;
    let state_dir = Some(st.state_dir.as_path());
    let mut results = Vec::new();
    for (i, upf) in st.plan.upfs.iter().enumerate() {
        let psi = u8::try_from(i + 1)
            .ok()
            .filter(|p| *p <= 15)
            .ok_or_else(|| BedError::Usage("more UPFs than PDU session ids (15)".into()))?;
        let args = bed::add_args(psi, &upf.dnn, Some(&upf.name));
        let line = bed::ue_session(state_dir, bin_dir, &ue.name, &args)?;
        on_progress(line.trim());
        let sessions = bed::ue_sessions(state_dir, bin_dir, &ue.name)?;
        let ue_addr = bed::session_addr(&sessions, psi)?;
        let target = SocketAddrV4::new(upf.edge_n6, ECHO_PORT);
        // Answers "EDGE|SOURCE IP|" and the probe: which edge answered, and
        // the source address it saw.
        let edge = upf.edge.clone();
        let echo = UdpResponder::start(
            &st.ns(&upf.edge),
            target,
            "echo server",
            move |d, from, out| {
                out.extend_from_slice(format!("{edge}|{}|", from.ip()).as_bytes());
                out.extend_from_slice(d);
            },
        )?;
        let result = probe(&st.ns(&ue.name), ue_addr, target, &upf.edge, probes);
        drop(echo);
        let (answered, rtts) = result?;
        results.push(SessionResult {
            psi,
            upf: upf.name.clone(),
            edge: upf.edge.clone(),
            ue_addr,
            target,
            sent: probes,
            answered,
            rtt_p50_us: percentile(&rtts, 50),
            rtt_p99_us: percentile(&rtts, 99),
        });
    }
    Ok(results)
}

/// The `p`th percentile (nearest rank) of `values`, sorted in place.
fn percentile(values: &[u64], p: usize) -> Option<u64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = (p * v.len()).div_ceil(100).max(1);
    v.get(rank - 1).copied()
}

/// Sends `count` probes from `src` (a session address, in the UE's
/// namespace) to `target`, one at a time; returns how many came back from
/// `edge` with `src` as the source it saw, and their round-trip times (µs).
pub(crate) fn probe(
    netns: &str,
    src: Ipv4Addr,
    target: SocketAddrV4,
    edge: &str,
    count: u32,
) -> Result<(u32, Vec<u64>), BedError> {
    let expect = format!("{edge}|{src}|");
    topo::netns::run_in_netns(netns, move || -> Result<(u32, Vec<u64>), String> {
        let sock = UdpSocket::bind(SocketAddr::from((src, 0))).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut rtts = Vec::with_capacity(count as usize);
        let mut buf = [0u8; 2048];
        for seq in 0..count {
            let payload = format!("probe {seq}");
            let sent_at = Instant::now();
            sock.send_to(payload.as_bytes(), target)
                .map_err(|e| e.to_string())?;
            // Skip late answers to earlier probes; wait for this one.
            while let Ok(n) = sock.recv(&mut buf) {
                let answer = &buf[..n];
                if answer.starts_with(expect.as_bytes()) && answer.ends_with(payload.as_bytes()) {
                    rtts.push(sent_at.elapsed().as_micros() as u64);
                    break;
                }
            }
        }
        Ok((rtts.len() as u32, rtts))
    })
    .map_err(|e| BedError::Request(format!("probe from {src} in {netns}: {e}")))?
    .map_err(|e| BedError::Request(format!("probe from {src} to {target}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentile_is_nearest_rank() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
        let v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&v, 100), Some(100));
    }
}
