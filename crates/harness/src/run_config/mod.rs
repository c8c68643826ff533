//! The run config of `dpft train`: a YAML file with `model`, `task`, `method`, `optimization`, `privacy`
//! and `generation` sections, every struct `deny_unknown_fields` so that a mistyped key is an error naming
//! it. `--set a.b=value` overrides are applied to the YAML tree before it is checked. YAML goes through
//! [`parse_yaml`] / [`to_yaml`] only (serde_norway, the maintained fork of serde_yaml). Closed sets of
//! values are enums ([`choices`]), so a wrong value fails when the file is read, naming the key.

pub mod choices;
pub mod errors;
pub mod method;

use std::path::{Path, PathBuf};

use dp_core::engine::{ClipMode, ClipStyle};
use serde::{Deserialize, Serialize};
use serde_norway::Value;

pub use self::choices::{
    BudgetAccountant, Dtype, Head, MethodName, NoiseSeedMode, OptimizerName, RunTask, SamplerName, Schedule,
};
pub use self::method::{Method, MethodSection};
use crate::exit::BadInput;
use crate::tasks::Split;

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model to start from.
    pub model: ModelSection,
    /// The data.
    pub task: TaskSection,
    /// Which parameters train ([`Method`]).
    #[serde(default)]
    pub method: MethodSection,
    /// Optimiser, batch sizes, length of the run.
    pub optimization: OptimizationSection,
    /// DP settings, or `none` for non-private training.
    pub privacy: Privacy,
    /// Decoding at evaluation (generation tasks).
    #[serde(default)]
    pub generation: GenerationSection,
}

/// `model:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face model folder (weights and tokenizer). Model paths are absolute or relative to the
    /// current directory; `data:REL` means REL inside the data directory.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A config.json to initialise randomly from (with `tokenizer`), instead of `path`.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// A folder with tokenizer files (with `config`).
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Parameter precision: f32, f64 or bf16 (CUDA).
    #[serde(default = "f32_dtype")]
    pub dtype: Dtype,
    /// GPT-2: give `lm_head` its own copy of `wte` (the paper's recipe).
    #[serde(default)]
    pub untie_lm_head: bool,
    /// GPT-2: add the paper's `[PAD]` token (mean-initialised row) and pad with it.
    #[serde(default)]
    pub add_pad_token: bool,
}

/// `task:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    /// e2e, dart, sst2, qnli, mnli, qqp, or text (language modelling on plain text files).
    pub name: RunTask,
    /// Longest example in tokens; longer training examples are dropped and counted.
    #[serde(default = "max_length_default")]
    pub max_length: usize,
    /// Use at most this many training examples (the first ones; for small runs).
    #[serde(default)]
    pub max_train_examples: Option<usize>,
    /// Evaluate on at most this many evaluation examples or segments.
    #[serde(default)]
    pub max_eval_examples: Option<usize>,
    /// The evaluation split (dev, test, dev_matched, subset-dev, …; `dpft train --help` lists them).
    #[serde(default = "dev")]
    pub eval_split: Split,
    /// The training split (train, or subset-train / kshot-train for the GLUE subsets).
    #[serde(default = "train_split")]
    pub train_split: Split,
    /// Classification tasks: `prompt` (the paper's MLM head at `<mask>`, LM-BFF templates),
    /// `classifier` (a sequence-classification head on the first token, the baseline) or `mean_pooled`
    /// (a linear classifier on the mean over tokens: for sentence-embedding checkpoints).
    #[serde(default = "prompt")]
    pub head: Head,
    /// Plain-text files for `name: text` (relative to the data directory unless absolute).
    #[serde(default)]
    pub text_files: Vec<PathBuf>,
}

