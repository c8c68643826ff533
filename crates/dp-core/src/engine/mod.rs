//! The DP engine: per-example clipping without per-example gradients (Li et al. 2022, Sec. 4 "ghost
//! clipping"; Bu et al. 2023 "book-keeping").
//!
//! A model's trainable layers are DP-aware ([`layers`]): in a training forward pass each records on an
//! explicit [`Tape`] its input (detached) and its output (a node of the autograd graph). The [`Clipper`]
//! then takes the per-example losses and the tape and computes, per example i, the norm of the gradient
//! of L_i over all trainable parameters and the clipped sum Σ_i c_i ∇L_i with
//! c_i = min(1, C / (‖∇L_i‖ + γ)), in one of three ways ([`ClipMode`]):
//! - `bk` (book-keeping, default): one backward pass to the recorded outputs; norms and the weighted
//!   gradient both come from the recorded (input, output-gradient) pairs;
//! - `ghost`: the paper's two passes: norms from the first, then a backward pass on Σ_i c_i L_i;
//! - `naive`: per-example gradients instantiated for every parameter (the oracle and memory baseline).
//!
//! Contract for models: every use of a trainable tensor goes through its DP layer's `forward`. The engine
//! checks that each trainable variable is owned by a recorded layer, but it cannot see a raw
//! `x.matmul(&w)` elsewhere in the graph; such a use would be missing from the per-example norms in every
//! mode. `dpft clip-check` (models issue) compares a model against the per-example loop to catch this.

pub mod clip;
pub mod keys;
pub mod layers;
pub mod noise;
pub mod normal;
pub mod optimizer;
pub mod sampler;
pub mod step;
pub mod tape;

pub use clip::{ClipMode, ClipOutput, ClipStyle, Clipper};
pub use keys::Key;
pub use layers::{check_ownership, DpLayer, Embedding, Factor, LayerNorm, Linear, NormMethod, RmsNorm, WeightLayout};
pub use noise::{GaussianNoise, NoiseSeed};
pub use optimizer::{DpOptimizer, LrSchedule, OptimizerKind};
pub use sampler::BatchSampler;
pub use step::{release, Budget, ClippedSum, StepDiagnostics};
pub use tape::{DpRecord, Tape};

/// Errors of the engine; each names the layer or variable at fault and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The loss handed to the clipper is not one value per example.
    #[error("the loss must hold one value per example, shape [{batch}], but has shape {shape:?}; return per-example losses (reduction 'none', then a mean over each example's tokens)")]
    LossShape {
        /// Batch size seen by the recorded layers.
        batch: i64,
        /// Shape of the loss given.
        shape: Vec<i64>,
    },
    /// A recorded layer output that is not per example.
    #[error("layer `{layer}` recorded an output of shape {shape:?}, not one row per example (batch {batch}): its per-example gradients cannot be separated; give it per-example inputs (e.g. position ids of shape [B, T], not [1, T])")]
    NotPerExample {
        /// The layer.
        layer: String,
        /// Examples in the loss.
        batch: i64,
        /// Its output's shape.
        shape: Vec<i64>,
    },
    /// A layer was recorded more than once in one forward pass (its parameters are shared).
    #[error("layer `{0}` recorded twice: its parameters are used twice in the forward pass (shared or tied); untie them (e.g. make lm_head a copy of wte) or declare the tie")]
    RecordedTwice(String),
    /// A trainable variable that no recorded layer owns: its gradient would be neither clipped nor noised.
    #[error("trainable variable `{0}` belongs to no DP-aware layer recorded in the forward pass; wrap it in a DP layer or freeze it (set_requires_grad(false))")]
    Uncovered(String),
    /// A parameter owned by two layers whose cross term the engine cannot compute.
    #[error("variable `{0}` is shared by layers `{1}` and `{2}`, whose per-example cross term cannot be computed exactly (only linear and embedding layers, two at a time, can share); untie it (e.g. make lm_head a copy of wte)")]
    SharedParameter(String, String, String),
    /// Non-finite per-example norms.
    #[error("per-example gradient norms of layer `{0}` are NaN or infinite: check the loss and inputs of that layer (learning rate too high, log of zero, …)")]
    NonFiniteNorm(String),
    /// Nothing was recorded.
    #[error("the tape holds no records: run the forward pass with Tape::on() before clipping")]
    EmptyTape,
    /// The next step would spend more than the budget.
    #[error("step {step} would bring epsilon to {epsilon:.4} ({accountant}), above the target {target}: training stops here, before the step is released")]
    BudgetExceeded {
        /// The step that was refused.
        step: u64,
        /// ε after that step.
        epsilon: f64,
        /// The target.
        target: f64,
        /// The accountant that decided.
        accountant: &'static str,
    },
    /// Clipping settings out of range.
    #[error("{0}")]
    Invalid(String),
    /// libtorch refused a backward pass (e.g. a recorded output does not reach the loss).
    #[error("backward pass failed: {0}")]
    Backward(#[from] tch::TchError),
}
