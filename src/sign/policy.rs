//! containers-policy.json(5): which images may be pulled, by transport and scope.
//!
//! A policy names requirements per transport and scope; for one image only the most specific
//! matching scope applies (for `docker`: the full reference, then the repository, each parent
//! namespace, the registry host, `*.` wildcards of its domain suffixes, then the transport's
//! `""`), else the global `default`. Every requirement of the list must hold:
//! `insecureAcceptAnything` holds, `reject` never does, `sigstoreSigned` holds when at least one
//! signature verifies with its key, claims the very manifest digest being pulled and carries
//! an identity that its `signedIdentity` accepts (default `matchRepoDigestOrExact`).
//! Parsing is strict as the man page asks: an unknown field rejects the whole file.
//!
//! Not supported, and refused (never silently accepted): `signedBy` (GPG simple signing),
//! and `sigstoreSigned` with `fulcio`, `rekorPublicKey*` or `pki` (keyless and transparency-log
//! checks need services hoist does not talk to). This module is pure: the caller fetches the
//! signatures ([`Candidate`]) and the key files are read only when a requirement needs them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::keys::PublicKey;
use super::payload;
use super::SignError;
use crate::image::{Digest, Reference};

/// A parsed policy file.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Where it was read from (named in every refusal).
    pub path: PathBuf,
    default: Vec<Requirement>,
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: Vec<Requirement>,
    #[serde(default)]
    transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

/// One requirement object.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Requirement {
    #[serde(rename = "insecureAcceptAnything")]
    InsecureAcceptAnything {},
    #[serde(rename = "reject")]
    Reject {},
    #[serde(rename = "signedBy")]
    SignedBy(SignedBy),
    #[serde(rename = "sigstoreSigned")]
    SigstoreSigned(SigstoreSigned),
}

/// `signedBy` (GPG): parsed so that a policy using it is read, refused when it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignedBy {
    key_type: String,
    key_path: Option<String>,
    key_paths: Option<Vec<String>>,
    key_data: Option<String>,
    signed_identity: Option<Identity>,
}

/// `sigstoreSigned`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigstoreSigned {
    key_path: Option<PathBuf>,
    key_paths: Option<Vec<PathBuf>>,
    key_data: Option<String>,
    key_datas: Option<Vec<String>>,
    fulcio: Option<serde_json::Value>,
    rekor_public_key_path: Option<serde_json::Value>,
    rekor_public_key_paths: Option<serde_json::Value>,
    rekor_public_key_data: Option<serde_json::Value>,
    rekor_public_key_datas: Option<serde_json::Value>,
    pki: Option<serde_json::Value>,
    signed_identity: Option<Identity>,
}

/// `signedIdentity`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Identity {
    #[serde(rename = "matchExact")]
    MatchExact {},
    #[serde(rename = "matchRepoDigestOrExact")]
    MatchRepoDigestOrExact {},
    #[serde(rename = "matchRepository")]
    MatchRepository {},
    #[serde(rename = "exactReference")]
    ExactReference {
        #[serde(rename = "dockerReference")]
        docker_reference: String,
    },
    #[serde(rename = "exactRepository")]
    ExactRepository {
        #[serde(rename = "dockerRepository")]
        docker_repository: String,
    },
    #[serde(rename = "remapIdentity")]
    RemapIdentity {
        prefix: String,
        #[serde(rename = "signedPrefix")]
        signed_prefix: String,
    },
}

impl Identity {
    fn name(&self) -> &'static str {
        match self {
            Identity::MatchExact {} => "matchExact",
            Identity::MatchRepoDigestOrExact {} => "matchRepoDigestOrExact",
            Identity::MatchRepository {} => "matchRepository",
            Identity::ExactReference { .. } => "exactReference",
            Identity::ExactRepository { .. } => "exactRepository",
            Identity::RemapIdentity { .. } => "remapIdentity",
        }
    }
}

/// A signature found for an image: the payload, its signature (DER, base64 removed) and the
/// manifest digest whose `.sig` tag held it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub payload: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    pub for_digest: Digest,
}

/// Why an image was refused: the rule and scope that refused it, and what was missing.
#[derive(Debug, Clone, thiserror::Error)]
#[error("image `{image}` refused by signature policy `{policy}`: {rule} for {transport} scope {scope}: {reason}")]
pub struct Refusal {
    pub image: String,
    pub policy: String,
    pub transport: String,
    /// The scope as written in the file (`""` for a transport default, `default` for the global one).
    pub scope: String,
    pub rule: String,
    pub reason: String,
}

