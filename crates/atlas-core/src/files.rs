//! Writing output files without leaving partial ones behind, and without replacing what
//! the output path names: a symlink keeps pointing at its target (which gets the text), a
//! FIFO or a device (`/dev/stdout`, `/dev/full`) is written in place, never turned into a
//! regular file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the temporary files of one process, so that two threads writing the same path
/// at once never share a temporary file.
static TEMPORARY: AtomicU64 = AtomicU64::new(0);

/// Most symlinks followed from one path (the kernel's own limit, `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Where writing `path` lands: `path` itself, or the file its chain of symlinks ends at
/// (which need not exist yet: a dangling link is written through, as `open` would).
pub fn resolve_output(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = if target.is_absolute() {
                    target
                } else {
                    current.parent().unwrap_or(Path::new(".")).join(target)
                };
            }
            _ => return Ok(current),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_SYMLINKS} symbolic links to follow"
    )))
}

/// Whether `path` (resolved) exists and is not a regular file: a FIFO, a device, a
/// socket. Those are written in place.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn temporary_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMPORARY.fetch_add(1, Ordering::Relaxed);
    folder_of(path).join(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Checks, before any work, that `path` can be written: a FIFO or device that exists, or
/// a folder where a file can be created (tried with a temporary file, removed at once),
/// and not a folder itself. So an unwritable `--output` is reported before a long solve,
/// not after it.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let target = resolve_output(path)?;
    if is_special(&target) {
        // Opening a FIFO for writing would block until a reader comes; it exists and will
        // be opened when the text is ready.
        return Ok(());
    }
    if target.is_dir() {
        return Err(std::io::Error::other("is a folder"));
    }
    let probe = temporary_beside(&target);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// Writes `text` to `path`. A regular file (or one that does not exist yet) is written to
/// a temporary file beside it, synced, then renamed over it, so that a failure (a full
/// disk, a missing folder) leaves no partial file; the temporary file is removed when
/// anything fails. Concurrent writers of the same path (threads or processes) each write
/// their own temporary file; the last rename wins, whole. A symlink is followed to its
/// target, which is replaced in the target's folder (the link stays). A FIFO or a device
/// is written in place. Every write error, a full disk included, is returned.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let target = resolve_output(path)?;
    if is_special(&target) {
        let mut file = std::fs::OpenOptions::new().write(true).open(&target)?;
        file.write_all(text.as_bytes())?;
        return file.flush();
    }
    let tmp = temporary_beside(&target);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        // Blocks that cannot be allocated (a full disk) may only fail here.
        file.sync_data()?;
        std::fs::rename(&tmp, &target)
    })();
    written.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("atlas-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_the_whole_text_or_nothing() {
        let dir = temp("whole");
        let path = dir.join("out.json");
        write_atomically(&path, "{}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        // A folder that does not exist: an error, and no file.
        let missing = dir.join("no-such-folder").join("out.json");
        assert!(write_atomically(&missing, "{}\n").is_err());
        assert!(check_writable(&missing).is_err());
        assert!(!missing.exists());
        // A folder is not a file to write.
        assert!(check_writable(&dir).is_err());
        // No temporary file is left beside the output.
        assert!(check_writable(&path).is_ok());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = temp("symlink");
        let real = dir.join("sub");
        std::fs::create_dir_all(&real).unwrap();
        let target = real.join("target.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.join("link.json");
        std::os::unix::fs::symlink("sub/target.json", &link).unwrap();
        write_atomically(&link, "new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // A dangling link is written through to its target.
        let dangling = dir.join("dangling.json");
        std::os::unix::fs::symlink(real.join("later.json"), &dangling).unwrap();
        write_atomically(&dangling, "made").unwrap();
        assert_eq!(
            std::fs::read_to_string(real.join("later.json")).unwrap(),
            "made"
        );
        assert!(std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn devices_are_written_in_place_and_a_full_disk_is_an_error() {
        // /dev/null stays a device (a rename would have replaced it, or failed).
        write_atomically(Path::new("/dev/null"), "x").unwrap();
        assert!(is_special(Path::new("/dev/null")));
        if Path::new("/dev/full").exists() {
            let e = write_atomically(Path::new("/dev/full"), "x").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(28), "{e}"); // ENOSPC
            assert!(is_special(Path::new("/dev/full")));
        }
    }
}
