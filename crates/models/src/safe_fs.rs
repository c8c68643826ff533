//! Writes that a planted link cannot redirect. dpft often runs as root inside shared folders: a symbolic
//! link planted at a temporary name (`summary.json.tmp`, `checkpoints/latest.tmp`, `model.tmp/`) must not
//! make it write outside the folder it was given, and a link at a final name must be replaced, not
//! written through. So every temporary file is created exclusively (`O_CREAT | O_EXCL`, which never follows
//! a link, even a dangling one) after removing whatever sits at its name (removing a link removes the link,
//! never its target), and moved into place with `rename(2)`, which replaces a link at the destination
//! rather than following it. Written with std alone: the behaviour is two flags and a rename, and a crate
//! (`tempfile`, `atomicwrites`) would pick random names we then could not clean up after a kill.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary name next to `path`: `.NAME.tmp` in the same folder (so the rename stays on one file
/// system).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Removes the entry at `path` without following it: a link is removed itself, a folder with its
/// contents (links inside are removed, never followed), a file; nothing there is fine.
pub fn remove_entry(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a new file at `path`, removing what was there first; `private` makes it owner-only (0600).
/// The creation is exclusive, so a link planted between the removal and the creation makes it fail
/// rather than write through the link.
pub fn create_new(path: &Path, private: bool) -> io::Result<File> {
    remove_entry(path)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    options.open(path)
}

/// Writes `bytes` to `path` atomically: into an exclusively created temporary file, synced, then renamed
/// over `path` (a reader sees the old or the new content, never part of it; a link at `path` is replaced).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, false)
}

/// [`write_atomic`] for a secret: the file is owner-only from its creation.
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, true)
}

fn write_atomic_with(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let tmp = temp_path(path);
    let mut f = create_new(&tmp, private).map_err(|e| with_path(e, &tmp))?;
    f.write_all(bytes).map_err(|e| with_path(e, &tmp))?;
    f.sync_all().map_err(|e| with_path(e, &tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| with_path(e, path))
}

/// Claims the temporary name of `path` for a library that writes files by name (safetensors): creates it
/// exclusively as an empty regular file (what was there removed first) and returns it, so that the
/// library's own open finds our file rather than a planted link. Move it into place with `rename`.
pub fn claim_temp(path: &Path) -> io::Result<PathBuf> {
    let tmp = temp_path(path);
    create_new(&tmp, false).map_err(|e| with_path(e, &tmp))?;
    Ok(tmp)
}

/// A new, empty folder at `path` (what was there removed without following links). Its parent must exist.
pub fn fresh_dir(path: &Path) -> io::Result<()> {
    remove_entry(path).map_err(|e| with_path(e, path))?;
    std::fs::create_dir(path).map_err(|e| with_path(e, path))
}

/// Moves the folder `tmp` to `dir`, replacing what was at `dir` (a link there is removed, not followed).
pub fn replace_dir(tmp: &Path, dir: &Path) -> io::Result<()> {
    remove_entry(dir).map_err(|e| with_path(e, dir))?;
    std::fs::rename(tmp, dir).map_err(|e| with_path(e, dir))
}

/// Whether `path` is a symbolic link (false when nothing is there).
pub fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dpft-safe-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("inside")).unwrap();
        std::fs::create_dir_all(d.join("outside")).unwrap();
        d
    }

    #[test]
    fn a_link_at_the_temporary_name_is_not_followed() {
        let d = scratch("tmp-link");
        let target = d.join("outside/victim");
        std::fs::write(&target, "keep").unwrap();
        let path = d.join("inside/summary.json");
        symlink(&target, temp_path(&path)).unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!is_link(&path));
        // A dangling link at the temporary name does not create its target either.
        symlink(d.join("outside/created"), temp_path(&path)).unwrap();
        write_atomic(&path, b"again").unwrap();
        assert!(!d.join("outside/created").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_link_at_the_final_name_is_replaced() {
        let d = scratch("final-link");
        let target = d.join("outside/victim");
        std::fs::write(&target, "keep").unwrap();
        let path = d.join("inside/summary.json");
        symlink(&target, &path).unwrap();
        write_atomic_private(&path, b"new").unwrap();
        assert!(!is_link(&path));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn folders_behind_links_are_left_alone() {
        let d = scratch("dir-link");
        std::fs::write(d.join("outside/file"), "keep").unwrap();
        let tmp = d.join("inside/model.tmp");
        symlink(d.join("outside"), &tmp).unwrap();
        fresh_dir(&tmp).unwrap();
        assert!(!is_link(&tmp) && tmp.is_dir());
        assert_eq!(std::fs::read_to_string(d.join("outside/file")).unwrap(), "keep");
        let dir = d.join("inside/model");
        symlink(d.join("outside"), &dir).unwrap();
        replace_dir(&tmp, &dir).unwrap();
        assert!(!is_link(&dir) && dir.is_dir());
        assert_eq!(std::fs::read_to_string(d.join("outside/file")).unwrap(), "keep");
        let _ = std::fs::remove_dir_all(&d);
    }
}
