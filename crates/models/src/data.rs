//! The data directory and the catalogue of datasets and tokenizer files dpft reads.
//!
//! One setting says where data lives: `--data-dir`, else the `DPFT_DATA_DIR` environment variable, else
//! `data/` under the current directory (the repository's `data/`, gitignored, when run from its root).
//! Inside it every dataset has a folder of its own (`e2e/`, `dart/`, `sst2/`, …, `tokenizers/gpt2/`) with
//! the files under the names of their official releases. [`CATALOGUE`] lists each file with its official
//! source, so that `dpft data sources` and `make data` can say where it comes from and fetch it, and so that
//! a loader that misses a file can say exactly what to do.

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the data directory.
pub const DATA_DIR_ENV: &str = "DPFT_DATA_DIR";

/// One file of a dataset, as found in its official release.
#[derive(Clone, Copy, Debug)]
pub struct DataFile {
    /// Path inside the data directory, e.g. `e2e/trainset.csv`.
    pub path: &'static str,
    /// Where the official release serves it (a file, or a zip archive holding it).
    pub url: &'static str,
    /// The member of the zip archive at `url` that is this file; `None` when `url` is the file itself.
    pub archive_member: Option<&'static str>,
    /// SHA-256 of the file, where the source is pinned to a commit and the bytes are known.
    pub sha256: Option<&'static str>,
}

/// A dataset (or a tokenizer's files) with its folder in the data directory.
#[derive(Clone, Copy, Debug)]
pub struct Dataset {
    /// Folder name inside the data directory and name used on the command line, e.g. `e2e`.
    pub name: &'static str,
    /// One line on what it is and its licence.
    pub description: &'static str,
    /// Its files. A dataset is usable when the files its task loader needs are present; several datasets
    /// (GLUE) are also usable through their labelled subsets when the full splits are absent.
    pub files: &'static [DataFile],
}

const fn file(path: &'static str, url: &'static str, sha256: Option<&'static str>) -> DataFile {
    DataFile { path, url, archive_member: None, sha256 }
}

const fn zipped(path: &'static str, url: &'static str, member: &'static str) -> DataFile {
    DataFile { path, url, archive_member: Some(member), sha256: None }
}

macro_rules! gh {
    ($repo:literal, $commit:literal, $path:literal) => {
        concat!("https://raw.githubusercontent.com/", $repo, "/", $commit, "/", $path)
    };
}

