//! `kind = "onnx"` (contract section 2) through tract: a graph taking `[N, C*T]` or
//! `[N, C, T]` spend (float32 or float64) and returning `[N]` or `[N, 1]`.
//!
//! tract optimizes a graph for concrete shapes; rather than one plan per batch size, a
//! plan is built (once, on first use) for each power of two up to `batch`, and a batch is
//! padded to the next one by repeating its last point.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use atlas_core::model_spec::OnnxSpec;
use atlas_core::{Error, InputError};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::external::Backend;

type Plan = TypedSimplePlan<TypedModel>;

/// An ONNX graph as a batch model.
pub struct OnnxModel {
    label: String,
    channels: usize,
    periods: usize,
    rank3: bool,
    float64: bool,
    input_scale: f64,
    output_scale: f64,
    batch: usize,
    /// The graph's batch dimension where it is fixed (every call then has that many rows).
    fixed_rows: Option<usize>,
    model: InferenceModel,
    input_index: usize,
    plans: Mutex<HashMap<usize, Arc<Plan>>>,
    calls: AtomicU64,
}

fn field_error(field: &str, reason: String) -> Error {
    InputError::new(field, reason).into()
}

impl OnnxModel {
    /// Reads `spec.path` (relative to `base_dir`) and checks that its input takes
    /// `channels x periods` values and its output is one value per point.
    pub fn load(
        spec: &OnnxSpec,
        base_dir: &Path,
        channels: usize,
        periods: usize,
    ) -> Result<Self, Error> {
        let path = base_dir.join(&spec.path);
        let label = path.display().to_string();
        let mut model = tract_onnx::onnx().model_for_path(&path).map_err(|e| {
            field_error(
                "model.path",
                format!("{label}: cannot read the ONNX graph: {e:#}"),
            )
        })?;
        let input_names: Vec<String> = model
            .input_outlets()
            .map_err(|e| field_error("model.path", format!("{label}: {e:#}")))?
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let input_index = match &spec.input {
            Some(name) => input_names.iter().position(|n| n == name).ok_or_else(|| {
                field_error(
                    "model.input",
                    format!(
                        "{label} has no input `{name}`; its inputs: {}",
                        input_names.join(", ")
                    ),
                )
            })?,
            None if input_names.len() == 1 => 0,
            None => {
                return Err(field_error(
                    "model.input",
                    format!(
                        "{label} has {} inputs ({}): name the spend input",
                        input_names.len(),
                        input_names.join(", ")
                    ),
                ))
            }
        };
        // Outputs by their ONNX tensor names (tract's outlet labels), else their node's.
        let output_names: Vec<String> = model
            .output_outlets()
            .map_err(|e| field_error("model.path", format!("{label}: {e:#}")))?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map_or_else(|| model.node(o.node).name.clone(), str::to_string)
            })
            .collect();
        match &spec.output {
            Some(name) => {
                if !output_names.contains(name) {
                    return Err(field_error(
                        "model.output",
                        format!(
                            "{label} has no output `{name}`; its outputs: {}",
                            output_names.join(", ")
                        ),
                    ));
                }
                model
                    .set_output_names([name.as_str()])
                    .map_err(|e| field_error("model.output", format!("{label}: {e:#}")))?;
            }
            None if output_names.len() == 1 => {}
            None => {
                return Err(field_error(
                    "model.output",
                    format!(
                        "{label} has {} outputs ({}): name the response output",
                        output_names.len(),
                        output_names.join(", ")
                    ),
                ))
            }
        }
        let fact = model
            .input_fact(input_index)
            .map_err(|e| field_error("model.input", format!("{label}: {e:#}")))?
            .clone();
        let datum = fact.datum_type.concretize();
        let float64 = match datum {
            Some(DatumType::F64) => true,
            Some(DatumType::F32) | None => false,
            Some(other) => {
                return Err(field_error(
                    "model.input",
                    format!(
                        "{label}: the input `{}` is {other:?}; Atlas feeds float32 or float64",
                        input_names[input_index]
                    ),
                ))
            }
        };
        let dims: Option<Vec<Option<usize>>> = fact.shape.concretize().map(|dims| {
            dims.iter()
                .map(|d| d.as_i64().and_then(|v| usize::try_from(v).ok()))
                .collect()
        });
        let wanted = format!(
            "[N, {}] or [N, {channels}, {periods}] ({channels} channels x {periods} periods)",
            channels * periods
        );
        let shape_text = |dims: &[Option<usize>]| {
            let parts: Vec<String> = dims
                .iter()
                .map(|d| d.map_or("N".to_string(), |v| v.to_string()))
                .collect();
            format!("[{}]", parts.join(", "))
        };
        let rank3 = match dims.as_deref() {
            Some([_, d]) if d.is_none_or(|v| v == channels * periods) => false,
            Some([_, c, t])
                if c.is_none_or(|v| v == channels) && t.is_none_or(|v| v == periods) =>
            {
                true
            }
            Some(other) => {
                return Err(field_error(
                    "model.path",
                    format!(
                        "{label}: the input `{}` has shape {}, but the problem needs {wanted}",
                        input_names[input_index],
                        shape_text(other)
                    ),
                ))
            }
            None => false,
        };
        let fixed_rows = dims.as_deref().and_then(|d| d.first().copied().flatten());
        if fixed_rows == Some(0) {
            return Err(field_error(
                "model.path",
                format!(
                    "{label}: the input `{}` has a batch dimension of 0",
                    input_names[input_index]
                ),
            ));
        }
        let m = OnnxModel {
            label,
            channels,
            periods,
            rank3,
            float64,
            input_scale: spec.input_scale,
            output_scale: spec.output_scale,
            batch: fixed_rows.map_or(spec.batch, |n| n.min(spec.batch)),
            fixed_rows,
            model,
            input_index,
            plans: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        };
        // Build the smallest plan now: shape errors belong to loading, not to the solve.
        m.plan(m.fixed_rows.unwrap_or(1))
            .map_err(|reason| field_error("model.path", reason))?;
        Ok(m)
    }

    fn plan(&self, rows: usize) -> Result<Arc<Plan>, String> {
        if let Some(p) = self
            .plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rows)
        {
            return Ok(p.clone());
        }
        let dt = if self.float64 {
            f64::datum_type()
        } else {
            f32::datum_type()
        };
        let shape: TVec<usize> = if self.rank3 {
            tvec![rows, self.channels, self.periods]
        } else {
            tvec![rows, self.channels * self.periods]
        };
        let typed = self
            .model
            .clone()
            .with_input_fact(self.input_index, InferenceFact::dt_shape(dt, shape.clone()))
            .and_then(|m| m.into_optimized())
            .map_err(|e| {
                format!(
                    "{}: the graph does not run on an input of shape {shape:?}: {e:#}",
                    self.label
                )
            })?;
        let out = typed
            .output_fact(0)
            .map_err(|e| format!("{}: {e:#}", self.label))?
            .shape
            .as_concrete()
            .map(|s| s.to_vec());
        match out.as_deref() {
            Some([n]) | Some([n, 1]) if *n == rows => {}
            other => {
                return Err(format!(
                    "{}: the graph returns shape {:?} for {rows} points; Atlas needs [{rows}] or [{rows}, 1] (one response per point)",
                    self.label, other
                ))
            }
        }
        let plan = Arc::new(
            typed
                .into_runnable()
                .map_err(|e| format!("{}: {e:#}", self.label))?,
        );
        self.plans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(rows, plan.clone());
        Ok(plan)
    }

    fn run(&self, points: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        let rows = self.fixed_rows.unwrap_or_else(|| {
            points
                .len()
                .next_power_of_two()
                .min(self.batch.next_power_of_two())
        });
        let plan = self.plan(rows)?;
        let d = self.channels * self.periods;
        let shape: Vec<usize> = if self.rank3 {
            vec![rows, self.channels, self.periods]
        } else {
            vec![rows, d]
        };
        let mut flat = Vec::with_capacity(rows * d);
        for r in 0..rows {
            let p = &points[r.min(points.len() - 1)];
            flat.extend(p.iter().map(|v| v * self.input_scale));
        }
        let input: Tensor = if self.float64 {
            Tensor::from_shape(&shape, &flat)
        } else {
            let f: Vec<f32> = flat.iter().map(|v| *v as f32).collect();
            Tensor::from_shape(&shape, &f)
        }
        .map_err(|e| format!("{}: {e:#}", self.label))?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let outputs = plan
            .run(tvec![input.into()])
            .map_err(|e| format!("{}: inference failed: {e:#}", self.label))?;
        let out = outputs[0]
            .cast_to::<f64>()
            .map_err(|e| format!("{}: {e:#}", self.label))?;
        let values = out
            .as_slice::<f64>()
            .map_err(|e| format!("{}: {e:#}", self.label))?;
        let mut result = Vec::with_capacity(points.len());
        for (i, v) in values.iter().take(points.len()).enumerate() {
            if !v.is_finite() {
                return Err(format!(
                    "{}: the graph returned {v} for point {i}",
                    self.label
                ));
            }
            result.push(v * self.output_scale);
        }
        Ok(result)
    }
}

impl Backend for OnnxModel {
    fn label(&self) -> &str {
        &self.label
    }
    fn dim(&self) -> usize {
        self.channels * self.periods
    }
    fn epsilon(&self) -> f64 {
        if self.float64 {
            f64::EPSILON
        } else {
            f32::EPSILON as f64
        }
    }
    fn predict(&self, points: &[Vec<f64>]) -> Result<Vec<f64>, String> {
        let mut out = Vec::with_capacity(points.len());
        for chunk in points.chunks(self.batch) {
            out.extend(self.run(chunk)?);
        }
        Ok(out)
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}
