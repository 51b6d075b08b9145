#![doc = include_str!("../README.md")]

mod config;
mod solver;

pub use config::LbfgsConfig;
pub use solver::Lbfgs;

/// Registers `lbfgs` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<LbfgsConfig>()
}
