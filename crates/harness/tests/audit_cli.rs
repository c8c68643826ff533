//! `dpft audit` on the tiny GPT-2 (16 E2E rows, 10 steps at sample rate 1, fixed seeds so that every
//! figure below is reproducible): the positive control has power (ε_lb ≥ 3 with 1,000 canaries), honest
//! runs at ε = 1 and ε = 4 stay below their claim, and a release with a quarter of the accounted noise is
//! caught (ε_lb above the claimed ε = 2). The statistics themselves are checked against jax-privacy in
//! python/tests/test_audit.py.

#[path = "../../models/tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::stderr;

fn setup() -> Option<PathBuf> {
    models::DataDir::for_tests("e2e")?;
    common::tiny_models().map(|d| d.join("gpt2-tied"))
}

fn audit(model: &Path, name: &str, epsilon: &str, extra: &[&str]) -> Value {
    let data = models::DataDir::for_tests("e2e").expect("checked by the caller");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("audit");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &cfg,
        format!(
            "model: {{path: {}, untie_lm_head: true}}
task: {{name: e2e, max_length: 60, max_train_examples: 16, max_eval_examples: 1}}
optimization: {{learning_rate: 1e-3, batch_size: 100000, physical_batch_size: 16, steps: 10, seed: 3}}
privacy: {{target_epsilon: {epsilon}, delta: 1e-5, max_grad_norm: 0.5, noise_seed: fixed}}
generation: {{num_beams: 1, max_new_tokens: 2, min_new_tokens: 1, meteor: false}}
",
            model.display()
        ),
    )
    .unwrap();
    let out = dir.join(name);
    let o = support::command()
        .args(["--device", "cpu", "--data-dir", data.root().to_str().unwrap(), "audit", cfg.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap(), "--json"])
        .args(extra)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("run dpft");
    assert!(o.status.success(), "{}", stderr(&o));
    let result: Value = serde_json::from_slice(&o.stdout).unwrap();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap();
    assert_eq!(saved["epsilon_lower_bound"], result["epsilon_lower_bound"]);
    let count = |f: &str| std::fs::read_to_string(out.join(f)).unwrap().lines().count();
    assert_eq!(count("in_scores.txt") + count("out_scores.txt"), result["canaries"].as_u64().unwrap() as usize);
    for key in ["epsilon_claimed", "delta", "epsilon_lower_bound", "confidence", "canaries", "guesses", "correct"] {
        assert!(!result[key].is_null(), "{key} in {result}");
    }
    result
}

fn eps(r: &Value, key: &str) -> f64 {
    r[key].as_f64().unwrap()
}

// Four tests, not one, so that the test harness runs them side by side.

#[test]
fn the_positive_control_shows_the_audit_has_power() {
    let Some(model) = setup() else { return };
    let control = audit(&model, "control", "4", &["--positive-control"]);
    assert_eq!(control["kind"], "white_box_gradient");
    assert!(eps(&control, "epsilon_lower_bound") >= 3.0, "positive control: {control}");
}

fn honest(claim: &str) {
    let Some(model) = setup() else { return };
    let honest = audit(&model, &format!("honest-{claim}"), claim, &[]);
    let claimed = eps(&honest, "epsilon_claimed");
    assert!((claimed - claim.parse::<f64>().unwrap()).abs() < 0.01, "{honest}");
    assert!(eps(&honest, "epsilon_lower_bound") <= claimed, "honest ε = {claim}: {honest}");
    assert_eq!(honest["passed"], true);
}

#[test]
fn an_honest_release_at_epsilon_1_passes() {
    honest("1");
}

#[test]
fn an_honest_release_at_epsilon_4_passes() {
    honest("4");
}

#[test]
fn a_release_with_a_quarter_of_the_noise_is_caught() {
    let Some(model) = setup() else { return };
    let broken = audit(&model, "broken", "2", &["--sabotage-noise", "0.25"]);
    assert!(eps(&broken, "epsilon_lower_bound") > eps(&broken, "epsilon_claimed"), "σ/4 released: {broken}");
    assert_eq!(broken["passed"], false);
}

#[test]
fn a_black_box_audit_scores_input_canaries_by_their_loss() {
    let Some(model) = setup() else { return };
    let honest = audit(&model, "black-box", "4", &["--kind", "black-box", "--canaries", "100", "--canary-length", "8"]);
    assert_eq!(honest["kind"], "black_box_input");
    assert_eq!(honest["canaries"], 100);
    assert!(eps(&honest, "epsilon_lower_bound") <= eps(&honest, "epsilon_claimed"), "{honest}");
    let bad = support::command().args(["audit", "x.yaml", "--kind", "grey-box"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
