//! RoBERTa featurisation of classification examples: as text infilling with LM-BFF templates (the
//! paper's choice, claim 3), or as a plain sentence pair for a classification head.
//!
//! # Templates (paper.md "Data formats", LM-BFF syntax)
//! | task | template | label words (label index order of [`super::glue::label_names`]) |
//! |---|---|---|
//! | SST-2 | `<s>{sent} It was<mask>.</s>` | 0 ` terrible`, 1 ` great` |
//! | MNLI | `<s>{sent1 −punct}?<mask>, {sent2 lower-first}</s>` | contradiction ` No`, entailment ` Yes`, neutral ` Maybe` |
//! | QNLI | as MNLI | entailment ` Yes`, not_entailment ` No` |
//! | QQP | `<s>{sent1 −punct}<mask>, {sent2 lower-first}</s>` | 0 ` No`, 1 ` Yes` |
//!
//! As in LM-BFF, each piece is tokenised on its own without special tokens and the ids concatenated:
//! `<s>`, `</s>` and `<mask>` are inserted as ids; the literal pieces are ` It was`, `.`, `?`, `,`; the
//! second sentence gets a leading space. `{sent1 −punct}` drops one final ASCII punctuation character, as
//! paper.md says (LM-BFF's `sent-_0` drops the last character whatever it is); `{sent2 lower-first}`
//! lower-cases the first character (LM-BFF's `sentl_1`). Label words carry a leading space and must each
//! be one token of the vocabulary (an error otherwise). The loss reads the MLM logits at `mask_position`
//! restricted to [`PromptFeaturiser::label_word_ids`].
//!
//! # Truncation
//! An example longer than `max_length` (256 in the paper) loses tokens from the end of its first
//! sentence, then (if that is not enough) from the end of its second; the template, `<mask>` included,
//! is never cut. (LM-BFF limits the first sentence the same way with `first_sent_limit`; its plain
//! `max_length` cut of the whole sequence could cut the mask.) Truncated examples are counted.
//! The pair featurisation ([`featurise_pairs`]) truncates the same way.

use models::TextTokenizer;

use super::glue::ClsExample;
use super::{par_map, TaskError, TaskName};

/// One prompt-featurised example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptExample {
    /// `[T]` token ids, `<s> … </s>`, with one `<mask>`.
    pub input_ids: Vec<i64>,
    /// Index of `<mask>` in `input_ids`.
    pub mask_position: usize,
    /// Label index (into the label words).
    pub label: usize,
}

/// A prompt-featurised split.
#[derive(Clone, Debug)]
pub struct PromptData {
    /// The examples, in input order.
    pub examples: Vec<PromptExample>,
    /// Token id of each label word, in label index order.
    pub label_word_ids: Vec<i64>,
    /// How many examples were truncated to `max_length`.
    pub truncated: usize,
}

/// One example for a classification head: the tokenizer's pair template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairExample {
    /// `[T]` token ids (`<s> a </s></s> b </s>` for RoBERTa).
    pub input_ids: Vec<i64>,
    /// `[T]` token-type ids as the tokenizer gives them.
    pub token_type_ids: Vec<i64>,
    /// Label index.
    pub label: usize,
}

/// A pair-featurised split.
#[derive(Clone, Debug)]
pub struct PairData {
    /// The examples, in input order.
    pub examples: Vec<PairExample>,
    /// How many examples were truncated to `max_length`.
    pub truncated: usize,
}

/// The label words of a classification task in label index order (empty for generation tasks).
pub fn label_words(task: TaskName) -> &'static [&'static str] {
    match task {
        TaskName::Sst2 => &[" terrible", " great"],
        TaskName::Qnli => &[" Yes", " No"],
        TaskName::Mnli => &[" No", " Yes", " Maybe"],
        TaskName::Qqp => &[" No", " Yes"],
        TaskName::E2e | TaskName::Dart => &[],
    }
}

