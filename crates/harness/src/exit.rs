//! Error reporting and exit codes: one clear line, then the chain of causes; 2 for bad input, 1 otherwise.

use std::process::ExitCode;

use dp_core::accounting::AccountingError;
use dp_core::DeviceError;
use models::DataError;

/// Bad usage or input found after argument parsing (clap itself exits with 2 for malformed arguments).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Whether an error is the user's input rather than a failure at run time.
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<BadInput>() || e.is::<DeviceError>() || e.is::<DataError>() || e.is::<AccountingError>())
}

/// Prints the error as `error: …` plus one `caused by:` line per cause, and picks the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if is_bad_input(err) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn classifies_input_errors_through_context() {
        let e = Err::<(), _>(BadInput("bad".into())).context("reading x.yaml").unwrap_err();
        assert!(is_bad_input(&e));
        let e = Err::<(), _>(DeviceError::Parse("tpu".into())).context("choosing device").unwrap_err();
        assert!(is_bad_input(&e));
        let e = anyhow::anyhow!("disk full");
        assert!(!is_bad_input(&e));
    }
}
