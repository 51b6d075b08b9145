#![doc = include_str!("../README.md")]

mod cma;
mod config;
mod eigen;
mod exact;
mod repair;
mod search;
mod solver;

pub use cma::Termination;
pub use config::{CmaesConfig, Covariance, Restarts, FULL_COVARIANCE_MAX_DIM};
pub use search::{CmaesSearch, SearchError};
pub use solver::{Cmaes, Evaluated, SearchObjective};

/// Registers `cmaes` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<CmaesConfig>()
}
