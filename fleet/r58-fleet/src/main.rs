//! `r58-fleet`: the fleet server (`serve`) and the operators' CLI (see `r58_fleet::cli`).

fn main() -> std::process::ExitCode {
    r58_fleet::cli::main()
}
