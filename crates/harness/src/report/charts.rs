//! Which figures a set of runs supports, and their data: the headline metric vs ε per method, the metric
//! vs model size per ε (Li et al. 2022, Figure 1), batch size × learning rate heatmaps (Section 3.1's
//! hyperparameter study) and training-loss curves. A figure without data is not drawn: its builder
//! returns the reason instead.

use std::collections::{BTreeMap, BTreeSet};

use super::aggregate::Agg;
use super::collect::Run;
use super::figures::{color, human_count, Heatmap, LineChart, Point, Series};
use super::names::{self, epsilon_label, metric_info};

/// A figure to write: its file stem (without extension) and drawing.
pub enum Planned {
    /// A line chart.
    Line(String, LineChart),
    /// A heatmap.
    Heat(String, Heatmap),
}

/// Keeps letters, digits, `.`, `_` and `-` of a file-name part; anything else becomes `-`.
pub fn file_part(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect()
}

fn eps_file(e: f64) -> String {
    if e.is_infinite() {
        "non-private".into()
    } else {
        format!("eps{}", file_part(&epsilon_label(e)))
    }
}

fn eps_text(e: f64) -> String {
    if e.is_infinite() {
        "non-private".into()
    } else {
        format!("ε = {}", epsilon_label(e))
    }
}

/// (method, model) pairs in the paper's method order, models by size.
fn method_columns(cells: &[&Agg], sizes: &BTreeMap<String, u64>) -> Vec<(String, String)> {
    let mut cols: Vec<(String, String)> =
        cells.iter().map(|a| (a.method.clone(), a.model.clone())).collect::<BTreeSet<_>>().into_iter().collect();
    cols.sort_by(|a, b| {
        names::method_order(&a.0, &b.0).then_with(|| sizes.get(&a.1).cmp(&sizes.get(&b.1))).then_with(|| a.1.cmp(&b.1))
    });
    cols
}

fn sorted_eps(cells: &[&Agg]) -> Vec<f64> {
    let mut eps: Vec<f64> = cells.iter().map(|a| a.epsilon).collect();
    eps.sort_by(|a, b| a.total_cmp(b));
    eps.dedup();
    eps
}

/// `metric` against ε, one series per method (and model when several), non-private at the right behind a
/// dashed separator; ± one standard deviation over seeds as error bars. `cells` are the task's selected
/// aggregates.
pub fn metric_vs_epsilon(
    task: &str,
    metric: &str,
    cells: &[&Agg],
    sizes: &BTreeMap<String, u64>,
) -> Result<Planned, String> {
    let cells: Vec<&Agg> = cells.iter().copied().filter(|a| a.metric == metric).collect();
    if cells.is_empty() {
        return Err(format!("no run of {task} reports {metric}"));
    }
    let info = metric_info(metric);
    let eps = sorted_eps(&cells);
    let cols = method_columns(&cells, sizes);
    let several_models = cols.iter().map(|c| &c.1).collect::<BTreeSet<_>>().len() > 1;
    let k = cols.len() as f64;
    let dodge = (0.3 / k).min(0.06);
    let mut series = Vec::new();
    for (i, (method, model)) in cols.iter().enumerate() {
        let offset = (i as f64 - (k - 1.0) / 2.0) * dodge;
        let point = |e: f64| {
            let a = cells.iter().find(|a| &a.method == method && &a.model == model && a.epsilon == e)?;
            let x = eps.iter().position(|v| *v == e)? as f64 + offset;
            Some(Point { x, y: a.mean, err: a.std })
        };
        let private: Vec<Point> = eps.iter().filter(|e| e.is_finite()).filter_map(|&e| point(e)).collect();
        let public: Vec<Point> = eps.iter().filter(|e| e.is_infinite()).filter_map(|&e| point(e)).collect();
        let label = if several_models {
            format!("{} ({model})", names::method_display(method))
        } else {
            names::method_display(method)
        };
        let has_private = !private.is_empty();
        for (points, line, first) in [(private, true, true), (public, false, !has_private)] {
            if !points.is_empty() {
                series.push(Series {
                    label: first.then(|| label.clone()),
                    color: color(i),
                    points,
                    line,
                    dashed: false,
                    markers: true,
                });
            }
        }
    }
    let nonprivate = eps.iter().position(|e| e.is_infinite());
    let separators = match nonprivate {
        Some(i) if i > 0 => vec![i as f64 - 0.5],
        _ => vec![],
    };
    let ticks = eps.iter().enumerate().map(|(i, &e)| (i as f64, vec![eps_text(e)])).collect();
    Ok(Planned::Line(
        format!("{}-vs-epsilon-{}", file_part(&metric.to_ascii_lowercase()), file_part(task)),
        LineChart {
            title: format!("{}: {} by privacy budget ε and method", names::task_display(task), info.display),
            x_label: if nonprivate.is_some() {
                "privacy budget ε (non-private: trained without noise)".into()
            } else {
                "privacy budget ε".into()
            },
            y_label: info.axis_label(),
            x_ticks: Some(ticks),
            separators,
            series,
        },
    ))
}

