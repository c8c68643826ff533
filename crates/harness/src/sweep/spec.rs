//! Sweep files: a base run config and the values to vary, expanded into runs with stable ids.
//!
//! ```yaml
//! name: table2                 # results/<name>/<profile>/ (default: the file's stem)
//! base: ../examples/e2e.yaml   # a run config: a path relative to this file, or the mapping itself
//! set: {optimization.seed: 0}  # overrides for every run (dotted keys)
//! profiles:                    # named overrides chosen with --profile (the first is the default);
//!   mini: {optimization.steps: 40, grid: {model.config: [a.json, b.json], model.path: null}}
//!   # a profile's `grid` replaces (or adds, or with null drops) the file's grid keys; its `zip` replaces the file's
//!   paper: {model.path: gpt2}
//! grid:                        # every combination, in file order
//!   method.name: [full, lora]
//!   privacy: [{target_epsilon: 3}, {target_epsilon: 8}, none]
//! zip:                         # keys varied together (lists of equal length); each group multiplies the grid
//!   - {optimization.batch_size: [512, 1024], optimization.learning_rate: [1e-3, 2e-3]}
//! exclude:                     # drop the runs whose values match all of these
//!   - {method.name: lora, privacy: none}
//! slurm:                       # the Slurm backend's defaults (`--backend slurm`; its options win)
//!   {partition: gpu, time: "04:00:00", gpus_per_run: 1, cpus_per_run: 8, mem: 32G, max_concurrent: 8}
//! ```
//!
//! A value given at a key whose current value is a mapping is merged into it (`privacy: {target_epsilon: 3}`
//! keeps the base's δ and C); any other value replaces it (`privacy: none`). A run's id is a short slug of its
//! values plus the first 8 hex digits of SHA-256 over its sorted `key=JSON(value)` lines: the same
//! overrides give the same id on any machine and in any version. `${NAME}` in a string value is the
//! environment variable NAME (checked when the runs are expanded; ids use the text before expansion).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};
use sha2::{Digest, Sha256};

use crate::exit::BadInput;
use crate::run_config::{self, RunConfig};

/// A parsed sweep file.
#[derive(Debug)]
pub struct SweepSpec {
    /// The file.
    pub path: PathBuf,
    /// `name` (default: the file's stem).
    pub name: String,
    /// The chosen profile (None when the file defines none).
    pub profile: Option<String>,
    base: Value,
    fixed: Vec<(String, Value)>,
    axes: Vec<Axis>,
    exclude: Vec<Vec<(String, Value)>>,
    /// `selection:` — run a random number of random grid points and release the best
    /// ([`super::selection`]).
    pub selection: Option<super::selection::SelectionSpec>,
    /// `slurm:` — the Slurm backend's settings ([`super::slurm::settings`]), used with `--backend slurm`.
    pub slurm: super::slurm::settings::SlurmSettings,
}

/// One factor of the product: a grid key (one key, many values) or a zip group (several keys, their values
/// taken together).
#[derive(Debug)]
struct Axis {
    keys: Vec<String>,
    /// For each level, one value per key.
    levels: Vec<Vec<Value>>,
}

/// One expanded run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Stable id (folder name): slug of the values + 8 hex digits of their hash.
    pub id: String,
    /// The run's own values (grid and zip), in file order.
    pub overrides: Vec<(String, Value)>,
    /// The full run config.
    pub config: RunConfig,
}

impl RunSpec {
    /// `key=value, …` for people.
    pub fn label(&self) -> String {
        label_of(&self.overrides)
    }
}

fn label_of(overrides: &[(String, Value)]) -> String {
    if overrides.is_empty() {
        return "(base)".into();
    }
    overrides.iter().map(|(k, v)| format!("{k}={}", compact(v))).collect::<Vec<_>>().join(", ")
}