/// Where podman and skopeo look for the policy, in order (containers-policy.json(5)).
pub fn default_paths() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        out.push(PathBuf::from(home).join(".config/containers/policy.json"));
    }
    out.push(PathBuf::from("/etc/containers/policy.json"));
    out
}

impl Policy {
    /// The policy in force: `explicit` (which must exist), else the first of
    /// [`default_paths`] that exists; `None` when there is none at all.
    pub fn load(explicit: Option<&Path>) -> Result<Option<Policy>, SignError> {
        if let Some(p) = explicit {
            return Self::read(p).map(Some);
        }
        for p in default_paths() {
            if p.exists() {
                return Self::read(&p).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads and checks one policy file.
    pub fn read(path: &Path) -> Result<Policy, SignError> {
        let text = std::fs::read(path).map_err(|e| SignError::Io {
            what: format!("cannot read the signature policy `{}`", path.display()),
            err: e,
        })?;
        Self::parse(&text, path)
    }

    /// Parses policy text; `path` names it in messages.
    pub fn parse(text: &[u8], path: &Path) -> Result<Policy, SignError> {
        let bad = |reason: String| SignError::Policy {
            path: path.to_path_buf(),
            reason,
        };
        let f: File = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let check = |where_: &str, reqs: &[Requirement]| -> Result<(), SignError> {
            if reqs.is_empty() {
                return Err(bad(format!("{where_}: an empty list of requirements")));
            }
            for r in reqs {
                if let Requirement::SigstoreSigned(s) = r {
                    let n = usize::from(s.key_path.is_some())
                        + usize::from(s.key_paths.is_some())
                        + usize::from(s.key_data.is_some())
                        + usize::from(s.key_datas.is_some())
                        + usize::from(s.fulcio.is_some())
                        + usize::from(s.pki.is_some());
                    if n != 1 {
                        return Err(bad(format!(
                            "{where_}: `sigstoreSigned` needs exactly one of `keyPath`, `keyPaths`, `keyData`, `keyDatas`, `fulcio`, `pki`"
                        )));
                    }
                }
            }
            Ok(())
        };
        check("`default`", &f.default)?;
        for (t, scopes) in &f.transports {
            for (scope, reqs) in scopes {
                check(&format!("transport `{t}`, scope `{scope}`"), reqs)?;
            }
        }
        Ok(Policy {
            path: path.to_path_buf(),
            default: f.default,
            transports: f.transports,
        })
    }

    /// The requirements that apply to an image of `transport` whose scopes, most specific
    /// first, are `scopes`; with the scope's name as the file writes it.
    pub fn requirements(&self, transport: &str, scopes: &[String]) -> (String, &[Requirement]) {
        if let Some(t) = self.transports.get(transport) {
            for s in scopes.iter().map(String::as_str).chain([""]) {
                if let Some(r) = t.get(s) {
                    let label = if s.is_empty() {
                        "`\"\"`".to_string()
                    } else {
                        format!("`{s}`")
                    };
                    return (label, r);
                }
            }
        }
        ("`default`".to_string(), &self.default)
    }

    /// The keys of the `sigstoreSigned` requirements that apply to `reference`.
    pub fn docker_keys(&self, reference: &Reference) -> Result<Vec<PublicKey>, String> {
        let (_, reqs) = self.requirements("docker", &docker_scopes(reference));
        let mut out = Vec::new();
        for r in reqs {
            if let Requirement::SigstoreSigned(s) = r {
                if s.fulcio.is_none() && s.pki.is_none() {
                    out.extend(s.keys()?);
                }
            }
        }
        Ok(out)
    }

    /// Decides on an image of the `docker` transport. `signatures` is asked (once) only if a
    /// requirement needs them.
    pub fn check_docker(
        &self,
        reference: &Reference,
        signatures: &mut dyn FnMut() -> Result<Vec<Candidate>, String>,
    ) -> Result<(), Box<Refusal>> {
        self.check(
            "docker",
            &docker_scopes(reference),
            &reference.to_string(),
            Some(reference),
            signatures,
        )
    }

    /// Decides on an image read from an archive file (`oci-archive`, `docker-archive`):
    /// archives carry no sigstore signatures, so only `insecureAcceptAnything` admits them.
    pub fn check_archive(&self, transport: &str, file: &Path) -> Result<(), Box<Refusal>> {
        let scopes = if transport == "oci-archive" {
            path_scopes(file)
        } else {
            Vec::new()
        };
        self.check(
            transport,
            &scopes,
            &format!("{transport}:{}", file.display()),
            None,
            &mut || Ok(Vec::new()),
        )
    }

    fn check(
        &self,
        transport: &str,
        scopes: &[String],
        image: &str,
        reference: Option<&Reference>,
        signatures: &mut dyn FnMut() -> Result<Vec<Candidate>, String>,
    ) -> Result<(), Box<Refusal>> {
        let (scope, reqs) = self.requirements(transport, scopes);
        let refuse = |rule: &str, reason: String| {
            Box::new(Refusal {
                image: image.to_string(),
                policy: self.path.display().to_string(),
                transport: format!("`{transport}`"),
                scope: scope.clone(),
                rule: format!("`{rule}`"),
                reason,
            })
        };
        let mut fetched: Option<Vec<Candidate>> = None;
        for r in reqs {
            match r {
                Requirement::InsecureAcceptAnything {} => {}
                Requirement::Reject {} => {
                    return Err(refuse(
                        "reject",
                        "the policy rejects every image here".into(),
                    ))
                }
                Requirement::SignedBy(s) => {
                    let _ = (
                        &s.key_type,
                        &s.key_path,
                        &s.key_paths,
                        &s.key_data,
                        &s.signed_identity,
                    );
                    return Err(refuse(
                        "signedBy",
                        "GPG simple signing is not verified by hoist (only `sigstoreSigned` keys)"
                            .into(),
                    ));
                }
                Requirement::SigstoreSigned(s) => {
                    let rule = "sigstoreSigned";
                    if s.fulcio.is_some() || s.pki.is_some() {
                        return Err(refuse(
                            rule,
                            "keyless (`fulcio`, `pki`) verification is not supported by hoist"
                                .into(),
                        ));
                    }
                    if s.rekor_public_key_path.is_some()
                        || s.rekor_public_key_paths.is_some()
                        || s.rekor_public_key_data.is_some()
                        || s.rekor_public_key_datas.is_some()
                    {
                        return Err(refuse(
                            rule,
                            "transparency-log (`rekorPublicKey…`) checks are not supported by hoist".into(),
                        ));
                    }
                    let Some(reference) = reference else {
                        return Err(refuse(
                            rule,
                            format!("the `{transport}` transport carries no sigstore signatures"),
                        ));
                    };
                    let keys = s.keys().map_err(|e| refuse(rule, e))?;
                    if fetched.is_none() {
                        fetched = Some(signatures().map_err(|e| refuse(rule, e))?);
                    }
                    let sigs = fetched.as_deref().unwrap_or_default();
                    let identity = s
                        .signed_identity
                        .clone()
                        .unwrap_or(Identity::MatchRepoDigestOrExact {});
                    if let Err(reason) = accept_any(sigs, &keys, &identity, reference) {
                        return Err(refuse(rule, reason));
                    }
                }
            }
        }
        Ok(())
    }
}

impl SigstoreSigned {
    fn keys(&self) -> Result<Vec<PublicKey>, String> {
        let mut out = Vec::new();
        let paths = self.key_path.iter().chain(self.key_paths.iter().flatten());
        for p in paths {
            out.push(PublicKey::read(p).map_err(|e| e.to_string())?);
        }
        let datas = self.key_data.iter().chain(self.key_datas.iter().flatten());
        for d in datas {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(d.trim().as_bytes())
                .map_err(|_| "`keyData` is not base64".to_string())?;
            out.push(PublicKey::from_pem(&pem, "keyData")?);
        }
        Ok(out)
    }
}

/// Accepts when one signature verifies with one of `keys`, claims the manifest digest of the
/// `.sig` tag it came from, and names an identity `identity` accepts for `reference`. Else the
/// reason the most nearly acceptable signature failed.
fn accept_any(
    sigs: &[Candidate],
    keys: &[PublicKey],
    identity: &Identity,
    reference: &Reference,
) -> Result<(), String> {
    if sigs.is_empty() {
        return Err("the image has no signatures".into());
    }
    let key_names = keys
        .iter()
        .map(|k| format!("`{}`", k.origin))
        .collect::<Vec<_>>()
        .join(", ");
    // reasons ranked by how far a signature got: 0 unsigned/bad key, 1 payload, 2 digest, 3 identity
    let mut best: Option<(u8, String)> = None;
    let mut note = |rank: u8, reason: String| {
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, reason));
        }
    };
    for (i, c) in sigs.iter().enumerate() {
        let n = i + 1;
        let Some(sig) = &c.signature else {
            note(
                0,
                format!(
                    "signature {n} has no `{}` annotation",
                    payload::SIGNATURE_ANNOTATION
                ),
            );
            continue;
        };
        if !keys.iter().any(|k| k.verifies(&c.payload, sig)) {
            note(0, format!("no signature is made by the key {key_names}"));
            continue;
        }
        let claims = match payload::parse(&c.payload) {
            Ok(cl) => cl,
            Err(e) => {
                note(1, format!("signature {n}: {e}"));
                continue;
            }
        };
        if claims.digest != c.for_digest {
            note(
                2,
                format!(
                    "signature {n} is for manifest `{}`, not this image's `{}`",
                    claims.digest, c.for_digest
                ),
            );
            continue;
        }
        match identity_matches(identity, reference, &claims.docker_reference) {
            Ok(()) => return Ok(()),
            Err(e) => note(3, format!("signature {n}: {e}")),
        }
    }
    Err(best.map(|(_, r)| r).unwrap_or_default())
}