/// `optimization:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizationSection {
    /// sgd, adam or adamw.
    #[serde(default = "adam")]
    pub optimizer: OptimizerName,
    /// Learning rate.
    pub learning_rate: f64,
    /// Learning rate of a fresh classification head (`task.head` classifier or mean_pooled), following the
    /// same warm-up and schedule; the rest of the model keeps `learning_rate`. Unset: `learning_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_learning_rate: Option<f64>,
    /// Expected logical batch size (Poisson: q = batch_size / n).
    pub batch_size: usize,
    /// Examples per forward/backward pass (memory bound); the logical batch is split into these.
    #[serde(default = "physical_default")]
    pub physical_batch_size: usize,
    /// Length of the run in epochs (steps = epochs / q), unless `steps` is given.
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Length of the run in optimiser steps.
    #[serde(default)]
    pub steps: Option<u64>,
    /// Linear warm-up steps.
    #[serde(default)]
    pub warmup_steps: u64,
    /// constant or linear (decay to 0).
    #[serde(default = "constant")]
    pub schedule: Schedule,
    /// AdamW weight decay; SGD momentum.
    #[serde(default)]
    pub weight_decay: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Seed of sampling, dropout, initialisation and (fixed-seed) noise.
    #[serde(default)]
    pub seed: u64,
    /// Evaluate every this many steps (0: at the end only).
    #[serde(default)]
    pub eval_every: u64,
    /// Write a checkpoint every this many steps (0: at the end only).
    #[serde(default)]
    pub checkpoint_every: u64,
    /// Decay β of an exponential moving average of the iterates, in (0, 1): the final evaluation and the
    /// saved model use the bias-corrected average θ̄_T = Σ_t β^(T−t)(1 − β) θ_t / (1 − β^T) instead of
    /// θ_T. It averages out the noise that private steps leave in the iterates (De et al. 2022 average
    /// DP-SGD's iterates the same way) and is post-processing of released updates: no privacy cost. Unset:
    /// the last iterate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_decay: Option<f64>,
}

/// `privacy:`: `none`, or the DP settings.
#[derive(Clone, Debug)]
pub enum Privacy {
    /// `privacy: none`: non-private training.
    None,
    /// DP-Adam settings.
    Dp(PrivacySection),
}

impl Serialize for Privacy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::None => s.serialize_str("none"),
            Self::Dp(p) => p.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Privacy {
    /// `none`, or a mapping read as [`PrivacySection`] through the same deserializer (so that an error
    /// inside it keeps its dotted key, e.g. `privacy.sampler`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PrivacyVisitor;
        impl<'de> serde::de::Visitor<'de> for PrivacyVisitor {
            type Value = Privacy;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`none` or a mapping of DP settings (target_epsilon, max_grad_norm, …)")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Privacy, E> {
                match v {
                    "none" => Ok(Privacy::None),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Privacy, A::Error> {
                PrivacySection::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Privacy::Dp)
            }
        }
        d.deserialize_any(PrivacyVisitor)
    }
}

/// DP settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySection {
    /// ε to reach at the end of the run (σ is calibrated), and the budget the run may not exceed.
    #[serde(default)]
    pub target_epsilon: Option<f64>,
    /// σ, when given instead of (or with) a target.
    #[serde(default)]
    pub noise_multiplier: Option<f64>,
    /// δ (default n^-1.1).
    #[serde(default)]
    pub delta: Option<f64>,
    /// Clipping norm C.
    pub max_grad_norm: f64,
    /// bk, ghost or naive.
    #[serde(default)]
    pub clipping_mode: ClipMode,
    /// flat, per_layer or automatic.
    #[serde(default)]
    pub clipping_style: ClipStyle,
    /// rdp or prv: calibrates σ and enforces the budget (all are reported).
    #[serde(default = "rdp")]
    pub accountant: BudgetAccountant,
    /// poisson or fixed_size.
    #[serde(default = "poisson")]
    pub sampler: SamplerName,
    /// Randomness of the noise and the batch sampler: `secure` (default: OS randomness; the sampler's key
    /// is kept in the checkpoint so that a resume continues its stream) or `fixed` (derived from
    /// optimization.seed: reproducible, for research; anyone who knows the seed can recompute the noise and
    /// the batches, so the guarantee then holds only while the seed is secret).
    #[serde(default = "secure")]
    pub noise_seed: NoiseSeedMode,
    /// Train although δ ≥ 1/n (such a δ permits releasing whole examples, so the run is refused without
    /// it; privacy.json and summary.json then carry `delta_warning`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_large_delta: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `generation:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationSection {
    /// Beams.
    #[serde(default = "five")]
    pub num_beams: usize,
    /// Most new tokens.
    #[serde(default = "hundred")]
    pub max_new_tokens: usize,
    /// Fewest new tokens before EOS.
    #[serde(default = "five")]
    pub min_new_tokens: usize,
    /// Prompts per batch.
    #[serde(default = "eight")]
    pub batch_size: usize,
    /// Compute METEOR (needs Java and the METEOR 1.5 jar; reported as null otherwise).
    #[serde(default = "yes")]
    pub meteor: bool,
}

