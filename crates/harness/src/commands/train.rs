//! `dpft train CONFIG.yaml`: builds the model and the task's data from the config, then runs
//! [`crate::train::train`] into the run folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use models::{CausalMethod, CausalModel, LoadOptions, TextTokenizer};
use serde_json::{json, Value};
use tch::Kind;

use super::model_io::input_error;
use crate::cli::{GlobalArgs, TrainArgs};
use crate::exit::BadInput;
use crate::run_config::{self, Dtype, Head, Method, MethodName, ModelSource, RunConfig, RunTask};
use crate::tasks::causal::{CausalExample, CausalFeaturiser};
use crate::tasks::{load_generation, Split, TaskKind, TaskName};
use crate::train::generation_eval::Segment;
use crate::train::objective::CausalLm;
use crate::train::Launch;

/// What the run folder holds once prepared.
enum Prepared {
    /// Ready to train (fresh, or resuming from a checkpoint).
    Ready,
    /// `--resume` of a run that has finished: its `summary.json`, nothing to do.
    Finished(Value),
}

/// A finished run's summary (status `finished` or `stopped_at_budget`), if `out` holds one.
fn finished_summary(out: &Path) -> Option<Value> {
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).ok()?).ok()?;
    matches!(summary["status"].as_str(), Some("finished" | "stopped_at_budget")).then_some(summary)
}

