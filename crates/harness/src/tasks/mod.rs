//! The paper's tasks: which files each (task, split) reads, raw examples, and featurisation.
//!
//! Li et al. 2022 fine-tune GPT-2 on table-to-text generation (E2E, DART) and RoBERTa on sentence
//! classification (SST-2, QNLI, MNLI, QQP); paper.md "Data formats" and "Hyperparameters" describe both.
//!
//! - [`e2e`], [`dart`]: raw generation data — one [`GenExample`] per reference for training, one
//!   [`GenSegment`] per table (all its references) for evaluation.
//! - [`causal`]: GPT-2 featurisation `" {table} <|endoftext|> {text} <|endoftext|>"`, loss on the text only.
//! - [`glue`]: raw classification data ([`glue::ClsExample`]) from GLUE TSVs and the labelled JSON subsets.
//! - [`prompt`]: RoBERTa featurisation as text infilling (LM-BFF templates) or for a classification head.
//!
//! Every file is looked up in the data directory ([`models::DataDir`]); a missing file is an error that
//! names the expected path and says how to get it. Malformed rows are errors naming file and line (or
//! record); nothing is skipped silently.

pub mod causal;
pub mod dart;
pub mod e2e;
pub mod glue;
pub mod prompt;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use models::data::CATALOGUE;
use models::{DataDir, DataError, ModelError};

/// Errors of task loading and featurisation; each names the file (and line or record) at fault and what
/// to do.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A task name that is not one of the paper's.
    #[error("unknown task `{name}`; known tasks: e2e, dart, sst2, qnli, mnli, qqp")]
    UnknownTask {
        /// What was asked for.
        name: String,
    },
    /// A split name that no task has.
    #[error(
        "unknown split `{name}`; known splits: train, dev, test, dev_matched, dev_mismatched, subset-train, \
         subset-dev, kshot-train, kshot-dev"
    )]
    UnknownSplit {
        /// What was asked for.
        name: String,
    },
    /// A split this task does not have.
    #[error("task `{task}` has no split `{split}`: {why}; its splits are {supported}")]
    UnsupportedSplit {
        /// The task.
        task: TaskName,
        /// The split asked for.
        split: Split,
        /// Why not (e.g. GLUE test labels are not public).
        why: &'static str,
        /// The task's splits, comma-separated.
        supported: String,
    },
    /// A generation loader asked for a classification task or vice versa.
    #[error("task `{task}` is a {actual} task, not a {wanted} task; use the {actual} loader")]
    WrongKind {
        /// The task.
        task: TaskName,
        /// Its kind.
        actual: TaskKind,
        /// The kind the caller wanted.
        wanted: TaskKind,
    },
    /// None of the files a (task, split) can read is in the data directory.
    #[error(
        "{task} {split}: no data file found (looked for {looked}). {source}. `dpft data status` lists what the \
         data directory has{hint}",
        looked = .expected.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    MissingData {
        /// The task.
        task: TaskName,
        /// The split.
        split: Split,
        /// Every path looked for, in order of preference.
        expected: Vec<PathBuf>,
        /// The data directory's error for the preferred catalogued file (says how to fetch it).
        source: DataError,
        /// Extra advice (e.g. the labelled subset as a stand-in), empty or starting with "; ".
        hint: String,
    },
    /// A file that cannot be read.
    #[error("cannot read {}: {source}; check that it is a readable file (`dpft data status`)", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row, record or entry that does not have the expected format.
    #[error("{}, {at}: {message}; fix the file or fetch it again with `make data` (which checks its checksum)", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where in it: `line 12`, `record "17"`, `entry 3 (line 40)`.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer failed on a text.
    #[error("{context}: {source}")]
    Tokenizer {
        /// What was being tokenised.
        context: String,
        /// The tokenizer's error.
        source: ModelError,
    },
    /// The tokenizer is not the one the task needs (special token missing or with another id, a label
    /// word that is not one token).
    #[error("tokenizer {}: {message}", path.display())]
    WrongTokenizer {
        /// The tokenizer's file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// A pair task's example without a second sentence.
    #[error("example {index} has no second sentence, which the {task} template needs; load it with the {task} loader")]
    NotAPair {
        /// The task whose template was applied.
        task: TaskName,
        /// The example's index in its split.
        index: usize,
    },
    /// An example that cannot fit `max_length` even with its sentences truncated to nothing.
    #[error(
        "example {index}: the template alone takes {needed} tokens, more than max_length {max_length}; \
         raise max_length"
    )]
    TemplateTooLong {
        /// The example's index in its split.
        index: usize,
        /// Tokens of the template without any sentence tokens.
        needed: usize,
        /// The limit.
        max_length: usize,
    },
}

