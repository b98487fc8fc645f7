//! One registry host over the distribution API: scheme, auth, retries, and the raw calls.
//!
//! Auth follows the distribution "token authentication" spec: a request answered `401` with a
//! `Bearer` challenge makes the client fetch a token for the scopes the call needs (pull; pull
//! and push; and `pull` on the source repository of a cross-repository mount) from the realm,
//! with the user's basic credentials or OAuth2 refresh token, then retry once. A `Basic`
//! challenge sends the credentials with every request. Tokens are kept per scope set.
//!
//! Connection errors, `5xx` and `429` are retried up to [`RETRIES`] times with exponential
//! backoff (honouring a short `Retry-After`); streamed request bodies are opened again for a
//! retry. A `401` after fresh authentication is a credential error naming the registry.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use super::auth::{parse_challenge, Challenge, Credential};
use super::RegistryError;
use crate::image::Digest;

/// How often a failed request is tried again.
pub const RETRIES: u32 = 4;
/// The largest manifest or index accepted (the distribution project's limit).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// The media types a manifest GET accepts.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Progress of one blob transfer, reported as bytes move.
pub trait Progress: Send + Sync {
    /// `done` of `total` bytes of `digest` have moved; `finished` once, at the end.
    fn update(&self, digest: &Digest, done: u64, total: u64, finished: bool);
}

/// Whether a manifest is a single image or an index (OCI index, docker manifest list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    Image,
    Index,
}

impl ManifestKind {
    /// Classifies a manifest by its `Content-Type`, else by its own `mediaType` field, else by
    /// its shape (`manifests` vs `layers`). `None` for what is neither.
    pub fn classify(content_type: &str, body: &[u8]) -> Option<ManifestKind> {
        let by_type = |t: &str| match t {
            OCI_INDEX | DOCKER_LIST => Some(ManifestKind::Index),
            OCI_MANIFEST | DOCKER_MANIFEST => Some(ManifestKind::Image),
            _ => None,
        };
        let ct = content_type.split(';').next().unwrap_or("").trim();
        if let Some(k) = by_type(ct) {
            return Some(k);
        }
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        if let Some(k) = v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .and_then(by_type)
        {
            return Some(k);
        }
        if v.get("manifests").is_some_and(|m| m.is_array()) {
            Some(ManifestKind::Index)
        } else if v.get("layers").is_some_and(|m| m.is_array()) {
            Some(ManifestKind::Image)
        } else {
            None
        }
    }
}

/// How a blob came to be in a repository on push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mount {
    /// The registry had it already.
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// A manifest as fetched: raw bytes (hashed as they are), media type, digest.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// Opens a request body (again, for each retry).
pub type OpenBody<'a> = dyn FnMut() -> std::io::Result<Box<dyn Read + 'a>> + 'a;

/// A request body that can be produced again for a retry.
enum Body<'a, 'b> {
    Empty,
    Bytes(&'a [u8]),
    Stream(&'a mut OpenBody<'b>),
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// Bearer tokens by their scope set (space-joined).
    tokens: HashMap<String, String>,
}

/// What a failed call returns: an HTTP status the caller may interpret, or a final error.
enum CallError {
    Status { code: u16, message: String },
    Other(RegistryError),
}

/// A client for one registry host. Shared (`Arc`) by every repository and thread of a session.
pub struct Client {
    /// The registry as references name it (`docker.io`, `127.0.0.1:5000`).
    host: String,
    /// The host the API is served on (`registry-1.docker.io` for `docker.io`).
    api_host: String,
    insecure: bool,
    agent: ureq::Agent,
    creds: Option<Credential>,
    base: OnceLock<String>,
    auth: Mutex<AuthState>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("insecure", &self.insecure)
            .field("creds", &self.creds)
            .finish()
    }
}

fn backoff(attempt: u32, retry_after: Option<&str>) -> Duration {
    let base = Duration::from_millis(250 * (1 << attempt.min(5)));
    match retry_after.and_then(|s| s.trim().parse::<u64>().ok()) {
        Some(secs) => Duration::from_secs(secs.min(10)).max(base),
        None => base,
    }
}

