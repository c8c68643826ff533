//! GLUE sentence classification data (SST-2, QNLI, MNLI, QQP) for paper.md "Tables" (Table 1).
//!
//! Two formats:
//! - GLUE TSVs (no quoting, tab-separated, a header row): columns are found by header name —
//!   SST-2 `sentence`, `label`; QNLI `question`, `sentence`, `label`; MNLI `sentence1`, `sentence2`,
//!   `gold_label` (train, dev_matched/dev_mismatched and LM-BFF's k-shot files share these names);
//!   QQP `question1`, `question2`, `is_duplicate`. A row whose number of fields differs from the header's
//!   is an error naming file and line; empty lines are skipped.
//! - The labelled JSON subsets (`subset-{train,dev}.json`): an object of index → `{text_a, text_b, label}`,
//!   read in numeric index order.
//!
//! Labels map to indices in LM-BFF's order ([`label_names`]); an unknown label is an error naming the
//! line or record. Texts are trimmed of surrounding whitespace (GLUE's SST-2 sentences end with a space,
//! which a byte-level BPE would turn into a lone `Ġ` token before the template's words).

use std::path::{Path, PathBuf};

use super::{malformed, read_text, TaskError, TaskName};

/// One classification example.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClsExample {
    /// The (first) sentence.
    pub text_a: String,
    /// The second sentence of a pair task (QNLI, MNLI, QQP).
    pub text_b: Option<String>,
    /// Index into [`label_names`].
    pub label: usize,
}

/// A classification split: the file read and its examples in file order.
#[derive(Clone, Debug)]
pub struct ClsData {
    /// The file read.
    pub path: PathBuf,
    /// The examples.
    pub examples: Vec<ClsExample>,
}

/// The label names of a classification task, in index order (LM-BFF's processors' order); empty for
/// generation tasks.
pub fn label_names(task: TaskName) -> &'static [&'static str] {
    match task {
        TaskName::Sst2 | TaskName::Qqp => &["0", "1"],
        TaskName::Qnli => &["entailment", "not_entailment"],
        TaskName::Mnli => &["contradiction", "entailment", "neutral"],
        TaskName::E2e | TaskName::Dart => &[],
    }
}

/// Whether a task classifies sentence pairs.
pub fn is_pair_task(task: TaskName) -> bool {
    matches!(task, TaskName::Qnli | TaskName::Mnli | TaskName::Qqp)
}

/// TSV columns (first text, second text, label) of a task.
fn tsv_columns(task: TaskName) -> (&'static str, Option<&'static str>, &'static str) {
    match task {
        TaskName::Sst2 => ("sentence", None, "label"),
        TaskName::Qnli => ("question", Some("sentence"), "label"),
        TaskName::Mnli => ("sentence1", Some("sentence2"), "gold_label"),
        _ => ("question1", Some("question2"), "is_duplicate"),
    }
}

fn label_index(task: TaskName, label: &str) -> Result<usize, String> {
    let names = label_names(task);
    names.iter().position(|n| *n == label).ok_or_else(|| format!("label {label:?} is not one of {names:?}"))
}

/// Reads a classification file of `task`, TSV or JSON subset by extension.
pub fn read(path: &Path, task: TaskName) -> Result<Vec<ClsExample>, TaskError> {
    if label_names(task).is_empty() {
        return Err(malformed(path, "file name", format!("`{task}` is not a classification task")));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("tsv") => read_tsv(path, task),
        Some("json") => read_subset_json(path, task),
        _ => Err(malformed(path, "file name", "a GLUE file ends in .tsv or .json")),
    }
}

/// Reads a GLUE TSV of `task` (columns by header name, see the module docs).
pub fn read_tsv(path: &Path, task: TaskName) -> Result<Vec<ClsExample>, TaskError> {
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
    let Some((_, header)) = lines.next() else {
        return Err(malformed(path, "line 1", "empty file; expected a header row"));
    };
    let header: Vec<&str> = header.split('\t').map(str::trim).collect();
    let (a_name, b_name, label_name) = tsv_columns(task);
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            malformed(path, "line 1", format!("no `{name}` column in the header {header:?} (a GLUE {task} TSV)"))
        })
    };
    let a_col = column(a_name)?;
    let b_col = b_name.map(column).transpose()?;
    let label_col = column(label_name)?;
    let mut examples = Vec::new();
    for (line, row) in lines {
        if row.is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.split('\t').collect();
        if fields.len() != header.len() {
            return Err(malformed(
                path,
                format!("line {line}"),
                format!("{} tab-separated fields, the header has {}", fields.len(), header.len()),
            ));
        }
        let label =
            label_index(task, fields[label_col].trim()).map_err(|m| malformed(path, format!("line {line}"), m))?;
        examples.push(ClsExample {
            text_a: fields[a_col].trim().to_string(),
            text_b: b_col.map(|c| fields[c].trim().to_string()),
            label,
        });
    }
    Ok(examples)
}

