//! What a private run did, as the accountants see it: a history of subsampled Gaussian events.
//!
//! One [`Event`] is `steps` repetitions of the DP-SGD step "sample a batch, sum the per-example gradients
//! clipped to norm C, add N(0, σ²C²)", with the noise multiplier σ and the sampling fixed. A [`History`]
//! is the ordered list of events of a run, so σ, the sampling rate or the step count may change during a
//! run. It serialises to JSON (the `privacy.json` ledger) and back.
//!
//! Sampling decides which neighbouring relation the guarantee is stated for:
//! - [`Sampling::Poisson`]: every example joins every batch independently with probability q; ε is for
//!   the add/remove-one relation (Mironov, Talwar & Zhang 2019). Batch sizes vary.
//! - [`Sampling::FixedSize`]: every batch is a fresh uniformly random subset of exactly b of the n
//!   examples, drawn independently at each step (sampling without replacement); ε is for the replace-one
//!   relation (Wang, Balle & Kasiviswanathan 2019, Theorem 27). Replacing one example moves the clipped
//!   sum by up to 2C, so the Gaussian's noise multiplier relative to that sensitivity is σ/2. A replace-one
//!   ε is not comparable with an add/remove-one ε (the latter at ε implies the former at 2ε).
//!   This does NOT cover "shuffle once per epoch and cut into consecutive batches": no accountant here
//!   covers that, and accounting it as Poisson (as the paper's reference code did) under-reports ε.

use serde::{Deserialize, Serialize};

use super::AccountingError;

/// How the batches of an event were drawn.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sampling {
    /// Poisson sampling with rate q ∈ (0, 1] (add/remove-one relation).
    Poisson {
        /// Probability that an example joins a batch.
        sample_rate: f64,
    },
    /// Independent uniformly random fixed-size batches without replacement (replace-one relation).
    FixedSize {
        /// n, the number of examples.
        dataset_size: u64,
        /// b ≤ n, the examples per batch.
        batch_size: u64,
    },
}

impl Sampling {
    /// The sampling rate q (b/n for fixed-size batches).
    pub fn sample_rate(&self) -> f64 {
        match *self {
            Self::Poisson { sample_rate } => sample_rate,
            Self::FixedSize { dataset_size, batch_size } => batch_size as f64 / dataset_size as f64,
        }
    }

    /// The neighbouring relation the guarantee holds for.
    pub fn relation(&self) -> Relation {
        match self {
            Self::Poisson { .. } => Relation::AddRemoveOne,
            Self::FixedSize { .. } => Relation::ReplaceOne,
        }
    }