/// Every dataset and tokenizer dpft knows, with the official source of each file.
pub const CATALOGUE: &[Dataset] = &[
    Dataset {
        name: "e2e",
        description: "E2E NLG challenge (Novikova et al. 2017), restaurant tables to text; CC BY-SA 4.0",
        files: &[
            file(
                "e2e/trainset.csv",
                gh!("tuetschek/e2e-dataset", "ab0d967dd5729ce455ef14ba9ffafc456a335264", "trainset.csv"),
                Some("f27d48df45815288ab15619d47a79028c300fbb7f42e373668aba0b98c1d57c6"),
            ),
            file(
                "e2e/devset.csv",
                gh!("tuetschek/e2e-dataset", "ab0d967dd5729ce455ef14ba9ffafc456a335264", "devset.csv"),
                Some("fc26b78cdb849c80545f513b223d1e051138b43882eeb79e3eb153e689c864f9"),
            ),
            file(
                "e2e/testset_w_refs.csv",
                gh!("tuetschek/e2e-dataset", "ab0d967dd5729ce455ef14ba9ffafc456a335264", "testset_w_refs.csv"),
                Some("edc8db685e39bb9824d5bd70c18b1c9b0412d14b527aa960e2d1c8251ee15ccd"),
            ),
        ],
    },
    Dataset {
        name: "dart",
        description: "DART v1.1.1 (Nan et al. 2021), open-domain triples to text; MIT",
        files: &[
            file(
                "dart/dart-v1.1.1-full-train.json",
                gh!(
                    "Yale-LILY/dart",
                    "bb644b12ec1d0264f96a31145534b9a94f6ff5f5",
                    "data/v1.1.1/dart-v1.1.1-full-train.json"
                ),
                None,
            ),
            file(
                "dart/dart-v1.1.1-full-dev.json",
                gh!(
                    "Yale-LILY/dart",
                    "bb644b12ec1d0264f96a31145534b9a94f6ff5f5",
                    "data/v1.1.1/dart-v1.1.1-full-dev.json"
                ),
                Some("56606eac12baa7f0ddb81c61890f9f1a95bace4df8f8989852786358fe5d2b88"),
            ),
            file(
                "dart/dart-v1.1.1-full-test.xml",
                gh!(
                    "Yale-LILY/dart",
                    "bb644b12ec1d0264f96a31145534b9a94f6ff5f5",
                    "data/v1.1.1/dart-v1.1.1-full-test.xml"
                ),
                Some("4f6994d633030278798c114555549a13202780fe0d78ee2e7ac7dcce45a8e233"),
            ),
        ],
    },
    Dataset {
        name: "sst2",
        description: "GLUE SST-2 (Socher et al. 2013), binary sentiment",
        files: &[
            zipped("sst2/train.tsv", "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "SST-2/train.tsv"),
            zipped("sst2/dev.tsv", "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip", "SST-2/dev.tsv"),
        ],
    },
    Dataset {
        name: "qnli",
        description: "GLUE QNLI (Wang et al. 2018), question-answer entailment",
        files: &[
            zipped("qnli/train.tsv", "https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip", "QNLI/train.tsv"),
            zipped("qnli/dev.tsv", "https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip", "QNLI/dev.tsv"),
        ],
    },
    Dataset {
        name: "mnli",
        description: "GLUE MNLI (Williams et al. 2018), three-way entailment, matched and mismatched dev",
        files: &[
            zipped("mnli/train.tsv", "https://dl.fbaipublicfiles.com/glue/data/MNLI.zip", "MNLI/train.tsv"),
            zipped("mnli/dev_matched.tsv", "https://dl.fbaipublicfiles.com/glue/data/MNLI.zip", "MNLI/dev_matched.tsv"),
            zipped(
                "mnli/dev_mismatched.tsv",
                "https://dl.fbaipublicfiles.com/glue/data/MNLI.zip",
                "MNLI/dev_mismatched.tsv",
            ),
        ],
    },
    Dataset {
        name: "qqp",
        description: "GLUE QQP, Quora question-pair paraphrase",
        files: &[
            zipped("qqp/train.tsv", "https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip", "QQP/train.tsv"),
            zipped("qqp/dev.tsv", "https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip", "QQP/dev.tsv"),
        ],
    },
    Dataset {
        name: "tokenizers/gpt2",
        description: "GPT-2 byte-level BPE (OpenAI; MIT)",
        files: &[
            file(
                "tokenizers/gpt2/vocab.json",
                "https://huggingface.co/openai-community/gpt2/resolve/main/vocab.json",
                Some("196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
            ),
            file(
                "tokenizers/gpt2/merges.txt",
                "https://huggingface.co/openai-community/gpt2/resolve/main/merges.txt",
                Some("1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
            ),
            file(
                "tokenizers/gpt2/tokenizer.json",
                "https://huggingface.co/openai-community/gpt2/resolve/main/tokenizer.json",
                None,
            ),
        ],
    },
    Dataset {
        name: "tokenizers/roberta-base",
        description: "RoBERTa byte-level BPE (fairseq; MIT)",
        files: &[
            file(
                "tokenizers/roberta-base/vocab.json",
                "https://huggingface.co/FacebookAI/roberta-base/resolve/main/vocab.json",
                None,
            ),
            file(
                "tokenizers/roberta-base/merges.txt",
                "https://huggingface.co/FacebookAI/roberta-base/resolve/main/merges.txt",
                Some("1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
            ),
        ],
    },
    Dataset {
        name: "tokenizers/bert-base-uncased",
        description: "BERT uncased WordPiece, 30,522 tokens (Google; Apache-2.0)",
        files: &[
            file(
                "tokenizers/bert-base-uncased/vocab.txt",
                "https://huggingface.co/google-bert/bert-base-uncased/resolve/main/vocab.txt",
                Some("07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
            ),
            file(
                "tokenizers/bert-base-uncased/tokenizer.json",
                "https://huggingface.co/google-bert/bert-base-uncased/resolve/main/tokenizer.json",
                None,
            ),
        ],
    },
];

/// Where the data directory setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataDirSource {
    /// `--data-dir` on the command line.
    Flag,
    /// The `DPFT_DATA_DIR` environment variable.
    Env,
    /// The default, `data/` under the current directory.
    Default,
}

impl fmt::Display for DataDirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Flag => "--data-dir",
            Self::Env => DATA_DIR_ENV,
            Self::Default => "default",
        })
    }
}