/// `metric` against the model's parameter count (log scale), one series per ε (and method when several),
/// for series with at least two model sizes (Li et al. 2022, Figure 1).
pub fn metric_vs_model_size(
    task: &str,
    metric: &str,
    cells: &[&Agg],
    sizes: &BTreeMap<String, u64>,
) -> Result<Planned, String> {
    let cells: Vec<&Agg> = cells.iter().copied().filter(|a| a.metric == metric).collect();
    let models: BTreeSet<&str> = cells.iter().map(|a| a.model.as_str()).collect();
    if models.len() < 2 {
        return Err(format!("{task}: one model only ({})", models.into_iter().collect::<Vec<_>>().join(", ")));
    }
    let unknown: Vec<&str> = models.iter().copied().filter(|m| !sizes.contains_key(*m)).collect();
    let mut groups: BTreeMap<(usize, String, u64), Vec<&Agg>> = BTreeMap::new();
    let methods: BTreeSet<&str> = cells.iter().map(|a| a.method.as_str()).collect();
    let mut method_list: Vec<&str> = methods.iter().copied().collect();
    method_list.sort_by(|a, b| names::method_order(a, b));
    for a in cells.iter().filter(|a| sizes.contains_key(&a.model)) {
        let rank = method_list.iter().position(|m| *m == a.method).unwrap_or(0);
        groups.entry((rank, a.method.clone(), a.epsilon.to_bits())).or_default().push(a);
    }
    groups.retain(|_, v| v.iter().map(|a| sizes[&a.model]).collect::<BTreeSet<_>>().len() >= 2);
    if groups.is_empty() {
        return Err(format!(
            "{task}: no (method, ε) has runs of two model sizes{}",
            if unknown.is_empty() {
                String::new()
            } else {
                format!(
                    " with a known size (unknown: {}; sizes come from summary.json's model_parameters or a full/retrain run's trainable_parameters)",
                    unknown.join(", ")
                )
            }
        ));
    }
    let info = metric_info(metric);
    let several_methods = groups.keys().map(|k| &k.1).collect::<BTreeSet<_>>().len() > 1;
    let all_eps: Vec<u64> = {
        let mut e: Vec<f64> = groups.keys().map(|k| f64::from_bits(k.2)).collect();
        e.sort_by(|a, b| a.total_cmp(b));
        e.dedup();
        e.into_iter().map(f64::to_bits).collect()
    };
    let mut series = Vec::new();
    let mut plotted: BTreeSet<(u64, String)> = BTreeSet::new();
    for (i, ((_, method, eps_bits), group)) in groups.iter().enumerate() {
        let e = f64::from_bits(*eps_bits);
        let mut points: Vec<(u64, &Agg)> = group.iter().map(|a| (sizes[&a.model], *a)).collect();
        points.sort_by_key(|p| p.0);
        for (n, a) in &points {
            plotted.insert((*n, a.model.clone()));
        }
        let colour =
            if several_methods { color(i) } else { color(all_eps.iter().position(|b| b == eps_bits).unwrap_or(i)) };
        series.push(Series {
            label: Some(if several_methods {
                format!("{}, {}", names::method_display(method), eps_text(e))
            } else {
                eps_text(e)
            }),
            color: colour,
            points: points.iter().map(|(n, a)| Point { x: (*n as f64).log10(), y: a.mean, err: a.std }).collect(),
            line: true,
            dashed: e.is_infinite(),
            markers: true,
        });
    }
    let ticks = plotted.iter().map(|(n, m)| ((*n as f64).log10(), vec![human_count(*n), m.clone()])).collect();
    let method_note =
        if several_methods { String::new() } else { format!(", {}", names::method_display(method_list[0])) };
    Ok(Planned::Line(
        format!("{}-vs-model-size-{}", file_part(&metric.to_ascii_lowercase()), file_part(task)),
        LineChart {
            title: format!(
                "{}: {} vs model size{method_note} (cf. Li et al. 2022, Fig. 1)",
                names::task_display(task),
                info.display
            ),
            x_label: "parameters (log scale)".into(),
            y_label: info.axis_label(),
            x_ticks: Some(ticks),
            separators: vec![],
            series,
        },
    ))
}

/// "5e-4", "0.002" → "2e-3": learning rates in exponent form.
fn lr_text(lr: f64) -> String {
    format!("{lr:e}")
}

