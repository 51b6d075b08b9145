#![doc = include_str!("../README.md")]

use std::path::Path;
use std::sync::Arc;

use atlas_core::model_spec::{compile_with_loader, ModelLoader, ModelSpec};
use atlas_core::{Compiled, Error, Model, Problem};

pub mod external;
pub mod http;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod test_server;

pub use external::{central_differences, Backend, ExternalModel, DEFAULT_CACHE_ENTRIES};
pub use http::HttpModel;

/// The [`ModelLoader`] of this crate: `http` always, `onnx` with the `onnx` feature.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loader;

impl ModelLoader for Loader {
    fn load(
        &self,
        spec: &ModelSpec,
        problem: &Problem,
        base_dir: &Path,
    ) -> Result<Arc<dyn Model>, Error> {
        let dim = problem.channels.len() * problem.periods;
        let backend: Box<dyn Backend> = match spec {
            ModelSpec::Mmm => {
                return Err(atlas_core::InputError::new(
                    "model.kind",
                    "`mmm` is the built-in model; it needs no loader",
                )
                .into())
            }
            ModelSpec::Draws(_) => {
                return Err(atlas_core::InputError::new(
                    "model.kind",
                    "`draws` posteriors are read by the core (`compile_with_loader`); they need no loader",
                )
                .into())
            }
            ModelSpec::Http(h) => Box::new(HttpModel::new(h, dim)?),
            #[cfg(feature = "onnx")]
            ModelSpec::Onnx(o) => Box::new(onnx::OnnxModel::load(
                o,
                base_dir,
                problem.channels.len(),
                problem.periods,
            )?),
            #[cfg(not(feature = "onnx"))]
            ModelSpec::Onnx(_) => {
                let _ = base_dir;
                return Err(atlas_core::InputError::new(
                    "model.kind",
                    "this Atlas was built without ONNX support: rebuild with `--features onnx`",
                )
                .into());
            }
        };
        Ok(Arc::new(ExternalModel::new(backend, DEFAULT_CACHE_ENTRIES)))
    }
}

/// Checks and compiles `problem` with the model its `[model]` table selects (the built-in
/// one, an ONNX graph, a prediction service). `source` is the problem file: errors name
/// it, and a model's relative path is read from its folder.
pub fn compile(problem: &Problem, source: Option<&Path>) -> Result<Compiled, Error> {
    compile_with_loader(problem, source, &Loader)
}

/// Reads, checks and compiles a problem file with its model (see [`compile`]).
pub fn compile_path(path: impl AsRef<Path>) -> Result<Compiled, Error> {
    let path = path.as_ref();
    let problem = Problem::from_path(path)?;
    compile(&problem, Some(path))
}
