//! "Paper vs this run": what a reader needs to see at a glance — whether the runs reproduce the paper.
//!
//! - Under the paper's recipe ([`Compare::Paper`]), the paper's numbers next to ours, cell by cell
//!   (Table 2 of Li et al., ICLR 2022: E2E BLEU per method and ε, from `../shared/docs/paper.md`, which gives
//!   them as approximate targets, ±1).
//! - Under the mini profile ([`Compare::Mini`]), each of the paper's findings (Claims 1, 2 and 4) stated as
//!   a check that a CPU-sized run can show, with ✓ or ✗ and the numbers behind it. The thresholds are the
//!   ones the mini profile was designed to meet (issue 15); they are not relaxed when a run misses them.
//!
//! Numbers are on the table's scale (BLEU and accuracy in percent), as the aggregated cells hold them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::aggregate::Agg;
use super::names::{epsilon_label, method_display};

/// Which comparison a report makes (`dpft report --compare`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Compare {
    /// The paper's findings as checks for a CPU-sized run, each ✓/✗.
    Mini,
    /// The paper's numbers next to ours.
    Paper,
    /// No comparison.
    None,
}

/// One finding of the paper, checked on the runs.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// The claim, with its threshold.
    pub claim: String,
    /// `Some(true)` ✓, `Some(false)` ✗, `None` when a run it needs is missing.
    pub holds: Option<bool>,
    /// The numbers it was decided on.
    pub evidence: String,
}

/// One cell of the paper next to ours.
#[derive(Clone, Debug, Serialize)]
pub struct PaperCell {
    /// Method key.
    pub method: String,
    /// ε label (`3`, `8`, `non-private`).
    pub epsilon: String,
    /// The paper's value.
    pub paper: f64,
    /// Ours (mean over seeds), when the run exists.
    pub ours: Option<f64>,
}

/// The comparison section of one table.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The table it belongs to (task key or `classification`).
    pub subject: String,
    /// Which comparison.
    pub compare: Compare,
    /// The metric compared.
    pub metric: String,
    /// Findings (mini).
    pub findings: Vec<Finding>,
    /// The paper's cells (paper).
    pub paper: Vec<PaperCell>,
}

/// E2E BLEU of the paper's Table 2 (GPT-2), per method and (ε = 3, ε = 8, non-private).
const PAPER_E2E_BLEU: [(&str, [f64; 3]); 6] = [
    ("full", [61.5, 63.2, 69.5]),
    ("lora", [58.2, 63.4, 69.7]),
    ("prefix", [47.8, 49.3, 68.8]),
    ("rgp", [58.5, 58.5, 68.3]),
    ("top2", [25.9, 26.9, 65.8]),
    ("retrain", [15.5, 24.2, 65.7]),
];

/// The cells of one table's headline metric, as (method, ε) → mean on the table's scale.
struct Cells(BTreeMap<(String, u64), f64>);

impl Cells {
    fn new(cells: &[&Agg], metric: &str) -> Self {
        Cells(
            cells
                .iter()
                .filter(|a| a.metric == metric)
                .map(|a| ((a.method.clone(), a.epsilon.to_bits()), a.mean))
                .collect(),
        )
    }

    fn get(&self, method: &str, epsilon: f64) -> Option<f64> {
        self.0.get(&(method.to_string(), epsilon.to_bits())).copied()
    }

    fn methods(&self) -> Vec<String> {
        let mut m: Vec<String> = self.0.keys().map(|(m, _)| m.clone()).collect();
        m.dedup();
        m
    }
}

fn value(v: Option<f64>) -> String {
    v.map_or("missing".to_string(), |x| format!("{x:.2}"))
}

fn cell_name(method: &str, epsilon: f64) -> String {
    let eps =
        if epsilon.is_infinite() { "non-private".to_string() } else { format!("ε = {}", epsilon_label(epsilon)) };
    format!("{} {eps}", method_display(method))
}

