//! What the instance does with the UE's input datagrams (DESIGN.md
//! section 5, step 5), free of sockets and clocks: the caller passes the
//! datagram, the time and the session's role, and an [`InputSink`] that
//! does the effects.
//!
//! - An input is forwarded as a write while the session is primary, and
//!   dropped (counted) while it is secondary, as before CSM.
//! - SWITCH (the UE's switching signal, on the first input it sends here
//!   after its stream switch): unless the session is already primary, the
//!   instance first sends the switching signal to the cloud, then forwards
//!   the input. The server handles one connection's messages in order, so
//!   that write, and every later one, is the primary's. A SWITCH while
//!   primary changes nothing (the UE may repeat it).
//! - KEY_FRAME: the next frame is encoded as a key frame, at most one
//!   request per [`KEY_FRAME_MIN_GAP`] (a UE cannot turn the stream into
//!   key frames only). With seq 0 the datagram carries no input and
//!   nothing is forwarded.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::Metrics;
use crate::input::{Flags, Input, InputError};
use crate::sync::{Role, SyncError};

/// Shortest time between two key frames requested by input datagrams.
pub const KEY_FRAME_MIN_GAP: Duration = Duration::from_millis(100);

/// The effects of input datagrams: the instance's sync connection and
/// frame loop (a recorder in tests).
pub trait InputSink {
    /// Forwards one input as a write.
    fn write(&self, input: &Input) -> Result<(), SyncError>;
    /// Sends the switching signal (`ClientMsg::Switch`); once it is sent
    /// the session counts as primary.
    fn switch(&self) -> Result<(), SyncError>;
    /// Makes the next frame a key frame.
    fn key_frame(&self);
}

/// What became of an input datagram's input.
#[derive(Debug, PartialEq, Eq)]
pub enum InputOutcome {
    /// Forwarded as a write.
    Forwarded(Input),
    /// Valid, but this session is secondary: dropped.
    DroppedSecondary(Input),
    /// Not an input datagram.
    Malformed(InputError),
    /// Valid, primary, but the write failed.
    ForwardFailed(Input),
    /// SWITCH, but the switching signal could not be sent: not forwarded.
    SwitchFailed(Input),
    /// A key-frame request alone (seq 0): nothing to forward.
    NoInput,
}

/// What became of a KEY_FRAME flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFrame {
    /// The datagram did not ask for one.
    NotAsked,
    /// The next frame is a key frame.
    Requested,
    /// Refused: the last request was less than the minimum gap ago.
    Limited,
}

/// Everything an input datagram did.
#[derive(Debug, PartialEq, Eq)]
pub struct InputReport {
    /// What became of the input.
    pub outcome: InputOutcome,
    /// The switching signal was sent because of it.
    pub switched: bool,
    /// What became of its key-frame request.
    pub key_frame: KeyFrame,
}

/// At most one event per `min_gap`; time passed in.
#[derive(Debug, Clone)]
pub struct RateLimit {
    min_gap: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    /// A limiter that lets the first event through.
    pub fn new(min_gap: Duration) -> RateLimit {
        RateLimit {
            min_gap,
            last: None,
        }
    }

    /// Whether an event at `now` may happen (and if so, it is recorded).
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.min_gap => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// The instance's input port: the state kept across datagrams (the
/// key-frame rate limit).
#[derive(Debug, Clone)]
pub struct InputPort {
    key_frames: RateLimit,
}

impl Default for InputPort {
    fn default() -> Self {
        InputPort::new(KEY_FRAME_MIN_GAP)
    }
}

impl InputPort {
    /// A port granting a key frame at most every `min_key_frame_gap`.
    pub fn new(min_key_frame_gap: Duration) -> InputPort {
        InputPort {
            key_frames: RateLimit::new(min_key_frame_gap),
        }
    }

