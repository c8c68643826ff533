//! Command-line definition of `dpft` (clap derive). One variant per subcommand; `--help` on each explains it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dp_core::DeviceSpec;

pub use crate::sweep::store::Backend;
use log::LevelFilter;

/// Differentially private fine-tuning of language models (DP-Adam with ghost clipping and book-keeping;
/// Li et al., ICLR 2022).
#[derive(Debug, Parser)]
#[command(name = "dpft", version, propagate_version = true, arg_required_else_help = true)]
#[command(after_help = "Exit status: 0 success, 2 bad usage or input, 1 failure at run time.\n\
                        Run `dpft COMMAND --help` for the options of a command.")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Where to compute: cpu, cuda, cuda:N, or auto (CUDA device 0 when libtorch sees a GPU, else cpu).
    #[arg(long, global = true, default_value = "auto", env = "DPFT_DEVICE", value_parser = parse_device)]
    pub device: DeviceSpec,

    /// Folder with datasets and tokenizer files [default: $DPFT_DATA_DIR, else data/ under the current
    /// directory]. `dpft data status` shows what it holds; `make data` fetches what is missing.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,

    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

impl GlobalArgs {
    /// The log level implied by `-v` / `-q` (info by default).
    pub fn verbosity(&self) -> LevelFilter {
        match (self.verbose, self.quiet) {
            (0, 0) => LevelFilter::Info,
            (1, _) => LevelFilter::Debug,
            (v, _) if v >= 2 => LevelFilter::Trace,
            (_, 1) => LevelFilter::Warn,
            _ => LevelFilter::Error,
        }
    }
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse().map_err(|e: dp_core::DeviceError| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the version, libtorch build, chosen device, threads and the data directory's contents.
    Info(InfoArgs),
    /// List the datasets dpft knows, their official sources, and which files the data directory has.
    #[command(subcommand)]
    Data(DataCommand),
    /// Privacy accounting: epsilon spent by a run, or the noise multiplier for a target epsilon (RDP, PRV, GDP).
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Fine-tune a model with DP-Adam (or non-privately) from a YAML run config.
    Train(TrainArgs),
    /// Audit a private run config empirically: one training run with white-box canaries (Steinke et al.
    /// 2023) and the largest epsilon their scores reject; it must not exceed the accounted epsilon.
    #[command(after_help = AUDIT_HELP)]
    Audit(AuditArgs),
    /// Train a small byte-level BPE tokenizer (GPT-2's scheme, `<|endoftext|>` special) on text files.
    TrainTokenizer(TrainTokenizerArgs),
    /// Score predictions against references: BLEU, NIST, METEOR, ROUGE-L, CIDEr (e2e-metrics definitions).
    EvalGen(EvalGenArgs),
    /// Per-token log-probabilities of texts under a causal language model (GPT-2 folder).
    Score(ScoreArgs),
    /// Continue prompts (one per line) with greedy or beam search (GPT-2 folder).
    Generate(GenerateArgs),
    /// One sigma = 0 DP step on a checkpoint, engine vs an independent per-example loop: norms and clipped sums.
    ClipCheck(ClipCheckArgs),
    /// Run a YAML grid of training runs (one process per run, here or as a Slurm job array with --backend slurm),
    /// skipping finished and resuming interrupted ones.
    Sweep(SweepArgs),
    /// Aggregate finished runs into the paper's tables (Markdown, CSV, LaTeX) and figures (PNG, SVG).
    ///
    /// Reads every run folder (a folder with summary.json and config.yaml, as `dpft train` writes it) directly
    /// in RESULTS_DIR or one level down (RESULTS_DIR/<sweep>/<run>/, as `dpft sweep` writes them): task, model,
    /// method, ε, batch size, learning rate and seed from config.yaml; final metrics and status from
    /// summary.json; training losses from metrics.jsonl; run labels from a sweep's sweep.json. Runs without
    /// summary.json (unfinished or failed) are listed as skipped. Runs that differ only in their seed are
    /// averaged (mean ± sample std, n); where a (method, ε) has several settings (a hyperparameter sweep), the
    /// one with the best mean headline metric is shown and a note says so. Layouts follow Li et al., ICLR 2022.
    Report(ReportArgs),
    /// Time whole training steps and measure peak memory, private (bk, ghost, naive) or non-private.
    ///
    /// Random weights from a built-in architecture or a config file (or a checkpoint folder's weights), random
    /// inputs [batch, seq_len]; each step is forward, backward, per-example clipping, noise and an Adam update,
    /// as `dpft train` makes it. GPT-2 takes the causal-LM loss on every token; RoBERTa/BERT a two-label
    /// classification head. Reports the median step time over --steps after --warmup, examples per second
    /// and peak memory (CPU: the process's resident-set high-water mark; CUDA: device memory held at the end).
    /// `--max-batch --mem-limit BYTES` instead searches the largest batch whose step fits, one process per
    /// candidate. `make bench` runs this next to the Python reference (transformers, Opacus).
    Bench(BenchArgs),
}

impl Command {
    /// What to lower when the command runs out of memory (named in the error).
    pub fn sizes_to_lower(&self) -> &'static str {
        match self {
            Self::Train(_) | Self::Audit(_) => {
                "optimization.physical_batch_size or task.max_length (the final evaluation: generation.batch_size or generation.num_beams)"
            }
            Self::Sweep(_) => "--jobs, or the runs' optimization.physical_batch_size",
            Self::Generate(_) => "--num-beams, --batch-size or --max-new-tokens",
            Self::Score(_) | Self::ClipCheck(_) => "the number or length of the texts",
            Self::Bench(_) => "--batch-size or --seq-len",
            _ => "the size of the input",
        }
    }
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Which catalogued files the data directory holds (exit status 0 either way).
    Status {
        /// Print as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Where each file comes from: dataset, path in the data directory, URL, zip member, sha256.
    Sources {
        /// Tab-separated, one file per line, no header (read by `make data`).
        #[arg(long)]
        tsv: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrivacyCommand {
    /// Epsilon spent by T steps of DP-SGD/DP-Adam with noise multiplier sigma and sample rate q.
    #[command(after_help = SAMPLING_HELP)]
    Epsilon(EpsilonArgs),
    /// The noise multiplier that reaches a target epsilon (bisection; returns the conservative end).
    #[command(after_help = SAMPLING_HELP)]
    Noise(NoiseArgs),
    /// One-run audit statistics (Steinke et al. 2023) of canary scores you computed: the largest epsilon
    /// that the scores of included and excluded canaries reject at the confidence level.
    #[command(after_help = "Scores: one number per line; higher means \"more likely included\". The auditor guesses \
                            \"in\" above a threshold (every threshold on the ROC frontier, Bonferroni-corrected) and \
                            abstains below it, as jax-privacy's epsilon_one_run.\n\
                            JSON: {epsilon_lower_bound, guesses, correct, thresholds, canaries, confidence, delta}")]
    AuditScores(AuditScoresArgs),
    /// Epsilon of releasing only the best of K runs, K random (Papernot & Steinke 2022): what a random
    /// hyperparameter search costs on top of one run (RDP accountant).
    #[command(after_help = "Distributions of K: poisson (--mean), geometric (--mean; truncated negative binomial \
                            with shape 1), tnb (--mean and --shape: 0 is the logarithmic distribution). A fixed \
                            number of runs is not covered: releasing the best of a fixed grid costs the runs' \
                            composition. JSON: {single_run: {epsilon, order}, selected: {epsilon, order}, \
                            distribution, mean, shape, delta}.")]
    Select(SelectArgs),
}

