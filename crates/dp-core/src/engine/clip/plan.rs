//! Phase 1 of clipping: the plan. Which recorded layer owns which trainable variable, which variables
//! are tied (owned by two layers), which records take part, and every refusal that must happen before
//! any gradient is computed (Li et al. 2022, Sec. 4: every trainable parameter must be covered, or its
//! gradient would be released unclipped).

use std::collections::HashMap;

use tch::Tensor;

use super::ClipStyle;
use crate::engine::layers::accumulation_kind;
use crate::engine::tape::DpRecord;
use crate::engine::EngineError;

/// One owner of a trainable variable: parameter `param` of active record `active` (an index into
/// [`ClipPlan::active`], not into the tape).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub active: usize,
    pub param: usize,
}

/// A recorded layer that owns at least one trainable variable.
pub(crate) struct ActiveRecord<'t> {
    pub record: &'t dyn DpRecord,
    /// Which of the record's parameters are trainable (indices into `record.parameters()`).
    pub params: Vec<usize>,
}

/// What the later phases work from. Shapes: every active record's output is `[B, …]`.
pub(crate) struct ClipPlan<'t> {
    /// Active records, in tape order.
    pub active: Vec<ActiveRecord<'t>>,
    /// One entry per trainable variable, in the order given: its owners (one, or two for a tie).
    pub slots: Vec<Vec<Owner>>,
    /// B, the number of examples (the length of the loss).
    pub batch: i64,
    /// Zeros `[B]` on the loss's device in f32 (f64 for an f64 loss), where the norms are summed.
    pub zeros: Tensor,
}

impl<'t> ClipPlan<'t> {
    /// Plans the clipping of `losses` (`[B]`) over `records` for the `trainable` variables, refusing: an
    /// empty tape or trainable list, a layer recorded twice, a variable no layer owns, a variable shared
    /// by more than two layers or by layers without an exact cross term, a tie under per-layer clipping,
    /// a loss that is not `[B]`, and an active record whose output is not per example.
    pub fn new(
        records: &'t [Box<dyn DpRecord>],
        trainable: &[(String, Tensor)],
        losses: &Tensor,
        style: ClipStyle,
    ) -> Result<Self, EngineError> {
        if records.is_empty() {
            return Err(EngineError::EmptyTape);
        }
        if trainable.is_empty() {
            return Err(EngineError::Invalid("no trainable variables were given to clip".into()));
        }
        let owners_of = owners_by_storage(records)?;
        let mut tape_slots = Vec::with_capacity(trainable.len());
        for (name, t) in trainable {
            let owners = owners_of.get(&(t.data_ptr() as usize)).cloned().unwrap_or_default();
            check_owners(name, &owners, records, style)?;
            tape_slots.push(owners);
        }
        // Records that own a trainable variable, and which of their parameters are trainable.
        let mut active = Vec::new();
        let mut active_of = HashMap::new(); // tape index → active index
        for (r, rec) in records.iter().enumerate() {
            let params: Vec<usize> = tape_slots.iter().flatten().filter(|(rr, _)| *rr == r).map(|(_, p)| *p).collect();
            if !params.is_empty() {
                active_of.insert(r, active.len());
                active.push(ActiveRecord { record: rec.as_ref(), params });
            }
        }
        let slots = tape_slots
            .iter()
            .map(|owners| owners.iter().map(|(r, p)| Owner { active: active_of[r], param: *p }).collect())
            .collect();
        let batch = check_per_example(&active, losses)?;
        let zeros = Tensor::zeros([batch], (accumulation_kind(losses.kind()), losses.device()));
        Ok(Self { active, slots, batch, zeros })
    }

    /// The active records' outputs, in order: where the backward pass stops.
    pub fn outputs(&self) -> Vec<&Tensor> {
        self.active.iter().map(|a| a.record.output()).collect()
    }

    /// The tied variables' two owners.
    pub fn ties(&self) -> impl Iterator<Item = (Owner, Owner)> + '_ {
        self.slots.iter().filter(|o| o.len() == 2).map(|o| (o[0], o[1]))
    }

    /// The name of the layer of active record `a` (for errors).
    pub fn layer(&self, a: usize) -> &str {
        self.active[a].record.layer()
    }
}

/// Storage address → every (tape index, parameter index) that uses it; refuses a layer recorded twice.
fn owners_by_storage(records: &[Box<dyn DpRecord>]) -> Result<HashMap<usize, Vec<(usize, usize)>>, EngineError> {
    let mut seen_layers = HashMap::new();
    let mut owners_of: HashMap<usize, Vec<(usize, usize)>> = HashMap::new();
    for (r, rec) in records.iter().enumerate() {
        if seen_layers.insert(rec.layer().to_string(), r).is_some() {
            return Err(EngineError::RecordedTwice(rec.layer().to_string()));
        }
        for (p, (_, t)) in rec.parameters().iter().enumerate() {
            owners_of.entry(t.data_ptr() as usize).or_default().push((r, p));
        }
    }
    Ok(owners_of)
}

/// A variable must have an owner; a tie (two owners) is exact only when both can write their per-example
/// gradient as Σ_t u_t v_tᵀ (the cross term then has a Gram form), and it cannot be assigned to one layer
/// under per-layer clipping.
fn check_owners(
    name: &str,
    owners: &[(usize, usize)],
    records: &[Box<dyn DpRecord>],
    style: ClipStyle,
) -> Result<(), EngineError> {
    match owners {
        [] => Err(EngineError::Uncovered(name.to_string())),
        [_] => Ok(()),
        [(r1, p1), (r2, p2), ..] => {
            if owners.len() > 2 || !records[*r1].factorable(*p1) || !records[*r2].factorable(*p2) {
                return Err(EngineError::SharedParameter(
                    name.to_string(),
                    records[*r1].layer().to_string(),
                    records[*r2].layer().to_string(),
                ));
            }
            if style == ClipStyle::PerLayer {
                return Err(EngineError::Invalid(format!(
                    "per-layer clipping cannot assign the tied variable `{name}` to one layer; use flat or automatic clipping"
                )));
            }
            Ok(())
        }
    }
}