/// Generation (GPT-2, table to text) or classification (RoBERTa).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Table-to-text generation: E2E, DART.
    Generation,
    /// Sentence(-pair) classification: SST-2, QNLI, MNLI, QQP.
    Classification,
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Generation => "generation",
            Self::Classification => "classification",
        })
    }
}

/// The paper's tasks (paper.md "Tables", "Hyperparameters").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskName {
    /// E2E NLG challenge, restaurant tables to text.
    E2e,
    /// DART v1.1.1, open-domain triples to text.
    Dart,
    /// GLUE SST-2, binary sentiment.
    Sst2,
    /// GLUE QNLI, question/sentence entailment.
    Qnli,
    /// GLUE MNLI, three-way entailment.
    Mnli,
    /// GLUE QQP, question paraphrase.
    Qqp,
}

impl TaskName {
    /// Every task, in the paper's order.
    pub const ALL: [TaskName; 6] = [Self::E2e, Self::Dart, Self::Sst2, Self::Qnli, Self::Mnli, Self::Qqp];

    /// The command-line name (also the dataset's folder in the data directory).
    pub fn name(self) -> &'static str {
        match self {
            Self::E2e => "e2e",
            Self::Dart => "dart",
            Self::Sst2 => "sst2",
            Self::Qnli => "qnli",
            Self::Mnli => "mnli",
            Self::Qqp => "qqp",
        }
    }

    /// Generation or classification.
    pub fn kind(self) -> TaskKind {
        match self {
            Self::E2e | Self::Dart => TaskKind::Generation,
            _ => TaskKind::Classification,
        }
    }

    /// The splits this task has, with the files each reads (paths inside the data directory, in order of
    /// preference: the first present is read).
    ///
    /// - E2E: `trainset.csv`, `devset.csv`, `testset_w_refs.csv` (the official release).
    /// - DART: `dart-v1.1.1-full-{train,dev,test}.json`, else the `.xml` of the same split (the two agree
    ///   entry for entry; the test JSON the reference code reads is not in every data directory).
    /// - GLUE: `train.tsv` and `dev.tsv` (MNLI: `dev_matched.tsv`, `dev_mismatched.tsv`). SST-2's `test`
    ///   is `test-labeled.tsv` (GLUE test sentences with the original SST labels, a third party's
    ///   addition); the other GLUE test sets have no public labels. `subset-{train,dev}` are the labelled
    ///   ~9k/1k JSON subsets of GLUE train (miniature runs only, not the paper's splits), `kshot-{train,dev}`
    ///   the LM-BFF 16-shot seed-13 TSVs.
    pub fn splits(self) -> &'static [(Split, &'static [&'static str])] {
        use Split::*;
        match self {
            Self::E2e => {
                &[(Train, &["e2e/trainset.csv"]), (Dev, &["e2e/devset.csv"]), (Test, &["e2e/testset_w_refs.csv"])]
            }
            Self::Dart => &[
                (Train, &["dart/dart-v1.1.1-full-train.json", "dart/dart-v1.1.1-full-train.xml"]),
                (Dev, &["dart/dart-v1.1.1-full-dev.json", "dart/dart-v1.1.1-full-dev.xml"]),
                (Test, &["dart/dart-v1.1.1-full-test.json", "dart/dart-v1.1.1-full-test.xml"]),
            ],
            Self::Sst2 => &[(Train, &["sst2/train.tsv"]), (Dev, &["sst2/dev.tsv"]), (Test, &["sst2/test-labeled.tsv"])],
            Self::Qnli => &[
                (Train, &["qnli/train.tsv"]),
                (Dev, &["qnli/dev.tsv"]),
                (SubsetTrain, &["qnli/subset-train.json"]),
                (SubsetDev, &["qnli/subset-dev.json"]),
            ],
            Self::Mnli => &[
                (Train, &["mnli/train.tsv"]),
                (DevMatched, &["mnli/dev_matched.tsv"]),
                (DevMismatched, &["mnli/dev_mismatched.tsv"]),
                (SubsetTrain, &["mnli/subset-train.json"]),
                (SubsetDev, &["mnli/subset-dev.json"]),
                (KshotTrain, &["mnli/kshot-16-13-train.tsv"]),
                (KshotDev, &["mnli/kshot-16-13-dev_matched.tsv"]),
            ],
            Self::Qqp => &[
                (Train, &["qqp/train.tsv"]),
                (Dev, &["qqp/dev.tsv"]),
                (SubsetTrain, &["qqp/subset-train.json"]),
                (SubsetDev, &["qqp/subset-dev.json"]),
                (KshotTrain, &["qqp/kshot-16-13-train.tsv"]),
                (KshotDev, &["qqp/kshot-16-13-dev.tsv"]),
            ],
        }
    }

    /// The files `split` reads, in order of preference; an error when the task has no such split.
    pub fn files(self, split: Split) -> Result<&'static [&'static str], TaskError> {
        if let Some((_, files)) = self.splits().iter().find(|(s, _)| *s == split) {
            return Ok(files);
        }
        let why = match (self, split) {
            (Self::Mnli, Split::Dev) => "MNLI has two dev sets; pick dev_matched or dev_mismatched",
            (Self::Qnli | Self::Mnli | Self::Qqp, Split::Test) => {
                "GLUE test labels are not public; the paper reports dev accuracy"
            }
            _ => "the data has no such split",
        };
        Err(TaskError::UnsupportedSplit {
            task: self,
            split,
            why,
            supported: self.splits().iter().map(|(s, _)| s.name()).collect::<Vec<_>>().join(", "),
        })
    }

    /// The path of the file `split` reads: the first of [`files`](Self::files) present in `data`, else an
    /// error naming every path looked for and how to fetch the preferred one.
    pub fn locate(self, data: &DataDir, split: Split) -> Result<PathBuf, TaskError> {
        let files = self.files(split)?;
        let mut first_err = None;
        for rel in files {
            match data.require(rel) {
                Ok(path) => return Ok(path),
                Err(e) => {
                    // Prefer the error of a catalogued file: it names the official source.
                    let catalogued = CATALOGUE.iter().flat_map(|d| d.files).any(|f| f.path == *rel);
                    if first_err.is_none() || (catalogued && !first_err.as_ref().is_some_and(|(c, _)| *c)) {
                        first_err = Some((catalogued, e));
                    }
                }
            }
        }
        let source = first_err.map(|(_, e)| e).expect("every split lists at least one file");
        let hint = match split {
            Split::Train | Split::Dev if self.splits().iter().any(|(s, _)| *s == Split::SubsetTrain) => {
                let subset = if split == Split::Train { Split::SubsetTrain } else { Split::SubsetDev };
                let present = self.files(subset).is_ok_and(|f| data.root().join(f[0]).is_file());
                if present {
                    format!(
                        "; the labelled subset is there as split `{}` (miniature runs only, not the paper's split)",
                        subset.name()
                    )
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        Err(TaskError::MissingData {
            task: self,
            split,
            expected: files.iter().map(|f| data.root().join(f)).collect(),
            source,
            hint,
        })
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskName {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| TaskError::UnknownTask { name: s.to_string() })
    }
}

/// A split of a task's data. Which ones a task has: [`TaskName::splits`]. In run configs it is its
/// command-line name (`task.eval_split: dev_matched`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Split {
    /// The training set.
    Train,
    /// The development (validation) set.
    Dev,
    /// The test set.
    Test,
    /// MNLI's matched dev set (same genres as train).
    DevMatched,
    /// MNLI's mismatched dev set (other genres).
    DevMismatched,
    /// The labelled ~9k subset of GLUE train (QNLI, MNLI, QQP), for miniature runs.
    SubsetTrain,
    /// The labelled 1k subset next to it.
    SubsetDev,
    /// LM-BFF's 16-shot training sample (seed 13).
    KshotTrain,
    /// LM-BFF's 16-shot dev sample (seed 13).
    KshotDev,
}

impl Split {
    /// Every split.
    pub const ALL: [Split; 9] = [
        Self::Train,
        Self::Dev,
        Self::Test,
        Self::DevMatched,
        Self::DevMismatched,
        Self::SubsetTrain,
        Self::SubsetDev,
        Self::KshotTrain,
        Self::KshotDev,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Dev => "dev",
            Self::Test => "test",
            Self::DevMatched => "dev_matched",
            Self::DevMismatched => "dev_mismatched",
            Self::SubsetTrain => "subset-train",
            Self::SubsetDev => "subset-dev",
            Self::KshotTrain => "kshot-train",
            Self::KshotDev => "kshot-dev",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = TaskError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| TaskError::UnknownSplit { name: s.to_string() })
    }
}