/// Distribution of the number of runs K.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RunCountChoice {
    Poisson,
    Geometric,
    Tnb,
}

/// `dpft privacy select`.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// Noise multiplier of each run.
    #[arg(long, allow_negative_numbers = true)]
    pub noise_multiplier: f64,
    #[command(flatten)]
    pub length: RunLength,
    /// Distribution of K.
    #[arg(long, value_enum)]
    pub distribution: RunCountChoice,
    /// E[K], ≥ 1.
    #[arg(long)]
    pub mean: f64,
    /// Shape η of the truncated negative binomial (tnb only), ≥ 0.
    #[arg(long)]
    pub shape: Option<f64>,
    #[command(flatten)]
    pub common: AccountingArgs,
}

/// `dpft privacy audit-scores`.
#[derive(Debug, Args)]
pub struct AuditScoresArgs {
    /// Scores of the canaries that were included in training (one per line).
    #[arg(long, value_name = "FILE")]
    pub in_scores: PathBuf,
    /// Scores of the canaries that were left out.
    #[arg(long, value_name = "FILE")]
    pub out_scores: PathBuf,
    /// Confidence of the lower bound.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// The δ of the claim being audited.
    #[arg(long)]
    pub delta: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

const SAMPLING_HELP: &str = "Sampling:\n  \
poisson  every example joins each batch independently with probability q (add/remove-one neighbours).\n  \
shuffle  every batch is a fresh uniformly random subset of exactly b = q*n examples (replace-one\n           \
neighbours; the replaced example can move the clipped sum by 2C, so the noise counts as sigma/2).\n           \
Accounted by RDP only. Not valid for shuffle-once-per-epoch-then-split samplers.\n\
Accountants: rdp (Renyi DP, sound), prv (numerical composition, sound upper bound, tightest), gdp\n\
(central limit theorem: an approximation that can under-estimate epsilon).";

/// Which accountants to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccountantChoice {
    Rdp,
    Prv,
    Gdp,
    All,
}

