#![doc = include_str!("../README.md")]

pub mod chart;
pub mod check;
pub mod cli;
mod error;
pub mod generate;
pub mod host;
pub mod optimum;
pub mod peers;
pub mod report;
pub mod rules;
pub mod runner;
pub mod suite;

pub use check::{check, Check, Promise, Tolerance};
pub use cli::{run as run_cli, BenchArgs};
pub use error::BenchError;
pub use optimum::{KnownOptimum, Sense};
pub use report::{Outcome, Report, SCHEMA};
pub use runner::Options;
pub use suite::{BenchProblem, Entry, Family};
