//! The flat layout of the decision matrix `x[channel][period]`.

use serde::{Deserialize, Serialize};

/// Channel names and period count; variable `(c, t)` lives at `c * periods + t`
/// (channel-major, the order in which results list allocations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    channels: Vec<String>,
    periods: usize,
}

impl Layout {
    /// A layout of the given channels over `periods` periods.
    pub fn new(channels: Vec<String>, periods: usize) -> Self {
        Self { channels, periods }
    }

    /// Number of channels `C`.
    pub fn n_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of periods `T`.
    pub fn periods(&self) -> usize {
        self.periods
    }

    /// Number of decision variables `C * T`.
    pub fn len(&self) -> usize {
        self.channels.len() * self.periods
    }

    /// Whether there are no decision variables.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index of `(channel, period)`.
    #[inline]
    pub fn index(&self, channel: usize, period: usize) -> usize {
        channel * self.periods + period
    }

    /// The channel names.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// Index of a channel by name.
    pub fn channel_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c == name)
    }

    /// The variables of one channel, as a slice of `x`.
    pub fn channel_slice<'a>(&self, x: &'a [f64], channel: usize) -> &'a [f64] {
        &x[channel * self.periods..(channel + 1) * self.periods]
    }

    /// Per-channel totals of `x`.
    pub fn totals(&self, x: &[f64]) -> Vec<f64> {
        (0..self.n_channels())
            .map(|c| self.channel_slice(x, c).iter().sum())
            .collect()
    }
}