/// The distribution spec's error body (`{"errors":[{"code","message"}]}`), shortened to one line.
fn error_message(code: u16, resp: ureq::Response) -> String {
    let status = format!("{code} {}", resp.status_text());
    let mut body = Vec::new();
    let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut body);
    let detail = serde_json::from_slice::<oci_spec::distribution::ErrorResponse>(&body)
        .ok()
        .and_then(|r| {
            r.errors().first().map(|e| {
                let msg = e.message().clone().unwrap_or_default();
                format!("{:?}: {msg}", e.code())
            })
        });
    match detail {
        Some(d) => format!("{status} ({d})"),
        None => status,
    }
}

impl Client {
    /// A client for `host`. `insecure` allows plain http and unverified certificates.
    pub fn new(
        host: &str,
        insecure: bool,
        cert_dir: Option<&std::path::Path>,
        creds: Option<Credential>,
    ) -> Result<Client, RegistryError> {
        let tls = super::tls::config(host, insecure, cert_dir)?;
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls)
            .timeout_connect(Duration::from_secs(30))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .user_agent(concat!("hoist/", env!("CARGO_PKG_VERSION")))
            .try_proxy_from_env(true)
            .build();
        let api_host = match host {
            "docker.io" => "registry-1.docker.io".to_string(),
            h => h.to_string(),
        };
        Ok(Client {
            host: host.to_string(),
            api_host,
            insecure,
            agent,
            creds,
            base: OnceLock::new(),
            auth: Mutex::new(AuthState::default()),
        })
    }

    /// The registry as references name it.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn http_err(&self, message: impl Into<String>) -> RegistryError {
        RegistryError::Http {
            registry: self.host.clone(),
            message: message.into(),
        }
    }

    /// `https://HOST` or, for an insecure registry that does not speak TLS, `http://HOST`.
    fn base(&self) -> Result<&str, RegistryError> {
        if let Some(b) = self.base.get() {
            return Ok(b);
        }
        let https = format!("https://{}", self.api_host);
        let chosen = match self.agent.get(&format!("{https}/v2/")).call() {
            Ok(_) | Err(ureq::Error::Status(..)) => https,
            Err(e) if self.insecure => {
                let http = format!("http://{}", self.api_host);
                match self.agent.get(&format!("{http}/v2/")).call() {
                    Ok(_) | Err(ureq::Error::Status(..)) => {
                        log::debug!("registry `{}` speaks plain http", self.host);
                        http
                    }
                    Err(_) => return Err(self.http_err(transport_message(&e))),
                }
            }
            Err(e) => {
                let msg = transport_message(&e);
                let lower = msg.to_lowercase();
                // the server's alert: it wants a client certificate (mutual TLS), not ours
                if lower.contains("received fatal alert")
                    && (lower.contains("badcertificate") || lower.contains("certificaterequired"))
                {
                    return Err(self.http_err(format!(
                        "{msg} (the registry requires a client certificate and refused the one offered, or none was found: put `NAME.cert` and `NAME.key` in `--cert-dir` or the registry's certs.d directory)"
                    )));
                }
                if lower.contains("tls") || lower.contains("certificate") {
                    return Err(self.http_err(format!(
                        "{msg} (a registry without TLS, or with a certificate hoist cannot verify, needs `--tls-verify=false`, `--cert-dir` or `insecure = true` in registries.conf)"
                    )));
                }
                return Err(self.http_err(msg));
            }
        };
        Ok(self.base.get_or_init(|| chosen))
    }

    /// Whether `url` is on the registry itself (scheme, host and port; default ports equal).
    fn same_origin(&self, url: &str) -> bool {
        fn origin(u: &str) -> Option<(&str, String)> {
            let (scheme, rest) = u.split_once("://")?;
            let authority = rest.split(['/', '?']).next()?.to_ascii_lowercase();
            let default = if scheme == "https" { ":443" } else { ":80" };
            let authority = match authority.strip_suffix(default) {
                Some(a) => a.to_string(),
                None => authority,
            };
            Some((scheme, authority))
        }
        match (self.base.get(), origin(url)) {
            (Some(base), Some(o)) => origin(base) == Some(o),
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The `Authorization` value for a call needing `scopes`, fetching a token first when the
    /// registry is known to want one and none is cached for these scopes.
    fn auth_header(&self, scopes: &[String]) -> Result<Option<String>, RegistryError> {
        let challenge = self.lock().challenge.clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().and_then(Credential::basic_header)),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.join(" ");
                if let Some(t) = self.lock().tokens.get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let t = self.fetch_token(&realm, service.as_deref(), scopes)?;
                self.lock().tokens.insert(key, t.clone());
                Ok(Some(format!("Bearer {t}")))
            }
        }
    }

    /// Takes a challenge from a 401 and prepares the credentials it asks for.
    fn authenticate(&self, challenge: Challenge, scopes: &[String]) -> Result<(), RegistryError> {
        match &challenge {
            Challenge::Basic => {
                if !matches!(self.creds, Some(Credential::Basic { .. })) {
                    return Err(RegistryError::AuthRequired {
                        registry: self.host.clone(),
                    });
                }
            }
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let mut all = scopes.to_vec();
                if let Some(s) = scope {
                    if !all.contains(s) {
                        all.push(s.clone());
                    }
                }
                let t = self.fetch_token(realm, service.as_deref(), &all)?;
                self.lock().tokens.insert(scopes.join(" "), t);
            }
        }
        self.lock().challenge = Some(challenge);
        Ok(())
    }

    /// Asks the token server for a token (distribution "token" and "oauth" specs).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, RegistryError> {
        if !self.insecure && !realm.starts_with("https://") {
            return Err(self.http_err(format!(
                "the token server `{realm}` is not https: credentials are not sent there (use `--tls-verify=false` to allow it)"
            )));
        }
        let mut attempt = 0;
        loop {
            let res = match &self.creds {
                Some(Credential::IdentityToken(refresh)) => {
                    let scope = scopes.join(" ");
                    let mut form = vec![
                        ("grant_type", "refresh_token"),
                        ("client_id", "hoist"),
                        ("refresh_token", refresh.as_str()),
                    ];
                    if let Some(s) = service {
                        form.push(("service", s));
                    }
                    if !scope.is_empty() {
                        form.push(("scope", &scope));
                    }
                    self.agent.post(realm).send_form(&form)
                }
                creds => {
                    let mut req = self.agent.get(realm);
                    if let Some(s) = service {
                        req = req.query("service", s);
                    }
                    for s in scopes {
                        req = req.query("scope", s);
                    }
                    if let Some(h) = creds.as_ref().and_then(Credential::basic_header) {
                        req = req.set("Authorization", &h);
                    }
                    req.call()
                }
            };
            match res {
                Ok(resp) => {
                    #[derive(serde::Deserialize)]
                    struct Token {
                        token: Option<String>,
                        access_token: Option<String>,
                    }
                    let t: Token = serde_json::from_reader(resp.into_reader().take(1 << 20))
                        .map_err(|e| {
                            self.http_err(format!("the token server sent an invalid answer: {e}"))
                        })?;
                    return t.token.or(t.access_token).ok_or_else(|| {
                        self.http_err("the token server sent no token".to_string())
                    });
                }
                Err(ureq::Error::Status(401 | 403, _)) => {
                    return Err(if self.creds.is_some() {
                        RegistryError::BadCredentials {
                            registry: self.host.clone(),
                        }
                    } else {
                        RegistryError::AuthRequired {
                            registry: self.host.clone(),
                        }
                    })
                }
                Err(ureq::Error::Status(code, resp))
                    if retriable_status(code) && attempt < RETRIES =>
                {
                    std::thread::sleep(backoff(attempt, resp.header("Retry-After")));
                }
                Err(ureq::Error::Status(code, resp)) => {
                    return Err(
                        self.http_err(format!("token server: {}", error_message(code, resp)))
                    )
                }
                Err(ureq::Error::Transport(t)) if retriable_transport(&t) && attempt < RETRIES => {
                    std::thread::sleep(backoff(attempt, None));
                }
                Err(e) => {
                    return Err(self.http_err(format!("token server: {}", transport_message(&e))))
                }
            }
            attempt += 1;
        }
    }

    /// One API call with auth and retries. `path` is `/v2/…` or an absolute URL (an upload
    /// location). An HTTP error status comes back as [`CallError::Status`].
    fn call(
        &self,
        method: &str,
        path: &str,
        scopes: &[String],
        headers: &[(&str, &str)],
        query: &[(&str, &str)],
        mut body: Body<'_, '_>,
    ) -> Result<ureq::Response, CallError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base().map_err(CallError::Other)?)
        };
        let mut attempt = 0;
        let mut reauthenticated = false;
        loop {
            let mut req = self.agent.request(method, &url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            for (k, v) in query {
                req = req.query(k, v);
            }
            // credentials go only to the registry itself, never to an upload location on
            // another host
            if self.same_origin(&url) {
                if let Some(h) = self.auth_header(scopes).map_err(CallError::Other)? {
                    req = req.set("Authorization", &h);
                }
            }
            let res = match &mut body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::Stream(open) => {
                    let r = open().map_err(|e| {
                        CallError::Other(RegistryError::Io {
                            what: format!("upload to `{}`", self.host),
                            err: e,
                        })
                    })?;
                    req.send(r)
                }
            };
            match res {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, resp)) if !reauthenticated => {
                    reauthenticated = true;
                    let challenge = resp.header("WWW-Authenticate").and_then(parse_challenge);
                    match challenge {
                        Some(c) => self.authenticate(c, scopes).map_err(CallError::Other)?,
                        None => {
                            return Err(CallError::Other(RegistryError::AuthRequired {
                                registry: self.host.clone(),
                            }))
                        }
                    }
                    continue;
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(CallError::Other(if self.creds.is_some() {
                        RegistryError::BadCredentials {
                            registry: self.host.clone(),
                        }
                    } else {
                        RegistryError::AuthRequired {
                            registry: self.host.clone(),
                        }
                    }))
                }
                Err(ureq::Error::Status(code, resp))
                    if retriable_status(code) && attempt < RETRIES =>
                {
                    log::debug!(
                        "registry `{}`: {method} answered {code}; retrying",
                        self.host
                    );
                    std::thread::sleep(backoff(attempt, resp.header("Retry-After")));
                }
                Err(ureq::Error::Status(code, resp)) => {
                    return Err(CallError::Status {
                        code,
                        message: error_message(code, resp),
                    })
                }
                Err(ureq::Error::Transport(t)) if retriable_transport(&t) && attempt < RETRIES => {
                    log::debug!("registry `{}`: {t}; retrying", self.host);
                    std::thread::sleep(backoff(attempt, None));
                }
                Err(e) => return Err(CallError::Other(self.http_err(transport_message(&e)))),
            }
            attempt += 1;
        }
    }

    /// Maps a failed call to an error about `what` (404 → not found, 403 → denied).
    fn fail(&self, e: CallError, what: &str) -> RegistryError {
        match e {
            CallError::Other(e) => e,
            CallError::Status { code: 404, .. } => RegistryError::NotFound {
                registry: self.host.clone(),
                what: what.to_string(),
            },
            CallError::Status { code: 403, .. } => RegistryError::Denied {
                registry: self.host.clone(),
                what: what.to_string(),
            },
            CallError::Status { message, .. } => self.http_err(format!("{what}: {message}")),
        }
    }

    fn pull_scope(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull")]
    }

    fn push_scope(repo: &str, mount_from: Option<&str>) -> Vec<String> {
        let mut s = vec![format!("repository:{repo}:pull,push")];
        if let Some(from) = mount_from {
            s.push(format!("repository:{from}:pull"));
        }
        s
    }

    /// `GET /v2/`: checks that the registry answers and accepts the credentials (`login`).
    pub fn ping(&self) -> Result<(), RegistryError> {
        self.call("GET", "/v2/", &[], &[], &[], Body::Empty)
            .map(|_| ())
            .map_err(|e| self.fail(e, "the API root `/v2/`"))
    }

    /// Fetches a manifest or index by tag or digest. One fetched by digest is checked against it.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Fetched, RegistryError> {
        let what = format!("manifest `{repo}:{reference}`");
        let path = format!("/v2/{repo}/manifests/{reference}");
        let resp = self
            .call(
                "GET",
                &path,
                &Self::pull_scope(repo),
                &[("Accept", ACCEPT)],
                &[],
                Body::Empty,
            )
            .map_err(|e| self.fail(e, &what))?;
        let media_type = resp.content_type().to_string();
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(MAX_MANIFEST + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Io {
                what: format!("{what} from `{}`", self.host),
                err: e,
            })?;
        if bytes.len() as u64 > MAX_MANIFEST {
            return Err(self.http_err(format!("{what} is larger than 4 MiB")));
        }
        let digest = Digest::of_bytes(&bytes);
        if let Some(want) = reference.strip_prefix("sha256:") {
            if digest.hex() != want {
                return Err(RegistryError::DigestMismatch {
                    registry: self.host.clone(),
                    digest: Digest::parse(reference).map_err(|e| self.http_err(e.to_string()))?,
                    actual: digest,
                });
            }
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// `HEAD` of a manifest: its digest when the registry has it.
    pub fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        match self.call(
            "HEAD",
            &path,
            &Self::pull_scope(repo),
            &[("Accept", ACCEPT)],
            &[],
            Body::Empty,
        ) {
            Ok(r) => Ok(r
                .header("Docker-Content-Digest")
                .and_then(|d| Digest::parse(d).ok())),
            Err(CallError::Status { code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(e, &format!("manifest `{repo}:{reference}`"))),
        }
    }

    /// Uploads a manifest under a tag or its digest; returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let digest = Digest::of_bytes(bytes);
        let resp = self
            .call(
                "PUT",
                &path,
                &Self::push_scope(repo, None),
                &[("Content-Type", media_type)],
                &[],
                Body::Bytes(bytes),
            )
            .map_err(|e| self.fail(e, &format!("manifest `{repo}:{reference}`")))?;
        if let Some(d) = resp
            .header("Docker-Content-Digest")
            .and_then(|d| Digest::parse(d).ok())
        {
            if d != digest {
                return Err(self.http_err(format!(
                    "manifest `{repo}:{reference}`: the registry stored `{d}`, hoist sent `{digest}`"
                )));
            }
        }
        Ok(digest)
    }

    /// Opens a blob for streaming (not yet verified: see [`super::VerifyingReader`]).
    pub fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Box<dyn Read + Send + Sync>, RegistryError> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self
            .call("GET", &path, &Self::pull_scope(repo), &[], &[], Body::Empty)
            .map_err(|e| self.fail(e, &format!("blob `{digest}` of `{repo}`")))?;
        Ok(resp.into_reader())
    }

    /// `HEAD` of a blob: its size when the repository has it.
    pub fn head_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let path = format!("/v2/{repo}/blobs/{digest}");
        match self.call(
            "HEAD",
            &path,
            &Self::push_scope(repo, None),
            &[],
            &[],
            Body::Empty,
        ) {
            Ok(r) => Ok(Some(
                r.header("Content-Length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            Err(CallError::Status { code: 404, .. }) => Ok(None),
            Err(e) => Err(self.fail(e, &format!("blob `{digest}` of `{repo}`"))),
        }
    }

    /// Puts a blob into `repo`: mounted from `mount_from` (another repository of this
    /// registry) when the registry agrees, else uploaded in one streamed `PUT` of `size` bytes
    /// opened by `open` (again for each retry).
    pub fn put_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        mount_from: Option<&str>,
        open: &mut OpenBody<'_>,
    ) -> Result<Mount, RegistryError> {
        let what = format!("blob `{digest}` to `{repo}`");
        let scopes = Self::push_scope(repo, mount_from);
        let path = format!("/v2/{repo}/blobs/uploads/");
        let d = digest.to_string();
        let query: Vec<(&str, &str)> = match mount_from {
            Some(from) => vec![("mount", d.as_str()), ("from", from)],
            None => vec![],
        };
        let resp = self
            .call(
                "POST",
                &path,
                &scopes,
                &[("Content-Length", "0")],
                &query,
                Body::Empty,
            )
            .map_err(|e| self.fail(e, &what))?;
        if resp.status() == 201 {
            return Ok(Mount::Mounted);
        }
        let location = resp
            .header("Location")
            .ok_or_else(|| self.http_err(format!("{what}: the upload has no `Location`")))?
            .to_string();
        let location = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            format!("{}{location}", self.base()?)
        };
        let len = size.to_string();
        self.call(
            "PUT",
            &location,
            &scopes,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            &[("digest", &d)],
            Body::Stream(open),
        )
        .map_err(|e| self.fail(e, &what))?;
        Ok(Mount::Uploaded)
    }

    /// Follows `Link: <…>; rel="next"` pages of a list call, up to `limit` items.
    fn paged(
        &self,
        first: &str,
        scopes: &[String],
        key: &str,
        limit: usize,
        what: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let mut out = Vec::new();
        let mut next = Some(first.to_string());
        let n = limit.min(1000).to_string();
        while let Some(path) = next.take() {
            let query: Vec<(&str, &str)> = if path.contains('?') {
                vec![]
            } else {
                vec![("n", n.as_str())]
            };
            let resp = self
                .call("GET", &path, scopes, &[], &query, Body::Empty)
                .map_err(|e| self.fail(e, what))?;
            next = resp.header("Link").and_then(|l| {
                let (url, rest) = l.trim().strip_prefix('<')?.split_once('>')?;
                rest.contains("rel=\"next\"").then(|| url.to_string())
            });
            let v: serde_json::Value =
                serde_json::from_reader(resp.into_reader().take(16 << 20))
                    .map_err(|e| self.http_err(format!("{what}: invalid answer: {e}")))?;
            let items = v
                .get(key)
                .and_then(|t| t.as_array())
                .cloned()
                .unwrap_or_default();
            out.extend(items.iter().filter_map(|t| t.as_str().map(str::to_string)));
            if out.len() >= limit {
                out.truncate(limit);
                break;
            }
        }
        Ok(out)
    }

    /// The tags of a repository (at most `limit`).
    pub fn tags(&self, repo: &str, limit: usize) -> Result<Vec<String>, RegistryError> {
        self.paged(
            &format!("/v2/{repo}/tags/list"),
            &Self::pull_scope(repo),
            "tags",
            limit,
            &format!("repository `{repo}`"),
        )
    }

    /// The repositories of the registry (`/v2/_catalog`, at most `limit`).
    pub fn catalog(&self, limit: usize) -> Result<Vec<String>, RegistryError> {
        let scopes = vec!["registry:catalog:*".to_string()];
        match self.paged(
            "/v2/_catalog",
            &scopes,
            "repositories",
            limit,
            "the catalog",
        ) {
            Err(RegistryError::NotFound { .. })
            | Err(RegistryError::Denied { .. })
            | Err(RegistryError::AuthRequired { .. }) => {
                Err(RegistryError::NoCatalog(self.host.clone()))
            }
            other => other,
        }
    }
}

