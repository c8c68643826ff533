//! `dpft report`: tables and figures from finished runs, laid out as in Li et al., "Large Language Models
//! Can Be Strong Differentially Private Learners" (ICLR 2022).
//!
//! Pipeline: [`collect`] finds and reads the run folders; [`aggregate`] groups them with polars (mean,
//! sample std and count over seeds; the best setting per cell when a hyperparameter sweep left several);
//! [`table`] lays out Table 2 (generation: metric × ε rows, method columns) and Table 1 (classification:
//! task rows, ε columns) as Markdown, CSV and LaTeX; [`charts`] decides which figures the data supports and
//! [`figures`] draws them with plotters (PNG and SVG). `report.json` lists the runs used, the runs skipped
//! and every file written.
//!
//! Only the report's own files are written (each through a temporary file renamed into place); run
//! folders are read, never changed.

pub mod aggregate;
pub mod charts;
pub mod collect;
pub mod figures;
pub mod findings;
pub mod names;
mod selection;
pub mod table;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::*;
use serde_json::{json, Value};

use crate::exit::BadInput;
use aggregate::{Agg, CELL_KEYS};
use charts::Planned;
use collect::{Run, Skipped};
use names::metric_info;
use table::Table;

/// What `dpft report` is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    /// The folder with run folders (or sweep folders of run folders).
    pub results: PathBuf,
    /// Where the report goes.
    pub out: PathBuf,
    /// File stem of the tables; `{task}` is replaced by the task (`classification` for Table 1's).
    pub table_name: String,
    /// The headline metric (figures and the choice among settings) instead of BLEU / accuracy.
    pub metric: Option<String>,
    /// Only these tasks (all when empty).
    pub tasks: Vec<String>,
    /// Draw figures.
    pub figures: bool,
    /// "Paper vs this run"; `None`: from the profile recorded in RESULTS_DIR/sweep.json (`mini` or `paper`),
    /// none when there is no such file.
    pub compare: Option<findings::Compare>,
    /// Also draw private runs' training losses (unprivatised statistics, not covered by ε).
    pub diagnostics: bool,
}

/// What was written.
#[derive(Debug)]
pub struct Outcome {
    /// The tables, in order.
    pub tables: Vec<Table>,
    /// Every file written.
    pub files: Vec<PathBuf>,
    /// Runs used.
    pub runs: usize,
    /// Folders not used, and why.
    pub skipped: Vec<Skipped>,
    /// Figures not drawn, and why.
    pub figures_skipped: Vec<String>,
    /// Other remarks (metric fallbacks).
    pub notes: Vec<String>,
}

pub use crate::commands::model_io::write_atomic;

/// Checks `--table-name` and gives each table's file stem.
fn table_stems(template: &str, tables: &[Table]) -> Result<Vec<String>, BadInput> {
    let bad = template.is_empty()
        || template.replace("{task}", "").chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if bad {
        return Err(BadInput(format!(
            "--table-name {template:?}: use letters, digits, `.`, `_`, `-` and the placeholder {{task}} (no folders)"
        )));
    }
    if !template.contains("{task}") && tables.len() > 1 {
        let subjects: Vec<&str> = tables.iter().map(|t| t.subject.as_str()).collect();
        return Err(BadInput(format!(
            "--table-name {template} names one table, but the runs make {} ({}): add {{task}} to the name \
             (e.g. --table-name '{template}-{{task}}') or choose one task with --task",
            tables.len(),
            subjects.join(", ")
        )));
    }
    Ok(tables.iter().map(|t| template.replace("{task}", &charts::file_part(&t.subject))).collect())
}

/// The headline metric of `task`: `--metric` when the task reports it, else the task kind's default.
fn main_metric(task: &str, available: &[String], wanted: Option<&str>, notes: &mut Vec<String>) -> Option<String> {
    let default = names::default_metric(names::task_kind(task));
    if let Some(w) = wanted {
        if let Some(m) = names::resolve_metric(w, available) {
            return Some(m);
        }
        notes.push(format!("{task}: no run reports metric {w} ({}); using {default}", available.join(", ")));
    }
    names::resolve_metric(default, available).or_else(|| available.first().cloned())
}

