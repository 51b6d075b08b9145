//! Response models: the [`Model`] trait every backend optimizes through, and the built-in
//! marketing-mix model [`Mmm`] (curves of adstocked spend, discounted).

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::curve::Curve;
use crate::layout::Layout;

/// Which derivatives a model provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Derivatives {
    /// Only values (a black box).
    ValueOnly,
    /// Values and gradients.
    Gradient,
    /// Values, gradients and Hessian-vector products.
    Hessian,
}

/// A response model `R(x)` of the flat spend vector `x` (see [`Layout`]), to be maximized.
///
/// Object safe and `Send + Sync`, so that one model serves parallel evaluations. Implement
/// [`value`](Model::value) for a black box; add [`gradient`](Model::gradient) (and say so
/// in [`derivatives`](Model::derivatives)) to make gradient backends available.
pub trait Model: Send + Sync {
    /// Number of variables the model takes.
    fn dim(&self) -> usize;

    /// `R(x)`.
    fn value(&self, x: &[f64]) -> f64;

    /// Which derivatives this model provides (default: values only).
    fn derivatives(&self) -> Derivatives {
        Derivatives::ValueOnly
    }

    /// Writes `∇R(x)` into `grad` and returns `R(x)`; `None` when the model has no
    /// gradient.
    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        let _ = (x, grad);
        None
    }

    /// Writes `∇²R(x) v` into `out`; `None` when the model has no Hessian.
    fn hessian_vector(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        let _ = (x, v, out);
        None
    }

    /// Writes the diagonal of `∇²R(x)` into `out`; `None` when the model does not provide
    /// it. Gradient methods use it to precondition their steps.
    fn hessian_diagonal(&self, x: &[f64], out: &mut [f64]) -> Option<()> {
        let _ = (x, out);
        None
    }

    /// `R` at many points, in parallel (rayon) by default.
    fn value_batch(&self, xs: &[Vec<f64>], out: &mut [f64]) {
        xs.par_iter()
            .zip(out.par_iter_mut())
            .for_each(|(x, o)| *o = self.value(x));
    }

    /// Whether `R` is known to be concave (`None`: unknown).
    fn is_concave(&self) -> Option<bool> {
        None
    }

    /// Each channel's share of `R(x)`, when the model is additive over channels.
    fn channel_responses(&self, x: &[f64]) -> Option<Vec<f64>> {
        let _ = x;
        None
    }

    /// The first failure of a model that can fail (an unreachable service, a bad answer):
    /// once set, every later value is NaN, the solve stops, and
    /// [`optimize`](crate::optimize) returns [`Error::Model`](crate::Error::Model) with
    /// this text. Cheap to call: solvers' stop checks ask it often. Default: never fails.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Counters of an external model (cache hits, calls) and how its gradient is
    /// obtained, for the result's metrics; `None` for in-process models.
    fn stats(&self) -> Option<crate::model_spec::ModelStats> {
        None
    }

    /// The response of every draw of a posterior model at `x` (whose value is a risk
    /// measure of them); `None` for other models.
    fn draws(&self, x: &[f64]) -> Option<Vec<f64>> {
        let _ = x;
        None
    }

    /// What a posterior model is (draws, risk), for the registry and fronts; `None` for
    /// other models.
    fn posterior(&self) -> Option<crate::draws::PosteriorInfo> {
        None
    }

    /// A smooth stand-in that optimizers see in place of this model (the smoothed CVaR of
    /// a posterior); results are always evaluated on this model. `None`: this model.
    fn solver_model(&self) -> Option<Arc<dyn Model>> {
        None
    }
}

/// Geometric carry-over as a banded lower-triangular map: `a[t] = sum_l w_l x[t-l]`.
///
/// A geometric kernel of `L` weights (`w_l = w_0 decay^l`, `l < L`) is also the first-order
/// recursion `a[t] = w_0 x[t] + decay (a[t-1] - w_{L-1} x[t-L])` (the last term only once
/// `t >= L`): long kernels are applied that way, in time linear in the periods whatever
/// the lag, and short ones by the sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adstock {
    weights: Vec<f64>,
    /// The decay of geometric weights, when they are geometric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decay: Option<f64>,
}

