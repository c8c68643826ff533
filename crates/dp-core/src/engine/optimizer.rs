//! Optimizers over the privatised gradient: DP-SGD (with momentum), DP-Adam and DP-AdamW (Li et al.
//! 2022 use DP-Adam, β = (0.9, 0.999), ε = 1e-8). They only post-process the released noisy gradient,
//! so nothing here (weight decay included) enters the privacy computation.
//!
//! Learning rate at step t (1-based): warm-up lr·t/w for t ≤ w, then constant or linear decay to 0 at
//! the last step; a parameter may carry a fixed factor on it ([`DpOptimizer::with_lr_factors`], e.g. a
//! fresh classification head trained at a larger rate than the pretrained body).

use std::collections::HashMap;

use tch::Tensor;

use super::EngineError;

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    /// SGD with heavy-ball momentum μ (0 for plain SGD): b ← μb + g, p ← p − lr·b.
    Sgd {
        /// μ ∈ [0, 1).
        momentum: f64,
    },
    /// Adam (Kingma & Ba 2015) with bias correction.
    Adam,
    /// AdamW (Loshchilov & Hutter 2019): decoupled weight decay p ← p − lr·λ·p before the Adam step.
    AdamW {
        /// λ ≥ 0.
        weight_decay: f64,
    },
}

/// Learning-rate schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrSchedule {
    /// lr throughout.
    Constant,
    /// Linear decay from lr after warm-up to 0 at `total_steps`.
    Linear {
        /// Steps of the whole run.
        total_steps: u64,
    },
}

/// An optimizer with explicit state (moments per parameter, step count).
#[derive(Debug)]
pub struct DpOptimizer {
    kind: OptimizerKind,
    lr: f64,
    schedule: LrSchedule,
    warmup_steps: u64,
    betas: (f64, f64),
    eps: f64,
    /// Learning-rate factors by parameter name (absent: 1).
    lr_factors: HashMap<String, f64>,
    step: u64,
    state: Vec<(Tensor, Tensor)>,
}

