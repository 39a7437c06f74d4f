//! Issue 6, "bad input": malformed RTP into the UE side's depacketizer is
//! rejected with a clear error and counted, and the next good frame still
//! decodes (nothing else is disturbed).

use app::game::{Delta, Event, World};
use app::instance::{Streamer, StreamerConfig};
use media::h264::Decoder;
use media::rtp::{Depacketizer, RtpError};
use media::ssim;

#[test]
fn malformed_rtp_is_counted_and_the_next_frame_decodes() {
    let mut w = World::new(64, 36, 5);
    w.apply(&Delta {
        tick: 1,
        events: vec![Event::Join { player: "p".into() }],
    })
    .expect("delta");
    let mut cfg = StreamerConfig::new("p", 77);
    cfg.encoder.width = 320;
    cfg.encoder.height = 180;
    // Small datagrams so frames are fragmented (FU-A).
    cfg.mtu = 300;
    let mut st = Streamer::new(cfg).expect("streamer");
    let mut dz = Depacketizer::new();
    let mut dec = Decoder::new().expect("decoder");

    let mut frames = Vec::new();
    for _ in 0..3 {
        let mut out = Vec::new();
        st.stream(&w, 0, &mut out).expect("stream");
        frames.push((out, st.frame().clone()));
        w.apply(&Delta {
            tick: w.tick + 1,
            events: vec![],
        })
        .expect("delta");
    }
    assert!(frames[0].0.len() > 1, "the IDR frame is fragmented");

    // Frame 0 decodes.
    let mut got = None;
    for d in &frames[0].0 {
        if let Some(au) = dz.push(d).expect("good") {
            got = Some(au);
        }
    }
    let au = got.expect("unit");
    assert!(au.complete);
    let f0 = dec.decode(&au.annexb).expect("decode").expect("picture");
    assert!(ssim(&f0, &frames[0].1) >= 0.99);

    // Garbage of every kind, each with the reason.
    let good = &frames[1].0[0];
    let mut v1 = good.clone();
    v1[0] = (v1[0] & 0x3f) | 0x40; // version 1
    let mut cc = good.clone();
    cc[0] |= 0x0f; // 15 CSRCs announced, cut short below
    cc.truncate(40);
    let mut pad = good.clone();
    pad[0] |= 0x20;
    let last = pad.len() - 1;
    pad[last] = 0xff;
    let mut ext = good.clone();
    ext[14] = 0xff; // extension length 0xff.. words
    ext[15] = 0xff;
    let mut meta = good.clone();
    meta[16] = 0x13; // id 1 with 4 octets, then garbage ids
    let mut nal = good.clone();
    nal[44] = (nal[44] & 0xe0) | 30; // undefined NAL type
    type Check = fn(&RtpError) -> bool;
    let bad: Vec<(Vec<u8>, Check)> = vec![
        (vec![], |e| matches!(e, RtpError::Truncated { .. })),
        (vec![0x80; 5], |e| matches!(e, RtpError::Truncated { .. })),
        (v1, |e| matches!(e, RtpError::Version(1))),
        (cc, |e| matches!(e, RtpError::Truncated { .. })),
        (pad, |e| matches!(e, RtpError::Padding { .. })),
        (ext, |e| matches!(e, RtpError::Truncated { .. })),
        (meta, |e| {
            matches!(
                e,
                RtpError::MetaElement { .. } | RtpError::ExtensionElement { .. }
            )
        }),
        (nal, |e| matches!(e, RtpError::NalType(30))),
        (good[..44].to_vec(), |e| matches!(e, RtpError::EmptyPayload)),
    ];
    for (i, (d, ok)) in bad.iter().enumerate() {
        let e = dz.push(d).expect_err("malformed");
        assert!(ok(&e), "case {i}: {e}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(dz.stats().malformed, bad.len() as u64);

    // The next frames decode, complete: the garbage disturbed nothing.
    for (k, (out, src)) in frames.iter().enumerate().skip(1) {
        let mut got = None;
        for d in out {
            if let Some(au) = dz.push(d).expect("good") {
                got = Some(au);
            }
        }
        let au = got.expect("unit");
        assert!(au.complete, "frame {k}");
        let f = dec.decode(&au.annexb).expect("decode").expect("picture");
        assert!(ssim(&f, src) >= 0.99, "frame {k}");
    }
    assert_eq!(dz.stats().gaps, 0);
}
