#![doc = include_str!("../README.md")]

mod config;
mod math;
mod parzen;
mod sampler;
mod solver;

pub use config::TpeConfig;
pub use solver::Tpe;

/// Registers `tpe` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<TpeConfig>()
}
