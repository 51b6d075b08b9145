//! [`ExternalModel`]: a [`Model`] over a [`Backend`] that predicts many points per call,
//! with what expensive models need: an evaluation cache, gradients by one batch of
//! central differences, and a failure that stops the solve instead of a panic.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use atlas_core::{Derivatives, Model, ModelStats};

/// Where an external model's values come from: an ONNX graph, an HTTP service.
pub trait Backend: Send + Sync {
    /// What to call the model in messages (its URL, its file).
    fn label(&self) -> &str;
    /// Number of values per point (`channels x periods`).
    fn dim(&self) -> usize;
    /// The smallest relative change of a value the model resolves (the machine epsilon of
    /// its arithmetic: `f32` graphs resolve less than `f64` ones); sets the
    /// finite-difference step.
    fn epsilon(&self) -> f64 {
        f64::EPSILON
    }
    /// The values at `points`, one per point; the error text names the model and what
    /// went wrong. Batching and concurrency are the backend's.
    fn predict(&self, points: &[Vec<f64>]) -> Result<Vec<f64>, String>;
    /// Values and gradients, when the model computes gradients itself (`None`: it does
    /// not, and the gradient is taken by finite differences).
    fn predict_with_gradient(&self, points: &[Vec<f64>]) -> Option<Result<PointGradients, String>> {
        let _ = points;
        None
    }
    /// Calls made into the model so far (inference calls, requests).
    fn calls(&self) -> u64;
}

/// Values and gradients at a batch of points.
pub type PointGradients = (Vec<f64>, Vec<Vec<f64>>);

/// Entries kept by the evaluation cache by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 65_536;

