//! Writing output files without leaving partial ones behind.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the temporary files of one process, so that two threads writing the same path
/// at once never share a temporary file.
static TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Writes `text` to a temporary file beside `path`, then renames it over `path`, so that a
/// failure (a full disk, a missing folder) leaves no partial file; the temporary file is
/// removed when the rename fails. Concurrent writers of the same path (threads or
/// processes) each write their own temporary file; the last rename wins, whole.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMPORARY.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::write_atomically;

    #[test]
    fn writes_the_whole_text_or_nothing() {
        let dir = std::env::temp_dir().join(format!("atlas-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        write_atomically(&path, "{}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        // A folder that does not exist: an error, and no file.
        let missing = dir.join("no-such-folder").join("out.json");
        assert!(write_atomically(&missing, "{}\n").is_err());
        assert!(!missing.exists());
        // No temporary file is left beside the output.
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