impl TryFrom<String> for Split {
    type Error = TaskError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Split> for &'static str {
    fn from(s: Split) -> Self {
        s.name()
    }
}

/// One training example of a generation task: a linearised table and one reference text
/// (paper.md "Data formats": one example per reference).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenExample {
    /// The linearised table (E2E: cleaned `mr`; DART: `subj : pred : obj | …`).
    pub source: String,
    /// One reference text.
    pub target: String,
}

/// One evaluation segment of a generation task: a table and all its references (multi-reference
/// metrics compare one generation against all of them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenSegment {
    /// The linearised table.
    pub source: String,
    /// Its reference texts, in file order.
    pub references: Vec<String>,
}

/// Groups examples by identical source, segments in order of first appearance, references in file order.
/// (In E2E dev and test every table's rows are consecutive, so this is also the official metrics'
/// grouping of consecutive rows.)
pub fn group_segments(examples: &[GenExample]) -> Vec<GenSegment> {
    let mut index = std::collections::HashMap::<&str, usize>::new();
    let mut segments: Vec<GenSegment> = Vec::new();
    for ex in examples {
        let i = *index.entry(ex.source.as_str()).or_insert_with(|| {
            segments.push(GenSegment { source: ex.source.clone(), references: Vec::new() });
            segments.len() - 1
        });
        segments[i].references.push(ex.target.clone());
    }
    segments
}

