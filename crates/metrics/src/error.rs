//! Errors of the metrics crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading inputs or scoring.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A reference file does not follow the e2e-metrics multi-reference text format.
    #[error(
        "references, line {line}: {message} (format: all references of one segment on consecutive lines, \
         segments separated by exactly one blank line)"
    )]
    ReferenceFormat { line: usize, message: String },

    /// Predictions and reference segments must pair up one to one.
    #[error(
        "{predictions} predictions but {segments} reference segments: give one prediction per line, \
         in the order of the reference segments"
    )]
    CountMismatch { predictions: usize, segments: usize },

    /// A segment without any reference cannot be scored.
    #[error("reference segment {segment} (0-based) has no reference: every segment needs at least one")]
    EmptySegment { segment: usize },

    /// Nothing to score.
    #[error("no segments to score: the prediction and reference lists are empty")]
    Empty,

    /// Reading an input file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The METEOR jar was found and started but did not answer as METEOR 1.5 does.
    #[error("METEOR ({jar}): {message}")]
    Meteor { jar: PathBuf, message: String },
}
