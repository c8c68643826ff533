//! Reading predictions and references in the e2e-metrics text formats.
//!
//! Follows `read_lines` of tuetschek/e2e-metrics `measure_scores.py`: every line is stripped of surrounding
//! whitespace; in a reference file the references of one segment are on consecutive lines and segments are
//! separated by one blank line. As there, a reference file without any blank line is a single-reference file
//! (each line is its own segment). Unlike there, malformed files are errors naming the line instead of silently
//! creating empty segments.

use std::path::Path;

use crate::error::MetricsError;

/// Strip like Python's `str.strip()` (Unicode whitespace, plus the `\x1c`–`\x1f` separators Python counts).
fn py_strip(s: &str) -> &str {
    s.trim_matches(crate::text::is_py_space)
}

/// Split into lines as a text file reader does: `\n` or `\r\n` ends a line, a final newline adds no line.
/// A UTF-8 byte-order mark at the start is dropped.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    text.strip_prefix('\u{feff}').unwrap_or(text).lines()
}

/// Parse the e2e-metrics multi-reference text format into one list of references per segment.
///
/// All references of one segment are on consecutive lines; segments are separated by one blank line
/// (whitespace-only lines are blank; trailing blank lines at the end of the file are ignored). A text with no
/// blank line at all is read as single-reference data, one segment per line, as e2e-metrics does.
///
/// ```
/// let refs = metrics::read_references("a b\nc d\n\ne f\n").unwrap();
/// assert_eq!(refs, vec![vec!["a b".to_string(), "c d".to_string()], vec!["e f".to_string()]]);
/// ```
pub fn read_references(text: &str) -> Result<Vec<Vec<String>>, MetricsError> {
    let lines: Vec<&str> = split_lines(text).map(py_strip).collect();
    // Trailing blank lines end the file; they do not open a segment.
    let end = lines.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
    let lines = &lines[..end];
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    if !lines.iter().any(|l| l.is_empty()) {
        return Ok(lines.iter().map(|l| vec![l.to_string()]).collect());
    }
    let mut segments: Vec<Vec<String>> = vec![Vec::new()];
    for (i, line) in lines.iter().enumerate() {
        let line_no = i + 1;
        if line.is_empty() {
            if segments.last().is_some_and(Vec::is_empty) {
                let message = if segments.len() == 1 {
                    "blank line before the first reference".to_string()
                } else {
                    "a second blank line in a row (an empty segment)".to_string()
                };
                return Err(MetricsError::ReferenceFormat { line: line_no, message });
            }
            segments.push(Vec::new());
        } else if let Some(last) = segments.last_mut() {
            last.push(line.to_string());
        }
    }
    Ok(segments)
}

/// Parse predictions: one per line, stripped of surrounding whitespace (an empty line is an empty prediction).
pub fn read_predictions(text: &str) -> Vec<String> {
    split_lines(text).map(|l| py_strip(l).to_string()).collect()
}

/// Read and parse a reference file ([`read_references`]).
pub fn read_references_file(path: &Path) -> Result<Vec<Vec<String>>, MetricsError> {
    let text = read_file(path)?;
    read_references(&text)
}

/// Read and parse a prediction file ([`read_predictions`]).
pub fn read_predictions_file(path: &Path) -> Result<Vec<String>, MetricsError> {
    Ok(read_predictions(&read_file(path)?))
}

fn read_file(path: &Path) -> Result<String, MetricsError> {
    std::fs::read_to_string(path).map_err(|source| MetricsError::Io { path: path.to_path_buf(), source })
}

/// Check that predictions and references pair up: same count, at least one segment, no segment without
/// references.
pub fn check_pairing(predictions: &[String], references: &[Vec<String>]) -> Result<(), MetricsError> {
    if predictions.len() != references.len() {
        return Err(MetricsError::CountMismatch { predictions: predictions.len(), segments: references.len() });
    }
    if references.is_empty() {
        return Err(MetricsError::Empty);
    }
    if let Some(segment) = references.iter().position(Vec::is_empty) {
        return Err(MetricsError::EmptySegment { segment });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|seg| seg.iter().map(|r| r.to_string()).collect()).collect()
    }

    #[test]
    fn multi_reference_segments() {
        let refs = read_references("  a b \nc\n\n d\r\n\n\n").unwrap();
        assert_eq!(refs, s(&[&["a b", "c"], &["d"]]));
    }

    #[test]
    fn no_blank_line_means_single_reference() {
        assert_eq!(read_references("a\nb\n").unwrap(), s(&[&["a"], &["b"]]));
    }

    #[test]
    fn errors_name_the_line() {
        let err = read_references("a\n\n\nb\n").unwrap_err();
        assert!(matches!(err, MetricsError::ReferenceFormat { line: 3, .. }), "{err}");
        let err = read_references("\na\n\nb\n").unwrap_err();
        assert!(matches!(err, MetricsError::ReferenceFormat { line: 1, .. }), "{err}");
        assert!(err.to_string().contains("line 1"));
    }

    #[test]
    fn predictions_keep_empty_lines() {
        assert_eq!(read_predictions("a \n\nb"), vec!["a", "", "b"]);
    }

    #[test]
    fn count_mismatch_names_both_counts() {
        let err = check_pairing(&["a".into()], &s(&[&["a"], &["b"]])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("1 predictions") && msg.contains("2 reference segments"), "{msg}");
    }
}
