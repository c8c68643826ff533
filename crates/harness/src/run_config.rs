//! The run config of `dpft train`: a YAML file with `model`, `task`, `method`, `optimization`, `privacy`
//! and `generation` sections, every struct `deny_unknown_fields` so that a mistyped key is an error naming
//! it. `--set a.b=value` overrides are applied to the YAML tree before it is checked. YAML goes through
//! [`parse_yaml`] / [`to_yaml`] only (serde_norway, the maintained fork of serde_yaml).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::exit::BadInput;

/// A whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model to start from.
    pub model: ModelSection,
    /// The data.
    pub task: TaskSection,
    /// Which parameters train (`full` only so far).
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
    #[serde(default = "f32_name")]
    pub dtype: String,
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
    pub name: String,
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
    pub eval_split: String,
    /// The training split (train, or subset-train / kshot-train for the GLUE subsets).
    #[serde(default = "train_split")]
    pub train_split: String,
    /// Classification tasks: `prompt` (the paper's MLM head at `<mask>`, LM-BFF templates) or
    /// `classifier` (a sequence-classification head, the baseline).
    #[serde(default = "prompt")]
    pub head: String,
    /// Plain-text files for `name: text` (relative to the data directory unless absolute).
    #[serde(default)]
    pub text_files: Vec<PathBuf>,
}

/// `method:` — which parameters train (Li et al. 2022, Table 2). Keys that belong to another method are
/// refused, so that a sweep cannot silently ignore them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSection {
    /// `full` (all parameters), `topk` (only the top `top_k` blocks and the final LayerNorm / the head),
    /// `retrain` (the same architecture from a random initialisation, all parameters), `lora` (rank-`rank`
    /// updates of GPT-2's `c_attn` or the encoders' query and value, everything else frozen), `prefix`
    /// (prefix-tuning: `prefix_length` positions through an MLP of width `mid_dim`; GPT-2) or `rgp`
    /// (reparametrized gradient perturbation of rank `rank`; GPT-2).
    #[serde(default = "full")]
    pub name: String,
    /// Blocks that train with `topk` (default 2, the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// Rank: LoRA (default 4) or RGP (default 1), the paper's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<i64>,
    /// LoRA α; the update is scaled by α/r (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Prefix length L (default 10, the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_length: Option<i64>,
    /// Width of the prefix's MLP reparametrisation (default 512, the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid_dim: Option<i64>,
}

impl Default for MethodSection {
    fn default() -> Self {
        Self { name: full(), top_k: None, rank: None, alpha: None, prefix_length: None, mid_dim: None }
    }
}

impl MethodSection {
    /// `top_k`, default 2.
    pub fn top_k(&self) -> usize {
        self.top_k.unwrap_or(2)
    }

    /// `rank`, default 4 (LoRA) or 1 (RGP).
    pub fn rank(&self) -> i64 {
        self.rank.unwrap_or(if self.name == "rgp" { 1 } else { 4 })
    }

    /// `alpha`, default 8.
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(8.0)
    }

    /// `prefix_length`, default 10.
    pub fn prefix_length(&self) -> i64 {
        self.prefix_length.unwrap_or(10)
    }

    /// `mid_dim`, default 512.
    pub fn mid_dim(&self) -> i64 {
        self.mid_dim.unwrap_or(512)
    }

    /// Refuses keys of other methods and out-of-range values, naming the key.
    fn check(&self) -> Result<(), String> {
        one_of("method.name", &self.name, &["full", "topk", "retrain", "lora", "prefix", "rgp"])?;
        let given = [
            ("top_k", self.top_k.is_some(), &["topk"][..]),
            ("rank", self.rank.is_some(), &["lora", "rgp"][..]),
            ("alpha", self.alpha.is_some(), &["lora"][..]),
            ("prefix_length", self.prefix_length.is_some(), &["prefix"][..]),
            ("mid_dim", self.mid_dim.is_some(), &["prefix"][..]),
        ];
        for (key, present, methods) in given {
            if present && !methods.contains(&self.name.as_str()) {
                return Err(format!(
                    "method.{key} applies to method.name = {} only, not {}; remove it",
                    methods.join(" or "),
                    self.name
                ));
            }
        }
        if self.top_k() == 0 {
            return Err("method.top_k must be at least 1".into());
        }
        if self.rank() < 1 {
            return Err(format!("method.rank = {} must be at least 1", self.rank()));
        }
        if !(self.alpha().is_finite() && self.alpha() > 0.0) {
            return Err(format!("method.alpha = {} must be > 0", self.alpha()));
        }
        if self.prefix_length() < 1 || self.mid_dim() < 1 {
            return Err("method.prefix_length and method.mid_dim must be at least 1".into());
        }
        Ok(())
    }
}

