fn main() -> std::process::ExitCode {
    eprintln!(
        "gnb: not implemented yet (tracked in issue {}); see README.md for what works today",
        gnb::PENDING_ISSUE
    );
    std::process::ExitCode::from(2)
}
