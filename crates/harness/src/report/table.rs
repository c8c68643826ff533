//! Tables of aggregated runs, laid out as the paper's and written as Markdown, CSV and LaTeX.
//!
//! - Generation (and other non-classification tasks), the layout of Table 2 of Li et al. (ICLR 2022):
//!   one table per task; rows are metric × ε (ε ascending, non-private last), columns the fine-tuning
//!   methods in the paper's order (full, LoRA, prefix, RGP, top2, retrain, then others), one column per
//!   (method, model) when several models are present.
//! - Classification, the layout of Table 1: one table for all classification tasks; rows are tasks (with
//!   model and method columns when several), columns ε.
//!
//! A cell is "mean ± std (n=…)": the mean over seeds, the sample standard deviation and the number of runs,
//! the last two only when more than one run. The CSV holds the same cells in long form (one line per
//! cell, table order) with full precision.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use super::aggregate::{describe, differing_keys, Agg};
use super::names::{self, epsilon_label, metric_info, TaskKind};

/// One table cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// Mean over seeds.
    pub mean: f64,
    /// Sample standard deviation, when n > 1.
    pub std: Option<f64>,
    /// Runs averaged.
    pub n: u32,
}

/// One table row: its label columns and its cells.
#[derive(Clone, Debug)]
pub struct Row {
    /// The label columns (metric and ε, or task).
    pub labels: Vec<String>,
    /// One per value column; `None` where no run exists.
    pub cells: Vec<Option<Cell>>,
    /// First row of a group (a new metric): a rule before it in LaTeX.
    pub group_start: bool,
}

/// One cell of the CSV: everything that identifies it, and its numbers at full precision.
#[derive(Clone, Debug)]
pub struct Record {
    task: String,
    model: String,
    method: String,
    metric: String,
    unit: &'static str,
    epsilon: String,
    cell: Cell,
    setting: String,
}

/// A table ready to be written.
#[derive(Clone, Debug)]
pub struct Table {
    /// What it shows: a task key, or `classification`.
    pub subject: String,
    /// A heading.
    pub title: String,
    /// What the numbers are: layout, aggregation, scales.
    pub caption: String,
    /// Column titles: the label columns, then the value columns.
    pub header: Vec<String>,
    /// How many leading columns are labels.
    pub label_columns: usize,
    /// Rows in order.
    pub rows: Vec<Row>,
    /// Remarks printed under the table: cells chosen among several settings, duplicates.
    pub notes: Vec<String>,
    /// "Paper vs this run", printed under the notes.
    pub comparison: Option<super::findings::Comparison>,
    records: Vec<Record>,
}

fn eps_cmp(a: f64, b: f64) -> Ordering {
    a.total_cmp(&b)
}

/// Value columns (method, model) of generation tables, in the paper's order; models by size, then name.
fn columns(cells: &[&Agg], sizes: &BTreeMap<String, u64>) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> =
        cells.iter().map(|a| (a.method.clone(), a.model.clone())).collect::<BTreeSet<_>>().into_iter().collect();
    cols.sort_by(|a, b| {
        names::method_order(&a.0, &b.0).then_with(|| sizes.get(&a.1).cmp(&sizes.get(&b.1))).then_with(|| a.1.cmp(&b.1))
    });
    cols
}

