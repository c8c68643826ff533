//! DART v1.1.1 (Nan et al. 2021): open-domain triple sets to text.
//!
//! Two formats of the same data, both read here:
//! - JSON (`dart-v1.1.1-full-*.json`): a list of `{"tripleset": [[subj, pred, obj], …],
//!   "annotations": [{"source": …, "text": …}, …]}` (other keys ignored);
//! - XML (`dart-v1.1.1-full-*.xml`): `<entry>` elements with `<mtriple>subj | pred | obj</mtriple>` and
//!   `<lex comment="SOURCE">text</lex>`.
//!
//! Each entry is one [`GenSegment`]; training uses one [`super::GenExample`] per reference (paper.md
//! "Data formats"). The source is the triples linearised as `subj : pred : obj | subj : pred : obj`
//! ([`linearise`]); as in the reference code the predicate is lower-cased (`JOINED` → `joined`).
//! References are kept verbatim, empty ones included (the test set has one `<lex/>` without text).

use std::path::Path;

use serde::Deserialize;

use super::{malformed, read_text, GenSegment, TaskError};

/// `subj : pred : obj | subj : pred : obj`, the predicate lower-cased as in the reference code.
pub fn linearise(triples: &[[String; 3]]) -> String {
    triples.iter().map(|[s, p, o]| format!("{s} : {} : {o}", p.to_lowercase())).collect::<Vec<_>>().join(" | ")
}

/// Reads a DART file, JSON or XML by extension: one segment per entry, in file order.
pub fn read(path: &Path) -> Result<Vec<GenSegment>, TaskError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => read_json(path),
        Some("xml") => read_xml(path),
        _ => Err(malformed(path, "file name", "a DART file ends in .json or .xml")),
    }
}

#[derive(Deserialize)]
struct JsonEntry {
    tripleset: Vec<Vec<String>>,
    annotations: Vec<JsonAnnotation>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    text: String,
}