#[derive(Clone, Copy)]
enum Piece {
    Bos,
    Eos,
    Mask,
    Text(&'static str),
    /// The first sentence, as is.
    First,
    /// The first sentence without one final punctuation character.
    FirstNoPunct,
    /// `" "` + the second sentence with its first character lower-cased.
    SecondLowerFirst,
}

fn pieces(task: TaskName) -> &'static [Piece] {
    use Piece::*;
    match task {
        TaskName::Sst2 => &[Bos, First, Text(" It was"), Mask, Text("."), Eos],
        TaskName::Qnli | TaskName::Mnli => &[Bos, FirstNoPunct, Text("?"), Mask, Text(","), SecondLowerFirst, Eos],
        TaskName::Qqp => &[Bos, FirstNoPunct, Mask, Text(","), SecondLowerFirst, Eos],
        TaskName::E2e | TaskName::Dart => &[],
    }
}

fn without_final_punctuation(s: &str) -> &str {
    match s.chars().last() {
        Some(c) if c.is_ascii_punctuation() => &s[..s.len() - 1],
        _ => s,
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// Featurises classification examples of one task with LM-BFF templates for RoBERTa.
pub struct PromptFeaturiser<'a> {
    tokenizer: &'a TextTokenizer,
    task: TaskName,
    bos: i64,
    eos: i64,
    mask: i64,
    label_word_ids: Vec<i64>,
}

impl<'a> PromptFeaturiser<'a> {
    /// Checks that the tokenizer has `<s>`, `</s>`, `<mask>` and every label word as one token.
    pub fn new(tokenizer: &'a TextTokenizer, task: TaskName) -> Result<Self, TaskError> {
        let wrong = |message: String| TaskError::WrongTokenizer { path: tokenizer.source().to_path_buf(), message };
        if label_words(task).is_empty() {
            return Err(wrong(format!("`{task}` is not a classification task; prompts are for sst2, qnli, mnli, qqp")));
        }
        let special = |t: &str| {
            tokenizer.token_to_id(t).ok_or_else(|| {
                wrong(format!("no {t} token: the templates need RoBERTa's tokenizer (tokenizers/roberta-base)"))
            })
        };
        let (bos, eos, mask) = (special("<s>")?, special("</s>")?, special("<mask>")?);
        let label_word_ids = label_words(task)
            .iter()
            .map(|w| {
                let ids = encode(tokenizer, w)?;
                match ids[..] {
                    [id] => Ok(id),
                    _ => Err(wrong(format!(
                        "label word {w:?} is {} tokens {ids:?}; a label word must be one token (RoBERTa's \
                         byte-level BPE has each with its leading space); use tokenizers/roberta-base",
                        ids.len()
                    ))),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { tokenizer, task, bos, eos, mask, label_word_ids })
    }

    /// Token id of each label word, in label index order.
    #[cfg(test)]
    pub fn label_word_ids(&self) -> &[i64] {
        &self.label_word_ids
    }

    /// One example (`index` is its position in the split, for errors); also whether it was truncated.
    pub fn featurise(
        &self,
        index: usize,
        example: &ClsExample,
        max_length: usize,
    ) -> Result<(PromptExample, bool), TaskError> {
        let second = || example.text_b.as_deref().ok_or(TaskError::NotAPair { task: self.task, index });
        // (ids, truncation priority: 1 = first sentence, 2 = second, 0 = never)
        let mut parts: Vec<(Vec<i64>, u8)> = Vec::new();
        for piece in pieces(self.task) {
            parts.push(match *piece {
                Piece::Bos => (vec![self.bos], 0),
                Piece::Eos => (vec![self.eos], 0),
                Piece::Mask => (vec![self.mask], 0),
                Piece::Text(t) => (encode(self.tokenizer, t)?, 0),
                Piece::First => (encode(self.tokenizer, &example.text_a)?, 1),
                Piece::FirstNoPunct => (encode(self.tokenizer, without_final_punctuation(&example.text_a))?, 1),
                Piece::SecondLowerFirst => (encode(self.tokenizer, &format!(" {}", lower_first(second()?)))?, 2),
            });
        }
        let truncated = truncate(&mut parts, max_length, index)?;
        let input_ids: Vec<i64> = parts.into_iter().flat_map(|(ids, _)| ids).collect();
        let mask_position = input_ids.iter().position(|&i| i == self.mask).expect("the template has <mask>");
        Ok((PromptExample { input_ids, mask_position, label: example.label }, truncated))
    }

    /// Every example, truncated to `max_length` where needed (spread over the machine's cores).
    pub fn featurise_all(&self, examples: &[ClsExample], max_length: usize) -> Result<PromptData, TaskError> {
        let indexed: Vec<(usize, &ClsExample)> = examples.iter().enumerate().collect();
        let done = par_map(&indexed, |&(i, ex)| self.featurise(i, ex, max_length))?;
        let truncated = done.iter().filter(|(_, t)| *t).count();
        Ok(PromptData {
            examples: done.into_iter().map(|(p, _)| p).collect(),
            label_word_ids: self.label_word_ids.clone(),
            truncated,
        })
    }
}

fn encode(tokenizer: &TextTokenizer, text: &str) -> Result<Vec<i64>, TaskError> {
    tokenizer
        .encode(text, false)
        .map_err(|source| TaskError::Tokenizer { context: format!("tokenising {text:?}"), source })
}

/// Cuts tokens from the end of the priority-1 parts, then priority-2, until the total fits.
fn truncate(parts: &mut [(Vec<i64>, u8)], max_length: usize, index: usize) -> Result<bool, TaskError> {
    let total: usize = parts.iter().map(|(ids, _)| ids.len()).sum();
    if total <= max_length {
        return Ok(false);
    }
    let mut excess = total - max_length;
    for priority in [1, 2] {
        for (ids, p) in parts.iter_mut() {
            if *p == priority && excess > 0 {
                let cut = excess.min(ids.len());
                ids.truncate(ids.len() - cut);
                excess -= cut;
            }
        }
    }
    if excess > 0 {
        let needed = parts.iter().filter(|(_, p)| *p == 0).map(|(ids, _)| ids.len()).sum();
        return Err(TaskError::TemplateTooLong { index, needed, max_length });
    }
    Ok(true)
}

/// Featurises examples for a classification head with the tokenizer's own template (`encode_pair`, or
/// `encode` with special tokens for single sentences); over-long examples lose tokens from the end of
/// the first sentence, then of the second.
pub fn featurise_pairs(
    tokenizer: &TextTokenizer,
    examples: &[ClsExample],
    max_length: usize,
) -> Result<PairData, TaskError> {
    let indexed: Vec<(usize, &ClsExample)> = examples.iter().enumerate().collect();
    let done = par_map(&indexed, |&(i, ex)| featurise_pair(tokenizer, i, ex, max_length))?;
    let truncated = done.iter().filter(|(_, t)| *t).count();
    Ok(PairData { examples: done.into_iter().map(|(p, _)| p).collect(), truncated })
}

/// One example of [`featurise_pairs`]; also whether it was truncated.
pub fn featurise_pair(
    tokenizer: &TextTokenizer,
    index: usize,
    ex: &ClsExample,
    max_length: usize,
) -> Result<(PairExample, bool), TaskError> {
    let tok_err = |source| TaskError::Tokenizer { context: format!("example {index}"), source };
    let (mut ids, mut types) = match &ex.text_b {
        Some(b) => tokenizer.encode_pair(&ex.text_a, b).map_err(tok_err)?,
        None => {
            let ids = tokenizer.encode(&ex.text_a, true).map_err(tok_err)?;
            let types = vec![0; ids.len()];
            (ids, types)
        }
    };
    let truncated = ids.len() > max_length;
    if truncated {
        let mut excess = ids.len() - max_length;
        // The first sentence sits right after one leading special token, the second right before one
        // trailing special token.
        let a = encode(tokenizer, &ex.text_a)?;
        excess -= cut_segment(tokenizer, index, &mut ids, &mut types, 1, &a, excess)?;
        if let (true, Some(b)) = (excess > 0, &ex.text_b) {
            let b = encode(tokenizer, b)?;
            let start = ids.len().saturating_sub(1 + b.len());
            excess -= cut_segment(tokenizer, index, &mut ids, &mut types, start, &b, excess)?;
        }
        if excess > 0 {
            return Err(TaskError::TemplateTooLong { index, needed: ids.len(), max_length });
        }
    }
    Ok((PairExample { input_ids: ids, token_type_ids: types, label: ex.label }, truncated))
}

/// Removes up to `excess` tokens from the end of the sentence `segment` expected at `start`; returns how
/// many were removed.
fn cut_segment(
    tokenizer: &TextTokenizer,
    index: usize,
    ids: &mut Vec<i64>,
    types: &mut Vec<i64>,
    start: usize,
    segment: &[i64],
    excess: usize,
) -> Result<usize, TaskError> {
    if ids.get(start..start + segment.len()) != Some(segment) {
        return Err(TaskError::WrongTokenizer {
            path: tokenizer.source().to_path_buf(),
            message: format!(
                "example {index}: a sentence's tokens are not where `<s> a </s></s> b </s>` (or `[CLS] a [SEP] b \
                 [SEP]`) puts them, so it cannot be truncated; use a RoBERTa or BERT tokenizer"
            ),
        });
    }
    let cut = excess.min(segment.len());
    let end = start + segment.len();
    ids.drain(end - cut..end);
    types.drain(end - cut..end);
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{load_classification, Split};
    use models::DataDir;

    fn roberta(dir: &DataDir) -> TextTokenizer {
        TextTokenizer::from_dir(&dir.root().join("tokenizers/roberta-base"), "roberta").unwrap()
    }

    fn ex(a: &str, b: Option<&str>, label: usize) -> ClsExample {
        ClsExample { text_a: a.into(), text_b: b.map(Into::into), label }
    }

    #[test]
    fn text_helpers() {
        assert_eq!(without_final_punctuation("Is it?"), "Is it");
        assert_eq!(without_final_punctuation("yeah or working"), "yeah or working");
        assert_eq!(without_final_punctuation(""), "");
        assert_eq!(lower_first("The cat"), "the cat");
        assert_eq!(lower_first("Éa"), "éa");
        assert_eq!(lower_first(""), "");
    }

    /// Golden ids from LM-BFF's procedure with Hugging Face's slow RoBERTa tokenizer (transformers
    /// 4.44.2), each piece encoded on its own:
    /// ```text
    /// from transformers import RobertaTokenizer
    /// tok = RobertaTokenizer("tokenizers/roberta-base/vocab.json", "tokenizers/roberta-base/merges.txt")
    /// enc = lambda s: tok.encode(s, add_special_tokens=False)
    /// sst2 = [0] + enc("it 's a charming and often affecting journey .") + enc(" It was") + [50264] + enc(".") + [2]
    /// mnli = [0] + enc("Price caps may sound more attractive with every passing rate case") + enc("?") + [50264] \
    ///        + enc(",") + enc(" rate cases make price caps sound more attractive.") + [2]
    /// [enc(w) for w in [" terrible", " great", " No", " Yes", " Maybe"]]
    /// ```
    #[test]
    fn roberta_template_ids() {
        let Some(dir) = DataDir::for_tests("tokenizers/roberta-base") else { return };
        let tok = roberta(&dir);
        let sst2 = PromptFeaturiser::new(&tok, TaskName::Sst2).unwrap();
        assert_eq!(sst2.label_word_ids(), GOLDEN_SST2_WORDS);
        let (p, t) = sst2.featurise(0, &ex("it 's a charming and often affecting journey .", None, 1), 256).unwrap();
        assert!(!t);
        assert_eq!(p.input_ids, GOLDEN_SST2);
        assert_eq!((p.input_ids[p.mask_position], p.label), (50264, 1));
        assert_eq!(
            tok.decode(&p.input_ids, false).unwrap(),
            "<s>it 's a charming and often affecting journey . It was<mask>.</s>"
        );
        let mnli = PromptFeaturiser::new(&tok, TaskName::Mnli).unwrap();
        assert_eq!(mnli.label_word_ids(), GOLDEN_MNLI_WORDS);
        let e = ex(
            "Price caps may sound more attractive with every passing rate case.",
            Some("Rate cases make price caps sound more attractive."),
            1,
        );
        let (p, _) = mnli.featurise(0, &e, 256).unwrap();
        assert_eq!(p.input_ids, GOLDEN_MNLI);
        assert_eq!(
            tok.decode(&p.input_ids, false).unwrap(),
            "<s>Price caps may sound more attractive with every passing rate case?<mask>, rate cases make price caps \
             sound more attractive.</s>"
        );
        assert_eq!(p.input_ids[p.mask_position], 50264);
        let qqp = PromptFeaturiser::new(&tok, TaskName::Qqp).unwrap();
        let (p, _) = qqp.featurise(0, &ex("Is it?", Some("It is."), 0), 256).unwrap();
        assert_eq!(tok.decode(&p.input_ids, false).unwrap(), "<s>Is it<mask>, it is.</s>");
        let qnli = PromptFeaturiser::new(&tok, TaskName::Qnli).unwrap();
        assert_eq!(qnli.label_word_ids(), [GOLDEN_MNLI_WORDS[1], GOLDEN_MNLI_WORDS[0]]);
        let e = qnli.featurise(3, &ex("Is it?", None, 0), 256).unwrap_err().to_string();
        assert!(e.contains("example 3") && e.contains("second sentence"), "{e}");
    }

    const GOLDEN_SST2: [i64; 16] = [0, 405, 128, 29, 10, 18452, 8, 747, 7920, 3251, 479, 85, 21, 50264, 4, 2];
    const GOLDEN_SST2_WORDS: [i64; 2] = [6587, 372];
    const GOLDEN_MNLI: [i64; 25] = [
        0, 36677, 9686, 189, 2369, 55, 6043, 19, 358, 3133, 731, 403, 116, 50264, 6, 731, 1200, 146, 425, 9686, 2369,
        55, 6043, 4, 2,
    ];
    const GOLDEN_MNLI_WORDS: [i64; 3] = [440, 3216, 5359];

    #[test]
    fn truncates_the_first_sentence_and_keeps_the_mask() {
        let Some(dir) = DataDir::for_tests("tokenizers/roberta-base") else { return };
        let tok = roberta(&dir);
        let mnli = PromptFeaturiser::new(&tok, TaskName::Mnli).unwrap();
        let e = ex("one two three four five six.", Some("Seven eight nine."), 0);
        let (full, _) = mnli.featurise(0, &e, 256).unwrap();
        let (p, t) = mnli.featurise(0, &e, full.input_ids.len() - 2).unwrap();
        assert!(t);
        assert_eq!(tok.decode(&p.input_ids, false).unwrap(), "<s>one two three four?<mask>, seven eight nine.</s>");
        // First sentence gone entirely, then the second cut from its end.
        let (p, _) = mnli.featurise(0, &e, 8).unwrap();
        assert_eq!(tok.decode(&p.input_ids, false).unwrap(), "<s>?<mask>, seven eight nine</s>");
        let err = mnli.featurise(5, &e, 4).unwrap_err().to_string();
        assert!(err.contains("example 5") && err.contains("5 tokens") && err.contains("max_length 4"), "{err}");
        let data = mnli.featurise_all(&[e.clone(), ex("a.", Some("b."), 2)], 9).unwrap();
        assert_eq!((data.examples.len(), data.truncated), (2, 1));
        assert!(data.examples.iter().all(|p| p.input_ids.len() <= 9));
    }

    #[test]
    fn label_words_must_be_one_token() {
        let Some(dir) = DataDir::for_tests("tokenizers/bert-base-uncased") else { return };
        let tok = TextTokenizer::from_dir(&dir.root().join("tokenizers/bert-base-uncased"), "bert").unwrap();
        let e = PromptFeaturiser::new(&tok, TaskName::Sst2).err().unwrap().to_string();
        assert!(e.contains("<s>") && e.contains("roberta-base"), "{e}");
        let Some(dir) = DataDir::for_tests("tokenizers/gpt2") else { return };
        let tok = TextTokenizer::from_dir(&dir.root().join("tokenizers/gpt2"), "gpt2").unwrap();
        assert!(PromptFeaturiser::new(&tok, TaskName::Sst2).is_err());
    }

    /// Golden: `tok(question, sentence)["input_ids"]` with the slow RoBERTa tokenizer as above, for the
    /// first QNLI dev row.
    #[test]
    fn pair_featurisation_and_truncation() {
        let Some(dir) = DataDir::for_tests("qnli") else { return };
        let tok = roberta(&dir);
        let dev = load_classification(&dir, TaskName::Qnli, Split::Dev).unwrap().examples;
        let data = featurise_pairs(&tok, &dev[..1], 256).unwrap();
        assert_eq!(data.truncated, 0);
        assert_eq!(data.examples[0].input_ids, GOLDEN_QNLI_PAIR);
        assert_eq!(data.examples[0].token_type_ids.len(), GOLDEN_QNLI_PAIR.len());
        let e = ex("one two three four", Some("five six seven"), 1);
        let full = featurise_pairs(&tok, std::slice::from_ref(&e), 256).unwrap().examples[0].input_ids.len();
        let cut = featurise_pairs(&tok, std::slice::from_ref(&e), full - 2).unwrap();
        assert_eq!(cut.truncated, 1);
        assert_eq!(tok.decode(&cut.examples[0].input_ids, false).unwrap(), "<s>one two</s></s>five six seven</s>");
        let cut = featurise_pairs(&tok, std::slice::from_ref(&e), 6).unwrap();
        assert_eq!(tok.decode(&cut.examples[0].input_ids, false).unwrap(), "<s></s></s>five six</s>");
        let single = featurise_pairs(&tok, &[ex("good film indeed", None, 1)], 4).unwrap();
        assert_eq!(tok.decode(&single.examples[0].input_ids, false).unwrap(), "<s>good film</s>");
        assert!(featurise_pairs(&tok, std::slice::from_ref(&e), 3).is_err());
    }

    const GOLDEN_QNLI_PAIR: [i64; 32] = [
        0, 2264, 376, 88, 1370, 71, 5, 92, 7255, 21, 23960, 116, 2, 2, 1620, 9, 14, 183, 6, 5, 92, 7255, 23960, 154, 5,
        4665, 3497, 376, 88, 1370, 4, 2,
    ];

    #[test]
    fn real_sst2_and_mnli_featurise() {
        let Some(dir) = DataDir::for_tests("sst2") else { return };
        let tok = roberta(&dir);
        let dev = load_classification(&dir, TaskName::Sst2, Split::Dev).unwrap().examples;
        let data = PromptFeaturiser::new(&tok, TaskName::Sst2).unwrap().featurise_all(&dev, 256).unwrap();
        assert_eq!((data.examples.len(), data.truncated), (872, 0));
        assert_eq!(data.examples[0].input_ids, GOLDEN_SST2);
        let Some(dir) = DataDir::for_tests("mnli") else { return };
        let k = load_classification(&dir, TaskName::Mnli, Split::KshotTrain).unwrap().examples;
        let data = PromptFeaturiser::new(&tok, TaskName::Mnli).unwrap().featurise_all(&k, 256).unwrap();
        assert_eq!(data.examples[0].input_ids, GOLDEN_MNLI);
        assert_eq!(data.label_word_ids, GOLDEN_MNLI_WORDS);
    }
}
