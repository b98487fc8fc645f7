//! Push: any [`ImageSource`] to a registry repository.
//!
//! Each blob (config and layers) is asked for with a `HEAD` first and skipped when the
//! repository has it; else it is mounted from another repository of the same registry that is
//! known to hold it (the caller says which), else uploaded in one streamed `PUT`. Blobs go up
//! in parallel, at most `jobs` at a time; the manifest is put last, so a failed push never
//! leaves a tag pointing at missing blobs.
//!
//! `--format oci|docker` rewrites the manifest's media types (the blobs are the same bytes);
//! without it the manifest goes up byte for byte, so its digest is the one the store has.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::client::{Mount, Progress, DOCKER_MANIFEST, OCI_MANIFEST};
use super::{RegistryError, Repo};
use crate::image::{Digest, ImageSource};

/// A manifest format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    /// Docker image manifest v2, schema 2.
    Docker,
}

/// Told what happened to each blob of a push.
pub type BlobReport = Box<dyn Fn(&Digest, Mount) + Send + Sync>;

/// How to push.
#[derive(Default)]
pub struct PushOptions {
    /// Convert the manifest to this format (`None`: as it is).
    pub format: Option<Format>,
    /// Blobs uploaded at the same time (at least 1).
    pub jobs: usize,
    /// Repositories of the target registry known to hold a blob: mount sources.
    pub mount_from: HashMap<Digest, String>,
    pub progress: Option<Arc<dyn Progress>>,
    /// Told what happened to each blob.
    pub on_blob: Option<BlobReport>,
}

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Layer media types: (OCI, docker).
const LAYER_TYPES: [(&str, &str); 3] = [
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
];

/// The manifest's media type (its `mediaType`, OCI when it has none).
pub fn media_type_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| OCI_MANIFEST.to_string())
}

/// Rewrites a manifest into `format`: its media type, the config's and every layer's. Bytes
/// already in that format are returned unchanged. Layers with no counterpart (zstd in docker
/// format) are refused.
pub fn convert(bytes: &[u8], format: Format) -> Result<(Vec<u8>, String), String> {
    let current = media_type_of(bytes);
    let (want, cfg_type) = match format {
        Format::Oci => (OCI_MANIFEST, OCI_CONFIG),
        Format::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG),
    };
    if current == want {
        return Ok((bytes.to_vec(), current));
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest: {e}"))?;
    let obj = v.as_object_mut().ok_or("invalid manifest: not an object")?;
    obj.insert("mediaType".into(), want.into());
    if format == Format::Docker {
        // docker schema 2 has no annotations, artifact type or subject
        obj.remove("annotations");
        obj.remove("artifactType");
        obj.remove("subject");
    }
    if let Some(cfg) = obj.get_mut("config").and_then(|c| c.as_object_mut()) {
        cfg.insert("mediaType".into(), cfg_type.into());
        if format == Format::Docker {
            cfg.remove("annotations");
        }
    }
    if let Some(layers) = obj.get_mut("layers").and_then(|l| l.as_array_mut()) {
        for l in layers {
            let Some(l) = l.as_object_mut() else { continue };
            let t = l
                .get("mediaType")
                .and_then(|m| m.as_str())
                .unwrap_or_default()
                .to_string();
            let mapped = LAYER_TYPES.iter().find_map(|(oci, docker)| match format {
                Format::Docker if t == *oci || t == *docker => Some(*docker),
                Format::Oci if t == *oci || t == *docker => Some(*oci),
                _ => None,
            });
            let Some(mapped) = mapped else {
                return Err(format!(
                    "layer media type `{t}` cannot be written in {} format",
                    match format {
                        Format::Docker => "docker",
                        Format::Oci => "oci",
                    }
                ));
            };
            l.insert("mediaType".into(), mapped.into());
            if format == Format::Docker {
                l.remove("annotations");
            }
        }
    }
    let out = serde_json::to_vec(&v).map_err(|e| e.to_string())?;
    Ok((out, want.to_string()))
}

