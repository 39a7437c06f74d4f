//! Rate limits for the log lines a peer's input can cause (on N4, and on
//! N3 through the daemon's shared limiter): at most a few
//! lines per second for each cause, the rest counted and said in the next
//! line of that cause ("N suppressed"), or in a summary line once the
//! second is over and nothing else came. Time is the caller's `now`.

use std::fmt;
use std::time::{Duration, Instant};

/// Lines per cause and window.
pub const LINES_PER_WINDOW: u32 = 3;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What a log line is about; each has its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogCause {
    /// A datagram that is not PFCP we can decode.
    Malformed,
    /// A request refused because of who sent it (address, Node ID, SEID of
    /// another peer).
    WrongPeer,
    /// A Session Establishment refused.
    EstablishmentRefused,
    /// A Session Modification refused.
    ModificationRefused,
    /// N3: a datagram that is not GTP-U we can decode.
    GtpuMalformed,
    /// N3: a G-PDU for a known TEID from another address than the session's
    /// tunnel peer.
    WrongSender,
    /// N3: an uplink packet for the UPF itself or a protected network.
    ProtectedDestination,
    /// N3: a G-PDU for a TEID no session owns.
    UnknownTeid,
    /// N3: an Error Indication received.
    ErrorIndication,
}

impl LogCause {
    const ALL: [LogCause; 9] = [
        LogCause::Malformed,
        LogCause::WrongPeer,
        LogCause::EstablishmentRefused,
        LogCause::ModificationRefused,
        LogCause::GtpuMalformed,
        LogCause::WrongSender,
        LogCause::ProtectedDestination,
        LogCause::UnknownTeid,
        LogCause::ErrorIndication,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// A short name, for the summary line.
    pub fn label(self) -> &'static str {
        match self {
            LogCause::Malformed => "malformed PFCP message",
            LogCause::WrongPeer => "PFCP request from the wrong peer",
            LogCause::EstablishmentRefused => "session establishment refused",
            LogCause::ModificationRefused => "session modification refused",
            LogCause::GtpuMalformed => "malformed GTP-U datagram",
            LogCause::WrongSender => "G-PDU from an address that is not the tunnel's peer",
            LogCause::ProtectedDestination => "uplink packet for a protected destination",
            LogCause::UnknownTeid => "G-PDU for an unknown TEID",
            LogCause::ErrorIndication => "Error Indication received",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// Per-cause budgets.
#[derive(Debug, Default)]
pub struct LogLimiter {
    budgets: [Budget; LogCause::ALL.len()],
    emitted: u64,
    suppressed_total: u64,
}

/// The "N suppressed" part of a line: empty when nothing was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suppressed(pub u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 0 {
            write!(f, " ({} suppressed)", self.0)
        } else {
            Ok(())
        }
    }
}

impl LogLimiter {
    /// May a line of `cause` be written at `now`? If so, the count of
    /// lines suppressed since the last one (to put in it).
    pub fn allow(&mut self, now: Instant, cause: LogCause) -> Option<Suppressed> {
        let b = &mut self.budgets[cause.index()];
        if b.start
            .is_none_or(|s| now.saturating_duration_since(s) >= WINDOW)
        {
            b.start = Some(now);
            b.used = 0;
        }
        if b.used < LINES_PER_WINDOW {
            b.used += 1;
            self.emitted += 1;
            Some(Suppressed(std::mem::take(&mut b.suppressed)))
        } else {
            b.suppressed += 1;
            self.suppressed_total += 1;
            None
        }
    }

    /// Causes whose window is over with lines suppressed in it: their
    /// counts, taken (the caller writes one summary line for each).
    pub fn take_summaries(&mut self, now: Instant) -> Vec<(LogCause, u64)> {
        let mut out = Vec::new();
        for c in LogCause::ALL {
            let b = &mut self.budgets[c.index()];
            let over = b
                .start
                .is_some_and(|s| now.saturating_duration_since(s) >= WINDOW);
            if over && b.suppressed > 0 {
                out.push((c, std::mem::take(&mut b.suppressed)));
                b.start = Some(now);
                b.used = 1;
                self.emitted += 1;
            }
        }
        out
    }

    /// When a summary line is due (a window with suppressed lines ends).
    pub fn next_summary(&self) -> Option<Instant> {
        self.budgets
            .iter()
            .filter(|b| b.suppressed > 0)
            .filter_map(|b| b.start.map(|s| s + WINDOW))
            .min()
    }

    /// Lines allowed (and summary lines) so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Lines suppressed so far.
    pub fn suppressed(&self) -> u64 {
        self.suppressed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_per_second_per_cause_then_counts() {
        let t0 = Instant::now();
        let mut l = LogLimiter::default();
        let allowed: Vec<_> = (0..100)
            .filter_map(|_| l.allow(t0, LogCause::Malformed))
            .collect();
        assert_eq!(allowed, vec![Suppressed(0); 3]);
        // Another cause has its own budget.
        assert_eq!(l.allow(t0, LogCause::WrongPeer), Some(Suppressed(0)));
        assert_eq!(l.next_summary(), Some(t0 + WINDOW));
        assert!(l.take_summaries(t0 + WINDOW / 2).is_empty());
        // The next second: the next line says how many were left out.
        let t1 = t0 + WINDOW;
        assert_eq!(l.allow(t1, LogCause::Malformed), Some(Suppressed(97)));
        assert_eq!(l.allow(t1, LogCause::Malformed), Some(Suppressed(0)));
        assert_eq!(l.suppressed(), 97);
        // A flood that stops: one summary line after its second.
        for _ in 0..10 {
            l.allow(t1, LogCause::Malformed);
        }
        assert_eq!(l.next_summary(), Some(t1 + WINDOW));
        assert_eq!(
            l.take_summaries(t1 + WINDOW),
            vec![(LogCause::Malformed, 9)]
        );
        assert_eq!(l.next_summary(), None);
        assert_eq!(l.emitted(), 3 + 1 + 2 + 1 + 1);
        assert_eq!(format!("x{}", Suppressed(5)), "x (5 suppressed)");
        assert_eq!(format!("x{}", Suppressed(0)), "x");
    }
}
