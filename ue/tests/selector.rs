//! The CSM stream selector's decisions on synthetic frames and a virtual
//! clock: SSIM threshold, frame sliding, give-up, each mechanism off, a
//! migration back, SSIM only on new pairs; and one run on real pixels
//! through one-frame buffers, the fast SSIM and the blend.

use std::sync::Arc;
use std::time::Duration;

use media::{blend, FastSsim, Frame};
use ue::stream::selector::{
    Ablation, Event, FrameRef, Output, Phase, Selector, SelectorConfig, SelectorError,
};
use ue::stream::{one_frame_buffer, BufferMode, FrameInfo};

/// One display tick at 60 fps, ns.
const TICK: u64 = 16_666_667;
/// Virtual start time, ns.
const T0: u64 = 1_000_000_000;

/// Two streams "a" and "b" whose buffers get a new frame when told, a
/// selector over them, a virtual clock and an SSIM function that returns
/// what the test says, counting its calls.
struct Bed {
    sel: Selector,
    now: u64,
    /// Latest generation of "a" and "b" (0: no frame yet).
    gens: [u64; 2],
    frame: Frame,
    ssim_calls: usize,
    events: Vec<Event>,
}

impl Bed {
    fn new(config: SelectorConfig) -> Bed {
        Bed {
            sel: Selector::new(config, "a").expect("valid config"),
            now: T0,
            gens: [0, 0],
            frame: Frame::new(16, 16),
            ssim_calls: 0,
            events: Vec::new(),
        }
    }

    fn gen(&self, name: &str) -> u64 {
        self.gens[usize::from(name == "b")]
    }

    fn frame_of(&self, name: Option<&Arc<str>>) -> Option<FrameRef<'_>> {
        let g = self.gen(name?);
        (g > 0).then_some(FrameRef {
            generation: g,
            frame: &self.frame,
        })
    }

    /// Advances the clock by a tick, publishes a frame on "a" and/or "b",
    /// and steps the selector with `ssim` as the similarity of any pair.
    fn tick_with(&mut self, new_a: bool, new_b: bool, ssim: f64) -> Output {
        self.now += TICK;
        self.gens[0] += u64::from(new_a);
        self.gens[1] += u64::from(new_b);
        let source = self.frame_of(Some(self.sel.chief()));
        let dest = self.frame_of(self.sel.target());
        let (source, dest) = (source.map(own), dest.map(own));
        let mut calls = 0;
        let frame = self.frame.clone();
        let as_ref = |g: Option<u64>| {
            g.map(|generation| FrameRef {
                generation,
                frame: &frame,
            })
        };
        let out = self
            .sel
            .step(self.now, as_ref(source), as_ref(dest), |_, _| {
                calls += 1;
                ssim
            });
        self.ssim_calls += calls;
        while let Some(e) = self.sel.poll_event() {
            self.events.push(e);
        }
        out
    }

    /// A tick with new frames on both streams.
    fn tick(&mut self, ssim: f64) -> Output {
        self.tick_with(true, true, ssim)
    }

    fn begin(&mut self, dest: &str) {
        self.sel.begin(self.now, dest).expect("idle");
    }

    fn decisions(&self) -> Vec<(u64, f64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Decision { at, ssim } => Some((*at, *ssim)),
                _ => None,
            })
            .collect()
    }
}

fn own(f: FrameRef<'_>) -> u64 {
    f.generation
}

fn config(n: u32) -> SelectorConfig {
    SelectorConfig {
        blend_frames: n,
        ..SelectorConfig::at_fps(60)
    }
}

