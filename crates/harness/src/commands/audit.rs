//! `dpft audit CONFIG.yaml`: the white-box one-run audit of a private config ([`crate::audit`]).

use anyhow::Result;

use crate::audit::{AuditKind, AuditOptions};
use crate::cli::{AuditArgs, GlobalArgs};
use crate::exit::BadInput;
use crate::run_config;
use crate::tasks::TaskKind;

pub fn run(global: &GlobalArgs, args: &AuditArgs) -> Result<()> {
    let config = run_config::load(&args.config, &args.overrides)?;
    if config.task.name.paper_task().is_some_and(|t| t.kind() == TaskKind::Classification) {
        return Err(BadInput(
            "dpft audit runs causal-LM configs (E2E, DART, text); classification is not supported yet".into(),
        )
        .into());
    }
    if !(args.sabotage_noise.is_finite() && args.sabotage_noise >= 0.0) {
        return Err(BadInput(format!("--sabotage-noise {} must be ≥ 0", args.sabotage_noise)).into());
    }
    if args.sabotage_noise != 1.0 {
        log::warn!("--sabotage-noise {}: the release is deliberately unsound (testing the audit)", args.sabotage_noise);
    }
    let opts = super::train::load_options_for(&config, global)?;
    let data = models::DataDir::resolve(global.data_dir.as_deref());
    let (mut objective, _, _) = super::train::causal_objective(&config, &opts, &data)?;
    if args.kind == AuditKind::BlackBox {
        if args.canary_length < 2 || args.canary_length > config.task.max_length {
            return Err(BadInput(format!(
                "--canary-length {} must lie in 2..={} (task.max_length)",
                args.canary_length, config.task.max_length
            ))
            .into());
        }
        let key = crate::audit::audit_key(&config, "dpft/audit-input-canaries");
        let vocab = objective.model.vocab_size();
        objective.train.extend(crate::audit::input_canaries(args.canaries, args.canary_length, vocab, key));
    }
    let audit = AuditOptions {
        kind: args.kind,
        canaries: args.canaries,
        confidence: args.confidence,
        positive_control: args.positive_control,
        noise_factor: args.sabotage_noise,
    };
    // One writer per audit folder, as for run folders.
    let _lock = args.out.as_deref().map(|d| crate::lock::FolderLock::acquire(d, "audit folder")).transpose()?;
    let result = crate::audit::run(&config, &objective, &audit, args.out.as_deref())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        println!(
            "audit ({}): epsilon lower bound {:.3} at confidence {} against epsilon {:.3} claimed (δ = {:e}); {} of {} guesses correct, {} canaries; {}",
            result["kind"].as_str().unwrap_or("?"),
            result["epsilon_lower_bound"].as_f64().unwrap_or(f64::NAN),
            args.confidence,
            result["epsilon_claimed"].as_f64().unwrap_or(f64::NAN),
            result["delta"].as_f64().unwrap_or(f64::NAN),
            result["correct"],
            result["guesses"],
            args.canaries,
            if args.positive_control {
                "positive control (no noise): the bound shows the audit's power"
            } else if result["passed"] == true {
                "passed"
            } else {
                "FAILED: the release leaks more than the accountant claims"
            }
        );
    }
    Ok(())
}
