//! Replays the GTP-U fuzz corpus (wire/fuzz/corpus/gtpu) through the parsers
//! with the same checks as the fuzz target, so CI covers it on stable Rust.

use std::path::Path;

use wire::gtpu::{decap, encap_in_place, Message, MessageType, Packet, Repr};

fn check(data: &[u8]) -> Result<(), String> {
    let checked = Packet::new_checked(data);
    let unchecked = Packet::new_unchecked(data);
    let _ = unchecked.payload();
    let _ = unchecked.header_len();
    let _ = unchecked.extension_headers().count();
    let d = decap(data);
    if let Ok(p) = &checked {
        if p.extension_headers().any(|e| e.is_err()) {
            return Err("checked view with a bad extension chain".into());
        }
        if let Ok(d) = &d {
            if (d.teid, d.seq, d.payload) != (p.teid(), p.seq_number(), p.payload()) {
                return Err("decap and view disagree".into());
            }
        }
    }
    if let Ok(d) = &d {
        if checked.is_err() {
            return Err("decap accepted what the view rejects".into());
        }
        if d.message_type == MessageType::GPdu {
            let hdr = d.header();
            let head = hdr.header_len();
            let mut buf = vec![0u8; head + d.payload.len()];
            buf[head..].copy_from_slice(d.payload);
            if let Ok(out) = encap_in_place(&mut buf, head, d.payload.len(), &hdr) {
                let again = decap(out).map_err(|e| format!("re-encap does not decap: {e}"))?;
                if (
                    again.teid,
                    again.seq,
                    again.npdu,
                    again.pdu_session,
                    again.payload,
                ) != (d.teid, d.seq, d.npdu, d.pdu_session, d.payload)
                {
                    return Err("re-encap decaps differently".into());
                }
            }
        }
    }
    if let Ok(repr) = Repr::parse_bytes(data) {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut buf).map_err(|e| format!("emit: {e}"))?;
        if let Message::GPdu { .. } = repr.message {
            let h = repr.header_len();
            let view = Packet::new_unchecked(data);
            buf[h..].copy_from_slice(view.payload());
        }
        match Repr::parse_bytes(&buf) {
            Ok(again) if again == repr => {}
            other => return Err(format!("re-emitted Repr parses as {other:?}, not {repr:?}")),
        }
    }
    Ok(())
}

#[test]
fn replay_fuzz_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/gtpu");
    let mut n = 0;
    let mut parsed = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        n += 1;
        if Repr::parse_bytes(&data).is_ok() {
            parsed += 1;
        }
        if let Err(e) = check(&data) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(n >= 10, "corpus too small: {n} files in {dir:?}");
    // The corpus holds the scapy fixtures, which all parse.
    assert!(parsed >= 10, "only {parsed} of {n} corpus files parse");
    assert!(failures.is_empty(), "{failures:#?}");
}
