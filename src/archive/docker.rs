//! `docker-archive`: `docker save`'s format (docker image spec v1.2, "Combined Image JSON +
//! Filesystem Changeset Format").
//!
//! Written as skopeo and docker (before 25) write it: `manifest.json`
//! (`[{"Config","RepoTags","Layers"}]`), the config as `<hex>.json`, each layer as an
//! uncompressed `<diff_id hex>.tar`, the legacy per-layer directories `<v1 id>/` (`VERSION`,
//! `json`, `layer.tar` linking to the tar) and `repositories`. RepoTags are docker's short
//! names (`busybox:latest`, `localhost/app:latest`).
//!
//! Read from `manifest.json` alone, so that `docker save` (old and ≥ 25) and skopeo layouts all
//! work; layers may be compressed or not. Since the archive carries layers uncompressed, loading
//! compresses them again (gzip, in the caller's scratch directory) and checks each against the
//! config's diff_id: the config bytes — and so the image ID — and the diff_ids stay the same,
//! only the layer blob digests are new.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;
use serde::Deserialize;
use serde_json::json;

use super::tarfile::TarIndex;
use super::{
    append_bytes, append_dir, member_header, ArchiveError, SaveImage, VerifyingReader, JSON_LIMIT,
};
use crate::image::{Digest, DigestingReader, ImageError, ImageSource, Reference};
use crate::layer::{self, Compression, LayerWriter};

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// One image of a docker-archive, with its layers recompressed into the scratch directory.
pub struct DockerImage {
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    config: Vec<u8>,
    id: Digest,
    names: Vec<Reference>,
    layers: HashMap<Digest, PathBuf>,
}

impl DockerImage {
    pub fn names(&self) -> &[Reference] {
        &self.names
    }
    pub fn id(&self) -> &Digest {
        &self.id
    }
}

impl ImageSource for DockerImage {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        Ok((self.manifest_bytes.clone(), self.manifest.clone()))
    }

    fn config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.config.clone())
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        if *digest == self.id {
            return Ok(Box::new(io::Cursor::new(self.config.clone())));
        }
        let path = self
            .layers
            .get(digest)
            .ok_or_else(|| ImageError::MissingBlob(digest.clone()))?;
        let f = File::open(path)?;
        Ok(Box::new(BufReader::with_capacity(256 * 1024, f)))
    }
}

/// The config's `rootfs.diff_ids`.
fn diff_ids(config: &[u8]) -> Result<Vec<Digest>, String> {
    let v: serde_json::Value = serde_json::from_slice(config).map_err(|e| e.to_string())?;
    let ids = v
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .ok_or("it has no `rootfs.diff_ids`")?;
    ids.iter()
        .map(|d| {
            let s = d.as_str().ok_or("a diff_id is not a string")?;
            Digest::parse(s).map_err(|e| e.to_string())
        })
        .collect()
}

/// Reads every image `manifest.json` lists; layers are recompressed into `scratch`.
pub(super) fn read(index: TarIndex, scratch: &Path) -> Result<Vec<DockerImage>, ArchiveError> {
    let path = index.shown.clone();
    let bytes = index
        .read("manifest.json", JSON_LIMIT)?
        .ok_or_else(|| ArchiveError::UnknownFormat { path: path.clone() })?;
    let entries: Vec<ManifestEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| ArchiveError::invalid(&path, "`manifest.json`", e))?;
    if entries.is_empty() {
        return Err(ArchiveError::invalid(
            &path,
            "`manifest.json`",
            "it lists no image",
        ));
    }
    let missing = |member: &str| ArchiveError::MissingBlob {
        path: path.clone(),
        what: "`manifest.json`".into(),
        member: member.to_owned(),
    };
    // check every member first, so a broken archive fails before any work
    for e in &entries {
        for m in std::iter::once(&e.config).chain(&e.layers) {
            if !index.contains(m) {
                return Err(missing(m));
            }
        }
    }
    let mut done: HashMap<String, (Digest, u64, PathBuf)> = HashMap::new();
    let mut images: Vec<DockerImage> = Vec::new();
    for e in entries {
        let config = index
            .read(&e.config, JSON_LIMIT)?
            .ok_or_else(|| missing(&e.config))?;
        let id = Digest::of_bytes(&config);
        let cwhat = format!("image config `{}`", e.config);
        let ids = diff_ids(&config).map_err(|r| ArchiveError::invalid(&path, &cwhat, r))?;
        if ids.len() != e.layers.len() {
            return Err(ArchiveError::invalid(
                &path,
                &cwhat,
                format!(
                    "{} diff_ids for {} layers in `manifest.json`",
                    ids.len(),
                    e.layers.len()
                ),
            ));
        }
        let mut names = Vec::new();
        for t in e.repo_tags.iter().flatten() {
            let r = Reference::parse(t).map_err(|err| {
                ArchiveError::invalid(&path, "`manifest.json`", format!("repo tag `{t}`: {err}"))
            })?;
            names.push(r);
        }
        if let Some(existing) = images.iter_mut().find(|i| i.id == id) {
            for n in names {
                if !existing.names.contains(&n) {
                    existing.names.push(n);
                }
            }
            continue;
        }
        let mut layers = HashMap::new();
        let mut descs = Vec::new();
        for (member, want) in e.layers.iter().zip(&ids) {
            let key = format!("{member}\n{want}");
            if !done.contains_key(&key) {
                let made = recompress(&index, member, want, scratch)?;
                done.insert(key.clone(), made);
            }
            let (digest, size, file) = &done[&key];
            layers.insert(digest.clone(), file.clone());
            descs.push(json!({
                "mediaType": Compression::Gzip.media_type().to_string(),
                "digest": digest.to_string(),
                "size": size,
            }));
        }
        let manifest_json = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": id.to_string(),
                "size": config.len(),
            },
            "layers": descs,
        });
        let manifest_bytes = serde_json::to_vec(&manifest_json)
            .map_err(|err| ArchiveError::invalid(&path, &cwhat, err))?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes)
            .map_err(|err| ArchiveError::invalid(&path, &cwhat, err))?;
        images.push(DockerImage {
            manifest_bytes,
            manifest,
            config,
            id,
            names,
            layers,
        });
    }
    Ok(images)
}