/// One example per reference of each segment, in order.
pub fn flatten_segments(segments: &[GenSegment]) -> Vec<GenExample> {
    segments
        .iter()
        .flat_map(|s| s.references.iter().map(|r| GenExample { source: s.source.clone(), target: r.clone() }))
        .collect()
}

/// A generation split: the file read, its training examples and its evaluation segments.
#[derive(Clone, Debug)]
pub struct GenData {
    /// The file read.
    pub path: PathBuf,
    /// One example per reference, in file order.
    pub examples: Vec<GenExample>,
    /// One segment per table, in order of first appearance.
    pub segments: Vec<GenSegment>,
}

/// Loads a generation split (E2E, DART) from the data directory.
pub fn load_generation(data: &DataDir, task: TaskName, split: Split) -> Result<GenData, TaskError> {
    if task.kind() != TaskKind::Generation {
        return Err(TaskError::WrongKind { task, actual: task.kind(), wanted: TaskKind::Generation });
    }
    let path = task.locate(data, split)?;
    match task {
        TaskName::E2e => {
            let examples = e2e::read_csv(&path)?;
            let segments = group_segments(&examples);
            Ok(GenData { path, examples, segments })
        }
        _ => {
            let segments = dart::read(&path)?;
            let examples = flatten_segments(&segments);
            Ok(GenData { path, examples, segments })
        }
    }
}

/// Loads a classification split (SST-2, QNLI, MNLI, QQP) from the data directory.
pub fn load_classification(data: &DataDir, task: TaskName, split: Split) -> Result<glue::ClsData, TaskError> {
    if task.kind() != TaskKind::Classification {
        return Err(TaskError::WrongKind { task, actual: task.kind(), wanted: TaskKind::Classification });
    }
    let path = task.locate(data, split)?;
    let examples = glue::read(&path, task)?;
    Ok(glue::ClsData { path, examples })
}

/// Reads a whole file as UTF-8.
pub(crate) fn read_text(path: &Path) -> Result<String, TaskError> {
    let bytes = std::fs::read(path).map_err(|source| TaskError::Io { path: path.to_path_buf(), source })?;
    String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        malformed(path, format!("line {line}"), "not valid UTF-8")
    })
}

/// `f` over `items` on every core (scoped threads, contiguous chunks), results in input order; the first
/// error in input order wins. Tokenising a large split one text at a time is the slow part of loading.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, TaskError> + Sync,
) -> Result<Vec<R>, TaskError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    if threads <= 1 || items.len() < 256 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    let parts: Vec<Result<Vec<R>, TaskError>> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            items.chunks(chunk).map(|c| scope.spawn(move || c.iter().map(f).collect::<Result<Vec<R>, _>>())).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

