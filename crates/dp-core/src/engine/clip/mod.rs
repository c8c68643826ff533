//! Per-example clipping of a batch's gradients from the tape (flat clipping, Li et al. 2022, Sec. 4):
//! ‖g_i‖ = sqrt(Σ over trainable parameters of their per-example squared norms),
//! c_i = min(1, C / (‖g_i‖ + γ)), and the clipped sum Σ_i c_i g_i.

mod factors;
mod norms;
mod plan;
mod sum;

use tch::{Kind, Tensor};

use self::factors::ClipFactors;
use self::norms::SquaredNorms;
use self::plan::ClipPlan;
use self::sum::clipped_sum;
use super::layers::{accumulation_kind, NormMethod};
use super::tape::Tape;
use super::EngineError;

/// How the clipped sum is formed (run configs spell it `bk`, `ghost`, `naive`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMode {
    /// Book-keeping (Bu et al. 2023): one backward pass to the recorded outputs; weighted gradients from
    /// the recorded inputs and output gradients.
    #[default]
    Bk,
    /// Ghost clipping as in the paper: norms from a first backward pass, then a second backward pass on
    /// Σ_i c_i L_i.
    Ghost,
    /// Per-example gradients instantiated for every parameter (oracle; memory baseline).
    Naive,
}

/// How the threshold applies (run configs spell it `flat`, `per_layer`, `automatic`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipStyle {
    /// One threshold C over all trainable parameters: c_i = min(1, C/(‖g_i‖ + γ)).
    #[default]
    Flat,
    /// Each recorded layer is a group with threshold C/sqrt(L) (L = layers with trainable parameters), so
    /// that Σ_g C_g² = C²: the clipped sum still has sensitivity C and takes the same noise N(0, σ²C²).
    /// Not available with the two-pass `ghost` mode (its second pass has one factor per example).
    PerLayer,
    /// Automatic clipping (Bu et al. 2023, "AUTO-S"): c_i = C/(‖g_i‖ + γ), i.e. their normalisation
    /// g_i/(‖g_i‖ + γ) scaled by C (they fold C into the learning rate), so ‖c_i g_i‖ < C and the noise is
    /// the same N(0, σ²C²). Needs γ > 0.
    Automatic,
}

/// Per-example clipping.
#[derive(Clone, Copy, Debug)]
pub struct Clipper {
    /// C, the clipping norm (> 0; `f64::INFINITY` disables clipping but keeps the machinery).
    pub max_grad_norm: f64,
    /// γ, added to the norm before dividing (default 1e-6).
    pub stability: f64,
    /// How the clipped sum is formed.
    pub mode: ClipMode,
    /// How per-example norms are computed.
    pub norm_method: NormMethod,
    /// Flat, per-layer or automatic.
    pub style: ClipStyle,
}

/// The result of clipping one batch.
#[derive(Debug)]
pub struct ClipOutput {
    /// Σ_i c_i ∇L_i per trainable parameter, in the order the parameters were given.
    pub grads: Vec<(String, Tensor)>,
    /// ‖∇L_i‖ over all trainable parameters, `[B]`.
    pub norms: Tensor,
    /// c_i, `[B]` (flat, automatic), or one row per recorded layer with trainable parameters, in tape
    /// order, `[L, B]` (per-layer).
    pub factors: Tensor,
}

impl Clipper {
    /// A clipper with C and the default stability constant 1e-6, book-keeping and automatic norms.
    pub fn new(max_grad_norm: f64) -> Result<Self, EngineError> {
        Self {
            max_grad_norm,
            stability: 1e-6,
            mode: ClipMode::Bk,
            norm_method: NormMethod::Auto,
            style: ClipStyle::Flat,
        }
        .checked()
    }