/// The run folder: refuses one that holds another run (finished or with checkpoints) unless resuming,
/// so that nothing written before is lost; a resumed run that has finished is left as it is.
fn prepare_out(out: &Path, resume: bool, config: &RunConfig) -> Result<Prepared> {
    let has_run = crate::train::holds_run(out);
    if has_run && !resume {
        return Err(BadInput(format!(
            "{} already holds a run; pass --resume to continue it, or choose another --out (nothing was changed)",
            out.display()
        ))
        .into());
    }
    if resume && !has_run {
        return Err(BadInput(format!("--resume: {} holds no run to continue", out.display())).into());
    }
    if out.exists() && !out.is_dir() {
        return Err(BadInput(format!("--out {} is a file; give a folder", out.display())).into());
    }
    // A lone config.yaml is what a start that failed before its first step left: it is rewritten below.
    let foreign = out.is_dir()
        && !has_run
        && std::fs::read_dir(out)
            .map(|d| d.flatten().any(|e| e.file_name() != "config.yaml" && e.file_name() != crate::lock::FILE))
            .unwrap_or(false);
    if foreign {
        return Err(BadInput(format!(
            "--out {} is not empty and holds no dpft run; give a new or empty folder (nothing was changed)",
            out.display()
        ))
        .into());
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    if resume {
        let previous = std::fs::read_to_string(out.join("config.yaml")).unwrap_or_default();
        if !previous.is_empty() && previous != run_config::to_yaml(config) {
            return Err(BadInput(format!(
                "--resume: {}/config.yaml differs from this config; resume with the same config and --set values",
                out.display()
            ))
            .into());
        }
        if let Some(summary) = finished_summary(out) {
            return Ok(Prepared::Finished(summary));
        }
    }
    super::model_io::write_atomic(&out.join("config.yaml"), run_config::to_yaml(config).as_bytes())?;
    Ok(Prepared::Ready)
}

/// Says that a resumed run had already finished (nothing is re-evaluated or rewritten).
fn report_finished(summary: &Value, out: &Path) {
    log::info!("--resume: {} has finished; nothing to do (the run folder is left as it is)", out.display());
    print_summary(summary, out);
}

/// Resolves a model path of the config: `data:REL` is REL inside the data directory (e.g.
/// `data:tokenizers/gpt2`); other paths are absolute or relative to the current directory.
fn resolve(p: &Path, data: &models::DataDir) -> PathBuf {
    match p.to_str().and_then(|s| s.strip_prefix("data:")) {
        Some(rel) => data.root().join(rel),
        None => p.to_path_buf(),
    }
}

/// `model.path`: [`resolve`], then a model id (`ORG/NAME[@REVISION]`) that is not a folder here through the
/// local Hugging Face cache ([`models::hub`]).
fn resolve_model_dir(p: &Path, data: &models::DataDir) -> Result<PathBuf> {
    let p = resolve(p, data);
    models::hub::resolve(&p).map_err(|e| BadInput(format!("model.path: {e}")).into())
}

/// A random causal LM of the config file `path` (GPT-2 or the Llama family), seeded by `seed`.
fn random_causal(path: &Path, opts: &LoadOptions, seed: i64) -> Result<Box<dyn CausalModel>> {
    let any = models::from_config(path, models::HeadKind::MaskedLm, opts, seed).map_err(input_error)?;
    any.into_causal().ok_or_else(|| {
        BadInput(format!(
            "{}: this task needs a causal LM (GPT-2, Llama, Qwen2, Mistral), not an encoder",
            path.display()
        ))
        .into()
    })
}

fn load_causal_model(
    config: &RunConfig,
    opts: &LoadOptions,
    data: &models::DataDir,
) -> Result<(Box<dyn CausalModel>, TextTokenizer)> {
    let m = &config.model;
    let method = config.method.method();
    let source = m.source().map_err(BadInput)?;
    let seed = config.optimization.seed as i64;
    let (mut model, mut tokenizer) = match source {
        // retrain: the folder's architecture and tokenizer, weights drawn afresh.
        ModelSource::Folder(dir) if method == Method::Retrain => {
            let dir = resolve_model_dir(dir, data)?;
            let tokenizer = TextTokenizer::from_dir(&dir, "gpt2").map_err(input_error)?;
            (random_causal(&dir.join("config.json"), opts, seed)?, tokenizer)
        }
        ModelSource::Folder(dir) => models::load_causal(&resolve_model_dir(dir, data)?, opts).map_err(input_error)?,
        ModelSource::Config { config: cfg, tokenizer: tok_dir } => {
            let tokenizer = TextTokenizer::from_dir(&resolve(tok_dir, data), "gpt2").map_err(input_error)?;
            let model = random_causal(&resolve(cfg, data), opts, seed)?;
            tokenizer.check_fits(model.vocab_size()).map_err(input_error)?;
            (model, tokenizer)
        }
    };
    if m.untie_lm_head {
        model.untie_lm_head();
    }
    if m.add_pad_token {
        model.add_pad_token(&mut tokenizer).map_err(input_error)?;
    }
    // New parameters (LoRA factors, the prefix, RGP's power-iteration start) are drawn from the run's seed.
    tch::manual_seed(seed);
    let applied = match method {
        Method::Topk { top_k } => model.apply_method(&CausalMethod::TopK(top_k)),
        Method::Lora { rank, alpha } => {
            model.apply_method(&CausalMethod::Lora { rank, alpha, targets: config.method.target_modules.clone() })
        }
        Method::Prefix { prefix_length, mid_dim } => {
            model.apply_method(&CausalMethod::Prefix { length: prefix_length, mid_dim })
        }
        Method::Rgp { rank } => model.apply_method(&CausalMethod::Rgp(rank)),
        Method::Full | Method::Retrain => Ok(()),
    };
    applied.map_err(|e| BadInput(format!("method ({}): {e}", config.method.name)))?;
    Ok((model, tokenizer))
}

/// Plain-text language modelling: each file's tokens cut into blocks of `max_length` (the last, shorter
/// block kept when it has ≥ 2 tokens); the last 5% of blocks (at least 1) are held out for evaluation.
fn text_examples(
    config: &RunConfig,
    data: &Path,
    tokenizer: &TextTokenizer,
) -> Result<(Vec<CausalExample>, Vec<CausalExample>, Vec<PathBuf>)> {
    if config.task.text_files.is_empty() {
        return Err(BadInput(
            "task.text_files: list the text files to train on (relative to the data directory)".into(),
        )
        .into());
    }
    let (mut blocks, mut files) = (Vec::new(), Vec::new());
    for f in &config.task.text_files {
        let path = if f.is_absolute() { f.clone() } else { data.join(f) };
        files.push(path.clone());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BadInput(format!("task.text_files: cannot read {}: {e}", path.display())))?;
        if text.trim().is_empty() {
            return Err(BadInput(format!("task.text_files: {} is empty; give files with text", path.display())).into());
        }
        let ids = tokenizer.encode(&text, false).map_err(input_error)?;
        for chunk in ids.chunks(config.task.max_length) {
            if chunk.len() >= 2 {
                blocks.push(CausalExample { input_ids: chunk.to_vec(), labels: chunk.to_vec() });
            }
        }
    }
    let held = (blocks.len() / 20).max(1).min(blocks.len().saturating_sub(1));
    let eval = blocks.split_off(blocks.len() - held);
    Ok((blocks, eval, files))
}

