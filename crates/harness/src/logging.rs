//! Log output on stderr, with verbosity from `-v` / `-q` (stdout stays for results and `--json`).

use std::io::Write;

use log::LevelFilter;

/// Starts the logger. `RUST_LOG`, when set, takes precedence (e.g. `RUST_LOG=dp_core=debug`).
pub fn init(level: LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level).format(|buf, record| match record.level() {
        log::Level::Info => writeln!(buf, "[dpft] {}", record.args()),
        log::Level::Warn => writeln!(buf, "warning: {}", record.args()),
        log::Level::Error => writeln!(buf, "error: {}", record.args()),
        other => writeln!(buf, "[{}] {}: {}", other.as_str().to_lowercase(), record.target(), record.args()),
    });
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.init();
}
