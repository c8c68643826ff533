//! Aggregation over seeds with polars: runs become a long frame (one row per run and metric, values on
//! the scale the paper shows them), grouped by (task, model, method, ε, setting, metric) into mean,
//! sample standard deviation and count. Where one (task, model, method, ε) has several settings (a
//! hyperparameter sweep), [`select_best`] keeps the setting with the best mean of the headline metric.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::collect::Run;
use super::names::metric_info;

/// The columns that identify a table cell, before the metric.
pub const CELL_KEYS: [&str; 4] = ["task", "model", "method", "epsilon"];

/// Mean, standard deviation and count of one metric over the seeds of one setting.
#[derive(Clone, Debug, PartialEq)]
pub struct Agg {
    /// `task.name`.
    pub task: String,
    /// The model's name.
    pub model: String,
    /// The method key.
    pub method: String,
    /// ε (`f64::INFINITY` for non-private).
    pub epsilon: f64,
    /// Index into [`Aggregated::settings`].
    pub setting: u32,
    /// `optimization.batch_size`.
    pub batch_size: u64,
    /// `optimization.learning_rate`.
    pub learning_rate: f64,
    /// The metric key.
    pub metric: String,
    /// Mean over seeds, on the display scale (percent where [`metric_info`] says so).
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` for a single run.
    pub std: Option<f64>,
    /// Runs averaged.
    pub n: u32,
}

/// The aggregate frame and the settings its `setting` column indexes.
pub struct Aggregated {
    /// Columns task, model, method, epsilon, setting, batch_size, learning_rate, metric, mean, std, n.
    pub frame: DataFrame,
    /// Distinct settings ([`Run::setting`]) in order of first appearance.
    pub settings: Vec<BTreeMap<String, String>>,
    /// Each run's index into `settings`.
    pub run_settings: Vec<u32>,
}

/// One row per (run, metric) with the value on the display scale.
fn long_frame(runs: &[Run], run_settings: &[u32]) -> PolarsResult<DataFrame> {
    let mut task = Vec::new();
    let mut model = Vec::new();
    let mut method = Vec::new();
    let mut epsilon = Vec::new();
    let mut setting = Vec::new();
    let mut batch = Vec::new();
    let mut lr = Vec::new();
    let mut metric = Vec::new();
    let mut value = Vec::new();
    for (run, &s) in runs.iter().zip(run_settings) {
        for (key, &v) in &run.metrics {
            task.push(run.task.as_str());
            model.push(run.model.as_str());
            method.push(run.method.as_str());
            epsilon.push(run.epsilon);
            setting.push(s);
            batch.push(run.batch_size);
            lr.push(run.learning_rate);
            metric.push(key.as_str());
            value.push(if metric_info(key).percent { v * 100.0 } else { v });
        }
    }
    DataFrame::new(vec![
        Column::new("task".into(), task),
        Column::new("model".into(), model),
        Column::new("method".into(), method),
        Column::new("epsilon".into(), epsilon),
        Column::new("setting".into(), setting),
        Column::new("batch_size".into(), batch),
        Column::new("learning_rate".into(), lr),
        Column::new("metric".into(), metric),
        Column::new("value".into(), value),
    ])
}

/// Groups the runs' metrics by (task, model, method, ε, setting, metric): mean, sample std, count.
pub fn aggregate(runs: &[Run]) -> PolarsResult<Aggregated> {
    let mut settings: Vec<BTreeMap<String, String>> = Vec::new();
    let mut index: BTreeMap<&BTreeMap<String, String>, u32> = BTreeMap::new();
    let mut run_settings = Vec::with_capacity(runs.len());
    for run in runs {
        let next = index.len() as u32;
        let id = *index.entry(&run.setting).or_insert(next);
        if id == next {
            settings.push(run.setting.clone());
        }
        run_settings.push(id);
    }
    let keys: Vec<Expr> =
        CELL_KEYS.iter().chain(&["setting", "batch_size", "learning_rate", "metric"]).map(|k| col(*k)).collect();
    let frame = long_frame(runs, &run_settings)?
        .lazy()
        .group_by(keys.clone())
        .agg([
            col("value").mean().alias("mean"),
            col("value").std(1).alias("std"),
            col("value").count().cast(DataType::UInt32).alias("n"),
        ])
        .sort_by_exprs(keys, SortMultipleOptions::default())
        .collect()?;
    Ok(Aggregated { frame, settings, run_settings })
}

/// Keeps, for each group of `keys`, the rows of one setting: the one with the best mean of `metric`
/// (largest, or smallest when `higher_is_better` is false; ties go to the earlier setting). Groups without
/// `metric` keep all their settings.
pub fn select_best(frame: &DataFrame, keys: &[&str], metric: &str, higher_is_better: bool) -> PolarsResult<DataFrame> {
    let key_exprs: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let best = frame
        .clone()
        .lazy()
        .filter(col("metric").eq(lit(metric)))
        .sort_by_exprs(
            [col("mean"), col("setting")],
            SortMultipleOptions::default()
                .with_order_descending_multi([higher_is_better, false])
                .with_maintain_order(true),
        )
        .group_by_stable(key_exprs.clone())
        .agg([col("setting").first().alias("best_setting")]);
    frame
        .clone()
        .lazy()
        .join(best, key_exprs.clone(), key_exprs, JoinArgs::new(JoinType::Left))
        .filter(col("best_setting").is_null().or(col("best_setting").eq(col("setting"))))
        .drop(["best_setting"])
        .collect()
}

/// The rows of an aggregate frame as structs.
pub fn rows(frame: &DataFrame) -> PolarsResult<Vec<Agg>> {
    let s = |name: &str| -> PolarsResult<Vec<String>> {
        Ok(frame.column(name)?.str()?.into_iter().map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let f = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        Ok(frame.column(name)?.cast(&DataType::Float64)?.f64()?.into_iter().collect())
    };
    let u = |name: &str| -> PolarsResult<Vec<u64>> {
        Ok(frame.column(name)?.cast(&DataType::UInt64)?.u64()?.into_iter().map(|v| v.unwrap_or_default()).collect())
    };
    let (task, model, method, metric) = (s("task")?, s("model")?, s("method")?, s("metric")?);
    let (epsilon, lr, mean, std) = (f("epsilon")?, f("learning_rate")?, f("mean")?, f("std")?);
    let (setting, batch, n) = (u("setting")?, u("batch_size")?, u("n")?);
    Ok((0..frame.height())
        .map(|i| Agg {
            task: task[i].clone(),
            model: model[i].clone(),
            method: method[i].clone(),
            epsilon: epsilon[i].unwrap_or(f64::NAN),
            setting: setting[i] as u32,
            batch_size: batch[i],
            learning_rate: lr[i].unwrap_or(f64::NAN),
            metric: metric[i].clone(),
            mean: mean[i].unwrap_or(f64::NAN),
            std: std[i].filter(|_| n[i] > 1),
            n: n[i] as u32,
        })
        .collect())
}

/// The keys on which `settings` differ, for telling them apart in notes.
pub fn differing_keys(settings: &[&BTreeMap<String, String>]) -> Vec<String> {
    let mut keys: Vec<String> = settings.iter().flat_map(|s| s.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| settings.iter().any(|s| s.get(k) != settings[0].get(k))).collect()
}

/// `key=value, …` of `setting` over `keys`.
pub fn describe(setting: &BTreeMap<String, String>, keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("{k}={}", setting.get(k).map(String::as_str).unwrap_or("(unset)")))
        .collect::<Vec<_>>()
        .join(", ")
}
