//! `dpft privacy epsilon|noise`: the accountants of dp-core from the command line.

use anyhow::Result;
use dp_core::accounting::{
    calibrate_noise, check_delta, default_delta, delta_warning, gdp::GDP_WARNING, steps_for_epochs, AccountantKind,
    Accountants, AccountingError, Event, History, PrvAccountant, RdpAccountant, Sampling,
};
use serde_json::{json, Map, Value};

use crate::cli::{AccountantChoice, AccountingArgs, EpsilonArgs, NoiseArgs, PrivacyCommand, SamplingChoice};
use crate::exit::BadInput;

pub fn run(cmd: &PrivacyCommand) -> Result<()> {
    match cmd {
        PrivacyCommand::Epsilon(args) => epsilon(args),
        PrivacyCommand::Noise(args) => noise(args),
        PrivacyCommand::AuditScores(args) => audit_scores(args),
        PrivacyCommand::Select(args) => select(args),
    }
}

fn select(args: &crate::cli::SelectArgs) -> Result<()> {
    use crate::cli::RunCountChoice;
    use dp_core::accounting::rdp::epsilon_from_rdp;
    use dp_core::accounting::selection::{repeat_and_select_rdp, RunCount};
    let s = Setting::from_args(&args.common)?;
    let steps = s.steps(args.length.steps, args.length.epochs)?;
    let history = History::single(Event::new(args.noise_multiplier, s.sampling, steps).map_err(flag_error)?);
    let count = match (args.distribution, args.shape) {
        (RunCountChoice::Poisson, None) => RunCount::Poisson { mean: args.mean },
        (RunCountChoice::Geometric, None) => RunCount::TruncatedNegativeBinomial { shape: 1.0, mean: args.mean },
        (RunCountChoice::Tnb, Some(shape)) => RunCount::TruncatedNegativeBinomial { shape, mean: args.mean },
        (RunCountChoice::Tnb, None) => {
            return Err(bad("--distribution tnb needs --shape (0: logarithmic, 1: geometric)"))
        }
        (_, Some(_)) => return Err(bad("--shape applies to --distribution tnb only")),
    };
    let rdp = &s.accountants.rdp;
    let single = rdp.rdp(&history);
    let selected = repeat_and_select_rdp(rdp.orders(), &single, count).map_err(flag_error)?;
    let (e1, o1) = epsilon_from_rdp(rdp.orders(), &single, s.delta);
    let (e2, o2) = epsilon_from_rdp(rdp.orders(), &selected, s.delta);
    let shape = match count {
        RunCount::Poisson { .. } => None,
        RunCount::TruncatedNegativeBinomial { shape, .. } => Some(shape),
    };
    if args.common.json {
        let out = json!({
            "single_run": {"epsilon": e1, "order": o1}, "selected": {"epsilon": e2, "order": o2},
            "distribution": format!("{:?}", args.distribution).to_lowercase(), "mean": args.mean, "shape": shape,
            "delta": s.delta,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("noise multiplier {}, {}", args.noise_multiplier, s.describe(steps));
    println!("one run:                       epsilon {e1:.5} (rdp, order {o1})");
    println!("best of K runs, K {:?} mean {}: epsilon {e2:.5} (rdp, order {o2})", args.distribution, args.mean);
    Ok(())
}

/// Numbers, one per line, from `path`.
fn read_scores(path: &std::path::Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim()
                .parse::<f64>()
                .map_err(|e| bad(format!("{}:{}: {l:?} is not a number: {e}", path.display(), i + 1)))
        })
        .collect()
}

fn audit_scores(args: &crate::cli::AuditScoresArgs) -> Result<()> {
    let (ins, outs) = (read_scores(&args.in_scores)?, read_scores(&args.out_scores)?);
    let audit =
        dp_core::accounting::audit::audit_one_run(&ins, &outs, args.confidence, args.delta).map_err(flag_error)?;
    let out = json!({
        "epsilon_lower_bound": audit.epsilon_lower_bound, "guesses": audit.guesses, "correct": audit.correct,
        "thresholds": audit.thresholds, "canaries": ins.len() + outs.len(), "confidence": args.confidence,
        "delta": args.delta,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "epsilon lower bound {:.4} at confidence {} (δ = {:e}): {} of {} guesses correct, {} canaries, {} thresholds",
            audit.epsilon_lower_bound,
            args.confidence,
            args.delta,
            audit.correct,
            audit.guesses,
            ins.len() + outs.len(),
            audit.thresholds
        );
    }
    Ok(())
}

/// An accounting error as the user typed it: `noise_multiplier` → `--noise-multiplier`.
fn flag_error(e: AccountingError) -> anyhow::Error {
    match e {
        AccountingError::Invalid { name, value, range } => anyhow::Error::new(BadInput(format!(
            "--{} = {value} is out of range: expected {range}",
            name.replace('_', "-")
        ))),
        other => other.into(),
    }
}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    BadInput(msg.into()).into()
}

