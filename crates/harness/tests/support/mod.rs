//! Shared by the CLI tests: the built `dpft` run as a user runs it, without the caller's `DPFT_DEVICE` or
//! `RUST_LOG`, and its output as text.

#![allow(dead_code)]

use std::process::{Command, Output};

/// `dpft` with a clean environment for the settings tests must control.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpft"));
    cmd.env_remove("DPFT_DEVICE").env_remove("RUST_LOG");
    cmd
}

/// Runs `dpft args…` and waits for it.
pub fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run dpft")
}

/// Its standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Its standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A JSON file the run wrote, parsed (panics naming the file when it is missing or malformed).
pub fn read_json(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