/// How batches are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplingChoice {
    Poisson,
    Shuffle,
}

/// Options shared by `privacy epsilon` and `privacy noise`.
#[derive(Debug, Args)]
pub struct AccountingArgs {
    /// Sample rate q = expected batch size / dataset size, in (0, 1].
    #[arg(long, required_unless_present = "batch_size", allow_negative_numbers = true)]
    pub sample_rate: Option<f64>,
    /// Batch size b (with --dataset-size; q = b/n).
    #[arg(long, requires = "dataset_size", conflicts_with = "sample_rate")]
    pub batch_size: Option<u64>,
    /// Number of examples n; sets the default delta to n^-1.1 and enables the delta >= 1/n warning.
    #[arg(long)]
    pub dataset_size: Option<u64>,
    /// Target delta in (0, 1) [default: n^-1.1 with --dataset-size; required otherwise].
    #[arg(long, allow_negative_numbers = true)]
    pub delta: Option<f64>,
    /// Which accountant(s) to run.
    #[arg(long, value_enum, default_value = "all")]
    pub accountant: AccountantChoice,
    /// How batches are drawn (see below).
    #[arg(long, value_enum, default_value = "poisson")]
    pub sampling: SamplingChoice,
    /// PRV: half-width of the epsilon error interval (upper - lower <= 2 * eps_error).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    pub eps_error: f64,
    /// PRV: delta error [default: delta / 10^4].
    #[arg(long)]
    pub delta_error: Option<f64>,
    /// RDP: comma-separated orders > 1 [default: 1.1, 1.2, ..., 10.9, 12, ..., 63].
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub orders: Option<Vec<f64>>,
    /// Print one JSON object keyed by accountant on stdout.
    #[arg(long)]
    pub json: bool,
}

/// How long the run is: steps, or epochs at the sample rate.
#[derive(Debug, Args)]
pub struct RunLength {
    /// Number of steps T (>= 1).
    #[arg(long, required_unless_present = "epochs")]
    pub steps: Option<u64>,
    /// Number of epochs (steps = ceil(epochs / q)).
    #[arg(long, conflicts_with = "steps", allow_negative_numbers = true)]
    pub epochs: Option<f64>,
}

#[derive(Debug, Args)]
pub struct EpsilonArgs {
    /// Noise multiplier sigma: noise standard deviation / clipping norm, > 0.
    #[arg(long, allow_negative_numbers = true)]
    pub noise_multiplier: f64,
    #[command(flatten)]
    pub length: RunLength,
    #[command(flatten)]
    pub common: AccountingArgs,
}