/// An external model as Atlas optimizes it: values from a [`Backend`], cached by exact
/// point; gradients by central differences over one batch of `2n` points (or the
/// backend's own); the first failure recorded ([`Model::failure`]) and every later value
/// NaN, so the solve stops and reports it.
pub struct ExternalModel {
    backend: Box<dyn Backend>,
    cache: Option<Mutex<Lru>>,
    failure: OnceLock<String>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ExternalModel {
    /// Wraps `backend` with an evaluation cache of `cache_entries` points (0: none).
    pub fn new(backend: Box<dyn Backend>, cache_entries: usize) -> Self {
        Self {
            backend,
            cache: (cache_entries > 0).then(|| Mutex::new(Lru::new(cache_entries))),
            failure: OnceLock::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The backend's label (URL or file).
    pub fn label(&self) -> &str {
        self.backend.label()
    }

    fn fail(&self, reason: String) {
        let _ = self.failure.set(reason);
    }

    /// Values at `points`, from the cache where it has them, the rest in one backend
    /// call (duplicates within the batch asked once). NaN everywhere once failed.
    fn values(&self, points: &[Vec<f64>]) -> Vec<f64> {
        let mut out = vec![f64::NAN; points.len()];
        if self.failure.get().is_some() {
            return out;
        }
        let mut missing: Vec<usize> = Vec::new();
        let mut first_of: HashMap<Vec<u64>, usize> = HashMap::new();
        let mut duplicate: Vec<(usize, usize)> = Vec::new();
        {
            let mut cache = self
                .cache
                .as_ref()
                .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()));
            for (i, p) in points.iter().enumerate() {
                let key = key_of(p);
                if let Some(v) = cache.as_mut().and_then(|c| c.get(&key)) {
                    out[i] = v;
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                if let Some(&j) = first_of.get(&key) {
                    duplicate.push((i, j));
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                first_of.insert(key, missing.len());
                missing.push(i);
            }
        }
        if !missing.is_empty() {
            self.misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            let asked: Vec<Vec<f64>> = missing.iter().map(|&i| points[i].clone()).collect();
            match self.backend.predict(&asked) {
                Ok(values) if values.len() == asked.len() => {
                    let mut cache = self
                        .cache
                        .as_ref()
                        .map(|c| c.lock().unwrap_or_else(|e| e.into_inner()));
                    for (k, &i) in missing.iter().enumerate() {
                        out[i] = values[k];
                        if let Some(c) = cache.as_mut() {
                            c.insert(key_of(&points[i]), values[k]);
                        }
                    }
                }
                Ok(values) => {
                    self.fail(format!(
                        "{}: {} values for {} points",
                        self.label(),
                        values.len(),
                        asked.len()
                    ));
                    return vec![f64::NAN; points.len()];
                }
                Err(reason) => {
                    self.fail(reason);
                    return vec![f64::NAN; points.len()];
                }
            }
        }
        for (i, j) in duplicate {
            out[i] = out[missing[j]];
        }
        out
    }
}

fn key_of(x: &[f64]) -> Vec<u64> {
    // Exact points: -0.0 and 0.0 are the same spend.
    x.iter().map(|v| (v + 0.0).to_bits()).collect()
}

/// Central differences of `values` at `x` from one batch: the point itself and `x ± h_i
/// e_i` for every coordinate (`2n + 1` points; the centre is usually a cache hit). Steps
/// are `eps^(1/3)` relative to the coordinate (or to a hundredth of the mean spend for
/// coordinates near zero); a coordinate closer to zero than its step takes its lower
/// point at zero (spend is never negative), keeping the same batch.
pub fn central_differences(
    values: impl FnOnce(&[Vec<f64>]) -> Vec<f64>,
    x: &[f64],
    epsilon: f64,
    grad: &mut [f64],
) -> f64 {
    let n = x.len();
    let mean = x.iter().map(|v| v.abs()).sum::<f64>() / n.max(1) as f64;
    let rel = epsilon.cbrt();
    let mut points = Vec::with_capacity(2 * n + 1);
    points.push(x.to_vec());
    let mut widths = Vec::with_capacity(n);
    for i in 0..n {
        let h = rel * x[i].abs().max(0.01 * mean).max(1e-8);
        let mut plus = x.to_vec();
        let mut minus = x.to_vec();
        plus[i] = x[i] + h;
        minus[i] = (x[i] - h).max(0.0).min(x[i]);
        widths.push(plus[i] - minus[i]);
        points.push(plus);
        points.push(minus);
    }
    let v = values(&points);
    for i in 0..n {
        grad[i] = (v[1 + 2 * i] - v[2 + 2 * i]) / widths[i];
    }
    v[0]
}

impl Model for ExternalModel {
    fn dim(&self) -> usize {
        self.backend.dim()
    }

    fn value(&self, x: &[f64]) -> f64 {
        self.values(std::slice::from_ref(&x.to_vec()))[0]
    }

    fn derivatives(&self) -> Derivatives {
        Derivatives::Gradient
    }

    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        if self.failure.get().is_some() {
            grad.iter_mut().for_each(|g| *g = f64::NAN);
            return Some(f64::NAN);
        }
        let point = [x.to_vec()];
        if let Some(answer) = self.backend.predict_with_gradient(&point) {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Some(match answer {
                Ok((values, gradients))
                    if values.len() == 1
                        && gradients.len() == 1
                        && gradients[0].len() == grad.len() =>
                {
                    grad.copy_from_slice(&gradients[0]);
                    values[0]
                }
                Ok((values, gradients)) => {
                    self.fail(format!(
                        "{}: {} values and {} gradients (of {} entries) for 1 point of {} entries",
                        self.label(),
                        values.len(),
                        gradients.len(),
                        gradients.first().map_or(0, Vec::len),
                        grad.len()
                    ));
                    grad.iter_mut().for_each(|g| *g = f64::NAN);
                    f64::NAN
                }
                Err(reason) => {
                    self.fail(reason);
                    grad.iter_mut().for_each(|g| *g = f64::NAN);
                    f64::NAN
                }
            });
        }
        Some(central_differences(
            |points| self.values(points),
            x,
            self.backend.epsilon(),
            grad,
        ))
    }

    fn value_batch(&self, xs: &[Vec<f64>], out: &mut [f64]) {
        out.copy_from_slice(&self.values(xs));
    }

    fn is_concave(&self) -> Option<bool> {
        None
    }

    fn failure(&self) -> Option<String> {
        self.failure.get().cloned()
    }

    fn stats(&self) -> Option<ModelStats> {
        let exact = self.backend.predict_with_gradient(&[]).is_some();
        Some(ModelStats {
            gradient: Some(if exact { "exact" } else { "finite_differences" }),
            cache_hits: self.hits.load(Ordering::Relaxed),
            cache_misses: self.misses.load(Ordering::Relaxed),
            calls: self.backend.calls(),
        })
    }
}

/// A least-recently-used map from exact points to values. Recency is a stamp per entry;
/// the queue of stamps is compacted when stale stamps outnumber live ones.
struct Lru {
    capacity: usize,
    map: HashMap<Vec<u64>, (f64, u64)>,
    order: VecDeque<(u64, Vec<u64>)>,
    clock: u64,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
            clock: 0,
        }
    }

    fn touch(&mut self, key: &[u64]) -> u64 {
        self.clock += 1;
        self.order.push_back((self.clock, key.to_vec()));
        if self.order.len() > 4 * self.capacity.max(16) {
            let map = &self.map;
            self.order
                .retain(|(stamp, k)| map.get(k).is_some_and(|(_, s)| s == stamp));
        }
        self.clock
    }

    fn get(&mut self, key: &[u64]) -> Option<f64> {
        let value = self.map.get(key)?.0;
        let stamp = self.touch(key);
        if let Some(e) = self.map.get_mut(key) {
            e.1 = stamp;
        }
        Some(value)
    }