/// What [`generation_data`] reads.
struct GenerationData {
    train: Vec<CausalExample>,
    eval: Vec<CausalExample>,
    segments: Vec<Segment>,
    /// The file the training examples came from.
    train_path: PathBuf,
}

/// E2E or DART: training examples (over-long ones dropped and counted), evaluation examples for the loss,
/// and the evaluation tables with their references for generation.
fn generation_data(
    config: &RunConfig,
    task: TaskName,
    data: &models::DataDir,
    tokenizer: &TextTokenizer,
) -> Result<GenerationData> {
    let bad = |e: crate::tasks::TaskError| anyhow::Error::new(BadInput(e.to_string()));
    let eval_split = config.task.eval_split;
    let featuriser = CausalFeaturiser::new(tokenizer).map_err(bad)?;
    let max_length = config.task.max_length;
    let train = load_generation(data, task, Split::Train).map_err(bad)?;
    let train_path = train.path.clone();
    let (train, dropped) = match config.task.max_train_examples {
        // The first k examples that fit: featurise only as many as needed.
        Some(k) => {
            let (mut kept, mut dropped) = (Vec::with_capacity(k), 0);
            for ex in &train.examples {
                if kept.len() == k {
                    break;
                }
                let f = featuriser.featurise(ex).map_err(bad)?;
                if f.input_ids.len() > max_length {
                    dropped += 1;
                } else {
                    kept.push(f);
                }
            }
            (kept, dropped)
        }
        None => {
            let all = featuriser.featurise_all(&train.examples, max_length).map_err(bad)?;
            (all.examples, all.dropped)
        }
    };
    log::info!(
        "{} train ({}): {} examples kept, {dropped} longer than max_length = {max_length} dropped",
        task.name(),
        train_path.display(),
        train.len()
    );
    let mut eval = load_generation(data, task, eval_split).map_err(bad)?;
    if let Some(k) = config.task.max_eval_examples {
        eval.segments.truncate(k);
        eval.examples = crate::tasks::flatten_segments(&eval.segments);
    }
    let eval_examples = featuriser.featurise_all(&eval.examples, max_length).map_err(bad)?;
    let mut segments = Vec::with_capacity(eval.segments.len());
    for s in &eval.segments {
        segments
            .push(Segment { prompt: featuriser.prompt_ids(&s.source).map_err(bad)?, references: s.references.clone() });
    }
    Ok(GenerationData { train, eval: eval_examples.examples, segments, train_path })
}

pub fn run(global: &GlobalArgs, args: &TrainArgs) -> Result<()> {
    let config = run_config::load(&args.config, &args.overrides)?;
    let stem = args.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("results/runs").join(stem));
    let resume = args.resume || (args.resume_or_start && crate::train::holds_run(&out));
    let opts = load_options_for(&config, global)?;
    let data = models::DataDir::resolve(global.data_dir.as_deref());
    if let Some(task) = config.task.name.paper_task().filter(|t| t.kind() == TaskKind::Classification) {
        return run_classification(&config, task, args, resume, &out, &opts, &data);
    }
    // Everything the run reads is checked before the run folder is touched.
    let (objective, segments, train_files) = causal_objective(&config, &opts, &data)?;
    check_causal_fits(&config, &objective, &segments, &opts)?;
    let _lock = crate::lock::FolderLock::acquire(&out, "run folder")?;
    if let Prepared::Finished(summary) = prepare_out(&out, resume, &config)? {
        report_finished(&summary, &out);
        return Ok(());
    }
    log::info!("run folder: {}", out.display());
    let final_eval = || -> Result<Value> {
        if segments.is_empty() {
            return Ok(json!({}));
        }
        log::info!(
            "generating for {} {} tables of the {} split",
            segments.len(),
            config.task.name.name(),
            config.task.eval_split
        );
        crate::train::generation_eval::evaluate(
            objective.model.as_ref(),
            &objective.tokenizer,
            &segments,
            &config.generation,
            config.task.name == RunTask::Paper(TaskName::Dart),
            &out,
        )
    };
    let launch = Launch { out: &out, resume, stop_after: args.stop_after_steps, train_files };
    let finished = crate::train::train(&config, &objective, &launch, &final_eval)?;
    if matches!(finished.summary["status"].as_str(), Some("finished" | "stopped_at_budget")) {
        // The trained model as a Hugging Face folder, for `dpft generate`/`score` and as the next run's
        // model.path (the mini reproduction fine-tunes its pretrained model this way).
        match config.method.name {
            MethodName::Lora | MethodName::Prefix => save_adapter(&config, objective.model.as_ref(), &out, &data)?,
            _ => {
                objective.model.save_pretrained(&out.join("model"), &objective.tokenizer)?;
                log::info!("model saved as a Hugging Face folder: {}", out.join("model").display());
            }
        }
    }
    print_summary(&finished.summary, &out);
    Ok(())
}

