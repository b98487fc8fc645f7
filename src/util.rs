//! Small file-system helpers used everywhere and written once: atomic writes (temp file in the
//! same directory, fsync, rename, fsync of the directory) and advisory file locks.
//!
//! Nothing here knows about images or Dockerfiles.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Writes `data` to `path` so that readers see either the old file or the whole new one.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// fsyncs a directory so that a rename inside it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An advisory `flock(2)` lock on a file, released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until an exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::lock(path, libc::LOCK_EX)
    }

    /// Blocks until a shared lock on `path` (created if missing) is held.
    pub fn shared(path: &Path) -> io::Result<FileLock> {
        Self::lock(path, libc::LOCK_SH)
    }

    /// Takes an exclusive lock if nobody holds any lock on `path`; `None` when it is held.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(Some(FileLock {
                file,
                path: path.to_owned(),
            }));
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(err)
        }
    }

    fn lock(path: &Path, op: libc::c_int) -> io::Result<FileLock> {
        let file = open_lock_file(path)?;
        loop {
            // SAFETY: flock on a file descriptor we own.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(FileLock {
            file,
            path: path.to_owned(),
        })
    }

    /// The locked file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the locked file is still the one at its path (another process may have removed
    /// or replaced it between our open and our lock; such a lock guards nothing).
    pub fn is_current(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let held = self.file.metadata()?;
        match fs::metadata(&self.path) {
            Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor; closing it would release the lock anyway.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Creates `dir` and its parents; a no-op when it exists.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Formats a byte count as docker does (`1.23MB`, decimal units, three significant digits).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        // three significant digits, as docker's go-units HumanSize does
        let digits = if value >= 100.0 {
            0
        } else if value >= 10.0 {
            1
        } else {
            2
        };
        let t = format!("{value:.digits$}");
        let t = if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        };
        format!("{t}{}", UNITS[unit])
    }
}

/// Formats a duration in seconds as docker's go-units `HumanDuration` does (`2 minutes`,
/// `About an hour`, `3 weeks`); callers add ` ago`.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = secs / 3600;
    let days = hours / 24;
    match () {
        _ if secs < 1 => "Less than a second".to_string(),
        _ if secs == 1 => "1 second".to_string(),
        _ if secs < 60 => format!("{secs} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{days} days"),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", days / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", days / 30),
        _ => format!("{} years", days / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_docker() {
        let table = [
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (150, "2 minutes"),
            (3600, "About an hour"),
            (3 * 3600, "3 hours"),
            (3 * 86400, "3 days"),
            (20 * 86400, "2 weeks"),
            (90 * 86400, "3 months"),
            (800 * 86400, "2 years"),
        ];
        for (secs, want) in table {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn human_sizes_match_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(2_140_160), "2.14MB");
        assert_eq!(human_size(123_456_789), "123MB");
    }

    #[test]
    fn atomic_write_replaces_whole_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        write_atomic(&p, b"one").expect("write");
        write_atomic(&p, b"two").expect("write");
        assert_eq!(fs::read(&p).expect("read"), b"two");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }
}

/// A file the user named on the command line (`save -o`, `--iidfile`, `--output type=tar,dest=`,
/// `--digestfile`, `export -o`), open for writing.
///
/// What the name leads to decides how it is written (symbolic links are followed):
/// - a regular file, or nothing yet: a temp file in the same directory, fsynced and renamed over
///   it by [`UserOutput::commit`], so readers see the old file or the whole new one and a
///   failure leaves nothing half-written (the temp file goes when this value is dropped);
/// - a character or block device, a FIFO, or a file reached through `/proc` (`/dev/stdout`,
///   `/dev/fd/N`): written *into*, as `cat > PATH` would, never replaced, truncated or chmod-ed,
///   so `-o /dev/null` run as root leaves the system's `/dev/null` a device;
/// - a directory, a socket, a dangling symbolic link: an error, before anything is written.
pub struct UserOutput {
    file: File,
    staged: Option<StagedOutput>,
}

struct StagedOutput {
    tmp: tempfile::TempPath,
    dest: PathBuf,
    dir: PathBuf,
}

/// The mode a new file gets: 0666 less the process's umask (read from `/proc/self/status`, since
/// `umask(2)` can only be read by changing it).
fn new_file_mode() -> u32 {
    let umask = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022);
    0o666 & !umask
}

/// Whether following the symbolic links of `path` passes through `/proc` (`/dev/stdout` →
/// `/proc/self/fd/1`): such a name stands for an open file of this process, written into.
fn through_proc(path: &Path) -> bool {
    let mut cur = path.to_path_buf();
    for _ in 0..40 {
        if cur.starts_with("/proc") {
            return true;
        }
        match fs::read_link(&cur) {
            Ok(target) => {
                cur = match cur.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Err(_) => return false,
        }
    }
    false
}

fn refuse(why: &str) -> io::Error {
    io::Error::other(why.to_owned())
}

impl UserOutput {
    /// Opens `path` for writing as described on [`UserOutput`]. Errors are plain reasons
    /// (`it is a directory`); callers name the path.
    pub fn create(path: &Path) -> io::Result<UserOutput> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
        let meta = match fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if fs::symlink_metadata(path).is_ok() {
                    return Err(refuse("it is a symbolic link to a missing file"));
                }
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(m) = &meta {
            let ft = m.file_type();
            if ft.is_dir() {
                return Err(refuse("it is a directory"));
            }
            if ft.is_socket() {
                return Err(refuse("it is a socket"));
            }
            let special = ft.is_char_device() || ft.is_block_device() || ft.is_fifo();
            if special || through_proc(path) {
                // write into it: no O_TRUNC (a device or a FIFO has nothing to truncate, and a
                // shell's `>>` must keep what is there), no O_CREAT, no rename, no chmod
                let file = OpenOptions::new()
                    .write(true)
                    .append(ft.is_file())
                    .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
                    .open(path)?;
                return Ok(UserOutput { file, staged: None });
            }
        }
        // a regular file (or none yet): stage beside the file the name finally leads to, so a
        // symbolic link stays a link to the new content
        let dest = match meta {
            Some(_) => fs::canonicalize(path)?,
            None => path.to_path_buf(),
        };
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".hoist-out-")
            .tempfile_in(&dir)?;
        let mode = match &meta {
            Some(m) => m.mode() & 0o7777,
            None => new_file_mode(),
        };
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some(m) = &meta {
            // as root, the replacement keeps the owner of the file it replaces
            let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
        }
        let (file, tmp) = tmp.into_parts();
        Ok(UserOutput {
            file,
            staged: Some(StagedOutput { tmp, dest, dir }),
        })
    }

    /// Whether the destination is written in place (a device, FIFO or `/dev/stdout`) rather
    /// than replaced.
    pub fn is_direct(&self) -> bool {
        self.staged.is_none()
    }

    /// Finishes the write: fsync and rename for a regular file, a flush otherwise.
    pub fn commit(self) -> io::Result<()> {
        let Some(staged) = self.staged else {
            return Ok(());
        };
        self.file.sync_all()?;
        staged.tmp.persist(&staged.dest).map_err(|e| e.error)?;
        sync_dir(&staged.dir)
    }
}

impl Write for UserOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Writes `data` to a file the user named; see [`UserOutput`].
pub fn write_user_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut out = UserOutput::create(path)?;
    out.write_all(data)?;
    out.commit()
}
