//! `dpft data status|sources`: the data catalogue and what the data directory holds.

use anyhow::Result;
use models::data::CATALOGUE;
use models::DataDir;
use serde_json::json;

use crate::cli::{DataCommand, GlobalArgs};

pub fn run(global: &GlobalArgs, cmd: &DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Status { json } => status(global, *json),
        DataCommand::Sources { tsv } => {
            sources(*tsv);
            Ok(())
        }
    }
}

fn status(global: &GlobalArgs, as_json: bool) -> Result<()> {
    let data = DataDir::resolve(global.data_dir.as_deref());
    if !data.root().is_dir() {
        let what = format!("data directory {} (set by {}) does not exist", data.root().display(), data.source());
        // A folder named on the command line that is not there is a typo; the default data/ of a fresh
        // checkout (or an environment's folder) may simply not be fetched yet: a warning names it.
        if data.source() == models::DataDirSource::Flag {
            return Err(
                crate::exit::BadInput(format!("{what}; check the path, or create it and run `make data`")).into()
            );
        }
        log::warn!("{what}: every file is missing; `make data` fetches them");
    }
    let status = data.status();
    if as_json {
        let rows: Vec<_> = status
            .iter()
            .flat_map(|s| {
                let present = s.present.iter().map(|f| (f, true));
                present
                    .chain(s.missing.iter().map(|f| (f, false)))
                    .map(|(f, ok)| json!({"dataset": s.dataset.name, "path": f.path, "present": ok, "url": f.url}))
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({"data_dir": data.root(), "files": rows}))?);
        return Ok(());
    }
    println!("data directory: {} (set by {})", data.root().display(), data.source());
    for s in &status {
        println!("{} — {}", s.dataset.name, s.dataset.description);
        for f in &s.present {
            println!("  [x] {}", f.path);
        }
        for f in &s.missing {
            println!("  [ ] {}   <- {}", f.path, f.url);
        }
    }
    Ok(())
}

fn sources(tsv: bool) {
    for d in CATALOGUE {
        if !tsv {
            println!("{} — {}", d.name, d.description);
        }
        for f in d.files {
            let member = f.archive_member.unwrap_or("-");
            let sha = f.sha256.unwrap_or("-");
            if tsv {
                println!("{}\t{}\t{}\t{member}\t{sha}", d.name, f.path, f.url);
            } else {
                let from = f.archive_member.map(|m| format!(" (member {m})")).unwrap_or_default();
                println!("  {:<44} {}{from}", f.path, f.url);
            }
        }
    }
}
