//! `metrics.jsonl`: one JSON line per step and per evaluation. A resumed run keeps the lines up to its
//! checkpoint and rewrites what came after.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

/// Appends JSON lines to `metrics.jsonl`.
pub(super) struct Metrics {
    file: std::fs::File,
}

impl Metrics {
    /// Opens `metrics.jsonl`, keeping only the lines of steps ≤ `keep_until` (a resumed run rewrites what
    /// came after its checkpoint).
    pub fn open(out: &Path, keep_until: u64) -> Result<Self> {
        let path = out.join("metrics.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
        };
        let kept: Vec<String> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l).ok().and_then(|v| v["step"].as_u64()).is_some_and(|s| s <= keep_until)
            })
            .map(String::from)
            .collect();
        let mut text = kept.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        models::safe_fs::write_atomic(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file })
    }

    pub fn write(&mut self, line: &Value) -> Result<()> {
        writeln!(self.file, "{line}")?;
        Ok(())
    }
}