/// Kernels of at least this many weights are applied by recursion (shorter ones by the
/// sum, which is as fast there and rounds exactly as before).
pub const ADSTOCK_RECURSION_LAGS: usize = 16;

impl Adstock {
    /// No carry-over: `a = x`.
    pub fn identity() -> Self {
        Self {
            weights: vec![1.0],
            decay: None,
        }
    }

    /// Geometric weights `decay^l`, `l < max_lag`, divided by their sum when `normalize`.
    pub fn geometric(decay: f64, max_lag: usize, normalize: bool) -> Self {
        Self::geometric_within(decay, max_lag, normalize, max_lag)
    }

    /// The weights of [`Adstock::geometric`] that take part within a horizon of `periods`
    /// periods: only the first `min(max_lag, periods)` are kept (spend is never carried
    /// beyond the horizon), normalized as if all `max_lag` were there, so that a
    /// `max_lag` beyond the horizon changes nothing and costs nothing.
    pub fn geometric_within(decay: f64, max_lag: usize, normalize: bool, periods: usize) -> Self {
        let max_lag = max_lag.max(1);
        let kept = max_lag.min(periods.max(1));
        // `kept` is at most the number of periods, far below `i32::MAX`.
        let power = |l: usize| decay.powi(i32::try_from(l).unwrap_or(i32::MAX));
        let mut weights: Vec<f64> = (0..kept).map(power).collect();
        if normalize {
            let mut sum: f64 = weights.iter().sum();
            if max_lag > kept && decay > 0.0 {
                // The weights beyond the horizon, in closed form:
                // decay^kept (1 - decay^(max_lag - kept)) / (1 - decay).
                let rest = (max_lag - kept) as f64;
                sum += power(kept) * (1.0 - decay.powf(rest)) / (1.0 - decay);
            }
            weights.iter_mut().for_each(|w| *w /= sum);
        }
        let decay = (decay.is_finite() && (0.0..1.0).contains(&decay)).then_some(decay);
        Self { weights, decay }
    }

    /// The weights `w_0 .. w_{L-1}`.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The decay when the weights are geometric and long enough to be applied by
    /// recursion (see [`ADSTOCK_RECURSION_LAGS`]).
    pub fn recursion(&self) -> Option<f64> {
        self.decay
            .filter(|_| self.weights.len() >= ADSTOCK_RECURSION_LAGS)
    }

    /// Whether this is the identity map.
    pub fn is_identity(&self) -> bool {
        self.weights.len() == 1 && self.weights[0] == 1.0
    }

    /// `a[t]` for one period of one channel's spend `x` (by the sum: `O(L)`; use
    /// [`Adstock::apply`] for every period at once).
    #[inline]
    pub fn at(&self, x: &[f64], t: usize) -> f64 {
        let lags = self.weights.len().min(t + 1);
        let mut a = 0.0;
        for (l, w) in self.weights[..lags].iter().enumerate() {
            a += w * x[t - l];
        }
        a
    }

    /// `a = W x` for one channel.
    pub fn apply(&self, x: &[f64], a: &mut [f64]) {
        if let Some(d) = self.recursion() {
            let k = self.weights.len();
            let (w0, last) = (self.weights[0], self.weights[k - 1]);
            let mut prev = 0.0;
            for t in 0..x.len() {
                let carried = if t >= k { prev - last * x[t - k] } else { prev };
                prev = w0 * x[t] + d * carried;
                a[t] = prev;
            }
            return;
        }
        for t in 0..x.len() {
            a[t] = self.at(x, t);
        }
    }

