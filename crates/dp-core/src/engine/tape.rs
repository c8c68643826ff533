//! The recording tape: what the DP-aware layers leave behind in a training forward pass.
//!
//! The tape is passed explicitly to `forward` (no global or per-layer hidden state): `Tape::on()` for a
//! private training step, `Tape::off()` for evaluation and non-private training, where layers record
//! nothing.

use tch::Tensor;

use super::layers::{Factor, NormMethod};

/// What one recorded layer call can compute from its recorded input and the gradient at its output G.
///
/// Adding a layer type means implementing this trait for its record (and adding it to the tests' table).
pub trait DpRecord {
    /// The layer's name (the Hugging Face module path, e.g. `h.0.attn.c_attn`).
    fn layer(&self) -> &str;
    /// The layer's parameters as (full name, tensor), in a fixed order.
    fn parameters(&self) -> Vec<(String, Tensor)>;
    /// Where the gradient is taken (a node of the autograd graph): the layer's output or, for the engine's
    /// layers, a stand-in of its shape whose gradient is the output's (`layers::probed`).
    fn output(&self) -> &Tensor;
    /// Per-example squared gradient norms, one `[B]` tensor per parameter.
    fn sq_norms(&self, grad_output: &Tensor, method: NormMethod) -> Vec<Tensor>;
    /// Σ_b c_b ∇_b for each parameter (c: `[B]`), shaped like the parameter: fresh tensors, not views of
    /// anything else, since the engine adds a tied variable's second part into the first in place.
    fn weighted_grads(&self, grad_output: &Tensor, c: &Tensor) -> Vec<Tensor>;
    /// Per-example gradients `[B, …parameter shape]` for each parameter (naive mode).
    fn per_example_grads(&self, grad_output: &Tensor) -> Vec<Tensor>;
    /// Whether parameter `param`'s per-example gradient factors as Σ_t u_t v_tᵀ ([`factors`](Self::factors)).
    fn factorable(&self, _param: usize) -> bool {
        false
    }
    /// (u, v) with ∇_i = Σ_t u_t v_tᵀ for parameter `param` viewed as a matrix `[rows, cols]` (a vector as
    /// `[n, 1]`), used for the exact cross term of a weight shared by two layers.
    fn factors(&self, _grad_output: &Tensor, _param: usize) -> Option<(Factor, Factor)> {
        None
    }
}

/// The records of one forward pass.
pub struct Tape {
    enabled: bool,
    records: Vec<Box<dyn DpRecord>>,
}

impl Tape {
    /// A tape that records (private training).
    pub fn on() -> Self {
        Self { enabled: true, records: Vec::new() }
    }

    /// A tape that records nothing (evaluation, non-private training).
    pub fn off() -> Self {
        Self { enabled: false, records: Vec::new() }
    }

    /// Whether layers should record.
    pub fn is_on(&self) -> bool {
        self.enabled
    }

    /// Adds a record (ignored when the tape is off).
    pub fn record(&mut self, record: Box<dyn DpRecord>) {
        if self.enabled {
            self.records.push(record);
        }
    }

    /// The records, in forward order.
    pub fn records(&self) -> &[Box<dyn DpRecord>] {
        &self.records
    }
}