#[derive(Debug, Args)]
pub struct NoiseArgs {
    /// Target epsilon, > 0.
    #[arg(long, allow_negative_numbers = true)]
    pub target_epsilon: f64,
    #[command(flatten)]
    pub length: RunLength,
    /// Stop when the target is met within this much epsilon (never above the target).
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f64,
    #[command(flatten)]
    pub common: AccountingArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "The config has sections model, task, method, optimization, privacy (or `privacy: none`) \
                        and generation; experiments/ has examples. Unknown keys are errors naming the key.\n\
                        Writes into the run folder: config.yaml, metrics.jsonl, checkpoints/, summary.json, \
                        privacy.json (and predictions for generation tasks). A folder holding another run is \
                        refused unless --resume continues it.")]
pub struct TrainArgs {
    /// The run config (YAML).
    pub config: PathBuf,
    /// Override a config value, e.g. --set optimization.learning_rate=1e-3 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The run folder [default: results/runs/<config file stem>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in --out from its latest checkpoint (exactly: same batches, noise and dropout).
    #[arg(long)]
    pub resume: bool,
    /// Continue the run in --out when it holds one, else start it: what a scheduler's (re)started task runs.
    #[arg(long, conflicts_with = "resume")]
    pub resume_or_start: bool,
    /// Testing aid: end the process right after step K, as a kill would (no final checkpoint or outputs).
    #[arg(long, hide = true, value_name = "K")]
    pub stop_after_steps: Option<u64>,
}

const AUDIT_HELP: &str = "Canaries: each of the --canaries is included in the training set with probability 1/2. A \
included canary picked into a batch adds a clipped gradient of norm C along its own coordinate of the parameter \
vector; its score is the sum over steps of the released gradient there. The run uses the config's model, data, \
sampling rate (batch_size over real examples plus included canaries), clipping, noise and steps. Output \
(stdout with --json, and OUT/audit.json with in_scores.txt / out_scores.txt): kind, epsilon_claimed (RDP, over \
the audit's own run), delta, epsilon_lower_bound, confidence, canaries, guesses, correct, passed \
(epsilon_lower_bound <= epsilon_claimed). Exit status 0 either way; a failed audit (passed false) means the \
release is not the mechanism that was accounted.";

/// `dpft audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The run config (YAML) to audit.
    pub config: PathBuf,
    /// Override a config value, e.g. --set optimization.steps=20 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Number of canaries M.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub canaries: usize,
    /// white-box (gradient canaries, the default: the strongest audit of the release) or black-box
    /// (random token sequences in the training data, scored by their loss).
    #[arg(long, value_enum, default_value = "white-box")]
    pub kind: crate::audit::AuditKind,
    /// Tokens per black-box canary sequence.
    #[arg(long, default_value_t = 16, value_parser = at_least_one)]
    pub canary_length: usize,
    /// Confidence of the lower bound.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Release without noise (checks that the audit can detect leakage: epsilon_lower_bound should be large).
    #[arg(long)]
    pub positive_control: bool,
    /// Testing the audit itself: release FACTOR·sigma of noise while accounting sigma (an unsound release
    /// the audit should catch). Never for a model you keep.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, hide_short_help = true)]
    pub sabotage_noise: f64,
    /// Folder for audit.json and the scores (in_scores.txt, out_scores.txt).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Scales as e2e-metrics prints them (BLEU in [0, 1]). METEOR runs the METEOR 1.5 jar that \
                        pycocoevalcap ships (found in the Python environment, or --meteor-jar / DPFT_METEOR_JAR) \
                        and needs java; without them it is reported as unavailable (null in JSON).")]
