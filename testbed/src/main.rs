fn main() -> std::process::ExitCode {
    eprintln!(
        "testbed: not implemented yet (tracked in issue {}); see README.md for what works today",
        testbed::PENDING_ISSUE
    );
    std::process::ExitCode::from(2)
}