/// What both subcommands resolve from the shared options.
struct Setting {
    sampling: Sampling,
    delta: f64,
    kinds: Vec<AccountantKind>,
    accountants: Accountants,
}

impl Setting {
    fn from_args(a: &AccountingArgs) -> Result<Self> {
        let sampling = match a.sampling {
            SamplingChoice::Poisson => {
                let q = match (a.sample_rate, a.batch_size, a.dataset_size) {
                    (Some(q), _, _) => q,
                    (None, Some(b), Some(n)) if n > 0 => b as f64 / n as f64,
                    _ => return Err(bad("give --sample-rate, or --batch-size with --dataset-size")),
                };
                Sampling::Poisson { sample_rate: q }
            }
            SamplingChoice::Shuffle => {
                let n = a.dataset_size.ok_or_else(|| bad("--sampling shuffle needs --dataset-size N"))?;
                let b = match (a.batch_size, a.sample_rate) {
                    (Some(b), _) => b,
                    (None, Some(q)) => {
                        let b = q * n as f64;
                        if !(b.is_finite() && (b - b.round()).abs() <= 1e-6 * b.max(1.0)) {
                            return Err(bad(format!(
                                "--sample-rate {q} times --dataset-size {n} = {b} is not a whole batch size; give --batch-size"
                            )));
                        }
                        b.round() as u64
                    }
                    (None, None) => return Err(bad("give --sample-rate or --batch-size")),
                };
                Sampling::FixedSize { dataset_size: n, batch_size: b }
            }
        };
        Event::new(1.0, sampling, 1).map_err(flag_error)?; // range checks of q, n, b
        let delta = match (a.delta, a.dataset_size) {
            (Some(d), _) => d,
            (None, Some(n)) => default_delta(n),
            (None, None) => return Err(bad("--delta is required unless --dataset-size is given (default n^-1.1)")),
        };
        check_delta(delta).map_err(flag_error)?;
        if let Some(w) = a.dataset_size.and_then(|n| delta_warning(delta, n)) {
            log::warn!("{w}");
        }
        let kinds = match a.accountant {
            AccountantChoice::Rdp => vec![AccountantKind::Rdp],
            AccountantChoice::Prv => vec![AccountantKind::Prv],
            AccountantChoice::Gdp => vec![AccountantKind::Gdp],
            AccountantChoice::All => {
                let kinds: Vec<_> = AccountantKind::ALL.into_iter().filter(|k| k.supports(&sampling)).collect();
                if kinds.len() < AccountantKind::ALL.len() {
                    log::warn!("prv and gdp account Poisson sampling only: showing rdp for --sampling shuffle");
                }
                kinds
            }
        };
        if let Some(k) = kinds.iter().find(|k| !k.supports(&sampling)) {
            return Err(AccountingError::UnsupportedSampling { accountant: k.name() }.into());
        }
        let rdp = match &a.orders {
            Some(orders) => RdpAccountant::new(orders.clone()).map_err(flag_error)?,
            None => RdpAccountant::default(),
        };
        let prv = PrvAccountant::new(a.eps_error, a.delta_error).map_err(flag_error)?;
        if kinds.contains(&AccountantKind::Gdp) {
            log::warn!("{GDP_WARNING}");
        }
        Ok(Self { sampling, delta, kinds, accountants: Accountants { rdp, prv } })
    }