/// Decompresses a layer member if needed, gzips it into `scratch` and checks its diff_id.
fn recompress(
    index: &TarIndex,
    member: &str,
    want: &Digest,
    scratch: &Path,
) -> Result<(Digest, u64, PathBuf), ArchiveError> {
    let path = &index.shown;
    let lwhat = format!("layer `{member}`");
    let m = index
        .find(member)
        .ok_or_else(|| ArchiveError::MissingBlob {
            path: path.clone(),
            what: "`manifest.json`".into(),
            member: member.to_owned(),
        })?;
    let (mut tar, _) =
        layer::decompress(index.reader(m)).map_err(|e| ArchiveError::invalid(path, &lwhat, e))?;
    let tmp = tempfile::Builder::new()
        .prefix("layer-")
        .tempfile_in(scratch)
        .map_err(|e| ArchiveError::io(scratch, e))?;
    let out = io::BufWriter::new(tmp.reopen().map_err(|e| ArchiveError::io(scratch, e))?);
    let mut w = LayerWriter::new(out, Compression::Gzip)
        .map_err(|e| ArchiveError::invalid(path, &lwhat, e))?;
    // one pass: the tar is checked for escapes while it is compressed
    layer::check_tar_in(
        Tee {
            inner: &mut tar,
            out: &mut w,
        },
        scratch,
    )
    .map_err(|e| ArchiveError::invalid(path, &lwhat, e))?;
    let (out, blob) = w
        .finish()
        .map_err(|e| ArchiveError::invalid(path, &lwhat, e))?;
    out.into_inner()
        .map_err(|e| ArchiveError::io(scratch, e.into_error()))?;
    if blob.diff_id != *want {
        return Err(ArchiveError::invalid(
            path,
            &lwhat,
            format!(
                "its content has diff_id `{}` but the config says `{want}`",
                blob.diff_id
            ),
        ));
    }
    let (_, kept) = tmp.keep().map_err(|e| ArchiveError::io(scratch, e.error))?;
    Ok((blob.digest, blob.size, kept))
}

/// Legacy v1 layer IDs: a chain over the diff_ids, the top one also over the config, so that
/// shared lower layers share directories and each image's top is its own.
fn v1_ids(diff_ids: &[Digest], config: &Digest) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, d) in diff_ids.iter().enumerate() {
        let parent = out.last().cloned().unwrap_or_default();
        let seed = if i + 1 == diff_ids.len() {
            format!("{parent} {d} {config}")
        } else {
            format!("{parent} {d}")
        };
        out.push(Digest::of_bytes(seed.as_bytes()).hex().to_owned());
    }
    out
}

/// `busybox:latest` → (`busybox`, `latest`); names with only a digest have no tag.
fn repo_and_tag(r: &Reference) -> Option<(String, String)> {
    let tag = r.tag()?.to_owned();
    let familiar = r.without_digest().familiar();
    let repo = familiar.strip_suffix(&format!(":{tag}"))?.to_owned();
    Some((repo, tag))
}

