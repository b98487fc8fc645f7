//! The OCI distribution API (distribution-spec v1.1): a small blocking client on `ureq` with
//! oci-spec's types. It pulls an image as a [`RemoteImage`] (an [`ImageSource`] the store copies
//! from), pushes any [`ImageSource`] ([`push::push`]), and lists repositories and tags.
//!
//! - `client.rs`: one [`Client`] per registry host: the scheme (https, or http where the user
//!   allowed an insecure registry), auth challenges (bearer tokens per scope set, basic),
//!   retries with backoff on connection errors, 5xx and 429, and the raw manifest and blob calls
//!   (fetch, put, head, mount) that push, pull and content trust build on.
//! - `auth.rs`: the keychain (`--creds`, `--authfile`, `$REGISTRY_AUTH_FILE`,
//!   `$XDG_RUNTIME_DIR/containers/auth.json`, `~/.config/containers/auth.json`,
//!   `~/.docker/config.json` with its credential helpers) and the `auth.json` writer of `login`.
//! - `conf.rs`: `registries.conf` (containers-registries.conf(5), version 2): locations, mirrors,
//!   `insecure`, `blocked`, `unqualified-search-registries`.
//! - `tls.rs`: rustls configurations (system and `certs.d` roots, client certificates, or no
//!   verification for `--tls-verify=false`).
//! - `remote.rs`: [`RemoteImage`], with the platform choice in indexes and verified streaming.
//! - `push.rs`: blobs the registry lacks (HEAD first, then a cross-repository mount, then a
//!   streamed upload), bounded in parallel, then the manifest.
//!
//! It never imports the store (pull is "read a RemoteImage, write the store", in `cli`), never
//! holds a whole layer in memory, and never lets a credential reach a log line, an error or
//! standard output: errors name the registry and the object, never a header or a token.

pub mod auth;
mod client;
pub mod conf;
pub mod push;
mod remote;
mod tls;

pub use auth::Credential;
pub use client::{Client, ManifestKind, Mount, Progress};
pub use conf::Conf;
pub use remote::{choose_platform, RemoteImage, VerifyingReader};

use std::path::PathBuf;
use std::sync::Arc;

use crate::image::{Digest, ImageError, Platform, Reference};

/// Why a registry operation failed. No variant ever carries a credential.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry `{registry}`: {message}")]
    Http { registry: String, message: String },
    #[error("registry `{registry}`: authentication failed (invalid username or password)")]
    BadCredentials { registry: String },
    #[error("registry `{registry}`: authentication required: log in with `hoist login {registry}` or pass `--creds`")]
    AuthRequired { registry: String },
    #[error("registry `{registry}`: access to `{what}` denied")]
    Denied { registry: String, what: String },
    #[error("{what} not found in registry `{registry}`")]
    NotFound { registry: String, what: String },
    #[error("registry `{0}` is blocked in registries.conf")]
    Blocked(String),
    #[error("blob `{digest}` from registry `{registry}` does not match its digest (the data hashes to `{actual}`)")]
    DigestMismatch {
        registry: String,
        digest: Digest,
        actual: Digest,
    },
    #[error("blob `{digest}` from registry `{registry}` has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        registry: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("`{path}`: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("credentials for `{registry}`: {reason}")]
    Credentials { registry: String, reason: String },
    #[error("registry `{0}` does not offer a catalog of its repositories (`/v2/_catalog`); name a repository to list its tags with `--list-tags`")]
    NoCatalog(String),
    #[error("image `{reference}` has no manifest for platform `{wanted}` (it offers {available})")]
    Platform {
        reference: String,
        wanted: Platform,
        available: String,
    },
    #[error("image `{reference}`: {reason}")]
    Invalid { reference: String, reason: String },
    #[error("TLS settings for `{registry}`: {reason}")]
    Tls { registry: String, reason: String },
    /// (The I/O error is part of the message, not a `source`: a report of the chain would
    /// print it twice.)
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
    #[error(transparent)]
    Image(#[from] ImageError),
}

impl From<RegistryError> for ImageError {
    fn from(e: RegistryError) -> ImageError {
        match e {
            RegistryError::Image(i) => i,
            RegistryError::DigestMismatch { digest, actual, .. } => {
                ImageError::DigestMismatch { digest, actual }
            }
            other => ImageError::Io(std::io::Error::other(other.to_string())),
        }
    }
}