    /// Checks C > 0 (or +∞) and γ ≥ 0, finite.
    pub fn checked(self) -> Result<Self, EngineError> {
        if self.max_grad_norm.is_nan() || self.max_grad_norm <= 0.0 {
            return Err(EngineError::Invalid(format!(
                "max_grad_norm = {} is out of range: expected > 0 (or inf to disable clipping)",
                self.max_grad_norm
            )));
        }
        if !(self.stability.is_finite() && self.stability >= 0.0) {
            return Err(EngineError::Invalid(format!(
                "clipping stability constant = {} is out of range: expected a finite value ≥ 0",
                self.stability
            )));
        }
        if self.style == ClipStyle::PerLayer && self.mode == ClipMode::Ghost {
            return Err(EngineError::Invalid(
                "per-layer clipping needs a factor per layer, which the two-pass ghost mode cannot apply; use bk or naive"
                    .into(),
            ));
        }
        if self.style == ClipStyle::Automatic && !(self.stability > 0.0 && self.max_grad_norm.is_finite()) {
            return Err(EngineError::Invalid(
                "automatic clipping needs a stability constant > 0 and a finite max_grad_norm".into(),
            ));
        }
        Ok(self)
    }

    /// Clips the gradient of the per-example `losses` `[B]` recorded on `tape`. `trainable` lists every
    /// trainable variable of the model as (name, tensor); each must be owned by exactly one record, or by
    /// two whose cross term is exact (tied weights).
    ///
    /// Four phases: the [plan](plan::ClipPlan) (ownership and refusals), one backward pass to the
    /// recorded outputs, the [squared norms](norms::SquaredNorms) by mode, the
    /// [factors](factors::ClipFactors) by style, and the [clipped sum](sum::clipped_sum) by mode.
    pub fn clip(
        &self,
        losses: &Tensor,
        tape: &Tape,
        trainable: &[(String, Tensor)],
    ) -> Result<ClipOutput, EngineError> {
        let plan = ClipPlan::new(tape.records(), trainable, losses, self.style)?;
        let low_precision = trainable.iter().any(|(_, t)| accumulation_kind(t.kind()) != t.kind());
        if low_precision && self.mode == ClipMode::Ghost {
            return Err(EngineError::Invalid(
                "ghost clipping's second backward pass sums Σ_i c_i ∇L_i in the parameters' dtype (bf16/f16 here), which can exceed the clipping bound; use clipping_mode bk or naive, which sum in f32"
                    .into(),
            ));
        }
        // Ghost differentiates Σ_i c_i L_i again afterwards: keep the graph.
        let keep_graph = self.mode == ClipMode::Ghost;
        let grad_outputs = Tensor::f_run_backward(&[losses.sum(None::<Kind>)], &plan.outputs(), keep_graph, false)?;
        // Norms, factors and sums in f32 (f64 for f64 models) whatever the parameters' dtype.
        let grad_outputs: Vec<Tensor> =
            grad_outputs.into_iter().map(|g| g.to_kind(accumulation_kind(g.kind()))).collect();
        let sq = SquaredNorms::compute(&plan, &grad_outputs, self.mode, self.norm_method)?;
        let factors = ClipFactors::compute(self.style, self.max_grad_norm, self.stability, &sq);
        let sums = clipped_sum(self.mode, &plan, grad_outputs, &sq, &factors, losses, trainable)?;
        let grads = trainable.iter().map(|(n, _)| n.clone()).zip(sums).collect();
        Ok(ClipOutput { grads, norms: sq.norms(), factors: factors.reported })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Small layers shared by the phases' unit tests (f64, CPU).
    use tch::{Device, Kind, Tensor};

    use super::plan::ClipPlan;
    use crate::engine::{Embedding, Linear, WeightLayout};

    fn param(shape: &[i64]) -> Tensor {
        (Tensor::randn(shape, (Kind::Double, Device::Cpu)) * 0.3).set_requires_grad(true)
    }

    /// A linear layer 4 → 4 with bias, torch layout.
    pub fn linear(name: &str) -> Linear {
        Linear { name: name.into(), weight: param(&[4, 4]), bias: Some(param(&[4])), layout: WeightLayout::OutIn }
    }

    /// An embedding table of 5 ids × 4.
    pub fn embedding(name: &str) -> Embedding {
        Embedding { name: name.into(), weight: param(&[5, 4]), padding_idx: None }
    }

    /// Σ over all but the first dim, `[B]`.
    pub fn sum_per_example(y: &Tensor) -> Tensor {
        let b = y.size()[0];
        y.reshape([b, -1]).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>)
    }

