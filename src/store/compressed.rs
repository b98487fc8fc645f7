//! Compressed copies of plain layer blobs, for images leaving the store (`push`, `save
//! --format oci-archive`): layers are kept as plain tars (see docs/DESIGN.md), and registries
//! and archives get gzip (or zstd) blobs made on the way out.
//!
//! A compressed copy is an ordinary blob; `cache/compressed/FORMAT/PLAINHEX` records which
//! blob it is (`sha256:HEX SIZE`), so the same layer is compressed once and a second push sends
//! the same bytes without a compression pass. The output is deterministic (fixed gzip header and
//! level, zstd's worker-independent framing: [`crate::layer::LayerWriter`]), so the same image
//! always leaves as the same manifest digest, recorded copy or not. A copy nothing else names is
//! collected by `prune` like any unreferenced blob; the record then points at nothing and the
//! layer is compressed again when needed.
//!
//! This module does not decide when to compress (the verbs do) and never changes a stored
//! manifest: it gives a [`StoreImage`] whose manifest names the compressed blobs.

use std::fs;
use std::io;
use std::path::PathBuf;

use rayon::prelude::*;

use super::{Store, StoreError, StoreImage};
use crate::image::Digest;
use crate::layer::{Compression, LayerWriter};
use crate::util;

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const DOCKER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

fn record_path(store: &Store, compression: Compression, plain: &Digest) -> PathBuf {
    store
        .cache_dir()
        .join("compressed")
        .join(compression.name())
        .join(plain.hex())
}

/// The recorded compressed copy of `plain`, if its blob is still there.
pub fn recorded(store: &Store, compression: Compression, plain: &Digest) -> Option<(Digest, u64)> {
    let text = fs::read_to_string(record_path(store, compression, plain)).ok()?;
    let (d, size) = text.trim().split_once(' ')?;
    let d = Digest::parse(d).ok()?;
    let size = size.parse().ok()?;
    store.has_blob(&d).then_some((d, size))
}

/// The compressed copy of the plain layer blob `plain` (made and recorded when missing): its
/// digest and size. The plain blob is re-hashed on the way, so a damaged store is not sent on.
pub fn compressed_blob(
    store: &Store,
    plain: &Digest,
    compression: Compression,
) -> Result<(Digest, u64), StoreError> {
    if let Some(found) = recorded(store, compression, plain) {
        return Ok(found);
    }
    let mut src = store.open_blob(plain)?;
    let layer_err = |error| StoreError::Layer {
        diff_id: plain.clone(),
        error,
    };
    let mut w = LayerWriter::new(store.blob_writer()?, compression).map_err(layer_err)?;
    io::copy(&mut src, &mut w).map_err(|e| StoreError::io(store.blob_path(plain), e))?;
    let (out, blob) = w.finish().map_err(layer_err)?;
    if &blob.diff_id != plain {
        return Err(StoreError::DigestMismatch {
            expected: plain.clone(),
            actual: blob.diff_id,
        });
    }
    let staged = out.finish()?;
    let found = (staged.digest.clone(), staged.size);
    store.install_blob(staged)?;
    let p = record_path(store, compression, plain);
    if let Some(dir) = p.parent() {
        util::ensure_dir(dir).map_err(|e| StoreError::io(dir, e))?;
    }
    util::write_atomic(&p, format!("{} {}", found.0, found.1).as_bytes())
        .map_err(|e| StoreError::io(&p, e))?;
    Ok(found)
}

/// The media type of a plain layer compressed with `compression`, in the manifest's family
/// (OCI or docker); `None` when the layer is not a plain tar (it leaves as it is).
fn compressed_type(media_type: &str, compression: Compression) -> Option<Result<String, String>> {
    let docker = match media_type {
        OCI_TAR => false,
        DOCKER_TAR => true,
        _ => return None,
    };
    Some(match (compression, docker) {
        (Compression::Gzip, false) => Ok(format!("{OCI_TAR}+gzip")),
        (Compression::Gzip, true) => Ok(format!("{DOCKER_TAR}.gzip")),
        (Compression::Zstd, false) => Ok(format!("{OCI_TAR}+zstd")),
        (Compression::Zstd, true) => Err(
            "a docker image manifest cannot name zstd layers: push it with `--format oci`"
                .to_string(),
        ),
        (other, _) => Err(format!("`{}` is not written", other.name())),
    })
}

