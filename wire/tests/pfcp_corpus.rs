//! Replays the kept PFCP fuzz corpus (wire/fuzz/corpus/pfcp) as a normal test,
//! with the fuzz target's checks: parsing never panics, and whatever parses
//! emits and parses back to the same message.
use wire::pfcp::{Message, PfcpError};

#[test]
fn replay_pfcp_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/pfcp");
    let mut files = 0;
    let mut parsed = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read");
        files += 1;
        if let Ok(m) = Message::parse(&data) {
            parsed += 1;
            let mut buf = vec![0xa5u8; m.buffer_len()];
            match m.emit(&mut buf) {
                Ok(n) => {
                    assert_eq!(n, buf.len(), "{}", path.display());
                    let again = Message::parse(&buf)
                        .unwrap_or_else(|e| panic!("{}: re-parse: {e}", path.display()));
                    assert_eq!(again, m, "{}", path.display());
                }
                Err(PfcpError::Unencodable { .. }) => {}
                Err(e) => panic!("{}: emit: {e}", path.display()),
            }
        }
    }
    assert!(files >= 20, "corpus has only {files} files");
    assert!(parsed >= 10, "only {parsed} of {files} corpus files parse");
}
