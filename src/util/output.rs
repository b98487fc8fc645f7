//! Writing a file the user named (`-o`, `--iidfile`, `dest=`): into devices and FIFOs, by atomic
//! replacement for regular files. See [`UserOutput`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::sync_dir;

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
            .tempfile_in(&dir)
            // tempfile's message names its random temp path; the caller names the real one
            .map_err(|e| match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::from(e.kind()),
            })?;
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
