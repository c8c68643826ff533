//! One writer per folder: `dpft train` and `dpft sweep` hold an exclusive OS file lock on
//! `FOLDER/.dpft.lock` for the life of the process. Two trainings of one run folder would train the same
//! steps twice with independent noise (and the ledger would account for one); the second is refused,
//! naming the holder's pid. The OS drops the lock when the holder exits in any way, so a crashed or killed
//! holder never blocks the next start. (std's `File::try_lock`: flock(2) on Linux.)

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Result;

use crate::exit::BadInput;

/// The lock file's name inside a locked folder.
pub const FILE: &str = ".dpft.lock";

/// An exclusive lock on a folder, held until dropped (or the process ends).
#[derive(Debug)]
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Creates `dir` if needed and locks it, or refuses (exit 2) when another process holds it. `what`
    /// names the folder's role in the message (`run folder`, `sweep folder`).
    pub fn acquire(dir: &Path, what: &str) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(BadInput(format!("--out {} is a file; give a folder", dir.display())).into());
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            BadInput(format!(
                "--out {}: cannot create the folder ({e}); give a folder dpft can write to",
                dir.display()
            ))
        })?;
        let path = dir.join(FILE);
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| {
                BadInput(format!(
                    "--out {}: cannot write in the folder ({e}); give a folder dpft can write to",
                    dir.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another dpft process".to_string()
                } else {
                    format!("dpft process {holder}")
                };
                return Err(BadInput(format!(
                    "{what} {} is in use by {who}: two writers would train the same steps twice with independent noise; wait for it to finish or stop it (nothing was changed)",
                    dir.display()
                ))
                .into());
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context(format!("locking {}", path.display())));
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_a_released_one_is_taken() {
        let dir = std::env::temp_dir().join(format!("dpft-lock-{}", std::process::id()));
        let first = FolderLock::acquire(&dir, "run folder").unwrap();
        let e = FolderLock::acquire(&dir, "run folder").unwrap_err().to_string();
        assert!(e.contains("in use by dpft process") && e.contains(&std::process::id().to_string()), "{e}");
        drop(first);
        let again = FolderLock::acquire(&dir, "run folder");
        assert!(again.is_ok(), "released when dropped");
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
