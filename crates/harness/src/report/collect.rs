//! Finding and reading the runs under a results folder.
//!
//! A run folder is a folder with `summary.json` and `config.yaml`, as `dpft train` leaves it; it sits
//! directly in the results folder (`RESULTS/<run>/`) or one level down (`RESULTS/<sweep>/<run>/`, as
//! `dpft sweep` writes them; the sweep's `sweep.json` supplies each run's label and, for failed runs, the
//! error; a run folder its sweep's `sweep.json` does not list is from an earlier version of the sweep
//! file and is skipped). Folders that hold a started run without `summary.json` (unfinished or failed),
//! runs whose files cannot be read, and runs that stopped some other way are listed as skipped, with the
//! reason.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::names;
use crate::exit::BadInput;
use crate::run_config::{self, Privacy, RunConfig};

/// One finished run.
#[derive(Clone, Debug)]
pub struct Run {
    /// The run folder.
    pub dir: PathBuf,
    /// The folder relative to the results folder (`sweep/run-id`).
    pub id: String,
    /// The sweep's label of the run (`key=value, …`), when a `sweep.json` names it.
    pub label: Option<String>,
    /// `task.name`.
    pub task: String,
    /// The model folder's name (`model.path`), or the stem of `model.config` for a random initialisation.
    pub model: String,
    /// The method key (`full`, `lora`, `prefix`, `rgp`, `top2`, `retrain`; see [`names::method_key`]).
    pub method: String,
    /// The ε label's value: `privacy.target_epsilon`; without a target, the spent RDP ε rounded up to 2
    /// decimals; `f64::INFINITY` for non-private runs.
    pub epsilon: f64,
    /// `optimization.batch_size`.
    pub batch_size: u64,
    /// `optimization.learning_rate`.
    pub learning_rate: f64,
    /// `optimization.seed`.
    pub seed: u64,
    /// `task.eval_split`.
    pub eval_split: String,
    /// The config flattened to dotted keys, without the seed and without keys that do not change what
    /// is computed (micro-batch size, evaluation and checkpoint cadence, model paths): runs with equal
    /// settings differ only in their seed and are averaged together.
    pub setting: BTreeMap<String, String>,
    /// `finished` or `stopped_at_budget`.
    pub status: String,
    /// The final metrics of summary.json as stored (BLEU, METEOR, ROUGE-L, accuracy in [0, 1]).
    pub metrics: BTreeMap<String, f64>,
    /// summary.json's `model_parameters`, when there.
    pub model_parameters: Option<u64>,
    /// summary.json's `trainable_parameters`.
    pub trainable_parameters: Option<u64>,
    /// Training loss per step from metrics.jsonl.
    pub curve: Vec<(u64, f64)>,
    /// summary.json's metrics that are not numbers (left out of tables and figures).
    pub non_numeric_metrics: Vec<String>,
    /// Trained with δ ≥ 1/n (`privacy.allow_large_delta`): summary.json's `delta_warning`.
    pub large_delta: bool,
}

/// A folder that is not used, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Skipped {
    /// The folder.
    pub path: PathBuf,
    /// Why it is not used.
    pub reason: String,
    /// Unfinished, failed or not started (expected in a running sweep), rather than unreadable.
    pub unfinished: bool,
}

/// Everything found under a results folder.
#[derive(Debug, Default)]
pub struct Collection {
    /// Finished runs, in folder order.
    pub runs: Vec<Run>,
    /// Started runs that are not used.
    pub skipped: Vec<Skipped>,
}

/// Config keys that do not change what a run computes, left out of [`Run::setting`].
const NOT_SETTINGS: &[&str] = &[
    "optimization.seed",
    "optimization.physical_batch_size",
    "optimization.eval_every",
    "optimization.checkpoint_every",
    "generation.batch_size",
    "privacy.noise_seed",
    "model.path",
    "model.config",
    "model.tokenizer",
];

/// Whether `dir` holds a run that `dpft train` started.
fn has_run(dir: &Path) -> bool {
    ["summary.json", "config.yaml", "metrics.jsonl"].iter().any(|f| dir.join(f).is_file())
        || dir.join("checkpoints").is_dir()
}