/// Reads the JSON format.
pub fn read_json(path: &Path) -> Result<Vec<GenSegment>, TaskError> {
    let text = read_text(path)?;
    let entries: Vec<JsonEntry> = serde_json::from_str(&text).map_err(|e| {
        malformed(
            path,
            format!("line {} column {}", e.line(), e.column()),
            format!("not a DART JSON list of {{tripleset, annotations}} entries: {e}"),
        )
    })?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let triples = entry
                .tripleset
                .into_iter()
                .enumerate()
                .map(|(j, t)| {
                    <[String; 3]>::try_from(t).map_err(|t| {
                        malformed(
                            path,
                            format!("entry {i}"),
                            format!("triple {j} has {} fields, expected 3 (subject, predicate, object)", t.len()),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if triples.is_empty() {
                return Err(malformed(path, format!("entry {i}"), "empty tripleset"));
            }
            Ok(GenSegment {
                source: linearise(&triples),
                references: entry.annotations.into_iter().map(|a| a.text).collect(),
            })
        })
        .collect()
}

/// Reads the XML format (`benchmark/entries/entry`, each with `modifiedtripleset/mtriple` and `lex`).
pub fn read_xml(path: &Path) -> Result<Vec<GenSegment>, TaskError> {
    let text = read_text(path)?;
    let doc = roxmltree::Document::parse(&text)
        .map_err(|e| malformed(path, format!("line {}", e.pos().row), format!("not well-formed XML: {e}")))?;
    let line = |node: roxmltree::Node| doc.text_pos_at(node.range().start).row;
    let mut segments = Vec::new();
    for (i, entry) in doc.descendants().filter(|n| n.has_tag_name("entry")).enumerate() {
        let at = || format!("entry {i} (line {})", line(entry));
        let mut triples = Vec::new();
        for set in entry.children().filter(|n| n.has_tag_name("modifiedtripleset")) {
            for mtriple in set.children().filter(|n| n.has_tag_name("mtriple")) {
                let raw = mtriple.text().unwrap_or("");
                let parts: Vec<&str> = raw.split(" | ").collect();
                let Ok([s, p, o]) = <[&str; 3]>::try_from(parts) else {
                    return Err(malformed(
                        path,
                        format!("line {}", line(mtriple)),
                        format!("<mtriple>{raw}</mtriple> does not split into 3 fields on \" | \""),
                    ));
                };
                triples.push([s.to_string(), p.to_string(), o.to_string()]);
            }
        }
        if triples.is_empty() {
            return Err(malformed(path, at(), "no <modifiedtripleset>/<mtriple>"));
        }
        let references = entry.children().filter(|n| n.has_tag_name("lex")).map(|n| concat_text(n)).collect();
        segments.push(GenSegment { source: linearise(&triples), references });
    }
    if segments.is_empty() {
        return Err(malformed(path, "line 1", "no <entry> elements (expected benchmark/entries/entry)"));
    }
    Ok(segments)
}

/// All text under a node (a `<lex>` holds plain text; entities are decoded).
fn concat_text(node: roxmltree::Node) -> String {
    node.descendants().filter(|n| n.is_text()).filter_map(|n| n.text()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::test_util::TempFile;
    use crate::tasks::{load_generation, Split, TaskName};
    use models::DataDir;

    #[test]
    fn linearises_with_lower_case_predicates() {
        let t = |a: &str, b: &str, c: &str| [a.to_string(), b.to_string(), c.to_string()];
        assert_eq!(
            linearise(&[t("Mars Hill College", "JOINED", "1973"), t("Mars Hill College", "LOCATION", "Mars Hill")]),
            "Mars Hill College : joined : 1973 | Mars Hill College : location : Mars Hill"
        );
    }

    #[test]
    fn malformed_entries_name_file_and_place() {
        let f = TempFile::new("bad.json", r#"[{"tripleset": [["a", "b"]], "annotations": []}]"#);
        let e = read(&f.path).unwrap_err().to_string();
        assert!(e.contains("bad.json") && e.contains("entry 0") && e.contains("2 fields"), "{e}");
        let f = TempFile::new("bad2.json", "[{\"tripleset\": [],\n \"annotations\": 3}]");
        let e = read(&f.path).unwrap_err().to_string();
        assert!(e.contains("bad2.json") && e.contains("line 2"), "{e}");
        let xml = "<benchmark><entries>\n<entry>\n<modifiedtripleset>\n<mtriple>a | b</mtriple>\n\
                   </modifiedtripleset></entry></entries></benchmark>";
        let f = TempFile::new("bad.xml", xml);
        let e = read(&f.path).unwrap_err().to_string();
        assert!(e.contains("bad.xml") && e.contains("line 4") && e.contains("3 fields"), "{e}");
        let f = TempFile::new("bad2.xml", "<benchmark><entries>\n<entry>\n</entries></benchmark>");
        let e = read(&f.path).unwrap_err().to_string();
        assert!(e.contains("bad2.xml") && e.contains("line 3") && e.contains("XML"), "{e}");
    }

    #[test]
    fn real_dart_counts_and_rows() {
        let Some(dir) = DataDir::for_tests("dart") else { return };
        let dev = load_generation(&dir, TaskName::Dart, Split::Dev).unwrap();
        assert_eq!((dev.segments.len(), dev.examples.len()), (2_768, 6_980));
        assert_eq!(
            dev.segments[0].source,
            "Mars Hill College : joined : 1973 | Mars Hill College : location : Mars Hill, North Carolina"
        );
        assert_eq!(dev.segments[0].references, ["A school from Mars Hill, North Carolina, joined in 1973."]);
        let last = dev.segments.last().unwrap();
        assert_eq!(
            last.source,
            "Wildwood : eattype : coffee shop | Wildwood : pricerange : moderate | Wildwood : near : Ranch"
        );
        assert_eq!(last.references, ["The Wildwood is an affordable coffee shop located in Ranch."]);
        let test = load_generation(&dir, TaskName::Dart, Split::Test).unwrap();
        assert_eq!((test.segments.len(), test.examples.len()), (5_097, 12_552));
        assert_eq!(test.examples.iter().filter(|e| e.target.is_empty()).count(), 1);
        let last = test.segments.last().unwrap();
        assert_eq!(last.source, "Zizzi : eattype : pub | Zizzi : near : The Sorrento");
        assert_eq!(
            last.references,
            [
                "Close to The Sorrento you will be able to find a pub called Zizzi",
                "There is a pub  called Zizzi located near The Sorrento."
            ]
        );
    }

    #[test]
    fn dev_json_and_xml_agree() {
        let Some(dir) = DataDir::for_tests("dart") else { return };
        let (json, xml) =
            (dir.root().join("dart/dart-v1.1.1-full-dev.json"), dir.root().join("dart/dart-v1.1.1-full-dev.xml"));
        if !json.is_file() || !xml.is_file() {
            models::fixtures::missing::<()>(&format!("DART dev JSON or XML missing in {}", dir.root().display()));
            return;
        }
        let (a, b) = (read(&json).unwrap(), read(&xml).unwrap());
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(x, y, "entry {i}");
        }
    }
}