#[test]
fn threshold_is_respected_and_every_pair_is_logged() {
    let mut bed = Bed::new(config(12));
    assert_eq!(bed.sel.config().threshold, 0.85);
    assert_eq!(bed.tick(0.1), Output::Source(1), "idle: the chief only");
    bed.begin("b");
    for v in [0.5, 0.84, 0.849_999_9] {
        let out = bed.tick(v);
        assert_eq!(out, Output::Source(bed.gen("a")), "below threshold {v}");
    }
    assert!(bed.decisions().is_empty());
    let out = bed.tick(0.85);
    let at = bed.now;
    assert_eq!(
        out,
        Output::Blend {
            a: 1.0 / 12.0,
            source_gen: bed.gen("a"),
            dest_gen: bed.gen("b")
        }
    );
    let samples: Vec<(u64, u64, f64)> = bed
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SsimSample {
                source_gen,
                dest_gen,
                value,
            } => Some((*source_gen, *dest_gen, *value)),
            _ => None,
        })
        .collect();
    assert_eq!(
        samples,
        [(2, 2, 0.5), (3, 3, 0.84), (4, 4, 0.849_999_9), (5, 5, 0.85)]
    );
    assert_eq!(bed.decisions(), [(at, 0.85)]);
    assert!(bed
        .events
        .contains(&Event::FirstDestContribution { at, n: 1 }));
}

#[test]
fn sliding_weights_are_n_over_big_n_then_destination_only() {
    const N: u32 = 5;
    let mut bed = Bed::new(config(N));
    bed.tick(0.0);
    bed.begin("b");
    bed.tick(0.2);
    let mut weights = Vec::new();
    let mut outs = Vec::new();
    for _ in 0..N {
        let out = bed.tick(0.9);
        weights.push(out.dest_weight().expect("a frame each tick"));
        outs.push(out);
    }
    let want: Vec<f32> = (1..=N).map(|n| n as f32 / N as f32).collect();
    assert_eq!(weights, want);
    assert_eq!(outs[N as usize - 1], Output::Dest(bed.gen("b")));
    assert!(outs[..N as usize - 1]
        .iter()
        .all(|o| matches!(o, Output::Blend { .. })));
    let switched_at = bed.now;
    assert_eq!(
        bed.events.last(),
        Some(&Event::Switched {
            at: switched_at,
            chief: "b".into()
        })
    );
    assert_eq!(bed.decisions().len(), 1);
    assert_eq!(**bed.sel.chief(), *"b");
    assert_eq!((bed.sel.target(), bed.sel.phase()), (None, Phase::Idle));
    // From then on the destination only, as the chief; "a" is ignored.
    let calls = bed.ssim_calls;
    for _ in 0..3 {
        let out = bed.tick(0.1);
        assert_eq!(out, Output::Source(bed.gen("b")));
    }
    assert_eq!(bed.tick_with(true, false, 0.1), Output::Nothing);
    assert_eq!(bed.ssim_calls, calls, "no SSIM outside a migration");
}

#[test]
fn the_first_output_after_the_decision_has_a_destination_contribution() {
    for ablation in [Ablation::Csm, Ablation::NoSliding, Ablation::NoOpt] {
        let mut bed = Bed::new(ablation.config(60));
        bed.tick(0.0);
        bed.begin("b");
        let out = bed.tick(0.99);
        let decision = bed.decisions();
        assert_eq!(decision.len(), 1, "{ablation:?}");
        let first = bed.events.iter().find_map(|e| match e {
            Event::FirstDestContribution { at, n } => Some((*at, *n)),
            _ => None,
        });
        // Switch downtime: zero frames, zero time.
        assert_eq!(first, Some((decision[0].0, 1)), "{ablation:?}");
        assert!(out.dest_weight().is_some_and(|a| a > 0.0), "{ablation:?}");
    }
}