/// `optimization:`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizationSection {
    /// sgd, adam or adamw.
    #[serde(default = "adam")]
    pub optimizer: String,
    /// Learning rate.
    pub learning_rate: f64,
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
    pub schedule: String,
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
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match &v {
            Value::String(s) if s == "none" => Ok(Self::None),
            Value::Mapping(_) => {
                PrivacySection::deserialize(v).map(Self::Dp).map_err(|e| D::Error::custom(format!("privacy: {e}")))
            }
            _ => Err(D::Error::custom(
                "privacy: expected `none` or a mapping of DP settings (target_epsilon, max_grad_norm, …)",
            )),
        }
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
    #[serde(default = "bk")]
    pub clipping_mode: String,
    /// flat, per_layer or automatic.
    #[serde(default = "flat")]
    pub clipping_style: String,
    /// rdp or prv: calibrates σ and enforces the budget (all are reported).
    #[serde(default = "rdp")]
    pub accountant: String,
    /// poisson or fixed_size.
    #[serde(default = "poisson")]
    pub sampler: String,
    /// Randomness of the noise and the batch sampler: `secure` (default: OS randomness; the sampler's key
    /// is kept in the checkpoint so that a resume continues its stream) or `fixed` (derived from
    /// optimization.seed: reproducible, for research; anyone who knows the seed can recompute the noise and
    /// the batches, so the guarantee then holds only while the seed is secret).
    #[serde(default = "secure")]
    pub noise_seed: String,
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

fn f32_name() -> String {
    "f32".into()
}
fn max_length_default() -> usize {
    100
}
fn dev() -> String {
    "dev".into()
}
fn train_split() -> String {
    "train".into()
}
fn prompt() -> String {
    "prompt".into()
}
fn full() -> String {
    "full".into()
}
fn adam() -> String {
    "adam".into()
}
fn physical_default() -> usize {
    16
}
fn constant() -> String {
    "constant".into()
}
fn bk() -> String {
    "bk".into()
}
fn flat() -> String {
    "flat".into()
}
fn rdp() -> String {
    "rdp".into()
}
fn poisson() -> String {
    "poisson".into()
}
fn secure() -> String {
    "secure".into()
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
    let value: Value = serde_norway::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
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
    let mut tree = parse_yaml(&text, path)?;
    for o in overrides {
        apply_override(&mut tree, o)?;
    }
    from_tree(tree, path)
}

/// Checks a YAML tree against [`RunConfig`] and the ranges of its values.
pub fn from_tree(tree: Value, path: &Path) -> Result<RunConfig, BadInput> {
    let config: RunConfig = serde_norway::from_value(tree).map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    config.check().map_err(|m| BadInput(format!("{}: {m}", path.display())))?;
    Ok(config)
}

fn one_of(key: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("{key} = \"{value}\" is not one of {}", allowed.join(", ")))
    }
}