/// Notes for cells whose runs came in several settings: which one is shown and how they differ.
fn selection_notes(
    selected: &[&Agg],
    all: &[&Agg],
    settings: &[BTreeMap<String, String>],
    metric: &str,
) -> Vec<String> {
    let key = |a: &Agg| (a.model.clone(), a.method.clone(), a.epsilon.to_bits());
    let mut by_key: BTreeMap<(String, String, u64), BTreeSet<u32>> = BTreeMap::new();
    for a in all {
        by_key.entry(key(a)).or_default().insert(a.setting);
    }
    let mut shown: BTreeMap<(String, String, u64), BTreeSet<u32>> = BTreeMap::new();
    for a in selected {
        shown.entry(key(a)).or_default().insert(a.setting);
    }
    let mut notes = Vec::new();
    for (k, ids) in &by_key {
        if ids.len() < 2 {
            continue;
        }
        let all_settings: Vec<&BTreeMap<String, String>> = ids.iter().map(|&i| &settings[i as usize]).collect();
        let differ = differing_keys(&all_settings);
        let chosen = shown.get(k).cloned().unwrap_or_default();
        let what = format!("{}, {}, ε = {}", names::method_display(&k.1), k.0, epsilon_label(f64::from_bits(k.2)));
        if chosen.len() == 1 {
            let c = *chosen.iter().next().expect("one");
            notes.push(format!(
                "{what}: best of {} settings by mean {} ({}), shown: {}",
                ids.len(),
                metric_info(metric).display,
                if differ.is_empty() {
                    "identical settings".into()
                } else {
                    format!("they differ in {}", differ.join(", "))
                },
                describe(&settings[c as usize], &differ)
            ));
        } else {
            notes.push(format!(
                "{what}: {} settings without {}, the first is shown (they differ in {})",
                ids.len(),
                metric_info(metric).display,
                differ.join(", ")
            ));
        }
    }
    notes
}

/// The scales line of a caption: which metrics are percent, which are as stored.
fn scales(metrics: &[String]) -> String {
    let (pct, raw): (Vec<_>, Vec<_>) = metrics.iter().map(|m| metric_info(m)).partition(|i| i.percent);
    let list = |v: &[names::MetricInfo]| v.iter().map(|i| i.display.clone()).collect::<Vec<_>>().join(", ");
    let mut parts = Vec::new();
    if !pct.is_empty() {
        parts.push(format!(
            "{} in percent (×100 of the [0, 1] scores the runs store, as the paper shows them)",
            list(&pct)
        ));
    }
    if !raw.is_empty() {
        let e2e = raw.iter().any(|i| matches!(i.key.as_str(), "NIST" | "CIDEr"));
        parts.push(format!("{} as the runs store them{}", list(&raw), if e2e { " (e2e-metrics' scale)" } else { "" }));
    }
    parts.join("; ")
}

const AGGREGATION: &str = "Mean ± sample standard deviation over seeds; n = number of runs, shown when more than one.";

fn splits(cells: &[&Agg], split_of: &BTreeMap<String, BTreeSet<String>>) -> String {
    let tasks: BTreeSet<&str> = cells.iter().map(|a| a.task.as_str()).collect();
    let s: BTreeSet<&str> =
        tasks.iter().flat_map(|t| split_of.get(*t).into_iter().flatten().map(String::as_str)).collect();
    s.into_iter().collect::<Vec<_>>().join(", ")
}

