//! `registries.conf` as containers-registries.conf(5) defines it (version 2): `[[registry]]`
//! tables with `prefix`, `location`, `insecure`, `blocked`, `mirror-by-digest-only` and
//! `[[registry.mirror]]` (`location`, `insecure`), and the top-level
//! `unqualified-search-registries`.
//!
//! The file read is `$CONTAINERS_REGISTRIES_CONF` when set, else
//! `~/.config/containers/registries.conf` when it exists, else
//! `/etc/containers/registries.conf` (podman's order: the user's file replaces the system one).
//! Drop-in directories and `[aliases]` are not read; version 1 tables (`[registries.search]`)
//! are refused with a clear message rather than silently ignored.
//!
//! Matching follows the man page: the entry whose `prefix` (default: its `location`) is the
//! longest match of `host/path` wins, a prefix matching at a `/` boundary or exactly; a prefix
//! `*.example.com` matches any subdomain's host. A matched reference is rewritten by replacing
//! the prefix with the entry's `location`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::RegistryError;
use crate::image::Reference;

/// The parsed configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Conf {
    #[serde(default)]
    unqualified_search_registries: Vec<String>,
    #[serde(default)]
    registry: Vec<Entry>,
    /// Version 1 tables, only to refuse them clearly.
    #[serde(default)]
    registries: Option<toml::Value>,
    /// Where the configuration came from (for messages).
    #[serde(skip)]
    path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Entry {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<Mirror>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Mirror {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// One place to talk to: a registry host, the repository path there, and whether plain http
/// and unverified certificates are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub path: String,
    pub insecure: bool,
}

impl Conf {
    /// Reads the configuration file podman would read; none at all is an empty configuration.
    pub fn load() -> Result<Conf, RegistryError> {
        let path = if let Some(p) = std::env::var_os("CONTAINERS_REGISTRIES_CONF") {
            Some(PathBuf::from(p))
        } else {
            let user = std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".config/containers/registries.conf"))
                .filter(|p| p.is_file());
            user.or_else(|| {
                Some(PathBuf::from("/etc/containers/registries.conf")).filter(|p| p.is_file())
            })
        };
        match path {
            Some(p) => Conf::read(&p),
            None => Ok(Conf::default()),
        }
    }

    /// Reads one file.
    pub fn read(path: &Path) -> Result<Conf, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|e| RegistryError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut conf = Conf::parse(&text).map_err(|reason| RegistryError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        conf.path = Some(path.to_path_buf());
        Ok(conf)
    }

    /// Parses the text of a configuration.
    pub fn parse(text: &str) -> Result<Conf, String> {
        let conf: Conf = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if conf.registries.is_some() {
            return Err("version 1 tables (`[registries.search]`, `[registries.insecure]`, `[registries.block]`) are not supported: use `unqualified-search-registries` and `[[registry]]`".into());
        }
        for e in &conf.registry {
            if e.prefix.is_empty() && e.location.is_empty() {
                return Err("a `[[registry]]` needs a `location` or a `prefix`".into());
            }
            if e.prefix.starts_with("*.") && !e.location.is_empty() {
                return Err(format!(
                    "registry prefix `{}`: a wildcard prefix takes no `location`",
                    e.prefix
                ));
            }
            if e.mirror.iter().any(|m| m.location.is_empty()) {
                return Err("a `[[registry.mirror]]` needs a `location`".into());
            }
        }
        Ok(conf)
    }

    /// `unqualified-search-registries`.
    pub fn search_registries(&self) -> &[String] {
        &self.unqualified_search_registries
    }

    fn prefix(e: &Entry) -> &str {
        if e.prefix.is_empty() {
            &e.location
        } else {
            &e.prefix
        }
    }

    /// The entry for `repo` (`host/path`) and how long its prefix match is.
    fn entry_for(&self, repo: &str) -> Option<&Entry> {
        let host = repo.split('/').next().unwrap_or(repo);
        self.registry
            .iter()
            .filter_map(|e| {
                let p = Self::prefix(e);
                let hit = if let Some(suffix) = p.strip_prefix('*') {
                    host.ends_with(suffix)
                } else {
                    repo == p
                        || (repo.starts_with(p) && repo.as_bytes().get(p.len()) == Some(&b'/'))
                };
                hit.then_some((p.len(), e))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, e)| e)
    }

    /// Whether `host` is marked insecure (for `login` and `search`, which name only a host).
    pub fn host_insecure(&self, host: &str) -> bool {
        self.entry_for(host).is_some_and(|e| e.insecure)
    }

    /// Whether `host` is blocked.
    pub fn host_blocked(&self, host: &str) -> bool {
        self.entry_for(host).is_some_and(|e| e.blocked)
    }

    /// Where `reference` is pulled from (`mirrors`: its mirrors first) or pushed to.
    pub fn endpoints(
        &self,
        reference: &Reference,
        mirrors: bool,
    ) -> Result<Vec<Endpoint>, RegistryError> {
        let repo = reference.repository();
        let Some(e) = self.entry_for(&repo) else {
            return Ok(vec![Endpoint {
                host: reference.domain().to_string(),
                path: reference.path().to_string(),
                insecure: false,
            }]);
        };
        if e.blocked {
            return Err(RegistryError::Blocked(reference.domain().to_string()));
        }
        let prefix = Self::prefix(e);
        let rest = if prefix.starts_with("*.") {
            repo.as_str()
        } else {
            &repo[prefix.len()..]
        };
        let rewrite = |location: &str, insecure: bool| -> Endpoint {
            let full = if prefix.starts_with("*.") {
                rest.to_string()
            } else {
                format!("{location}{rest}")
            };
            let (host, path) = full.split_once('/').unwrap_or((&full, ""));
            Endpoint {
                host: host.to_string(),
                path: path.to_string(),
                insecure,
            }
        };
        let mut out = Vec::new();
        if mirrors && (!e.mirror_by_digest_only || reference.digest().is_some()) {
            for m in &e.mirror {
                out.push(rewrite(&m.location, m.insecure));
            }
        }
        let location = if e.location.is_empty() {
            prefix
        } else {
            &e.location
        };
        out.push(rewrite(location, e.insecure));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["reg.example", "docker.io"]

[[registry]]
location = "reg.example"
insecure = true

[[registry]]
prefix = "docker.io/library"
location = "cache.example:5000/hub"
[[registry.mirror]]
location = "mirror.example/lib"
insecure = true

[[registry]]
location = "bad.example"
blocked = true

[[registry]]
prefix = "*.corp.example"
insecure = true
"#;

    fn eps(conf: &Conf, r: &str) -> Vec<(String, String, bool)> {
        conf.endpoints(&Reference::parse(r).expect("valid"), true)
            .expect("not blocked")
            .into_iter()
            .map(|e| (e.host, e.path, e.insecure))
            .collect()
    }

    #[test]
    fn matching_rewriting_and_mirrors() {
        let c = Conf::parse(CONF).expect("parses");
        assert_eq!(c.search_registries(), ["reg.example", "docker.io"]);
        assert_eq!(
            eps(&c, "reg.example/a/b:1"),
            [("reg.example".into(), "a/b".into(), true)]
        );
        assert_eq!(
            eps(&c, "busybox"),
            [
                ("mirror.example".into(), "lib/busybox".into(), true),
                ("cache.example:5000".into(), "hub/busybox".into(), false),
            ]
        );
        // docker.io/user/x does not match the docker.io/library prefix
        assert_eq!(
            eps(&c, "user/x"),
            [("docker.io".into(), "user/x".into(), false)]
        );
        // a prefix matches at a `/` boundary only
        assert_eq!(
            eps(&c, "reg.examplex/a"),
            [("reg.examplex".into(), "a".into(), false)]
        );
        assert_eq!(
            eps(&c, "a.corp.example/x"),
            [("a.corp.example".into(), "x".into(), true)]
        );
        let blocked = c.endpoints(&Reference::parse("bad.example/x").expect("valid"), true);
        assert!(matches!(blocked, Err(RegistryError::Blocked(h)) if h == "bad.example"));
        assert!(c.host_insecure("reg.example"));
        assert!(c.host_blocked("bad.example"));
        assert!(!c.host_insecure("other.example"));
    }

    #[test]
    fn refuses_what_it_does_not_understand() {
        let v1 = "[registries.search]\nregistries = ['docker.io']\n";
        assert!(Conf::parse(v1).expect_err("v1").contains("version 1"));
        assert!(Conf::parse("[[registry]]\ninsecure = true\n").is_err());
        assert!(Conf::parse("[[registry]]\nprefix = '*.x.example'\nlocation = 'y'\n").is_err());
        assert!(Conf::parse("unqualified-search-registries = 3").is_err());
    }
}
