//! PFCP parser fuzz target: arbitrary bytes must parse or fail cleanly; what
//! parses must emit, and the emitted bytes must parse to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wire::pfcp::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let mut buf = vec![0xa5u8; msg.buffer_len()];
        match msg.emit(&mut buf) {
            Ok(n) => {
                assert_eq!(n, buf.len(), "emit length differs from buffer_len");
                let again = Message::parse(&buf).expect("emitted message must parse");
                assert_eq!(again, msg, "emit/parse round trip changed the message");
            }
            // A parsed message can exceed 65535 octets only if it grew on
            // re-encoding (e.g. Apply Action 1 -> 2 octets): allowed to fail.
            Err(wire::pfcp::PfcpError::Unencodable { .. }) => {}
            Err(e) => panic!("emit of a parsed message failed: {e}"),
        }
    }
});
