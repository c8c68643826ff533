//! Score generated texts with the e2e-metrics definitions (or GEM-style for DART) and print JSON.
//!
//! ```text
//! cargo build -p metrics --example eval_gen      # -> target/debug/examples/eval_gen
//! eval_gen --references REFS --predictions PRED [--predictions PRED2 …]
//!          [--dart] [--meteor-jar JAR | --no-meteor] [--nist pymteval|mteval13a]
//!          [--dump-ptb DIR]
//! ```
//! REFS is e2e-metrics' multi-reference text format (the references of one segment on consecutive lines,
//! segments separated by a blank line); PRED has one prediction per line. With one `--predictions` the output is
//! one JSON object `{"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}` (with `--dart`: `{"BLEU", "ROUGE_L"}`); with
//! several, a JSON array in the same order (one METEOR JVM serves them all). Why METEOR is null goes to stderr.
//!
//! `--dump-ptb DIR` writes the PTB tokenisation METEOR/ROUGE-L/CIDEr were computed on: `DIR/references.txt` (all
//! references, segment by segment, one per line) and `DIR/predictions.K.txt` for the K-th `--predictions` (from 0).
//!
//! Test helpers (used by `python/tests/test_metrics.py`), each reading one text per line of FILE and printing one
//! line per input line: `--ptb-tokenize FILE` (pycocoevalcap's tokenisation, lines lexed as one stream),
//! `--porter-stem FILE` (NLTK's Porter stemmer), `--rouge-tokenize FILE` (rouge-score's tokeniser).

use std::path::PathBuf;
use std::process::ExitCode;

use metrics::{EvalOptions, Evaluator, MeteorMode, MeteorSetup, NistVariant};

const USAGE: &str = "usage: eval_gen --references REFS --predictions PRED [--predictions PRED …] [--dart] \
[--meteor-jar JAR | --no-meteor] [--nist pymteval|mteval13a] [--dump-ptb DIR]\n       \
eval_gen --ptb-tokenize FILE | --porter-stem FILE | --rouge-tokenize FILE";

#[derive(Default)]
struct Args {
    references: Option<PathBuf>,
    predictions: Vec<PathBuf>,
    dart: bool,
    meteor: MeteorMode,
    nist: NistVariant,
    dump_ptb: Option<PathBuf>,
    helper: Option<(String, PathBuf)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match a.as_str() {
            "--references" => args.references = Some(value(&a)?.into()),
            "--predictions" => args.predictions.push(value(&a)?.into()),
            "--dart" => args.dart = true,
            "--meteor-jar" => args.meteor = MeteorMode::Jar(value(&a)?.into()),
            "--no-meteor" => args.meteor = MeteorMode::Disabled,
            "--dump-ptb" => args.dump_ptb = Some(value(&a)?.into()),
            "--nist" => {
                args.nist = match value(&a)?.as_str() {
                    "pymteval" => NistVariant::Pymteval,
                    "mteval13a" => NistVariant::Mteval13a,
                    other => return Err(format!("unknown --nist {other:?} (pymteval or mteval13a)\n{USAGE}")),
                }
            }
            "--ptb-tokenize" | "--porter-stem" | "--rouge-tokenize" => {
                args.helper = Some((a.clone(), value(&a)?.into()));
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn read_lines(path: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().map(str::to_string).collect())
}

fn write_lines<S: AsRef<str>>(path: &std::path::Path, lines: &[S]) -> Result<(), String> {
    let text: String = lines.iter().map(|l| format!("{}\n", l.as_ref())).collect();
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn run(args: Args) -> Result<(), String> {
    if let Some((helper, file)) = &args.helper {
        let lines = read_lines(file)?;
        let out: Vec<String> = match helper.as_str() {
            "--ptb-tokenize" => metrics::ptb::coco_tokenize(&lines),
            "--porter-stem" => lines.iter().map(|w| metrics::porter::stem(w)).collect(),
            _ => lines.iter().map(|l| metrics::rouge::rouge_score_tokenize(l).join(" ")).collect(),
        };
        for l in out {
            println!("{l}");
        }
        return Ok(());
    }
    let refs_path = args.references.as_ref().ok_or_else(|| format!("--references is required\n{USAGE}"))?;
    if args.predictions.is_empty() {
        return Err(format!("give at least one --predictions file\n{USAGE}"));
    }
    let references = metrics::read_references_file(refs_path).map_err(|e| format!("{}: {e}", refs_path.display()))?;
    // Serialise the structs themselves (not serde_json::Value) to keep e2e-metrics' key order.
    let mut results: Vec<String> = Vec::new();
    if args.dart {
        for p in &args.predictions {
            let preds = metrics::read_predictions_file(p).map_err(|e| e.to_string())?;
            let s = metrics::evaluate_dart(&preds, &references).map_err(|e| format!("{}: {e}", p.display()))?;
            results.push(serde_json::to_string(&s).map_err(|e| e.to_string())?);
        }
    } else {
        let options = EvalOptions { meteor: args.meteor.clone(), nist: args.nist };
        let mut evaluator = Evaluator::new(references, &options).map_err(|e| e.to_string())?;
        if let MeteorSetup::Unavailable(why) = evaluator.meteor_setup() {
            eprintln!("METEOR unavailable (null): {why}");
        }
        if let Some(dir) = &args.dump_ptb {
            let refs: Vec<&str> = evaluator.ptb_references().iter().flatten().map(String::as_str).collect();
            write_lines(&dir.join("references.txt"), &refs)?;
        }
        for (k, p) in args.predictions.iter().enumerate() {
            let preds = metrics::read_predictions_file(p).map_err(|e| e.to_string())?;
            if let Some(dir) = &args.dump_ptb {
                write_lines(&dir.join(format!("predictions.{k}.txt")), &metrics::ptb::coco_tokenize(&preds))?;
            }
            let s = evaluator.score(&preds).map_err(|e| format!("{}: {e}", p.display()))?;
            results.push(serde_json::to_string(&s).map_err(|e| e.to_string())?);
        }
    }
    if results.len() == 1 {
        println!("{}", results[0]);
    } else {
        println!("[{}]", results.join(","));
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eval_gen: {e}");
            ExitCode::FAILURE
        }
    }
}
