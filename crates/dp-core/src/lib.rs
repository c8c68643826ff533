//! dp-core: the differentially private training engine of dpft.
//!
//! Li, Tramèr, Liang & Hashimoto, "Large Language Models Can Be Strong Differentially Private Learners"
//! (ICLR 2022): DP-Adam fine-tuning with per-example clipping computed by ghost clipping. This crate holds
//! everything that is independent of any particular model: device selection, DP-aware layers, per-example
//! norms, clipping, noise, optimizers, samplers and privacy accounting.
//! It knows nothing of GPT-2, RoBERTa or BERT; those live in the `models` crate.

pub mod accounting;
pub mod device;
pub mod engine;

pub use device::{DeviceError, DeviceSpec};