impl RunConfig {
    /// Range and consistency checks, naming the key.
    pub fn check(&self) -> Result<(), String> {
        match (&self.model.path, &self.model.config) {
            (Some(_), Some(_)) => return Err("model: give either path or config (with tokenizer), not both".into()),
            (None, None) => return Err("model: give path (a Hugging Face folder) or config + tokenizer".into()),
            (None, Some(_)) if self.model.tokenizer.is_none() => {
                return Err("model.tokenizer is needed with model.config (a folder with tokenizer files)".into())
            }
            _ => {}
        }
        one_of("model.dtype", &self.model.dtype, &["f32", "f64", "bf16"])?;
        one_of("task.name", &self.task.name, &["e2e", "dart", "sst2", "qnli", "mnli", "qqp", "text"])?;
        self.method.check()?;
        one_of("task.head", &self.task.head, &["prompt", "classifier"])?;
        if self.task.max_length < 2 {
            return Err(format!("task.max_length = {} must be at least 2", self.task.max_length));
        }
        let o = &self.optimization;
        one_of("optimization.optimizer", &o.optimizer, &["sgd", "adam", "adamw"])?;
        one_of("optimization.schedule", &o.schedule, &["constant", "linear"])?;
        if !(o.learning_rate.is_finite() && o.learning_rate > 0.0) {
            return Err(format!("optimization.learning_rate = {} must be > 0", o.learning_rate));
        }
        if o.batch_size == 0 || o.physical_batch_size == 0 {
            return Err("optimization.batch_size and physical_batch_size must be at least 1".into());
        }
        match (o.epochs, o.steps) {
            (Some(_), Some(_)) => return Err("optimization: give epochs or steps, not both".into()),
            (None, None) => return Err("optimization: give epochs or steps".into()),
            (Some(e), None) if !(e.is_finite() && e > 0.0) => {
                return Err(format!("optimization.epochs = {e} must be > 0"))
            }
            (None, Some(0)) => return Err("optimization.steps must be at least 1".into()),
            _ => {}
        }
        if !(o.weight_decay >= 0.0 && (0.0..1.0).contains(&o.momentum)) {
            return Err("optimization.weight_decay must be ≥ 0 and momentum in [0, 1)".into());
        }
        if let Privacy::Dp(p) = &self.privacy {
            if p.target_epsilon.is_none() && p.noise_multiplier.is_none() {
                return Err("privacy: give target_epsilon (σ is calibrated) or noise_multiplier".into());
            }
            if let Some(e) = p.target_epsilon {
                if !(e.is_finite() && e > 0.0) {
                    return Err(format!("privacy.target_epsilon = {e} must be > 0"));
                }
            }
            if let Some(s) = p.noise_multiplier {
                if !(s.is_finite() && s > 0.0) {
                    return Err(format!(
                        "privacy.noise_multiplier = {s} must be > 0 (use privacy: none to train without noise)"
                    ));
                }
            }
            if !(p.max_grad_norm.is_finite() && p.max_grad_norm > 0.0) {
                return Err(format!("privacy.max_grad_norm = {} must be > 0", p.max_grad_norm));
            }
            if let Some(d) = p.delta {
                if !(d > 0.0 && d < 1.0) {
                    return Err(format!("privacy.delta = {d} must lie in (0, 1)"));
                }
            }
            one_of("privacy.clipping_mode", &p.clipping_mode, &["bk", "ghost", "naive"])?;
            one_of("privacy.clipping_style", &p.clipping_style, &["flat", "per_layer", "automatic"])?;
            one_of("privacy.accountant", &p.accountant, &["rdp", "prv"])?;
            one_of("privacy.sampler", &p.sampler, &["poisson", "fixed_size"])?;
            one_of("privacy.noise_seed", &p.noise_seed, &["fixed", "secure"])?;
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
        let mut tree = parse_yaml(text, Path::new("x.yaml")).map_err(|e| e.0)?;
        for s in sets {
            apply_override(&mut tree, s).map_err(|e| e.0)?;
        }
        from_tree(tree, Path::new("x.yaml")).map_err(|e| e.0)
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
        assert_eq!((p.accountant.as_str(), p.sampler.as_str(), p.clipping_mode.as_str()), ("prv", "poisson", "bk"));
        let c = parse(BASE, &["privacy=none"]).unwrap();
        assert!(matches!(c.privacy, Privacy::None));
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
        assert!(e.contains("privacy.sampler"), "{e}");
        let e = parse("model: {path: m}\n", &[]).unwrap_err();
        assert!(e.contains("missing field"), "{e}");
        assert!(parse(BASE, &["nokey"]).is_err());
    }
}
