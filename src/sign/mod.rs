//! Content trust: cosign-compatible keyed signatures and containers-policy.json(5).
//!
//! - `keys.rs`: sigstore key files. A private key is a PKCS#8 P-256 key sealed with NaCl
//!   secretbox under a key derived by scrypt from a passphrase, in a PEM block
//!   `ENCRYPTED SIGSTORE PRIVATE KEY` (`ENCRYPTED COSIGN PRIVATE KEY` is read too); a public
//!   key is a PEM `PUBLIC KEY` (PKIX).
//! - `payload.rs`: the "simple signing" payload (cosign's `specs/SIGNATURE_SPEC.md`) and the
//!   OCI manifest that carries signatures at the tag `sha256-<hex>.sig`: one layer per
//!   signature, the base64 DER ECDSA-P256-SHA256 signature in the layer's annotation
//!   `dev.cosignproject.cosign/signature`.
//! - `policy.rs`: `policy.json`: scopes per transport, requirements (`insecureAcceptAnything`,
//!   `reject`, `sigstoreSigned`), signed identities; pure (given the signatures, it decides).
//! - `remote.rs`: reads the signatures of an image from its registry and appends one.
//!
//! It uses `registry` and `image`, never the store: a verdict is given before anything is
//! stored. It talks to no network service but the registry (no transparency log, no
//! certificate authority), and never prints, logs or returns a private key or a passphrase.

pub mod keys;
pub mod payload;
pub mod policy;
pub mod remote;

pub use keys::{PrivateKey, PublicKey};
pub use policy::Policy;

use std::path::PathBuf;

use crate::registry::RegistryError;

/// Why a content-trust operation failed. No variant carries a key or a passphrase.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("`{path}`: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("`{0}`: wrong passphrase (the key cannot be decrypted with it)")]
    WrongPassphrase(PathBuf),
    #[error("`{path}` already exists: hoist does not overwrite key files")]
    Exists { path: PathBuf },
    #[error("signature policy `{path}`: {reason}")]
    Policy { path: PathBuf, reason: String },
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    #[error("signature of `{reference}`: {reason}")]
    Invalid { reference: String, reason: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}
