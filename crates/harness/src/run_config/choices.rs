//! The run config's closed sets of values, as enums with their YAML spellings: an invalid value fails when
//! the file is read, naming the key and the allowed values (serde's "unknown variant `x`, expected …",
//! prefixed with the dotted key), and nothing downstream matches a string again.

use std::fmt;

use dp_core::accounting::AccountantKind;
use serde::{Deserialize, Serialize};

use crate::tasks::TaskName;

/// Declares a config enum: each variant with its YAML spelling, `name()` and `Display` giving it back.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// The YAML spelling.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

choice! {
    /// `model.dtype`: the parameters' precision.
    Dtype {
        /// 32-bit float (the default).
        F32 = "f32",
        /// 64-bit float (oracle tests).
        F64 = "f64",
        /// bfloat16 (CUDA).
        Bf16 = "bf16",
    }
}

/// `task.name`: one of the paper's tasks (spelt as [`TaskName::name`]), or `text` (causal language
/// modelling on `task.text_files`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum RunTask {
    /// E2E, DART or a GLUE task.
    Paper(TaskName),
    /// Language modelling on plain text files.
    Text,
}

impl RunTask {
    /// The YAML spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Paper(t) => t.name(),
            Self::Text => "text",
        }
    }

    /// The paper's task, or `None` for `text`.
    pub fn paper_task(self) -> Option<TaskName> {
        match self {
            Self::Paper(t) => Some(t),
            Self::Text => None,
        }
    }
}

impl TryFrom<String> for RunTask {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "text" => Ok(Self::Text),
            _ => s.parse().map(Self::Paper).map_err(|e| format!("{e}, or text (plain text files)")),
        }
    }
}

impl From<RunTask> for &'static str {
    fn from(t: RunTask) -> Self {
        t.name()
    }
}

choice! {
    /// `task.head`: how a classification task is read off the encoder.
    Head {
        /// The paper's MLM head at `<mask>` with LM-BFF templates.
        Prompt = "prompt",
        /// A sequence-classification head on the first token (the baseline; Hugging Face's
        /// `*ForSequenceClassification`).
        Classifier = "classifier",
        /// A linear classifier on the mean of the last hidden states over the real tokens: the
        /// representation sentence-embedding checkpoints (sentence-transformers' mean pooling, e.g.
        /// all-MiniLM-L6-v2) are trained to produce.
        MeanPooled = "mean_pooled",
    }
}

choice! {
    /// `method.name`: which parameters train (Li et al. 2022, Table 2).
    MethodName {
        /// All parameters.
        Full = "full",
        /// The top `top_k` blocks, the final LayerNorm and the head.
        Topk = "topk",
        /// The same architecture from a random initialisation.
        Retrain = "retrain",
        /// Low-rank updates.
        Lora = "lora",
        /// Prefix-tuning.
        Prefix = "prefix",
        /// Reparametrized gradient perturbation.
        Rgp = "rgp",
    }
}

choice! {
    /// `optimization.optimizer`.
    OptimizerName {
        /// SGD with optional momentum.
        Sgd = "sgd",
        /// Adam (the paper's DP-Adam).
        Adam = "adam",
        /// AdamW (decoupled weight decay).
        Adamw = "adamw",
    }
}

choice! {
    /// `optimization.schedule`: the learning rate over the run.
    Schedule {
        /// Constant after warm-up.
        Constant = "constant",
        /// Linear decay to 0 after warm-up.
        Linear = "linear",
    }
}

choice! {
    /// `privacy.accountant`: the accountant that calibrates σ and enforces the budget (every accountant
    /// is reported).
    BudgetAccountant {
        /// Rényi DP.
        Rdp = "rdp",
        /// Privacy random variables (upper bound).
        Prv = "prv",
    }
}

impl BudgetAccountant {
    /// The engine's accountant.
    pub fn kind(self) -> AccountantKind {
        match self {
            Self::Rdp => AccountantKind::Rdp,
            Self::Prv => AccountantKind::Prv,
        }
    }
}

choice! {
    /// `privacy.sampler`: how logical batches are drawn.
    SamplerName {
        /// Each example independently with probability q = B/n (add/remove neighbours).
        Poisson = "poisson",
        /// Exactly B examples without replacement (replace-one neighbours).
        FixedSize = "fixed_size",
    }
}

choice! {
    /// `privacy.noise_seed`: where the noise's and the sampler's randomness comes from.
    NoiseSeedMode {
        /// The operating system's randomness.
        Secure = "secure",
        /// Derived from `optimization.seed`: reproducible, for research only.
        Fixed = "fixed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_yaml() {
        for d in [Dtype::F32, Dtype::F64, Dtype::Bf16] {
            let text = serde_norway::to_string(&d).unwrap();
            assert_eq!(text.trim(), d.name());
            assert_eq!(serde_norway::from_str::<Dtype>(&text).unwrap(), d);
        }
        assert_eq!(serde_norway::from_str::<SamplerName>("fixed_size").unwrap(), SamplerName::FixedSize);
        let e = serde_norway::from_str::<SamplerName>("shuffle").unwrap_err().to_string();
        assert!(e.contains("`poisson`") && e.contains("`fixed_size`"), "{e}");
        assert_eq!(serde_norway::from_str::<RunTask>("text").unwrap().paper_task(), None);
        assert_eq!(serde_norway::from_str::<RunTask>("qqp").unwrap().paper_task(), Some(TaskName::Qqp));
        let e = serde_norway::from_str::<RunTask>("cola").unwrap_err().to_string();
        assert!(e.contains("unknown task `cola`; known tasks: e2e, dart, sst2, qnli, mnli, qqp, or text"), "{e}");
    }
}
