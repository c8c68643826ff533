//! Checkpoints of a run: parameters, optimiser moments, the sampler's stream position, the accountant's
//! history and the step, in `OUT/checkpoints/step-K/`. Written into `step-K.tmp/` and renamed into place,
//! then `OUT/checkpoints/latest` (a file naming the folder) is replaced by a rename: a kill at any moment
//! leaves the previous checkpoint intact and `latest` pointing at a complete one. Noise needs no state:
//! its stream is keyed by (seed, step, tensor); dropout is reseeded from (seed, step) at every step.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dp_core::accounting::History;
use serde::{Deserialize, Serialize};
use tch::Tensor;

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
}

/// What a checkpoint restores.
pub struct Restored {
    /// The state.
    pub state: TrainState,
    /// Parameters by name.
    pub parameters: Vec<(String, Tensor)>,
    /// Optimiser moments by name.
    pub optimizer: Vec<(String, Tensor)>,
}

fn dir(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

fn cpu(tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors.iter().map(|(n, t)| (n.clone(), t.detach().to_device(tch::Device::Cpu).contiguous())).collect()
}

/// Writes the checkpoint of `state` and removes older ones.
pub fn save(
    out: &Path,
    state: &TrainState,
    parameters: &[(String, Tensor)],
    optimizer: &[(String, Tensor)],
) -> Result<()> {
    let root = dir(out);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let name = format!("step-{}", state.step);
    let final_dir = root.join(&name);
    if final_dir.is_dir() && std::fs::read_to_string(root.join("latest")).is_ok_and(|l| l.trim() == name) {
        return Ok(()); // this very step is already the latest checkpoint
    }
    let tmp = root.join(format!("{name}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Tensor::write_safetensors(&cpu(parameters), tmp.join("model.safetensors"))
        .context("writing the model checkpoint")?;
    if !optimizer.is_empty() {
        Tensor::write_safetensors(&cpu(optimizer), tmp.join("optimizer.safetensors"))
            .context("writing the optimizer state")?;
    }
    std::fs::write(tmp.join("state.json"), serde_json::to_string_pretty(state)?).context("writing state.json")?;
    // A folder of this name that `latest` does not point to is a leftover of an interrupted attempt.
    let _ = std::fs::remove_dir_all(&final_dir);
    std::fs::rename(&tmp, &final_dir).with_context(|| format!("moving {} into place", tmp.display()))?;
    let latest_tmp = root.join("latest.tmp");
    std::fs::write(&latest_tmp, &name)?;
    std::fs::rename(&latest_tmp, root.join("latest"))?;
    // Older checkpoints go only after `latest` names the new one.
    for entry in std::fs::read_dir(&root)?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with("step-") && n != name {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Whether `out` holds a checkpoint.
pub fn exists(out: &Path) -> bool {
    dir(out).join("latest").is_file()
}

/// Reads the latest checkpoint of `out`.
pub fn load(out: &Path) -> Result<Restored> {
    let root = dir(out);
    let name =
        std::fs::read_to_string(root.join("latest")).with_context(|| format!("no checkpoint in {}", root.display()))?;
    let folder = root.join(name.trim());
    let state: TrainState = serde_json::from_str(
        &std::fs::read_to_string(folder.join("state.json"))
            .with_context(|| format!("reading {}/state.json", folder.display()))?,
    )
    .with_context(|| format!("{}/state.json is corrupt", folder.display()))?;
    let parameters = Tensor::read_safetensors(folder.join("model.safetensors"))
        .with_context(|| format!("reading {}/model.safetensors", folder.display()))?;
    let opt_path = folder.join("optimizer.safetensors");
    let optimizer = if opt_path.is_file() { Tensor::read_safetensors(&opt_path)? } else { Vec::new() };
    if History::from_json(&state.history).is_err() && !state.history.is_empty() {
        bail!("{}/state.json: the privacy history is corrupt", folder.display());
    }
    Ok(Restored { state, parameters, optimizer })
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