/// `a ≥ factor · b` (or `a − b ≥ margin` etc.), as a finding.
fn compare(
    claim: String,
    lhs: (&str, f64, Option<f64>),
    rhs: (&str, f64, Option<f64>),
    test: impl Fn(f64, f64) -> bool,
) -> Finding {
    let (l, r) = (lhs.2, rhs.2);
    let holds = l.zip(r).map(|(l, r)| test(l, r));
    let evidence = format!("{}: {}, {}: {}", cell_name(lhs.0, lhs.1), value(l), cell_name(rhs.0, rhs.1), value(r));
    Finding { claim, holds, evidence }
}

/// Table 2 (E2E) under the mini profile: the paper's findings as checks with the thresholds of issue 15.
pub fn e2e_mini_findings(cells: &[&Agg], metric: &str) -> Vec<Finding> {
    let c = Cells::new(cells, metric);
    let np = f64::INFINITY;
    let full = |e: f64| ("full", e, c.get("full", e));
    let mut out = vec![
        {
            let v = c.get("full", np);
            Finding {
                claim: "fine-tuning works at this scale: non-private full fine-tuning BLEU ≥ 40".into(),
                holds: v.map(|v| v >= 40.0),
                evidence: format!("{}: {}", cell_name("full", np), value(v)),
            }
        },
        compare(
            "the non-private run is the ceiling (else the recipe undertrains it): full non-private ≥ ε = 8 − 1 BLEU"
                .into(),
            full(np),
            full(8.0),
            |a, b| a >= b - 1.0,
        ),
        compare(
            "DP costs little (Claim 1): full at ε = 8 ≥ 0.75 × its non-private BLEU".into(),
            full(8.0),
            full(np),
            |a, b| a >= 0.75 * b,
        ),
        compare(
            "DP costs little (Claim 1): full at ε = 3 ≥ 0.65 × its non-private BLEU".into(),
            full(3.0),
            full(np),
            |a, b| a >= 0.65 * b,
        ),
        compare(
            "pretraining is what makes DP work: full beats retrain (random init) by ≥ 10 BLEU at ε = 3".into(),
            full(3.0),
            ("retrain", 3.0, c.get("retrain", 3.0)),
            |a, b| a - b >= 10.0,
        ),
    ];
    for m in c.methods() {
        out.push(compare(
            format!("a larger budget does not hurt: {} at ε = 8 ≥ ε = 3 − 1 BLEU", method_display(&m)),
            (&m, 8.0, c.get(&m, 8.0)),
            (&m, 3.0, c.get(&m, 3.0)),
            |a, b| a >= b - 1.0,
        ));
    }
    out.push(compare(
        "low-dimensional methods do not beat full (Claim 4): LoRA within 10 BLEU of full at ε = 3".into(),
        ("lora", 3.0, c.get("lora", 3.0)),
        full(3.0),
        |a, b| a >= b - 10.0,
    ));
    out.push(compare(
        "full fine-tuning beats training the top blocks only (Claim 4): top2 below full at ε = 3".into(),
        ("top2", 3.0, c.get("top2", 3.0)),
        full(3.0),
        |a, b| a < b,
    ));
    out
}

/// Table 1 (classification) under the mini profile: SST-2 at the levels issue 15 set for a real pretrained
/// MiniLM, and every other task above the accuracy of always answering its most frequent label.
pub fn classification_mini_findings(cells: &[&Agg]) -> Vec<Finding> {
    let get = |task: &str, metric: &str, epsilon: f64| {
        cells
            .iter()
            .find(|a| a.task == task && a.metric == metric && a.epsilon.to_bits() == epsilon.to_bits())
            .map(|a| a.mean)
    };
    let sst2 = |epsilon: f64, level: f64| {
        let v = get("sst2", "accuracy", epsilon);
        Finding {
            claim: format!(
                "DP fine-tuning of a pretrained model works (Claim 1): SST-2 accuracy ≥ {level}% at ε = {epsilon}"
            ),
            holds: v.map(|v| v >= level),
            evidence: format!("SST-2 ε = {epsilon}: {}", value(v)),
        }
    };
    let mut out = vec![sst2(8.0, 80.0), sst2(3.0, 75.0)];
    let np = get("sst2", "accuracy", f64::INFINITY);
    out.push(Finding {
        claim: "the paper's non-private reference is there: SST-2 non-private ≥ SST-2 at ε = 8 − 1".into(),
        holds: np.zip(get("sst2", "accuracy", 8.0)).map(|(n, e)| n >= e - 1.0),
        evidence: format!("SST-2 non-private: {}, ε = 8: {}", value(np), value(get("sst2", "accuracy", 8.0))),
    });
    for (task, name) in [("qnli", "QNLI"), ("qqp", "QQP"), ("mnli", "MNLI")] {
        let (acc, majority) = (get(task, "accuracy", 8.0), get(task, "majority_accuracy", 8.0));
        out.push(Finding {
            claim: format!("{name} at ε = 8 learns something: accuracy above the majority-class rate"),
            holds: acc.zip(majority).map(|(a, m)| a > m),
            evidence: format!("{name} ε = 8: {}, majority class: {}", value(acc), value(majority)),
        });
    }
    out
}

