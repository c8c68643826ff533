//! Privacy accounting for DP-SGD / DP-Adam: what (ε, δ) a history of subsampled Gaussian steps spends,
//! and which noise multiplier reaches a target ε.
//!
//! Three accountants, all pure Rust (no libtorch):
//! - [`rdp`]: Rényi DP of the sampled Gaussian (Mironov, Talwar & Zhang 2019; Wang, Balle &
//!   Kasiviswanathan 2019 for fixed-size batches) with the improved conversion to (ε, δ) of Balle et
//!   al. (2020). Sound, slightly loose.
//! - [`prv`]: privacy random variables composed numerically by FFT (Gopi, Lee & Wutschitz 2021), with
//!   rigorous lower and upper bounds; the paper (Li et al. 2022, Sec. 5) reports this accounting.
//! - [`gdp`]: the central-limit approximation μ = q·sqrt(T(e^{1/σ²} − 1)) of Bu et al. (2020). It can
//!   under-estimate ε and is only ever reported as an approximation.
//!
//! [`calibrate`] finds σ for a target ε by bisection, always returning the conservative end.

pub mod audit;
pub mod calibrate;
pub mod event;
pub mod gdp;
pub mod prv;
pub mod rdp;
pub mod selection;
pub mod special;

pub use calibrate::{calibrate_noise, AccountantKind, Accountants, Calibration};
pub use event::{steps_for_epochs, Event, History, Relation, Sampling};
pub use gdp::GdpAccountant;
pub use gdp::GDP_WARNING;
pub use prv::{PrvAccountant, PrvEpsilon};
pub use rdp::{RdpAccountant, RdpEpsilon};

/// Errors of the accountants. Every message names the argument and what is accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccountingError {
    /// An argument outside its valid range (or not finite).
    #[error("{name} = {value} is out of range: expected {range}")]
    Invalid {
        /// The argument's name as on the command line / in configs.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The accepted range.
        range: String,
    },
    /// The accountant cannot account this kind of sampling.
    #[error("the {accountant} accountant supports Poisson sampling only; use the rdp accountant for fixed-size (shuffle) batches")]
    UnsupportedSampling {
        /// Accountant name.
        accountant: &'static str,
    },
    /// Events with different neighbouring relations in one history.
    #[error("a history cannot mix Poisson (add/remove-one) and fixed-size (replace-one) sampling: their ε mean different things")]
    MixedRelations,
    /// No σ in the searched range reaches the target.
    #[error("{0}")]
    Unreachable(String),
    /// The numerical method cannot reach the accuracy the request needs.
    #[error("{0}")]
    Precision(String),
    /// A history that does not parse.
    #[error("invalid privacy history JSON: {0}")]
    Json(String),
}

impl AccountingError {
    pub(crate) fn invalid(name: &'static str, value: f64, range: &str) -> Self {
        Self::Invalid { name, value, range: range.to_string() }
    }
}

/// Checks δ ∈ (0, 1).
pub fn check_delta(delta: f64) -> Result<(), AccountingError> {
    if delta.is_finite() && delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(AccountingError::invalid("delta", delta, "(0, 1)"))
    }
}

/// The default δ for a dataset of n examples: n^−1.1 (below 1/n, as a meaningful δ must be).
pub fn default_delta(dataset_size: u64) -> f64 {
    (dataset_size.max(2) as f64).powf(-1.1)
}

/// A warning when δ ≥ 1/n: such a δ allows releasing one example outright.
pub fn delta_warning(delta: f64, dataset_size: u64) -> Option<String> {
    let n = dataset_size as f64;
    (dataset_size > 0 && delta >= 1.0 / n).then(|| {
        format!("delta = {delta:e} is ≥ 1/n = {:e} (n = {dataset_size}): this permits leaking whole examples; use delta < 1/n, e.g. n^-1.1 = {:e}", 1.0 / n, default_delta(dataset_size))
    })
}