/// Table 2 layout for `task`: rows metric × ε, columns methods. `selected` holds the task's cells after
/// [`super::aggregate::select_best`], `all` every setting (for the notes).
pub fn generation_table(
    task: &str,
    selected: &[&Agg],
    all: &[&Agg],
    settings: &[BTreeMap<String, String>],
    main_metric: &str,
    sizes: &BTreeMap<String, u64>,
    split_of: &BTreeMap<String, BTreeSet<String>>,
) -> Table {
    let cols = columns(selected, sizes);
    let models: BTreeSet<&str> = cols.iter().map(|c| c.1.as_str()).collect();
    let available: Vec<String> =
        selected.iter().map(|a| a.metric.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut metrics = names::table_metrics(names::task_kind(task), &available);
    metrics.sort_by(|a, b| names::metric_order(a, b));
    let mut eps: Vec<f64> = selected.iter().map(|a| a.epsilon).collect();
    eps.sort_by(|a, b| eps_cmp(*a, *b));
    eps.dedup();
    let mut header = vec!["Metric".to_string(), "ε".to_string()];
    header.extend(cols.iter().map(|(m, model)| {
        if models.len() > 1 {
            format!("{} ({model})", names::method_display(m))
        } else {
            names::method_display(m)
        }
    }));
    let mut rows = Vec::new();
    let mut records = Vec::new();
    let mut duplicates = Vec::new();
    for metric in &metrics {
        for (i, &e) in eps.iter().enumerate() {
            let mut cells = Vec::new();
            for (method, model) in &cols {
                let found: Vec<&&Agg> = selected
                    .iter()
                    .filter(|a| &a.metric == metric && a.epsilon == e && &a.method == method && &a.model == model)
                    .collect();
                if found.len() > 1 {
                    duplicates.push(format!("{method}/{model}/{}/{metric}", epsilon_label(e)));
                }
                let cell = found.first().map(|a| Cell { mean: a.mean, std: a.std, n: a.n });
                if let (Some(c), Some(a)) = (cell, found.first()) {
                    records.push(Record {
                        task: task.to_string(),
                        model: model.clone(),
                        method: method.clone(),
                        metric: metric.clone(),
                        unit: metric_info(metric).unit(),
                        epsilon: epsilon_label(e),
                        cell: c,
                        setting: a.setting.to_string(),
                    });
                }
                cells.push(cell);
            }
            rows.push(Row { labels: vec![metric_info(metric).display, epsilon_label(e)], cells, group_start: i == 0 });
        }
    }
    let model_list = models.iter().copied().collect::<Vec<_>>().join(", ");
    let split = splits(selected, split_of);
    let caption = format!(
        "{} ({}split {}), model {}: the layout of Table 2 of Li et al. (ICLR 2022): rows metric × ε \
         (non-private last), columns fine-tuning methods. {AGGREGATION} {}.",
        names::task_display(task),
        if split.is_empty() { "" } else { "evaluation " },
        if split.is_empty() { "unknown".to_string() } else { split },
        model_list,
        scales(&metrics)
    );
    let mut notes = selection_notes(selected, all, settings, main_metric);
    if !duplicates.is_empty() {
        notes.push(format!("cells with several settings, first shown: {}", duplicates.join("; ")));
    }
    Table {
        subject: task.to_string(),
        title: format!("{} — Table 2 layout", names::task_display(task)),
        caption,
        header,
        label_columns: 2,
        rows,
        notes,
        comparison: None,
        records,
    }
}

/// Table 1 layout for the classification tasks: rows task (and model, method when several), columns ε,
/// values `metric` (accuracy by default).
pub fn classification_table(
    selected: &[&Agg],
    all: &[&Agg],
    settings: &[BTreeMap<String, String>],
    metric: &str,
    split_of: &BTreeMap<String, BTreeSet<String>>,
) -> Table {
    let cells: Vec<&Agg> = selected.iter().copied().filter(|a| a.metric == metric).collect();
    let mut eps: Vec<f64> = cells.iter().map(|a| a.epsilon).collect();
    eps.sort_by(|a, b| eps_cmp(*a, *b));
    eps.dedup();
    let mut keys: Vec<(String, String, String)> = cells
        .iter()
        .map(|a| (a.task.clone(), a.model.clone(), a.method.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by(|a, b| {
        names::task_order(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)).then_with(|| names::method_order(&a.2, &b.2))
    });
    let several_models = keys.iter().map(|k| &k.1).collect::<BTreeSet<_>>().len() > 1;
    let several_methods = keys.iter().map(|k| &k.2).collect::<BTreeSet<_>>().len() > 1;
    let mut header = vec!["Task".to_string()];
    if several_models {
        header.push("Model".into());
    }
    if several_methods {
        header.push("Method".into());
    }
    let label_columns = header.len();
    header.extend(eps.iter().map(|&e| {
        if e.is_infinite() {
            epsilon_label(e)
        } else {
            format!("ε = {}", epsilon_label(e))
        }
    }));
    let info = metric_info(metric);
    let mut rows = Vec::new();
    let mut records = Vec::new();
    for (task, model, method) in &keys {
        let mut labels = vec![names::task_display(task)];
        if several_models {
            labels.push(model.clone());
        }
        if several_methods {
            labels.push(names::method_display(method));
        }
        let mut row_cells = Vec::new();
        for &e in &eps {
            let found =
                cells.iter().find(|a| &a.task == task && &a.model == model && &a.method == method && a.epsilon == e);
            let cell = found.map(|a| Cell { mean: a.mean, std: a.std, n: a.n });
            if let (Some(c), Some(a)) = (cell, found) {
                records.push(Record {
                    task: task.clone(),
                    model: model.clone(),
                    method: method.clone(),
                    metric: metric.to_string(),
                    unit: info.unit(),
                    epsilon: epsilon_label(e),
                    cell: c,
                    setting: a.setting.to_string(),
                });
            }
            row_cells.push(cell);
        }
        rows.push(Row { labels, cells: row_cells, group_start: false });
    }
    let models = keys.iter().map(|k| k.1.as_str()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join(", ");
    let caption = format!(
        "Sentence classification ({} on the evaluation split {}), model {models}: the layout of Table 1 of \
         Li et al. (ICLR 2022): rows tasks, columns ε (non-private last). {AGGREGATION} {}.",
        info.display,
        splits(&cells, split_of),
        scales(&[metric.to_string()])
    );
    let mut notes = Vec::new();
    let tasks: BTreeSet<&str> = cells.iter().map(|a| a.task.as_str()).collect();
    for t in tasks {
        let sel: Vec<&Agg> = cells.iter().copied().filter(|a| a.task == t).collect();
        let every: Vec<&Agg> = all.iter().copied().filter(|a| a.task == t).collect();
        notes.extend(
            selection_notes(&sel, &every, settings, metric)
                .into_iter()
                .map(|n| format!("{}: {n}", names::task_display(t))),
        );
    }
    Table {
        subject: "classification".into(),
        title: "Sentence classification — Table 1 layout".into(),
        caption,
        header,
        label_columns,
        rows,
        notes,
        comparison: None,
        records,
    }
}

/// "61.52 ± 0.30 (n=2)", or "61.52" for a single run.
fn cell_text(c: &Cell) -> String {
    match c.std {
        Some(s) if c.n > 1 => format!("{:.2} ± {s:.2} (n={})", c.mean, c.n),
        _ => format!("{:.2}", c.mean),
    }
}

/// The table as Markdown: a heading, the caption, the table and its notes.
pub fn markdown(t: &Table) -> String {
    let mut out = format!("### {}\n\n{}\n\n", t.title, t.caption);
    let esc = |s: &str| s.replace('|', "\\|");
    out.push_str(&format!("| {} |\n", t.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" | ")));
    let align: Vec<&str> = (0..t.header.len()).map(|i| if i < t.label_columns { "---" } else { "---:" }).collect();
    out.push_str(&format!("| {} |\n", align.join(" | ")));
    for r in &t.rows {
        let mut cols: Vec<String> = r.labels.iter().map(|l| esc(l)).collect();
        cols.extend(r.cells.iter().map(|c| c.as_ref().map_or("–".to_string(), cell_text)));
        out.push_str(&format!("| {} |\n", cols.join(" | ")));
    }
    if !t.notes.is_empty() {
        out.push('\n');
        for n in &t.notes {
            out.push_str(&format!("- {}\n", esc(n)));
        }
    }
    if let Some(c) = &t.comparison {
        out.push_str(&super::findings::markdown(c));
    }
    out
}

/// Escapes LaTeX's special characters and writes ε, ±, × and – in math or text mode.
pub fn latex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            'ε' => out.push_str("$\\varepsilon$"),
            '±' => out.push_str("$\\pm$"),
            '×' => out.push_str("$\\times$"),
            '–' => out.push_str("--"),
            '—' => out.push_str("---"),
            c => out.push(c),
        }
    }
    out
}