fn retriable_status(code: u16) -> bool {
    code == 429 || (500..600).contains(&code)
}

fn retriable_transport(t: &ureq::Transport) -> bool {
    matches!(
        t.kind(),
        ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Io | ureq::ErrorKind::ProxyConnect
    )
}

/// A transport error as one line, without the URL's query (where a token server's scopes are).
fn transport_message(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Transport(t) => {
            let mut s = t.kind().to_string();
            if let Some(m) = t.message() {
                // ureq's message often repeats the kind
                match m.strip_prefix(s.as_str()) {
                    Some(rest) => s.push_str(rest),
                    None => {
                        s.push_str(": ");
                        s.push_str(m);
                    }
                }
            }
            if let Some(src) = std::error::Error::source(t) {
                s.push_str(": ");
                s.push_str(&src.to_string());
            }
            s
        }
        ureq::Error::Status(code, r) => format!("{code} {}", r.status_text()),
    }
}

/// Keeps the type checker honest that a client is shared across threads.
#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Client>();
    is::<Arc<Client>>();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// One request as the fake registry saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        auth: String,
    }

    type Handler = dyn Fn(&Seen, u16) -> (u16, Vec<(&'static str, String)>, String) + Send + Sync;

    /// A plain-http server answering each request with `handler` (one request per connection);
    /// what does not parse as HTTP (a TLS hello) is dropped.
    fn fake_registry(handler: Arc<Handler>) -> (u16, Arc<Mutex<Vec<Seen>>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let mut r = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if r.read_line(&mut line).is_err() || !line.ends_with("HTTP/1.1\r\n") {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (
                    parts.next().unwrap_or_default().to_string(),
                    parts.next().unwrap_or_default().to_string(),
                );
                let (mut auth, mut len) = (String::new(), 0usize);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                    match k.to_ascii_lowercase().as_str() {
                        "authorization" => auth = v.trim().to_string(),
                        "content-length" => len = v.trim().parse().unwrap_or(0),
                        _ => {}
                    }
                }
                let mut body = vec![0u8; len];
                let _ = r.read_exact(&mut body);
                let req = Seen {
                    method,
                    target,
                    auth,
                };
                log.lock().expect("log").push(req.clone());
                let (code, headers, body) = handler(&req, port);
                let mut out = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(&body);
                let mut c = conn;
                let _ = c.write_all(out.as_bytes());
            }
        });
        (port, seen)
    }

    #[test]
    fn an_upload_location_on_another_host_gets_no_credentials() {
        let other: Arc<Handler> = Arc::new(|_: &Seen, _| (201, vec![], String::new()));
        let (other_port, other_seen) = fake_registry(other);
        let reg: Arc<Handler> = Arc::new(move |req: &Seen, _| {
            if req.auth.is_empty() {
                return (
                    401,
                    vec![("WWW-Authenticate", "Basic realm=\"x\"".to_string())],
                    String::new(),
                );
            }
            match req.method.as_str() {
                "HEAD" => (404, vec![], String::new()),
                "POST" => (
                    202,
                    vec![("Location", format!("http://127.0.0.1:{other_port}/up?id=1"))],
                    String::new(),
                ),
                _ => (200, vec![], "{}".into()),
            }
        });
        let (port, seen) = fake_registry(reg);
        let creds = Credential::parse_creds("u:p").expect("creds");
        let c = Client::new(&format!("127.0.0.1:{port}"), true, None, Some(creds)).expect("client");
        let d = Digest::of_bytes(b"x");
        let how = c
            .put_blob("r", &d, 1, None, &mut || Ok(Box::new(&b"x"[..])))
            .expect("upload");
        assert_eq!(how, Mount::Uploaded);
        let post = seen
            .lock()
            .expect("log")
            .iter()
            .rev()
            .find(|s| s.method == "POST")
            .cloned();
        assert!(post.expect("a POST").auth.starts_with("Basic "));
        let put = other_seen.lock().expect("log")[0].clone();
        assert_eq!(put.method, "PUT");
        assert!(
            put.target.contains("id=1") && put.target.contains("digest=sha256"),
            "{put:?}"
        );
        assert_eq!(put.auth, "", "credentials leaked to another host");
    }

    #[test]
    fn bearer_tokens_per_scope_mount_scope_and_retries() {
        let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = tries.clone();
        let handler: Arc<Handler> = Arc::new(move |req: &Seen, port: u16| {
            let challenge = || {
                vec![(
                    "WWW-Authenticate",
                    format!("Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\""),
                )]
            };
            if req.target.starts_with("/token") {
                let good = Credential::parse_creds("u:p")
                    .expect("creds")
                    .basic_header();
                if Some(req.auth.clone()) != good {
                    return (401, vec![], String::new());
                }
                // the token says which scopes it was made for
                let token = req.target.replace(['"', '\\'], "");
                return (200, vec![], format!("{{\"token\":\"{token}\"}}"));
            }
            if !req.auth.starts_with("Bearer /token") {
                return (401, challenge(), String::new());
            }
            match (req.method.as_str(), req.target.as_str()) {
                ("GET", "/v2/") => (200, vec![], "{}".into()),
                ("POST", t) if t.starts_with("/v2/a/blobs/uploads/") => {
                    (201, vec![], String::new())
                }
                ("GET", "/v2/a/manifests/1") => {
                    if t.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                        (503, vec![], String::new())
                    } else {
                        (
                            200,
                            vec![("Content-Type", OCI_MANIFEST.to_string())],
                            "{\"layers\":[]}".into(),
                        )
                    }
                }
                _ => (404, vec![], String::new()),
            }
        });
        let (port, seen) = fake_registry(handler);
        let host = format!("127.0.0.1:{port}");
        let creds = Credential::parse_creds("u:p").expect("creds");
        let c = Client::new(&host, true, None, Some(creds)).expect("client");
        c.ping().expect("ping with a token");
        let d = Digest::of_bytes(b"x");
        let how = c
            .put_blob("a", &d, 1, Some("b"), &mut || Ok(Box::new(&b"x"[..])))
            .expect("mount");
        assert_eq!(how, Mount::Mounted);
        let f = c.get_manifest("a", "1").expect("manifest after two 503s");
        assert_eq!(f.bytes, b"{\"layers\":[]}");
        let seen = seen.lock().expect("log").clone();
        let mount = seen
            .iter()
            .find(|s| s.method == "POST")
            .expect("the mount request");
        // the mount's token covers push on the target and pull on the source
        assert!(
            mount.auth.contains("repository%3Aa%3Apull%2Cpush"),
            "{mount:?}"
        );
        assert!(mount.auth.contains("repository%3Ab%3Apull"), "{mount:?}");
        assert!(
            mount.target.contains("mount=sha256") && mount.target.contains("from=b"),
            "{mount:?}"
        );
        assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 3);
        // no catalog (404): a message saying so, not a bare status
        let e = c.catalog(10).expect_err("no catalog").to_string();
        assert!(e.contains("does not offer a catalog"), "{e}");

        // wrong credentials: one error naming the registry, no secret in it
        let bad = Client::new(
            &host,
            true,
            None,
            Some(Credential::parse_creds("u:secret-x").expect("creds")),
        )
        .expect("client");
        let e = bad.ping().expect_err("refused").to_string();
        assert!(
            e.contains(&host) && e.contains("invalid username or password"),
            "{e}"
        );
        assert!(!e.contains("secret-x"), "{e}");
    }

    #[test]
    fn classify_manifests() {
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        let img = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(ManifestKind::classify("", idx), Some(ManifestKind::Index));
        assert_eq!(ManifestKind::classify("", img), Some(ManifestKind::Image));
        assert_eq!(
            ManifestKind::classify(&format!("{DOCKER_LIST}; charset=utf-8"), img),
            Some(ManifestKind::Index)
        );
        assert_eq!(
            ManifestKind::classify(
                "application/json",
                br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#
            ),
            Some(ManifestKind::Index)
        );
        assert_eq!(ManifestKind::classify("text/html", b"<html>"), None);
        assert_eq!(ManifestKind::classify("", b"{}"), None);
    }
}
