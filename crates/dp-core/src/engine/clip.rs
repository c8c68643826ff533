//! Per-example clipping of a batch's gradients from the tape (flat clipping, Li et al. 2022, Sec. 4):
//! ‖g_i‖ = sqrt(Σ over trainable parameters of their per-example squared norms),
//! c_i = min(1, C / (‖g_i‖ + γ)), and the clipped sum Σ_i c_i g_i.

use std::collections::HashMap;

use tch::{Kind, Tensor};

use super::layers::{gram, NormMethod};
use super::tape::Tape;
use super::EngineError;

/// How the clipped sum is formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// How the threshold applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// trainable variable of the model as (name, tensor); each must be owned by exactly one record.
    pub fn clip(
        &self,
        losses: &Tensor,
        tape: &Tape,
        trainable: &[(String, Tensor)],
    ) -> Result<ClipOutput, EngineError> {
        let records = tape.records();
        if records.is_empty() {
            return Err(EngineError::EmptyTape);
        }
        if trainable.is_empty() {
            return Err(EngineError::Invalid("no trainable variables were given to clip".into()));
        }
        // Each layer once; each trainable variable owned by at least one recorded layer. A variable owned
        // by several layers (tied weights) is handled exactly when every owner can write its per-example
        // gradient as Σ_t u_t v_tᵀ (the cross terms then have a Gram form); otherwise it is refused.
        let mut seen_layers = HashMap::new();
        let mut owners_of: HashMap<usize, Vec<(usize, usize)>> = HashMap::new(); // data_ptr → (record, param)
        for (r, rec) in records.iter().enumerate() {
            if seen_layers.insert(rec.layer().to_string(), r).is_some() {
                return Err(EngineError::RecordedTwice(rec.layer().to_string()));
            }
            for (p, (_, t)) in rec.parameters().iter().enumerate() {
                owners_of.entry(t.data_ptr() as usize).or_default().push((r, p));
            }
        }
        let mut slots: Vec<Vec<(usize, usize)>> = Vec::with_capacity(trainable.len());
        for (name, t) in trainable {
            let owners = owners_of.get(&(t.data_ptr() as usize)).cloned().unwrap_or_default();
            match owners.as_slice() {
                [] => return Err(EngineError::Uncovered(name.clone())),
                [_] => {}
                [(r1, p1), (r2, p2), ..] => {
                    if owners.len() > 2 || !records[*r1].factorable(*p1) || !records[*r2].factorable(*p2) {
                        return Err(EngineError::SharedParameter(
                            name.clone(),
                            records[*r1].layer().to_string(),
                            records[*r2].layer().to_string(),
                        ));
                    }
                    if self.style == ClipStyle::PerLayer {
                        return Err(EngineError::Invalid(format!(
                            "per-layer clipping cannot assign the tied variable `{name}` to one layer; use flat or automatic clipping"
                        )));
                    }
                }
            }
            slots.push(owners);
        }
        // Records that own a trainable parameter, and which of their parameters are trainable.
        let mut active: Vec<(usize, Vec<usize>)> = Vec::new();
        for (r, _) in records.iter().enumerate() {
            let params: Vec<usize> = slots.iter().flatten().filter(|(rr, _)| *rr == r).map(|(_, p)| *p).collect();
            if !params.is_empty() {
                active.push((r, params));
            }
        }
        let batch = losses.size().first().copied().unwrap_or(0);
        if losses.size() != [batch] {
            return Err(EngineError::LossShape {
                batch: records[active[0].0].output().size()[0],
                shape: losses.size(),
            });
        }
        // Every recorded output must be per example: a layer fed a broadcast input (position ids [1, T]
        // instead of [B, T]) would produce one gradient for the whole batch, summed over examples.
        if let Some((r, _)) = active.iter().find(|(r, _)| records[*r].output().size().first() != Some(&batch)) {
            return Err(EngineError::NotPerExample {
                layer: records[*r].layer().to_string(),
                batch,
                shape: records[*r].output().size(),
            });
        }
        let outputs: Vec<&Tensor> = active.iter().map(|(r, _)| records[*r].output()).collect();
        let keep_graph = self.mode == ClipMode::Ghost;
        let grad_outputs = Tensor::f_run_backward(&[losses.sum(None::<Kind>)], &outputs, keep_graph, false)?;
        let g_of = |r: usize| &grad_outputs[active.iter().position(|(a, _)| *a == r).expect("active record")];

        // Per-example squared norms: each record's own terms, then the cross terms of tied variables.
        let mut sq = losses.zeros_like().detach();
        let mut layer_sqs = Vec::with_capacity(active.len());
        let mut per_example: Vec<Option<Tensor>> = slots.iter().map(|_| None).collect();
        if self.mode == ClipMode::Naive {
            let mut by_record: HashMap<usize, Vec<Tensor>> = HashMap::new();
            for (r, _) in &active {
                by_record.insert(*r, records[*r].per_example_grads(g_of(*r)));
            }
            for (k, owners) in slots.iter().enumerate() {
                let g = owners
                    .iter()
                    .map(|(r, p)| by_record[r][*p].shallow_clone())
                    .reduce(|a, b| a + b)
                    .expect("≥ 1 owner");
                let s = super::layers::per_example_sq_sum(&g);
                if !bool::try_from(s.isfinite().all()).unwrap_or(false) {
                    return Err(EngineError::NonFiniteNorm(records[owners[0].0].layer().to_string()));
                }
                sq += s;
                per_example[k] = Some(g);
            }
        } else {
            for (r, params) in &active {
                let rec = &records[*r];
                let norms = rec.sq_norms(g_of(*r), self.norm_method);
                let layer_sq = params.iter().map(|&p| norms[p].shallow_clone()).fold(sq.zeros_like(), |a, b| a + b);
                if !bool::try_from(layer_sq.isfinite().all()).unwrap_or(false) {
                    return Err(EngineError::NonFiniteNorm(rec.layer().to_string()));
                }
                sq += &layer_sq;
                layer_sqs.push(layer_sq);
            }
            for owners in slots.iter().filter(|o| o.len() == 2) {
                let ((r1, p1), (r2, p2)) = (owners[0], owners[1]);
                let (u1, v1) = records[r1].factors(g_of(r1), p1).expect("factorable was checked");
                let (u2, v2) = records[r2].factors(g_of(r2), p2).expect("factorable was checked");
                let cross =
                    (gram(&u1, &u2) * gram(&v1, &v2)).sum_dim_intlist([1i64, 2].as_slice(), false, None::<Kind>);
                sq += cross * 2.0;
            }
        }
        // The tied weights' cross terms are added after the per-layer checks: check the total too.
        if !bool::try_from(sq.isfinite().all()).unwrap_or(false) {
            return Err(EngineError::NonFiniteNorm("the cross terms of tied weights".into()));
        }
        let norms = sq.clamp_min(0.0).sqrt();
        let c = self.max_grad_norm;
        // One factor vector [B] per active record.
        let per_record: Vec<Tensor> = match self.style {
            ClipStyle::Flat => {
                let f = (c / (&norms + self.stability)).clamp_max(1.0);
                active.iter().map(|_| f.shallow_clone()).collect()
            }
            ClipStyle::Automatic => {
                let f = c / (&norms + self.stability);
                active.iter().map(|_| f.shallow_clone()).collect()
            }
            ClipStyle::PerLayer if self.mode == ClipMode::Naive => {
                // Per-layer norms from the instantiated gradients (no ties here: refused above).
                let c_layer = c / (active.len() as f64).sqrt();
                active
                    .iter()
                    .map(|(r, _)| {
                        let s = slots
                            .iter()
                            .zip(&per_example)
                            .filter(|(o, _)| o[0].0 == *r)
                            .map(|(_, g)| super::layers::per_example_sq_sum(g.as_ref().expect("naive")))
                            .fold(sq.zeros_like(), |a, b| a + b);
                        (c_layer / (s.clamp_min(0.0).sqrt() + self.stability)).clamp_max(1.0)
                    })
                    .collect()
            }
            ClipStyle::PerLayer => {
                let c_layer = c / (active.len() as f64).sqrt();
                layer_sqs
                    .iter()
                    .map(|s| (c_layer / (s.clamp_min(0.0).sqrt() + self.stability)).clamp_max(1.0))
                    .collect()
            }
        };
        let factors = match self.style {
            ClipStyle::PerLayer => Tensor::stack(&per_record, 0),
            _ => per_record[0].shallow_clone(),
        };
        let f_of = |r: usize| &per_record[active.iter().position(|(a, _)| *a == r).expect("active record")];

        let grads: Vec<Tensor> = match self.mode {
            ClipMode::Bk => {
                let mut weighted: HashMap<usize, Vec<Tensor>> = HashMap::new();
                for (r, _) in &active {
                    weighted.insert(*r, records[*r].weighted_grads(g_of(*r), f_of(*r)));
                }
                slots
                    .iter()
                    .map(|owners| {
                        owners
                            .iter()
                            .map(|(r, p)| weighted[r][*p].shallow_clone())
                            .reduce(|a, b| a + b)
                            .expect("≥ 1 owner")
                    })
                    .collect()
            }
            ClipMode::Ghost => {
                let weighted_loss = (losses * factors.detach()).sum(None::<Kind>);
                let params: Vec<&Tensor> = trainable.iter().map(|(_, t)| t).collect();
                Tensor::f_run_backward(&[weighted_loss], &params, false, false)?
            }
            ClipMode::Naive => slots
                .iter()
                .zip(&per_example)
                .map(|(owners, g)| {
                    let g = g.as_ref().expect("naive");
                    let shape: Vec<i64> = g.size()[1..].to_vec();
                    Tensor::einsum("bn,b->n", &[&g.reshape([batch, -1]), f_of(owners[0].0)], None::<i64>).reshape(shape)
                })
                .collect(),
        };
        let grads = trainable.iter().map(|(n, _)| n.clone()).zip(grads.into_iter().map(|g| g.detach())).collect();
        Ok(ClipOutput { grads, norms, factors })
    }
}