impl Default for GenerationSection {
    fn default() -> Self {
        Self { num_beams: 5, max_new_tokens: 100, min_new_tokens: 5, batch_size: 8, meteor: true }
    }
}

fn f32_dtype() -> Dtype {
    Dtype::F32
}
fn max_length_default() -> usize {
    100
}
fn dev() -> Split {
    Split::Dev
}
fn train_split() -> Split {
    Split::Train
}
fn prompt() -> Head {
    Head::Prompt
}
fn adam() -> OptimizerName {
    OptimizerName::Adam
}
fn physical_default() -> usize {
    16
}
fn constant() -> Schedule {
    Schedule::Constant
}
fn rdp() -> BudgetAccountant {
    BudgetAccountant::Rdp
}
fn poisson() -> SamplerName {
    SamplerName::Poisson
}
fn secure() -> NoiseSeedMode {
    NoiseSeedMode::Secure
}
fn five() -> usize {
    5
}
fn hundred() -> usize {
    100
}
fn eight() -> usize {
    8
}
fn yes() -> bool {
    true
}

/// Parses YAML text (`path` names it in errors).
pub fn parse_yaml(text: &str, path: &Path) -> Result<Value, BadInput> {
    // A UTF-8 byte-order mark (some editors write one) is not part of the YAML.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(BadInput(format!("{}: the file is empty; expected a YAML mapping", path.display())));
    }
    serde_norway::from_str(text).map_err(|e| BadInput(format!("{}: malformed YAML: {e}", path.display())))
}

/// Serialises a value as YAML.
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_norway::to_string(value).expect("configs serialise")
}

/// Sets `dotted.key` to `value` (parsed as YAML: numbers, booleans, `none`, strings) in `tree`, creating
/// mappings on the way.
pub fn apply_override(tree: &mut Value, assignment: &str) -> Result<(), BadInput> {
    let (key, raw) = assignment.split_once('=').ok_or_else(|| {
        BadInput(format!("--set {assignment}: expected key=value (e.g. optimization.learning_rate=1e-3)"))
    })?;
    let value: Value = match serde_norway::from_str(raw) {
        Ok(v) => v,
        // A flow list or mapping that does not parse is a typo, not text.
        Err(e) if raw.trim_start().starts_with(['[', '{']) => {
            return Err(BadInput(format!("--set {assignment}: the value {raw:?} is malformed YAML ({e})")));
        }
        Err(_) => Value::String(raw.to_string()),
    };
    let mut node = tree;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(BadInput(format!("--set {assignment}: empty key part")));
        }
        if !node.is_mapping() {
            *node = Value::Mapping(Default::default());
        }
        let map = node.as_mapping_mut().expect("mapping");
        let k = Value::String((*part).to_string());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert(Value::Null);
    }
    Ok(())
}

/// Reads `path`, applies `overrides`, and checks the result against [`RunConfig`]: unknown keys and
/// wrong types are errors naming the key and the file.
pub fn load(path: &Path, overrides: &[String]) -> Result<RunConfig, BadInput> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("{}: cannot read the run config: {e}", path.display())))?;
    from_text(&text, path, overrides)
}

/// [`load`] on the text of `path`.
pub fn from_text(text: &str, path: &Path, overrides: &[String]) -> Result<RunConfig, BadInput> {
    let mut tree = parse_yaml(text, path)?;
    let mut origins = Vec::new();
    for o in overrides {
        apply_override(&mut tree, o)?;
        let key = o.split_once('=').map_or(o.as_str(), |(k, _)| k);
        origins.push((key.to_string(), o.clone()));
    }
    from_tree_with(tree, path, &origins)
}

