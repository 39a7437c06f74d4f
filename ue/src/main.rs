fn main() -> std::process::ExitCode {
    eprintln!(
        "ue: not implemented yet (tracked in issue {}); see README.md for what works today",
        ue::PENDING_ISSUE
    );
    std::process::ExitCode::from(2)
}
