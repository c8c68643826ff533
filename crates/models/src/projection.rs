//! A linear projection of a model and what a fine-tuning method attaches to it: nothing (full, top-k,
//! retrain), a LoRA update (Hu et al. 2021: y = W x + (α/r) B A x), or RGP's gradient carriers (Yu et al.
//! 2021). The model families build their blocks from projections, so that a method is applied to any
//! linear by name and `forward` needs no method-specific arguments.

use dp_core::engine::{DpLayer, Linear, Tape};
use tch::Tensor;

use crate::lora::Lora;
use crate::rgp::Rgp;
use crate::ModelError;

/// What a method attached to a projection.
#[derive(Debug, Default)]
pub enum Attached {
    /// Nothing: the layer alone.
    #[default]
    None,
    /// A LoRA update.
    Lora(Lora),
    /// RGP's carriers.
    Rgp(Rgp),
}

/// A linear layer with what a method attached to it.
#[derive(Debug)]
pub struct Projection {
    /// The layer (its Hugging Face name, weight and bias).
    pub linear: Linear,
    /// The method's part.
    pub attached: Attached,
}

impl Projection {
    /// A plain projection.
    pub fn new(linear: Linear) -> Self {
        Self { linear, attached: Attached::None }
    }

    /// The module path.
    pub fn name(&self) -> &str {
        &self.linear.name
    }

    /// (input, output) sizes.
    pub fn sizes(&self) -> (i64, i64) {
        let s = self.linear.weight.size();
        match self.linear.layout {
            dp_core::engine::WeightLayout::OutIn => (s[1], s[0]),
            dp_core::engine::WeightLayout::InOut => (s[0], s[1]),
        }
    }

    /// Attaches LoRA factors of rank `r` (B = 0: the output is unchanged at the start).
    pub fn add_lora(&mut self, r: i64, alpha: f64) -> Result<(), ModelError> {
        self.refuse_second()?;
        let (d_in, d_out) = self.sizes();
        self.attached = Attached::Lora(Lora::new(&self.linear.name, d_in, d_out, r, alpha, &self.linear.weight)?);
        Ok(())
    }

    /// Attaches RGP carriers of rank `r`.
    pub fn add_rgp(&mut self, r: i64) -> Result<(), ModelError> {
        self.refuse_second()?;
        self.attached = Attached::Rgp(Rgp::new(&self.linear, r)?);
        Ok(())
    }

    fn refuse_second(&self) -> Result<(), ModelError> {
        match self.attached {
            Attached::None => Ok(()),
            _ => Err(ModelError::Invalid(format!("{} already has a LoRA update or RGP carriers", self.linear.name))),
        }
    }

    /// The output, recording every layer involved on the tape.
    pub fn forward(&self, x: &Tensor, tape: &mut Tape) -> Tensor {
        match &self.attached {
            Attached::None => self.linear.forward(x, tape),
            // Not `+=`: the layer's output is its record's, which the engine differentiates at.
            Attached::Lora(l) => {
                let y = self.linear.forward(x, tape);
                &y + l.forward(x, tape)
            }
            Attached::Rgp(r) => r.forward(&self.linear, x, tape),
        }
    }

    /// The LoRA factors, if attached.
    pub fn lora(&self) -> Option<&Lora> {
        match &self.attached {
            Attached::Lora(l) => Some(l),
            _ => None,
        }
    }

    /// The RGP carriers, if attached.
    pub fn rgp(&self) -> Option<&Rgp> {
        match &self.attached {
            Attached::Rgp(r) => Some(r),
            _ => None,
        }
    }

    /// Every DP-aware layer of the projection: the linear, then the attached ones.
    pub fn layers(&self) -> Vec<&dyn DpLayer> {
        let mut out: Vec<&dyn DpLayer> = vec![&self.linear];
        match &self.attached {
            Attached::None => {}
            Attached::Lora(l) => out.extend([&l.lora_a as &dyn DpLayer, &l.lora_b]),
            Attached::Rgp(r) => out.extend(r.layers()),
        }
        out
    }
}

/// The tensors the optimizer updates for a model built of `projections`: `trainable()` unless RGP is
/// attached, then the weight matrices the carriers stand for.
pub fn updated_parameters<'a>(
    projections: impl Iterator<Item = &'a Projection> + Clone,
    trainable: impl FnOnce() -> Vec<(String, Tensor)>,
) -> Vec<(String, Tensor)> {
    if projections.clone().all(|p| p.rgp().is_none()) {
        return trainable();
    }
    projections
        .filter(|p| p.rgp().is_some())
        .map(|p| (format!("{}.weight", p.linear.name), p.linear.weight.shallow_clone()))
        .collect()
}

/// RGP's reconstruction ∂W = ∂L R + L ∂R − L Lᵀ ∂L R of each carried weight matrix from the carriers'
/// released gradients `grads` (the identity without RGP).
pub fn reconstruct_gradients<'a>(
    projections: impl Iterator<Item = &'a Projection> + Clone,
    grads: Vec<(String, Tensor)>,
) -> Result<Vec<(String, Tensor)>, ModelError> {
    if projections.clone().all(|p| p.rgp().is_none()) {
        return Ok(grads);
    }
    let find = |layer: &Linear| -> Result<&Tensor, ModelError> {
        let name = format!("{}.weight", layer.name);
        grads
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| g)
            .ok_or_else(|| ModelError::Invalid(format!("no gradient for the RGP carrier `{name}`")))
    };
    projections
        .filter_map(|p| p.rgp().map(|r| (p, r)))
        .map(|(p, r)| Ok((format!("{}.weight", p.linear.name), r.reconstruct(find(&r.left)?, find(&r.right)?))))
        .collect()
}
