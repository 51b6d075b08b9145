//! The folder level: one JSON file per key (`KEY.json`), written to a temporary file in
//! the same folder and renamed over the entry, so that readers in any process see a whole
//! entry or none, and two writers of the same key leave one of their whole entries.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Entry, WarningSink};

pub(super) struct FolderLevel {
    dir: PathBuf,
    /// Cleared when the folder cannot be written; the level is then only read.
    writable: AtomicBool,
}

impl FolderLevel {
    /// Opens `dir`, creating it when missing, and checks that a file can be written
    /// there. A folder that cannot be is reported once through `warn`.
    pub(super) fn open(dir: PathBuf, warn: &WarningSink) -> Self {
        let level = Self {
            dir,
            writable: AtomicBool::new(true),
        };
        let probe = std::fs::create_dir_all(&level.dir).and_then(|()| {
            let path = level.dir.join(format!(".probe.{}.tmp", std::process::id()));
            std::fs::write(&path, b"")?;
            std::fs::remove_file(&path)
        });
        if let Err(e) = probe {
            level.disable(&e, warn);
        }
        level
    }

    fn disable(&self, e: &std::io::Error, warn: &WarningSink) {
        if self.writable.swap(false, Ordering::Relaxed) {
            warn(&format!(
                "cache folder {} is not writable ({e}): results are not stored there; solving goes on",
                self.dir.display()
            ));
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// `None` when there is no entry; `Some(Err)` for an entry that cannot be read or
    /// parsed (a miss for the caller, and removed).
    pub(super) fn get(&self, key: &str) -> Option<Result<Entry, String>> {
        let text = match std::fs::read_to_string(self.path(key)) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return None,
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(serde_json::from_str(&text).map_err(|e| e.to_string()))
    }

    pub(super) fn put(&self, key: &str, text: &str, warn: &WarningSink) {
        if !self.writable.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = atlas_core::files::write_atomically(&self.path(key), text) {
            self.disable(&e, warn);
        }
    }

    pub(super) fn remove(&self, key: &str) {
        if self.writable.load(Ordering::Relaxed) {
            let _ = std::fs::remove_file(self.path(key));
        }
    }
}
