//! Tokenizers from a Hugging Face model folder, through the `tokenizers` crate:
//! `tokenizer.json` when present; else `vocab.json` + `merges.txt` (byte-level BPE: GPT-2, RoBERTa); else
//! `vocab.txt` (WordPiece: BERT, lower-cased unless `tokenizer_config.json` says `do_lower_case: false`).
//! The fallbacks rebuild the pipelines Hugging Face's slow-to-fast converters build (byte-level
//! pre-tokenizer without a prefix space; RoBERTa's `<s> … </s>` and BERT's `[CLS] … [SEP]` templates).

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
    TokenizerBuilder,
};

use crate::ModelError;

/// A tokenizer and the file(s) it came from.
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
}

fn err(path: &Path, message: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer { path: path.to_path_buf(), message: message.to_string() }
}

impl TextTokenizer {
    /// Loads the tokenizer of the model folder `dir` (`model_type` picks the special-token template of the
    /// vocab/merges and vocab.txt fallbacks).
    pub fn from_dir(dir: &Path, model_type: &str) -> Result<Self, ModelError> {
        let json = dir.join("tokenizer.json");
        if json.is_file() {
            let mut inner = Tokenizer::from_file(&json)
                .map_err(|e| err(&json, format!("the tokenizers library cannot read it: {e}")))?;
            // Padding and truncation are the caller's business (batches pad explicitly; over-long
            // examples are reported, not silently cut).
            inner.with_padding(None);
            inner.with_truncation(None).map_err(|e| err(&json, e))?;
            return Ok(Self { inner, source: json });
        }
        let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
        if vocab.is_file() && merges.is_file() {
            return Self::byte_level_bpe(&vocab, &merges, model_type);
        }
        let vocab_txt = dir.join("vocab.txt");
        if vocab_txt.is_file() {
            return Self::wordpiece(dir, &vocab_txt);
        }
        Err(err(
            dir,
            "no tokenizer files: expected tokenizer.json, or vocab.json + merges.txt (GPT-2/RoBERTa BPE), or vocab.txt (BERT WordPiece); copy them from the model's original folder",
        ))
    }

    fn byte_level_bpe(vocab: &Path, merges: &Path, model_type: &str) -> Result<Self, ModelError> {
        let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
            .build()
            .map_err(|e| err(vocab, format!("cannot build a BPE model from vocab.json + merges.txt: {e}")))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        if model_type == "roberta" {
            let id = |t: &str| {
                inner
                    .token_to_id(t)
                    .ok_or_else(|| err(vocab, format!("RoBERTa special token {t} is not in vocab.json")))
            };
            let (cls, sep) = (id("<s>")?, id("</s>")?);
            let mut special: Vec<AddedToken> =
                ["<s>", "<pad>", "</s>", "<unk>"].iter().map(|t| AddedToken::from(*t, true)).collect();
            special.push(AddedToken::from("<mask>", true).lstrip(true));
            inner.add_special_tokens(&special);
            inner.with_post_processor(Some(RobertaProcessing::new(("</s>".into(), sep), ("<s>".into(), cls))));
        } else {
            inner.add_special_tokens(&[AddedToken::from("<|endoftext|>", true)]);
        }
        Ok(Self { inner, source: vocab.to_path_buf() })
    }

    fn wordpiece(dir: &Path, vocab: &Path) -> Result<Self, ModelError> {
        let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
            .unwrap_or(true);
        let wp = WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| err(vocab, format!("cannot build a WordPiece model from vocab.txt: {e}")))?;
        let mut inner = Tokenizer::new(wp);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_decoder(Some(WordPieceDecoder::default()));
        let id =
            |t: &str| inner.token_to_id(t).ok_or_else(|| err(vocab, format!("special token {t} is not in vocab.txt")));
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let special: Vec<AddedToken> =
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].iter().map(|t| AddedToken::from(*t, true)).collect();
        inner.add_special_tokens(&special);
        inner.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Ok(Self { inner, source: vocab.to_path_buf() })
    }

    /// The file the tokenizer was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Token ids of `text`; `special` adds the model's template (`<s> … </s>`, `[CLS] … [SEP]`).
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<i64>, ModelError> {
        let enc =
            self.inner.encode(text, special).map_err(|e| err(&self.source, format!("cannot encode {text:?}: {e}")))?;
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// Token ids and token-type ids of a sentence pair with the template.
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<(Vec<i64>, Vec<i64>), ModelError> {
        let enc = self
            .inner
            .encode((first, second), true)
            .map_err(|e| err(&self.source, format!("cannot encode the pair ({first:?}, {second:?}): {e}")))?;
        Ok((
            enc.get_ids().iter().map(|&i| i64::from(i)).collect(),
            enc.get_type_ids().iter().map(|&i| i64::from(i)).collect(),
        ))
    }

    /// The text of `ids`; `skip_special` drops special tokens.
    pub fn decode(&self, ids: &[i64], skip_special: bool) -> Result<String, ModelError> {
        let ids: Vec<u32> = ids
            .iter()
            .map(|&i| u32::try_from(i).map_err(|_| err(&self.source, format!("cannot decode the negative id {i}"))))
            .collect::<Result<_, _>>()?;
        self.inner.decode(&ids, skip_special).map_err(|e| err(&self.source, format!("cannot decode: {e}")))
    }

    /// The id of a token, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<i64> {
        self.inner.token_to_id(token).map(i64::from)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> i64 {
        self.inner.get_vocab_size(true) as i64
    }

    /// Checks that every id the tokenizer can produce has a row in an embedding of `vocab_size` rows.
    pub fn check_fits(&self, vocab_size: i64) -> Result<(), ModelError> {
        if self.vocab_size() > vocab_size {
            return Err(err(
                &self.source,
                format!(
                    "the tokenizer has {} ids but the model's vocab_size is {vocab_size}: the tokenizer does not belong to this model",
                    self.vocab_size()
                ),
            ));
        }
        Ok(())
    }

    /// Writes the tokenizer (with any added tokens) as `dir/tokenizer.json`.
    pub fn save(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join("tokenizer.json");
        self.inner.save(&path, false).map_err(|e| err(&path, format!("cannot write it: {e}")))
    }

    /// Adds a special token (the paper's `[PAD]` for GPT-2) and returns its id.
    pub fn add_special_token(&mut self, token: &str) -> i64 {
        self.inner.add_special_tokens(&[AddedToken::from(token, true)]);
        self.token_to_id(token).expect("token just added")
    }
}

