//! `dpft privacy` as a user runs it: JSON layout, accountant selection, bad input, calibration.

mod support;

use std::process::Output;

fn dpft(args: &[&str]) -> Output {
    support::run(args)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

const E2E: [&str; 8] =
    ["--noise-multiplier", "1.1", "--sample-rate", "0.004266666666666667", "--steps", "14063", "--delta", "1e-5"];

#[test]
fn epsilon_json_has_each_requested_accountant_and_only_those() {
    let mut args = vec!["privacy", "epsilon", "--json"];
    args.extend(E2E);
    let v = json(&dpft(&args));
    let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["gdp", "prv", "rdp"]);
    // ../shared/docs/oracles.md row 1: RDP 2.59666 (α 8.1), GDP 2.32436, PLD 2.38178 inside PRV bounds.
    assert!((v["rdp"]["epsilon"].as_f64().unwrap() - 2.59666).abs() < 1e-5);
    assert_eq!(v["rdp"]["order"].as_f64(), Some(8.1));
    assert!((v["gdp"]["epsilon"].as_f64().unwrap() - 2.32436).abs() < 1e-5);
    let prv = &v["prv"];
    let (lo, est, up) = (
        prv["epsilon_lower"].as_f64().unwrap(),
        prv["epsilon_estimate"].as_f64().unwrap(),
        prv["epsilon"].as_f64().unwrap(),
    );
    assert!(lo <= 2.38178 && 2.38178 <= up && lo <= est && est <= up, "{prv}");

    args.extend(["--accountant", "rdp"]);
    let v = json(&dpft(&args));
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert!(v["rdp"]["epsilon"].is_number());
}

#[test]
fn gdp_always_comes_with_its_warning() {
    let mut args = vec!["privacy", "epsilon", "--accountant", "gdp"];
    args.extend(E2E);
    let out = dpft(&args);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("under-estimate"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("APPROXIMATION"));
}

#[test]
fn bad_input_names_the_argument_and_exits_2() {
    let base = ["privacy", "epsilon", "--steps", "10", "--delta", "1e-5", "--sample-rate", "0.1"];
    let cases: &[(&[&str], &str)] = &[
        (&["--noise-multiplier", "0"], "--noise-multiplier = 0"),
        (&["--noise-multiplier", "-1"], "--noise-multiplier = -1"),
        (&["--noise-multiplier", "inf"], "--noise-multiplier = inf"),
        (&["--noise-multiplier", "nan"], "--noise-multiplier = NaN"),
        (&["--noise-multiplier", "1", "--sample-rate", "1.5"], "--sample-rate = 1.5"),
        (&["--noise-multiplier", "1", "--sample-rate", "0"], "--sample-rate = 0"),
        (&["--noise-multiplier", "1", "--delta", "1"], "--delta = 1"),
        (&["--noise-multiplier", "1", "--delta", "0"], "--delta = 0"),
        (&["--noise-multiplier", "1", "--steps", "0"], "--steps = 0"),
        (&["--noise-multiplier", "1", "--accountant", "moments"], "invalid value 'moments'"),
        (&["--noise-multiplier", "1", "--orders", "0.5,2"], "--orders = 0.5"),
    ];
    for (extra, want) in cases {
        // The case's flags replace the base's flags of the same name.
        let mut args: Vec<&str> = base[..2].to_vec();
        for pair in base[2..].chunks(2) {
            if !extra.contains(&pair[0]) {
                args.extend_from_slice(pair);
            }
        }
        args.extend_from_slice(extra);
        let out = dpft(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: expected {want:?} in {err}");
    }
}

#[test]
fn shuffle_is_refused_by_prv_and_accounted_by_rdp() {
    let common = ["privacy", "epsilon", "--noise-multiplier", "1", "--batch-size", "256", "--dataset-size", "60000"];
    let mut args = common.to_vec();
    args.extend(["--steps", "100", "--sampling", "shuffle", "--accountant", "prv"]);
    let out = dpft(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Poisson sampling only"));
    let mut args = common.to_vec();
    args.extend(["--steps", "100", "--sampling", "shuffle", "--json"]);
    let v = json(&dpft(&args));
    assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["rdp"]);
    // Same run under Poisson sampling costs less: replace-one with sensitivity 2C is the stricter statement.
    let mut args = common.to_vec();
    args.extend(["--steps", "100", "--accountant", "rdp", "--json"]);
    let poisson = json(&dpft(&args));
    assert!(v["rdp"]["epsilon"].as_f64() > poisson["rdp"]["epsilon"].as_f64());
}

const E2E_NOISE: [&str; 15] = [
    "privacy",
    "noise",
    "--target-epsilon",
    "3",
    "--delta",
    "8e-6",
    "--batch-size",
    "1024",
    "--dataset-size",
    "42061",
    "--epochs",
    "10",
    "--accountant",
    "rdp",
    "--json",
];

#[test]
fn noise_reaches_the_target_from_below_and_rounds_up() {
    let v = json(&dpft(&E2E_NOISE));
    let sigma = v["rdp"]["noise_multiplier"].as_f64().unwrap();
    let eps = v["rdp"]["epsilon"].as_f64().unwrap();
    assert!(eps <= 3.0 && 3.0 - eps <= 1e-3, "{v}");
    assert!((sigma - 1.089).abs() < 1e-3, "{v}"); // ../shared/docs/oracles.md: σ_RDP ≈ 1.089
                                                  // The table shows σ rounded up, so a copied value never overshoots the target.
    let out = dpft(&E2E_NOISE[..E2E_NOISE.len() - 1]);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with("rdp")).unwrap();
    let shown: f64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(shown >= sigma && shown - sigma < 1e-6, "{row} vs {sigma}");
}

#[test]
fn unreachable_target_is_a_clear_error() {
    let out = dpft(&[
        "privacy",
        "noise",
        "--target-epsilon",
        "1000",
        "--delta",
        "1e-5",
        "--sample-rate",
        "0.01",
        "--steps",
        "10",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("target epsilon 1000") && err.contains("vacuous"), "{err}");
}

#[test]
fn default_delta_and_warning_from_dataset_size() {
    let base = [
        "privacy",
        "epsilon",
        "--noise-multiplier",
        "1",
        "--sample-rate",
        "0.01",
        "--steps",
        "100",
        "--dataset-size",
        "1000",
        "--accountant",
        "rdp",
    ];
    let out = dpft(&base);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("delta = {:e}", 1000f64.powf(-1.1))), "{text}");
    let out = dpft(&[&base[..], &["--delta", "0.002"]].concat());
    assert!(String::from_utf8_lossy(&out.stderr).contains("≥ 1/n"));
}
