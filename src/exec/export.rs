//! `--output`: the final file system of a build, flattened from its layer dirs, written to a
//! directory (`type=local`) or a tar file (`type=tar`) instead of, or besides, an image.
//!
//! Reads the layers through [`RootView`] (whiteouts and opaque dirs applied), never writes into
//! them. The tar is written by the layer room's deterministic writer, so `--timestamp` clamps it;
//! a directory output gets the same clamped times.

use std::fs;
use std::path::{Path, PathBuf};

use super::copy::{Attrs, LayerWriter};
use super::rootfs::RootView;
use super::{ExecError, ExportTarget};

/// Copies the merged file system of `dirs` into `dest` (which must be missing or empty). With
/// `keep_records`, owners recorded in single-id mode stay recorded (a tree the layer room's tar
/// writer reads); without, the internal attribute never reaches the user's directory.
pub(crate) fn flatten(dirs: &[PathBuf], dest: &Path, keep_records: bool) -> Result<(), ExecError> {
    let view = RootView::new(dirs.to_vec());
    let empty = RootView::new(Vec::new());
    let mut w = LayerWriter::new(dest, &empty);
    w.record_owners = keep_records;
    let entries = view
        .walk(Path::new("/"))
        .map_err(|e| ExecError::Output(format!("reading the image: {e}")))?;
    let attrs = Attrs {
        chown: None,
        chmod: None,
        keep_owner: true,
    };
    let mut dirs_meta = Vec::new();
    for e in entries.iter().skip(1) {
        w.put(&e.real, &e.image_path, &attrs).map_err(|err| {
            ExecError::Output(format!("writing `{}`: {err}", e.image_path.display()))
        })?;
        if e.meta.is_dir() {
            dirs_meta.push((e.image_path.clone(), e.meta.clone()));
        }
    }
    w.fix_dir_times(&dirs_meta)
        .map_err(|e| ExecError::Output(e.to_string()))?;
    if !w.unmappable.is_empty() {
        log::warn!(
            "`--output`: owners {:?} cannot be represented here; those files keep the current owner",
            w.unmappable
        );
    }
    Ok(())
}

/// Writes the file system of `dirs` to `target`.
pub fn export(
    dirs: &[PathBuf],
    target: &ExportTarget,
    timestamp: Option<i64>,
) -> Result<(), ExecError> {
    match target {
        ExportTarget::Local(dest) => {
            if dest.exists() {
                let mut it = fs::read_dir(dest)
                    .map_err(|e| ExecError::Output(format!("`{}`: {e}", dest.display())))?;
                if it.next().is_some() {
                    return Err(ExecError::Output(format!(
                        "`{}` exists and is not empty",
                        dest.display()
                    )));
                }
            } else {
                fs::create_dir_all(dest).map_err(|e| {
                    ExecError::Output(format!("creating `{}`: {e}", dest.display()))
                })?;
            }
            flatten(dirs, dest, false)?;
            // the times `type=tar` writes (and the image's blobs hold)
            super::cache::clamp_mtimes(dest, timestamp)
                .map_err(|e| ExecError::Output(format!("`{}`: {e}", dest.display())))
        }
        ExportTarget::Tar(file) => {
            let shown = |e: std::io::Error| ExecError::Output(format!("`{}`: {e}", file.display()));
            // a device or FIFO (`dest=/dev/stdout`) is written into; a regular file is replaced
            // once the tar is complete (see `util::UserOutput`)
            let out = crate::util::UserOutput::create(file).map_err(shown)?;
            // the flattened tree is made beside a regular destination; for a device, whose
            // directory (`/dev`) is no place for it, in the system's temp dir
            let parent = if out.is_direct() {
                std::env::temp_dir()
            } else {
                file.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."))
                    .to_path_buf()
            };
            let tmp = tempfile::Builder::new()
                .prefix(".hoist-output-")
                .tempdir_in(&parent)
                .map_err(|e| ExecError::Output(format!("`{}`: {e}", parent.display())))?;
            let root = tmp.path().join("rootfs");
            fs::create_dir(&root).map_err(|e| ExecError::Output(e.to_string()))?;
            flatten(dirs, &root, true)?;
            let w = std::io::BufWriter::new(out);
            let w = crate::layer::diff::write_tar(
                &root,
                w,
                crate::layer::diff::DirKind::Plain,
                timestamp,
            )
            .map_err(|e| ExecError::Output(e.to_string()))?;
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(crate::util::UserOutput::commit)
                .map_err(shown)?;
            Ok(())
        }
    }
}
