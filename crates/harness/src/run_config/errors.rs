//! Messages for configs that do not fit [`super::RunConfig`]: the dotted key, the value found, the type
//! it needs in words (a number, a whole number, one of the names …), and — when the value came from
//! `--set` — the assignment to blame. serde's own wording ("invalid type: string "fast", expected f64",
//! "expected a Value::Tagged enum") names Rust types, not what a user writes in YAML.

use std::path::Path;

use serde_norway::Value;

/// Where each overridden key came from: (`dotted.key`, the whole `--set` assignment).
pub type Overrides<'a> = &'a [(String, String)];

/// The message for serde's error `inner` at `key` of the config read from `path`. `tree` is the config
/// as deserialised (to list an enum's names); `overrides` are the `--set` assignments applied to it.
pub fn deserialize_message(path: &Path, key: &str, inner: &str, tree: &Value, overrides: Overrides) -> String {
    let file = path.display();
    let blame = blame(key, overrides);
    if matches!(key, "." | "?" | "") {
        return format!("{file}{blame}: {inner}");
    }
    if let Some((name, names)) = unknown_variant(inner) {
        return format!("{file}: {key} = {name}{blame}: needs one of {names}");
    }
    let Some((got, expected)) = split_type_error(inner) else {
        return format!("{file}: {key}{blame}: {inner}");
    };
    let needs = match needs_in_words(expected) {
        Needs::Words(w) => w.to_string(),
        Needs::Names => enum_names(tree, key).map_or_else(|| "one of its names".to_string(), |n| format!("one of {n}")),
        Needs::Other => expected.to_string(),
    };
    let finite = expected.starts_with('f') && is_non_finite_word(got);
    let needs = if finite { "a finite number (inf and nan are not allowed)".to_string() } else { needs };
    format!("{file}: {key} = {}{blame}: needs {needs}", shown(got))
}

/// ` (from --set K=V)` when `key` or a mapping above it was set by `--set`.
fn blame(key: &str, overrides: Overrides) -> String {
    let hit = overrides
        .iter()
        .rev()
        .find(|(k, _)| key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}.")));
    hit.map_or_else(String::new, |(_, assignment)| format!(" (from --set {assignment})"))
}

/// ("string \"fast\"", "f64") out of "invalid type: string \"fast\", expected f64" (or "invalid value").
fn split_type_error(inner: &str) -> Option<(&str, &str)> {
    let rest = inner.strip_prefix("invalid type: ").or_else(|| inner.strip_prefix("invalid value: "))?;
    rest.rsplit_once(", expected ")
}

/// ("shuffle", "`poisson` or `fixed_size`") out of serde's "unknown variant `shuffle`, expected `poisson`
/// or `fixed_size`" (or "expected one of `a`, `b`, `c`").
fn unknown_variant(inner: &str) -> Option<(&str, &str)> {
    let rest = inner.strip_prefix("unknown variant `")?;
    let (name, rest) = rest.split_once("`, expected ")?;
    Some((name, rest.strip_prefix("one of ").unwrap_or(rest)))
}

enum Needs {
    Words(&'static str),
    /// An enum: its names are looked up.
    Names,
    Other,
}

fn needs_in_words(expected: &str) -> Needs {
    match expected {
        "f64" | "f32" => Needs::Words("a number (e.g. 1e-3)"),
        "u64" | "u32" | "usize" | "u16" | "u8" => Needs::Words("a whole number ≥ 0 (e.g. 8)"),
        "i64" | "i32" => Needs::Words("a whole number (e.g. 8)"),
        "a boolean" => Needs::Words("true or false"),
        "a string" | "string" => Needs::Words("text (quote it if YAML reads it as something else)"),
        "a sequence" => Needs::Words("a list (e.g. [a, b])"),
        e if e.starts_with("struct ") || e == "a map" => Needs::Words("a mapping of its keys (key: value lines)"),
        e if e.contains("enum") => Needs::Names,
        _ => Needs::Other,
    }
}

/// serde's "string \"fast\"" / "integer `3`" as the YAML value: "fast" / 3.
fn shown(got: &str) -> String {
    if let Some(s) = got.strip_prefix("string ") {
        return s.to_string();
    }
    match got.split_once(" `") {
        Some((_, v)) => v.trim_end_matches('`').to_string(),
        None => format!("a {got}"),
    }
}

fn is_non_finite_word(got: &str) -> bool {
    let v = shown(got).trim_matches('"').to_ascii_lowercase();
    matches!(v.trim_start_matches(['+', '-']), "inf" | "infinity" | ".inf" | "nan" | ".nan")
}

/// The names an enum at `key` takes: the tree deserialised again with a name no enum has at `key`
/// gives serde's "unknown variant …, expected one of `a`, `b`".
fn enum_names(tree: &Value, key: &str) -> Option<String> {
    let mut probe = tree.clone();
    let mut node = &mut probe;
    for part in key.split('.') {
        node = node.as_mapping_mut()?.get_mut(part)?;
    }
    *node = Value::String("\u{1}".into());
    let err = serde_norway::from_value::<super::RunConfig>(probe).err()?.to_string();
    // serde: "unknown variant `x`, expected `a`", "… expected `a` or `b`", "… expected one of `a`, `b`, `c`".
    let at = err.find("unknown variant `")?;
    let names = unknown_variant(&err[at..])?.1;
    Some(names.split(" at line").next().unwrap_or(names).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_wording_becomes_yaml_wording() {
        assert_eq!(split_type_error("invalid type: string \"fast\", expected f64"), Some(("string \"fast\"", "f64")));
        assert_eq!(shown("string \"fast\""), "\"fast\"");
        assert_eq!(shown("integer `3`"), "3");
        assert_eq!(shown("sequence"), "a sequence");
        assert!(is_non_finite_word("string \"inf\"") && is_non_finite_word("string \"-Infinity\""));
        assert!(!is_non_finite_word("string \"fast\""));
        let sets = [("optimization".to_string(), "optimization=3".to_string())];
        assert_eq!(blame("optimization", &sets), " (from --set optimization=3)");
        assert_eq!(blame("optimization.steps", &sets), " (from --set optimization=3)");
        assert_eq!(blame("privacy", &sets), "");
    }
}