impl Store {
    /// The image as it leaves the store: every plain-tar layer replaced by its `compression`
    /// copy (made in parallel, once per layer; see [`compressed_blob`]); layers already
    /// compressed stay as they are. `Compression::None` gives the image as stored.
    pub fn source_compressed(
        &self,
        image: &super::ImageRecord,
        compression: Compression,
    ) -> Result<StoreImage<'_>, StoreError> {
        let plain = self.source(image);
        if compression == Compression::None {
            return Ok(plain);
        }
        let bytes = self.read_blob(&image.manifest_digest)?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::invalid(format!("manifest `{}`", image.manifest_digest), e))?;
        let Some(layers) = v.get_mut("layers").and_then(|l| l.as_array_mut()) else {
            return Ok(plain);
        };
        // (index, plain digest, new media type) of every layer to compress
        let mut todo = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let t = l.get("mediaType").and_then(|t| t.as_str()).unwrap_or("");
            if let Some(new_type) = compressed_type(t, compression) {
                let new_type = new_type.map_err(|reason| {
                    StoreError::invalid(format!("image `{}`", image.id.short()), reason)
                })?;
                let d = l.get("digest").and_then(|d| d.as_str()).unwrap_or("");
                todo.push((i, Digest::parse(d)?, new_type));
            }
        }
        if todo.is_empty() {
            return Ok(plain);
        }
        let done = todo
            .par_iter()
            .map(|(_, d, _)| compressed_blob(self, d, compression))
            .collect::<Result<Vec<_>, _>>()?;
        for ((i, _, new_type), (digest, size)) in todo.into_iter().zip(done) {
            let l = &mut layers[i];
            l["mediaType"] = new_type.into();
            l["digest"] = digest.to_string().into();
            l["size"] = size.into();
        }
        let out = serde_json::to_vec(&v).expect("a JSON value always serialises");
        Ok(plain.with_manifest(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_follow_the_manifest_family() {
        let t = |m: &str, c| compressed_type(m, c).map(|r| r.map_err(|_| ()));
        assert_eq!(
            t(OCI_TAR, Compression::Gzip),
            Some(Ok("application/vnd.oci.image.layer.v1.tar+gzip".to_string()))
        );
        assert_eq!(
            t(DOCKER_TAR, Compression::Gzip),
            Some(Ok(
                "application/vnd.docker.image.rootfs.diff.tar.gzip".to_string()
            ))
        );
        assert_eq!(
            t(OCI_TAR, Compression::Zstd),
            Some(Ok("application/vnd.oci.image.layer.v1.tar+zstd".to_string()))
        );
        assert_eq!(t(DOCKER_TAR, Compression::Zstd), Some(Err(())));
        assert_eq!(
            t(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd
            ),
            None
        );
    }

    #[test]
    fn a_layer_is_compressed_once_and_deterministically() {
        let d = tempfile::tempdir().expect("tmp");
        let store = Store::open(d.path()).expect("store");
        let tar: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 13).to_le_bytes())
            .collect();
        let (plain, _) = store.write_blob(&mut &tar[..]).expect("blob");
        let (gz, size) = compressed_blob(&store, &plain, Compression::Gzip).expect("gzip");
        assert!(size < tar.len() as u64);
        let data = store.read_blob(&gz).expect("read");
        assert_eq!(&data[..2], &[0x1f, 0x8b]);
        // recorded: the blob is not made again; and made again, it is the same bytes
        assert_eq!(
            recorded(&store, Compression::Gzip, &plain),
            Some((gz.clone(), size))
        );
        fs::remove_file(store.blob_path(&gz)).expect("rm");
        assert_eq!(recorded(&store, Compression::Gzip, &plain), None);
        assert_eq!(
            compressed_blob(&store, &plain, Compression::Gzip).expect("again"),
            (gz, size)
        );
    }
}
