fn main() -> std::process::ExitCode {
    eprintln!(
        "smf: not implemented yet (tracked in issue {}); see README.md for what works today",
        smf_lite::PENDING_ISSUE
    );
    std::process::ExitCode::from(2)
}