/// Writes a docker-archive.
pub(super) fn write<W: Write>(
    out: W,
    shown: &Path,
    images: &[SaveImage<'_>],
) -> Result<W, ArchiveError> {
    let label = shown.display().to_string();
    let mut b = tar::Builder::new(out);
    let mut written: HashSet<String> = HashSet::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let src_err = |source: ImageError| ArchiveError::Source {
            image: img.shown.clone(),
            source,
        };
        let (_, m) = img.source.manifest().map_err(src_err)?;
        let config = img.source.config().map_err(src_err)?;
        let cdigest = Digest::from_oci(m.config().digest())
            .map_err(|e| ArchiveError::invalid(shown, format!("manifest of `{}`", img.shown), e))?;
        if Digest::of_bytes(&config) != cdigest {
            return Err(src_err(ImageError::DigestMismatch {
                digest: cdigest,
                actual: Digest::of_bytes(&config),
            }));
        }
        let cwhat = format!("config of `{}`", img.shown);
        let ids = diff_ids(&config).map_err(|r| ArchiveError::invalid(shown, &cwhat, r))?;
        if ids.len() != m.layers().len() {
            return Err(ArchiveError::invalid(
                shown,
                &cwhat,
                format!("{} diff_ids for {} layers", ids.len(), m.layers().len()),
            ));
        }
        let config_name = format!("{}.json", cdigest.hex());
        if written.insert(config_name.clone()) {
            append_bytes(&mut b, &config_name, &config, &label)?;
        }
        let mut layer_names = Vec::new();
        for (l, diff_id) in m.layers().iter().zip(&ids) {
            let name = format!("{}.tar", diff_id.hex());
            layer_names.push(name.clone());
            if !written.insert(name.clone()) {
                continue;
            }
            let d = Digest::from_oci(l.digest()).map_err(|e| {
                ArchiveError::invalid(shown, format!("manifest of `{}`", img.shown), e)
            })?;
            let lwhat = format!("layer `{d}` of `{}`", img.shown);
            // pass 1: the uncompressed size (a tar header needs it first) and the diff_id
            let blob = img.source.open_blob(&d).map_err(src_err)?;
            let (mut tar, _) = layer::decompress(VerifyingReader::new(blob, d.clone(), l.size()))
                .map_err(|e| ArchiveError::invalid(shown, &lwhat, e))?;
            let mut counted = DigestingReader::new(&mut tar);
            io::copy(&mut counted, &mut io::sink())
                .map_err(|e| ArchiveError::invalid(shown, &lwhat, e))?;
            let (got, size) = counted.finish();
            if got != *diff_id {
                return Err(ArchiveError::invalid(
                    shown,
                    &lwhat,
                    format!("its content has diff_id `{got}` but the config says `{diff_id}`"),
                ));
            }
            // pass 2: the data, checked again on the way
            let blob = img.source.open_blob(&d).map_err(src_err)?;
            let (tar, _) = layer::decompress(VerifyingReader::new(blob, d.clone(), l.size()))
                .map_err(|e| ArchiveError::invalid(shown, &lwhat, e))?;
            let data = VerifyingReader::new(tar, diff_id.clone(), size);
            let mut h = member_header(tar::EntryType::Regular, 0o444, size);
            b.append_data(&mut h, &name, data)
                .map_err(|e| ArchiveError::invalid(shown, &lwhat, e))?;
        }
        // the legacy per-layer directories
        let v1 = v1_ids(&ids, &cdigest);
        for (i, id) in v1.iter().enumerate() {
            if !written.insert(format!("{id}/")) {
                continue;
            }
            append_dir(&mut b, &format!("{id}/"), &label)?;
            append_bytes(&mut b, &format!("{id}/VERSION"), b"1.0", &label)?;
            let mut j =
                json!({"id": id, "created": "1970-01-01T00:00:00Z", "container_config": {}});
            if i > 0 {
                j["parent"] = json!(v1[i - 1]);
            }
            let jb = serde_json::to_vec(&j)
                .map_err(|e| ArchiveError::invalid(shown, "layer json", e))?;
            append_bytes(&mut b, &format!("{id}/json"), &jb, &label)?;
            let mut h = member_header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(
                &mut h,
                format!("{id}/layer.tar"),
                format!("../{}", layer_names[i]),
            )
            .map_err(|e| ArchiveError::io(shown, e))?;
        }
        let mut tags = Vec::new();
        for n in &img.names {
            if let Some((repo, tag)) = repo_and_tag(n) {
                tags.push(format!("{repo}:{tag}"));
                if let Some(top) = v1.last() {
                    repositories
                        .entry(repo)
                        .or_default()
                        .insert(tag, top.clone());
                }
            }
        }
        manifest.push(json!({"Config": config_name, "RepoTags": tags, "Layers": layer_names}));
    }
    let mb = serde_json::to_vec(&manifest)
        .map_err(|e| ArchiveError::invalid(shown, "`manifest.json`", e))?;
    append_bytes(&mut b, "manifest.json", &mb, &label)?;
    let rb = serde_json::to_vec(&repositories)
        .map_err(|e| ArchiveError::invalid(shown, "`repositories`", e))?;
    append_bytes(&mut b, "repositories", &rb, &label)?;
    b.into_inner().map_err(|e| ArchiveError::io(shown, e))
}

/// Copies what is read from `inner` to `out`.
struct Tee<'a, R, W> {
    inner: &'a mut R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