/// Errors of data lookup.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The name is not in [`CATALOGUE`].
    #[error("unknown dataset `{name}`; known: {known}")]
    UnknownDataset {
        /// What was asked for.
        name: String,
        /// The catalogue's names, comma-separated.
        known: String,
    },
    /// A file a loader needs is not in the data directory.
    #[error(
        "{path} not found (data directory {root}, set by {source_}): run `make data` to fetch it from {url}, \
         or point --data-dir / {env} at a folder that has it",
        path = .path.display(), root = .root.display(), env = DATA_DIR_ENV
    )]
    MissingFile {
        /// The full path that was looked for.
        path: PathBuf,
        /// The data directory.
        root: PathBuf,
        /// Where the data directory setting came from.
        source_: DataDirSource,
        /// The official source of the file.
        url: &'static str,
    },
}

/// The resolved data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
    source: DataDirSource,
}

impl DataDir {
    /// Resolves the setting: the flag if given, else `DPFT_DATA_DIR` if set and non-empty, else `data/`.
    pub fn resolve(flag: Option<&Path>) -> Self {
        Self::resolve_from(flag, env::var_os(DATA_DIR_ENV).map(PathBuf::from))
    }

    /// [`resolve`](Self::resolve) with the environment variable's value given.
    pub fn resolve_from(flag: Option<&Path>, env_value: Option<PathBuf>) -> Self {
        match (flag, env_value) {
            (Some(p), _) => Self { root: p.to_path_buf(), source: DataDirSource::Flag },
            (None, Some(p)) if !p.as_os_str().is_empty() => Self { root: p, source: DataDirSource::Env },
            _ => Self { root: PathBuf::from("data"), source: DataDirSource::Default },
        }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the setting came from.
    pub fn source(&self) -> DataDirSource {
        self.source
    }

    /// The catalogue entry of a dataset by name (`e2e`, `tokenizers/gpt2`, …).
    pub fn dataset(name: &str) -> Result<&'static Dataset, DataError> {
        CATALOGUE.iter().find(|d| d.name == name).ok_or_else(|| DataError::UnknownDataset {
            name: name.to_string(),
            known: CATALOGUE.iter().map(|d| d.name).collect::<Vec<_>>().join(", "),
        })
    }

    /// The path of a catalogued file (e.g. `e2e/trainset.csv`) if it exists, else an error saying how to
    /// get it. Files outside the catalogue resolve against the directory without a source to name.
    pub fn require(&self, rel: &str) -> Result<PathBuf, DataError> {
        let path = self.root.join(rel);
        if path.is_file() {
            return Ok(path);
        }
        let url =
            CATALOGUE.iter().flat_map(|d| d.files).find(|f| f.path == rel).map_or("its official release", |f| f.url);
        Err(DataError::MissingFile { path, root: self.root.clone(), source_: self.source, url })
    }

    /// For each catalogued dataset, which of its files are present.
    pub fn status(&self) -> Vec<DatasetStatus> {
        CATALOGUE
            .iter()
            .map(|d| {
                let (present, missing) = d.files.iter().partition(|f| self.root.join(f.path).is_file());
                DatasetStatus { dataset: d, present, missing, folder_exists: self.root.join(d.name).is_dir() }
            })
            .collect()
    }