/// The table as a booktabs `tabular` (needs `\usepackage{booktabs}`), with the caption and notes as
/// comments above it, ready to `\input` inside a `table` float.
pub fn latex(t: &Table) -> String {
    let mut out = String::new();
    let comment = |s: &str| format!("% {}\n", s.replace('\n', " "));
    out.push_str(&comment(&format!("{} (written by dpft report; needs \\usepackage{{booktabs}})", t.title)));
    out.push_str(&comment(&t.caption));
    for n in &t.notes {
        out.push_str(&comment(&format!("note: {n}")));
    }
    let spec: String = (0..t.header.len()).map(|i| if i < t.label_columns { 'l' } else { 'r' }).collect();
    out.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));
    out.push_str(&format!(
        "{} \\\\\n\\midrule\n",
        t.header.iter().map(|h| latex_escape(h)).collect::<Vec<_>>().join(" & ")
    ));
    for (i, r) in t.rows.iter().enumerate() {
        if r.group_start && i > 0 {
            out.push_str("\\midrule\n");
        }
        let mut cols: Vec<String> = r
            .labels
            .iter()
            .enumerate()
            .map(|(j, l)| {
                // A label repeated from the row above is left blank, as the paper's tables do.
                let repeated = j == 0 && t.label_columns > 1 && i > 0 && t.rows[i - 1].labels.first() == Some(l);
                if repeated {
                    String::new()
                } else {
                    latex_escape(l)
                }
            })
            .collect();
        cols.extend(r.cells.iter().map(|c| match c {
            None => "--".to_string(),
            Some(c) => match c.std {
                Some(s) if c.n > 1 => format!("{:.2} $\\pm$ {s:.2} ($n={}$)", c.mean, c.n),
                _ => format!("{:.2}", c.mean),
            },
        }));
        out.push_str(&format!("{} \\\\\n", cols.join(" & ")));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n");
    out
}