/// Trains a byte-level BPE tokenizer (GPT-2's scheme: byte-level pre-tokenizer without a prefix space,
/// byte-level decoder) with `vocab_size` ids on the text `files`, `<|endoftext|>` as id 0, and writes it
/// as `out_dir/tokenizer.json`. For the mini reproduction's small models, where GPT-2's 50,257 ids would
/// dominate the parameter count.
pub fn train_byte_level_bpe(
    files: &[std::path::PathBuf],
    vocab_size: usize,
    out_dir: &Path,
) -> Result<TextTokenizer, ModelError> {
    use tokenizers::models::bpe::BpeTrainerBuilder;
    if vocab_size < 300 {
        return Err(ModelError::Invalid(format!(
            "vocab_size = {vocab_size} is below the 256 bytes plus merges; use ≥ 300"
        )));
    }
    for f in files {
        if !f.is_file() {
            return Err(err(f, "training text not found"));
        }
    }
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = byte_level_tokenizer(BPE::default(), out_dir)?;
    let names: Vec<String> = files.iter().map(|f| f.to_string_lossy().into_owned()).collect();
    tokenizer.train_from_files(&mut trainer, names).map_err(|e| err(out_dir, format!("BPE training failed: {e}")))?;
    save_byte_level(&tokenizer, out_dir)
}

type ByteLevelTokenizer =
    tokenizers::TokenizerImpl<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>;

/// GPT-2's pipeline around a BPE model: byte-level pre-tokenizer without a prefix space, byte-level decoder.
fn byte_level_tokenizer(model: BPE, out_dir: &Path) -> Result<ByteLevelTokenizer, ModelError> {
    TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
        .with_model(model)
        .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false).into()))
        .with_decoder(Some(ByteLevelDecoder::default().into()))
        .build()
        .map_err(|e| err(out_dir, format!("cannot build a BPE tokenizer: {e}")))
}

/// Writes `out_dir/tokenizer.json` through a temporary file renamed into place, and loads it back.
fn save_byte_level(tokenizer: &ByteLevelTokenizer, out_dir: &Path) -> Result<TextTokenizer, ModelError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ModelError::Io { path: out_dir.to_path_buf(), source: e })?;
    let path = out_dir.join("tokenizer.json");
    let text = tokenizer.to_string(false).map_err(|e| err(&path, format!("cannot serialise: {e}")))?;
    crate::safe_fs::write_atomic(&path, text.as_bytes())
        .map_err(|e| ModelError::Io { path: path.clone(), source: e })?;
    TextTokenizer::from_dir(out_dir, "gpt2")
}

/// A smaller byte-level BPE cut from a published one: the 256 byte tokens, `<|endoftext|>` as id 0 and the
/// first `vocab_size − 257` merges of `merges.txt` in `dir` (GPT-2's, for the mini reproduction), written as
/// `out_dir/tokenizer.json`. BPE merges are ranked by their frequency in the original training text, so the
/// prefix is the vocabulary the original trainer would have stopped at; no text is read, so the result is
/// exactly as public as the tokenizer it comes from. Written here because the `tokenizers` crate trains or
/// loads a BPE but has no call that keeps a prefix of its merges.
pub fn truncate_byte_level_bpe(dir: &Path, vocab_size: usize, out_dir: &Path) -> Result<TextTokenizer, ModelError> {
    use tokenizers::models::bpe::Vocab;
    const EOT: &str = "<|endoftext|>";
    let merges_path = dir.join("merges.txt");
    let text = std::fs::read_to_string(&merges_path).map_err(|e| err(&merges_path, format!("cannot read: {e}")))?;
    let merges: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(|l| l.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect::<Option<_>>()
        .ok_or_else(|| err(&merges_path, "a line is not two space-separated tokens"))?;
    let keep = vocab_size.checked_sub(257).filter(|&k| k > 0 && k <= merges.len()).ok_or_else(|| {
        ModelError::Invalid(format!(
            "vocab_size = {vocab_size}: a cut of {} keeps between 258 and {} ids (256 bytes, {EOT}, merges)",
            merges_path.display(),
            merges.len() + 257
        ))
    })?;
    let merges = &merges[..keep];
    let mut vocab = Vocab::default();
    vocab.insert(EOT.to_string(), 0);
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    for c in alphabet {
        let id = vocab.len() as u32;
        vocab.insert(c.to_string(), id);
    }
    for (a, b) in merges {
        if !vocab.contains_key(a) || !vocab.contains_key(b) {
            return Err(err(&merges_path, format!("merge `{a} {b}` uses a token no earlier merge made")));
        }
        let id = vocab.len() as u32;
        vocab.entry(format!("{a}{b}")).or_insert(id);
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges.to_vec())
        .build()
        .map_err(|e| err(&merges_path, format!("cannot build the cut BPE: {e}")))?;
    let mut tokenizer = byte_level_tokenizer(bpe, out_dir)?;
    tokenizer.add_special_tokens(&[AddedToken::from(EOT, true)]);
    save_byte_level(&tokenizer, out_dir)
}