/// Pushes `src` to `target` under `reference` (a tag, or the manifest digest when `None`).
/// Returns the digest of the manifest put.
pub fn push(
    src: &(dyn ImageSource + Sync),
    target: &Repo,
    reference: Option<&str>,
    opts: &PushOptions,
) -> Result<Digest, RegistryError> {
    let (bytes, manifest) = src.manifest()?;
    let (bytes, media_type) = match opts.format {
        None => {
            let t = media_type_of(&bytes);
            (bytes, t)
        }
        Some(f) => convert(&bytes, f).map_err(|reason| RegistryError::Invalid {
            reference: format!("{}/{}", target.client.host(), target.path),
            reason,
        })?,
    };
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for d in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let digest = Digest::from_oci(d.digest()).map_err(|e| RegistryError::Invalid {
            reference: target.path.clone(),
            reason: e.to_string(),
        })?;
        if !blobs.iter().any(|(x, _)| x == &digest) {
            blobs.push((digest, d.size()));
        }
    }
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let workers = opts.jobs.clamp(1, blobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((digest, size)) = blobs.get(i) else {
                    return;
                };
                let failed = first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_some();
                if failed {
                    return;
                }
                match push_blob(src, target, digest, *size, opts) {
                    Ok(how) => {
                        if let Some(cb) = &opts.on_blob {
                            cb(digest, how);
                        }
                    }
                    Err(e) => {
                        let mut slot = first_error
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        slot.get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    let digest = Digest::of_bytes(&bytes);
    let reference = reference
        .map(str::to_string)
        .unwrap_or_else(|| digest.to_string());
    target
        .client
        .put_manifest(&target.path, &reference, &media_type, &bytes)
}

fn push_blob(
    src: &(dyn ImageSource + Sync),
    target: &Repo,
    digest: &Digest,
    size: u64,
    opts: &PushOptions,
) -> Result<Mount, RegistryError> {
    let client = &target.client;
    if client.head_blob(&target.path, digest)?.is_some() {
        return Ok(Mount::Exists);
    }
    let mount = opts
        .mount_from
        .get(digest)
        .filter(|from| **from != target.path)
        .map(String::as_str);
    let progress = opts.progress.clone();
    let mut open = || -> std::io::Result<Box<dyn std::io::Read + '_>> {
        let r = src.open_blob(digest).map_err(std::io::Error::other)?;
        // what the store holds is checked again on its way out (a registry checks too)
        Ok(Box::new(
            super::VerifyingReader::new(r, digest.clone(), Some(size), "the local store")
                .with_progress(progress.clone()),
        ))
    };
    client.put_blob(&target.path, digest, size, mount, &mut open)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCI: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":2}],"annotations":{"a":"b"}}"#;

    #[test]
    fn converts_between_formats() {
        let (same, t) = convert(OCI.as_bytes(), Format::Oci).expect("oci");
        assert_eq!(same, OCI.as_bytes());
        assert_eq!(t, OCI_MANIFEST);
        let (docker, t) = convert(OCI.as_bytes(), Format::Docker).expect("docker");
        assert_eq!(t, DOCKER_MANIFEST);
        let v: serde_json::Value = serde_json::from_slice(&docker).expect("json");
        assert_eq!(v["config"]["mediaType"], DOCKER_CONFIG);
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert!(v.get("annotations").is_none());
        let (back, _) = convert(&docker, Format::Oci).expect("back");
        let v: serde_json::Value = serde_json::from_slice(&back).expect("json");
        assert_eq!(v["layers"][0]["mediaType"], LAYER_TYPES[0].0);
        let zstd = OCI.replace("tar+gzip", "tar+zstd");
        let e = convert(zstd.as_bytes(), Format::Docker).expect_err("zstd");
        assert!(e.contains("tar+zstd"), "{e}");
    }
}