/// Sub-folders of `dir`, sorted by name, without hidden ones and without `exclude`.
fn subdirs(dir: &Path, exclude: Option<&Path>) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        let excluded = exclude.is_some_and(|x| same_path(&path, x));
        if path.is_dir() && !hidden && !excluded {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Whether two paths name the same folder (canonical forms when both exist).
pub fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// One run's entry in a sweep's `sweep.json` (the fields the report uses).
#[derive(Clone, Debug, Default)]
struct SweepEntry {
    label: Option<String>,
    status: Option<String>,
    error: Option<String>,
}

/// `sweep.json` of a sweep folder, by run id; empty when there is none or it cannot be read.
fn sweep_entries(dir: &Path) -> HashMap<String, SweepEntry> {
    let path = dir.join("sweep.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return HashMap::new() };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        log::warn!("{}: not valid JSON; run labels are not shown", path.display());
        return HashMap::new();
    };
    let s = |v: &Value| v.as_str().map(String::from);
    v["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| {
                    let id = r["id"].as_str()?;
                    Some((
                        id.to_string(),
                        SweepEntry { label: s(&r["label"]), status: s(&r["status"]), error: s(&r["error"]) },
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The runs a sweep.json lists that have no folder (pending, or failed before `dpft train` started).
fn never_started(dir: &Path, entries: HashMap<String, SweepEntry>) -> Vec<Skipped> {
    let mut rest: Vec<_> = entries.into_iter().collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    rest.into_iter()
        .map(|(id, e)| Skipped {
            path: dir.join(&id),
            unfinished: true,
            reason: format!(
                "not started (sweep.json: status {}{})",
                e.status.as_deref().unwrap_or("unknown"),
                e.error.map(|m| format!(", error: {m}")).unwrap_or_default()
            ),
        })
        .collect()
}

/// The sweep entry of the run folder `dir`. When its sweep's `sweep.json` lists runs (`listed`) and not
/// this one, the folder holds a run of an earlier version of the sweep file (other values, so another id):
/// it is skipped, so that a table never mixes two recipes.
fn listed_entry(dir: &Path, entries: &mut HashMap<String, SweepEntry>, listed: bool) -> Result<SweepEntry, Skipped> {
    let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match entries.remove(&id) {
        Some(entry) => Ok(entry),
        None if listed => Err(Skipped {
            path: dir.to_path_buf(),
            unfinished: false,
            reason: "not a run of the sweep as it is now (its sweep.json does not list it: a run of an earlier \
                     version of the sweep file); move it out of the folder to silence this"
                .to_string(),
        }),
        None => Ok(SweepEntry::default()),
    }
}

/// Finds the runs under `root` (see the module doc), leaving out the folder `exclude` (the report's own
/// output). A missing or unreadable `root` is [`BadInput`].
pub fn collect(root: &Path, exclude: Option<&Path>) -> Result<Collection, BadInput> {
    if !root.is_dir() {
        return Err(BadInput(format!(
            "{}: no such folder; give the folder that `dpft sweep` or `dpft train --out` wrote runs into \
             (run one of them first)",
            root.display()
        )));
    }
    let unreadable = |e: std::io::Error| BadInput(format!("{}: cannot list the folder: {e}", root.display()));
    // (run folder, its sweep's entry)
    let mut candidates: Vec<(PathBuf, SweepEntry)> = Vec::new();
    let mut not_started: Vec<Skipped> = Vec::new();
    if has_run(root) {
        candidates.push((root.to_path_buf(), SweepEntry::default()));
    } else {
        // RESULTS_DIR may itself be a sweep's folder, with its sweep.json.
        let mut top_entries = sweep_entries(root);
        let top_listed = !top_entries.is_empty();
        for dir in subdirs(root, exclude).map_err(unreadable)? {
            if has_run(&dir) {
                match listed_entry(&dir, &mut top_entries, top_listed) {
                    Ok(entry) => candidates.push((dir, entry)),
                    Err(stale) => not_started.push(stale),
                }
                continue;
            }
            let mut entries = sweep_entries(&dir);
            let listed = !entries.is_empty();
            for sub in subdirs(&dir, exclude).unwrap_or_default() {
                if has_run(&sub) {
                    match listed_entry(&sub, &mut entries, listed) {
                        Ok(entry) => candidates.push((sub, entry)),
                        Err(stale) => not_started.push(stale),
                    }
                }
            }
            not_started.extend(never_started(&dir, entries));
        }
        not_started.extend(never_started(root, top_entries));
    }
    let mut out = Collection::default();
    for (dir, entry) in candidates {
        let id = dir
            .strip_prefix(root)
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        if !dir.join("summary.json").is_file() {
            let why = match (&entry.status, &entry.error) {
                (_, Some(e)) => format!("no summary.json: the run failed ({e})"),
                (Some(s), None) => format!("no summary.json: unfinished (sweep.json: {s})"),
                _ => "no summary.json: unfinished or failed".to_string(),
            };
            out.skipped.push(Skipped { path: dir, reason: why, unfinished: true });
            continue;
        }
        match read_run(&dir, id, entry.label) {
            Ok(run) => out.runs.push(run),
            Err(reason) => out.skipped.push(Skipped { path: dir, reason, unfinished: false }),
        }
    }
    out.skipped.extend(not_started);
    Ok(out)
}

/// The model's name: the folder name of `model.path` (without a `data:` prefix; `RUN/model` for the
/// `model/` folder of an earlier run), else the file stem of `model.config`.
fn model_name(config: &RunConfig) -> String {
    let name = |p: &Path, stem: bool| {
        let text = p.to_string_lossy();
        let p = Path::new(text.strip_prefix("data:").unwrap_or(&text));
        let part = if stem { p.file_stem() } else { p.file_name() };
        let last = part.map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string());
        // A trained run's `model/` folder (what `dpft train` saves) is named by its run folder.
        match p.parent().and_then(Path::file_name) {
            Some(parent) if last == "model" => format!("{}/model", parent.to_string_lossy()),
            _ => last,
        }
    };
    match (&config.model.path, &config.model.config) {
        (Some(p), _) => name(p, false),
        (None, Some(c)) => name(c, true),
        (None, None) => "unknown".into(),
    }
}

/// Flattens JSON into `dotted.key → value text`.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Reads one run folder; the error is the reason to skip it, naming the file.
fn read_run(dir: &Path, id: String, label: Option<String>) -> Result<Run, String> {
    let config_path = dir.join("config.yaml");
    let text = std::fs::read_to_string(&config_path).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config = run_config::parse_yaml(&text, &config_path)
        .and_then(|tree| run_config::from_tree(tree, &config_path))
        .map_err(|e| e.0)?;
    let summary_path = dir.join("summary.json");
    let summary: Value = std::fs::read_to_string(&summary_path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: {e}", summary_path.display()))?;
    let status = summary["status"].as_str().unwrap_or("missing").to_string();
    if !matches!(status.as_str(), "finished" | "stopped_at_budget") {
        return Err(format!("{}: status is {status}, not finished or stopped_at_budget", summary_path.display()));
    }
    let epsilon = match &config.privacy {
        Privacy::None => f64::INFINITY,
        Privacy::Dp(p) => match (p.target_epsilon, summary["epsilon"]["rdp"].as_f64()) {
            (Some(target), _) => target,
            // Rounded up, so that the label never shows less than was spent.
            (None, Some(spent)) => (spent * 100.0).ceil() / 100.0,
            (None, None) => {
                return Err(format!(
                    "{}: private run without privacy.target_epsilon and without epsilon.rdp in {}: its ε is unknown",
                    config_path.display(),
                    summary_path.display()
                ))
            }
        },
    };
    let reported = summary["metrics"].as_object().cloned().unwrap_or_default();
    let reported: Vec<(&String, &Value)> = reported.iter().filter(|(k, _)| k.as_str() != "examples").collect();
    let metrics = reported.iter().filter_map(|(k, v)| Some(((*k).clone(), v.as_f64()?))).collect();
    let non_numeric_metrics =
        reported.iter().filter(|(_, v)| v.as_f64().is_none()).map(|(k, v)| format!("{k} = {v}")).collect();
    let mut setting = BTreeMap::new();
    flatten("", &serde_json::to_value(&config).map_err(|e| e.to_string())?, &mut setting);
    for key in NOT_SETTINGS {
        setting.remove(*key);
    }
    Ok(Run {
        dir: dir.to_path_buf(),
        id,
        label,
        task: config.task.name.name().to_string(),
        model: model_name(&config),
        method: names::method_key(&config.method),
        epsilon,
        batch_size: config.optimization.batch_size as u64,
        learning_rate: config.optimization.learning_rate,
        seed: config.optimization.seed,
        eval_split: config.task.eval_split.name().to_string(),
        setting,
        status,
        metrics,
        model_parameters: summary["model_parameters"].as_u64(),
        trainable_parameters: summary["trainable_parameters"].as_u64(),
        curve: read_curve(&dir.join("metrics.jsonl")),
        non_numeric_metrics,
        large_delta: summary["delta_warning"].is_string(),
    })
}

/// `(step, loss)` of the training lines of metrics.jsonl (those without `eval`); empty when the file is
/// missing; unreadable lines are passed over.
fn read_curve(path: &Path) -> Vec<(u64, f64)> {
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("eval").is_none())
        .filter_map(|v| Some((v["step"].as_u64()?, v["loss"].as_f64().filter(|l| l.is_finite())?)))
        .collect()
}

/// Model sizes in parameters, by model name: summary.json's `model_parameters` where a run has it, else
/// the `trainable_parameters` of a `full` or `retrain` run of that model (all parameters train there; the
/// count includes an untied `lm_head` copy and an added `[PAD]` row when the config asks for them).
pub fn model_sizes(runs: &[Run]) -> BTreeMap<String, u64> {
    let mut sizes = BTreeMap::new();
    for r in runs.iter().filter(|r| r.model_parameters.is_some()) {
        sizes.entry(r.model.clone()).or_insert(r.model_parameters.unwrap_or_default());
    }
    for r in runs.iter().filter(|r| matches!(r.method.as_str(), "full" | "retrain")) {
        if let Some(n) = r.trainable_parameters {
            sizes.entry(r.model.clone()).or_insert(n);
        }
    }
    sizes
}