/// A value as one-line JSON (YAML scalars and mappings alike).
pub fn compact(v: &Value) -> String {
    serde_json::to_string(&serde_json::to_value(v).unwrap_or(serde_json::Value::Null)).unwrap_or_default()
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> BadInput {
    BadInput(format!("{}: {msg}", path.display()))
}

/// The keys a sweep file may have.
const KEYS: [&str; 9] = ["name", "base", "set", "profiles", "grid", "zip", "exclude", "selection", "slurm"];

/// Dotted keys of a mapping of overrides, in file order.
fn overrides(path: &Path, what: &str, v: &Value) -> Result<Vec<(String, Value)>, BadInput> {
    let Some(map) = v.as_mapping() else {
        return Err(bad(path, format!("{what} must be a mapping of dotted keys to values")));
    };
    map.iter()
        .map(|(k, v)| match k.as_str() {
            Some(k) if !k.is_empty() && k.split('.').all(|p| !p.is_empty()) => Ok((k.to_string(), v.clone())),
            _ => Err(bad(path, format!("{what}: key {} is not a dotted key such as optimization.seed", compact(k)))),
        })
        .collect()
}

impl SweepSpec {
    /// Reads and checks a sweep file; `profile` picks one of its profiles (default: the first listed).
    pub fn load(path: &Path, profile: Option<&str>) -> Result<Self, BadInput> {
        let text = std::fs::read_to_string(path).map_err(|e| bad(path, format!("cannot read the sweep file: {e}")))?;
        let tree = run_config::parse_yaml(&text, path)?;
        let Some(top) = tree.as_mapping() else {
            return Err(bad(
                path,
                "a sweep file is a mapping with base, grid, and optionally name, set, profiles, zip, exclude",
            ));
        };
        for k in top.keys() {
            let name = k.as_str().unwrap_or("");
            if !KEYS.contains(&name) {
                return Err(bad(path, format!("unknown key `{}` (a sweep file has {})", compact(k), KEYS.join(", "))));
            }
        }
        let name = match top.get("name") {
            Some(Value::String(s)) if !s.is_empty() && !s.contains('/') => s.clone(),
            Some(other) => return Err(bad(path, format!("name = {} must be a plain folder name", compact(other)))),
            None => path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep").to_string(),
        };
        let base = match top.get("base") {
            Some(Value::String(rel)) => {
                let file = path.parent().unwrap_or(Path::new(".")).join(rel);
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| bad(path, format!("base: cannot read {}: {e}", file.display())))?;
                run_config::parse_yaml(&text, &file)?
            }
            Some(v @ Value::Mapping(_)) => v.clone(),
            _ => {
                return Err(bad(path, "base: give the run config's path (relative to this file) or the config itself"))
            }
        };
        let (mut profile_grid, mut profile_zip) = (None, None);
        let mut fixed = match top.get("set") {
            Some(v) => overrides(path, "set", v)?,
            None => Vec::new(),
        };
        let chosen = match top.get("profiles") {
            None => {
                if let Some(p) = profile {
                    return Err(bad(path, format!("--profile {p}: this sweep file defines no profiles")));
                }
                None
            }
            Some(Value::Mapping(profiles)) => {
                let names: Vec<String> = profiles.keys().filter_map(|k| k.as_str().map(String::from)).collect();
                let want = match profile {
                    Some(p) => p.to_string(),
                    None => names.first().cloned().ok_or_else(|| bad(path, "profiles is empty"))?,
                };
                let values = profiles.get(want.as_str()).ok_or_else(|| {
                    bad(path, format!("--profile {want}: not one of the file's profiles ({})", names.join(", ")))
                })?;
                let mut values = values.clone();
                // A profile's own `grid:` replaces (or adds) grid keys, e.g. other model sizes for mini.
                profile_grid = values.as_mapping_mut().and_then(|m| m.remove("grid"));
                profile_zip = values.as_mapping_mut().and_then(|m| m.remove("zip"));
                fixed.extend(overrides(path, &format!("profiles.{want}"), &values)?);
                Some(want)
            }
            Some(_) => return Err(bad(path, "profiles must map profile names to overrides")),
        };
        let mut axes: Vec<Axis> = Vec::new();
        let profile_grid_name = format!("profiles.{}.grid", chosen.as_deref().unwrap_or(""));
        for (what, grid) in [("grid", top.get("grid")), (profile_grid_name.as_str(), profile_grid.as_ref())] {
            let Some(grid) = grid else { continue };
            for (key, values) in overrides(path, what, grid)? {
                if values.is_null() && what != "grid" {
                    // `key: null` in a profile's grid drops the file's axis.
                    axes.retain(|a| a.keys != [key.clone()]);
                    continue;
                }
                let Some(list) = values.as_sequence().filter(|l| !l.is_empty()) else {
                    return Err(bad(path, format!("{what}.{key}: give a non-empty list of values")));
                };
                let axis = Axis { keys: vec![key.clone()], levels: list.iter().map(|v| vec![v.clone()]).collect() };
                match axes.iter_mut().find(|a| a.keys == [key.clone()]) {
                    Some(existing) => *existing = axis,
                    None => axes.push(axis),
                }
            }
        }
        // A profile's `zip:` replaces the file's.
        if let Some(zip) = profile_zip.as_ref().or(top.get("zip")) {
            let Some(groups) = zip.as_sequence() else {
                return Err(bad(path, "zip: give a list of groups, each a mapping of keys to lists of equal length"));
            };
            for (g, group) in groups.iter().enumerate() {
                let entries = overrides(path, &format!("zip[{g}]"), group)?;
                let mut len = None;
                for (key, values) in &entries {
                    let n = values
                        .as_sequence()
                        .map(Vec::len)
                        .filter(|&n| n > 0)
                        .ok_or_else(|| bad(path, format!("zip[{g}].{key}: give a non-empty list of values")))?;
                    if *len.get_or_insert(n) != n {
                        return Err(bad(path, format!("zip[{g}]: the lists have different lengths ({key} has {n})")));
                    }
                }
                let n = len.ok_or_else(|| bad(path, format!("zip[{g}] is empty")))?;
                let levels = (0..n)
                    .map(|i| entries.iter().map(|(_, v)| v.as_sequence().expect("checked")[i].clone()).collect())
                    .collect();
                axes.push(Axis { keys: entries.into_iter().map(|(k, _)| k).collect(), levels });
            }
        }
        let mut seen = std::collections::HashSet::new();
        for key in axes.iter().flat_map(|a| &a.keys) {
            if !seen.insert(key.clone()) {
                return Err(bad(path, format!("{key} is varied twice (grid and zip, or two zip groups)")));
            }
        }
        let mut exclude = Vec::new();
        if let Some(ex) = top.get("exclude") {
            let Some(list) = ex.as_sequence() else {
                return Err(bad(path, "exclude: give a list of mappings (key: value) matching runs to drop"));
            };
            for (i, e) in list.iter().enumerate() {
                let entries = overrides(path, &format!("exclude[{i}]"), e)?;
                if let Some((key, _)) = entries.iter().find(|(k, _)| !seen.contains(k)) {
                    return Err(bad(
                        path,
                        format!("exclude[{i}].{key}: not a key of grid or zip, so it matches no run"),
                    ));
                }
                exclude.push(entries);
            }
        }
        let selection = match top.get("selection") {
            Some(v) => Some(super::selection::SelectionSpec::from_value(v, path)?),
            None => None,
        };
        if selection.is_some() {
            if let Some(key) = axes.iter().flat_map(|a| &a.keys).find(|k| super::selection::accounting_key(k)) {
                return Err(bad(
                    path,
                    format!("selection: the grid varies `{key}`, which changes the privacy accounting; a private selection needs every candidate to be the same mechanism: vary only settings such as the learning rate"),
                ));
            }
        }
        let slurm = match top.get("slurm") {
            Some(v) => {
                let settings: super::slurm::settings::SlurmSettings =
                    serde_norway::from_value(v.clone()).map_err(|e| bad(path, format!("slurm: {e}")))?;
                settings.check().map_err(|e| bad(path, format!("slurm.{e}")))?;
                settings
            }
            None => Default::default(),
        };
        Ok(Self { path: path.to_path_buf(), name, profile: chosen, base, fixed, axes, exclude, selection, slurm })
    }

    /// Every run, checked against the run config schema before anything runs: an unknown or mistyped key
    /// fails naming the key, the run and this file.
    pub fn expand(&self, extra: &[String]) -> Result<Vec<RunSpec>, BadInput> {
        let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
        for axis in &self.axes {
            let mut next = Vec::with_capacity(combos.len() * axis.levels.len());
            for combo in &combos {
                for level in &axis.levels {
                    let mut c = combo.clone();
                    c.extend(axis.keys.iter().cloned().zip(level.iter().cloned()));
                    next.push(c);
                }
            }
            combos = next;
        }
        let matches = |e: &Vec<(String, Value)>, c: &Vec<(String, Value)>| {
            e.iter().all(|(k, v)| c.iter().any(|(ck, cv)| ck == k && cv == v))
        };
        // An entry that matches no run is a typo (a value spelt differently from the grid's): refused, since
        // the runs it meant to drop would run.
        if let Some(i) = self.exclude.iter().position(|e| !combos.iter().any(|c| matches(e, c))) {
            let entry: Vec<String> =
                self.exclude[i].iter().map(|(k, v)| format!("{k}: {}", run_config::to_yaml(v).trim())).collect();
            return Err(bad(
                &self.path,
                format!(
                    "exclude[{i}] ({}) matches no run of the grid: check its values against the grid's (spelling, 3 vs 3.0)",
                    entry.join(", ")
                ),
            ));
        }
        combos.retain(|c| !self.exclude.iter().any(|e| matches(e, c)));
        if combos.is_empty() {
            return Err(bad(&self.path, "exclude drops every run: nothing to do"));
        }
        let mut ids = std::collections::HashMap::new();
        combos
            .into_iter()
            .map(|overrides| {
                let mut tree = self.base.clone();
                for (k, v) in self.fixed.iter().chain(&overrides) {
                    set_path(&mut tree, k, v.clone());
                }
                for assignment in extra {
                    run_config::apply_override(&mut tree, assignment)?;
                }
                expand_env(&mut tree).map_err(|var| {
                    bad(
                        &self.path,
                        format!("${{{var}}} is used but not set in the environment: set it (e.g. {var}=/path/to/models) and rerun"),
                    )
                })?;
                let id = run_id(&overrides);
                let label = label_of(&overrides);
                let config =
                    run_config::from_tree(tree, &self.path).map_err(|e| BadInput(format!("{} (run {label})", e.0)))?;
                if let Some(other) = ids.insert(id.clone(), label.clone()) {
                    return Err(bad(&self.path, format!("runs `{other}` and `{label}` have the same id {id}")));
                }
                Ok(RunSpec { id, overrides, config })
            })
            .collect()
    }
}

