//! The `dpft` binary as a user runs it: help, version, exit codes, device and data-directory handling.

mod support;

use std::process::Command;

use support::{run as dpft, stderr, stdout};

const SUBCOMMANDS: &[&str] = &[
    "info",
    "data",
    "privacy",
    "train",
    "train-tokenizer",
    "eval-gen",
    "score",
    "generate",
    "clip-check",
    "sweep",
    "report",
    "bench",
];

#[test]
fn help_lists_every_subcommand_with_a_description() {
    let out = dpft(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for cmd in SUBCOMMANDS {
        let line = help.lines().find(|l| l.trim_start().starts_with(&format!("{cmd} "))).unwrap_or_else(|| {
            panic!("`{cmd}` missing from --help:\n{help}");
        });
        assert!(line.split_whitespace().count() > 3, "no description for {cmd}: {line:?}");
    }
    assert!(help.contains("--device") && help.contains("--data-dir") && help.contains("-v, --verbose"));
}

#[test]
fn version_matches_the_crate() {
    let out = dpft(&["--version"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), format!("dpft {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_usage_exits_2() {
    for args in [&["--no-such-flag"][..], &["info", "--device", "tpu"], &["no-such-command"], &[]] {
        let out = dpft(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn cuda_request_without_gpu_fails_closed() {
    if tch::Cuda::is_available() {
        let out = dpft(&["info", "--device", "cuda"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("cuda:0"));
        return;
    }
    let out = dpft(&["info", "--device", "cuda"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("CUDA is not available"), "{}", stderr(&out));
}

#[test]
fn device_is_printed_at_start_and_quiet_hides_it() {
    let out = dpft(&["info", "--device", "cpu"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("[dpft] device: cpu"), "{}", stderr(&out));
    let out = dpft(&["-q", "info", "--device", "cpu"]);
    assert!(!stderr(&out).contains("device:"), "{}", stderr(&out));
}

#[test]
fn info_json_reports_device_and_data_dir() {
    let dir = std::env::temp_dir().join(format!("dpft-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("e2e")).unwrap();
    std::fs::write(dir.join("e2e/trainset.csv"), "mr,ref\n").unwrap();
    let out = dpft(&["info", "--json", "--device", "cpu", "--data-dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("valid JSON");
    assert_eq!(v["device"]["resolved"], "Cpu");
    assert_eq!(v["device"]["requested"], "cpu");
    assert_eq!(v["data_dir"]["source"], "--data-dir");
    assert_eq!(v["data_dir"]["exists"], true);
    let e2e = v["data_dir"]["datasets"].as_array().unwrap().iter().find(|d| d["name"] == "e2e").unwrap();
    assert_eq!(e2e["present"], serde_json::json!(["e2e/trainset.csv"]));
    assert_eq!(e2e["missing"].as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn data_dir_from_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_dpft"))
        .args(["data", "status", "--json"])
        .env("DPFT_DATA_DIR", "/nonexistent-dpft-data")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["data_dir"], "/nonexistent-dpft-data");
    assert!(v["files"].as_array().unwrap().iter().all(|f| f["present"] == false));
}

#[test]
fn sources_tsv_has_five_columns() {
    let out = dpft(&["data", "sources", "--tsv"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.lines().count() >= 20, "{text}");
    for line in text.lines() {
        let cols: Vec<_> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "{line:?}");
        assert!(cols[1].starts_with(cols[0]) && cols[2].starts_with("https://"), "{line:?}");
    }
}