    /// The carry-in `a[t] - w_0 x[t]` of every period (what earlier spend brings), into
    /// `out`.
    pub fn carry(&self, x: &[f64], out: &mut [f64]) {
        let k = self.weights.len();
        if let Some(d) = self.recursion() {
            let (w0, last) = (self.weights[0], self.weights[k - 1]);
            let mut prev = 0.0;
            for t in 0..x.len() {
                let carried = if t >= k { prev - last * x[t - k] } else { prev };
                out[t] = d * carried;
                prev = w0 * x[t] + out[t];
            }
            return;
        }
        for t in 0..x.len() {
            let lags = k.min(t + 1);
            out[t] = (1..lags).map(|l| self.weights[l] * x[t - l]).sum();
        }
    }

    /// `g <- W^T g` in place for one channel (ascending order reads only entries not yet
    /// overwritten).
    pub fn apply_transpose_in_place(&self, g: &mut [f64]) {
        let n = g.len();
        if let Some(d) = self.recursion() {
            let k = self.weights.len();
            backward_recursion(g, self.weights[0], d, self.weights[k - 1], k);
            return;
        }
        for t in 0..n {
            let lags = self.weights.len().min(n - t);
            let mut s = 0.0;
            for (l, w) in self.weights[..lags].iter().enumerate() {
                s += w * g[t + l];
            }
            g[t] = s;
        }
    }

    /// `g[t] <- sum_l w_l^2 g[t + l]` in place (the diagonal of `W^T diag(g) W`).
    pub fn squared_transpose_in_place(&self, g: &mut [f64]) {
        let n = g.len();
        let w = &self.weights;
        if let Some(d) = self.recursion() {
            let k = w.len();
            backward_recursion(g, w[0] * w[0], d * d, w[k - 1] * w[k - 1], k);
            return;
        }
        for t in 0..n {
            let lags = w.len().min(n - t);
            let mut s = 0.0;
            for l in 0..lags {
                s += w[l] * w[l] * g[t + l];
            }
            g[t] = s;
        }
    }
}

/// `g[t] <- sum_{l < k, t + l < n} w0 d^l g[t + l]` in place, as the recursion
/// `b[t] = w0 g[t] + d (b[t+1] - last g[t+k])` with `last = w0 d^(k-1)`.
fn backward_recursion(g: &mut [f64], w0: f64, d: f64, last: f64, k: usize) {
    let n = g.len();
    // The tail term reads inputs `k` ahead, already overwritten: keep the last `k` inputs
    // in a ring.
    let size = k.min(n).max(1);
    let mut ring = vec![0.0; size];
    let mut next = 0.0;
    for t in (0..n).rev() {
        let x = g[t];
        let carried = if t + k < n {
            next - last * ring[(t + k) % size]
        } else {
            next
        };
        next = w0 * x + d * carried;
        g[t] = next;
        ring[t % size] = x;
    }
}

/// One channel of the marketing-mix model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelResponse {
    /// Response curve of adstocked spend.
    pub curve: Curve,
    /// Carry-over.
    pub adstock: Adstock,
}

/// The built-in marketing-mix model `R(x) = sum_c sum_t d_t f_c(a[c][t])`, with
/// `a[c] = W_c x[c]` (adstock) and `d_t = 1 / (1 + r)^t` (discount).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mmm {
    layout: Layout,
    channels: Vec<ChannelResponse>,
    discount: Vec<f64>,
}

