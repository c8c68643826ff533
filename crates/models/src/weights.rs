//! Where a model's tensors come from: a `model.safetensors` file under Hugging Face names, or a seeded
//! random initialisation (Hugging Face's: N(0, initializer_range²) for weights, zeros for biases, ones for
//! LayerNorm γ).
//!
//! Names: a checkpoint saved from a model with a head (`GPT2LMHeadModel`, `RobertaForMaskedLM`, …) holds
//! the base model under its `base_model_prefix` (`transformer.`, `roberta.`, `bert.`); one saved from the
//! base model (the original `gpt2` files, sentence-transformers' MiniLM) holds it without. As in Hugging
//! Face, the rule is structural, not a guess: the prefix is used iff some tensor name starts with it. The
//! names the model reports (and `dpft clip-check --dump` writes) are the file's own.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use tch::{Device, Kind, Tensor};

use crate::error::Misshaped;
use crate::ModelError;

/// How a tensor absent from the source is initialised.
#[derive(Clone, Copy, Debug)]
pub enum Init {
    /// N(0, std²).
    Normal(f64),
    /// All zeros (biases, LayerNorm β).
    Zeros,
    /// All ones (LayerNorm γ).
    Ones,
}

/// A source of named tensors for building one model.
pub struct Weights {
    path: PathBuf,
    tensors: Option<HashMap<String, Tensor>>,
    prefix: String,
    kind: Kind,
    device: Device,
    used: BTreeSet<String>,
    missing: Vec<String>,
    misshaped: Vec<Misshaped>,
    initialised: Vec<String>,
}