    fn steps(&self, steps: Option<u64>, epochs: Option<f64>) -> Result<u64> {
        match (steps, epochs) {
            // T = 0 is refused by the accountants' own event check, naming --steps.
            (Some(t), _) => Ok(t),
            (None, Some(e)) => steps_for_epochs(e, self.sampling.sample_rate()).map_err(flag_error),
            (None, None) => Err(bad("give --steps or --epochs")),
        }
    }

    fn describe(&self, steps: u64) -> String {
        let how = match self.sampling {
            Sampling::Poisson { sample_rate } => {
                format!("Poisson sampling q = {sample_rate:.6e} (add/remove-one neighbours)")
            }
            Sampling::FixedSize { dataset_size, batch_size } => format!(
                "fixed-size batches b = {batch_size} of n = {dataset_size}, q = {:.6e} (replace-one neighbours)",
                self.sampling.sample_rate()
            ),
        };
        format!("{how}, T = {steps} steps, delta = {:e}", self.delta)
    }
}

fn epsilon(args: &EpsilonArgs) -> Result<()> {
    let s = Setting::from_args(&args.common)?;
    let steps = s.steps(args.length.steps, args.length.epochs)?;
    let event = Event::new(args.noise_multiplier, s.sampling, steps).map_err(flag_error)?;
    let history = History::single(event);
    let mut out = Map::new();
    let mut rows = Vec::new();
    for &kind in &s.kinds {
        let (value, row) = match kind {
            AccountantKind::Rdp => {
                let r = s.accountants.rdp.epsilon(&history, s.delta)?;
                (json!({"epsilon": r.epsilon, "order": r.order}), (r.epsilon, format!("best order {}", r.order)))
            }
            AccountantKind::Prv => {
                let p = s.accountants.prv.epsilon(&history, s.delta)?;
                let detail = format!(
                    "upper bound; lower {:.5}, estimate {:.5} (eps_error {})",
                    p.lower,
                    p.estimate,
                    s.accountants.prv.eps_error()
                );
                (
                    json!({"epsilon": p.upper, "epsilon_lower": p.lower, "epsilon_estimate": p.estimate}),
                    (p.upper, detail),
                )
            }
            AccountantKind::Gdp => {
                let e = dp_core::accounting::GdpAccountant.epsilon(&history, s.delta)?;
                (json!({"epsilon": e}), (e, "APPROXIMATION (central limit theorem): can under-estimate".into()))
            }
        };
        out.insert(kind.name().into(), value);
        rows.push((kind.name(), row));
    }
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
        return Ok(());
    }
    println!("noise multiplier {}, {}", args.noise_multiplier, s.describe(steps));
    println!("{:<11} {:>10}  details", "accountant", "epsilon");
    for (name, (eps, detail)) in rows {
        println!("{name:<11} {eps:>10.5}  {detail}");
    }
    Ok(())
}

fn noise(args: &NoiseArgs) -> Result<()> {
    let s = Setting::from_args(&args.common)?;
    let steps = s.steps(args.length.steps, args.length.epochs)?;
    let mut out = Map::new();
    let mut rows = Vec::new();
    for &kind in &s.kinds {
        let c = calibrate_noise(kind, &s.accountants, args.target_epsilon, s.delta, s.sampling, steps, args.tolerance)
            .map_err(flag_error)?;
        out.insert(kind.name().into(), json!({"noise_multiplier": c.noise_multiplier, "epsilon": c.epsilon}));
        rows.push((kind, c));
    }
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
        return Ok(());
    }
    println!("target epsilon {} (tolerance {}), {}", args.target_epsilon, args.tolerance, s.describe(steps));
    println!("{:<11} {:>16} {:>16}", "accountant", "noise multiplier", "epsilon reached");
    for (kind, c) in rows {
        let note = if kind == AccountantKind::Gdp { "  APPROXIMATION: can under-estimate" } else { "" };
        // Rounded up: a σ copied from this table must not give more than the target.
        let sigma = (c.noise_multiplier * 1e6).ceil() / 1e6;
        println!("{:<11} {:>16.6} {:>16.5}{note}", kind.name(), sigma, c.epsilon);
    }
    Ok(())
}