impl Mmm {
    /// A model over `layout` with one response per channel and discount rate `rate`.
    pub fn new(layout: Layout, channels: Vec<ChannelResponse>, rate: f64) -> Self {
        let discount = (0..layout.periods())
            .map(|t| 1.0 / (1.0 + rate).powi(t as i32))
            .collect();
        assert_eq!(layout.n_channels(), channels.len());
        Self {
            layout,
            channels,
            discount,
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The channels' curves and adstocks.
    pub fn channels(&self) -> &[ChannelResponse] {
        &self.channels
    }

    /// The period weights `d_t`.
    pub fn discount_weights(&self) -> &[f64] {
        &self.discount
    }

    /// The same model in scaled units: spend divided by `spend_scale`, response by
    /// `response_scale` (exact: the curves' parameters are transformed).
    pub fn rescaled(&self, spend_scale: f64, response_scale: f64) -> Mmm {
        Mmm {
            layout: self.layout.clone(),
            channels: self
                .channels
                .iter()
                .map(|c| ChannelResponse {
                    curve: c.curve.rescaled(spend_scale, response_scale),
                    adstock: c.adstock.clone(),
                })
                .collect(),
            discount: self.discount.clone(),
        }
    }

    /// Channels whose curve is not concave (`hill` with `s > 1`).
    pub fn nonconcave_channels(&self) -> Vec<usize> {
        (0..self.channels.len())
            .filter(|&c| !self.channels[c].curve.is_concave())
            .collect()
    }

    fn channel_value(&self, c: usize, x: &[f64]) -> f64 {
        let ch = &self.channels[c];
        let xc = self.layout.channel_slice(x, c);
        let mut total = 0.0;
        if ch.adstock.recursion().is_some() {
            let mut a = vec![0.0; xc.len()];
            ch.adstock.apply(xc, &mut a);
            for (d, a) in self.discount.iter().zip(&a) {
                total += d * ch.curve.value(*a);
            }
            return total;
        }
        for (t, d) in self.discount.iter().enumerate() {
            total += d * ch.curve.value(ch.adstock.at(xc, t));
        }
        total
    }

    /// The adstocked spend of channel `c` into `a` (by the sum or the recursion).
    fn adstocked(&self, c: usize, x: &[f64], a: &mut Vec<f64>) {
        let xc = self.layout.channel_slice(x, c);
        a.resize(xc.len(), 0.0);
        self.channels[c].adstock.apply(xc, a);
    }
}

impl Model for Mmm {
    fn dim(&self) -> usize {
        self.layout.len()
    }

    fn value(&self, x: &[f64]) -> f64 {
        (0..self.channels.len())
            .map(|c| self.channel_value(c, x))
            .sum()
    }

    fn derivatives(&self) -> Derivatives {
        Derivatives::Hessian
    }

    fn gradient(&self, x: &[f64], grad: &mut [f64]) -> Option<f64> {
        let periods = self.layout.periods();
        let mut total = 0.0;
        let mut a = Vec::new();
        for (c, ch) in self.channels.iter().enumerate() {
            self.adstocked(c, x, &mut a);
            let gc = &mut grad[c * periods..(c + 1) * periods];
            for t in 0..periods {
                let (v, d1, _) = ch.curve.value_and_derivatives(a[t]);
                total += self.discount[t] * v;
                gc[t] = self.discount[t] * d1;
            }
            ch.adstock.apply_transpose_in_place(gc);
        }
        Some(total)
    }

    fn hessian_vector(&self, x: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        let periods = self.layout.periods();
        let (mut a, mut av) = (Vec::new(), Vec::new());
        for (c, ch) in self.channels.iter().enumerate() {
            self.adstocked(c, x, &mut a);
            self.adstocked(c, v, &mut av);
            let oc = &mut out[c * periods..(c + 1) * periods];
            for t in 0..periods {
                let d2 = ch.curve.second_derivative(a[t]);
                oc[t] = self.discount[t] * d2 * av[t];
            }
            ch.adstock.apply_transpose_in_place(oc);
        }
        Some(())
    }

    fn hessian_diagonal(&self, x: &[f64], out: &mut [f64]) -> Option<()> {
        let periods = self.layout.periods();
        let mut a = Vec::new();
        for (c, ch) in self.channels.iter().enumerate() {
            self.adstocked(c, x, &mut a);
            let oc = &mut out[c * periods..(c + 1) * periods];
            for t in 0..periods {
                oc[t] = self.discount[t] * ch.curve.second_derivative(a[t]);
            }
            // d²R/dx_t² = sum_l w_l² d_{t+l} f''(a_{t+l}).
            ch.adstock.squared_transpose_in_place(oc);
        }
        Some(())
    }

    fn is_concave(&self) -> Option<bool> {
        Some(self.nonconcave_channels().is_empty())
    }

    fn channel_responses(&self, x: &[f64]) -> Option<Vec<f64>> {
        Some(
            (0..self.channels.len())
                .map(|c| self.channel_value(c, x))
                .collect(),
        )
    }
}

/// A model seen in scaled units: `R_s(u) = R(spend_scale * u) / response_scale`.
///
/// Used for models that cannot rescale themselves exactly (custom models); the built-in
/// [`Mmm`] rescales its parameters instead.
pub struct ScaledModel {
    inner: Arc<dyn Model>,
    spend_scale: f64,
    response_scale: f64,
}

impl ScaledModel {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Model>, spend_scale: f64, response_scale: f64) -> Self {
        Self {
            inner,
            spend_scale,
            response_scale,
        }
    }

    fn unscaled(&self, u: &[f64]) -> Vec<f64> {
        u.iter().map(|v| v * self.spend_scale).collect()
    }
}

impl Model for ScaledModel {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn value(&self, u: &[f64]) -> f64 {
        self.inner.value(&self.unscaled(u)) / self.response_scale
    }
    fn derivatives(&self) -> Derivatives {
        self.inner.derivatives()
    }
    fn gradient(&self, u: &[f64], grad: &mut [f64]) -> Option<f64> {
        let v = self.inner.gradient(&self.unscaled(u), grad)?;
        let f = self.spend_scale / self.response_scale;
        grad.iter_mut().for_each(|g| *g *= f);
        Some(v / self.response_scale)
    }
    fn hessian_vector(&self, u: &[f64], v: &[f64], out: &mut [f64]) -> Option<()> {
        self.inner.hessian_vector(&self.unscaled(u), v, out)?;
        let f = self.spend_scale * self.spend_scale / self.response_scale;
        out.iter_mut().for_each(|o| *o *= f);
        Some(())
    }
    fn hessian_diagonal(&self, u: &[f64], out: &mut [f64]) -> Option<()> {
        self.inner.hessian_diagonal(&self.unscaled(u), out)?;
        let f = self.spend_scale * self.spend_scale / self.response_scale;
        out.iter_mut().for_each(|o| *o *= f);
        Some(())
    }
    fn value_batch(&self, us: &[Vec<f64>], out: &mut [f64]) {
        let xs: Vec<Vec<f64>> = us.iter().map(|u| self.unscaled(u)).collect();
        self.inner.value_batch(&xs, out);
        out.iter_mut().for_each(|o| *o /= self.response_scale);
    }
    fn is_concave(&self) -> Option<bool> {
        self.inner.is_concave()
    }
    fn channel_responses(&self, u: &[f64]) -> Option<Vec<f64>> {
        let mut v = self.inner.channel_responses(&self.unscaled(u))?;
        v.iter_mut().for_each(|o| *o /= self.response_scale);
        Some(v)
    }
    fn failure(&self) -> Option<String> {
        self.inner.failure()
    }
    fn stats(&self) -> Option<crate::model_spec::ModelStats> {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn two_channel_model() -> Mmm {
        let layout = Layout::new(vec!["a".into(), "b".into()], 3);
        Mmm::new(
            layout,
            vec![
                ChannelResponse {
                    curve: Curve::Log { beta: 2.0, k: 1.0 },
                    adstock: Adstock::geometric(0.5, 2, true),
                },
                ChannelResponse {
                    curve: Curve::Linear { beta: 3.0 },
                    adstock: Adstock::identity(),
                },
            ],
            0.1,
        )
    }

    #[test]
    fn adstock_by_hand() {
        // weights 1, 0.5 normalized: 2/3, 1/3.
        let ad = Adstock::geometric(0.5, 2, true);
        let mut a = [0.0; 3];
        ad.apply(&[3.0, 6.0, 0.0], &mut a);
        assert!((a[0] - 2.0).abs() < 1e-15);
        assert!((a[1] - (4.0 + 1.0)).abs() < 1e-15);
        assert!((a[2] - 2.0).abs() < 1e-15);
        let raw = Adstock::geometric(0.5, 3, false);
        assert_eq!(raw.weights(), &[1.0, 0.5, 0.25]);
    }

    #[test]
    fn model_value_by_hand() {
        let m = two_channel_model();
        let x = [3.0, 6.0, 0.0, 1.0, 1.0, 2.0];
        // a for channel a: [2, 5, 2]; log curve 2 ln(1 + a); discounts 1, 1/1.1, 1/1.21.
        let expect_a = 2.0 * (3.0f64).ln() + 2.0 * (6.0f64).ln() / 1.1 + 2.0 * (3.0f64).ln() / 1.21;
        let expect_b = 3.0 * (1.0 + 1.0 / 1.1 + 2.0 / 1.21);
        assert!((m.value(&x) - expect_a - expect_b).abs() < 1e-12);
        let per = m.channel_responses(&x).unwrap();
        assert!((per[0] - expect_a).abs() < 1e-12);
    }

    #[test]
    fn adstock_transpose_is_the_adjoint() {
        let ad = Adstock::geometric(0.7, 4, true);
        let x = [1.0, -2.0, 0.5, 3.0, 1.5, -1.0];
        let y = [0.3, 0.1, -0.7, 2.0, 0.4, 1.1];
        let mut wx = [0.0; 6];
        ad.apply(&x, &mut wx);
        let mut wty = y;
        ad.apply_transpose_in_place(&mut wty);
        let lhs: f64 = wx.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = x.iter().zip(&wty).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-12);
    }