/// Replaces `${NAME}` in every string of `tree` by the environment variable NAME (e.g. `${MODEL_DIR}/gpt2`
/// in a paper profile); returns the name of the first variable that is not set.
fn expand_env(tree: &mut Value) -> Result<(), String> {
    match tree {
        Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let end = rest[start..].find('}').ok_or_else(|| rest[start..].to_string())? + start;
                let name = &rest[start + 2..end];
                out.push_str(&rest[..start]);
                out.push_str(&std::env::var(name).map_err(|_| name.to_string())?);
                rest = &rest[end + 1..];
            }
            out.push_str(rest);
            *s = out;
            Ok(())
        }
        Value::Mapping(m) => m.values_mut().try_for_each(expand_env),
        Value::Sequence(l) => l.iter_mut().try_for_each(expand_env),
        _ => Ok(()),
    }
}

/// Sets `dotted.key` in `tree`: a mapping value merges into a mapping already there, anything else replaces.
pub fn set_path(tree: &mut Value, key: &str, value: Value) {
    let mut node = tree;
    for part in key.split('.') {
        if !node.is_mapping() {
            *node = Value::Mapping(Mapping::new());
        }
        node = node.as_mapping_mut().expect("mapping").entry(Value::String(part.to_string())).or_insert(Value::Null);
    }
    merge(node, value);
}

fn merge(node: &mut Value, value: Value) {
    match (node, value) {
        (Value::Mapping(old), Value::Mapping(new)) => {
            for (k, v) in new {
                merge(old.entry(k).or_insert(Value::Null), v);
            }
        }
        (node, value) => *node = value,
    }
}

/// The id of a run with `overrides`: `<slug>-<8 hex digits>`, the hash over the sorted `key=JSON` lines.
pub fn run_id(overrides: &[(String, Value)]) -> String {
    let sorted: BTreeMap<&str, String> = overrides.iter().map(|(k, v)| (k.as_str(), compact(v))).collect();
    let text: String = sorted.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let slug: String = overrides
        .iter()
        .map(|(_, v)| {
            // A path contributes its last component (`${MODEL_DIR}/gpt2-large` → gpt2-large).
            let text = match v {
                Value::String(p) => p.rsplit('/').next().unwrap_or(p).to_string(),
                other => compact(other),
            };
            text.chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { ' ' })
                .collect::<String>()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("-")
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let slug: String = slug.chars().take(48).collect();
    if slug.is_empty() {
        format!("run-{hex}")
    } else {
        format!("{slug}-{hex}")
    }
}
