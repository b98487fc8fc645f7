//! Signatures in a registry: reading those of a manifest (`sha256-<hex>.sig` in the same
//! repository) and appending one. Blobs are verified against their digests as they stream,
//! and a payload is read only up to [`MAX_PAYLOAD`] bytes.

use std::io::Read;

use base64::Engine as _;

use super::keys::PrivateKey;
use super::payload::{self, SigLayer};
use super::policy::Candidate;
use super::SignError;
use crate::image::Digest;
use crate::registry::{RegistryError, Repo, VerifyingReader};

/// The largest payload read (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD: u64 = 64 * 1024;
/// The most signatures read for one manifest (a hostile registry could list thousands).
pub const MAX_SIGNATURES: usize = 256;

/// One signature as stored, with its payload.
#[derive(Debug, Clone)]
pub struct Stored {
    pub layer: SigLayer,
    pub payload: Vec<u8>,
}

/// The signature manifest of `digest` in `repo`, raw (`None` when there is none).
fn sig_manifest(repo: &Repo, digest: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
    match repo
        .client
        .get_manifest(&repo.path, &payload::sig_tag(digest))
    {
        Ok(f) => Ok(Some(f.bytes)),
        Err(RegistryError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The signatures stored for the manifest `digest` in `repo`.
pub fn signatures(repo: &Repo, digest: &Digest) -> Result<Vec<Stored>, SignError> {
    let Some(m) = sig_manifest(repo, digest)? else {
        return Ok(Vec::new());
    };
    let reference = format!("{}/{}@{digest}", repo.client.host(), repo.path);
    let layers = payload::layers(&m).map_err(|reason| SignError::Invalid {
        reference: reference.clone(),
        reason,
    })?;
    if layers.len() > MAX_SIGNATURES {
        return Err(SignError::Invalid {
            reference,
            reason: format!(
                "{} signatures (hoist reads at most {MAX_SIGNATURES})",
                layers.len()
            ),
        });
    }
    let mut out = Vec::new();
    for layer in layers {
        if layer.size > MAX_PAYLOAD {
            return Err(SignError::Invalid {
                reference,
                reason: format!(
                    "payload `{}` has {} bytes (more than {MAX_PAYLOAD})",
                    layer.digest, layer.size
                ),
            });
        }
        let r = repo.client.get_blob(&repo.path, &layer.digest)?;
        let mut v = VerifyingReader::new(
            r,
            layer.digest.clone(),
            Some(layer.size),
            repo.client.host(),
        );
        let mut bytes = Vec::new();
        (&mut v)
            .take(MAX_PAYLOAD + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| SignError::Invalid {
                reference: reference.clone(),
                reason: format!("payload `{}`: {e}", layer.digest),
            })?;
        out.push(Stored {
            layer,
            payload: bytes,
        });
    }
    Ok(out)
}

/// The signatures of each of `digests` (the manifest pulled, and the index it was chosen
/// from), as a policy weighs them.
pub fn candidates(repo: &Repo, digests: &[Digest]) -> Result<Vec<Candidate>, SignError> {
    let mut out = Vec::new();
    for d in digests {
        for s in signatures(repo, d)? {
            let signature = s
                .layer
                .signature
                .as_deref()
                .and_then(super::PublicKey::decode_annotation);
            out.push(Candidate {
                payload: s.payload,
                signature,
                for_digest: d.clone(),
            });
        }
    }
    Ok(out)
}

/// Signs the manifest `digest` of `repo` as `identity` and adds the signature to the
/// manifest's `.sig` tag (kept signatures stay; the same signature is not added twice).
/// Returns the digest of the new signature manifest.
pub fn sign(
    repo: &Repo,
    digest: &Digest,
    identity: &str,
    key: &PrivateKey,
) -> Result<Digest, SignError> {
    let body = payload::make(identity, digest);
    let sig = base64::engine::general_purpose::STANDARD.encode(key.sign(&body));
    let reference = format!("{}/{}@{digest}", repo.client.host(), repo.path);
    let mut layers: Vec<serde_json::Value> = match sig_manifest(repo, digest)? {
        Some(m) => payload::layers(&m)
            .map_err(|reason| SignError::Invalid {
                reference: reference.clone(),
                reason,
            })?
            .into_iter()
            .map(|l| l.descriptor)
            .collect(),
        None => Vec::new(),
    };
    let new = payload::layer_descriptor(&body, &sig);
    if layers.contains(&new) {
        // deterministic ECDSA (RFC 6979): the same key signed the same payload already
        return Ok(Digest::of_bytes(&payload::manifest(&layers).0));
    }
    layers.push(new);
    let (manifest, config) = payload::manifest(&layers);
    upload(repo, &body)?;
    upload(repo, &config)?;
    Ok(repo.client.put_manifest(
        &repo.path,
        &payload::sig_tag(digest),
        payload::MANIFEST_TYPE,
        &manifest,
    )?)
}

fn upload(repo: &Repo, bytes: &[u8]) -> Result<(), RegistryError> {
    let d = Digest::of_bytes(bytes);
    if repo.client.head_blob(&repo.path, &d)?.is_some() {
        return Ok(());
    }
    let mut open = || -> std::io::Result<Box<dyn Read + '_>> { Ok(Box::new(bytes)) };
    repo.client
        .put_blob(&repo.path, &d, bytes.len() as u64, None, &mut open)?;
    Ok(())
}
