#![doc = include_str!("../README.md")]

mod config;
mod math;
mod parzen;
mod sampler;
mod search;
mod solver;

pub use config::TpeConfig;
pub use search::TpeSearch;
pub use solver::Tpe;

/// Registers `tpe` in `registry`.
pub fn register(registry: &mut atlas_core::Registry) -> Result<(), atlas_core::Error> {
    registry.register::<TpeConfig>()
}