    /// The data directory for tests: `DPFT_DATA_DIR` if set (`make test` sets it to `../shared/data` when
    /// that exists), else `data/` at the workspace root. When neither has `dataset` the test fails if
    /// fixtures are required, else is recorded as skipped and `None` comes back ([`crate::fixtures`]).
    pub fn for_tests(dataset: &str) -> Option<Self> {
        Self::find_for_tests(dataset).map_or_else(|reason| crate::fixtures::missing(&reason), Some)
    }

    /// [`for_tests`](Self::for_tests) without the side effects: the folder, or why there is none.
    pub fn find_for_tests(dataset: &str) -> Result<Self, String> {
        let workspace_data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let dir = match env::var_os(DATA_DIR_ENV) {
            Some(p) if !p.is_empty() => Self { root: PathBuf::from(p), source: DataDirSource::Env },
            _ => Self { root: workspace_data, source: DataDirSource::Default },
        };
        if dir.root.join(dataset).is_dir() {
            Ok(dir)
        } else {
            Err(format!(
                "dataset `{dataset}` not found in {} ({}); set {DATA_DIR_ENV} or run `make data`",
                dir.root.display(),
                dir.source
            ))
        }
    }
}

/// Which files of one dataset are present in a data directory.
#[derive(Debug)]
pub struct DatasetStatus {
    /// The catalogue entry.
    pub dataset: &'static Dataset,
    /// Files found.
    pub present: Vec<&'static DataFile>,
    /// Files not found.
    pub missing: Vec<&'static DataFile>,
    /// Whether the dataset's folder exists at all (it may hold other files, such as labelled subsets).
    pub folder_exists: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_default() {
        let flag = PathBuf::from("/f");
        let env = Some(PathBuf::from("/e"));
        assert_eq!(DataDir::resolve_from(Some(&flag), env.clone()).source(), DataDirSource::Flag);
        assert_eq!(DataDir::resolve_from(Some(&flag), env.clone()).root(), Path::new("/f"));
        assert_eq!(DataDir::resolve_from(None, env).root(), Path::new("/e"));
        let empty = DataDir::resolve_from(None, Some(PathBuf::new()));
        assert_eq!((empty.root(), empty.source()), (Path::new("data"), DataDirSource::Default));
        assert_eq!(DataDir::resolve_from(None, None).root(), Path::new("data"));
    }

    #[test]
    fn catalogue_is_consistent() {
        let mut paths = std::collections::HashSet::new();
        for d in CATALOGUE {
            assert!(!d.files.is_empty(), "{}", d.name);
            for f in d.files {
                assert!(f.path.starts_with(&format!("{}/", d.name)), "{} outside {}", f.path, d.name);
                assert!(paths.insert(f.path), "{} listed twice", f.path);
                assert!(f.url.starts_with("https://"), "{}", f.url);
                if let Some(h) = f.sha256 {
                    assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()), "{}", f.path);
                }
                assert!(!(f.archive_member.is_some() && f.sha256.is_some()), "{}", f.path);
            }
        }
    }

    #[test]
    fn missing_file_error_says_what_to_do() {
        let dir = DataDir::resolve_from(Some(Path::new("/nonexistent-dpft-data")), None);
        let err = dir.require("e2e/trainset.csv").unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dpft-data/e2e/trainset.csv"), "{err}");
        assert!(err.contains("make data") && err.contains("tuetschek/e2e-dataset"), "{err}");
        assert!(err.contains("--data-dir"), "{err}");
        assert!(matches!(DataDir::dataset("nope"), Err(DataError::UnknownDataset { .. })));
        assert_eq!(DataDir::dataset("e2e").unwrap().files.len(), 3);
    }

    #[test]
    fn real_data_directory_matches_the_catalogue() {
        // Data-dependent: skipped with a printed reason when no data directory has E2E.
        let Some(dir) = DataDir::for_tests("e2e") else { return };
        let path = dir.require("e2e/trainset.csv").expect("e2e/trainset.csv");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("mr,ref"), "E2E CSV header");
        let status = dir.status();
        let e2e = status.iter().find(|s| s.dataset.name == "e2e").unwrap();
        assert!(e2e.missing.is_empty(), "missing: {:?}", e2e.missing.iter().map(|f| f.path).collect::<Vec<_>>());
    }
}