/// Reads a labelled JSON subset (`{"0": {"text_a": …, "text_b": …, "label": …}, …}`) in index order.
pub fn read_subset_json(path: &Path, task: TaskName) -> Result<Vec<ClsExample>, TaskError> {
    let text = read_text(path)?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| malformed(path, format!("line {} column {}", e.line(), e.column()), format!("not JSON: {e}")))?;
    let serde_json::Value::Object(map) = value else {
        return Err(malformed(path, "line 1", "expected an object of index → {text_a, text_b, label}"));
    };
    let mut records = map
        .into_iter()
        .map(|(key, v)| match key.parse::<u64>() {
            Ok(i) => Ok((i, key, v)),
            Err(_) => Err(malformed(path, format!("record {key:?}"), "the key is not an index")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|(i, _, _)| *i);
    records
        .into_iter()
        .map(|(_, key, v)| {
            let at = || format!("record {key:?}");
            let field = |name: &str| match v.get(name) {
                Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(serde_json::Value::Number(n)) if name == "label" => Ok(Some(n.to_string())),
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(other) => Err(malformed(path, at(), format!("`{name}` is {other}, expected a string"))),
            };
            let text_a = field("text_a")?.ok_or_else(|| malformed(path, at(), "no `text_a`"))?;
            let text_b = field("text_b")?;
            if is_pair_task(task) && text_b.is_none() {
                return Err(malformed(path, at(), format!("no `text_b`, which a {task} example needs")));
            }
            let label = field("label")?.ok_or_else(|| malformed(path, at(), "no `label`"))?;
            let label = label_index(task, &label).map_err(|m| malformed(path, at(), m))?;
            Ok(ClsExample { text_a, text_b: if is_pair_task(task) { text_b } else { None }, label })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::test_util::TempFile;
    use crate::tasks::{load_classification, Split};
    use models::DataDir;

    fn counts(examples: &[ClsExample], task: TaskName) -> Vec<usize> {
        (0..label_names(task).len()).map(|l| examples.iter().filter(|e| e.label == l).count()).collect()
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let f = TempFile::new("train.tsv", "sentence\tlabel\ngood film \t1\nbad film\t0\textra\n");
        let e = read(&f.path, TaskName::Sst2).unwrap_err().to_string();
        assert!(e.contains("train.tsv") && e.contains("line 3") && e.contains("3 tab-separated fields"), "{e}");
        let f = TempFile::new("dev.tsv", "index\tquestion\tsentence\tlabel\n0\tq?\ts.\tentailment\n1\tq?\ts.\tmaybe\n");
        let e = read(&f.path, TaskName::Qnli).unwrap_err().to_string();
        assert!(e.contains("dev.tsv") && e.contains("line 3") && e.contains("\"maybe\""), "{e}");
        let f = TempFile::new("dev2.tsv", "index\tquestion\tlabel\n");
        let e = read(&f.path, TaskName::Qnli).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("no `sentence` column"), "{e}");
        let f = TempFile::new(
            "s.json",
            r#"{"0": {"text_a": "a", "text_b": "b", "label": "1"}, "1": {"text_a": "a", "label": "0"}}"#,
        );
        let e = read(&f.path, TaskName::Qqp).unwrap_err().to_string();
        assert!(e.contains("s.json") && e.contains("record \"1\"") && e.contains("no `text_b`"), "{e}");
        let f = TempFile::new("t.json", "{\"0\": {\"text_a\": \"a\",\n \"text_b\": \"b\" \"label\": 1}}");
        let e = read(&f.path, TaskName::Qqp).unwrap_err().to_string();
        assert!(e.contains("t.json") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn reads_small_files() {
        let f = TempFile::new("train.tsv", "sentence\tlabel\r\ngood film \t1\r\n\r\n");
        assert_eq!(
            read(&f.path, TaskName::Sst2).unwrap(),
            [ClsExample { text_a: "good film".into(), text_b: None, label: 1 }]
        );
        let f = TempFile::new(
            "s.json",
            r#"{"10": {"text_a": "x", "text_b": "y", "label": 0}, "2": {"text_a": "a", "text_b": "b", "label": "1"}}"#,
        );
        let ex = read(&f.path, TaskName::Qqp).unwrap();
        assert_eq!((ex[0].text_a.as_str(), ex[0].label, ex[1].text_a.as_str(), ex[1].label), ("a", 1, "x", 0));
    }

    #[test]
    fn real_sst2() {
        let Some(dir) = DataDir::for_tests("sst2") else { return };
        let train = load_classification(&dir, TaskName::Sst2, Split::Train).unwrap().examples;
        assert_eq!(train.len(), 67_349);
        assert_eq!(counts(&train, TaskName::Sst2), [29_780, 37_569]);
        assert_eq!(
            train[0],
            ClsExample { text_a: "hide new secretions from the parental units".into(), text_b: None, label: 0 }
        );
        assert_eq!(
            train.last().unwrap(),
            &ClsExample {
                text_a: "this new jangle of noise , mayhem and stupidity must be a serious contender for the title ."
                    .into(),
                text_b: None,
                label: 0,
            }
        );
        let dev = load_classification(&dir, TaskName::Sst2, Split::Dev).unwrap().examples;
        assert_eq!(dev.len(), 872);
        assert_eq!(counts(&dev, TaskName::Sst2), [428, 444]);
        assert_eq!(
            dev[0],
            ClsExample { text_a: "it 's a charming and often affecting journey .".into(), text_b: None, label: 1 }
        );
        assert_eq!(
            dev.last().unwrap().text_a,
            "looking aristocratic , luminous yet careworn in jane hamilton 's exemplary costumes , rampling gives a \
             performance that could not be improved upon . '"
        );
        let test = load_classification(&dir, TaskName::Sst2, Split::Test).unwrap().examples;
        assert_eq!((test.len(), counts(&test, TaskName::Sst2)), (1_821, vec![917, 904]));
    }

    #[test]
    fn real_qnli() {
        let Some(dir) = DataDir::for_tests("qnli") else { return };
        let dev = load_classification(&dir, TaskName::Qnli, Split::Dev).unwrap().examples;
        assert_eq!(dev.len(), 5_463);
        assert_eq!(counts(&dev, TaskName::Qnli), [2_702, 2_761]);
        assert_eq!(dev[0].text_a, "What came into force after the new constitution was herald?");
        assert_eq!(
            dev[0].text_b.as_deref(),
            Some("As of that day, the new constitution heralding the Second Republic came into force.")
        );
        assert_eq!(dev[0].label, 0);
        let train = load_classification(&dir, TaskName::Qnli, Split::SubsetTrain).unwrap().examples;
        assert_eq!(train.len(), 8_999);
        assert_eq!(counts(&train, TaskName::Qnli), [4_523, 4_476]);
        assert_eq!(
            train[0].text_a,
            "What sector has expanded radiply by selling outsourcing services to North America and Europe?"
        );
        assert_eq!(train[0].label, 1);
        assert_eq!(load_classification(&dir, TaskName::Qnli, Split::SubsetDev).unwrap().examples.len(), 1_000);
    }

    #[test]
    fn real_mnli() {
        let Some(dir) = DataDir::for_tests("mnli") else { return };
        let train = load_classification(&dir, TaskName::Mnli, Split::SubsetTrain).unwrap().examples;
        assert_eq!(train.len(), 8_999);
        assert_eq!(counts(&train, TaskName::Mnli), [2_958, 3_061, 2_980]);
        assert_eq!(
            train[0].text_b.as_deref(),
            Some("We are especially sad this year because we lost a lot of people.")
        );
        assert_eq!(train[0].label, 1);
        assert_eq!(load_classification(&dir, TaskName::Mnli, Split::SubsetDev).unwrap().examples.len(), 1_000);
        let k = load_classification(&dir, TaskName::Mnli, Split::KshotTrain).unwrap().examples;
        assert_eq!((k.len(), counts(&k, TaskName::Mnli)), (48, vec![16, 16, 16]));
        assert_eq!(k[0].text_a, "Price caps may sound more attractive with every passing rate case.");
        assert_eq!(k[0].text_b.as_deref(), Some("Rate cases make price caps sound more attractive."));
        assert_eq!(k[0].label, 1);
        assert_eq!(load_classification(&dir, TaskName::Mnli, Split::KshotDev).unwrap().examples.len(), 48);
    }

    #[test]
    fn real_qqp() {
        let Some(dir) = DataDir::for_tests("qqp") else { return };
        let train = load_classification(&dir, TaskName::Qqp, Split::SubsetTrain).unwrap().examples;
        assert_eq!(train.len(), 8_999);
        assert_eq!(counts(&train, TaskName::Qqp), [5_747, 3_252]);
        assert_eq!(train[0].text_a, "How do I get inside University College London being an Indian?");
        assert_eq!(load_classification(&dir, TaskName::Qqp, Split::SubsetDev).unwrap().examples.len(), 1_000);
        let k = load_classification(&dir, TaskName::Qqp, Split::KshotTrain).unwrap().examples;
        assert_eq!((k.len(), counts(&k, TaskName::Qqp)), (32, vec![16, 16]));
        assert_eq!(k[0].text_a, "Can I develope mobile apps with c++?");
        assert_eq!(load_classification(&dir, TaskName::Qqp, Split::KshotDev).unwrap().examples.len(), 32);
    }
}
