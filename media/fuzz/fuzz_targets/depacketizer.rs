//! Arbitrary datagrams into the RTP view, the header `Repr`, the frame
//! metadata parser and the depacketizer: errors are fine, panics are not.
//! The input is split into datagrams at each 0xFF 0xFE pair, so that one
//! run exercises the depacketizer's state across packets.
//!
//! `cargo +nightly fuzz run depacketizer` (from media/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use media::rtp::{Depacketizer, FrameMeta, Packet, Repr};

fuzz_target!(|data: &[u8]| {
    let mut dz = Depacketizer::new();
    let mut rest = data;
    loop {
        let cut = rest.windows(2).position(|w| w == [0xff, 0xfe]);
        let (d, next) = match cut {
            Some(i) => (&rest[..i], Some(&rest[i + 2..])),
            None => (rest, None),
        };
        if let Ok(p) = Packet::new_checked(d) {
            let _ = Repr::parse(&p);
            let _ = p.payload();
            if let Some((profile, ext)) = p.extension_header() {
                let _ = FrameMeta::parse(profile, ext);
            }
        }
        let _ = dz.push(d);
        while dz.pop().is_some() {}
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let _ = dz.flush();
});
