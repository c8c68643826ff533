//! What releasing only the best run of a random-search sweep costs (Papernot & Steinke 2022): when the
//! results folder holds the sweep's `selection.json`, the report states ε of the best-of-K release from
//! the candidates' common privacy ledger, next to one run's ε.

use std::path::Path;

use dp_core::accounting::rdp::epsilon_from_rdp;
use dp_core::accounting::selection::repeat_and_select_rdp;
use dp_core::accounting::{History, RdpAccountant};
use serde_json::{json, Value};

use super::collect::Run;
use crate::sweep::selection::Draw;

/// The note and the report.json entry, or `None` when `results` holds no selection draw.
pub fn selection_epsilon(results: &Path, runs: &[Run]) -> Option<(String, Value)> {
    let text = std::fs::read_to_string(results.join("selection.json")).ok()?;
    let refuse = |why: String| Some((format!("selection: {why}"), json!({"error": why})));
    let draw: Draw = match serde_json::from_str(&text) {
        Ok(d) => d,
        Err(e) => return refuse(format!("{}: {e}", results.join("selection.json").display())),
    };
    let count = match draw.selection.count() {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    // Every candidate must be the same mechanism: one ledger (σ, q, T) and one δ.
    let mut ledger: Option<(String, f64)> = None;
    for r in runs {
        let privacy: Value = match std::fs::read_to_string(r.dir.join("privacy.json")).map(|t| serde_json::from_str(&t))
        {
            Ok(Ok(v)) => v,
            _ => return refuse(format!("{}: no readable privacy.json", r.dir.display())),
        };
        let (Some(history), Some(delta)) = (privacy.get("history").filter(|h| !h.is_null()), privacy["delta"].as_f64())
        else {
            return refuse(format!("{}: not a private run; a private selection needs private candidates", r.id));
        };
        let this = (history.to_string(), delta);
        match &ledger {
            None => ledger = Some(this),
            Some(first) if *first != this => {
                return refuse(format!(
                    "candidates {} and others differ in their privacy ledger or δ: not one mechanism",
                    r.id
                ))
            }
            _ => {}
        }
    }
    let (history, delta) = ledger?;
    let history = History::from_json(&history).ok()?;
    let rdp = RdpAccountant::default();
    let single = rdp.rdp(&history);
    let selected = repeat_and_select_rdp(rdp.orders(), &single, count).ok()?;
    let (one, _) = epsilon_from_rdp(rdp.orders(), &single, delta);
    let (best, _) = epsilon_from_rdp(rdp.orders(), &selected, delta);
    let name = format!("{:?}", draw.selection.distribution).to_lowercase();
    let note = format!(
        "selection: these are the candidates of a random search (K ~ {name}, mean {}): releasing only the best run costs ε = {best:.4} (RDP, δ = {delta:e}), against ε = {one:.4} for one run; K and the other candidates' results are not covered",
        draw.selection.mean
    );
    Some((
        note,
        json!({"distribution": name, "mean": draw.selection.mean, "shape": draw.selection.shape,
        "delta": delta, "epsilon_one_run": one, "epsilon_best_of_k": best, "candidates": runs.len()}),
    ))
}
