fn main() -> std::process::ExitCode {
    eprintln!(
        "app: not implemented yet (tracked in issue {}); see README.md for what works today",
        app::PENDING_ISSUE
    );
    std::process::ExitCode::from(2)
}
