//! `oci-archive`: a tar of an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`).
//!
//! Names live in each manifest descriptor's `org.opencontainers.image.ref.name` annotation, as
//! `skopeo copy … oci-archive:FILE:NAME` writes them; hoist writes full names
//! (`localhost/app:latest`) so that they read back unchanged, and reads a short one the way
//! podman does (`app:v1` → `localhost/app:v1`). containerd's `io.containerd.image.name`, when
//! present, is preferred since it is always a full name. A nested image index is resolved to
//! this machine's platform.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use oci_spec::image::{ImageIndex, ImageManifest};
use serde_json::json;

use super::tarfile::TarIndex;
use super::{
    append_bytes, append_dir, member_header, ArchiveError, SaveImage, VerifyingReader, JSON_LIMIT,
};
use crate::image::{Digest, ImageError, ImageSource, Reference};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One image of an oci-archive.
pub struct OciImage {
    index: Arc<TarIndex>,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    id: Digest,
    names: Vec<Reference>,
}

impl OciImage {
    pub fn names(&self) -> &[Reference] {
        &self.names
    }
    pub fn id(&self) -> &Digest {
        &self.id
    }
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

impl ImageSource for OciImage {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        Ok((self.manifest_bytes.clone(), self.manifest.clone()))
    }

    fn config(&self) -> Result<Vec<u8>, ImageError> {
        match self.index.read(&blob_name(&self.id), JSON_LIMIT) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Err(ImageError::MissingBlob(self.id.clone())),
            Err(e) => Err(ImageError::Io(io::Error::other(e.to_string()))),
        }
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        let m = self
            .index
            .find(&blob_name(digest))
            .ok_or_else(|| ImageError::MissingBlob(digest.clone()))?;
        Ok(Box::new(self.index.reader(m)))
    }
}

/// This machine's platform in OCI terms.
pub(crate) fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn digest_of(path: &Path, what: &str, d: &oci_spec::image::Digest) -> Result<Digest, ArchiveError> {
    Digest::from_oci(d).map_err(|e| ArchiveError::invalid(path, what, e))
}

/// Reads every image the layout's `index.json` names.
pub(super) fn read(index: TarIndex, scratch: &Path) -> Result<Vec<OciImage>, ArchiveError> {
    let path = index.shown.clone();
    let index = Arc::new(index);
    let bytes = index
        .read("index.json", JSON_LIMIT)?
        .ok_or_else(|| ArchiveError::UnknownFormat { path: path.clone() })?;
    let top: ImageIndex = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::invalid(&path, "`index.json`", e))?;
    let mut images: Vec<OciImage> = Vec::new();
    for desc in top.manifests() {
        let mut digest = digest_of(&path, "`index.json`", desc.digest())?;
        let mut media = desc.media_type().to_string();
        let mut what = "`index.json`".to_string();
        let mut manifest_bytes = read_blob(&index, &digest, &what)?;
        // a nested index (multi-platform): pick this machine's manifest
        if media == MT_OCI_INDEX || media == MT_DOCKER_LIST {
            let nested: ImageIndex = serde_json::from_slice(&manifest_bytes)
                .map_err(|e| ArchiveError::invalid(&path, format!("image index `{digest}`"), e))?;
            let arch = this_arch();
            let pick = nested
                .manifests()
                .iter()
                .find(|d| {
                    d.platform().as_ref().is_some_and(|p| {
                        p.os().to_string() == "linux" && p.architecture().to_string() == arch
                    })
                })
                .ok_or_else(|| {
                    ArchiveError::invalid(
                        &path,
                        format!("image index `{digest}`"),
                        format!("it has no image for linux/{arch}"),
                    )
                })?;
            what = format!("image index `{digest}`");
            digest = digest_of(&path, &what, pick.digest())?;
            media = pick.media_type().to_string();
            manifest_bytes = read_blob(&index, &digest, &what)?;
        }
        if media != MT_OCI_MANIFEST && media != MT_DOCKER_MANIFEST {
            return Err(ArchiveError::invalid(
                &path,
                format!("manifest `{digest}`"),
                format!("unsupported media type `{media}`"),
            ));
        }
        let found = Digest::of_bytes(&manifest_bytes);
        if found != digest {
            return Err(ArchiveError::invalid(
                &path,
                format!("manifest `{digest}`"),
                format!("its content has digest `{found}`"),
            ));
        }
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|e| ArchiveError::invalid(&path, format!("manifest `{digest}`"), e))?;
        let mwhat = format!("manifest `{digest}`");
        let id = digest_of(&path, &mwhat, manifest.config().digest())?;
        let config = read_blob(&index, &id, &mwhat)?;
        if Digest::of_bytes(&config) != id || config.len() as u64 != manifest.config().size() {
            return Err(ArchiveError::invalid(
                &path,
                format!("config `{id}`"),
                "its content does not match the digest and size in the manifest",
            ));
        }
        for l in manifest.layers() {
            require(&index, &digest_of(&path, &mwhat, l.digest())?, &mwhat)?;
        }
        let mut names = Vec::new();
        if let Some(ann) = desc.annotations() {
            let name = match (ann.get(CONTAINERD_NAME), ann.get(REF_NAME)) {
                (Some(full), _) => Some(Reference::parse(full).map_err(|e| {
                    ArchiveError::invalid(
                        &path,
                        "`index.json`",
                        format!("image name `{full}`: {e}"),
                    )
                })?),
                (None, Some(short)) => Some(Reference::parse_local(short).map_err(|e| {
                    ArchiveError::invalid(
                        &path,
                        "`index.json`",
                        format!("image name `{short}`: {e}"),
                    )
                })?),
                (None, None) => None,
            };
            names.extend(name);
        }
        if let Some(existing) = images
            .iter_mut()
            .find(|i| i.id == id && Digest::of_bytes(&i.manifest_bytes) == digest)
        {
            for n in names {
                if !existing.names.contains(&n) {
                    existing.names.push(n);
                }
            }
            continue;
        }
        images.push(OciImage {
            index: Arc::clone(&index),
            manifest_bytes,
            manifest,
            id,
            names,
        });
    }
    if images.is_empty() {
        return Err(ArchiveError::invalid(
            &path,
            "`index.json`",
            "it names no image",
        ));
    }
    // every layer is read once before anything is loaded: a layer that would escape when
    // unpacked, or that is not a tar, refuses the whole archive
    let mut checked: HashSet<Digest> = HashSet::new();
    for img in &images {
        for l in img.manifest.layers() {
            let d = digest_of(&path, "manifest", l.digest())?;
            if !checked.insert(d.clone()) {
                continue;
            }
            let member = blob_name(&d);
            let m = index
                .find(&member)
                .ok_or_else(|| ArchiveError::MissingBlob {
                    path: path.clone(),
                    what: format!("manifest `{}`", Digest::of_bytes(&img.manifest_bytes)),
                    member: member.clone(),
                })?;
            let what = format!("layer `{member}`");
            // the blob is hashed in the same pass, so that a damaged one refuses the whole
            // archive before the first image is copied
            let mut blob = VerifyingReader::new(index.reader(m), d.clone(), l.size());
            let (tar, _) =
                crate::layer::decompress(io::BufReader::with_capacity(256 * 1024, &mut blob))
                    .map_err(|e| ArchiveError::invalid(&path, &what, e))?;
            crate::layer::check_tar_in(tar, scratch)
                .map_err(|e| ArchiveError::invalid(&path, &what, e))?;
            io::copy(&mut blob, &mut io::sink())
                .map_err(|e| ArchiveError::invalid(&path, &what, e))?;
        }
    }
    Ok(images)
}