#[test]
fn gives_up_after_the_configured_time_with_the_source_untouched() {
    let mut bed = Bed::new(SelectorConfig {
        give_up_after: Duration::from_secs(1),
        ..config(12)
    });
    bed.tick(0.0);
    bed.begin("b");
    let began = bed.now;
    assert_eq!(bed.sel.poll_timeout(), Some(began + 1_000_000_000));
    let mut outs = Vec::new();
    while bed.now < began + 1_500_000_000 {
        outs.push(bed.tick(0.6));
    }
    assert!(
        outs.iter()
            .all(|o| *o == Output::Nothing || matches!(o, Output::Source(_))),
        "only the source was shown: {outs:?}"
    );
    assert!(
        outs.iter().all(|o| *o != Output::Nothing),
        "a frame per tick"
    );
    let gave_up: Vec<u64> = bed
        .events
        .iter()
        .filter_map(|e| match e {
            Event::GaveUp { at, dest } if **dest == *"b" => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(gave_up.len(), 1);
    assert!(gave_up[0] >= began + 1_000_000_000 && gave_up[0] < began + 1_000_000_000 + TICK);
    assert!(bed.decisions().is_empty());
    assert_eq!(**bed.sel.chief(), *"a");
    assert_eq!(
        (bed.sel.target(), bed.sel.phase(), bed.sel.poll_timeout()),
        (None, Phase::Idle, None)
    );
    // One sample per pair until the deadline, none after.
    let samples = bed
        .events
        .iter()
        .filter(|e| matches!(e, Event::SsimSample { .. }))
        .count();
    assert_eq!(samples, bed.ssim_calls);
    assert_eq!(samples, 59, "ticks strictly before the deadline");
    // Similar streams after the give-up change nothing.
    assert_eq!(bed.tick(1.0), Output::Source(bed.gen("a")));
    assert_eq!(bed.ssim_calls, samples);
}

#[test]
fn without_threshold_the_first_pair_decides() {
    let mut bed = Bed::new(SelectorConfig {
        use_threshold: false,
        ..config(4)
    });
    bed.tick_with(true, false, 0.0);
    bed.begin("b");
    // No destination frame yet: no pair, no decision.
    assert_eq!(bed.tick_with(true, false, 0.05), Output::Source(2));
    assert!(bed.decisions().is_empty());
    let out = bed.tick(0.05);
    assert_eq!(out.dest_weight(), Some(0.25));
    assert_eq!(bed.decisions(), [(bed.now, 0.05)]);
}

#[test]
fn without_sliding_it_is_a_straight_cut() {
    let mut bed = Bed::new(SelectorConfig {
        use_sliding: false,
        ..config(12)
    });
    assert_eq!(bed.sel.config().effective_n(), 1);
    bed.tick(0.0);
    bed.begin("b");
    bed.tick(0.3);
    let events_before = bed.events.len();
    let out = bed.tick(0.9);
    assert_eq!(out, Output::Dest(bed.gen("b")));
    let at = bed.now;
    assert_eq!(
        bed.events[events_before..],
        [
            Event::SsimSample {
                source_gen: 3,
                dest_gen: 3,
                value: 0.9
            },
            Event::Decision { at, ssim: 0.9 },
            Event::FirstDestContribution { at, n: 1 },
            Event::Switched {
                at,
                chief: "b".into()
            },
        ]
    );
    assert_eq!(bed.tick(0.0), Output::Source(bed.gen("b")));
}

#[test]
fn ablations_switch_each_mechanism_off() {
    let csm = Ablation::Csm.config(60);
    assert_eq!(csm, SelectorConfig::default());
    assert_eq!((csm.effective_n(), csm.threshold), (12, 0.85));
    assert_eq!(Ablation::Csm.config(30).blend_frames, 6);
    assert_eq!(Ablation::Csm.buffer_mode(), BufferMode::OneFrame);
    let ns = Ablation::NoSliding.config(60);
    assert!(ns.use_threshold && !ns.use_sliding);
    assert_eq!(Ablation::NoSliding.buffer_mode(), BufferMode::OneFrame);
    let no = Ablation::NoOpt.config(60);
    assert!(!no.use_threshold && !no.use_sliding);
    assert!(matches!(
        Ablation::NoOpt.buffer_mode(),
        BufferMode::Fifo { capacity } if capacity > 1
    ));
    for bad in [
        SelectorConfig {
            threshold: f64::NAN,
            ..csm.clone()
        },
        SelectorConfig {
            threshold: 1.5,
            ..csm.clone()
        },
        SelectorConfig {
            blend_frames: 0,
            ..csm.clone()
        },
    ] {
        assert!(matches!(
            Selector::new(bad, "a"),
            Err(SelectorError::Config(_))
        ));
    }
}

#[test]
fn a_migration_can_begin_again_after_a_switch() {
    let mut bed = Bed::new(config(3));
    bed.tick(0.0);
    bed.begin("b");
    assert_eq!(
        bed.sel.begin(bed.now, "a"),
        Err(SelectorError::Busy("b".into()))
    );
    while bed.sel.phase() != Phase::Idle {
        bed.tick(0.9);
    }
    assert_eq!(**bed.sel.chief(), *"b");
    assert_eq!(
        bed.sel.begin(bed.now, "b"),
        Err(SelectorError::AlreadyChief("b".into()))
    );
    // Back to "a": now "b" is the source and "a" the destination.
    bed.begin("a");
    let out = bed.tick(0.95);
    assert_eq!(
        out,
        Output::Blend {
            a: 1.0 / 3.0,
            source_gen: bed.gen("b"),
            dest_gen: bed.gen("a")
        }
    );
    bed.tick(0.95);
    assert_eq!(bed.tick(0.95), Output::Dest(bed.gen("a")));
    assert_eq!(**bed.sel.chief(), *"a");
    let switched: Vec<&str> = bed
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Switched { chief, .. } => Some(&**chief),
            _ => None,
        })
        .collect();
    assert_eq!(switched, ["b", "a"]);
}

