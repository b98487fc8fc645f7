//! The simple-signing payload and the signature manifest (sigstore/cosign
//! `specs/SIGNATURE_SPEC.md`). Pure: bytes in, bytes out.
//!
//! Payload: `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},
//! "type":"cosign container image signature"},"optional":{…}}`. Parsing is strict, as in
//! containers/image: `critical` must hold exactly those three members, so a payload cannot
//! smuggle a second identity past one reader and not another.
//!
//! Signatures of the manifest `sha256:HEX` live in the same repository under the tag
//! `sha256-HEX.sig`: an OCI image manifest whose layers are payloads (media type
//! [`PAYLOAD_TYPE`]), each with its signature in the annotation [`SIGNATURE_ANNOTATION`].

use serde::Deserialize;
use serde_json::{json, Value};

use crate::image::Digest;

/// The media type of a payload layer.
pub const PAYLOAD_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 of the DER signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of every payload.
pub const PAYLOAD_KIND: &str = "cosign container image signature";
/// The media type of the signature manifest.
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The tag holding the signatures of `digest`.
pub fn sig_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// A payload naming `docker_reference` (a repository, or a repository and tag) and the
/// manifest `digest`.
pub fn make(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": PAYLOAD_KIND,
        },
        "optional": {"creator": concat!("hoist ", env!("CARGO_PKG_VERSION"))},
    });
    // a `Value` of strings always serialises
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What a payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub docker_reference: String,
    pub digest: Digest,
}

#[derive(Deserialize)]
struct Untrusted {
    critical: Critical,
    #[serde(default)]
    #[allow(dead_code)]
    optional: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Parses a payload (only after its signature verified: before that it is untrusted input).
pub fn parse(bytes: &[u8]) -> Result<Claims, String> {
    let u: Untrusted =
        serde_json::from_slice(bytes).map_err(|e| format!("the payload is not valid: {e}"))?;
    if u.critical.kind != PAYLOAD_KIND {
        return Err(format!(
            "the payload's type is `{}`, not `{PAYLOAD_KIND}`",
            u.critical.kind
        ));
    }
    let digest = Digest::parse(&u.critical.image.digest)
        .map_err(|e| format!("the payload's digest: {e}"))?;
    Ok(Claims {
        docker_reference: u.critical.identity.docker_reference,
        digest,
    })
}

/// One signature layer of a signature manifest.
#[derive(Debug, Clone)]
pub struct SigLayer {
    pub digest: Digest,
    pub size: u64,
    /// The signature annotation as written (base64), if any.
    pub signature: Option<String>,
    /// The descriptor as it was (kept whole when appending, certificates and all).
    pub descriptor: Value,
}

/// The payload layers of a signature manifest (other layers are left out).
pub fn layers(manifest: &[u8]) -> Result<Vec<SigLayer>, String> {
    let v: Value = serde_json::from_slice(manifest)
        .map_err(|e| format!("the signature manifest is not JSON: {e}"))?;
    let mut out = Vec::new();
    let Some(layers) = v.get("layers").and_then(Value::as_array) else {
        return Err("the signature manifest has no `layers`".into());
    };
    for l in layers {
        if l.get("mediaType").and_then(Value::as_str) != Some(PAYLOAD_TYPE) {
            continue;
        }
        let digest = l
            .get("digest")
            .and_then(Value::as_str)
            .and_then(|d| Digest::parse(d).ok())
            .ok_or("a signature layer has no valid `digest`")?;
        let size = l
            .get("size")
            .and_then(Value::as_u64)
            .ok_or("a signature layer has no valid `size`")?;
        let signature = l
            .get("annotations")
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
            .and_then(Value::as_str)
            .map(str::to_string);
        out.push(SigLayer {
            digest,
            size,
            signature,
            descriptor: l.clone(),
        });
    }
    Ok(out)
}

/// The descriptor of a new payload layer.
pub fn layer_descriptor(payload: &[u8], signature_b64: &str) -> Value {
    json!({
        "mediaType": PAYLOAD_TYPE,
        "size": payload.len(),
        "digest": Digest::of_bytes(payload).to_string(),
        "annotations": {SIGNATURE_ANNOTATION: signature_b64},
    })
}

/// A signature manifest over `layers` and its config blob (the config names the layers as
/// its `rootfs.diff_ids`, as cosign writes it). Returns (manifest, config).
pub fn manifest(layers: &[Value]) -> (Vec<u8>, Vec<u8>) {
    let diff_ids: Vec<Value> = layers
        .iter()
        .filter_map(|l| l.get("digest").cloned())
        .collect();
    let config = json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    });
    let config = serde_json::to_vec(&config).unwrap_or_default();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": CONFIG_TYPE,
            "size": config.len(),
            "digest": Digest::of_bytes(&config).to_string(),
        },
        "layers": layers,
    });
    (serde_json::to_vec(&m).unwrap_or_default(), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_strict_critical() {
        let d = Digest::of_bytes(b"x");
        let p = make("example.com/a/b:1", &d);
        let c = parse(&p).expect("parses");
        assert_eq!(c.docker_reference, "example.com/a/b:1");
        assert_eq!(c.digest, d);
        let extra = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"a/b"}},"image":{{"docker-manifest-digest":"{d}"}},"type":"{PAYLOAD_KIND}","also":1}},"optional":null}}"#
        );
        assert!(parse(extra.as_bytes()).is_err());
        let wrong = String::from_utf8(p)
            .expect("utf-8")
            .replace(PAYLOAD_KIND, "other");
        assert!(parse(wrong.as_bytes()).is_err());
    }

    #[test]
    fn manifest_lists_layers_and_keeps_descriptors() {
        let a = layer_descriptor(b"one", "c2ln");
        let mut b = layer_descriptor(b"two", "c2lnMg==");
        b["annotations"]["dev.sigstore.cosign/bundle"] = json!("{}");
        let (m, config) = manifest(&[a, b]);
        let ls = layers(&m).expect("layers");
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[1].signature.as_deref(), Some("c2lnMg=="));
        assert_eq!(
            ls[1].descriptor["annotations"]["dev.sigstore.cosign/bundle"],
            "{}"
        );
        let c: Value = serde_json::from_slice(&config).expect("config");
        assert_eq!(
            c["rootfs"]["diff_ids"][0],
            Digest::of_bytes(b"one").to_string()
        );
    }
}