/// A docker reference as a signature names it: repository (normalised), tag, digest.
#[derive(Debug, PartialEq, Eq)]
struct Named {
    repo: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn parse_named(s: &str) -> Result<Named, String> {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (s, None),
    };
    let slash = rest.rfind('/');
    let (repo, tag) = match rest.rfind(':') {
        Some(i) if slash.is_none_or(|sl| i > sl) => (&rest[..i], Some(rest[i + 1..].to_string())),
        _ => (rest, None),
    };
    let r = Reference::parse(repo).map_err(|e| format!("identity `{s}`: {e}"))?;
    Ok(Named {
        repo: r.repository(),
        tag,
        digest,
    })
}

fn image_named(r: &Reference) -> Named {
    match r.digest() {
        Some(d) => Named {
            repo: r.repository(),
            tag: None,
            digest: Some(d.to_string()),
        },
        None => Named {
            repo: r.repository(),
            tag: r.tag().map(str::to_string),
            digest: None,
        },
    }
}

fn repo_digest_or_exact(image: &Named, signed: &Named) -> bool {
    if image.digest.is_some() {
        image.repo == signed.repo
    } else {
        image == signed
    }
}

/// Whether `signed` (the payload's `docker-reference`) is acceptable for `reference`.
fn identity_matches(
    identity: &Identity,
    reference: &Reference,
    signed: &str,
) -> Result<(), String> {
    let sig = parse_named(signed)?;
    let image = image_named(reference);
    let ok = match identity {
        Identity::MatchExact {} => image == sig,
        Identity::MatchRepoDigestOrExact {} => repo_digest_or_exact(&image, &sig),
        Identity::MatchRepository {} => image.repo == sig.repo,
        Identity::ExactReference { docker_reference } => parse_named(docker_reference)? == sig,
        Identity::ExactRepository { docker_repository } => {
            parse_named(docker_repository)?.repo == sig.repo
        }
        Identity::RemapIdentity {
            prefix,
            signed_prefix,
        } => {
            let full = reference.to_string();
            let remapped = match full.strip_prefix(prefix.as_str()) {
                Some(rest) if rest.is_empty() || rest.starts_with(['/', ':', '@']) => {
                    format!("{signed_prefix}{rest}")
                }
                _ => full,
            };
            repo_digest_or_exact(&image_named_str(&remapped)?, &sig)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "its identity `{signed}` does not match `{reference}` under `{}`",
            identity.name()
        ))
    }
}