#[test]
fn ssim_only_on_a_new_pair() {
    let mut bed = Bed::new(config(4));
    bed.tick(0.0);
    bed.begin("b");
    assert_eq!(bed.tick(0.1), Output::Source(2));
    assert_eq!(bed.ssim_calls, 1);
    for _ in 0..5 {
        assert_eq!(bed.tick_with(false, false, 0.1), Output::Nothing);
    }
    assert_eq!(bed.ssim_calls, 1, "same pair, no new SSIM");
    // Only the destination moved: a new pair, nothing new to show.
    assert_eq!(bed.tick_with(false, true, 0.1), Output::Nothing);
    assert_eq!(bed.ssim_calls, 2);
    assert_eq!(bed.tick_with(true, false, 0.1), Output::Source(3));
    assert_eq!(bed.ssim_calls, 3);
    // While sliding: a frame of the slide per new pair only.
    assert!(matches!(bed.tick(0.9), Output::Blend { .. }));
    assert_eq!(bed.tick_with(false, false, 0.9), Output::Nothing);
    assert_eq!(bed.sel.phase(), Phase::Sliding { n: 1 });
    assert_eq!(
        bed.tick_with(false, true, 0.9).dest_weight(),
        Some(2.0 / 4.0)
    );
    assert_eq!(bed.ssim_calls, 4, "no SSIM while sliding");
}

#[test]
fn a_pair_scored_elsewhere_is_compared_once_its_score_is_known() {
    let mut sel = Selector::new(config(4), "a").expect("valid config");
    let f = Frame::new(16, 16);
    let fr = |generation| {
        Some(FrameRef {
            generation,
            frame: &f,
        })
    };
    let mut now = T0;
    assert_eq!(
        sel.step_scored(now, fr(1), None, |_, _| None),
        Output::Source(1)
    );
    sel.begin(now, "b").expect("idle");
    // The pair (2, 1) is not scored yet: the source goes on, nothing logged.
    now += TICK;
    let mut asked = Vec::new();
    let out = sel.step_scored(now, fr(2), fr(1), |s, d| {
        asked.push((s, d));
        None
    });
    assert_eq!(out, Output::Source(2));
    assert_eq!(sel.poll_event(), None);
    // Asked again at the next step (same pair), now known and dissimilar.
    let out = sel.step_scored(now + 1000, fr(2), fr(1), |s, d| {
        asked.push((s, d));
        Some(0.2)
    });
    assert_eq!(out, Output::Nothing);
    assert_eq!(asked, [(2, 1), (2, 1)]);
    assert!(matches!(
        sel.poll_event(),
        Some(Event::SsimSample { value, .. }) if value == 0.2
    ));
    // Compared: not asked again for the same pair.
    sel.step_scored(now + 2000, fr(2), fr(1), |_, _| panic!("asked twice"));
    // A new pair, unknown, then known and similar: the decision and the
    // first blended frame at the step that learns the score.
    now += TICK;
    assert_eq!(
        sel.step_scored(now, fr(3), fr(2), |_, _| None),
        Output::Source(3)
    );
    let at = now + 400_000;
    let out = sel.step_scored(at, fr(3), fr(2), |_, _| Some(0.9));
    assert_eq!(
        out,
        Output::Blend {
            a: 0.25,
            source_gen: 3,
            dest_gen: 2
        }
    );
    let evs: Vec<Event> = std::iter::from_fn(|| sel.poll_event()).collect();
    assert!(evs.contains(&Event::Decision { at, ssim: 0.9 }), "{evs:?}");
    assert!(
        evs.contains(&Event::FirstDestContribution { at, n: 1 }),
        "{evs:?}"
    );
}

