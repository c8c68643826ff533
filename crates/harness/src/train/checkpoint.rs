//! Checkpoints of a run: parameters, optimiser moments, the iterate average (when kept), the sampler's
//! stream position, the accountant's history and the step, in `OUT/checkpoints/step-K/`. Written into `step-K.tmp/` and renamed into place,
//! then `OUT/checkpoints/latest` (a file naming the folder) is replaced by a rename: a kill at any moment
//! leaves the previous checkpoint intact and `latest` pointing at a complete one. `latest` names only a
//! `step-K` folder of this run, and no link in `checkpoints/` is followed. Noise needs no state:
//! its stream is keyed by (seed, step, tensor); dropout is reseeded from (seed, step) at every step.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dp_core::accounting::History;
use models::safe_fs;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::exit::BadInput;

/// The small state of a checkpoint (`state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// Steps completed.
    pub step: u64,
    /// Optimiser steps taken (equals `step`).
    pub optimizer_step: u64,
    /// The sampler's stream position (decimal: a u128).
    pub sampler_position: String,
    /// The privacy ledger so far (JSON of the accountant history; empty when non-private).
    pub history: String,
    /// σ in use.
    pub noise_multiplier: Option<f64>,
    /// Hash of the run config the checkpoint belongs to (a resume with another config is refused).
    pub config_hash: String,
    /// Training examples n (a resume on other data is refused).
    pub dataset_size: usize,
    /// Sampling rate q.
    pub sample_rate: f64,
    /// SHA-256 of the featurised training set (a resume on other data of the same size is refused; a
    /// checkpoint without one, from an older dpft, cannot be resumed).
    #[serde(default)]
    pub data_fingerprint: Option<String>,
    /// Wall time of the run's segments up to this checkpoint, in seconds.
    #[serde(default)]
    pub elapsed_s: f64,
    /// The largest resident-set high-water mark of those segments.
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// Segments (the start and each resume) up to this checkpoint.
    #[serde(default)]
    pub segments: u32,
}

/// What a checkpoint restores.
pub struct Restored {
    /// The state.
    pub state: TrainState,
    /// Parameters by name.
    pub parameters: Vec<(String, Tensor)>,
    /// Optimiser moments by name.
    pub optimizer: Vec<(String, Tensor)>,
    /// The iterate average (`optimization.ema_decay`; empty without one).
    pub average: Vec<(String, Tensor)>,
}

fn dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

fn cpu(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors.iter().map(|(n, t)| (n.clone(), t.detach().to_device(tch::Device::Cpu).contiguous())).collect()
}

/// Writes the checkpoint of `state` and removes older ones. Every name is written through
/// [`models::safe_fs`]: a link planted at `step-K.tmp/`, `step-K/` or `latest`'s temporary is removed, never
/// followed.
pub fn save(
    out: &Path,
    state: &TrainState,
    parameters: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
    average: &[(String, Tensor)],
) -> Result<()> {
    let root = dir(out);
    refuse_link(&root)?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let name = format!("step-{}", state.step);
    let final_dir = root.join(&name);
    if final_dir.is_dir() && !safe_fs::is_link(&final_dir) && latest_name(&root).is_ok_and(|l| l == name) {
        return Ok(()); // this very step is already the latest checkpoint
    }
    let tmp = root.join(format!("{name}.tmp"));
    safe_fs::fresh_dir(&tmp)?;
    Tensor::write_safetensors(&cpu(parameters), tmp.join("model.safetensors"))
        .context("writing the model checkpoint")?;
    if !optimizer.is_empty() {
        Tensor::write_safetensors(&cpu(optimizer), tmp.join("optimizer.safetensors"))
            .context("writing the optimizer state")?;
    }
    if !average.is_empty() {
        Tensor::write_safetensors(&cpu(average), tmp.join(AVERAGE)).context("writing the iterate average")?;
    }
    safe_fs::write_atomic(&tmp.join("state.json"), serde_json::to_string_pretty(state)?.as_bytes())
        .context("writing state.json")?;
    // A folder of this name that `latest` does not point to is a leftover of an interrupted attempt.
    safe_fs::replace_dir(&tmp, &final_dir)?;
    safe_fs::write_atomic(&root.join(LATEST), name.as_bytes())?;
    // Older checkpoints go only after `latest` names the new one.
    for entry in std::fs::read_dir(&root)?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with("step-") && n != name {
            let _ = safe_fs::remove_entry(&entry.path());
        }
    }
    Ok(())
}