/// B from the loss, which must be `[B]`; every active record's output must have B rows: a layer fed a
/// broadcast input (position ids `[1, T]` instead of `[B, T]`) would give one gradient for the whole
/// batch, summed over examples.
fn check_per_example(active: &[ActiveRecord<'_>], losses: &Tensor) -> Result<i64, EngineError> {
    let batch = losses.size().first().copied().unwrap_or(0);
    if losses.size() != [batch] {
        return Err(EngineError::LossShape { batch: active[0].record.output().size()[0], shape: losses.size() });
    }
    if let Some(a) = active.iter().find(|a| a.record.output().size().first() != Some(&batch)) {
        return Err(EngineError::NotPerExample {
            layer: a.record.layer().to_string(),
            batch,
            shape: a.record.output().size(),
        });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clip::tests::{embedding, linear, sum_per_example};
    use crate::engine::{DpLayer, Tape};

    #[test]
    fn untied_trainable_variables_get_one_owner_each_and_frozen_records_stay_out() {
        let (wte, head) = (embedding("wte"), linear("lm_head"));
        let frozen = linear("frozen");
        let mut tape = Tape::on();
        let ids = Tensor::from_slice(&[1i64, 2, 3, 0, 4, 1]).reshape([2, 3]);
        let y = head.forward(&frozen.forward(&wte.forward(&ids, &mut tape), &mut tape), &mut tape);
        let losses = sum_per_example(&y);
        // Only wte and lm_head's weight are trainable: `frozen` records but is not active.
        let trainable = vec![wte.parameters().remove(0), head.parameters().remove(0)];
        let plan = ClipPlan::new(tape.records(), &trainable, &losses, ClipStyle::Flat).unwrap();
        assert_eq!(plan.batch, 2);
        assert_eq!(plan.active.len(), 2);
        assert_eq!((plan.layer(0), plan.layer(1)), ("wte", "lm_head"));
        assert_eq!(plan.active[1].params, vec![0]); // the weight, not the bias
        assert_eq!(plan.slots, vec![vec![Owner { active: 0, param: 0 }], vec![Owner { active: 1, param: 0 }]]);
        assert_eq!(plan.ties().count(), 0);
        assert_eq!(plan.outputs().len(), 2);
    }

    #[test]
    fn a_tied_embedding_and_head_is_one_slot_with_two_owners_and_refused_per_layer() {
        let wte = embedding("wte");
        let head = crate::engine::Linear {
            name: "lm_head".into(),
            weight: wte.weight.shallow_clone(),
            bias: None,
            layout: crate::engine::WeightLayout::OutIn,
        };
        let mut tape = Tape::on();
        let ids = Tensor::from_slice(&[1i64, 2, 3, 0]).reshape([2, 2]);
        let losses = sum_per_example(&head.forward(&wte.forward(&ids, &mut tape), &mut tape));
        let trainable = vec![("wte.weight".to_string(), wte.weight.shallow_clone())];
        let plan = ClipPlan::new(tape.records(), &trainable, &losses, ClipStyle::Flat).unwrap();
        assert_eq!(
            plan.ties().collect::<Vec<_>>(),
            vec![(Owner { active: 0, param: 0 }, Owner { active: 1, param: 0 })]
        );
        let err = ClipPlan::new(tape.records(), &trainable, &losses, ClipStyle::PerLayer).err().unwrap();
        assert!(err.to_string().contains("per-layer clipping cannot assign the tied variable `wte.weight`"), "{err}");
    }

    #[test]
    fn refusals_come_before_any_gradient() {
        let head = linear("lm_head");
        let x = Tensor::randn([2, 3, 4], (tch::Kind::Double, tch::Device::Cpu));
        let trainable = head.parameters();
        let empty = Tape::on();
        let losses = Tensor::zeros([2], (tch::Kind::Double, tch::Device::Cpu));
        assert!(matches!(
            ClipPlan::new(empty.records(), &trainable, &losses, ClipStyle::Flat),
            Err(EngineError::EmptyTape)
        ));
        let mut tape = Tape::on();
        let y = head.forward(&x, &mut tape);
        assert!(matches!(ClipPlan::new(tape.records(), &[], &losses, ClipStyle::Flat), Err(EngineError::Invalid(_))));
        let scalar = y.sum(tch::Kind::Double);
        assert!(matches!(
            ClipPlan::new(tape.records(), &trainable, &scalar, ClipStyle::Flat),
            Err(EngineError::LossShape { batch: 2, .. })
        ));
        let three = Tensor::zeros([3], (tch::Kind::Double, tch::Device::Cpu));
        assert!(matches!(
            ClipPlan::new(tape.records(), &trainable, &three, ClipStyle::Flat),
            Err(EngineError::NotPerExample { batch: 3, .. })
        ));
        let stray = vec![("stray.weight".to_string(), Tensor::zeros([3], (tch::Kind::Double, tch::Device::Cpu)))];
        assert!(matches!(
            ClipPlan::new(tape.records(), &stray, &losses, ClipStyle::Flat),
            Err(EngineError::Uncovered(ref n)) if n == "stray.weight"
        ));
    }
}
