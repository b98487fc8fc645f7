//! Credentials: where they are read from (a keychain asked in a fixed order), where `login`
//! writes them, and the `WWW-Authenticate` challenges a registry answers with.
//!
//! Reading order (podman's, containers-auth.json(5)): `--creds`; else `--authfile` alone; else
//! `$REGISTRY_AUTH_FILE`, or `$XDG_RUNTIME_DIR/containers/auth.json` and
//! `~/.config/containers/auth.json`; then `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`. Each file is read by the `docker_credential` crate, which also runs
//! `credHelpers` / `credsStore` helpers (`docker-credential-NAME get`).
//!
//! A [`Credential`] never prints its secret (`Debug` shows the user name only), and no error of
//! this module carries one: a failing helper is named, its output is not repeated.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::RegistryError;

/// A credential for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh token (docker's `identitytoken`).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::IdentityToken(_) => write!(f, "IdentityToken(***)"),
        }
    }
}

impl Credential {
    /// Parses `--creds USER:PASS` (a password may contain `:`). A missing password is an error:
    /// hoist does not prompt from inside a build.
    pub fn parse_creds(s: &str) -> Result<Credential, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok(Credential::Basic {
                username: u.to_string(),
                password: p.to_string(),
            }),
            _ => Err("`--creds` takes `USERNAME:PASSWORD`".to_string()),
        }
    }

    /// The `Authorization: Basic …` value (user:password in base64).
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

/// The key a registry has in auth files (`docker.io` for Docker Hub, as podman writes it).
fn auth_key(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The auth files read, in order, when no `--authfile` is given.
fn read_order() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    } else {
        if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
            out.push(PathBuf::from(x).join("containers/auth.json"));
        }
        if let Some(h) = home() {
            out.push(h.join(".config/containers/auth.json"));
        }
    }
    match std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        Some(d) => out.push(PathBuf::from(d).join("config.json")),
        None => {
            if let Some(h) = home() {
                out.push(h.join(".docker/config.json"));
            }
        }
    }
    out
}

/// The credential stored for `host`, if any.
pub fn lookup(host: &str, authfile: Option<&Path>) -> Result<Option<Credential>, RegistryError> {
    let files = match authfile {
        Some(p) => vec![p.to_path_buf()],
        None => read_order(),
    };
    let key = auth_key(host);
    // docker keeps Docker Hub under its v1 URL (also what its credential helpers are asked)
    let keys: &[&str] = if key == "docker.io" {
        &["docker.io", "https://index.docker.io/v1/"]
    } else {
        &[key]
    };
    for f in files {
        for k in keys {
            match read_one(&f, k, host)? {
                Lookup::Found(c) => {
                    log::debug!("credentials for `{host}` from `{}`", f.display());
                    return Ok(Some(c));
                }
                Lookup::Missing => {}
                Lookup::NoFile => break,
            }
        }
    }
    Ok(None)
}

enum Lookup {
    Found(Credential),
    Missing,
    NoFile,
}