    /// The dense sums the recursion replaces, written out.
    fn dense_apply(w: &[f64], x: &[f64]) -> Vec<f64> {
        (0..x.len())
            .map(|t| (0..w.len().min(t + 1)).map(|l| w[l] * x[t - l]).sum())
            .collect()
    }

    fn dense_transpose(w: &[f64], g: &[f64], square: bool) -> Vec<f64> {
        let n = g.len();
        (0..n)
            .map(|t| {
                (0..w.len().min(n - t))
                    .map(|l| if square { w[l] * w[l] } else { w[l] } * g[t + l])
                    .sum()
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64], what: &str) {
        let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (t, (p, q)) in a.iter().zip(b).enumerate() {
            assert!((p - q).abs() <= 1e-13 * scale, "{what} at {t}: {p} vs {q}");
        }
    }

    /// Long geometric kernels go by the recursion, truncated or not within the horizon,
    /// and agree with the sums they replace.
    #[test]
    fn recursion_matches_the_sums() {
        for (decay, max_lag, periods, normalize) in [
            (0.6, 20, 50, true),
            (0.9, 16, 40, false),
            (0.3, 37, 37, true),
            (0.95, 30, 200, true),
            (0.0, 25, 60, true),
            (0.8, 1000, 64, true),
        ] {
            let ad = Adstock::geometric_within(decay, max_lag, normalize, periods);
            assert!(ad.recursion().is_some(), "{decay} {max_lag} {periods}");
            let w = ad.weights().to_vec();
            let x: Vec<f64> = (0..periods)
                .map(|t| ((t * 7919 % 13) as f64 - 4.0) * 0.37)
                .collect();
            let mut a = vec![0.0; periods];
            ad.apply(&x, &mut a);
            close(&a, &dense_apply(&w, &x), "apply");
            let mut carry = vec![0.0; periods];
            ad.carry(&x, &mut carry);
            let expect: Vec<f64> = dense_apply(&w, &x)
                .iter()
                .zip(&x)
                .map(|(a, x)| a - w[0] * x)
                .collect();
            close(&carry, &expect, "carry");
            let mut g = x.clone();
            ad.apply_transpose_in_place(&mut g);
            close(&g, &dense_transpose(&w, &x, false), "transpose");
            let mut g = x.clone();
            ad.squared_transpose_in_place(&mut g);
            close(&g, &dense_transpose(&w, &x, true), "squared");
        }
        // Short kernels keep the sums.
        assert!(Adstock::geometric(0.5, 8, true).recursion().is_none());
        assert!(Adstock::geometric_within(0.5, 100, true, 10)
            .recursion()
            .is_none());
    }

    /// Gradient, Hessian-vector product and Hessian diagonal of a model whose channels
    /// carry over by recursion, against finite differences and each other.
    #[test]
    fn long_carry_over_derivatives() {
        let periods = 40;
        let layout = Layout::new(vec!["a".into(), "b".into()], periods);
        let m = Mmm::new(
            layout,
            vec![
                ChannelResponse {
                    curve: Curve::Hill {
                        beta: 3.0,
                        k: 1.5,
                        s: 1.0,
                    },
                    adstock: Adstock::geometric_within(0.7, 25, true, periods),
                },
                ChannelResponse {
                    curve: Curve::Log { beta: 2.0, k: 0.5 },
                    adstock: Adstock::geometric_within(0.9, 1000, true, periods),
                },
            ],
            0.01,
        );
        let n = 2 * periods;
        let x: Vec<f64> = (0..n).map(|i| 0.5 + (i * 37 % 11) as f64 * 0.2).collect();
        let v: Vec<f64> = (0..n).map(|i| (i * 13 % 7) as f64 * 0.3 - 1.0).collect();
        let mut g = vec![0.0; n];
        let val = m.gradient(&x, &mut g).unwrap();
        assert!((val - m.value(&x)).abs() <= 1e-12 * val.abs());
        let h = 1e-6;
        for i in 0..n {
            let mut xp = x.clone();
            let mut xm = x.clone();
            xp[i] += h;
            xm[i] -= h;
            let fd = (m.value(&xp) - m.value(&xm)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()),
                "grad {i}: {fd} vs {}",
                g[i]
            );
        }
        let mut diag = vec![0.0; n];
        m.hessian_diagonal(&x, &mut diag).unwrap();
        for i in 0..n {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            let mut he = vec![0.0; n];
            m.hessian_vector(&x, &e, &mut he).unwrap();
            assert!(
                (he[i] - diag[i]).abs() <= 1e-12 * (1.0 + diag[i].abs()),
                "diag {i}"
            );
        }
        let mut hv = vec![0.0; n];
        m.hessian_vector(&x, &v, &mut hv).unwrap();
        let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
        let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
        let (mut gp, mut gm) = (vec![0.0; n], vec![0.0; n]);
        m.gradient(&xp, &mut gp);
        m.gradient(&xm, &mut gm);
        for i in 0..n {
            let fd = (gp[i] - gm[i]) / (2.0 * h);
            assert!(
                (fd - hv[i]).abs() <= 1e-5 * (1.0 + hv[i].abs()),
                "hv {i}: {fd} vs {}",
                hv[i]
            );
        }
    }

