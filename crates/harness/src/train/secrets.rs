//! `OUT/secrets.json`: the run's secret randomness that a resume needs — the batch sampler's 256-bit key in
//! secure mode (the noise has no key then: every draw takes fresh OS bits). It is the one file of a run
//! folder that must never be shared: no checkpoint, model or adapter folder, report or sweep file includes
//! it (checkpoints hold only the sampler's stream position). Written owner-only (mode 0600).
//!
//! Fixed-seed runs need no secrets file: their keys are derived from the seed and the config.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dp_core::engine::keys::{from_hex, to_hex};
use dp_core::engine::Key;
use serde::{Deserialize, Serialize};

use crate::exit::BadInput;

/// The file name inside the run folder.
pub const FILE: &str = "secrets.json";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    /// What the file is and why it stays private.
    note: String,
    /// The sampler's key, 64 hex digits.
    sampler_key: String,
}

fn path(out: &Path) -> PathBuf {
    out.join(FILE)
}

/// Writes the sampler key (replacing an earlier file), owner-only, atomically.
pub fn write(out: &Path, sampler_key: &Key) -> Result<()> {
    let file = SecretsFile {
        note: "secret: the key of this run's batch sampler. Anyone who has it can tell which examples were in which batch, which weakens the privacy guarantee; never share this file (no exported artifact includes it)".into(),
        sampler_key: to_hex(sampler_key),
    };
    models::safe_fs::write_atomic_private(&path(out), (serde_json::to_string_pretty(&file)? + "\n").as_bytes())
        .with_context(|| format!("writing {}", path(out).display()))
}

/// The sampler key of the run in `out`; refuses a missing or damaged file, naming it.
pub fn read_sampler_key(out: &Path) -> Result<Key> {
    let p = path(out);
    let text = std::fs::read_to_string(&p).map_err(|e| {
        BadInput(format!(
            "{}: {e}. This secure-mode run keeps its batch sampler's key there; without it the run cannot continue its batches: start it afresh in a new --out",
            p.display()
        ))
    })?;
    let file: SecretsFile =
        serde_json::from_str(&text).map_err(|e| BadInput(format!("{}: not a dpft secrets file: {e}", p.display())))?;
    from_hex(&file.sampler_key)
        .ok_or_else(|| BadInput(format!("{}: sampler_key is not 64 hex digits", p.display())).into())
}
