//! E2E NLG challenge (Novikova et al. 2017): restaurant meaning representations to text.
//!
//! The official CSVs (`trainset.csv`, `devset.csv`, `testset_w_refs.csv`) have columns `mr`, `ref`: one row
//! per (table, reference); a table's rows are consecutive. Each row is one [`GenExample`] whose source is
//! the cleaned `mr` (paper.md "Data formats": the reference code used `name : X | Type : pub | …`).
//!
//! # The cleaning rule ([`clean_mr`])
//! The reference code reads PrefixTuning's `src1_*.txt` files, not the CSVs. Those files' sources are the
//! CSV `mr` with
//! 1. items `key[value]` (separated by `, `) written `key : value`, joined by ` | `, in the CSV's order;
//! 2. three keys renamed: `eatType` → `Type`, `priceRange` → `price`, `familyFriendly` → `family friendly`
//!    (the others — `name`, `food`, `customer rating`, `area`, `near` — are kept);
//! 3. values word-tokenised as in the rest of those files: `£` split from what follows and a hyphen
//!    between two alphanumerics spaced out (`£20-25` → `£ 20 - 25`, `less than £20` → `less than £ 20`).
//!
//! This reproduces the source side of `src1_valid.txt` and `src1_test.txt` row for row (all 4,672 and
//! 4,693 rows; tested below), hence also of the unpublished `src1_train.txt`, which was made the same way.
//! The references are kept as in the CSV (the `src1` files also word-tokenise the references; the
//! official e2e-metrics score against the CSV's untokenised references).

use std::path::Path;

use super::{malformed, read_text, GenExample, TaskError};

/// Keys the reference data renames; every other key is kept as written.
const RENAMED_KEYS: [(&str, &str); 3] =
    [("eatType", "Type"), ("priceRange", "price"), ("familyFriendly", "family friendly")];

/// The reference code's linearisation of an E2E `mr` (rule in the module docs):
/// `name[The Eagle], eatType[pub], priceRange[£20-25]` → `name : The Eagle | Type : pub | price : £ 20 - 25`.
pub fn clean_mr(mr: &str) -> Result<String, String> {
    let mut items = Vec::new();
    let mut rest = mr.trim();
    while !rest.is_empty() {
        let open = rest.find('[').ok_or_else(|| format!("item `{rest}` has no `[value]`"))?;
        let close = open + rest[open..].find(']').ok_or_else(|| format!("item `{rest}` has no closing `]`"))?;
        let key = rest[..open].trim();
        if key.is_empty() {
            return Err(format!("an item has no key before `[` in `{mr}`"));
        }
        let value = &rest[open + 1..close];
        let key = RENAMED_KEYS.iter().find(|(from, _)| *from == key).map_or(key, |(_, to)| to);
        items.push(format!("{key} : {}", tokenise_value(value.trim())));
        rest = rest[close + 1..].trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
            if rest.is_empty() {
                return Err(format!("trailing `,` in `{mr}`"));
            }
        } else if !rest.is_empty() {
            return Err(format!("expected `, ` between items, found `{rest}`"));
        }
    }
    if items.is_empty() {
        return Err("empty meaning representation".into());
    }
    Ok(items.join(" | "))
}

/// `£` split from what follows; a hyphen between alphanumerics spaced out.
fn tokenise_value(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut out = String::with_capacity(value.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        match c {
            '£' if next.is_some_and(|n| !n.is_whitespace()) => out.push_str("£ "),
            '-' if i > 0 && chars[i - 1].is_alphanumeric() && next.is_some_and(char::is_alphanumeric) => {
                out.push_str(" - ")
            }
            _ => out.push(c),
        }
    }
    out
}

/// Reads an E2E CSV (`mr`, `ref` columns, RFC 4180 quoting): one [`GenExample`] per row, in file order,
/// the source cleaned by [`clean_mr`] and the reference as written.
pub fn read_csv(path: &Path) -> Result<Vec<GenExample>, TaskError> {
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| malformed(path, "line 1", format!("cannot read the header: {e}")))?;
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| malformed(path, "line 1", format!("no `{name}` column in the header (expected `mr,ref`)")))
    };
    let (mr_col, ref_col) = (column("mr")?, column("ref")?);
    let mut examples = Vec::new();
    let mut cache: Option<(String, String)> = None; // rows of one table are consecutive
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            malformed(path, format!("line {line}"), format!("not a CSV record: {e}"))
        })?;
        let line = record.position().map_or(0, |p| p.line());
        if let Some(m) = swallowed_rows(&record, mr_col) {
            return Err(malformed(path, format!("line {line}"), m));
        }
        let (Some(mr), Some(reference)) = (record.get(mr_col), record.get(ref_col)) else {
            return Err(malformed(
                path,
                format!("line {line}"),
                format!("{} fields, expected {} (`mr`, `ref`)", record.len(), mr_col.max(ref_col) + 1),
            ));
        };
        let source = match &cache {
            Some((raw, clean)) if raw == mr => clean.clone(),
            _ => {
                let clean = clean_mr(mr).map_err(|m| malformed(path, format!("line {line}"), m))?;
                cache = Some((mr.to_string(), clean.clone()));
                clean
            }
        };
        examples.push(GenExample { source, target: reference.to_string() });
    }
    Ok(examples)
}