    fn random_model() -> impl Strategy<Value = (Mmm, Vec<f64>, Vec<f64>)> {
        let curve = prop_oneof![
            (0.5f64..5.0, 0.5f64..3.0, 0.5f64..3.0).prop_map(|(beta, k, s)| Curve::Hill {
                beta,
                k,
                s
            }),
            (0.5f64..5.0, 0.5f64..3.0).prop_map(|(beta, k)| Curve::Exponential { beta, k }),
            (0.5f64..5.0, 0.1f64..2.0).prop_map(|(beta, lam)| Curve::Logistic { beta, lam }),
            (0.5f64..5.0, 0.5f64..3.0).prop_map(|(beta, k)| Curve::Log { beta, k }),
            (0.5f64..5.0, 0.2f64..1.0).prop_map(|(beta, alpha)| Curve::Power { beta, alpha }),
        ];
        let channel = (curve, 0.0f64..0.9, 1usize..5, any::<bool>()).prop_map(
            |(curve, decay, lag, normalize)| ChannelResponse {
                curve,
                adstock: Adstock::geometric(decay, lag, normalize),
            },
        );
        (prop::collection::vec(channel, 1..4), 1usize..6, 0.0f64..0.2).prop_flat_map(
            |(channels, periods, rate)| {
                let n = channels.len() * periods;
                let names = (0..channels.len()).map(|i| format!("c{i}")).collect();
                let model = Mmm::new(Layout::new(names, periods), channels, rate);
                (
                    Just(model),
                    prop::collection::vec(0.2f64..4.0, n),
                    prop::collection::vec(-1.0f64..1.0, n),
                )
            },
        )
    }