fn polars_error(e: PolarsError) -> anyhow::Error {
    anyhow::anyhow!("aggregating the runs (polars): {e}")
}

/// The rows of `frame` whose task is `task`.
fn for_task(frame: &DataFrame, task: &str) -> Result<DataFrame> {
    frame.clone().lazy().filter(col("task").eq(lit(task))).collect().map_err(polars_error)
}

/// Reads the runs under `opts.results`, writes tables, figures and report.json into `opts.out`.
pub fn run(opts: &Options) -> Result<Outcome> {
    let collection = collect::collect(&opts.results, Some(&opts.out))?;
    let mut runs: Vec<Run> = collection.runs;
    let skipped = collection.skipped;
    if !opts.tasks.is_empty() {
        let found: BTreeSet<String> = runs.iter().map(|r| r.task.clone()).collect();
        runs.retain(|r| opts.tasks.contains(&r.task));
        if runs.is_empty() && !found.is_empty() {
            return Err(BadInput(format!(
                "--task {}: no finished run of that task under {} (tasks found: {})",
                opts.tasks.join(", "),
                opts.results.display(),
                found.into_iter().collect::<Vec<_>>().join(", ")
            ))
            .into());
        }
    }
    if runs.is_empty() {
        let why = if skipped.is_empty() {
            "no run folders (folders with summary.json and config.yaml, directly or one level down)".to_string()
        } else {
            format!(
                "no finished runs ({} runs unfinished, failed or unreadable: {})",
                skipped.len(),
                skipped
                    .iter()
                    .take(3)
                    .map(|s| format!("{}: {}", s.path.display(), s.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        return Err(BadInput(format!(
            "{}: {why}; run `dpft sweep SWEEP.yaml` or `dpft train CONFIG.yaml --out {}/RUN` first (or wait for \
             running ones to finish)",
            opts.results.display(),
            opts.results.display()
        ))
        .into());
    }
    if opts.out.exists() && !opts.out.is_dir() {
        return Err(BadInput(format!("--out {} is a file; give a folder", opts.out.display())).into());
    }

    let aggregated = aggregate::aggregate(&runs).map_err(polars_error)?;
    let all = aggregate::rows(&aggregated.frame).map_err(polars_error)?;
    let sizes = collect::model_sizes(&runs);
    let mut split_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &runs {
        split_of.entry(r.task.clone()).or_default().insert(r.eval_split.clone());
    }
    let mut tasks: Vec<String> = runs.iter().map(|r| r.task.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    tasks.sort_by(|a, b| names::task_order(a, b));

    let mut notes = Vec::new();
    let selection = selection::selection_epsilon(&opts.results, &runs);
    if let Some((note, _)) = &selection {
        notes.push(note.clone());
    }
    let large_delta: Vec<&str> = runs.iter().filter(|r| r.large_delta).map(|r| r.id.as_str()).collect();
    if !large_delta.is_empty() {
        notes.push(format!(
            "{} runs were trained with δ ≥ 1/n (privacy.allow_large_delta): such a δ permits releasing whole examples, so their ε says little: {}",
            large_delta.len(),
            large_delta.join(", ")
        ));
    }
    for r in runs.iter().filter(|r| !r.non_numeric_metrics.is_empty()) {
        notes.push(format!(
            "{}: summary.json metrics that are not numbers are left out: {}",
            r.id,
            r.non_numeric_metrics.join(", ")
        ));
    }
    let stopped: Vec<&str> = runs.iter().filter(|r| r.status == "stopped_at_budget").map(|r| r.id.as_str()).collect();
    if !stopped.is_empty() {
        notes.push(format!(
            "{} runs stopped at their privacy budget before the planned steps and are included: {}",
            stopped.len(),
            stopped.join(", ")
        ));
    }
    if let Some(w) = &opts.metric {
        let every: Vec<String> = all.iter().map(|a| a.metric.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        if names::resolve_metric(w, &every).is_none() {
            return Err(
                BadInput(format!("--metric {w}: no run reports it; the runs report {}", every.join(", "))).into()
            );
        }
    }
    // Per task: its headline metric, the cells (best setting per (model, method, ε)) and, for heatmaps,
    // the best setting per (model, method, ε, batch size, learning rate).
    struct TaskData {
        task: String,
        metric: String,
        selected: Vec<Agg>,
        by_hyper: Vec<Agg>,
        every: Vec<Agg>,
    }
    let mut per_task = Vec::new();
    for task in &tasks {
        let every: Vec<Agg> = all.iter().filter(|a| &a.task == task).cloned().collect();
        let available: Vec<String> = {
            let mut m: Vec<String> =
                every.iter().map(|a| a.metric.clone()).collect::<BTreeSet<_>>().into_iter().collect();
            m.sort_by(|a, b| names::metric_order(a, b));
            m
        };
        let Some(metric) = main_metric(task, &available, opts.metric.as_deref(), &mut notes) else {
            notes.push(format!("{task}: the runs report no metrics; no table or figure"));
            continue;
        };
        let higher = metric_info(&metric).higher_is_better;
        let frame = for_task(&aggregated.frame, task)?;
        let selected = aggregate::select_best(&frame, &CELL_KEYS, &metric, higher)
            .and_then(|f| aggregate::rows(&f))
            .map_err(polars_error)?;
        let hyper_keys = [CELL_KEYS.as_slice(), &["batch_size", "learning_rate"]].concat();
        let by_hyper = aggregate::select_best(&frame, &hyper_keys, &metric, higher)
            .and_then(|f| aggregate::rows(&f))
            .map_err(polars_error)?;
        per_task.push(TaskData { task: task.clone(), metric, selected, by_hyper, every });
    }

    // Tables: one per generation (or other) task, one for all classification tasks; "paper vs this run" under
    // those the paper has numbers or findings for.
    let compare = opts.compare.unwrap_or_else(|| profile_comparison(&opts.results));
    let mut tables = Vec::new();
    for d in per_task.iter().filter(|d| !table::is_classification(&d.task)) {
        let sel: Vec<&Agg> = d.selected.iter().collect();
        let every: Vec<&Agg> = d.every.iter().collect();
        tables.push(table::generation_table(&d.task, &sel, &every, &aggregated.settings, &d.metric, &sizes, &split_of));
    }
    let classification: Vec<&TaskData> = per_task.iter().filter(|d| table::is_classification(&d.task)).collect();
    if !classification.is_empty() {
        let metric = classification[0].metric.clone();
        let sel: Vec<&Agg> = classification.iter().flat_map(|d| d.selected.iter()).collect();
        let every: Vec<&Agg> = classification.iter().flat_map(|d| d.every.iter()).collect();
        let mut t = table::classification_table(&sel, &every, &aggregated.settings, &metric, &split_of);
        if metric == "accuracy" && compare == findings::Compare::Mini {
            t.comparison = Some(findings::Comparison {
                subject: t.subject.clone(),
                compare: findings::Compare::Mini,
                metric,
                findings: findings::classification_mini_findings(&sel),
                paper: vec![],
            });
        }
        tables.push(t);
    }
    for (t, d) in tables.iter_mut().zip(per_task.iter().filter(|d| !table::is_classification(&d.task))) {
        t.comparison = comparison(compare, d.task.as_str(), &d.metric, &d.selected);
    }
    let stems = table_stems(&opts.table_name, &tables)?;

    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
    let mut files = Vec::new();
    let mut table_files = Vec::new();
    for (t, stem) in tables.iter().zip(&stems) {
        let mut written = Vec::new();
        for (ext, text) in
            [("md", table::markdown(t)), ("csv", table::csv(t).map_err(polars_error)?), ("tex", table::latex(t))]
        {
            let path = opts.out.join(format!("{stem}.{ext}"));
            write_atomic(&path, text.as_bytes())?;
            written.push(path);
        }
        table_files.push(json!({"subject": t.subject, "files": written, "comparison": t.comparison}));
        files.extend(written);
    }

    let mut figures_skipped = Vec::new();
    let mut figure_files = Vec::new();
    if opts.figures {
        let dir = opts.out.join("figures");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for d in &per_task {
            let sel: Vec<&Agg> = d.selected.iter().collect();
            let hyper: Vec<&Agg> = d.by_hyper.iter().collect();
            let task_runs: Vec<&Run> = runs.iter().filter(|r| r.task == d.task).collect();
            let mut planned: Vec<(&str, Result<Vec<Planned>, String>)> = vec![
                ("metric vs ε", charts::metric_vs_epsilon(&d.task, &d.metric, &sel, &sizes).map(|p| vec![p])),
                (
                    "metric vs model size",
                    charts::metric_vs_model_size(&d.task, &d.metric, &sel, &sizes).map(|p| vec![p]),
                ),
                ("batch size × learning rate heatmap", charts::heatmaps(&d.task, &d.metric, &hyper)),
                ("training curves", charts::training_curves(&d.task, &task_runs, opts.diagnostics).map(|p| vec![p])),
            ];
            for (what, plan) in planned.drain(..) {
                match plan {
                    Ok(list) => {
                        for p in list {
                            let written = match &p {
                                Planned::Line(stem, fig) => figures::save(fig, &dir.join(stem))?,
                                Planned::Heat(stem, fig) => figures::save(fig, &dir.join(stem))?,
                            };
                            figure_files.extend(written.iter().cloned());
                            files.extend(written);
                        }
                    }
                    Err(why) => figures_skipped.push(format!("{what}: {why}")),
                }
            }
        }
    }

    let report_path = opts.out.join("report.json");
    files.push(report_path.clone());
    let report = json!({
        "results_dir": opts.results,
        "out": opts.out,
        "runs": runs.iter().zip(&aggregated.run_settings).map(|(r, s)| run_json(r, *s)).collect::<Vec<_>>(),
        "skipped": skipped,
        "settings": aggregated.settings,
        "tables": table_files,
        "figures": figure_files,
        "figures_skipped": figures_skipped,
        "notes": notes,
        "selection": selection.map(|(_, v)| v),
        "files": files,
        "scales": "BLEU, METEOR, ROUGE-L, accuracy and F1 are shown in percent (x100 of the stored [0, 1] scores, as the paper); NIST, CIDEr and losses as stored",
        "model_sizes": sizes,
        "model_sizes_from": "summary.json model_parameters when present, else trainable_parameters of a full or retrain run of the model",
    });
    write_atomic(&report_path, (serde_json::to_string_pretty(&report)? + "\n").as_bytes())?;
    Ok(Outcome { tables, files, runs: runs.len(), skipped, figures_skipped, notes })
}

/// The comparison a sweep's profile asks for: RESULTS_DIR/sweep.json's `profile` (mini or paper).
fn profile_comparison(results: &Path) -> findings::Compare {
    let profile = std::fs::read_to_string(results.join("sweep.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("profile").and_then(Value::as_str).map(str::to_string));
    match profile.as_deref() {
        Some("mini") => findings::Compare::Mini,
        Some("paper") => findings::Compare::Paper,
        _ => findings::Compare::None,
    }
}

/// "Paper vs this run" for a task's table, where the paper has something to compare (E2E's BLEU).
fn comparison(compare: findings::Compare, task: &str, metric: &str, selected: &[Agg]) -> Option<findings::Comparison> {
    if task != "e2e" || metric != "BLEU" {
        return None;
    }
    let cells: Vec<&Agg> = selected.iter().collect();
    let (found, paper) = match compare {
        findings::Compare::Mini => (findings::e2e_mini_findings(&cells, metric), vec![]),
        findings::Compare::Paper => (vec![], findings::e2e_paper_cells(&cells, metric)),
        findings::Compare::None => return None,
    };
    Some(findings::Comparison { subject: task.into(), compare, metric: metric.into(), findings: found, paper })
}

/// A run's line in report.json.
fn run_json(r: &Run, setting: u32) -> Value {
    json!({
        "id": r.id,
        "path": r.dir,
        "label": r.label,
        "task": r.task,
        "model": r.model,
        "method": r.method,
        "private": r.epsilon.is_finite(),
        "epsilon": if r.epsilon.is_finite() { json!(r.epsilon) } else { Value::Null },
        "seed": r.seed,
        "batch_size": r.batch_size,
        "learning_rate": r.learning_rate,
        "status": r.status,
        "setting": setting,
        "metrics": r.metrics,
    })
}