/// Table 2 (E2E) under the paper's recipe: the paper's BLEU next to ours.
pub fn e2e_paper_cells(cells: &[&Agg], metric: &str) -> Vec<PaperCell> {
    let c = Cells::new(cells, metric);
    let mut out = Vec::new();
    for (method, values) in PAPER_E2E_BLEU {
        for (epsilon, paper) in [3.0, 8.0, f64::INFINITY].into_iter().zip(values) {
            out.push(PaperCell {
                method: method.into(),
                epsilon: epsilon_label(epsilon),
                paper,
                ours: c.get(method, epsilon),
            });
        }
    }
    out
}

/// The Markdown of a comparison, appended under its table.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::from("\n#### Paper vs this run\n\n");
    match c.compare {
        Compare::Mini => {
            out.push_str(&format!(
                "The paper's findings, checked on this run's {} (mini profile: a CPU-sized model and budget, so \
                 the levels are not the paper's; the orderings are what should reproduce).\n\n",
                c.metric
            ));
            out.push_str("| | finding | numbers |\n| --- | --- | --- |\n");
            for f in &c.findings {
                let mark = match f.holds {
                    Some(true) => "✓",
                    Some(false) => "✗",
                    None => "?",
                };
                out.push_str(&format!("| {mark} | {} | {} |\n", f.claim, f.evidence));
            }
            let held = c.findings.iter().filter(|f| f.holds == Some(true)).count();
            out.push_str(&format!("\n{held} of {} findings hold.\n", c.findings.len()));
        }
        Compare::Paper => {
            out.push_str(&format!(
                "{} of Li et al. (ICLR 2022), Table 2 (GPT-2; approximate, ±1), next to this run.\n\n",
                c.metric
            ));
            out.push_str("| method | ε | paper | this run | difference |\n| --- | --- | ---: | ---: | ---: |\n");
            for p in &c.paper {
                let diff = p.ours.map_or("–".to_string(), |o| format!("{:+.2}", o - p.paper));
                let ours = p.ours.map_or("–".to_string(), |o| format!("{o:.2}"));
                out.push_str(&format!(
                    "| {} | {} | {:.1} | {ours} | {diff} |\n",
                    method_display(&p.method),
                    p.epsilon,
                    p.paper
                ));
            }
        }
        Compare::None => return String::new(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(method: &str, epsilon: f64, bleu: f64) -> Agg {
        Agg {
            task: "e2e".into(),
            model: "m".into(),
            method: method.into(),
            epsilon,
            setting: 0,
            batch_size: 1,
            learning_rate: 1.0,
            metric: "BLEU".into(),
            mean: bleu,
            std: None,
            n: 1,
        }
    }

    fn table(rows: &[(&str, [f64; 3])]) -> Vec<Agg> {
        rows.iter()
            .flat_map(|(m, v)| [3.0, 8.0, f64::INFINITY].into_iter().zip(*v).map(|(e, b)| agg(m, e, b)))
            .collect()
    }

    #[test]
    fn the_papers_own_table_passes_and_a_broken_one_fails() {
        let paper: Vec<(&str, [f64; 3])> = PAPER_E2E_BLEU.to_vec();
        let cells = table(&paper);
        let refs: Vec<&Agg> = cells.iter().collect();
        let f = e2e_mini_findings(&refs, "BLEU");
        assert_eq!(f.len(), 5 + 6 + 2);
        assert!(f.iter().all(|x| x.holds == Some(true)), "{f:#?}");
        // Full at ε = 3 at half its non-private BLEU, retrain as good as full, LoRA far below, ε = 8 worse.
        let broken = table(&[
            ("full", [30.0, 52.0, 60.0]),
            ("lora", [10.0, 8.0, 50.0]),
            ("retrain", [25.0, 25.0, 40.0]),
            ("top2", [31.0, 31.0, 40.0]),
        ]);
        let refs: Vec<&Agg> = broken.iter().collect();
        let f = e2e_mini_findings(&refs, "BLEU");
        let failed: Vec<&str> = f.iter().filter(|x| x.holds == Some(false)).map(|x| x.claim.as_str()).collect();
        assert_eq!(failed.len(), 5, "{failed:#?}");
        assert!(failed.iter().any(|c| c.contains("0.65")) && failed.iter().any(|c| c.contains("retrain")));
        assert!(failed.iter().any(|c| c.contains("LoRA at ε = 8")) && failed.iter().any(|c| c.contains("top2 below")));
        assert!(f[2].holds == Some(true), "52 ≥ 0.75 × 60 = 45: {:?}", f[2]);
    }

    #[test]
    fn missing_runs_are_unknown_not_passed() {
        let cells = table(&[("full", [50.0, 55.0, 60.0])]);
        let refs: Vec<&Agg> = cells.iter().collect();
        let f = e2e_mini_findings(&refs, "BLEU");
        let retrain = f.iter().find(|x| x.claim.contains("retrain")).unwrap();
        assert_eq!(retrain.holds, None);
        assert!(retrain.evidence.contains("missing"));
        let md = markdown(&Comparison {
            subject: "e2e".into(),
            compare: Compare::Mini,
            metric: "BLEU".into(),
            findings: f,
            paper: vec![],
        });
        assert!(md.contains("| ? |") && md.contains("| ✓ |"), "{md}");
    }

    #[test]
    fn classification_findings_use_the_majority_rate() {
        let mk = |task: &str, metric: &str, epsilon: f64, v: f64| Agg {
            task: task.into(),
            metric: metric.into(),
            epsilon,
            ..agg("full", epsilon, v * 100.0)
        };
        let cells = [
            mk("sst2", "accuracy", 8.0, 0.85),
            mk("sst2", "accuracy", 3.0, 0.74),
            mk("sst2", "accuracy", f64::INFINITY, 0.90),
            mk("qnli", "accuracy", 8.0, 0.60),
            mk("qnli", "majority_accuracy", 8.0, 0.51),
            mk("qqp", "accuracy", 8.0, 0.60),
            mk("qqp", "majority_accuracy", 8.0, 0.63),
        ];
        let refs: Vec<&Agg> = cells.iter().collect();
        let f = classification_mini_findings(&refs);
        let holds: Vec<Option<bool>> = f.iter().map(|x| x.holds).collect();
        assert_eq!(holds, [Some(true), Some(false), Some(true), Some(true), Some(false), None], "{f:#?}");
        assert!(f[4].evidence.contains("60.00") && f[4].evidence.contains("63.00"), "{:?}", f[4]);
    }

    #[test]
    fn paper_cells_sit_next_to_ours() {
        let cells = table(&[("full", [60.0, 62.0, 70.0])]);
        let refs: Vec<&Agg> = cells.iter().collect();
        let p = e2e_paper_cells(&refs, "BLEU");
        assert_eq!(p.len(), 18);
        assert_eq!((p[0].paper, p[0].ours), (61.5, Some(60.0)));
        assert_eq!(p[3].ours, None);
        let md = markdown(&Comparison {
            subject: "e2e".into(),
            compare: Compare::Paper,
            metric: "BLEU".into(),
            findings: vec![],
            paper: p,
        });
        assert!(md.contains("| full | 3 | 61.5 | 60.00 | -1.50 |"), "{md}");
    }
}
