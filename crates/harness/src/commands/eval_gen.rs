//! `dpft eval-gen`: BLEU, NIST, METEOR, ROUGE-L and CIDEr of predictions against references in the
//! e2e-metrics text format (the `metrics` crate; e2e-metrics definitions).

use anyhow::Result;

use crate::cli::EvalGenArgs;
use crate::exit::BadInput;

/// References in the e2e-metrics text format: all references of one segment on consecutive lines,
/// segments separated by one blank line.
pub fn references_text(references: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, refs) in references.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for r in refs {
            out.push_str(&r.replace(['\n', '\r'], " "));
            out.push('\n');
        }
    }
    out
}

pub fn run(args: &EvalGenArgs) -> Result<()> {
    let read = |p: &std::path::Path, what: &str| {
        std::fs::read_to_string(p).map_err(|e| BadInput(format!("{}: cannot read the {what} file: {e}", p.display())))
    };
    let predictions = metrics::read_predictions(&read(&args.predictions, "predictions")?);
    let references = metrics::read_references(&read(&args.references, "references")?)
        .map_err(|e| BadInput(format!("{}: {e}", args.references.display())))?;
    if predictions.len() != references.len() {
        return Err(BadInput(format!(
            "{} has {} predictions but {} has {} segments; they must match one to one",
            args.predictions.display(),
            predictions.len(),
            args.references.display(),
            references.len()
        ))
        .into());
    }
    let meteor = match (&args.meteor_jar, args.no_meteor) {
        (_, true) => crate::gen_metrics::Meteor::Off,
        (Some(jar), _) => crate::gen_metrics::Meteor::Jar(jar.clone()),
        (None, false) => crate::gen_metrics::Meteor::Auto,
    };
    // Every metrics error is about the given files (empty input, an empty segment, a missing jar).
    let v = if args.dart {
        crate::gen_metrics::evaluate_dart(&predictions, &references)
    } else {
        crate::gen_metrics::evaluate(&predictions, &references, meteor)
    }
    .map_err(|e| BadInput(format!("{e:#}")))?;
    if args.json {
        println!("{v}");
    } else {
        let keys: &[&str] =
            if args.dart { &["BLEU", "ROUGE_L"] } else { &["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"] };
        for &key in keys {
            match v[key].as_f64() {
                Some(x) => println!("{key:<8} {x:.4}"),
                None => println!("{key:<8} unavailable (needs java and the METEOR 1.5 jar; see --help)"),
            }
        }
    }
    Ok(())
}
