//! `import`: a root file system tarball (plain or compressed) becomes a one-layer base image.
//!
//! The tar is read once: while it is parsed (to refuse what is not a tar, is truncated, or holds
//! entries escaping the root) the same bytes are gzip-compressed into a staged blob, computing the
//! blob digest and the diff_id. Nothing becomes visible before the whole input has been checked.

use std::io::{self, Read, Write};

use chrono::{DateTime, SecondsFormat, Utc};

use super::{ImageRecord, Store, StoreError};
use crate::image::config::{self, Change};
use crate::image::{Digest, Reference};
use crate::layer::{self, Compression, LayerWriter};

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Config changes (`-c`), applied in order.
    pub changes: Vec<Change>,
    /// The history comment (`-m`); default `Imported from SOURCE`.
    pub message: Option<String>,
    /// What the tarball was (a path or `-`), for the history and error messages.
    pub source_name: String,
    /// The image's creation time; `None` means now.
    pub created: Option<DateTime<Utc>>,
    /// Names to give the image.
    pub names: Vec<Reference>,
}

/// Reads everything through, copying it into a writer.
struct Tee<'a, R, W> {
    inner: R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Store {
    /// Imports a root file system tarball as a one-layer image; see [`ImportOptions`].
    pub fn import_rootfs(
        &self,
        input: &mut dyn Read,
        opts: &ImportOptions,
    ) -> Result<ImageRecord, StoreError> {
        for n in &opts.names {
            super::check_name(n)?;
        }
        let what = || format!("tarball `{}`", opts.source_name);
        let bad = |reason: String| StoreError::Invalid {
            what: what(),
            reason,
        };
        let (tar, compression) = layer::decompress(input).map_err(|e| bad(e.to_string()))?;
        log::debug!("importing `{}` ({compression:?})", opts.source_name);
        let out = self.prehashed_blob_writer()?;
        let mut lw = LayerWriter::new(out, Compression::Gzip).map_err(|e| bad(e.to_string()))?;
        // one pass: the layer room checks every entry (escapes, links, whiteouts) while the same
        // bytes are compressed into the staged blob
        let scratch = self.tmp_dir()?;
        let entries = {
            let mut tee = Tee {
                inner: tar,
                out: &mut lw,
            };
            layer::check_tar_in(&mut tee, scratch.path()).map_err(|e| bad(layer_error(e)))?
        };
        if entries == 0 {
            return Err(bad("not a tar archive: no entries".into()));
        }
        let (out, blob) = lw.finish().map_err(|e| bad(e.to_string()))?;
        let staged_layer = out.finish(blob.digest.clone(), blob.size)?;

        let created = opts
            .created
            .unwrap_or_else(Utc::now)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut cfg = config::base_config(&created);
        for c in &opts.changes {
            c.apply(&mut cfg);
        }
        let comment = opts
            .message
            .clone()
            .unwrap_or_else(|| format!("Imported from {}", opts.source_name));
        config::add_layer(
            &mut cfg,
            &blob.diff_id,
            config::history_entry(&created, "", Some(&comment), false),
        );
        let cfg_bytes = config::canonical_json(&cfg)?;
        let staged_cfg = self.stage_blob(&mut &cfg_bytes[..])?;
        let manifest = config::manifest_for(
            &staged_cfg.digest,
            staged_cfg.size,
            &[(blob.digest.clone(), blob.size, blob.media_type.clone())],
        );
        let manifest_bytes = config::canonical_json(&manifest)?;
        let id: Digest = staged_cfg.digest.clone();
        self.record_layer_size(&blob.digest, &blob.diff_id, blob.uncompressed_size);
        self.install_blob(staged_layer)?;
        self.install_blob(staged_cfg)?;
        let rec = self.commit_image(&manifest_bytes, &opts.names)?;
        debug_assert_eq!(rec.id, id);
        Ok(rec)
    }
}

/// One line about a refused layer (the tar crate's messages quote raw header bytes).
fn layer_error(e: layer::LayerError) -> String {
    let layer::LayerError::Tar(msg) = e else {
        return e.to_string();
    };
    let lower = msg.to_ascii_lowercase();
    if lower.contains("unexpected end")
        || lower.contains("entire block")
        || lower.contains("unexpected eof")
        || lower.contains("incomplete")
    {
        return "not a valid tar archive: it ends in the middle (truncated)".into();
    }
    if lower.contains("cksum") || lower.contains("numeric field") {
        return "not a valid tar archive: unreadable entry header".into();
    }
    let first: String = msg
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(160)
        .collect();
    format!("not a valid tar archive: {first}")
}
