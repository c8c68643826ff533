//! Test fixtures that may be absent (a data directory, tokenizer files, checkpoints built by the oracle
//! scripts). A test that cannot find its fixture either fails — when `DPFT_REQUIRE_FIXTURES=1`, which
//! `make test` sets whenever a data directory is present and CI always has — or is counted as skipped:
//! it prints `SKIPPED: test: reason` and appends that line to the file named by `DPFT_SKIP_LOG`, which
//! `make test` counts at the end. It never passes having checked nothing without saying so.
//!
//! Written here by hand (not a crate): cargo's test harness has no notion of a skipped test.

use std::io::Write;

/// When `1`, a missing fixture fails its test.
pub const REQUIRE_FIXTURES_ENV: &str = "DPFT_REQUIRE_FIXTURES";
/// A file each skipped test appends one line to.
pub const SKIP_LOG_ENV: &str = "DPFT_SKIP_LOG";

/// Whether missing fixtures fail their tests.
pub fn required() -> bool {
    std::env::var(REQUIRE_FIXTURES_ENV).is_ok_and(|v| v == "1")
}

/// A test's fixture is missing (`reason` says which and how to get it): panics when fixtures are
/// required, else records the skip and returns `None` (so `let Some(x) = … else { return }` reads as
/// "skip").
#[track_caller]
pub fn missing<T>(reason: &str) -> Option<T> {
    let current = std::thread::current();
    let test = current.name().unwrap_or("(unnamed test)");
    if required() {
        panic!("{test}: required fixture missing: {reason} ({REQUIRE_FIXTURES_ENV}=1; unset it to skip instead)");
    }
    let line = format!("SKIPPED: {test}: {reason}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV) {
        // Best effort: a log that cannot be written must not turn a skip into a failure.
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_fixture_skips_or_fails_as_the_environment_says() {
        // Run in a child thread with a fixed name so that the message is predictable; the environment is
        // read, not written, here: which branch is asserted depends on how the suite was started.
        let name = "fixtures_probe".to_string();
        let result =
            std::thread::Builder::new().name(name).spawn(move || missing::<()>("no such fixture")).unwrap().join();
        if required() {
            let panic = result.unwrap_err();
            let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(message.contains("fixtures_probe: required fixture missing: no such fixture"), "{message}");
        } else {
            assert_eq!(result.unwrap(), None);
        }
    }
}
