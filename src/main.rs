fn main() -> std::process::ExitCode {
    chaos_runner::cli::main()
}