pub struct EvalGenArgs {
    /// Predictions, one per line.
    #[arg(long, value_name = "FILE")]
    pub predictions: std::path::PathBuf,
    /// References in the e2e-metrics format: a segment's references on consecutive lines, segments
    /// separated by one blank line.
    #[arg(long, value_name = "FILE")]
    pub references: std::path::PathBuf,
    /// The METEOR 1.5 jar [default: $DPFT_METEOR_JAR, else pycocoevalcap's in the Python environment].
    #[arg(long, value_name = "JAR")]
    pub meteor_jar: Option<std::path::PathBuf>,
    /// Print JSON: {"BLEU", "NIST", "METEOR" (or null), "ROUGE_L", "CIDEr"}.
    #[arg(long)]
    pub json: bool,
    /// Do not compute METEOR (it is reported as null).
    #[arg(long, conflicts_with = "meteor_jar")]
    pub no_meteor: bool,
    /// Score DART the GEM way instead: BLEU over all references and rouge-score ROUGE-L ({"BLEU", "ROUGE_L"}).
    #[arg(long)]
    pub dart: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Writes OUT/tokenizer.json, usable as model.tokenizer (with model.config of the same \
                        vocab_size) in a run config. Files given as data:REL are read from the data directory.")]
pub struct TrainTokenizerArgs {
    /// Text files to learn merges from (UTF-8).
    #[arg(long = "file", value_name = "FILE", required_unless_present = "cut_from", conflicts_with = "cut_from")]
    pub files: Vec<PathBuf>,
    /// Instead of training: keep the first merges of the byte-level BPE in this folder (its merges.txt; e.g.
    /// `data:tokenizers/gpt2`), ranked as its trainer ranked them. Reads no text, so the vocabulary is exactly
    /// as public as the tokenizer it is cut from.
    #[arg(long, value_name = "DIR")]
    pub cut_from: Option<PathBuf>,
    /// Ids in the vocabulary (256 bytes, `<|endoftext|>` and the merges).
    #[arg(long, default_value_t = 4096)]
    pub vocab_size: usize,
    /// Folder to write tokenizer.json into (created; an existing tokenizer.json is refused).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Parameter precision of a loaded model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats (default).
    F32,
    /// 64-bit floats (exactness checks).
    F64,
    /// bfloat16 (CUDA only).
    Bf16,
}

/// The model folder and its precision.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// A Hugging Face model folder: config.json, model.safetensors, and tokenizer.json (or vocab.json +
    /// merges.txt, or vocab.txt).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// An adapter folder in PEFT's layout (adapter_config.json + adapter_model.safetensors: LoRA or
    /// prefix-tuning, as `dpft train` writes to OUT/adapter/) applied to --model, the base it was trained on.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Parameter precision.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
}

#[derive(Debug, Args)]
#[command(after_help = "Each text is tokenised with the folder's tokenizer, no special tokens added. \
                        Token t>0 gets log p(token_t | tokens before it); nll is minus their sum.\n\
                        JSON: [{\"text\", \"tokens\": [ids], \"logprobs\": [one per token after the first], \"nll\"}]")]
pub struct ScoreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// A text to score (repeat for several).
    #[arg(long, required = true)]
    pub text: Vec<String>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Decoding follows Hugging Face transformers' generate (beam search with \
                        early_stopping=False): the same settings give the same token ids. Newlines inside a \
                        continuation are written as spaces so that line i of the output answers line i of the input.")]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Prompts, one per line (UTF-8; a trailing newline is not a prompt; an empty line is an error).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Beams (1 = greedy search).
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub num_beams: usize,
    /// Most tokens generated per prompt.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub max_new_tokens: usize,
    /// Fewest tokens generated before the end-of-sequence token is allowed; counts generated tokens only
    /// (transformers' min_new_tokens, not its min_length, which counts the prompt too).
    #[arg(long, visible_alias = "min-new-tokens", default_value_t = 5)]
    pub min_length: usize,
    /// A token id never to generate (repeat for several).
    #[arg(long = "ban", value_name = "ID")]
    pub banned: Vec<i64>,
    /// End-of-sequence id [default: the config's eos_token_id].
    #[arg(long)]
    pub eos_token_id: Option<i64>,
    /// Exponent of the length normalisation of beam scores.
    #[arg(long, default_value_t = 1.0)]
    pub length_penalty: f64,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    pub batch_size: usize,
    /// Write the continuations here (atomically) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// How the clipped sum is formed (`dpft clip-check --mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Book-keeping: one backward pass.
    Bk,
    /// The paper's two-pass ghost clipping.
    Ghost,
    /// Per-example gradients instantiated.
    Naive,
}