/// Why `record` looks like an unclosed quote that swallowed the rows after it (they would silently become
/// part of one example): a line break in the `mr` field (a table is one line), or one in another field
/// followed by something shaped like a table (`name[…`). The real training set has two references that
/// span two lines inside closed quotes; those are kept as written.
fn swallowed_rows(record: &csv::StringRecord, mr_col: usize) -> Option<String> {
    for (i, field) in record.iter().enumerate() {
        let mut continuation = field.lines().skip(1);
        let looks_like_a_row = continuation.any(|l| l.trim_start_matches(['"', ' ']).starts_with("name["));
        if (i == mr_col && field.contains(['\n', '\r'])) || looks_like_a_row {
            let lines = field.lines().count();
            return Some(format!(
                "a field spans {lines} lines and takes in what look like the next rows (an unclosed quote?); close the quote"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::test_util::TempFile;
    use crate::tasks::{load_generation, Split, TaskName};
    use models::DataDir;

    #[test]
    fn cleans_like_the_reference_files() {
        assert_eq!(
            clean_mr(
                "name[The Eagle], eatType[coffee shop], priceRange[£20-25], familyFriendly[yes], near[Burger King]"
            )
            .unwrap(),
            "name : The Eagle | Type : coffee shop | price : £ 20 - 25 | family friendly : yes | near : Burger King"
        );
        assert_eq!(
            clean_mr("name[Aromi], priceRange[less than £20], customer rating[5 out of 5]").unwrap(),
            "name : Aromi | price : less than £ 20 | customer rating : 5 out of 5"
        );
        assert!(clean_mr("name[Aromi], eatType").unwrap_err().contains("no `[value]`"));
        assert!(clean_mr("name[Aromi] eatType[pub]").unwrap_err().contains("expected `, `"));
        assert!(clean_mr("").is_err());
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let f = TempFile::new("bad.csv", "mr,ref\n\"name[A], eatType[pub]\",ok\n\"name[B], food\",text\n");
        let e = read_csv(&f.path).unwrap_err().to_string();
        assert!(e.contains("bad.csv") && e.contains("line 3") && e.contains("no `[value]`"), "{e}");
        let f = TempFile::new("short.csv", "mr,ref\n\"name[A]\",ok\n\"name[B]\"\n");
        let e = read_csv(&f.path).unwrap_err().to_string();
        assert!(e.contains("short.csv") && e.contains("line 3") && e.contains("1 fields"), "{e}");
        // An unclosed quote on line 3 would swallow line 4 into its field: refused, naming line 3.
        let f =
            TempFile::new("quote.csv", "mr,ref\n\"name[A]\",ok\n\"name[B]\",\"open\n\"name[C]\",fine\n\"name[D]\",x\n");
        let e = read_csv(&f.path).unwrap_err().to_string();
        assert!(e.contains("quote.csv") && e.contains("line 3:") && e.contains("unclosed quote"), "{e}");
        let f = TempFile::new("late.csv", "mr,ref\n\"name[A]\",ok\n\"name[B]\",ok\n\"name[C]\",\"x\n\"name[D]\",y\n");
        let e = read_csv(&f.path).unwrap_err().to_string();
        assert!(e.contains("late.csv") && e.contains("line 4:"), "{e}");
        // A reference on two lines inside closed quotes (the real training set has two) is read as written.
        let f = TempFile::new("two-lines.csv", "mr,ref\n\"name[A]\",\"one.\r\n  two\"\n\"name[B]\",ok\n");
        let rows = read_csv(&f.path).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].target, "one.\r\n  two");
        let f = TempFile::new("hdr.csv", "meaning,text\nx,y\n");
        let e = read_csv(&f.path).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("no `mr` column"), "{e}");
    }

    #[test]
    fn real_e2e_counts_and_rows() {
        let Some(dir) = DataDir::for_tests("e2e") else { return };
        let train = load_generation(&dir, TaskName::E2e, Split::Train).unwrap();
        assert_eq!((train.examples.len(), train.segments.len()), (42_061, 4_862));
        assert_eq!(
            train.examples[0],
            GenExample {
                source: "name : The Vaults | Type : pub | price : more than £ 30 | customer rating : 5 out of 5 | \
                         near : Café Adriatic"
                    .into(),
                target: "The Vaults pub near Café Adriatic has a 5 star rating.  Prices start at £30.".into(),
            }
        );
        assert_eq!(
            train.examples.last().unwrap(),
            &GenExample {
                source: "name : Aromi | Type : restaurant | food : English | area : city centre".into(),
                target: "Aromi is an English restaurant in the city centre.".into(),
            }
        );
        let dev = load_generation(&dir, TaskName::E2e, Split::Dev).unwrap();
        assert_eq!((dev.examples.len(), dev.segments.len()), (4_672, 547));
        let test = load_generation(&dir, TaskName::E2e, Split::Test).unwrap();
        assert_eq!((test.examples.len(), test.segments.len()), (4_693, 630));
        assert_eq!(test.segments.iter().map(|s| s.references.len()).sum::<usize>(), 4_693);
        assert_eq!(dev.segments[0].source, "name : Alimentum | area : city centre | family friendly : no");
    }

    /// The cleaned sources equal PrefixTuning's `src1_{valid,test}.txt` (the files the reference code
    /// reads) row for row.
    #[test]
    fn sources_equal_prefix_tuning_files() {
        let Some(dir) = DataDir::for_tests("e2e") else { return };
        for (split, file) in [(Split::Dev, "src1_valid.txt"), (Split::Test, "src1_test.txt")] {
            let path = dir.root().join("e2e/prefix-tuning-format").join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                models::fixtures::missing::<()>(&format!("{} not found", path.display()));
                continue;
            };
            let data = load_generation(&dir, TaskName::E2e, split).unwrap();
            let sources: Vec<&str> = text.lines().map(|l| l.split("||").next().unwrap()).collect();
            assert_eq!(sources.len(), data.examples.len(), "{file}");
            for (i, (ex, src)) in data.examples.iter().zip(&sources).enumerate() {
                assert_eq!(ex.source, *src, "{file} line {}", i + 1);
            }
        }
    }
}
