//! Causal-LM featurisation of generation examples for GPT-2 (paper.md "Data formats", "Hyperparameters").
//!
//! An example is the string `" {source} <|endoftext|> {target} <|endoftext|>"`, tokenised as two parts,
//! prompt `" {source} <|endoftext|>"` and target `" {target} <|endoftext|>"`, without any special tokens
//! added by the tokenizer (`<|endoftext|>` is written in the text and must map to id 50256). The two parts
//! tokenise exactly as the whole string does, because the tokenizer splits at the special token first.
//! Labels are the input ids on the target part and −100 on the prompt part (the separator
//! `<|endoftext|>` included), so the loss — the mean over target tokens — is taken on
//! `{target} <|endoftext|>` only; labels are aligned with the inputs (the model's loss shifts them).
//!
//! Examples longer than `max_length` tokens in all are dropped and counted (E2E: 100, DART: 120), as the
//! reference code does; none is truncated.

use std::collections::HashMap;

use models::TextTokenizer;

use super::{par_map, GenExample, TaskError};

/// GPT-2's `<|endoftext|>`, the separator and end of every example.
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// Its id in GPT-2's vocabulary (the tests' check of the featuriser; the featuriser asks the tokenizer).
#[cfg(test)]
pub const END_OF_TEXT_ID: i64 = 50256;
/// The label of positions without loss.
pub const IGNORE_INDEX: i64 = -100;

/// One featurised example: token ids and aligned labels (−100 on the prompt).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CausalExample {
    /// `[T]` token ids of prompt then target.
    pub input_ids: Vec<i64>,
    /// `[T]` labels: −100 on the prompt, the input id on the target.
    pub labels: Vec<i64>,
}

#[cfg(test)]
impl CausalExample {
    /// Tokens of the prompt (those with label −100).
    pub fn prompt_len(&self) -> usize {
        self.labels.iter().take_while(|&&l| l == IGNORE_INDEX).count()
    }
}

/// A featurised split: the examples that fit and how many did not.
#[derive(Clone, Debug)]
pub struct CausalData {
    /// Examples of at most `max_length` tokens, in input order.
    pub examples: Vec<CausalExample>,
    /// Examples dropped for being longer than `max_length`.
    pub dropped: usize,
}

/// Featurises generation examples with a GPT-2 tokenizer.
pub struct CausalFeaturiser<'a> {
    tokenizer: &'a TextTokenizer,
}

impl<'a> CausalFeaturiser<'a> {
    /// Checks that the tokenizer has `<|endoftext|>` as one special token (50256 in GPT-2's; another id
    /// in a small BPE vocabulary trained for the mini reproduction).
    pub fn new(tokenizer: &'a TextTokenizer) -> Result<Self, TaskError> {
        let wrong = |message: String| TaskError::WrongTokenizer { path: tokenizer.source().to_path_buf(), message };
        let Some(id) = tokenizer.token_to_id(END_OF_TEXT) else {
            return Err(wrong(format!(
                "no {END_OF_TEXT} token: use GPT-2's tokenizer (tokenizers/gpt2) or one trained with it"
            )));
        };
        let this = Self { tokenizer };
        if this.encode(END_OF_TEXT)? != [id] {
            return Err(wrong(format!(
                "the text {END_OF_TEXT} does not encode to the single id {id}; is it registered as a special token?"
            )));
        }
        Ok(this)
    }

    fn encode(&self, text: &str) -> Result<Vec<i64>, TaskError> {
        self.tokenizer
            .encode(text, false)
            .map_err(|source| TaskError::Tokenizer { context: format!("tokenising {text:?}"), source })
    }

    /// The prompt the model continues at evaluation: ids of `" {source} <|endoftext|>"`.
    pub fn prompt_ids(&self, source: &str) -> Result<Vec<i64>, TaskError> {
        self.encode(&format!(" {source} {END_OF_TEXT}"))
    }

    /// Ids of the target part `" {target} <|endoftext|>"`.
    pub fn target_ids(&self, target: &str) -> Result<Vec<i64>, TaskError> {
        self.encode(&format!(" {target} {END_OF_TEXT}"))
    }

    /// One example, whatever its length.
    pub fn featurise(&self, example: &GenExample) -> Result<CausalExample, TaskError> {
        Ok(join(self.prompt_ids(&example.source)?, self.target_ids(&example.target)?))
    }

    /// Every example of at most `max_length` tokens; the others are counted in `dropped`. Prompts are
    /// tokenised once per distinct source; the work is spread over the machine's cores.
    pub fn featurise_all(&self, examples: &[GenExample], max_length: usize) -> Result<CausalData, TaskError> {
        let mut sources: Vec<&str> = Vec::new();
        let mut source_index: HashMap<&str, usize> = HashMap::new();
        for ex in examples {
            source_index.entry(ex.source.as_str()).or_insert_with(|| {
                sources.push(&ex.source);
                sources.len() - 1
            });
        }
        let prompts = par_map(&sources, |s| self.prompt_ids(s))?;
        let targets = par_map(examples, |ex| self.target_ids(&ex.target))?;
        let mut kept = Vec::with_capacity(examples.len());
        let mut dropped = 0;
        for (ex, target) in examples.iter().zip(targets) {
            let prompt = &prompts[source_index[ex.source.as_str()]];
            if prompt.len() + target.len() > max_length {
                dropped += 1;
            } else {
                kept.push(join(prompt.clone(), target));
            }
        }
        Ok(CausalData { examples: kept, dropped })
    }
}