/// The table's cells in long form: task, model, method, metric, unit, epsilon, mean, std, n, setting
/// (the setting's index in report.json), one line per cell in table order, full precision.
pub fn csv(t: &Table) -> PolarsResult<String> {
    let r = &t.records;
    let text = |f: fn(&Record) -> String| r.iter().map(f).collect::<Vec<String>>();
    let mut df = DataFrame::new(vec![
        Column::new("task".into(), text(|x| x.task.clone())),
        Column::new("model".into(), text(|x| x.model.clone())),
        Column::new("method".into(), text(|x| x.method.clone())),
        Column::new("metric".into(), text(|x| x.metric.clone())),
        Column::new("unit".into(), text(|x| x.unit.to_string())),
        Column::new("epsilon".into(), text(|x| x.epsilon.clone())),
        Column::new("mean".into(), r.iter().map(|x| x.cell.mean).collect::<Vec<f64>>()),
        Column::new("std".into(), r.iter().map(|x| x.cell.std).collect::<Vec<Option<f64>>>()),
        Column::new("n".into(), r.iter().map(|x| x.cell.n).collect::<Vec<u32>>()),
        Column::new("setting".into(), text(|x| x.setting.clone())),
    ])?;
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf).finish(&mut df)?;
    Ok(String::from_utf8(buf).expect("polars writes UTF-8"))
}

/// Whether a task is laid out as a classification table.
pub fn is_classification(task: &str) -> bool {
    names::task_kind(task) == TaskKind::Classification
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latex_specials_are_escaped() {
        assert_eq!(latex_escape("top_2 & 5% #1 {x} ε"), "top\\_2 \\& 5\\% \\#1 \\{x\\} $\\varepsilon$");
        assert_eq!(latex_escape("a\\b~c^d"), "a\\textbackslash{}b\\textasciitilde{}c\\textasciicircum{}d");
    }

    #[test]
    fn cells_show_n_only_when_several_runs() {
        assert_eq!(cell_text(&Cell { mean: 61.5, std: Some(0.25), n: 2 }), "61.50 ± 0.25 (n=2)");
        assert_eq!(cell_text(&Cell { mean: 61.5, std: None, n: 1 }), "61.50");
    }
}
