//! A progress line on stderr for solves that take more than a moment: redrawn in place on
//! a terminal, printed every few seconds otherwise; silent for solves under a second.

use std::io::Write;
use std::time::{Duration, Instant};

use atlas_core::{IterationEvent, Observer, OptimizationResult};

use crate::format::fmt_amount;

pub(crate) struct Progress {
    optimizer: String,
    terminal: bool,
    last: Option<Instant>,
    drawn: bool,
}

const QUIET_START: Duration = Duration::from_secs(1);

impl Progress {
    pub(crate) fn new(optimizer: &str, terminal: bool) -> Self {
        Self {
            optimizer: optimizer.to_string(),
            terminal,
            last: None,
            drawn: false,
        }
    }
}

impl Observer for Progress {
    fn on_iteration(&mut self, e: &IterationEvent) {
        if e.elapsed < QUIET_START {
            return;
        }
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let best = e.best_objective.map_or("-".to_string(), fmt_amount);
        let line = format!(
            "{}: {:.1} s, iteration {}, {} evaluations, best {}",
            self.optimizer,
            e.elapsed.as_secs_f64(),
            e.iteration,
            e.evaluations,
            best
        );
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
        self.drawn = true;
    }

    fn on_finish(&mut self, result: &OptimizationResult) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            if self.terminal {
                let _ = write!(err, "\r\x1b[2K");
            }
            let _ = writeln!(
                err,
                "{}: done in {:.2} s ({})",
                self.optimizer, result.metrics.wall_time_s, result.status
            );
        }
    }
}
