//! An image in a registry, read as an [`ImageSource`]: the manifest is resolved when it is
//! opened (an index or manifest list gives the entry for the wanted platform, fetched by digest
//! and checked against it), blobs stream through a [`VerifyingReader`].

use std::io::{self, Read};
use std::sync::Arc;

use oci_spec::image::{ImageIndex, ImageManifest};
use sha2::Digest as _;

use super::client::{Fetched, ManifestKind, Progress};
use super::{RegistryError, Repo};
use crate::image::{Digest, ImageError, ImageSource, Platform, Reference};

/// A reader that hashes and counts what passes; at the end of the stream (or as soon as more
/// than the expected size has come) it fails with an error naming the blob unless digest and
/// size match. Consumers that stage what they read and keep it only on success therefore
/// store nothing of a blob that does not match.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    expected: Digest,
    size: Option<u64>,
    count: u64,
    registry: String,
    progress: Option<Arc<dyn Progress>>,
    checked: bool,
}

impl<R: Read> VerifyingReader<R> {
    /// Verifies `inner` against `expected` (and `size`, when known); `registry` names the
    /// source in errors.
    pub fn new(inner: R, expected: Digest, size: Option<u64>, registry: &str) -> Self {
        VerifyingReader {
            inner,
            hasher: sha2::Sha256::new(),
            expected,
            size,
            count: 0,
            registry: registry.to_string(),
            progress: None,
            checked: false,
        }
    }

    /// Reports progress to `p` as bytes pass.
    pub fn with_progress(mut self, p: Option<Arc<dyn Progress>>) -> Self {
        self.progress = p;
        self
    }

    fn fail(&self, e: RegistryError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }

    fn size_error(&self) -> io::Error {
        self.fail(RegistryError::SizeMismatch {
            registry: self.registry.clone(),
            digest: self.expected.clone(),
            expected: self.size.unwrap_or(0),
            actual: self.count,
        })
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if !self.checked {
                self.checked = true;
                if self.size.is_some_and(|s| s != self.count) {
                    return Err(self.size_error());
                }
                let hex = hex::encode(self.hasher.clone().finalize());
                let actual = Digest::from_hex(&hex).expect("sha256 gives 64 hex digits");
                if actual != self.expected {
                    return Err(self.fail(RegistryError::DigestMismatch {
                        registry: self.registry.clone(),
                        digest: self.expected.clone(),
                        actual,
                    }));
                }
                if let Some(p) = &self.progress {
                    p.update(&self.expected, self.count, self.count, true);
                }
            }
            return Ok(0);
        }
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        if self.size.is_some_and(|s| self.count > s) {
            return Err(self.size_error());
        }
        if let Some(p) = &self.progress {
            p.update(
                &self.expected,
                self.count,
                self.size.unwrap_or(self.count),
                false,
            );
        }
        Ok(n)
    }
}

/// One image of a registry repository, its manifest resolved for a platform.
pub struct RemoteImage {
    repo: Repo,
    /// The reference as the user meant it (for messages).
    reference: String,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    digest: Digest,
    /// The digest of the index the manifest was chosen from, if it was.
    index_digest: Option<Digest>,
    /// Whether the manifest was chosen from an index (by platform).
    from_index: bool,
    config: std::sync::OnceLock<Vec<u8>>,
    progress: Option<Arc<dyn Progress>>,
}

impl std::fmt::Debug for RemoteImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteImage")
            .field("reference", &self.reference)
            .field("digest", &self.digest)
            .finish()
    }
}

fn parse_manifest(reference: &str, f: &Fetched) -> Result<ImageManifest, RegistryError> {
    serde_json::from_slice(&f.bytes).map_err(|e| RegistryError::Invalid {
        reference: reference.to_string(),
        reason: format!("manifest `{}`: {e}", f.digest),
    })
}