/// Checks a YAML tree against [`RunConfig`] and the ranges of its values.
pub fn from_tree(tree: Value, path: &Path) -> Result<RunConfig, BadInput> {
    from_tree_with(tree, path, &[])
}

/// [`from_tree`] naming the `--set` assignment behind a bad value ([`errors::deserialize_message`]).
pub fn from_tree_with(tree: Value, path: &Path, overrides: errors::Overrides) -> Result<RunConfig, BadInput> {
    let config: RunConfig = serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
        let key = e.path().to_string();
        BadInput(errors::deserialize_message(path, &key, &e.inner().to_string(), &tree, overrides))
    })?;
    config.check().map_err(|m| BadInput(format!("{}: {m}", path.display())))?;
    Ok(config)
}

/// Where the model comes from (`model.path`, or `model.config` with `model.tokenizer`).
#[derive(Clone, Copy, Debug)]
pub enum ModelSource<'a> {
    /// A Hugging Face folder.
    Folder(&'a Path),
    /// A config.json to initialise randomly, and a folder with tokenizer files.
    Config {
        /// `model.config`.
        config: &'a Path,
        /// `model.tokenizer`.
        tokenizer: &'a Path,
    },
}

impl ModelSection {
    /// The model's source; exactly one of `path` and `config` (with `tokenizer`) must be given.
    pub fn source(&self) -> Result<ModelSource<'_>, String> {
        match (&self.path, &self.config, &self.tokenizer) {
            (Some(_), Some(_), _) => Err("model: give either path or config (with tokenizer), not both".into()),
            (None, None, _) => Err("model: give path (a Hugging Face folder) or config + tokenizer".into()),
            (None, Some(_), None) => {
                Err("model.tokenizer is needed with model.config (a folder with tokenizer files)".into())
            }
            (Some(path), None, _) => Ok(ModelSource::Folder(path)),
            (None, Some(config), Some(tokenizer)) => Ok(ModelSource::Config { config, tokenizer }),
        }
    }
}

/// The length of a run: `optimization.steps` or `optimization.epochs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunLength {
    /// Optimiser steps.
    Steps(u64),
    /// Epochs: steps = epochs / q.
    Epochs(f64),
}

impl OptimizationSection {
    /// Exactly one of `steps` (≥ 1) and `epochs` (> 0).
    pub fn length(&self) -> Result<RunLength, String> {
        match (self.epochs, self.steps) {
            (Some(_), Some(_)) => Err("optimization: give epochs or steps, not both".into()),
            (None, None) => Err("optimization: give epochs or steps".into()),
            (Some(e), None) if !(e.is_finite() && e > 0.0) => {
                Err(format!("optimization.epochs = {e} must be a finite number > 0"))
            }
            (Some(e), None) => Ok(RunLength::Epochs(e)),
            (None, Some(0)) => Err("optimization.steps must be at least 1".into()),
            (None, Some(s)) => Ok(RunLength::Steps(s)),
        }
    }
}

/// How σ is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseLevel {
    /// `privacy.noise_multiplier` as given (a `target_epsilon` beside it is the budget only).
    Given(f64),
    /// Calibrated so that the planned run reaches `privacy.target_epsilon`.
    Calibrated(f64),
}

impl PrivacySection {
    /// σ as given, or the ε to calibrate it to.
    pub fn noise(&self) -> Result<NoiseLevel, String> {
        match (self.noise_multiplier, self.target_epsilon) {
            (Some(s), _) => Ok(NoiseLevel::Given(s)),
            (None, Some(e)) => Ok(NoiseLevel::Calibrated(e)),
            (None, None) => Err("privacy: give target_epsilon (σ is calibrated) or noise_multiplier".into()),
        }
    }
}

