//! Models by name from the local Hugging Face cache, offline, as transformers' `local_files_only=True`
//! finds them: `ORG/NAME` (or `NAME`), optionally `@REVISION` (a branch or tag under `refs/`, or a commit),
//! is `CACHE/models--ORG--NAME/snapshots/COMMIT/` with COMMIT read from `refs/main` (or `refs/REVISION`).
//! CACHE is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. Nothing is downloaded.
//! A path that exists is used as it is; a name the cache lacks is an error naming where it looked.

use std::path::{Path, PathBuf};

use crate::ModelError;

/// The cache folder and what chose it.
pub fn cache_dir() -> (PathBuf, &'static str) {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = var("HF_HUB_CACHE") {
        return (p, "$HF_HUB_CACHE");
    }
    if let Some(p) = var("HF_HOME") {
        return (p.join("hub"), "$HF_HOME/hub");
    }
    let home = var("HOME").unwrap_or_else(|| PathBuf::from("."));
    (home.join(".cache/huggingface/hub"), "~/.cache/huggingface/hub")
}

/// Whether `spec` is shaped like a model id (`NAME` or `ORG/NAME`, letters, digits, `-_.`, optional
/// `@REVISION`) rather than a file path.
fn looks_like_id(spec: &str) -> bool {
    let id = spec.split_once('@').map_or(spec, |(id, _)| id);
    let parts: Vec<&str> = id.split('/').collect();
    let ok = |p: &&str| {
        !p.is_empty() && !p.starts_with('.') && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    !spec.starts_with(['/', '.', '~']) && (1..=2).contains(&parts.len()) && parts.iter().all(ok)
}

/// `spec` as a model folder: the path itself when it exists or is not shaped like a model id, else the
/// cached snapshot of that id (see the module docs).
pub fn resolve(spec: &Path) -> Result<PathBuf, ModelError> {
    let text = spec.to_string_lossy();
    if spec.exists() || !looks_like_id(&text) {
        return Ok(spec.to_path_buf());
    }
    let (cache, source) = cache_dir();
    resolve_in(&text, &cache, source)
}

/// [`resolve`] of the id `spec` in the cache folder `cache` (named `source` in messages).
pub fn resolve_in(spec: &str, cache: &Path, source: &str) -> Result<PathBuf, ModelError> {
    let (id, revision) = match spec.split_once('@') {
        Some((id, rev)) => (id, rev),
        None => (spec, "main"),
    };
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let missing = |what: String| {
        ModelError::Invalid(format!(
        "model `{spec}`: not a folder here, and not in the Hugging Face cache ({what}; cache {} from {source}). dpft reads the cache offline and downloads nothing: fetch the model into the cache where there is a network (e.g. transformers' from_pretrained(\"{id}\")) and set HF_HOME or HF_HUB_CACHE to it, or give the model folder's path",
        cache.display()
    ))
    };
    if !repo.is_dir() {
        return Err(missing(format!("no {}", repo.display())));
    }
    let snapshots = repo.join("snapshots");
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(c) => c.trim().to_string(),
        // A commit hash given directly.
        Err(_) if snapshots.join(revision).is_dir() => revision.to_string(),
        Err(_) => return Err(missing(format!("no refs/{revision} and no snapshot {revision} in {}", repo.display()))),
    };
    let snapshot = snapshots.join(&commit);
    if !snapshot.join("config.json").is_file() {
        return Err(missing(format!("{} has no config.json", snapshot.display())));
    }
    log::info!("model `{spec}`: {} (Hugging Face cache, revision {revision})", snapshot.display());
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("dpft-hub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let repo = root.join("models--HuggingFaceTB--SmolLM2-135M");
        for commit in ["abc123", "def456"] {
            std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
            std::fs::write(repo.join("snapshots").join(commit).join("config.json"), "{}").unwrap();
        }
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "abc123\n").unwrap();
        std::fs::write(repo.join("refs/v2"), "def456").unwrap();
        root
    }

    #[test]
    fn ids_resolve_through_refs_and_commits() {
        let root = cache("ids");
        let repo = root.join("models--HuggingFaceTB--SmolLM2-135M/snapshots");
        let r = |spec: &str| resolve_in(spec, &root, "test");
        assert_eq!(r("HuggingFaceTB/SmolLM2-135M").unwrap(), repo.join("abc123"));
        assert_eq!(r("HuggingFaceTB/SmolLM2-135M@v2").unwrap(), repo.join("def456"));
        assert_eq!(r("HuggingFaceTB/SmolLM2-135M@def456").unwrap(), repo.join("def456"));
        let e = r("HuggingFaceTB/SmolLM2-360M").unwrap_err().to_string();
        assert!(e.contains("models--HuggingFaceTB--SmolLM2-360M") && e.contains("HF_HOME"), "{e}");
        let e = r("HuggingFaceTB/SmolLM2-135M@nope").unwrap_err().to_string();
        assert!(e.contains("refs/nope"), "{e}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn paths_are_not_ids() {
        assert!(looks_like_id("gpt2") && looks_like_id("org/name-1.5") && looks_like_id("org/name@v1"));
        for p in ["/abs/path", "./rel", "../up", "a/b/c", "~/x", "data:tokenizers/gpt2"] {
            assert!(!looks_like_id(p), "{p}");
        }
        assert_eq!(resolve(Path::new("/no/such/folder")).unwrap(), PathBuf::from("/no/such/folder"));
    }
}