fn image_named_str(s: &str) -> Result<Named, String> {
    let r = Reference::parse(s).map_err(|e| format!("`{s}`: {e}"))?;
    Ok(image_named(&r))
}

/// The `docker` scopes of a reference, most specific first (without the transport's `""`).
pub fn docker_scopes(r: &Reference) -> Vec<String> {
    let repo = r.repository();
    let mut out = vec![match (r.digest(), r.tag()) {
        (Some(d), _) => format!("{repo}@{d}"),
        (None, Some(t)) => format!("{repo}:{t}"),
        (None, None) => repo.clone(),
    }];
    let mut cur = repo.as_str();
    loop {
        out.push(cur.to_string());
        match cur.rfind('/') {
            Some(i) => cur = &cur[..i],
            None => break,
        }
    }
    // `*.example.com` for `reg.example.com` (the host without its port)
    let host = r.domain().split(':').next().unwrap_or_default();
    let mut rest = host;
    while let Some(i) = rest.find('.') {
        rest = &rest[i + 1..];
        out.push(format!("*.{rest}"));
    }
    out
}

/// The `oci-archive` scopes of a file: the path, then each parent directory but `/`.
fn path_scopes(p: &Path) -> Vec<String> {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = Vec::new();
    let mut cur = Some(abs.as_path());
    while let Some(c) = cur {
        if c == Path::new("/") {
            break;
        }
        out.push(c.display().to_string());
        cur = c.parent();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text.as_bytes(), Path::new("p.json")).expect("policy")
    }

    #[test]
    fn most_specific_scope_wins() {
        let p = policy(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{
                "reg.example.com/team":[{"type":"insecureAcceptAnything"}],
                "reg.example.com/team/app:1":[{"type":"reject"}],
                "*.example.com":[{"type":"reject"}],
                "":[{"type":"insecureAcceptAnything"}]}}}"#,
        );
        let ok = |s: &str| {
            let r = Reference::parse(s).expect("ref");
            p.check_docker(&r, &mut || Ok(Vec::new()))
                .map(|_| ())
                .map_err(|e| e.scope)
        };
        assert_eq!(ok("reg.example.com/team/app:2"), Ok(()));
        assert_eq!(
            ok("reg.example.com/team/app:1"),
            Err("`reg.example.com/team/app:1`".into())
        );
        assert_eq!(ok("other.example.com/x:1"), Err("`*.example.com`".into()));
        assert_eq!(ok("quay.io/x:1"), Ok(()));
    }

    #[test]
    fn strict_parsing() {
        for bad in [
            r#"{"default":[]}"#,
            r#"{"default":[{"type":"insecureAcceptAnything"}],"extra":1}"#,
            r#"{"default":[{"type":"sigstoreSigned"}]}"#,
            r#"{"default":[{"type":"sigstoreSigned","keyData":"x","keyPath":"/k"}]}"#,
            r#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"matchRepository","x":1}}]}"#,
            r#"{"default":[{"type":"nope"}]}"#,
            r#"{"default":[{"type":"reject","x":1}]}"#,
        ] {
            assert!(
                Policy::parse(bad.as_bytes(), Path::new("p")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn identities() {
        let tagged = Reference::parse("reg.io/a/b:1").expect("ref");
        let d = Digest::of_bytes(b"m");
        let digested = Reference::parse(&format!("reg.io/a/b@{d}")).expect("ref");
        let m = |i: &Identity, r: &Reference, s: &str| identity_matches(i, r, s).is_ok();
        let rde = Identity::MatchRepoDigestOrExact {};
        assert!(m(&rde, &tagged, "reg.io/a/b:1"));
        assert!(!m(&rde, &tagged, "reg.io/a/b:2"));
        assert!(!m(&rde, &tagged, "reg.io/a/b"));
        assert!(m(&rde, &digested, "reg.io/a/b:anything"));
        assert!(!m(&rde, &digested, "reg.io/a/c:1"));
        assert!(m(&Identity::MatchRepository {}, &tagged, "reg.io/a/b"));
        assert!(!m(&Identity::MatchRepository {}, &tagged, "reg.io/a/bb"));
        let exact = Identity::ExactRepository {
            docker_repository: "vendor.io/p".into(),
        };
        assert!(m(&exact, &tagged, "vendor.io/p:7"));
        assert!(!m(&exact, &tagged, "reg.io/a/b:1"));
        let remap = Identity::RemapIdentity {
            prefix: "reg.io/a".into(),
            signed_prefix: "vendor.io/x".into(),
        };
        assert!(m(&remap, &tagged, "vendor.io/x/b:1"));
        assert!(!m(&remap, &tagged, "reg.io/a/b:1"));
        assert!(m(&Identity::MatchExact {}, &tagged, "reg.io/a/b:1"));
        assert!(!m(&Identity::MatchExact {}, &digested, "reg.io/a/b:1"));
        // docker.io short names are normalised on both sides
        let hub = Reference::parse("busybox:1").expect("ref");
        assert!(m(&rde, &hub, "docker.io/library/busybox:1"));
    }

    #[test]
    fn archives_pass_only_without_signature_requirements() {
        let p = policy(
            r#"{"default":[{"type":"insecureAcceptAnything"}],"transports":{"oci-archive":{
                "/srv/trusted":[{"type":"insecureAcceptAnything"}],
                "":[{"type":"sigstoreSigned","keyData":"eA=="}]}}}"#,
        );
        assert!(p
            .check_archive("oci-archive", Path::new("/srv/trusted/a.tar"))
            .is_ok());
        let e = p
            .check_archive("oci-archive", Path::new("/tmp/a.tar"))
            .expect_err("refused");
        assert_eq!(e.rule, "`sigstoreSigned`");
        assert!(p
            .check_archive("docker-archive", Path::new("/tmp/a.tar"))
            .is_ok());
    }
}
