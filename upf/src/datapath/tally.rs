//! Counting a batch's packets per run of one PDR: the shared counters (the
//! PDR's, its session's, its URRs') are written once when the run ends,
//! not once per packet. The segments of a super-packet, and the packets of
//! one flow in a batch, make long runs; a TCP flow's packets on two
//! workers, or its data and its ACKs, would otherwise write the same
//! session's cache lines from two cores for every packet.

use dpio::run::{Ended, Run};

use super::CompiledPdr;
use crate::sdf::Direction;

/// The run being counted, and the PDR the latest decision matched.
/// Dropping it writes what it holds.
#[derive(Debug, Default)]
pub struct Tally<'a> {
    run: Run<'a, CompiledPdr>,
    /// The PDR of the latest decision that matched one (for
    /// [`super::Snapshot::again`]).
    pub(super) last: Option<&'a CompiledPdr>,
}

impl<'a> Tally<'a> {
    /// Nothing counted yet.
    pub fn new() -> Self {
        Tally::default()
    }

    /// Counts one packet of `len` bytes for `pdr`; a run of another PDR
    /// is written first.
    pub(super) fn count(&mut self, pdr: &'a CompiledPdr, len: usize) {
        if let Some(ended) = self.run.add(pdr, len as u64) {
            write(ended);
        }
    }

    /// Writes the run held to the shared counters (the URRs' thresholds
    /// are checked then) and starts afresh.
    pub fn flush(&mut self) {
        if let Some(ended) = self.run.take() {
            write(ended);
        }
    }
}

/// Adds a run to its PDR's, its session's and its URRs' counters.
fn write((pdr, packets, bytes): Ended<'_, CompiledPdr>) {
    pdr.counter.add_n(packets, bytes);
    let s = &pdr.session;
    match pdr.direction {
        Direction::Uplink => s.ul.add_n(packets, bytes),
        Direction::Downlink => s.dl.add_n(packets, bytes),
    }
    for u in &pdr.urrs {
        u.count_n(pdr.direction, packets, bytes);
    }
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
