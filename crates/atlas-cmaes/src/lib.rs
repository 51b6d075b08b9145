#![doc = include_str!("../README.md")]

mod cma;
mod config;
mod eigen;
mod repair;
mod solver;

pub use config::{CmaesConfig, Covariance, Restarts, FULL_COVARIANCE_MAX_DIM};
pub use solver::Cmaes;

/// Registers `cmaes` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<CmaesConfig>()
}
