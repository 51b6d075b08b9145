#![doc = include_str!("../README.md")]

pub mod charts;
pub mod fmt;
mod html;
mod input;
pub mod svg;
mod view;

use std::path::Path;

use atlas_core::Compiled;

pub use html::{result_html, sweep_html, sweep_svg};
pub use input::{
    parse_input, read_input, Input, Metrics, ReportError, ResultFile, Risk, Selected, SweepFailure,
    SweepFile, SweepScenario,
};
pub use view::{describe_curve, ChannelModel, ChannelView, ProblemView, ResultView};

/// The HTML report of `input`: [`result_html`] for a result (with `problem`, when given,
/// for the response curves and ROIs), [`sweep_html`] for a sweep (which needs no
/// problem: each scenario carries its own result).
pub fn report_html(input: &Input, problem: Option<&Compiled>) -> Result<String, ReportError> {
    match input {
        Input::Result(r) => result_html(r, problem),
        Input::Sweep(s) => sweep_html(s),
    }
}

/// Writes `text` to `path` atomically (the whole file or none), with an error naming
/// the file.
pub fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    atlas_core::files::write_atomically(path, text).map_err(|e| ReportError::Io {
        path: path.to_path_buf(),
        message: format!("cannot write: {e}"),
    })
}