/// Lower bounds of the largest tensors of the run against the machine's memory, before step 1: a
/// micro-batch's logits and their gradient `[physical_batch_size, max_length, vocab]`, and the final
/// evaluation's first decoding pass `[batch × beams, longest prompt, vocab]`.
fn check_causal_fits(config: &RunConfig, objective: &CausalLm, segments: &[Segment], opts: &LoadOptions) -> Result<()> {
    use crate::memory_guard::{check_fits, tensor_bytes};
    let vocab = objective.model.vocab_size() as u64;
    let (batch, length) = (config.optimization.physical_batch_size as u64, config.task.max_length as u64);
    check_fits(
        opts.device,
        tensor_bytes(&[2, batch, length, vocab], opts.kind),
        &format!("a micro-batch of {batch} × {length} tokens"),
        "optimization.physical_batch_size or task.max_length",
    )?;
    if let Some(longest) = segments.iter().map(|s| s.prompt.len() as u64).max() {
        let g = &config.generation;
        let rows = g.batch_size.min(segments.len()) as u64 * g.num_beams as u64;
        check_fits(
            opts.device,
            tensor_bytes(&[rows, longest, vocab], opts.kind),
            &format!("the final evaluation's decoding of {rows} sequences (batch × beams)"),
            "generation.batch_size or generation.num_beams",
        )?;
    }
    Ok(())
}

/// Device and dtype from `--device` and `model.dtype`.
pub fn load_options_for(config: &RunConfig, global: &GlobalArgs) -> Result<LoadOptions> {
    let device = global.device.resolve()?;
    log::info!("device: {} (requested: {})", dp_core::device::describe(device), global.device);
    let kind = match config.model.dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::Bf16 => Kind::BFloat16,
    };
    let opts = LoadOptions { device, kind };
    opts.check().map_err(|e| BadInput(e.to_string()))?;
    Ok(opts)
}

/// The causal-LM objective of a generation or text config (model, method, featurised data) and the
/// evaluation tables to generate for, and the files the training set was read from; every length is
/// checked against the model's positions.
pub fn causal_objective(
    config: &RunConfig,
    opts: &LoadOptions,
    data: &models::DataDir,
) -> Result<(CausalLm, Vec<Segment>, Vec<PathBuf>)> {
    let paper_task = config.task.name.paper_task();
    let (model, tokenizer) = load_causal_model(config, opts, data)?;
    let pad = model.pad_token_id().or(model.eos_token_id()).unwrap_or(0);
    let (mut train, mut eval, segments, train_files) = match paper_task {
        None => {
            let (train, eval, files) = text_examples(config, data.root(), &tokenizer)?;
            (train, eval, Vec::new(), files)
        }
        Some(task) => {
            let g = generation_data(config, task, data, &tokenizer)?;
            (g.train, g.eval, g.segments, vec![g.train_path])
        }
    };
    // (E2E/DART were cut to max_*_examples while loading: the first k tables, all their references.)
    if paper_task.is_none() {
        if let Some(k) = config.task.max_train_examples {
            train.truncate(k);
        }
        if let Some(k) = config.task.max_eval_examples {
            eval.truncate(k);
        }
    }
    // Positions left for text: a prefix (method prefix) takes its own in front.
    let room = model.text_positions() as usize;
    let of_room = || match model.prefix_length() {
        0 => format!("the model's n_positions = {room}"),
        p => {
            format!("the {room} positions the model has for text (n_positions = {}, prefix {p})", model.max_positions())
        }
    };
    if config.task.max_length > room {
        return Err(BadInput(format!("task.max_length = {} exceeds {}", config.task.max_length, of_room())).into());
    }
    if let Some(longest) = segments.iter().map(|s| s.prompt.len()).max() {
        if longest + config.generation.max_new_tokens > room {
            return Err(BadInput(format!(
                "generation.max_new_tokens = {} plus the longest evaluation prompt ({longest} tokens) exceeds {}; lower max_new_tokens or task.max_length",
                config.generation.max_new_tokens,
                of_room()
            ))
            .into());
        }
    }
    Ok((CausalLm { model, tokenizer, train, eval, pad }, segments, train_files))
}

