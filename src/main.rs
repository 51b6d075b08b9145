//! The `atlas` command line; its code lives in the `atlas-cli` crate.

fn main() -> std::process::ExitCode {
    atlas_cli::main(atlas::registry())
}
