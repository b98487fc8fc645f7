//! The `hoist` binary: maps `cli::run` to a process exit code, nothing else.

fn main() -> std::process::ExitCode {
    hoist::cli::main()
}