    fn insert(&mut self, key: Vec<u64>, value: f64) {
        let stamp = self.touch(&key);
        self.map.insert(key, (value, stamp));
        while self.map.len() > self.capacity {
            let Some((stamp, k)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|(_, s)| *s == stamp) {
                self.map.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// `sum_i w_i ln(1 + x_i)`, counting points asked.
    struct LogSum {
        asked: Arc<AtomicUsize>,
        calls: AtomicU64,
        fail_after: Option<usize>,
    }

    impl Backend for LogSum {
        fn label(&self) -> &str {
            "logsum"
        }
        fn dim(&self) -> usize {
            3
        }
        fn predict(&self, points: &[Vec<f64>]) -> Result<Vec<f64>, String> {
            let calls = self.calls.fetch_add(1, Ordering::Relaxed) as usize;
            if self.fail_after.is_some_and(|k| calls >= k) {
                return Err("logsum: gone".to_string());
            }
            self.asked.fetch_add(points.len(), Ordering::Relaxed);
            Ok(points
                .iter()
                .map(|x| {
                    x.iter()
                        .enumerate()
                        .map(|(i, v)| (i + 1) as f64 * v.ln_1p())
                        .sum()
                })
                .collect())
        }
        fn calls(&self) -> u64 {
            self.calls.load(Ordering::Relaxed)
        }
    }

    fn model(cache: usize, fail_after: Option<usize>) -> (ExternalModel, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let backend = LogSum {
            asked: asked.clone(),
            calls: AtomicU64::new(0),
            fail_after,
        };
        (ExternalModel::new(Box::new(backend), cache), asked)
    }

    #[test]
    fn gradient_is_one_batch_of_central_differences() {
        let (m, asked) = model(1024, None);
        let x = [1.0, 2.0, 0.5];
        let mut g = [0.0; 3];
        let v = m.gradient(&x, &mut g).unwrap();
        let exact = [1.0 / 2.0, 2.0 / 3.0, 3.0 / 1.5];
        for (a, b) in g.iter().zip(exact) {
            assert!((a - b).abs() < 1e-8 * b, "{a} vs {b}");
        }
        assert!((v - (2.0f64.ln() + 2.0 * 3.0f64.ln() + 3.0 * 1.5f64.ln())).abs() < 1e-14);
        let s = m.stats().unwrap();
        assert_eq!((s.calls, asked.load(Ordering::Relaxed)), (1, 7));
        assert_eq!(s.gradient, Some("finite_differences"));
        // The centre is cached: its value costs nothing more.
        assert_eq!(m.value(&x), v);
        assert_eq!(m.stats().unwrap().cache_hits, 1);
        assert_eq!(m.stats().unwrap().calls, 1);
    }

    #[test]
    fn differences_at_zero_spend_stay_non_negative() {
        let mut seen_negative = false;
        let mut g = [0.0; 2];
        central_differences(
            |points| {
                seen_negative |= points.iter().flatten().any(|v| *v < 0.0);
                points.iter().map(|p| 3.0 * p[0] + p[1] * p[1]).collect()
            },
            &[0.0, 2.0],
            f64::EPSILON,
            &mut g,
        );
        assert!(!seen_negative);
        assert!(
            (g[0] - 3.0).abs() < 1e-6 && (g[1] - 4.0).abs() < 1e-6,
            "{g:?}"
        );
    }

    #[test]
    fn cache_hits_duplicates_and_eviction() {
        let (m, asked) = model(2, None);
        let a = vec![1.0, 1.0, 1.0];
        let b = vec![2.0, 1.0, 1.0];
        let c = vec![3.0, 1.0, 1.0];
        let mut out = [0.0; 3];
        m.value_batch(&[a.clone(), a.clone(), b.clone()], &mut out);
        assert_eq!(out[0], out[1]);
        assert_eq!(asked.load(Ordering::Relaxed), 2);
        m.value(&a); // hit; a is now the most recent
        m.value(&c); // evicts b
        assert_eq!(asked.load(Ordering::Relaxed), 3);
        m.value(&a);
        assert_eq!(asked.load(Ordering::Relaxed), 3);
        m.value(&b);
        assert_eq!(asked.load(Ordering::Relaxed), 4);
        assert_eq!(m.stats().unwrap().cache_hits, 3);
        // -0.0 and 0.0 are one point.
        m.value(&[0.0, 1.0, 1.0]);
        m.value(&[-0.0, 1.0, 1.0]);
        assert_eq!(asked.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn without_a_cache_every_value_is_asked() {
        let (m, asked) = model(0, None);
        m.value(&[1.0, 1.0, 1.0]);
        m.value(&[1.0, 1.0, 1.0]);
        assert_eq!(asked.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_first_failure_is_kept_and_later_values_are_nan() {
        let (m, _) = model(16, Some(1));
        assert!(m.value(&[1.0, 1.0, 1.0]).is_finite());
        assert!(m.failure().is_none());
        assert!(m.value(&[2.0, 1.0, 1.0]).is_nan());
        assert_eq!(m.failure().as_deref(), Some("logsum: gone"));
        // No more calls once failed, even for cached points.
        assert!(m.value(&[1.0, 1.0, 1.0]).is_nan());
        assert_eq!(m.stats().unwrap().calls, 2);
    }
}
