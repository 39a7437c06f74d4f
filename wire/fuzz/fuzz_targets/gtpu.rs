//! GTP-U parsers on arbitrary bytes: the checked view, the owned `Repr` and
//! the data path `decap` must never panic, must agree with each other, and
//! whatever parses must re-emit into bytes that parse to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wire::gtpu::{decap, encap_in_place, MessageType, Packet, Repr, MAX_GPDU_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let checked = Packet::new_checked(data);
    // The unchecked view's panic-free parts must work on anything.
    let unchecked = Packet::new_unchecked(data);
    let _ = unchecked.payload();
    let _ = unchecked.header_len();
    for ext in unchecked.extension_headers() {
        let _ = ext;
    }

    let d = decap(data);
    if let Ok(p) = &checked {
        for ext in p.extension_headers() {
            assert!(ext.is_ok(), "checked packet with a bad extension chain");
        }
        let _ = (
            p.teid(),
            p.seq_number(),
            p.npdu_number(),
            p.next_extension_type(),
        );
        if let Ok(d) = &d {
            assert_eq!(d.teid, p.teid());
            assert_eq!(d.seq, p.seq_number());
            assert_eq!(d.payload, p.payload());
        }
    }
    if let Ok(d) = &d {
        assert!(checked.is_ok(), "decap accepted what the view rejects");
        // Re-encapsulate what decap saw and decap again.
        if d.message_type == MessageType::GPdu {
            let hdr = d.header();
            let mut buf = vec![0u8; MAX_GPDU_HEADER_LEN + d.payload.len()];
            buf[MAX_GPDU_HEADER_LEN..].copy_from_slice(d.payload);
            if let Ok(out) = encap_in_place(&mut buf, MAX_GPDU_HEADER_LEN, d.payload.len(), &hdr) {
                let again = decap(out).expect("re-encapsulated G-PDU must decap");
                assert_eq!(again.teid, d.teid);
                assert_eq!(again.seq, d.seq);
                assert_eq!(again.npdu, d.npdu);
                assert_eq!(again.pdu_session, d.pdu_session);
                assert_eq!(again.payload, d.payload);
            }
        }
    }

    if let Ok(repr) = Repr::parse_bytes(data) {
        let mut buf = vec![0u8; repr.buffer_len()];
        let n = repr.emit(&mut buf).expect("a parsed Repr must emit");
        assert_eq!(n, buf.len());
        if let wire::gtpu::Message::GPdu { .. } = repr.message {
            let h = repr.header_len();
            let p = Packet::new_checked(data)
                .expect("parsed")
                .payload()
                .to_vec();
            buf[h..].copy_from_slice(&p);
        }
        let again = Repr::parse_bytes(&buf).expect("emitted Repr must parse");
        assert_eq!(again, repr);
    }
});