impl DpOptimizer {
    /// An optimizer; Adam's β and ε are the paper's (0.9, 0.999) and 1e-8.
    pub fn new(kind: OptimizerKind, lr: f64, schedule: LrSchedule, warmup_steps: u64) -> Result<Self, EngineError> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(EngineError::Invalid(format!("learning_rate = {lr} is out of range: expected > 0")));
        }
        match kind {
            OptimizerKind::Sgd { momentum } if !(0.0..1.0).contains(&momentum) => {
                return Err(EngineError::Invalid(format!("momentum = {momentum} is out of range: expected [0, 1)")))
            }
            OptimizerKind::AdamW { weight_decay } if !(weight_decay.is_finite() && weight_decay >= 0.0) => {
                return Err(EngineError::Invalid(format!(
                    "weight_decay = {weight_decay} is out of range: expected ≥ 0"
                )))
            }
            _ => {}
        }
        Ok(Self {
            kind,
            lr,
            schedule,
            warmup_steps,
            betas: (0.9, 0.999),
            eps: 1e-8,
            lr_factors: HashMap::new(),
            step: 0,
            state: Vec::new(),
        })
    }

    /// The same optimizer with the parameters named in `factors` updated at `factor`·lr(t) (schedule and
    /// warm-up included); the others at lr(t). Post-processing of the released gradient, as the rest of the
    /// update. Refuses a factor that is not finite and > 0.
    pub fn with_lr_factors(mut self, factors: HashMap<String, f64>) -> Result<Self, EngineError> {
        if let Some((name, f)) = factors.iter().find(|(_, f)| !(f.is_finite() && **f > 0.0)) {
            return Err(EngineError::Invalid(format!(
                "learning-rate factor {f} for `{name}` is out of range: expected a finite value > 0"
            )));
        }
        self.lr_factors = factors;
        Ok(self)
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.step
    }

    /// The learning rate used at 1-based step `t`.
    pub fn lr_at(&self, t: u64) -> f64 {
        if t <= self.warmup_steps {
            return self.lr * t as f64 / self.warmup_steps as f64;
        }
        match self.schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Linear { total_steps } => {
                let span = total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                self.lr * (1.0 - (t - self.warmup_steps) as f64 / span).max(0.0)
            }
        }
    }

    /// The state to checkpoint: the step count and the moments, named `{param}.m` / `{param}.v` (empty
    /// before the first step). The tensors share storage with the live moments, which the next
    /// [`step`](Self::step) updates in place: write them out before stepping again.
    pub fn state(&self, params: &[(String, Tensor)]) -> (u64, Vec<(String, Tensor)>) {
        let mut out = Vec::with_capacity(2 * self.state.len());
        for ((name, _), (m, v)) in params.iter().zip(&self.state) {
            out.push((format!("{name}.m"), m.shallow_clone()));
            out.push((format!("{name}.v"), v.shallow_clone()));
        }
        (self.step, out)
    }

    /// Restores a state taken by [`state`](Self::state) for the same parameters.
    pub fn load_state(
        &mut self,
        params: &[(String, Tensor)],
        step: u64,
        tensors: &[(String, Tensor)],
    ) -> Result<(), EngineError> {
        let find = |key: String, like: &Tensor| -> Result<Tensor, EngineError> {
            let t = tensors
                .iter()
                .find(|(n, _)| *n == key)
                .map(|(_, t)| t)
                .ok_or_else(|| EngineError::Invalid(format!("optimizer state lacks `{key}`")))?;
            if t.size() != like.size() {
                return Err(EngineError::Invalid(format!(
                    "optimizer state `{key}` has shape {:?}, expected {:?}",
                    t.size(),
                    like.size()
                )));
            }
            // A copy: the moments are updated in place, and `tensors` may be another optimizer's live state.
            Ok(t.to_device(like.device()).to_kind(like.kind()).detach().copy())
        };
        if step > 0 && tensors.is_empty() {
            return Err(EngineError::Invalid(format!(
                "optimizer state of step {step} has no moments: the checkpoint is incomplete"
            )));
        }
        self.state = if step == 0 {
            Vec::new()
        } else {
            params
                .iter()
                .map(|(n, p)| Ok::<_, EngineError>((find(format!("{n}.m"), p)?, find(format!("{n}.v"), p)?)))
                .collect::<Result<_, _>>()?
        };
        self.step = step;
        Ok(())
    }

    /// Applies one update to `params` with `grads` (same order, same shapes), in place.
    pub fn step(&mut self, params: &[(String, Tensor)], grads: &[(String, Tensor)]) -> Result<(), EngineError> {
        if params.len() != grads.len() || params.iter().zip(grads).any(|((a, _), (b, _))| a != b) {
            return Err(EngineError::Invalid("optimizer: gradients do not match the parameters (names/order)".into()));
        }
        if self.state.is_empty() {
            self.state = params.iter().map(|(_, p)| (p.zeros_like().detach(), p.zeros_like().detach())).collect();
        }
        self.step += 1;
        let t = self.step;
        let base_lr = self.lr_at(t);
        let (b1, b2) = self.betas;
        tch::no_grad(|| {
            for (((name, p), (_, g)), (m, v)) in params.iter().zip(grads).zip(self.state.iter_mut()) {
                let lr = base_lr * self.lr_factors.get(name).copied().unwrap_or(1.0);
                let mut p = p.shallow_clone();
                match self.kind {
                    OptimizerKind::Sgd { momentum } => {
                        *m = &*m * momentum + g;
                        let _ = p.g_sub_(&(&*m * lr));
                    }
                    OptimizerKind::Adam | OptimizerKind::AdamW { .. } => {
                        // In place, two temporaries per tensor (g² and the denominator), as torch.optim.Adam:
                        // m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², p ← p − (lr/(1−β₁ᵗ))·m / (√v/√(1−β₂ᵗ) + ε).
                        if let OptimizerKind::AdamW { weight_decay } = self.kind {
                            let _ = p.g_mul_scalar_(1.0 - lr * weight_decay);
                        }
                        let _ = m.lerp_(g, 1.0 - b1);
                        let _ = v.lerp_(&g.square(), 1.0 - b2);
                        let step_size = lr / (1.0 - b1.powi(t as i32));
                        if step_size == 0.0 {
                            continue; // lr 0 (a linear schedule's last step): the moments move, the weights do not
                        }
                        let mut denom = v.sqrt();
                        let _ = denom.g_div_scalar_((1.0 - b2.powi(t as i32)).sqrt());
                        let _ = denom.g_add_scalar_(self.eps);
                        // addcdiv_ has no scale argument in tch: fold −step_size into the denominator.
                        let _ = denom.g_mul_scalar_(-1.0 / step_size);
                        let _ = p.addcdiv_(m, &denom);
                    }
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, OptimizerConfig};
    use tch::{Device, Kind};

    #[test]
    fn state_round_trip_continues_identically() {
        let p0 = Tensor::from_slice(&[0.5f64, -1.0, 2.0]);
        let grads = |s: i64| vec![("w".to_string(), Tensor::from_slice(&[0.3f64, -0.2 * s as f64, 1.0 + s as f64]))];
        let (a, b) = (p0.copy(), p0.copy());
        let mut first = DpOptimizer::new(OptimizerKind::Adam, 0.1, LrSchedule::Constant, 0).unwrap();
        for s in 0..2 {
            first.step(&[("w".into(), a.shallow_clone())], &grads(s)).unwrap();
        }
        let (step, state) = first.state(&[("w".into(), a.shallow_clone())]);
        let mut second = DpOptimizer::new(OptimizerKind::Adam, 0.1, LrSchedule::Constant, 0).unwrap();
        b.shallow_clone().copy_(&a);
        second.load_state(&[("w".into(), b.shallow_clone())], step, &state).unwrap();
        first.step(&[("w".into(), a.shallow_clone())], &grads(2)).unwrap();
        second.step(&[("w".into(), b.shallow_clone())], &grads(2)).unwrap();
        assert!(a.equal(&b));
        assert!(second.load_state(&[("w".into(), b.shallow_clone())], 3, &[]).is_err(), "missing moments are an error");
    }

    /// Our update against libtorch's own optimizer on the same gradients (f64, three steps).
    fn against_libtorch(kind: OptimizerKind, reference: impl OptimizerConfig) {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[0.5f64, -1.0, 2.0]));
        vs.double();
        let mut theirs = reference.build(&vs, 0.1).unwrap();
        let mine = Tensor::from_slice(&[0.5f64, -1.0, 2.0]);
        let mut ours = DpOptimizer::new(kind, 0.1, LrSchedule::Constant, 0).unwrap();
        for s in 0..3 {
            let g = Tensor::from_slice(&[0.3f64, -0.2 * s as f64, 1.0 + s as f64]);
            theirs.zero_grad();
            (&w * &g).sum(Kind::Double).backward();
            theirs.step();
            ours.step(&[("w".into(), mine.shallow_clone())], &[("w".into(), g)]).unwrap();
        }
        let diff = (&w - &mine).abs().max().double_value(&[]);
        assert!(diff < 1e-12, "{kind:?}: {diff}");
    }

    #[test]
    fn updates_match_libtorch() {
        against_libtorch(
            OptimizerKind::Adam,
            nn::Adam { beta1: 0.9, beta2: 0.999, wd: 0.0, eps: 1e-8, amsgrad: false },
        );
        against_libtorch(
            OptimizerKind::AdamW { weight_decay: 0.01 },
            nn::AdamW { beta1: 0.9, beta2: 0.999, wd: 0.01, eps: 1e-8, amsgrad: false },
        );
        against_libtorch(
            OptimizerKind::Sgd { momentum: 0.9 },
            nn::Sgd { momentum: 0.9, dampening: 0.0, wd: 0.0, nesterov: false },
        );
        against_libtorch(OptimizerKind::Sgd { momentum: 0.0 }, nn::Sgd::default());
    }

    #[test]
    fn schedules() {
        let o = DpOptimizer::new(OptimizerKind::Adam, 1.0, LrSchedule::Linear { total_steps: 12 }, 2).unwrap();
        let lrs: Vec<f64> = (1..=12).map(|t| o.lr_at(t)).collect();
        assert_eq!(lrs[0], 0.5);
        assert_eq!(lrs[1], 1.0);
        assert!((lrs[6] - 0.5).abs() < 1e-12 && lrs[11] == 0.0, "{lrs:?}");
        let c = DpOptimizer::new(OptimizerKind::Adam, 2e-3, LrSchedule::Constant, 0).unwrap();
        assert_eq!(c.lr_at(1), 2e-3);
        assert_eq!(c.lr_at(1000), 2e-3);
        assert!(DpOptimizer::new(OptimizerKind::Adam, 0.0, LrSchedule::Constant, 0).is_err());
        assert!(DpOptimizer::new(OptimizerKind::Sgd { momentum: 1.0 }, 0.1, LrSchedule::Constant, 0).is_err());
    }

    /// A parameter with factor f steps exactly as it would under an optimizer of rate f·lr (same schedule);
    /// the others as under lr. Checked for Adam and SGD with momentum over three steps of a linear schedule.
    #[test]
    fn lr_factors_scale_the_named_parameters_only() {
        for kind in [OptimizerKind::Adam, OptimizerKind::Sgd { momentum: 0.9 }] {
            let schedule = LrSchedule::Linear { total_steps: 4 };
            let grad = |s: i64| Tensor::from_slice(&[0.3f64, -0.2 * s as f64, 1.0 + s as f64]);
            let (head, body) = (Tensor::from_slice(&[0.5f64, -1.0, 2.0]), Tensor::from_slice(&[0.5f64, -1.0, 2.0]));
            let factors = HashMap::from([("head".to_string(), 20.0)]);
            let mut mixed = DpOptimizer::new(kind, 1e-3, schedule, 1).unwrap().with_lr_factors(factors).unwrap();
            let (fast, slow) = (head.copy(), body.copy());
            let mut fast_only = DpOptimizer::new(kind, 2e-2, schedule, 1).unwrap();
            let mut slow_only = DpOptimizer::new(kind, 1e-3, schedule, 1).unwrap();
            for s in 0..3 {
                let params = [("head".to_string(), head.shallow_clone()), ("body".to_string(), body.shallow_clone())];
                mixed.step(&params, &[("head".into(), grad(s)), ("body".into(), grad(s))]).unwrap();
                fast_only.step(&[("head".into(), fast.shallow_clone())], &[("head".into(), grad(s))]).unwrap();
                slow_only.step(&[("body".into(), slow.shallow_clone())], &[("body".into(), grad(s))]).unwrap();
            }
            assert!((&head - &fast).abs().max().double_value(&[]) < 1e-15, "{kind:?}: the head moves at 20·lr");
            assert!(body.equal(&slow), "{kind:?}: the body moves at lr");
            assert!(!head.equal(&body), "{kind:?}: the factor changed something");
        }
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let o = DpOptimizer::new(OptimizerKind::Adam, 1e-3, LrSchedule::Constant, 0).unwrap();
            let err = o.with_lr_factors(HashMap::from([("w".to_string(), bad)])).unwrap_err();
            assert!(err.to_string().contains("`w`"), "{bad}: {err}");
        }
    }
}
