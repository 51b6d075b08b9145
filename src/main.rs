//! The `atlas` command line; its code lives in the `atlas-cli` crate.

fn main() -> std::process::ExitCode {
    match atlas::registry() {
        Ok(registry) => atlas_cli::main(registry),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