/// A frame of a scene whose bright bar sits at column `x`, with texture,
/// its luma raised by `shade` (two streams never quite alike).
fn scene(x: usize, shade: u8) -> Frame {
    let (w, h) = (96u16, 64u16);
    let mut f = Frame::new(w, h);
    for (i, p) in f.y.iter_mut().enumerate() {
        let (cx, cy) = (i % usize::from(w), i / usize::from(w));
        let bar = cx >= x && cx < x + 12;
        *p = if bar {
            220
        } else {
            (40 + (cx * 7 + cy * 13) % 60) as u8
        };
    }
    for p in &mut f.y {
        *p = p.saturating_add(shade);
    }
    f.u.fill(100 + (x % 50) as u8);
    f
}

fn info(seq: u64) -> FrameInfo {
    FrameInfo {
        source: "s".into(),
        seq,
        ..Default::default()
    }
}

#[test]
fn real_frames_through_buffers_fast_ssim_and_blend() {
    const N: u32 = 4;
    let (mut wa, ra) = one_frame_buffer("a", None);
    let (mut wb, rb) = one_frame_buffer("b", None);
    let mut sel = Selector::new(config(N), "a").expect("valid");
    let mut fast = FastSsim::new(96, 64);
    let mut shown = Frame::new(96, 64);
    let mut now = T0;
    let mut samples = Vec::new();
    let mut composed = Vec::new();
    sel.begin(now, "b").expect("idle");
    // The destination lags the source by 30 columns, catching up by 2 a
    // tick, then keeps up.
    for t in 0..40usize {
        now += TICK;
        let lag = 30usize.saturating_sub(2 * t);
        wa.publish(info(t as u64), scene(30 + t, 0));
        wb.publish(info(t as u64), scene(30 + t - lag, 6));
        let (chief, dest) = if **sel.chief() == *"a" {
            (&ra, &rb)
        } else {
            (&rb, &ra)
        };
        let (fs, fd) = (chief.latest(), dest.latest());
        let migrating = sel.target().is_some();
        let out = sel.step(
            now,
            fs.as_deref().map(FrameRef::from),
            fd.as_deref().filter(|_| migrating).map(FrameRef::from),
            |x, y| fast.score(x, y).unwrap_or(0.0),
        );
        if let (Output::Blend { a, .. }, Some(s), Some(d)) = (out, &fs, &fd) {
            blend(&s.frame, &d.frame, a, &mut shown).expect("same size");
            composed.push((a, shown.clone(), s.frame.clone(), d.frame.clone()));
        }
        while let Some(e) = sel.poll_event() {
            if let Event::SsimSample { value, .. } = e {
                samples.push((lag, value));
            }
        }
    }
    // Reading never cleared the buffers.
    assert_eq!(
        (
            ra.latest().map(|f| f.generation),
            rb.latest().map(|f| f.generation)
        ),
        (Some(40), Some(40))
    );
    assert_eq!(**sel.chief(), *"b");
    // Each lag compared once, the decision at the first similar pair.
    let (last_lag, last_v) = *samples.last().expect("samples");
    assert!(last_v >= 0.85, "{samples:?}");
    assert!(
        samples[..samples.len() - 1].iter().all(|&(_, v)| v < 0.85),
        "{samples:?}"
    );
    assert!(last_lag < 30 && samples[0].1 < last_v, "{samples:?}");
    // N - 1 blended frames, each between its two inputs.
    assert_eq!(composed.len(), N as usize - 1);
    for (n, (a, out, s, d)) in composed.iter().enumerate() {
        assert_eq!(*a, (n + 1) as f32 / N as f32);
        let mut want = Frame::new(1, 1);
        blend(s, d, *a, &mut want).expect("same size");
        assert_eq!(*out, want);
        assert!(out != s && out != d);
    }
}