/// Connection settings from the command line; `None` means "as `registries.conf` says".
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--tls-verify`: `Some(false)` allows plain http and unverified certificates.
    pub tls_verify: Option<bool>,
    /// `--cert-dir`: CA certificates (`*.crt`) and a client certificate (`*.cert` + `*.key`).
    pub cert_dir: Option<PathBuf>,
    /// `--authfile`: the only auth file read (and the one `login` writes).
    pub authfile: Option<PathBuf>,
    /// `--creds USER[:PASS]`: used instead of any stored credential.
    pub creds: Option<Credential>,
}

/// Where one image lives: a client for its registry host and the repository path there.
#[derive(Debug, Clone)]
pub struct Repo {
    pub client: Arc<Client>,
    /// The repository path on that host (`library/busybox`).
    pub path: String,
}

/// A registry session: the settings and one client per host (so tokens are reused).
#[derive(Debug)]
pub struct Registries {
    pub options: Options,
    pub conf: Conf,
    clients: std::sync::Mutex<std::collections::HashMap<(String, bool), Arc<Client>>>,
}

impl Registries {
    /// Reads `registries.conf` and keeps `options` for every connection.
    pub fn new(options: Options) -> Result<Registries, RegistryError> {
        Ok(Registries {
            options,
            conf: Conf::load()?,
            clients: Default::default(),
        })
    }

    /// With an explicit configuration (tests, embedding).
    pub fn with_conf(options: Options, conf: Conf) -> Registries {
        Registries {
            options,
            conf,
            clients: Default::default(),
        }
    }

    /// The client for a registry host; `insecure` comes from `registries.conf` or the flags.
    pub fn client(&self, host: &str, conf_insecure: bool) -> Result<Arc<Client>, RegistryError> {
        let insecure = match self.options.tls_verify {
            Some(v) => !v,
            None => conf_insecure,
        };
        let key = (host.to_string(), insecure);
        let mut map = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let creds = match &self.options.creds {
            Some(c) => Some(c.clone()),
            None => auth::lookup(host, self.options.authfile.as_deref())?,
        };
        let c = Arc::new(Client::new(
            host,
            insecure,
            self.options.cert_dir.as_deref(),
            creds,
        )?);
        map.insert(key, c.clone());
        Ok(c)
    }

    /// The places to pull `reference` from, in order: its mirrors, then the registry itself
    /// (rewritten by a `location` that differs from its `prefix`). Fails if it is blocked.
    pub fn pull_sources(&self, reference: &Reference) -> Result<Vec<Repo>, RegistryError> {
        let mut out = Vec::new();
        for ep in self.conf.endpoints(reference, true)? {
            out.push(Repo {
                client: self.client(&ep.host, ep.insecure)?,
                path: ep.path,
            });
        }
        Ok(out)
    }

    /// Where to push `reference` (mirrors are never pushed to).
    pub fn push_target(&self, reference: &Reference) -> Result<Repo, RegistryError> {
        let ep = self
            .conf
            .endpoints(reference, false)?
            .pop()
            .ok_or_else(|| RegistryError::Blocked(reference.domain().to_string()))?;
        Ok(Repo {
            client: self.client(&ep.host, ep.insecure)?,
            path: ep.path,
        })
    }

    /// What a user's name may mean when pulling: a qualified name means itself; a short name
    /// is tried on each `unqualified-search-registries` entry, or on `docker.io` when none is
    /// configured. Never another registry.
    pub fn candidates(&self, name: &str) -> Result<Vec<Reference>, RegistryError> {
        let invalid = |e: crate::image::ReferenceError| RegistryError::Invalid {
            reference: name.to_string(),
            reason: e.to_string(),
        };
        if Reference::is_qualified(name).map_err(invalid)? {
            return Ok(vec![Reference::parse(name).map_err(invalid)?]);
        }
        let search = self.conf.search_registries();
        if search.is_empty() {
            return Ok(vec![Reference::parse(name).map_err(invalid)?]);
        }
        search
            .iter()
            .map(|d| Reference::parse_on(name, d).map_err(invalid))
            .collect()
    }
}
