//! models: GPT-2, RoBERTa and BERT for dpft, built on libtorch (tch) from dp-core's DP-aware layers.
//!
//! So far this crate holds the data catalogue and the data-directory setting ([`data`]) that every
//! dataset and tokenizer loader goes through. The model families, checkpoint loading and generation
//! follow with the models issue.

pub mod data;

pub use data::{DataDir, DataDirSource, DataError, Dataset, DATA_DIR_ENV};