#[derive(Debug, Args)]
#[command(after_help = "The per-example loss is the mean negative log-likelihood of each text's tokens after the \
                        first (model folder's tokenizer, no special tokens), dropout off. The oracle runs each \
                        example alone, takes its full gradient by autograd, clips it to C and sums. Relative \
                        differences: norms per example; gradients per tensor, against the larger of the tensor's \
                        norm and a floor (1e-6 of the whole clipped sum's norm in f64, 1e-3 in f32: tensors whose \
                        exact gradient is zero, such as the key part of the attention bias, are round-off). Tolerance: 1e-9 (f64), \
                        1e-3 (f32: sums over long texts round off near 1e-6 of their size; a bypassed \
                        parameter shows as differences of 1e-2 and more). Exit status 1 when a difference exceeds it. \
                        All texts form one batch: keep the file to a few dozen lines.")]
pub struct ClipCheckArgs {
    /// A GPT-2 model folder.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Texts, one per line: one example each.
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Clipping norm C.
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// How the engine forms the clipped sum.
    #[arg(long, value_enum, default_value = "bk")]
    pub mode: ModeArg,
    /// Precision of the check (f64 for exactness).
    #[arg(long, value_enum, default_value = "f64")]
    pub dtype: DtypeArg,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write per_example_norms and the engine's clipped summed gradient (Hugging Face names) to this
    /// safetensors file.
    #[arg(long, value_name = "FILE")]
    pub dump: Option<PathBuf>,
}

/// `dpft sweep`.
#[derive(Debug, Args)]
#[command(after_help = "A sweep file has `base` (a run config: its path relative to the sweep file, or the \
                        mapping itself), `grid` (dotted keys to lists of values; every combination runs), and \
                        optionally `name`, `set` (overrides for every run), `profiles` (named overrides, e.g. mini \
                        and paper), `zip` (groups of keys varied together) and `exclude` (value combinations to \
                        drop). A mapping value merges into the config's mapping (privacy: {target_epsilon: 3} keeps \
                        delta and max_grad_norm); `none` replaces it (privacy: none). Every run's config is checked \
                        before the first run starts.\n\nOutput (default results/<name>/<profile>/): one folder per \
                        run id (what `dpft train` writes), sweep.json (status, error and metrics of each run), \
                        sweep.yaml, configs/<id>.yaml, logs/<id>.log. Run ids are a slug of the run's values plus a \
                        hash of them, the same on every machine. See experiments/ for examples.")]
pub struct SweepArgs {
    /// The sweep file (YAML).
    pub file: PathBuf,
    /// Which of the file's profiles to run [default: the first it lists].
    #[arg(long)]
    pub profile: Option<String>,
    /// Where the runs run: child processes here (local), or one Slurm job array (slurm: one array task per
    /// unfinished run, each `dpft train --resume-or-start`, so a requeued task continues from its checkpoint).
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    pub backend: Backend,
    /// Local: runs at a time [default: the number of visible GPUs when several, else 1]; on the CPU the cores
    /// are split between them, with several GPUs each run gets one.
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Skip the finished runs of an earlier invocation and continue interrupted ones from their checkpoints
    /// (slurm: submit a new job for the unfinished runs only).
    #[arg(long)]
    pub resume: bool,
    /// List the expanded runs (ids and values) after checking their configs, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the sweep's state (sweep.json, refreshed from the run folders and, for a Slurm sweep, the
    /// queue) and run nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "cancel", "resume"])]
    pub status: bool,
    /// Cancel the sweep's Slurm job (`scancel`: pending and running runs); `--resume` later submits the
    /// unfinished runs again and running ones continue from their checkpoints.
    #[arg(long, conflicts_with_all = ["dry_run", "resume"])]
    pub cancel: bool,
    /// Output folder [default: results/<name>/<profile>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Override a value in every run, e.g. --set optimization.steps=10 (repeatable; applied last).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

/// The Slurm backend's options; each may also be given in the sweep file's `slurm:` block (same names with
/// underscores: `gpus_per_run: 1`); the command line wins.
#[derive(Debug, Args)]
#[command(next_help_heading = "Slurm backend (--backend slurm)")]
pub struct SlurmArgs {
    /// Partition to submit to [default: the cluster's default].
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Wall-time limit per run (sbatch --time: HH:MM:SS, D-HH:MM:SS, MM, …).
    #[arg(long, value_name = "HH:MM:SS")]
    pub time: Option<String>,
    /// GPUs per run (--gres=gpu:N); runs then use `--device cuda` [default: 0, the CPU].
    #[arg(long, value_name = "N")]
    pub gpus_per_run: Option<u32>,
    /// CPU cores per run (--cpus-per-task; also the run's libtorch threads).
    #[arg(long, value_name = "N")]
    pub cpus_per_run: Option<u32>,
    /// Memory per run (sbatch --mem, e.g. 16G).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// At most K runs at a time (the array's %K throttle) [default: no limit].
    #[arg(long, value_name = "K")]
    pub max_concurrent: Option<u32>,
    /// A further sbatch option, written into the script (repeatable), e.g. --sbatch-arg=--account=lab.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Watch the job until every run is done, then print the table (the default).
    #[arg(long, conflicts_with = "no_wait")]
    pub wait: bool,
    /// Return once the job is submitted; `--status`, `--cancel` and `dpft report` work later.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds between two looks at the queue while waiting [default: 15].
    #[arg(long, value_name = "SECONDS")]
    pub poll: Option<f64>,
}

#[derive(Debug, Args)]
#[command(after_help = "Writes into --out (only these files; each through a temporary file):\n  \
                  NAME.md, NAME.csv, NAME.tex  per table (NAME from --table-name): generation tasks in the \
                  layout of Table 2 (rows metric x ε, non-private last; columns full, LoRA, prefix, RGP, top2, \
                  retrain), classification tasks together in the layout of Table 1 (rows task, columns ε). \
                  BLEU, METEOR, ROUGE-L and accuracy in percent as in the paper; NIST and CIDEr as e2e-metrics \
                  prints them. The CSV lists every cell (mean, std, n) at full precision.\n  \
                  figures/*.png, figures/*.svg  <metric>-vs-epsilon-<task> (per method, ± std error bars), \
                  <metric>-vs-model-size-<task> (Figure 1; with two or more model sizes), \
                  heatmap-<metric>-<task>-<model>-<method>-<eps> (batch size x learning rate; with two or more \
                  of either), training-loss-<task>. Figures without data are skipped and said so.\n  \
                  report.json  runs used, runs skipped and why, settings, files written.\n\n\
                  The Markdown tables are printed on stdout. Exit status 2 when RESULTS_DIR is missing or holds \
                  no finished run.")]
pub struct ReportArgs {
    /// The folder with run folders (RESULTS_DIR/<run>/) or sweep folders (RESULTS_DIR/<sweep>/<run>/).
    #[arg(value_name = "RESULTS_DIR")]
    pub results: PathBuf,
    /// Where the report goes [default: RESULTS_DIR/report].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// File name (without extension) of the tables; {task} becomes the task (e2e, dart) or
    /// `classification`. A name without {task} is allowed when the runs make one table, e.g.
    /// `--task e2e --table-name table2`.
    #[arg(long, visible_alias = "name", value_name = "NAME", default_value = "table-{task}")]
    pub table_name: String,
    /// Headline metric of the figures and of the choice among settings [default: BLEU for generation,
    /// accuracy for classification]; any key of summary.json's metrics (case and -/_ ignored: rouge-l).
    #[arg(long, value_name = "NAME")]
    pub metric: Option<String>,
    /// Only runs of this task (repeatable).
    #[arg(long, value_name = "TASK")]
    pub task: Vec<String>,
    /// Write the tables and report.json only.
    #[arg(long)]
    pub no_figures: bool,
    /// "Paper vs this run" under Table 2 (E2E BLEU; with `mini` also Table 1): `mini` checks the paper's findings (✓/✗ with the
    /// numbers), `paper` puts the paper's numbers next to ours, `none` leaves it out [default: the profile
    /// in RESULTS_DIR/sweep.json, none without one].
    #[arg(long, value_enum, value_name = "WHICH")]
    pub compare: Option<crate::report::findings::Compare>,
    /// Also draw the training-loss curves of private runs. Their per-step losses are computed from the
    /// private batches without noise and are not covered by ε, so by default only non-private runs' curves
    /// are drawn; with this flag the figure's title says what it shows.
    #[arg(long)]
    pub diagnostics: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "JSON (--json): {\"impl\": \"dpft\", \"mode\", \"model\", \"batch_size\", \"seq_len\", \
                        \"median_step_s\", \"examples_per_s\", \"peak_mem_bytes\", \"peak_mem_kind\", \"step_times_s\", …}; \
                        with --max-batch also \"max_batch_size\", \"mem_limit_bytes\" and \"trials\".\n\
                        Examples:\n  dpft bench --model gpt2 --batch-size 8 --seq-len 128 --mode bk --json\n  \
                        dpft bench --model gpt2 --seq-len 128 --mode ghost --max-batch --mem-limit 16G")]
pub struct BenchArgs {
    /// The model: gpt2, gpt2-medium, gpt2-large, roberta-base, roberta-large (built-in architectures, random
    /// weights), a config.json (random weights), or a Hugging Face model folder (its weights).
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// Examples per step (one physical batch).
    #[arg(long, value_name = "B", required_unless_present = "max_batch")]
    pub batch_size: Option<i64>,
    /// Tokens per example.
    #[arg(long, value_name = "T")]
    pub seq_len: i64,
    /// nonprivate (plain backward), bk (book-keeping), ghost (the paper's two passes), naive (per-example
    /// gradients).
    #[arg(long, value_enum)]
    pub mode: crate::bench::step::BenchMode,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = at_least_one)]
    pub steps: usize,
    /// Untimed steps first (allocations, libtorch's kernel choices).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub warmup: usize,
    /// Parameter dtype (bf16 on CUDA only).
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeArg,
    /// C, the per-example clipping norm of the private modes.
    #[arg(long, default_value_t = 1.0, value_name = "C")]
    pub max_grad_norm: f64,
    /// σ, the noise multiplier of the private modes (the noise is drawn either way; σ = 0 adds zeros).
    #[arg(long, default_value_t = 1.0, value_name = "SIGMA")]
    pub noise_multiplier: f64,
    /// Seed of the random weights, inputs and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Give GPT-2's lm_head its own copy of wte (Opacus ghost clipping cannot clip a tied weight, so the
    /// comparison with it is made on the untied model on both sides).
    #[arg(long)]
    pub untie_lm_head: bool,
    /// Search the largest batch size whose step fits in --mem-limit (instead of timing --batch-size).
    #[arg(long, requires = "mem_limit", conflicts_with = "batch_size")]
    pub max_batch: bool,
    /// Memory limit of --max-batch: bytes, or with a unit K/M/G/T (powers of 1024), e.g. 16G.
    #[arg(long, value_name = "BYTES", value_parser = crate::bench::max_batch::parse_bytes)]
    pub mem_limit: Option<u64>,
    /// Largest batch size --max-batch tries.
    #[arg(long, default_value_t = 4096, value_name = "B")]
    pub max_batch_cap: i64,
    /// Print JSON on stdout (one object) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file (atomically).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A count that must be at least 1 (a batch, beam or step count of 0 has nothing to do).
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}: give a whole number ≥ 1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn verbosity_flags() {
        let level = |args: &[&str]| Cli::try_parse_from(args).unwrap().global.verbosity();
        assert_eq!(level(&["dpft", "info"]), LevelFilter::Info);
        assert_eq!(level(&["dpft", "-v", "info"]), LevelFilter::Debug);
        assert_eq!(level(&["dpft", "info", "-vv"]), LevelFilter::Trace);
        assert_eq!(level(&["dpft", "-q", "info"]), LevelFilter::Warn);
        assert_eq!(level(&["dpft", "-qq", "info"]), LevelFilter::Error);
        assert!(Cli::try_parse_from(["dpft", "-v", "-q", "info"]).is_err());
    }

    #[test]
    fn device_flag_is_global_and_validated() {
        let cli = Cli::try_parse_from(["dpft", "info", "--device", "cuda:1"]).unwrap();
        assert_eq!(cli.global.device, DeviceSpec::Cuda(1));
        let err = Cli::try_parse_from(["dpft", "--device", "tpu", "info"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("expected cpu, cuda, cuda:N"), "{err}");
    }
}