impl Weights {
    /// Reads safetensors files; `base_prefix` is the model class's base prefix without the dot.
    /// Tensors are converted to `kind` on `device`.
    /// Several files (the shards of `model.safetensors.index.json`) are read into one name space; `path`
    /// names the first in errors.
    pub fn from_safetensors(
        paths: &[PathBuf],
        base_prefix: &str,
        kind: Kind,
        device: Device,
    ) -> Result<Self, ModelError> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for path in paths {
            let list = Tensor::read_safetensors(path).map_err(|e| ModelError::BadWeights {
                path: path.to_path_buf(),
                message: format!("not a readable safetensors file ({e}); re-save the model with save_pretrained"),
            })?;
            // Legacy LayerNorm names of early BERT checkpoints (bert-base-uncased's files): `LayerNorm.gamma`
            // / `.beta` are `LayerNorm.weight` / `.bias`, as Hugging Face reads them.
            tensors.extend(list.into_iter().map(|(name, t)| {
                let name = match (name.strip_suffix("LayerNorm.gamma"), name.strip_suffix("LayerNorm.beta")) {
                    (Some(stem), _) => format!("{stem}LayerNorm.weight"),
                    (_, Some(stem)) => format!("{stem}LayerNorm.bias"),
                    _ => name,
                };
                (name, t)
            }));
        }
        let path = paths.first().cloned().unwrap_or_default();
        let with_dot = format!("{base_prefix}.");
        let prefix = if tensors.keys().any(|k| k.starts_with(&with_dot)) { with_dot } else { String::new() };
        Ok(Self::new(path, Some(tensors), prefix, kind, device))
    }

    /// Random initialisation (seeded by the caller through `tch::manual_seed`), base tensors named under
    /// `base_prefix` as a head model's checkpoint would name them.
    pub fn random(base_prefix: &str, kind: Kind, device: Device) -> Self {
        Self::new(PathBuf::from("<random initialisation>"), None, format!("{base_prefix}."), kind, device)
    }

    fn new(
        path: PathBuf,
        tensors: Option<HashMap<String, Tensor>>,
        prefix: String,
        kind: Kind,
        device: Device,
    ) -> Self {
        Self {
            path,
            tensors,
            prefix,
            kind,
            device,
            used: BTreeSet::new(),
            missing: Vec::new(),
            misshaped: Vec::new(),
            initialised: Vec::new(),
        }
    }

    /// The prefix of base-model tensors in this source (`"transformer."` or `""`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The dtype tensors are converted to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The device tensors are moved to.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Whether the source holds tensor `name` (full name).
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.as_ref().is_some_and(|t| t.contains_key(name))
    }

    fn init(&self, shape: &[i64], init: Init) -> Tensor {
        let opts = (self.kind, self.device);
        match init {
            Init::Normal(std) => Tensor::randn(shape, (Kind::Float, self.device)).to_kind(self.kind) * std,
            Init::Zeros => Tensor::zeros(shape, opts),
            Init::Ones => Tensor::ones(shape, opts),
        }
    }

    /// A trainable leaf tensor from `t`.
    fn leaf(&self, t: Tensor) -> Tensor {
        t.to_device(self.device).to_kind(self.kind).detach().contiguous().set_requires_grad(true)
    }

    /// The tensor `name` (full name) of shape `shape`; in random mode initialised by `init`. A missing or
    /// mis-shaped tensor is recorded (reported together by [`finish`](Self::finish)) and replaced by an
    /// initialised one so that building can go on and list every problem at once.
    pub fn get(&mut self, name: &str, shape: &[i64], init: Init) -> Tensor {
        let found = match &self.tensors {
            None => return self.leaf(self.init(shape, init)),
            Some(map) => map.get(name).map(Tensor::shallow_clone),
        };
        match found {
            Some(t) if t.size() == shape => {
                self.used.insert(name.to_string());
                self.leaf(t)
            }
            Some(t) => {
                self.used.insert(name.to_string());
                self.misshaped.push(Misshaped { name: name.into(), expected: shape.to_vec(), found: t.size() });
                self.leaf(self.init(shape, init))
            }
            None => {
                self.missing.push(name.into());
                self.leaf(self.init(shape, init))
            }
        }
    }

    /// A base-model tensor: `name` under the source's prefix.
    pub fn base(&mut self, name: &str, shape: &[i64], init: Init) -> Tensor {
        let full = format!("{}{name}", self.prefix);
        self.get(&full, shape, init)
    }

    /// A head tensor that may be absent (a checkpoint of the base model only): taken when present,
    /// initialised by `init` and listed in [`initialised`](Self::initialised) otherwise.
    pub fn optional(&mut self, name: &str, shape: &[i64], init: Init) -> Tensor {
        if self.tensors.is_some() && !self.contains(name) {
            self.initialised.push(name.to_string());
            return self.leaf(self.init(shape, init));
        }
        self.get(name, shape, init)
    }

    /// Marks `name` as read without building a tensor (a tensor the model takes from elsewhere, such as a
    /// tied decoder weight equal to the embedding).
    pub fn mark_used(&mut self, name: &str) {
        if self.contains(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Takes a tensor by name as stored (for checks of tied copies).
    pub fn raw(&self, name: &str) -> Option<Tensor> {
        self.tensors.as_ref().and_then(|m| m.get(name).map(Tensor::shallow_clone))
    }

    /// Ends building: fails listing every missing, mis-shaped and unexpected tensor. `ignorable(name)`
    /// says which unused names are known to carry nothing this model needs (buffers such as GPT-2's
    /// `attn.bias` mask, another head's tensors); those are returned so the caller can log them.
    /// Returns (ignored unused tensors, initialised head tensors).
    pub fn finish(self, ignorable: impl Fn(&str) -> bool) -> Result<(Vec<String>, Vec<String>), ModelError> {
        let mut unexpected = Vec::new();
        let mut ignored = Vec::new();
        if let Some(map) = &self.tensors {
            let mut names: Vec<&String> = map.keys().filter(|k| !self.used.contains(*k)).collect();
            names.sort();
            for name in names {
                if ignorable(name) {
                    ignored.push(name.clone());
                } else {
                    unexpected.push(name.clone());
                }
            }
        }
        if self.missing.is_empty() && self.misshaped.is_empty() && unexpected.is_empty() {
            Ok((ignored, self.initialised))
        } else {
            Err(ModelError::Tensors { path: self.path, missing: self.missing, unexpected, misshaped: self.misshaped })
        }
    }
}

/// The parameters of `layers`, each tensor once (a tensor shared by two layers, such as a tied head, under
/// the name of its first owner), in layer order.
pub fn unique_parameters(layers: &[&dyn dp_core::engine::DpLayer]) -> Vec<(String, Tensor)> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for layer in layers {
        for (name, t) in layer.parameters() {
            if seen.insert(t.data_ptr() as usize) {
                out.push((name, t));
            }
        }
    }
    out
}

/// A LayerNorm `name` (base-model name) of width `d` from `w`: γ initialised to ones, β to zeros.
pub(crate) fn layer_norm(w: &mut Weights, name: &str, d: i64, eps: f64) -> dp_core::engine::LayerNorm {
    dp_core::engine::LayerNorm {
        name: format!("{}{name}", w.prefix()),
        weight: w.base(&format!("{name}.weight"), &[d], Init::Ones),
        bias: w.base(&format!("{name}.bias"), &[d], Init::Zeros),
        eps,
    }
}