impl RunConfig {
    /// Range and consistency checks, naming the key.
    pub fn check(&self) -> Result<(), String> {
        self.model.source()?;
        self.method.check()?;
        if self.task.max_length < 2 {
            return Err(format!("task.max_length = {} must be at least 2", self.task.max_length));
        }
        let o = &self.optimization;
        if !(o.learning_rate.is_finite() && o.learning_rate > 0.0) {
            return Err(format!("optimization.learning_rate = {} must be a finite number > 0", o.learning_rate));
        }
        if let Some(h) = o.head_learning_rate {
            if !(h.is_finite() && h > 0.0) {
                return Err(format!("optimization.head_learning_rate = {h} must be a finite number > 0"));
            }
        }
        if o.batch_size == 0 || o.physical_batch_size == 0 {
            return Err("optimization.batch_size and physical_batch_size must be at least 1".into());
        }
        o.length()?;
        if let Some(b) = o.ema_decay {
            if !(b > 0.0 && b < 1.0) {
                return Err(format!(
                    "optimization.ema_decay = {b} must lie in (0, 1) (remove it to evaluate the last iterate)"
                ));
            }
        }
        if !(o.weight_decay >= 0.0 && (0.0..1.0).contains(&o.momentum)) {
            return Err("optimization.weight_decay must be ≥ 0 and momentum in [0, 1)".into());
        }
        if let Privacy::Dp(p) = &self.privacy {
            p.noise()?;
            if let Some(e) = p.target_epsilon {
                if !(e.is_finite() && e > 0.0) {
                    return Err(format!("privacy.target_epsilon = {e} must be a finite number > 0"));
                }
            }
            if let Some(s) = p.noise_multiplier {
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!(
                        "privacy.noise_multiplier = {s} must be a finite number > 0 (use privacy: none to train without noise)"
                    ));
                }
            }
            if !(p.max_grad_norm.is_finite() && p.max_grad_norm > 0.0) {
                return Err(format!("privacy.max_grad_norm = {} must be a finite number > 0", p.max_grad_norm));
            }
            if let Some(d) = p.delta {
                if !(d > 0.0 && d < 1.0) {
                    return Err(format!("privacy.delta = {d} must lie in (0, 1)"));
                }
            }
        }
        if self.generation.num_beams == 0 || self.generation.max_new_tokens == 0 || self.generation.batch_size == 0 {
            return Err("generation.num_beams, max_new_tokens and batch_size must be at least 1".into());
        }
        if self.generation.min_new_tokens > self.generation.max_new_tokens {
            return Err(format!(
                "generation.min_new_tokens = {} exceeds generation.max_new_tokens = {}",
                self.generation.min_new_tokens, self.generation.max_new_tokens
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "
model: {path: m}
task: {name: e2e}
optimization: {learning_rate: 2e-3, batch_size: 1024, epochs: 10}
privacy: {target_epsilon: 3, max_grad_norm: 0.1}
";

    fn parse(text: &str, sets: &[&str]) -> Result<RunConfig, String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        from_text(text, Path::new("x.yaml"), &sets).map_err(|e| e.0)
    }

    #[test]
    fn defaults_and_overrides() {
        let c =
            parse(BASE, &["optimization.learning_rate=5e-4", "privacy.accountant=prv", "task.max_train_examples=64"])
                .unwrap();
        assert_eq!(c.optimization.learning_rate, 5e-4);
        assert_eq!(c.task.max_train_examples, Some(64));
        assert_eq!(c.optimization.physical_batch_size, 16);
        let Privacy::Dp(p) = &c.privacy else { panic!() };
        assert_eq!(
            (p.accountant, p.sampler, p.clipping_mode),
            (BudgetAccountant::Prv, SamplerName::Poisson, ClipMode::Bk)
        );
        let c = parse(BASE, &["privacy=none"]).unwrap();
        assert!(matches!(c.privacy, Privacy::None));
    }

    #[test]
    fn type_errors_name_key_value_type_and_the_set_to_blame() {
        let e = parse(BASE, &["optimization.learning_rate=fast"]).unwrap_err();
        assert_eq!(
            e,
            "x.yaml: optimization.learning_rate = \"fast\" (from --set optimization.learning_rate=fast): needs a number (e.g. 1e-3)"
        );
        let e = parse(BASE, &["optimization=3"]).unwrap_err();
        assert!(e.contains("optimization = 3 (from --set optimization=3): needs a mapping"), "{e}");
        let e = parse(BASE, &["privacy.noise_seed=123"]).unwrap_err();
        assert!(e.contains("privacy.noise_seed = 123") && e.contains("`secure` or `fixed`"), "{e}");
        let e = parse(BASE, &["privacy.max_grad_norm=inf"]).unwrap_err();
        assert!(e.contains("needs a finite number"), "{e}");
        let e = parse(&BASE.replace("max_grad_norm: 0.1", "max_grad_norm: .inf"), &[]).unwrap_err();
        assert!(e.contains("privacy.max_grad_norm = inf must be a finite number > 0") && !e.contains("--set"), "{e}");
        let e = parse(BASE, &["optimization.steps=[1,2"]).unwrap_err();
        assert!(e.starts_with("--set optimization.steps=[1,2: the value \"[1,2\" is malformed YAML"), "{e}");
        let e = parse(&BASE.replace("learning_rate: 2e-3", "learning_rate: fast"), &[]).unwrap_err();
        assert!(e.contains("optimization.learning_rate = \"fast\": needs a number") && !e.contains("--set"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_read_and_an_empty_file_is_named() {
        assert!(parse(&format!("\u{feff}{BASE}"), &[]).is_ok());
        assert_eq!(parse(" \n", &[]).unwrap_err(), "x.yaml: the file is empty; expected a YAML mapping");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = parse(BASE, &["optimization.learnig_rate=1"]).unwrap_err();
        assert!(e.contains("learnig_rate") && e.contains("x.yaml"), "{e}");
        let e = parse(BASE, &["privacy.target_epsilon=0"]).unwrap_err();
        assert!(e.contains("target_epsilon = 0"), "{e}");
        let e = parse(BASE, &["privacy.max_grad_norm=-1"]).unwrap_err();
        assert!(e.contains("max_grad_norm = -1"), "{e}");
        let e = parse(BASE, &["privacy.sampler=shuffle"]).unwrap_err();
        assert!(
            e.contains("x.yaml: privacy.sampler = shuffle (from --set privacy.sampler=shuffle): needs one of `poisson` or `fixed_size`"),
            "{e}"
        );
        let e = parse(BASE, &["optimization.schedule=cosine"]).unwrap_err();
        assert!(e.contains("optimization.schedule") && e.contains("`linear`"), "{e}");
        let e = parse(BASE, &["privacy.clipping_mode=fast"]).unwrap_err();
        assert!(e.contains("privacy.clipping_mode") && e.contains("`naive`"), "{e}");
        let e = parse(BASE, &["task.eval_split=validation"]).unwrap_err();
        assert!(e.contains("task.eval_split") && e.contains("validation"), "{e}");
        let e = parse(BASE, &["method.name=lora", "method.top_k=3"]).unwrap_err();
        assert!(e.contains("method.top_k applies to method.name = topk only, not lora; remove it"), "{e}");
        let e = parse(BASE, &["privacy=yes"]).unwrap_err();
        assert!(e.contains("privacy") && e.contains("`none` or a mapping"), "{e}");
        let e = parse("model: {path: m}\n", &[]).unwrap_err();
        assert!(e.contains("missing field"), "{e}");
        assert!(parse(BASE, &["nokey"]).is_err());
    }

    /// Resolved configs written by the string-typed config (tests/fixtures/run-configs, the mini Table 2
    /// sweep's, and the committed pretraining config) read back to the same text: configs, config hashes
    /// and `--resume` of runs made before the change keep matching.
    #[test]
    fn committed_run_configs_round_trip_byte_for_byte() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/run-configs"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.push(root.join("../../results/pretrained/gpt2-mini/pretrain-config.yaml"));
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let config = from_tree(parse_yaml(&text, path).unwrap(), path).unwrap();
            assert_eq!(to_yaml(&config), text, "{}", path.display());
        }
        assert_eq!(files.len(), 19, "the 18 sweep configs and the pretraining config");
    }
}