/// A LoRA or prefix run's trained tensors as a PEFT-layout adapter folder, OUT/adapter/, for the base folder
/// of `model.path` (`dpft score/generate --model BASE --adapter OUT/adapter`). A run from `model.config`
/// (random initialisation) has no base folder to refer to: its checkpoint keeps the tensors.
fn save_adapter(config: &RunConfig, model: &dyn CausalModel, out: &Path, data: &models::DataDir) -> Result<()> {
    let Some(base) = &config.model.path else {
        log::info!("method {}: no adapter/ folder (the run starts from model.config, not a base folder); the checkpoint holds its tensors", config.method.name);
        return Ok(());
    };
    let base = resolve_model_dir(base, data)?;
    let base = base.canonicalize().unwrap_or(base);
    let base_name = base.to_string_lossy();
    let prepared = models::adapter::AdapterBase {
        untie_lm_head: config.model.untie_lm_head,
        add_pad_token: config.model.add_pad_token,
    };
    let dir = out.join("adapter");
    match (model.as_gpt2(), model.as_llama()) {
        (Some(gpt2), _) => models::adapter::save_adapter(gpt2, &dir, &base_name, &prepared)?,
        (None, Some(llama)) if llama.prefix.is_none() => {
            models::llama::adapter::save_adapter(llama, &dir, &base_name, &prepared)?
        }
        _ => {
            log::warn!(
                "method {}: no PEFT adapter folder for a {} model with this method yet; the run's checkpoint holds its tensors (checkpoints/)",
                config.method.name,
                model.model_type()
            );
            return Ok(());
        }
    }
    log::info!("adapter saved in PEFT's layout: {} (base {base_name})", dir.display());
    Ok(())
}

/// A RoBERTa/BERT folder with `head`, its method applied: `retrain` draws fresh weights for the folder's
/// config (its tokenizer kept); `lora` (query and value) and `topk` freeze the rest.
fn load_encoder_for(
    config: &RunConfig,
    dir: &Path,
    head: models::HeadKind,
    task: TaskName,
    opts: &LoadOptions,
) -> Result<(models::EncoderModel, TextTokenizer)> {
    let method = config.method.method();
    let seed = config.optimization.seed as i64;
    // A classification head has one output per label of the task (a fresh head is sized for it; a saved
    // head of another size is refused by the loader).
    let labels = (head != models::HeadKind::MaskedLm).then(|| crate::tasks::glue::label_names(task).len() as i64);
    let (mut model, tokenizer) = if method == Method::Retrain {
        let any =
            models::from_config_with_labels(&dir.join("config.json"), head, labels, opts, seed).map_err(input_error)?;
        let models::AnyModel::Encoder(model) = any else {
            return Err(BadInput(format!("{}: classification needs a RoBERTa or BERT model", dir.display())).into());
        };
        let tokenizer = TextTokenizer::from_dir(dir, &model.config.model_type).map_err(input_error)?;
        tokenizer.check_fits(model.config.vocab_size).map_err(input_error)?;
        (*model, tokenizer)
    } else {
        models::load_encoder_with_labels(dir, head, labels, opts).map_err(input_error).with_context(|| match labels {
            Some(n) => format!("loading {} (task {} has {n} labels: a classification head in the checkpoint must have {n} outputs; a checkpoint without one gets a fresh head)", dir.display(), task.name()),
            None => format!("loading {}", dir.display()),
        })?
    };
    tch::manual_seed(seed);
    let applied = match method {
        Method::Topk { top_k } => model.train_only_top_layers(top_k),
        Method::Lora { rank, alpha } => model.add_lora(rank, alpha),
        Method::Full | Method::Retrain => Ok(()),
        Method::Prefix { .. } | Method::Rgp { .. } => Err(models::ModelError::Invalid(format!(
            "method.name = {}: available for GPT-2 (E2E, DART, text) only; encoders take full, lora, topk or retrain",
            config.method.name
        ))),
    };
    applied.map_err(|e| BadInput(format!("method ({}): {e}", config.method.name)))?;
    Ok((model, tokenizer))
}