/// One heatmap per (model, method, ε) of `task` with at least two batch sizes or two learning rates;
/// `cells` are the task's aggregates selected per (batch size, learning rate).
pub fn heatmaps(task: &str, metric: &str, cells: &[&Agg]) -> Result<Vec<Planned>, String> {
    let info = metric_info(metric);
    let cells: Vec<&Agg> = cells.iter().copied().filter(|a| a.metric == metric).collect();
    let mut groups: BTreeMap<(String, String, u64), Vec<&Agg>> = BTreeMap::new();
    for a in &cells {
        groups.entry((a.model.clone(), a.method.clone(), a.epsilon.to_bits())).or_default().push(a);
    }
    let mut out = Vec::new();
    for ((model, method, eps_bits), group) in groups {
        let e = f64::from_bits(eps_bits);
        let batches: BTreeSet<u64> = group.iter().map(|a| a.batch_size).collect();
        let mut lrs: Vec<f64> = group.iter().map(|a| a.learning_rate).collect();
        lrs.sort_by(|a, b| a.total_cmp(b));
        lrs.dedup();
        if batches.len() < 2 && lrs.len() < 2 {
            continue;
        }
        let batches: Vec<u64> = batches.into_iter().collect();
        let wide = lrs.len() <= 4;
        let values = batches
            .iter()
            .map(|&b| {
                lrs.iter()
                    .map(|&lr| {
                        let a = group.iter().find(|a| a.batch_size == b && a.learning_rate == lr)?;
                        let text = match a.std {
                            Some(s) if wide => format!("{:.2} ± {s:.2}", a.mean),
                            _ => format!("{:.2}", a.mean),
                        };
                        Some((a.mean, text))
                    })
                    .collect()
            })
            .collect();
        out.push(Planned::Heat(
            format!(
                "heatmap-{}-{}-{}-{}-{}",
                file_part(&metric.to_ascii_lowercase()),
                file_part(task),
                file_part(&model),
                file_part(&method),
                eps_file(e)
            ),
            Heatmap {
                title: format!(
                    "{}, {model}, {}, {}: {} by batch size and learning rate",
                    names::task_display(task),
                    names::method_display(&method),
                    eps_text(e),
                    info.display
                ),
                x_label: "learning rate".into(),
                y_label: "batch size".into(),
                x_ticks: lrs.iter().map(|&l| lr_text(l)).collect(),
                y_ticks: batches.iter().map(|b| b.to_string()).collect(),
                values,
                value_label: info.axis_label(),
            },
        ));
    }
    if out.is_empty() {
        Err(format!("{task}: every (model, method, ε) has one batch size and one learning rate"))
    } else {
        Ok(out)
    }
}

/// Training loss per step, one line per run; runs of one (model, method, ε) share a colour and a legend
/// entry. A private run's per-step losses come from its batches without noise (not covered by ε): they are
/// drawn only with `diagnostics`, and the figure then says so.
pub fn training_curves(task: &str, runs: &[&Run], diagnostics: bool) -> Result<Planned, String> {
    let with_curve = runs.iter().copied().filter(|r| !r.curve.is_empty());
    let runs: Vec<&Run> = with_curve.filter(|r| diagnostics || r.epsilon.is_infinite()).collect();
    if runs.is_empty() {
        return Err(format!(
            "{task}: no {}run has training losses in metrics.jsonl{}",
            if diagnostics { "" } else { "non-private " },
            if diagnostics { "" } else { " (private runs' losses are not covered by ε: --diagnostics draws them)" }
        ));
    }
    let private_drawn = runs.iter().any(|r| r.epsilon.is_finite());
    let several_models = runs.iter().map(|r| &r.model).collect::<BTreeSet<_>>().len() > 1;
    let mut keys: Vec<(String, String, u64)> = runs
        .iter()
        .map(|r| (r.method.clone(), r.model.clone(), r.epsilon.to_bits()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by(|a, b| {
        names::method_order(&a.0, &b.0)
            .then_with(|| a.1.cmp(&b.1))
            .then_with(|| f64::from_bits(a.2).total_cmp(&f64::from_bits(b.2)))
    });
    let key_of = |r: &Run| {
        let key = (r.method.clone(), r.model.clone(), r.epsilon.to_bits());
        keys.iter().position(|k| *k == key).unwrap_or(0)
    };
    let mut runs = runs;
    runs.sort_by_key(|r| key_of(r));
    let mut labelled = BTreeSet::new();
    let mut series = Vec::new();
    for r in &runs {
        let i = key_of(r);
        let label = labelled.insert(i).then(|| {
            let base = format!("{}, {}", names::method_display(&r.method), eps_text(r.epsilon));
            if several_models {
                format!("{base} ({})", r.model)
            } else {
                base
            }
        });
        series.push(Series {
            label,
            color: color(i),
            points: r.curve.iter().map(|&(s, l)| Point { x: s as f64, y: l, err: None }).collect(),
            line: true,
            dashed: false,
            markers: r.curve.len() == 1,
        });
    }
    Ok(Planned::Line(
        format!("training-loss-{}", file_part(task)),
        LineChart {
            title: if private_drawn {
                format!(
                    "{}: training loss per step (private runs' losses: not covered by ε)",
                    names::task_display(task)
                )
            } else {
                format!("{}: training loss per step", names::task_display(task))
            },
            x_label: "step".into(),
            y_label: "training loss".into(),
            x_ticks: None,
            separators: vec![],
            series,
        },
    ))
}