    /// Decides and does what a datagram received at `now` becomes while
    /// the session's role is `role`, and counts it.
    pub fn handle(
        &mut self,
        datagram: &[u8],
        now: Instant,
        role: Role,
        sink: &dyn InputSink,
        m: &Metrics,
    ) -> InputReport {
        let mut report = InputReport {
            outcome: InputOutcome::NoInput,
            switched: false,
            key_frame: KeyFrame::NotAsked,
        };
        let input = match Input::parse(datagram) {
            Ok(i) => i,
            Err(e) => {
                m.inputs_malformed.fetch_add(1, Ordering::Relaxed);
                report.outcome = InputOutcome::Malformed(e);
                return report;
            }
        };
        if input.flags.contains(Flags::KEY_FRAME) {
            report.key_frame = if self.key_frames.allow(now) {
                sink.key_frame();
                m.key_frame_requests.fetch_add(1, Ordering::Relaxed);
                KeyFrame::Requested
            } else {
                m.key_frame_requests_limited.fetch_add(1, Ordering::Relaxed);
                KeyFrame::Limited
            };
        }
        if input.is_input() {
            m.inputs_received.fetch_add(1, Ordering::Relaxed);
        }
        let mut role = role;
        if input.flags.contains(Flags::SWITCH) && role != Role::Primary {
            if let Err(e) = sink.switch() {
                m.forward_errors.fetch_add(1, Ordering::Relaxed);
                warn!(seq = input.seq, error = %e, "sending the switching signal failed");
                report.outcome = InputOutcome::SwitchFailed(input);
                return report;
            }
            m.switches_by_input.fetch_add(1, Ordering::Relaxed);
            report.switched = true;
            role = Role::Primary;
        }
        report.outcome = forward(input, role, sink, m);
        report
    }
}

/// The input part: a write while primary, dropped while secondary.
fn forward(input: Input, role: Role, sink: &dyn InputSink, m: &Metrics) -> InputOutcome {
    if !input.is_input() {
        return InputOutcome::NoInput;
    }
    if role != Role::Primary {
        m.inputs_dropped_secondary.fetch_add(1, Ordering::Relaxed);
        return InputOutcome::DroppedSecondary(input);
    }
    match sink.write(&input) {
        Ok(()) => {
            m.inputs_forwarded.fetch_add(1, Ordering::Relaxed);
            m.last_input_forwarded.store(input.seq, Ordering::Relaxed);
            InputOutcome::Forwarded(input)
        }
        Err(e) => {
            m.forward_errors.fetch_add(1, Ordering::Relaxed);
            warn!(seq = input.seq, error = %e, "forwarding an input failed");
            InputOutcome::ForwardFailed(input)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Dir;
    use std::cell::{Cell, RefCell};

    /// What the sink saw, in order: `W(seq)`, `S` (switch), `K` (key frame).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ev {
        W(u64),
        S,
        K,
    }

    #[derive(Default)]
    struct Recorder {
        log: RefCell<Vec<Ev>>,
        broken: Cell<bool>,
    }

    impl Recorder {
        fn fail(&self) -> Result<(), SyncError> {
            if self.broken.get() {
                Err(SyncError::Closed)
            } else {
                Ok(())
            }
        }
    }

    impl InputSink for Recorder {
        fn write(&self, input: &Input) -> Result<(), SyncError> {
            self.fail()?;
            self.log.borrow_mut().push(Ev::W(input.seq));
            Ok(())
        }
        fn switch(&self) -> Result<(), SyncError> {
            self.fail()?;
            self.log.borrow_mut().push(Ev::S);
            Ok(())
        }
        fn key_frame(&self) {
            self.log.borrow_mut().push(Ev::K);
        }
    }

    fn input(seq: u64, flags: Flags) -> [u8; crate::input::LEN] {
        let mut i = Input::new(Dir::Left, seq, 5);
        i.flags = flags;
        i.emit()
    }

    fn get(a: &std::sync::atomic::AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    #[test]
    fn inputs_forwarded_only_when_primary() {
        let (m, r, mut p, t) = (
            Metrics::default(),
            Recorder::default(),
            InputPort::default(),
            Instant::now(),
        );
        let mut go = |d: &[u8], role| p.handle(d, t, role, &r, &m).outcome;
        assert!(matches!(
            go(&input(1, Flags::NONE), Role::Primary),
            InputOutcome::Forwarded(_)
        ));
        assert!(matches!(
            go(&input(2, Flags::NONE), Role::Secondary),
            InputOutcome::DroppedSecondary(_)
        ));
        assert!(matches!(
            go(b"garbage", Role::Primary),
            InputOutcome::Malformed(_)
        ));
        assert!(matches!(
            go(&input(3, Flags::NONE), Role::Primary),
            InputOutcome::Forwarded(_)
        ));
        assert_eq!(*r.log.borrow(), [Ev::W(1), Ev::W(3)]);
        assert_eq!(get(&m.inputs_received), 3);
        assert_eq!(get(&m.inputs_forwarded), 2);
        assert_eq!(get(&m.inputs_dropped_secondary), 1);
        assert_eq!(get(&m.inputs_malformed), 1);
        r.broken.set(true);
        assert!(matches!(
            go(&input(4, Flags::NONE), Role::Primary),
            InputOutcome::ForwardFailed(_)
        ));
        assert_eq!(get(&m.forward_errors), 1);
        let text = m.prometheus("i1");
        assert!(
            text.contains("app_instance_inputs_forwarded_total{instance=\"i1\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("app_instance_inputs_malformed_total{instance=\"i1\"} 1\n"));
        assert!(text.contains("app_instance_role{instance=\"i1\",role=\"secondary\"} 1\n"));
    }

    #[test]
    fn switch_signal_goes_before_the_input_and_only_when_secondary() {
        let (m, r, mut p, t) = (
            Metrics::default(),
            Recorder::default(),
            InputPort::default(),
            Instant::now(),
        );
        let rep = p.handle(&input(8, Flags::SWITCH), t, Role::Secondary, &r, &m);
        assert_eq!((rep.switched, rep.key_frame), (true, KeyFrame::NotAsked));
        assert!(matches!(rep.outcome, InputOutcome::Forwarded(i) if i.seq == 8));
        // Already primary: SWITCH again is no signal, the input goes on.
        let rep = p.handle(&input(9, Flags::SWITCH), t, Role::Primary, &r, &m);
        assert!(!rep.switched);
        assert!(matches!(rep.outcome, InputOutcome::Forwarded(i) if i.seq == 9));
        // A secondary without SWITCH still drops.
        let rep = p.handle(&input(10, Flags::NONE), t, Role::Secondary, &r, &m);
        assert!(matches!(rep.outcome, InputOutcome::DroppedSecondary(_)));
        assert_eq!(*r.log.borrow(), [Ev::S, Ev::W(8), Ev::W(9)]);
        assert_eq!(get(&m.switches_by_input), 1);
        assert_eq!(get(&m.inputs_forwarded), 2);
        assert_eq!(get(&m.inputs_dropped_secondary), 1);
        // The signal cannot be sent: the input is not forwarded either.
        r.broken.set(true);
        let rep = p.handle(&input(11, Flags::SWITCH), t, Role::Secondary, &r, &m);
        assert!(matches!(rep.outcome, InputOutcome::SwitchFailed(i) if i.seq == 11));
        assert!(!rep.switched);
        assert_eq!(get(&m.switches_by_input), 1);
        assert_eq!(get(&m.forward_errors), 1);
        assert_eq!(r.log.borrow().len(), 3);
    }

    #[test]
    fn key_frames_requested_and_rate_limited() {
        let (m, r) = (Metrics::default(), Recorder::default());
        let mut p = InputPort::new(Duration::from_millis(100));
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let alone = Input::key_frame_request(1).emit();
        let kf = |p: &mut InputPort, d: &[u8], at| p.handle(d, at, Role::Primary, &r, &m);
        let rep = kf(&mut p, &alone, ms(0));
        assert_eq!(
            rep,
            InputReport {
                outcome: InputOutcome::NoInput,
                switched: false,
                key_frame: KeyFrame::Requested
            }
        );
        assert_eq!(kf(&mut p, &alone, ms(1)).key_frame, KeyFrame::Limited);
        assert_eq!(kf(&mut p, &alone, ms(99)).key_frame, KeyFrame::Limited);
        assert_eq!(kf(&mut p, &alone, ms(100)).key_frame, KeyFrame::Requested);
        // An input that also asks for a key frame is forwarded either way.
        let both = input(7, Flags::KEY_FRAME);
        let rep = kf(&mut p, &both, ms(150));
        assert_eq!(rep.key_frame, KeyFrame::Limited);
        assert!(matches!(rep.outcome, InputOutcome::Forwarded(i) if i.seq == 7));
        let rep = kf(&mut p, &both, ms(250));
        assert_eq!(rep.key_frame, KeyFrame::Requested);
        // A secondary grants key frames too (the UE joins its stream).
        let rep = p.handle(&alone, ms(400), Role::Secondary, &r, &m);
        assert_eq!(
            (rep.outcome, rep.key_frame),
            (InputOutcome::NoInput, KeyFrame::Requested)
        );
        assert_eq!(
            *r.log.borrow(),
            [Ev::K, Ev::K, Ev::W(7), Ev::K, Ev::W(7), Ev::K]
        );
        assert_eq!(get(&m.key_frame_requests), 4);
        assert_eq!(get(&m.key_frame_requests_limited), 3);
        assert_eq!(get(&m.inputs_received), 2, "seq 0 carries no input");
        assert_eq!(get(&m.inputs_forwarded), 2);
    }

    #[test]
    fn rate_limit_tolerates_time_going_back() {
        let mut l = RateLimit::new(Duration::from_millis(100));
        let t = Instant::now() + Duration::from_secs(1);
        assert!(l.allow(t));
        assert!(!l.allow(t - Duration::from_millis(500)));
        assert!(l.allow(t + Duration::from_millis(100)));
    }
}