    /// Random inputs `[B, 2, 4]` (f64).
    pub fn inputs(batch: i64) -> Tensor {
        Tensor::randn([batch, 2, 4], (Kind::Double, Device::Cpu))
    }

    /// `layer` applied to `x` on a recording tape, loss_i = Σ of example i's outputs: (tape, losses `[B]`).
    pub fn recorded(layer: &Linear, x: &Tensor) -> (crate::engine::Tape, Tensor) {
        let mut tape = crate::engine::Tape::on();
        let losses = sum_per_example(&layer.forward(x, &mut tape));
        (tape, losses)
    }

    /// bf16 parameters (on the CPU here; the same code runs on CUDA): norms and clipped sums come out in
    /// f32 and match the exact norm to f32 round-off, so c_i g_i stays within C; ghost mode is refused.
    #[test]
    fn bf16_parameters_are_clipped_in_f32_within_the_bound() {
        use crate::engine::{ClipMode, ClipStyle, Clipper, Tape};
        let bf16 = |t: Tensor| t.to_kind(Kind::BFloat16).detach().set_requires_grad(true);
        let layer = Linear {
            name: "lm_head".into(),
            weight: bf16(param(&[4, 4])),
            bias: Some(bf16(param(&[4]))),
            layout: WeightLayout::OutIn,
        };
        let x = (inputs(3) * 10.0).to_kind(Kind::BFloat16);
        let trainable = crate::engine::DpLayer::parameters(&layer);
        // loss_i = Σ_t Σ_d y_{i,t,d}: ∇W_i = 1 (Σ_t x_t)ᵀ and ∇b_i = T·1, exactly, from the bf16 inputs.
        let sums = x.to_kind(Kind::Double).sum_dim_intlist([1i64].as_slice(), false, None::<Kind>);
        let exact = (sum_per_example(&sums.square()) * 4.0 + 16.0).sqrt();
        let c = 0.01;
        for mode in [ClipMode::Bk, ClipMode::Naive] {
            let mut tape = Tape::on();
            let losses = sum_per_example(&layer.forward(&x, &mut tape)).to_kind(Kind::Float);
            let clipper = Clipper { mode, style: ClipStyle::Flat, ..Clipper::new(c).unwrap() };
            let out = clipper.clip(&losses, &tape, &trainable).unwrap();
            assert_eq!(out.norms.kind(), Kind::Float, "{mode:?}");
            assert!(out.grads.iter().all(|(_, g)| g.kind() == Kind::Float), "{mode:?}");
            let rel = f64::try_from(((out.norms.to_kind(Kind::Double) - &exact) / &exact).abs().max()).unwrap();
            assert!(rel < 1e-6, "{mode:?}: norms off by {rel:e} relative");
            let clipped = f64::try_from((out.factors.to_kind(Kind::Double) * &exact).max()).unwrap();
            assert!(clipped <= c * (1.0 + 1e-6), "{mode:?}: ‖c_i g_i‖ = {clipped} > C = {c}");
        }
        let mut tape = Tape::on();
        let losses = sum_per_example(&layer.forward(&x, &mut tape)).to_kind(Kind::Float);
        let ghost = Clipper { mode: ClipMode::Ghost, ..Clipper::new(c).unwrap() };
        let err = ghost.clip(&losses, &tape, &trainable).unwrap_err().to_string();
        assert!(err.contains("use clipping_mode bk or naive"), "{err}");
    }

    /// The backward pass the clipper runs: ∂(Σ_i L_i)/∂(each active output), graph kept.
    pub fn grads_to_outputs(plan: &ClipPlan<'_>, losses: &Tensor) -> Vec<Tensor> {
        Tensor::run_backward(&[losses.sum(Kind::Double)], &plan.outputs(), true, false)
    }
}
