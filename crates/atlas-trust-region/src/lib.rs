#![doc = include_str!("../README.md")]

mod config;
mod newton;
mod solver;

pub use config::TrustRegionConfig;
pub use solver::TrustRegion;

/// Registers `trust-region` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<TrustRegionConfig>()
}