/// SST-2, QNLI, MNLI, QQP with a RoBERTa/BERT folder: prompt-based (MLM at `<mask>`) or with a
/// classification head; evaluated by accuracy (and F1 for QQP).
fn run_classification(
    config: &RunConfig,
    task: TaskName,
    args: &TrainArgs,
    resume: bool,
    out: &Path,
    opts: &LoadOptions,
    data: &models::DataDir,
) -> Result<()> {
    use crate::tasks::prompt::{featurise_pairs, PromptFeaturiser};
    use crate::train::objective::{PairClassifier, PromptMlm};
    let bad = |e: crate::tasks::TaskError| anyhow::Error::new(BadInput(e.to_string()));
    let dir = match &config.model.path {
        Some(p) => resolve_model_dir(p, data)?,
        None => return Err(BadInput("classification tasks need model.path (a RoBERTa or BERT folder)".into()).into()),
    };
    if matches!(config.method.name, MethodName::Prefix | MethodName::Rgp) {
        return Err(BadInput(format!(
            "method.name = {}: available for GPT-2 (E2E, DART, text) only; encoders take full, lora, topk or retrain",
            config.method.name
        ))
        .into());
    }
    let (train_split, eval_split) = (config.task.train_split, config.task.eval_split);
    let read = |split: Split| -> Result<(Vec<crate::tasks::glue::ClsExample>, PathBuf)> {
        let d = crate::tasks::load_classification(data, task, split).map_err(bad)?;
        log::info!("{} {}: {} examples read from {}", task.name(), split.name(), d.examples.len(), d.path.display());
        Ok((d.examples, d.path))
    };
    let ((mut train, train_path), (mut eval, _)) = (read(train_split)?, read(eval_split)?);
    let launch = Launch { out, resume, stop_after: args.stop_after_steps, train_files: vec![train_path] };
    if let Some(k) = config.task.max_train_examples {
        train.truncate(k);
    }
    if let Some(k) = config.task.max_eval_examples {
        eval.truncate(k);
    }
    let binary_f1 = task == TaskName::Qqp;
    let max_length = config.task.max_length;
    let batch = config.optimization.physical_batch_size;
    let featurised = |kept: usize, truncated: usize| {
        let (task, split) = (task.name(), train_split.name());
        log::info!("{task} {split}: {kept} examples ({truncated} truncated to {max_length} tokens)");
    };
    let finished = if config.task.head == Head::Prompt {
        let (model, tokenizer) = load_encoder_for(config, &dir, models::HeadKind::MaskedLm, task, opts)?;
        let featuriser = PromptFeaturiser::new(&tokenizer, task).map_err(bad)?;
        let train = featuriser.featurise_all(&train, max_length).map_err(bad)?;
        let eval = featuriser.featurise_all(&eval, max_length).map_err(bad)?;
        featurised(train.examples.len(), train.truncated);
        let _lock = crate::lock::FolderLock::acquire(out, "run folder")?;
        if let Prepared::Finished(summary) = prepare_out(out, resume, config)? {
            report_finished(&summary, out);
            return Ok(());
        }
        let objective = PromptMlm {
            model,
            train: train.examples,
            eval: eval.examples,
            label_word_ids: train.label_word_ids,
            binary_f1,
        };
        crate::train::train(config, &objective, &launch, &|| objective.evaluate(batch))?
    } else {
        let head = if config.task.head == Head::MeanPooled {
            models::HeadKind::MeanPooledClassification
        } else {
            models::HeadKind::SequenceClassification
        };
        let (model, tokenizer) = load_encoder_for(config, &dir, head, task, opts)?;
        let train = featurise_pairs(&tokenizer, &train, max_length).map_err(bad)?;
        let eval = featurise_pairs(&tokenizer, &eval, max_length).map_err(bad)?;
        featurised(train.examples.len(), train.truncated);
        let _lock = crate::lock::FolderLock::acquire(out, "run folder")?;
        if let Prepared::Finished(summary) = prepare_out(out, resume, config)? {
            report_finished(&summary, out);
            return Ok(());
        }
        let objective = PairClassifier { model, train: train.examples, eval: eval.examples, binary_f1 };
        crate::train::train(config, &objective, &launch, &|| objective.evaluate(batch))?
    };
    print_summary(&finished.summary, out);
    Ok(())
}

fn print_summary(summary: &Value, out: &Path) {
    println!("run folder: {}", out.display());
    println!("status:     {} after {} steps", summary["status"].as_str().unwrap_or("?"), summary["steps"]);
    if let Some(eps) = summary["epsilon"].as_object() {
        for (k, v) in eps {
            println!("epsilon:    {k} {v}");
        }
    }
    if let Some(m) = summary["metrics"].as_object() {
        for (k, v) in m {
            println!("metric:     {k} {v}");
        }
    }
}