fn read_blob(index: &TarIndex, d: &Digest, what: &str) -> Result<Vec<u8>, ArchiveError> {
    index
        .read(&blob_name(d), JSON_LIMIT)?
        .ok_or_else(|| ArchiveError::MissingBlob {
            path: index.shown.clone(),
            what: what.to_owned(),
            member: blob_name(d),
        })
}

fn require(index: &TarIndex, d: &Digest, what: &str) -> Result<(), ArchiveError> {
    if index.contains(&blob_name(d)) {
        Ok(())
    } else {
        Err(ArchiveError::MissingBlob {
            path: index.shown.clone(),
            what: what.to_owned(),
            member: blob_name(d),
        })
    }
}

/// Writes an OCI layout tar: `oci-layout`, the blobs, then `index.json`.
pub(super) fn write<W: Write>(
    out: W,
    shown: &Path,
    images: &[SaveImage<'_>],
) -> Result<W, ArchiveError> {
    let label = shown.display().to_string();
    let mut b = tar::Builder::new(out);
    append_bytes(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        &label,
    )?;
    append_dir(&mut b, "blobs/", &label)?;
    append_dir(&mut b, "blobs/sha256/", &label)?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut descriptors = Vec::new();
    for img in images {
        let src_err = |source: ImageError| ArchiveError::Source {
            image: img.shown.clone(),
            source,
        };
        let (mbytes, manifest) = img.source.manifest().map_err(src_err)?;
        let mdigest = Digest::of_bytes(&mbytes);
        let config = img.source.config().map_err(src_err)?;
        let cdigest = digest_of(shown, "manifest", manifest.config().digest())?;
        if Digest::of_bytes(&config) != cdigest {
            return Err(src_err(ImageError::DigestMismatch {
                digest: cdigest,
                actual: Digest::of_bytes(&config),
            }));
        }
        for (d, data) in [(&mdigest, &mbytes), (&cdigest, &config)] {
            if written.insert(d.clone()) {
                append_bytes(&mut b, &blob_name(d), data, &label)?;
            }
        }
        for l in manifest.layers() {
            let d = digest_of(shown, "manifest", l.digest())?;
            if !written.insert(d.clone()) {
                continue;
            }
            let blob = img.source.open_blob(&d).map_err(src_err)?;
            let reader = VerifyingReader::new(blob, d.clone(), l.size());
            let mut h = member_header(tar::EntryType::Regular, 0o444, l.size());
            b.append_data(&mut h, blob_name(&d), reader).map_err(|e| {
                ArchiveError::invalid(shown, format!("layer `{d}` of `{}`", img.shown), e)
            })?;
        }
        let media = manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_else(|| MT_OCI_MANIFEST.to_string());
        let base = json!({"mediaType": media, "digest": mdigest.to_string(), "size": mbytes.len()});
        if img.names.is_empty() {
            descriptors.push(base.clone());
        }
        for n in &img.names {
            let mut d = base.clone();
            d["annotations"] = json!({ REF_NAME: n.to_string() });
            descriptors.push(d);
        }
    }
    let index = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": descriptors});
    let bytes =
        serde_json::to_vec(&index).map_err(|e| ArchiveError::invalid(shown, "`index.json`", e))?;
    append_bytes(&mut b, "index.json", &bytes, &label)?;
    b.into_inner().map_err(|e| ArchiveError::io(shown, e))
}
