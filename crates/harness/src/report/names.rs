//! What `dpft report` knows about tasks, methods and metrics: display names, the paper's order, and the
//! scale each metric is shown on (Li et al., ICLR 2022, Tables 1 and 2).

use std::cmp::Ordering;

/// The kind of a task, which fixes the table layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Table-to-text generation (E2E, DART): Table 2 layout.
    Generation,
    /// Sentence classification (GLUE): Table 1 layout.
    Classification,
    /// Anything else (`text`): Table 2 layout over the metrics the runs report.
    Other,
}

/// The kind of a task by its `task.name`.
pub fn task_kind(task: &str) -> TaskKind {
    match task {
        "e2e" | "dart" => TaskKind::Generation,
        "sst2" | "qnli" | "mnli" | "qqp" => TaskKind::Classification,
        _ => TaskKind::Other,
    }
}

/// A task's name as the paper writes it.
pub fn task_display(task: &str) -> String {
    match task {
        "e2e" => "E2E".into(),
        "dart" => "DART".into(),
        "sst2" => "SST-2".into(),
        "qnli" => "QNLI".into(),
        "mnli" => "MNLI".into(),
        "qqp" => "QQP".into(),
        other => other.into(),
    }
}

/// Tasks in the paper's order: E2E, DART, then Table 1's MNLI, QQP, QNLI, SST-2; others by name.
pub fn task_order(a: &str, b: &str) -> Ordering {
    let rank = |t: &str| ["e2e", "dart", "mnli", "qqp", "qnli", "sst2"].iter().position(|x| *x == t).unwrap_or(99);
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// A method's key as reported: `method.name`, except `topk`, which becomes `top{k}` (the paper's "top2").
pub fn method_key(method: &crate::run_config::MethodSection) -> String {
    match method.method() {
        crate::run_config::Method::Topk { top_k } => format!("top{top_k}"),
        _ => method.name.name().to_string(),
    }
}

/// A method's column title as in the paper's Table 2.
pub fn method_display(key: &str) -> String {
    match key {
        "lora" => "LoRA".into(),
        "rgp" => "RGP".into(),
        other => other.into(),
    }
}

/// Methods in the order of the paper's Table 2 columns: full, LoRA, prefix, RGP, top-k, retrain; unknown
/// methods after them, by name.
pub fn method_order(a: &str, b: &str) -> Ordering {
    let rank = |m: &str| match m {
        "full" => 0,
        "lora" => 1,
        "prefix" => 2,
        "rgp" => 3,
        m if m.starts_with("top") && m[3..].parse::<usize>().is_ok() => 4,
        "retrain" => 5,
        _ => 6,
    };
    let k = |m: &str| m.get(3..).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    rank(a).cmp(&rank(b)).then_with(|| k(a).cmp(&k(b))).then_with(|| a.cmp(b))
}

/// How a metric is shown.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricInfo {
    /// The key in summary.json's `metrics`.
    pub key: String,
    /// The name as the paper writes it (ROUGE-L, not ROUGE_L).
    pub display: String,
    /// Shown ×100 (percent), as the paper does for BLEU, METEOR, ROUGE-L and accuracy; the runs store
    /// these in [0, 1] (e2e-metrics' scale).
    pub percent: bool,
    /// Larger is better (false for losses).
    pub higher_is_better: bool,
}

impl MetricInfo {
    /// `percent` or `raw`, the unit column of the CSV.
    pub fn unit(&self) -> &'static str {
        if self.percent {
            "percent"
        } else {
            "raw"
        }
    }

    /// The name with its unit, for axis labels: "BLEU (%)".
    pub fn axis_label(&self) -> String {
        if self.percent {
            format!("{} (%)", self.display)
        } else {
            self.display.clone()
        }
    }
}

/// Metric keys of summary.json in the order the tables list them (e2e-metrics' order, then Table 1's).
const KNOWN: &[(&str, &str, bool)] = &[
    ("BLEU", "BLEU", true),
    ("NIST", "NIST", false),
    ("METEOR", "METEOR", true),
    ("ROUGE_L", "ROUGE-L", true),
    ("CIDEr", "CIDEr", false),
    ("accuracy", "accuracy", true),
    ("majority_accuracy", "majority-class accuracy", true),
    ("f1", "F1", true),
    ("loss", "loss", false),
];

/// How `key` is shown; unknown metrics are shown as stored, larger taken as better unless the key
/// mentions a loss.
pub fn metric_info(key: &str) -> MetricInfo {
    match KNOWN.iter().find(|(k, _, _)| *k == key) {
        Some((k, display, percent)) => MetricInfo {
            key: (*k).into(),
            display: (*display).into(),
            percent: *percent,
            higher_is_better: *k != "loss",
        },
        None => MetricInfo {
            key: key.into(),
            display: key.into(),
            percent: false,
            higher_is_better: !key.to_ascii_lowercase().contains("loss"),
        },
    }
}

/// Metrics in table order: the known ones first, in [`KNOWN`]'s order, then others by name.
pub fn metric_order(a: &str, b: &str) -> Ordering {
    let rank = |m: &str| KNOWN.iter().position(|(k, _, _)| *k == m).unwrap_or(KNOWN.len());
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// The metrics a table of this task kind shows: Table 2's five for generation, accuracy for
/// classification, everything reported otherwise.
pub fn table_metrics(kind: TaskKind, available: &[String]) -> Vec<String> {
    let wanted: &[&str] = match kind {
        TaskKind::Generation => &["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"],
        TaskKind::Classification => &["accuracy"],
        TaskKind::Other => return available.to_vec(),
    };
    wanted.iter().filter(|m| available.iter().any(|a| a == *m)).map(|m| m.to_string()).collect()
}

/// The headline metric of a task kind: BLEU for generation, accuracy for classification, loss otherwise.
pub fn default_metric(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Generation => "BLEU",
        TaskKind::Classification => "accuracy",
        TaskKind::Other => "loss",
    }
}

/// The stored key a user's metric name means: case-insensitive, `-` and `_` alike ("rouge-l" → ROUGE_L).
pub fn resolve_metric(name: &str, available: &[String]) -> Option<String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    available.iter().find(|a| norm(a) == norm(name)).cloned()
}

/// ε as a label: the number as written (3, 8, 0.5), or `non-private` for ∞.
pub fn epsilon_label(epsilon: f64) -> String {
    if epsilon.is_infinite() {
        "non-private".into()
    } else {
        format!("{epsilon}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_sort_in_table_2_order() {
        let mut m = vec!["retrain", "zeta", "top2", "rgp", "prefix", "lora", "full", "top10"];
        m.sort_by(|a, b| method_order(a, b));
        assert_eq!(m, ["full", "lora", "prefix", "rgp", "top2", "top10", "retrain", "zeta"]);
    }

    #[test]
    fn metric_names_resolve_loosely() {
        let avail = vec!["BLEU".to_string(), "ROUGE_L".to_string()];
        assert_eq!(resolve_metric("rouge-l", &avail).as_deref(), Some("ROUGE_L"));
        assert_eq!(resolve_metric("bleu", &avail).as_deref(), Some("BLEU"));
        assert_eq!(resolve_metric("CIDEr", &avail), None);
        assert!(metric_info("BLEU").percent && !metric_info("NIST").percent);
        assert!(!metric_info("loss").higher_is_better && !metric_info("eval_loss").higher_is_better);
        assert_eq!(epsilon_label(3.0), "3");
        assert_eq!(epsilon_label(f64::INFINITY), "non-private");
    }
}