pub(crate) fn malformed(path: &Path, at: impl Into<String>, message: impl Into<String>) -> TaskError {
    TaskError::Malformed { path: path.to_path_buf(), at: at.into(), message: message.into() }
}

/// Helpers for tests: the shared data directory and small temporary files.
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::PathBuf;

    /// A file with `content` in a fresh temporary folder (removed when the value drops).
    pub struct TempFile {
        dir: PathBuf,
        pub path: PathBuf,
    }

    impl TempFile {
        pub fn new(name: &str, content: &str) -> Self {
            static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("dpft-tasks-test-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            Self { dir, path }
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in TaskName::ALL {
            assert_eq!(t.name().parse::<TaskName>().unwrap(), t);
            assert_eq!(t.to_string(), t.name());
        }
        for s in Split::ALL {
            assert_eq!(s.name().parse::<Split>().unwrap(), s);
        }
        let e = "cola".parse::<TaskName>().unwrap_err().to_string();
        assert!(e.contains("cola") && e.contains("e2e, dart, sst2"), "{e}");
        assert!("validation".parse::<Split>().is_err());
    }

    #[test]
    fn splits_are_checked() {
        let e = TaskName::Mnli.files(Split::Dev).unwrap_err().to_string();
        assert!(e.contains("dev_matched or dev_mismatched"), "{e}");
        let e = TaskName::Qnli.files(Split::Test).unwrap_err().to_string();
        assert!(e.contains("not public") && e.contains("subset-train"), "{e}");
        assert!(TaskName::E2e.files(Split::SubsetTrain).is_err());
        for t in TaskName::ALL {
            for (_, files) in t.splits() {
                assert!(!files.is_empty());
                assert!(files.iter().all(|f| f.starts_with(&format!("{}/", t.name()))), "{files:?}");
            }
        }
    }

    #[test]
    fn missing_file_names_the_path_and_what_to_do() {
        let dir = DataDir::resolve_from(Some(Path::new("/nonexistent-dpft-data")), None);
        let e = load_generation(&dir, TaskName::E2e, Split::Train).unwrap_err().to_string();
        assert!(e.contains("/nonexistent-dpft-data/e2e/trainset.csv"), "{e}");
        assert!(e.contains("make data") && e.contains("dpft data status"), "{e}");
        // DART test: both candidates named, the catalogued one's source given.
        let e = load_generation(&dir, TaskName::Dart, Split::Test).unwrap_err().to_string();
        assert!(e.contains("dart-v1.1.1-full-test.json") && e.contains("dart-v1.1.1-full-test.xml"), "{e}");
        assert!(e.contains("Yale-LILY/dart"), "{e}");
        let e = load_classification(&dir, TaskName::E2e, Split::Train).unwrap_err().to_string();
        assert!(e.contains("generation task"), "{e}");
    }

    #[test]
    fn missing_glue_train_points_at_the_subset() {
        // A data directory whose qnli/ has the labelled subset but not the full train.tsv.
        let root = std::env::temp_dir().join(format!("dpft-qnli-without-train-{}", std::process::id()));
        std::fs::create_dir_all(root.join("qnli")).unwrap();
        std::fs::write(root.join("qnli/subset-train.json"), "[]").unwrap();
        let dir = DataDir::resolve_from(Some(&root), None);
        let e = load_classification(&dir, TaskName::Qnli, Split::Train).unwrap_err().to_string();
        std::fs::remove_dir_all(&root).unwrap();
        assert!(e.contains("qnli/train.tsv") && e.contains("split `subset-train`"), "{e}");
    }

    #[test]
    fn par_map_keeps_order_and_first_error() {
        let items: Vec<usize> = (0..1000).collect();
        assert_eq!(par_map(&items, |&i| Ok(i * 2)).unwrap(), items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let e =
            par_map(
                &items,
                |&i| if i % 300 == 299 { Err(TaskError::UnknownTask { name: i.to_string() }) } else { Ok(i) },
            );
        assert!(e.unwrap_err().to_string().contains("`299`"));
    }

    #[test]
    fn grouping_keeps_first_appearance_order() {
        let ex = |s: &str, t: &str| GenExample { source: s.into(), target: t.into() };
        let exs = [ex("a", "1"), ex("b", "2"), ex("a", "3")];
        let segs = group_segments(&exs);
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].references, ["1", "3"]);
        assert_eq!(segs[1].references, ["2"]);
        assert_eq!(flatten_segments(&segs).len(), 3);
    }
}
