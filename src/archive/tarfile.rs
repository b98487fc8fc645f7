//! Random access to the members of an archive tar: one scan records where each regular file's
//! data lies; members are then read with positional reads, any number at a time.
//!
//! Member names are cleaned (`./` dropped); a name that is absolute or climbs out with `..`, or
//! a symbolic link whose target does, makes the whole archive invalid. Symbolic and hard links
//! between members (docker ≥ 25 and skopeo write them) are resolved inside the archive.
//! Nothing is ever extracted to the file system.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tar::EntryType;

use super::ArchiveError;
use crate::layer::clean_path;

/// Where a regular member's data lies in the archive file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member {
    pub offset: u64,
    pub size: u64,
}

/// The scanned archive.
#[derive(Debug)]
pub(crate) struct TarIndex {
    /// The archive as the user named it (for messages).
    pub shown: PathBuf,
    file: Arc<File>,
    files: HashMap<String, Member>,
    /// Symbolic and hard links: cleaned name → cleaned target name.
    links: HashMap<String, String>,
}

fn clean(name: &[u8]) -> Option<String> {
    let comps = clean_path(name).ok()?;
    let parts: Vec<String> = comps
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    Some(parts.join("/"))
}

impl TarIndex {
    /// Scans the tar at `file` (already uncompressed). `shown` names it in messages.
    pub fn scan(file: File, shown: &Path) -> Result<TarIndex, ArchiveError> {
        let len = file
            .metadata()
            .map_err(|e| ArchiveError::io(shown, e))?
            .len();
        let not_tar = |reason: String| ArchiveError::NotTar {
            path: shown.to_owned(),
            reason,
        };
        if len == 0 {
            return Err(not_tar("the file is empty".into()));
        }
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        let entries = archive
            .entries_with_seek()
            .map_err(|e| not_tar(crate::layer::describe_tar_error(&e)))?;
        for entry in entries {
            let entry = entry.map_err(|e| not_tar(crate::layer::describe_tar_error(&e)))?;
            let raw = entry.path_bytes().into_owned();
            let shown_entry = String::from_utf8_lossy(&raw).into_owned();
            let kind = entry.header().entry_type();
            let absolute = raw.first() == Some(&b'/');
            let name = match clean(&raw) {
                Some(n) if !absolute => n,
                _ => {
                    return Err(ArchiveError::Escape {
                        path: shown.to_owned(),
                        entry: shown_entry,
                    })
                }
            };
            match kind {
                EntryType::Regular | EntryType::Continuous => {
                    let m = Member {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    };
                    let fits = matches!(m.offset.checked_add(m.size), Some(end) if end <= len);
                    if !fits {
                        return Err(ArchiveError::Truncated {
                            path: shown.to_owned(),
                            entry: shown_entry,
                        });
                    }
                    files.insert(name, m);
                }
                EntryType::Symlink | EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    let resolved = if kind == EntryType::Link {
                        // hard link names are relative to the archive root
                        if target.first() == Some(&b'/') {
                            None
                        } else {
                            clean(&target)
                        }
                    } else if target.first() == Some(&b'/') {
                        None
                    } else {
                        let dir = match name.rfind('/') {
                            Some(i) => &name[..=i],
                            None => "",
                        };
                        clean(&[dir.as_bytes(), &target].concat())
                    };
                    let Some(resolved) = resolved else {
                        return Err(ArchiveError::Escape {
                            path: shown.to_owned(),
                            entry: format!("{shown_entry} -> {}", String::from_utf8_lossy(&target)),
                        });
                    };
                    links.insert(name, resolved);
                }
                // directories and global headers carry nothing we read
                _ => {}
            }
        }
        if files.is_empty() {
            return Err(not_tar("it holds no files".into()));
        }
        Ok(TarIndex {
            shown: shown.to_owned(),
            file: Arc::new(file),
            files,
            links,
        })
    }

    /// Finds a member by name, following links inside the archive.
    pub fn find(&self, name: &str) -> Option<Member> {
        let mut name = clean(name.as_bytes())?;
        for _ in 0..16 {
            if let Some(m) = self.files.get(&name) {
                return Some(*m);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// Whether a member of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// A reader of a member's data.
    pub fn reader(&self, m: Member) -> MemberReader {
        MemberReader {
            file: Arc::clone(&self.file),
            pos: m.offset,
            end: m.offset + m.size,
        }
    }

    /// Reads a whole (small) member; `None` when it is missing.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, ArchiveError> {
        let Some(m) = self.find(name) else {
            return Ok(None);
        };
        if m.size > limit {
            return Err(ArchiveError::Invalid {
                path: self.shown.clone(),
                what: format!("`{name}`"),
                reason: format!("{} bytes is more than the {limit} allowed", m.size),
            });
        }
        let mut buf = Vec::with_capacity(m.size as usize);
        self.reader(m)
            .read_to_end(&mut buf)
            .map_err(|e| ArchiveError::io(&self.shown, e))?;
        Ok(Some(buf))
    }
}

/// Reads one member with positional reads (so several can be open at once).
pub(crate) struct MemberReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(left.min(usize::MAX as u64) as usize);
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive member ends early",
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}