/// The iterate average's file in a checkpoint folder.
const AVERAGE: &str = "average.safetensors";

/// The file naming the latest complete checkpoint folder.
const LATEST: &str = "latest";

/// Whether `out` holds a checkpoint.
pub fn exists(out: &Path) -> bool {
    std::fs::symlink_metadata(dir(out).join(LATEST)).is_ok()
}

fn refuse_link(path: &Path) -> Result<()> {
    if safe_fs::is_link(path) {
        bail!(BadInput(format!(
            "{} is a symbolic link: dpft reads and writes a run's checkpoints only inside its run folder; remove the link",
            path.display()
        )));
    }
    Ok(())
}

/// The folder `latest` names: exactly `step-K` (digits), a plain file, so that it can only name a folder
/// of this run's `checkpoints/` (an absolute path or `..` there once loaded another run's checkpoint).
fn latest_name(root: &Path) -> Result<String> {
    let path = root.join(LATEST);
    refuse_link(&path)?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("no checkpoint in {}", root.display()))?;
    let name = text.trim();
    let valid = name.strip_prefix("step-").is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        bail!(BadInput(format!(
            "{}: names {name:?}, not a checkpoint folder of this run (step-K); the checkpoints are damaged or were tampered with: start a new --out",
            path.display()
        )));
    }
    Ok(name.to_string())
}

/// Reads the latest checkpoint of `out`.
pub fn load(out: &Path) -> Result<Restored> {
    let root = dir(out);
    refuse_link(&root)?;
    let folder = root.join(latest_name(&root)?);
    refuse_link(&folder)?;
    let state: TrainState = serde_json::from_str(
        &std::fs::read_to_string(folder.join("state.json"))
            .with_context(|| format!("reading {}/state.json", folder.display()))?,
    )
    .with_context(|| format!("{}/state.json is corrupt", folder.display()))?;
    let parameters = Tensor::read_safetensors(folder.join("model.safetensors"))
        .with_context(|| format!("reading {}/model.safetensors", folder.display()))?;
    let opt_path = folder.join("optimizer.safetensors");
    let optimizer = if opt_path.is_file() { Tensor::read_safetensors(&opt_path)? } else { Vec::new() };
    let avg_path = folder.join(AVERAGE);
    let average = if avg_path.is_file() {
        Tensor::read_safetensors(&avg_path).with_context(|| format!("reading {}", avg_path.display()))?
    } else {
        Vec::new()
    };
    if History::from_json(&state.history).is_err() && !state.history.is_empty() {
        bail!("{}/state.json: the privacy history is corrupt", folder.display());
    }
    Ok(Restored { state, parameters, optimizer, average })
}

/// Copies checkpointed values into the model's tensors (same names and shapes, all of them).
pub fn restore_parameters(into: &[(String, Tensor)], from: &[(String, Tensor)]) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for (name, t) in into {
            let saved = from
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s)
                .with_context(|| format!("the checkpoint has no tensor `{name}`: it belongs to another model"))?;
            if saved.size() != t.size() {
                bail!("checkpoint tensor `{name}` has shape {:?}, the model {:?}", saved.size(), t.size());
            }
            t.shallow_clone().copy_(&saved.to_device(t.device()).to_kind(t.kind()));
        }
        Ok(())
    })
}
