//! The data directory: made private (0700, every file in it 0600) and locked for the life of the process, so
//! that a second `callbox serve` on the same folder refuses to start instead of sharing one SQLite database and
//! one set of in-memory login limits with the first.

use crate::config::Config;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "callbox.lock";

/// Why the data directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Creating, opening or changing the mode of a file.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process holds the lock.
    #[error(
        "the data directory {dir} is already in use by another callbox serve{holder} (lock file {lock}); stop that \
         server, or give this one its own folder with --data"
    )]
    InUse {
        /// The data directory.
        dir: String,
        /// The lock file.
        lock: String,
        /// ", process N" when the holder wrote its process id.
        holder: String,
    },
}

/// The exclusive lock on a data directory; released when dropped (or by the kernel when the process ends, even
/// on SIGKILL, so a crash never leaves a stale lock behind).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates the data directory (0700) and takes its lock. With SQLite, the database file is made 0600 before
/// SQLite opens it, because SQLite gives the `-wal` and `-shm` files it creates the database file's mode. Files
/// left by older versions with a wider mode are tightened to 0600.
pub fn prepare(config: &Config) -> Result<DataDirLock, DataDirError> {
    let dir = &config.data;
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    set_mode(dir, 0o700)?;
    let lock = lock(dir)?;
    let database = config.database_path();
    if config.database_url.is_none() {
        drop(private_file(&database)?);
    }
    let with_suffix = |suffix: &str| {
        let mut name = database.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    for path in [with_suffix("-wal"), with_suffix("-shm"), config.master_key_path(), config.admin_token_path()] {
        if path.exists() {
            set_mode(&path, 0o600)?;
        }
    }
    Ok(lock)
}

/// Takes the exclusive lock of `dir` without waiting; [`DataDirError::InUse`] when another process holds it.
pub fn lock(dir: &Path) -> Result<DataDirLock, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let mut file = private_file(&path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim().parse::<u32>().map(|pid| format!(", process {pid}")).unwrap_or_default();
            return Err(DataDirError::InUse {
                dir: dir.display().to_string(),
                lock: path.display().to_string(),
                holder,
            });
        }
        Err(TryLockError::Error(source)) => {
            return Err(DataDirError::Io { context: format!("locking {}", path.display()), source })
        }
    }
    // The holder's process id, for the message a second server prints; only written once the lock is ours.
    let written = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{}", std::process::id()));
    written.map_err(io(format!("writing {}", path.display())))?;
    Ok(DataDirLock { _file: file, path })
}

/// Opens (creating if needed) a file that only the owner may read and write.
fn private_file(path: &Path) -> Result<File, DataDirError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(io(format!("opening {}", path.display())))?;
    // The mode above only applies to a new file; an older one is tightened.
    set_mode(path, 0o600)?;
    Ok(file)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), DataDirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io(format!("setting the mode of {}", path.display())))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> DataDirError {
    move |source| DataDirError::Io { context, source }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::TempDir::new().unwrap();
        let first = lock(dir.path()).unwrap();
        let error = lock(dir.path()).unwrap_err();
        assert!(matches!(error, DataDirError::InUse { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains(&format!("process {}", std::process::id())), "{message}");
        assert!(message.contains("--data"), "{message}");
        drop(first);
        assert!(lock(dir.path()).is_ok(), "released on drop");
    }
}