fn join(prompt: Vec<i64>, target: Vec<i64>) -> CausalExample {
    let mut labels = vec![IGNORE_INDEX; prompt.len()];
    labels.extend_from_slice(&target);
    let mut input_ids = prompt;
    input_ids.extend_from_slice(&target);
    CausalExample { input_ids, labels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{load_generation, Split, TaskName};
    use models::DataDir;

    fn gpt2(dir: &DataDir) -> TextTokenizer {
        TextTokenizer::from_dir(&dir.root().join("tokenizers/gpt2"), "gpt2").unwrap()
    }

    /// Golden ids from Hugging Face's slow (pure Python) GPT-2 tokenizer, transformers 4.44.2:
    /// ```text
    /// from transformers import GPT2Tokenizer
    /// tok = GPT2Tokenizer("tokenizers/gpt2/vocab.json", "tokenizers/gpt2/merges.txt")
    /// tok.encode(" name : Aromi | area : city centre <|endoftext|>", add_special_tokens=False)
    /// tok.encode(" Aromi is nice. <|endoftext|>", add_special_tokens=False)
    /// ```
    #[test]
    fn featurises_one_example_exactly() {
        let Some(dir) = DataDir::for_tests("tokenizers/gpt2") else { return };
        let tok = gpt2(&dir);
        let f = CausalFeaturiser::new(&tok).unwrap();
        let ex = GenExample { source: "name : Aromi | area : city centre".into(), target: "Aromi is nice.".into() };
        let c = f.featurise(&ex).unwrap();
        let whole = tok.encode(&format!(" {} {END_OF_TEXT} {} {END_OF_TEXT}", ex.source, ex.target), false).unwrap();
        assert_eq!(c.input_ids, whole, "two parts tokenise as the whole string");
        let p = f.prompt_ids(&ex.source).unwrap();
        assert_eq!(c.prompt_len(), p.len());
        assert_eq!(*p.last().unwrap(), END_OF_TEXT_ID);
        assert_eq!(*c.input_ids.last().unwrap(), END_OF_TEXT_ID);
        assert_eq!(c.input_ids.iter().filter(|&&i| i == END_OF_TEXT_ID).count(), 2);
        assert!(c.labels[..p.len()].iter().all(|&l| l == IGNORE_INDEX));
        assert_eq!(c.labels[p.len()..], c.input_ids[p.len()..]);
        assert_eq!(p, GOLDEN_PROMPT);
        assert_eq!(c.input_ids[p.len()..], GOLDEN_TARGET);
    }

    // " name : Aromi | area : city centre <|endoftext|>" and " Aromi is nice. <|endoftext|>"
    const GOLDEN_PROMPT: [i64; 12] = [1438, 1058, 317, 398, 72, 930, 1989, 1058, 1748, 7372, 220, 50256];
    const GOLDEN_TARGET: [i64; 8] = [317, 398, 72, 318, 3621, 13, 220, 50256];

    #[test]
    fn wrong_tokenizer_is_refused() {
        let Some(dir) = DataDir::for_tests("tokenizers/roberta-base") else { return };
        let tok = TextTokenizer::from_dir(&dir.root().join("tokenizers/roberta-base"), "roberta").unwrap();
        let e = CausalFeaturiser::new(&tok).err().unwrap().to_string();
        assert!(e.contains("does not encode to the single id"), "{e}");
    }

    #[test]
    fn e2e_train_drops_long_examples() {
        let Some(dir) = DataDir::for_tests("e2e") else { return };
        if !dir.root().join("tokenizers/gpt2").is_dir() {
            models::fixtures::missing::<()>("tokenizers/gpt2 missing in the data directory");
            return;
        }
        let tok = gpt2(&dir);
        let f = CausalFeaturiser::new(&tok).unwrap();
        let start = std::time::Instant::now();
        let train = load_generation(&dir, TaskName::E2e, Split::Train).unwrap();
        let data = f.featurise_all(&train.examples, 100).unwrap();
        eprintln!("E2E train parse + tokenise: {:.2?}", start.elapsed());
        assert_eq!(data.examples.len() + data.dropped, 42_061);
        assert_eq!(data.dropped, DROPPED_AT_100);
        assert!(data.examples.iter().all(|e| e.input_ids.len() <= 100 && e.labels.len() == e.input_ids.len()));
        assert_eq!(data.examples[0], f.featurise(&train.examples[0]).unwrap());
    }

    /// The reference code's filter, `len(tok.tokenize(" {src} <|endoftext|> {ref} <|endoftext|>")) > 100`
    /// with the same slow tokenizer (transformers 4.44.2) over `trainset.csv`, sources cleaned as in
    /// [`crate::tasks::e2e::clean_mr`], drops 11 of 42,061 (the longest has 116 tokens).
    const DROPPED_AT_100: usize = 11;
}
