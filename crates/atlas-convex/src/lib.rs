#![doc = include_str!("../README.md")]

mod certificate;
mod config;
mod conic;
mod curves;
mod polish;
mod prob;
mod separable;
mod solver;

pub use config::ConvexConfig;
pub use solver::Convex;

/// Registers `convex` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<ConvexConfig>()
}