    proptest! {
        #[test]
        fn gradient_and_hessian_match_finite_differences((m, x, v) in random_model()) {
            let n = x.len();
            let mut g = vec![0.0; n];
            let val = m.gradient(&x, &mut g).unwrap();
            prop_assert!((val - m.value(&x)).abs() <= 1e-12 * (1.0 + val.abs()));
            for i in 0..n {
                let h = 1e-6;
                let mut xp = x.clone();
                let mut xm = x.clone();
                xp[i] += h;
                xm[i] -= h;
                let fd = (m.value(&xp) - m.value(&xm)) / (2.0 * h);
                prop_assert!((fd - g[i]).abs() <= 1e-6 * (1.0 + g[i].abs()), "grad {} {} {}", i, fd, g[i]);
            }
            let mut diag = vec![0.0; n];
            m.hessian_diagonal(&x, &mut diag).unwrap();
            for i in 0..n {
                let mut e = vec![0.0; n];
                e[i] = 1.0;
                let mut he = vec![0.0; n];
                m.hessian_vector(&x, &e, &mut he).unwrap();
                prop_assert!((he[i] - diag[i]).abs() <= 1e-12 * (1.0 + diag[i].abs()), "diag {} {} {}", i, he[i], diag[i]);
            }
            let mut hv = vec![0.0; n];
            m.hessian_vector(&x, &v, &mut hv).unwrap();
            let h = 1e-6;
            let xp: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a + h * b).collect();
            let xm: Vec<f64> = x.iter().zip(&v).map(|(a, b)| a - h * b).collect();
            let mut gp = vec![0.0; n];
            let mut gm = vec![0.0; n];
            m.gradient(&xp, &mut gp);
            m.gradient(&xm, &mut gm);
            for i in 0..n {
                let fd = (gp[i] - gm[i]) / (2.0 * h);
                prop_assert!((fd - hv[i]).abs() <= 1e-5 * (1.0 + hv[i].abs()), "hv {} {} {}", i, fd, hv[i]);
            }
        }

        #[test]
        fn scaled_model_matches_rescaled_parameters((m, x, _v) in random_model(), s in 0.01f64..100.0, r in 0.01f64..100.0) {
            let scaled = m.rescaled(s, r);
            let wrapped = ScaledModel::new(Arc::new(m.clone()), s, r);
            let u: Vec<f64> = x.iter().map(|v| v / s).collect();
            let a = scaled.value(&u);
            let b = wrapped.value(&u);
            prop_assert!((a - b).abs() <= 1e-10 * (1.0 + a.abs()));
            let mut ga = vec![0.0; u.len()];
            let mut gb = vec![0.0; u.len()];
            scaled.gradient(&u, &mut ga);
            wrapped.gradient(&u, &mut gb);
            for (p, q) in ga.iter().zip(&gb) {
                prop_assert!((p - q).abs() <= 1e-9 * (1.0 + p.abs()));
            }
        }
    }
}
