//! `dpft report RESULTS_DIR`: tables (Markdown, CSV, LaTeX) and figures (PNG, SVG) from finished runs
//! ([`crate::report`]); the Markdown tables are printed on stdout, the rest is logged.

use anyhow::Result;

use crate::cli::ReportArgs;
use crate::report::{self, table, Options};

/// Writes the report and prints its Markdown tables.
pub fn run(args: &ReportArgs) -> Result<()> {
    let opts = Options {
        results: args.results.clone(),
        out: args.out.clone().unwrap_or_else(|| args.results.join("report")),
        table_name: args.table_name.clone(),
        metric: args.metric.clone(),
        tasks: args.task.clone(),
        figures: !args.no_figures,
        compare: args.compare,
        diagnostics: args.diagnostics,
    };
    let outcome = report::run(&opts)?;
    log::info!("{} runs read from {}", outcome.runs, opts.results.display());
    for s in &outcome.skipped {
        if s.unfinished {
            log::info!("skipped {}: {}", s.path.display(), s.reason);
        } else {
            log::warn!("skipped {}: {}", s.path.display(), s.reason);
        }
    }
    for n in &outcome.notes {
        log::warn!("{n}");
    }
    for f in &outcome.figures_skipped {
        log::info!("figure not drawn: {f}");
    }
    log::info!("wrote {} files into {}:", outcome.files.len(), opts.out.display());
    for f in &outcome.files {
        log::info!("  {}", f.display());
    }
    let tables: Vec<String> = outcome.tables.iter().map(table::markdown).collect();
    println!("{}", tables.join("\n"));
    Ok(())
}