    fn validate(&self) -> Result<(), AccountingError> {
        match *self {
            Self::Poisson { sample_rate } => {
                if !(sample_rate.is_finite() && sample_rate > 0.0 && sample_rate <= 1.0) {
                    return Err(AccountingError::invalid("sample_rate", sample_rate, "(0, 1]"));
                }
            }
            Self::FixedSize { dataset_size, batch_size } => {
                if dataset_size == 0 {
                    return Err(AccountingError::invalid("dataset_size", 0.0, "≥ 1"));
                }
                if batch_size == 0 || batch_size > dataset_size {
                    return Err(AccountingError::invalid(
                        "batch_size",
                        batch_size as f64,
                        &format!("[1, dataset_size = {dataset_size}]"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Which pairs of datasets are neighbours in the (ε, δ) statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Datasets differing by adding or removing one example.
    AddRemoveOne,
    /// Datasets of equal size differing in one example.
    ReplaceOne,
}

/// `steps` identical DP-SGD steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// σ: the noise standard deviation divided by the clipping norm C.
    pub noise_multiplier: f64,
    /// How batches were drawn.
    pub sampling: Sampling,
    /// How many steps (≥ 1).
    pub steps: u64,
}

impl Event {
    /// A checked event: σ > 0 and finite, sampling in range, steps ≥ 1.
    pub fn new(noise_multiplier: f64, sampling: Sampling, steps: u64) -> Result<Self, AccountingError> {
        let e = Self { noise_multiplier, sampling, steps };
        e.validate()?;
        Ok(e)
    }

    /// Poisson-sampled steps with rate q.
    pub fn poisson(noise_multiplier: f64, sample_rate: f64, steps: u64) -> Result<Self, AccountingError> {
        Self::new(noise_multiplier, Sampling::Poisson { sample_rate }, steps)
    }

    fn validate(&self) -> Result<(), AccountingError> {
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier > 0.0) {
            return Err(AccountingError::invalid("noise_multiplier", self.noise_multiplier, "(0, ∞)"));
        }
        if self.steps == 0 {
            return Err(AccountingError::invalid("steps", 0.0, "≥ 1"));
        }
        self.sampling.validate()
    }
}

/// The events of a run, in order. All events share one neighbouring relation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    events: Vec<Event>,
}

impl History {
    /// An empty history (ε = 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// A history of one event.
    pub fn single(event: Event) -> Self {
        Self { events: vec![event] }
    }

    /// Appends `event`, merging it into the last one when σ and sampling are equal. Fails when the event
    /// is invalid or its neighbouring relation differs from the history's.
    pub fn push(&mut self, event: Event) -> Result<(), AccountingError> {
        event.validate()?;
        if let Some(first) = self.events.first() {
            if first.sampling.relation() != event.sampling.relation() {
                return Err(AccountingError::MixedRelations);
            }
        }
        match self.events.last_mut() {
            Some(last) if last.noise_multiplier == event.noise_multiplier && last.sampling == event.sampling => {
                last.steps += event.steps;
            }
            _ => self.events.push(event),
        }
        Ok(())
    }

    /// The events, in order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Total number of steps.
    pub fn steps(&self) -> u64 {
        self.events.iter().map(|e| e.steps).sum()
    }

    /// The neighbouring relation (`None` for an empty history).
    pub fn relation(&self) -> Option<Relation> {
        self.events.first().map(|e| e.sampling.relation())
    }

    /// JSON text of the history.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a history always serialises")
    }

    /// Parses and re-validates a history written by [`to_json`](Self::to_json).
    pub fn from_json(text: &str) -> Result<Self, AccountingError> {
        let raw: History = serde_json::from_str(text).map_err(|e| AccountingError::Json(e.to_string()))?;
        let mut checked = History::new();
        for e in raw.events {
            checked.push(e)?;
        }
        Ok(checked)
    }
}

/// Steps for `epochs` passes at sampling rate q: ⌈epochs / q⌉ (one expected pass is 1/q steps).
pub fn steps_for_epochs(epochs: f64, sample_rate: f64) -> Result<u64, AccountingError> {
    if !(epochs.is_finite() && epochs > 0.0) {
        return Err(AccountingError::invalid("epochs", epochs, "(0, ∞)"));
    }
    if !(sample_rate.is_finite() && sample_rate > 0.0 && sample_rate <= 1.0) {
        return Err(AccountingError::invalid("sample_rate", sample_rate, "(0, 1]"));
    }
    // Guard against 10/0.1 = 100.00000000000001 → 101 steps.
    let raw = epochs / sample_rate;
    let rounded = raw.round();
    let steps = if (raw - rounded).abs() <= 1e-9 * rounded.max(1.0) { rounded } else { raw.ceil() };
    Ok(steps.max(1.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_validation() {
        let mut h = History::new();
        h.push(Event::poisson(1.1, 0.01, 100).unwrap()).unwrap();
        h.push(Event::poisson(1.1, 0.01, 50).unwrap()).unwrap();
        h.push(Event::poisson(0.9, 0.02, 10).unwrap()).unwrap();
        assert_eq!(h.events().len(), 2, "equal consecutive events merge");
        assert_eq!(h.steps(), 160);
        let back = History::from_json(&h.to_json()).unwrap();
        assert_eq!(back, h);
        let bad = r#"{"events":[{"noise_multiplier":-1,"sampling":{"kind":"poisson","sample_rate":0.1},"steps":3}]}"#;
        assert!(matches!(History::from_json(bad), Err(AccountingError::Invalid { name: "noise_multiplier", .. })));
        let unknown = r#"{"events":[],"extra":1}"#;
        assert!(matches!(History::from_json(unknown), Err(AccountingError::Json(_))));
    }

    #[test]
    fn relations_do_not_mix() {
        let mut h = History::single(Event::poisson(1.0, 0.1, 1).unwrap());
        let fixed = Event::new(1.0, Sampling::FixedSize { dataset_size: 100, batch_size: 10 }, 1).unwrap();
        assert!(matches!(h.push(fixed), Err(AccountingError::MixedRelations)));
    }

    #[test]
    fn invalid_events() {
        for (s, q, t) in [(0.0, 0.1, 1), (f64::NAN, 0.1, 1), (1.0, 0.0, 1), (1.0, 1.5, 1), (1.0, 0.1, 0)] {
            assert!(Event::poisson(s, q, t).is_err(), "{s} {q} {t}");
        }
        assert!(Event::new(1.0, Sampling::FixedSize { dataset_size: 10, batch_size: 11 }, 1).is_err());
    }

    #[test]
    fn epochs_to_steps() {
        assert_eq!(steps_for_epochs(10.0, 1024.0 / 42061.0).unwrap(), 411);
        assert_eq!(steps_for_epochs(10.0, 0.1).unwrap(), 100);
        assert_eq!(steps_for_epochs(1.0, 0.3).unwrap(), 4);
    }
}
