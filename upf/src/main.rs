fn main() -> std::process::ExitCode {
    eprintln!(
        "upf: not implemented yet (tracked in issue {}); see README.md for what works today",
        upf::PENDING_ISSUE
    );
    std::process::ExitCode::from(2)
}