/// The credential for `key` in one auth file.
fn read_one(f: &Path, key: &str, host: &str) -> Result<Lookup, RegistryError> {
    let file = match std::fs::File::open(f) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::NoFile),
        Err(e) => {
            return Err(RegistryError::Config {
                path: f.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    use docker_credential::{CredentialRetrievalError as E, DockerCredential as D};
    match docker_credential::get_credential_from_reader(std::io::BufReader::new(file), key) {
        Ok(D::UsernamePassword(username, password)) => {
            Ok(Lookup::Found(Credential::Basic { username, password }))
        }
        Ok(D::IdentityToken(t)) => Ok(Lookup::Found(Credential::IdentityToken(t))),
        Err(E::NoCredentialConfigured) => Ok(Lookup::Missing),
        // a helper that has nothing for this registry fails; docker then goes on anonymously
        Err(E::HelperFailure { helper, .. }) => {
            log::debug!("credential helper `{helper}` has no credentials for `{key}`");
            Ok(Lookup::Missing)
        }
        Err(E::ConfigReadError) => Err(RegistryError::Config {
            path: f.to_path_buf(),
            reason: "not a valid auth file (JSON with `auths`)".into(),
        }),
        // the crate's other errors carry no secret (decoding, helper communication)
        Err(e) => Err(RegistryError::Credentials {
            registry: host.to_string(),
            reason: format!("`{}`: {e}", f.display()),
        }),
    }
}

/// The file `login` writes and `logout` edits: `--authfile`, else `$REGISTRY_AUTH_FILE`, else
/// `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json` (podman).
pub fn login_file(authfile: Option<&Path>) -> Result<PathBuf, RegistryError> {
    if let Some(p) = authfile {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("containers/auth.json"));
    }
    match home() {
        Some(h) => Ok(h.join(".config/containers/auth.json")),
        None => Err(RegistryError::Config {
            path: PathBuf::from("auth.json"),
            reason: "cannot find it: set `--authfile`, `REGISTRY_AUTH_FILE` or `HOME`".into(),
        }),
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, RegistryError> {
    let err = |reason: String| RegistryError::Config {
        path: path.to_path_buf(),
        reason,
    };
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => {
            let v: serde_json::Value =
                serde_json::from_slice(&b).map_err(|e| err(format!("invalid JSON: {e}")))?;
            if !v.is_object() {
                return Err(err("not a JSON object".into()));
            }
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(err(e.to_string())),
    }
}

/// Writes `path` with mode 0600 (atomically: the old file or the whole new one), its directory
/// created 0700 when missing.
fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), RegistryError> {
    let err = |e: std::io::Error| RegistryError::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
    }
    let mut text = serde_json::to_vec_pretty(v).map_err(|e| err(std::io::Error::other(e)))?;
    text.push(b'\n');
    // the temp file is created 0600 and renamed, so the secret is never world-readable
    crate::util::write_atomic(path, &text).map_err(err)
}

/// Stores `username`/`password` for `host` in the login file (other entries are kept).
pub fn store(
    host: &str,
    username: &str,
    password: &str,
    authfile: Option<&Path>,
) -> Result<PathBuf, RegistryError> {
    let path = login_file(authfile)?;
    let mut v = read_json(&path)?;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let obj = v.as_object_mut().expect("read_json gives an object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths.as_object_mut().expect("made an object above").insert(
        auth_key(host).to_string(),
        serde_json::json!({ "auth": auth }),
    );
    write_json(&path, &v)?;
    Ok(path)
}

/// Removes the entry for `host` (`None`: every entry) from the login file. Returns whether
/// something was removed.
pub fn remove(host: Option<&str>, authfile: Option<&Path>) -> Result<bool, RegistryError> {
    let path = login_file(authfile)?;
    if !path.exists() {
        return Ok(false);
    }
    let mut v = read_json(&path)?;
    let Some(auths) = v.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(false);
    };
    let removed = match host {
        Some(h) => auths.remove(auth_key(h)).is_some(),
        None => {
            let had = !auths.is_empty();
            auths.clear();
            had
        }
    };
    if removed {
        write_json(&path, &v)?;
    }
    Ok(removed)
}

/// A `WWW-Authenticate` challenge (RFC 7235) as registries send them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value: `Basic realm="…"` or
/// `Bearer realm="…",service="…",scope="…"` (quoted strings with `\` escapes, or tokens).
/// Returns `None` for schemes hoist does not speak or a bearer challenge without a realm.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], header[i..].trim_start()),
        None => (header, ""),
    };
    let params = parse_params(rest)?;
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let realm = get("realm").filter(|r| !r.is_empty())?;
        Some(Challenge::Bearer {
            realm,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `name=value` pairs separated by commas; values are tokens or quoted strings.
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let table = [
            (
                r#"Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull""#,
                Some(Challenge::Bearer {
                    realm: "https://auth.example/token".into(),
                    service: Some("reg.example".into()),
                    scope: Some("repository:a/b:pull".into()),
                }),
            ),
            (
                r#"bearer  realm = "r\"q" , service=svc"#,
                Some(Challenge::Bearer {
                    realm: "r\"q".into(),
                    service: Some("svc".into()),
                    scope: None,
                }),
            ),
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            ("Basic", Some(Challenge::Basic)),
            (r#"Bearer service="x""#, None),
            (r#"Bearer realm="unterminated"#, None),
            ("Negotiate abc", None),
            ("Bearer =x", None),
        ];
        for (h, want) in table {
            assert_eq!(parse_challenge(h), want, "{h}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credential::parse_creds("me:s3cr:et").expect("valid");
        let shown = format!("{c:?}");
        assert!(shown.contains("me") && !shown.contains("s3cr"), "{shown}");
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok"));
        assert!(Credential::parse_creds("me").is_err());
        assert!(Credential::parse_creds(":x").is_err());
    }

    #[test]
    fn store_lookup_remove_round_trip() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("sub/auth.json");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        std::fs::write(
            &f,
            r#"{"auths":{"other.example":{"auth":"eDp5"}},"keep":1}"#,
        )
        .expect("write");
        store("reg.example:5000", "u", "p:w", Some(&f)).expect("store");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&f).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let got = lookup("reg.example:5000", Some(&f)).expect("lookup");
        assert_eq!(
            got,
            Some(Credential::Basic {
                username: "u".into(),
                password: "p:w".into()
            })
        );
        assert!(remove(Some("reg.example:5000"), Some(&f)).expect("remove"));
        assert!(!remove(Some("reg.example:5000"), Some(&f)).expect("remove again"));
        assert_eq!(lookup("reg.example:5000", Some(&f)).expect("lookup"), None);
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&f).expect("read")).expect("json");
        assert_eq!(v["keep"], 1);
        assert!(v["auths"]["other.example"].is_object());
        assert!(remove(None, Some(&f)).expect("remove all"));
    }
}
