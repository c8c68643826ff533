//! Errors of model loading and use; each names the file or key at fault and what to do.

use std::path::PathBuf;

/// A tensor whose shape differs from what the config implies.
#[derive(Debug, Clone)]
pub struct Misshaped {
    /// Tensor name.
    pub name: String,
    /// Shape the config implies.
    pub expected: Vec<i64>,
    /// Shape in the file.
    pub found: Vec<i64>,
}

/// Errors of the models crate.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The model folder is not a folder or lacks `config.json`.
    #[error("{}: not a model folder ({what}); expected a Hugging Face model folder with config.json, model.safetensors and tokenizer files", path.display())]
    NotAModel {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// `config.json` is malformed or has an out-of-range or unsupported value.
    #[error("{}: {message}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A `model_type` this crate has no implementation of.
    #[error("{}: model_type \"{model_type}\" is not supported; supported: gpt2, llama, qwen2, mistral, roberta, bert", path.display())]
    UnknownModelType {
        /// The config file.
        path: PathBuf,
        /// The value found ("" when absent).
        model_type: String,
    },
    /// No `model.safetensors`.
    #[error("{}: no model.safetensors{hint}", path.display())]
    MissingWeights {
        /// The folder.
        path: PathBuf,
        /// What to do (e.g. how to convert `pytorch_model.bin`).
        hint: String,
    },
    /// A weights file that cannot be read as safetensors.
    #[error("{}: {message}", path.display())]
    BadWeights {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Tensors missing, unexpected or mis-shaped, all listed.
    #[error("{}: the tensors do not match the config:{}", path.display(), list_problems(missing, unexpected, misshaped))]
    Tensors {
        /// The weights file.
        path: PathBuf,
        /// Names the config requires that the file lacks.
        missing: Vec<String>,
        /// Names in the file that no layer of this model uses.
        unexpected: Vec<String>,
        /// Tensors of the wrong shape.
        misshaped: Vec<Misshaped>,
    },
    /// No usable tokenizer files, or files the tokenizers library refused.
    #[error("{}: {message}", path.display())]
    Tokenizer {
        /// The folder or file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A request the model cannot serve (wrong head, bf16 on CPU, sequence too long, …).
    #[error("{0}")]
    Invalid(String),
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The DP engine refused.
    #[error(transparent)]
    Engine(#[from] dp_core::engine::EngineError),
}

fn list_problems(missing: &[String], unexpected: &[String], misshaped: &[Misshaped]) -> String {
    let mut s = String::new();
    let shown = |names: &[String]| {
        let mut out = names.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
        if names.len() > 20 {
            out.push_str(&format!(", … ({} in all)", names.len()));
        }
        out
    };
    if !missing.is_empty() {
        s.push_str(&format!("\n  missing ({}): {}", missing.len(), shown(missing)));
    }
    if !unexpected.is_empty() {
        s.push_str(&format!("\n  unexpected ({}): {}", unexpected.len(), shown(unexpected)));
    }
    for m in misshaped.iter().take(20) {
        s.push_str(&format!("\n  wrong shape: {} is {:?}, the config implies {:?}", m.name, m.found, m.expected));
    }
    if misshaped.len() > 20 {
        s.push_str(&format!("\n  … {} mis-shaped tensors in all", misshaped.len()));
    }
    s.push_str("\n  check that config.json belongs to these weights (same model and size)");
    s
}

impl ModelError {
    /// Whether the error lies in the user's files or request (exit status 2) rather than in a run-time
    /// failure of libtorch or the engine.
    pub fn is_input_error(&self) -> bool {
        !matches!(self, Self::Torch(_) | Self::Engine(_))
    }
}