/// Parses an OCI index or docker manifest list and picks the entry for `platform`.
pub fn choose_platform(
    reference: &str,
    index: &[u8],
    platform: &Platform,
) -> Result<Digest, RegistryError> {
    let index: ImageIndex = serde_json::from_slice(index).map_err(|e| RegistryError::Invalid {
        reference: reference.to_string(),
        reason: format!("index `{}`: {e}", Digest::of_bytes(index)),
    })?;
    choose(reference, &index, platform)
}

/// The index entry that fits `platform` best.
fn choose(
    reference: &str,
    index: &ImageIndex,
    platform: &Platform,
) -> Result<Digest, RegistryError> {
    let mut best: Option<(u8, &oci_spec::image::Descriptor)> = None;
    let mut offered = Vec::new();
    for m in index.manifests() {
        let Some(p) = m.platform() else { continue };
        let (os, arch) = (p.os().to_string(), p.architecture().to_string());
        offered.push(match p.variant() {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        });
        if let Some(s) = platform.score(&os, &arch, p.variant().as_deref()) {
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, m));
            }
        }
    }
    match best {
        Some((_, m)) => Digest::from_oci(m.digest()).map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            reason: e.to_string(),
        }),
        None => Err(RegistryError::Platform {
            reference: reference.to_string(),
            wanted: platform.clone(),
            available: if offered.is_empty() {
                "no platform".into()
            } else {
                offered
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

impl RemoteImage {
    /// Resolves `reference` in `repo` (by its digest if it pins one, else its tag); an index
    /// gives its entry for `platform`.
    pub fn open(
        repo: &Repo,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<RemoteImage, RegistryError> {
        let name = reference.to_string();
        let tag_or_digest = match (reference.digest(), reference.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => crate::image::DEFAULT_TAG.to_string(),
        };
        let mut fetched = repo.client.get_manifest(&repo.path, &tag_or_digest)?;
        let mut from_index = false;
        let mut index_digest = None;
        let invalid = |reason: String| RegistryError::Invalid {
            reference: name.clone(),
            reason,
        };
        match ManifestKind::classify(&fetched.media_type, &fetched.bytes) {
            Some(ManifestKind::Image) => {}
            Some(ManifestKind::Index) => {
                let chosen = choose_platform(&name, &fetched.bytes, platform)?;
                from_index = true;
                index_digest = Some(fetched.digest.clone());
                log::debug!("`{name}`: index entry `{chosen}` for `{platform}`");
                fetched = repo.client.get_manifest(&repo.path, &chosen.to_string())?;
                if ManifestKind::classify(&fetched.media_type, &fetched.bytes)
                    != Some(ManifestKind::Image)
                {
                    return Err(invalid(format!(
                        "index entry `{chosen}` is not an image manifest"
                    )));
                }
            }
            None => {
                return Err(invalid(format!(
                    "`{}` (media type `{}`) is not an image manifest or index",
                    fetched.digest, fetched.media_type
                )))
            }
        }
        let manifest = parse_manifest(&name, &fetched)?;
        Ok(RemoteImage {
            repo: repo.clone(),
            reference: name,
            manifest_bytes: fetched.bytes,
            manifest,
            digest: fetched.digest,
            index_digest,
            from_index,
            config: std::sync::OnceLock::new(),
            progress: None,
        })
    }

    /// Whether the manifest was chosen from an index for the platform asked.
    pub fn from_index(&self) -> bool {
        self.from_index
    }

    /// The platform the image's config names (fetches the config once).
    pub fn config_platform(&self) -> Result<Platform, ImageError> {
        let raw = self.config()?;
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(default)]
            os: String,
            #[serde(default)]
            architecture: String,
            #[serde(default)]
            variant: Option<String>,
        }
        let p: P = serde_json::from_slice(&raw).map_err(|e| ImageError::Invalid {
            what: format!("config of `{}`", self.reference),
            reason: e.to_string(),
        })?;
        Ok(Platform {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant,
        })
    }

    /// Reports blob progress to `p`.
    pub fn with_progress(mut self, p: Arc<dyn Progress>) -> Self {
        self.progress = Some(p);
        self
    }

    /// The image manifest's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The digest of the index (or manifest list) the manifest was chosen from, if any: what
    /// the name's tag points at, and so what signatures of the name are made over.
    pub fn index_digest(&self) -> Option<&Digest> {
        self.index_digest.as_ref()
    }

    /// The parsed image manifest.
    pub fn image_manifest(&self) -> &ImageManifest {
        &self.manifest
    }

    /// Where the image was found.
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    fn blob_size(&self, d: &Digest) -> Option<u64> {
        let cfg = self.manifest.config();
        std::iter::once(cfg)
            .chain(self.manifest.layers())
            .find(|desc| Digest::from_oci(desc.digest()).is_ok_and(|x| &x == d))
            .map(|desc| desc.size())
    }

    fn verified(
        &self,
        d: &Digest,
    ) -> Result<VerifyingReader<Box<dyn Read + Send + Sync>>, RegistryError> {
        let r = self.repo.client.get_blob(&self.repo.path, d)?;
        Ok(VerifyingReader::new(
            r,
            d.clone(),
            self.blob_size(d),
            self.repo.client.host(),
        ))
    }
}

impl ImageSource for RemoteImage {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        Ok((self.manifest_bytes.clone(), self.manifest.clone()))
    }

    fn config(&self) -> Result<Vec<u8>, ImageError> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let d =
            Digest::from_oci(self.manifest.config().digest()).map_err(|e| ImageError::Invalid {
                what: format!("manifest of `{}`", self.reference),
                reason: e.to_string(),
            })?;
        let mut out = Vec::new();
        // a config is small; the descriptor's size bounds what is read
        self.verified(&d)?
            .take(self.manifest.config().size().saturating_add(1))
            .read_to_end(&mut out)?;
        Ok(self.config.get_or_init(|| out).clone())
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        let r = self.verified(digest)?.with_progress(self.progress.clone());
        Ok(Box::new(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map(|_| v)
    }

    #[test]
    fn verifying_reader_refuses_wrong_data_naming_the_blob() {
        let good = b"hello".to_vec();
        let d = Digest::of_bytes(&good);
        let mut ok = VerifyingReader::new(&good[..], d.clone(), Some(5), "reg");
        assert_eq!(read_all(&mut ok).expect("matches"), good);
        let mut bad = VerifyingReader::new(&b"hellO"[..], d.clone(), Some(5), "reg");
        let e = read_all(&mut bad).expect_err("digest");
        assert!(e.to_string().contains(&d.to_string()), "{e}");
        assert!(e.to_string().contains("does not match its digest"), "{e}");
        let mut long = VerifyingReader::new(&b"hello!"[..], d.clone(), Some(5), "reg");
        assert!(read_all(&mut long)
            .expect_err("size")
            .to_string()
            .contains("6 bytes"));
        let mut short = VerifyingReader::new(&b"hell"[..], d, Some(5), "reg");
        assert!(read_all(&mut short).is_err());
    }

    #[test]
    fn platform_choice() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"manifests":[
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","platform":{"os":"linux","architecture":"arm","variant":"v6"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","platform":{"os":"linux","architecture":"amd64"}},
            {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","platform":{"os":"unknown","architecture":"unknown"}}
            ]}"#,
        )
        .expect("index");
        let pick = |p: &str| choose("x", &index, &Platform::parse(p).expect("platform"));
        assert!(pick("linux/amd64").expect("amd64").hex().starts_with('3'));
        assert!(pick("linux/arm64").expect("arm64").hex().starts_with('2'));
        assert!(pick("linux/arm/v6").expect("v6").hex().starts_with('1'));
        let e = pick("linux/arm/v7").expect_err("no v7").to_string();
        assert!(
            e.contains("`linux/arm/v6`") && e.contains("linux/arm/v7"),
            "{e}"
        );
        assert!(pick("linux/s390x").is_err());
    }
}
