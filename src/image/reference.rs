//! Image references (`[domain/]path[:tag][@sha256:…]`): parsing, validation and normalisation as
//! docker and podman do it.
//!
//! The grammar is the one of the distribution project's `reference` package (path components of
//! lowercase letters and digits joined by `.`, `_`, `__` or dashes; a domain is the first
//! component when it holds a `.` or a `:` or is `localhost`; tags `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`;
//! names at most 255 characters). Two normalisations exist:
//!
//! - [`Reference::parse`] (pulling): an unqualified name lives on Docker Hub, `busybox` is
//!   `docker.io/library/busybox:latest`;
//! - [`Reference::parse_local`] (naming an image made here): an unqualified name is podman's
//!   `localhost/NAME:latest`.
//!
//! [`Reference::candidates`] lists what a user's name may mean when looking it up locally.
//! Pure: no file system. A `Reference` is valid by construction and always fully qualified.

use std::fmt;

use super::Digest;

/// The registry an unqualified name is pulled from.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The domain podman gives names made locally.
pub const LOCAL_DOMAIN: &str = "localhost";
/// The tag a name without one gets.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference `{0}`: empty name")]
    Empty(String),
    #[error("invalid reference `{0}`: repository name must be lowercase")]
    Uppercase(String),
    #[error("invalid reference `{0}`: empty tag")]
    EmptyTag(String),
    #[error("invalid reference `{input}`: invalid tag `{tag}` (letters, digits, `_`, `.`, `-`, at most 128, not starting with `.` or `-`)")]
    InvalidTag { input: String, tag: String },
    #[error("invalid reference `{input}`: invalid digest: {reason}")]
    InvalidDigest { input: String, reason: String },
    #[error("invalid reference `{input}`: invalid repository name `{name}`{hint}")]
    InvalidName {
        input: String,
        name: String,
        hint: &'static str,
    },
    #[error("invalid reference `{input}`: invalid registry `{domain}`")]
    InvalidDomain { input: String, domain: String },
    #[error("invalid reference `{0}`: repository name longer than 255 characters")]
    TooLong(String),
    #[error("invalid reference `{0}`: a 64-hex-digit string is an image ID, not a name")]
    LooksLikeId(String),
}

/// A fully qualified image reference: `domain/path[:tag][@digest]`.
///
/// At least one of tag and digest is present (a bare name gets `latest`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// The pieces of a reference as written, before a default domain is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parts {
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference with Docker Hub as the default registry (what `pull` means):
    /// `busybox` → `docker.io/library/busybox:latest`, `index.docker.io/x` → `docker.io/library/x`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        Self::with_domain(parse_parts(s)?, DEFAULT_DOMAIN).checked(s)
    }

    /// Parses a name for an image made here (podman's convention): an unqualified name gets
    /// `localhost/`, so `app` → `localhost/app:latest`; a qualified one stays as it is.
    pub fn parse_local(s: &str) -> Result<Reference, ReferenceError> {
        Self::with_domain(parse_parts(s)?, LOCAL_DOMAIN).checked(s)
    }

    /// The length limit applies to the full name too (`localhost/` or `docker.io/library/`
    /// added): a name that fits only as written would be printed, stored, and not read back.
    fn checked(self, input: &str) -> Result<Reference, ReferenceError> {
        if self.repository().len() > MAX_NAME_LEN {
            return Err(ReferenceError::TooLong(input.to_owned()));
        }
        Ok(self)
    }

    /// What a name may mean when looking it up in the local store, most likely first: a
    /// qualified name means only itself; an unqualified one means `localhost/NAME` first, then
    /// the Docker Hub name.
    pub fn candidates(s: &str) -> Result<Vec<Reference>, ReferenceError> {
        let parts = parse_parts(s)?;
        if parts.domain.is_some() {
            return Ok(vec![Self::with_domain(parts, DEFAULT_DOMAIN).checked(s)?]);
        }
        Ok(vec![
            Self::with_domain(parts.clone(), LOCAL_DOMAIN).checked(s)?,
            Self::with_domain(parts, DEFAULT_DOMAIN).checked(s)?,
        ])
    }

    /// Whether `s` names its registry (`quay.io/x`, `localhost/x`), rather than being a short
    /// name (`busybox`, `team/app`) whose registry is a matter of configuration.
    pub fn is_qualified(s: &str) -> Result<bool, ReferenceError> {
        Ok(parse_parts(s)?.domain.is_some())
    }

    /// Parses a short name as living on `domain` (`busybox` on `docker.io` is
    /// `docker.io/library/busybox:latest`); a qualified name keeps its own registry.
    pub fn parse_on(s: &str, domain: &str) -> Result<Reference, ReferenceError> {
        if Self::is_qualified(s)? {
            return Self::parse(s);
        }
        // through the parser again, so that `domain` is checked as a registry name too
        Self::parse(&format!("{domain}/{s}"))
    }

    fn with_domain(parts: Parts, default: &str) -> Reference {
        let mut domain = parts.domain.unwrap_or_else(|| default.to_owned());
        if domain == LEGACY_DEFAULT_DOMAIN {
            domain = DEFAULT_DOMAIN.to_owned();
        }
        let path = if domain == DEFAULT_DOMAIN && !parts.path.contains('/') {
            format!("{OFFICIAL_REPO_PREFIX}{}", parts.path)
        } else {
            parts.path
        };
        let tag = match (&parts.tag, &parts.digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            _ => parts.tag,
        };
        Reference {
            domain,
            path,
            tag,
            digest: parts.digest,
        }
    }

    /// The registry part: `docker.io`, `localhost`, `quay.io:443`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The path inside the registry: `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `domain/path`, what `hoist images` shows as REPOSITORY.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if any (`latest` when the name had neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                input: format!("{}:{tag}", self.repository()),
                tag: tag.to_owned(),
            });
        }
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// The same reference without its digest (`latest` if that leaves no tag).
    pub fn without_digest(&self) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(self.tag.clone().unwrap_or_else(|| DEFAULT_TAG.to_owned())),
            digest: None,
        }
    }

    /// The short form docker prints: `busybox:latest` for `docker.io/library/busybox:latest`.
    pub fn familiar(&self) -> String {
        let mut s = if self.domain == DEFAULT_DOMAIN {
            // only an official image (`library/NAME`, one component) loses its prefix, as in
            // docker's FamiliarName: `library/a/b` shortened to `a/b` would name another repo
            let short = match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest,
                _ => self.path.as_str(),
            };
            // a first component that reads as a registry (`er.io/x`) keeps `docker.io/`
            match short.split_once('/') {
                Some((first, _))
                    if first.contains('.') || first.contains(':') || first == LOCAL_DOMAIN =>
                {
                    self.repository()
                }
                _ => short.to_owned(),
            }
        } else {
            self.repository()
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    /// Same as [`Reference::parse_local`]: store names are parsed the way they were written.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse_local(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    /// Reads the full form written by [`serde::Serialize`] (any form [`Reference::parse_local`]
    /// takes).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Reference::parse_local(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is 64 lowercase hex digits (an image ID without `sha256:`).
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

/// Whether `s` is non-empty lowercase hex (a possible short image ID).
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn parse_parts(input: &str) -> Result<Parts, ReferenceError> {
    if input.is_empty() {
        return Err(ReferenceError::Empty(input.to_owned()));
    }
    if is_full_id(input) {
        return Err(ReferenceError::LooksLikeId(input.to_owned()));
    }
    let (rest, digest) = match input.split_once('@') {
        Some((rest, d)) => {
            let digest = Digest::parse(d).map_err(|e| ReferenceError::InvalidDigest {
                input: input.to_owned(),
                reason: e.to_string(),
            })?;
            (rest, Some(digest))
        }
        None => (input, None),
    };
    // a tag follows the last `:` that comes after the last `/` (`host:5000/x` has no tag)
    let last_slash = rest.rfind('/');
    let (name, tag) = match rest.rfind(':') {
        Some(c) if last_slash.is_none_or(|s| c > s) => {
            let tag = &rest[c + 1..];
            if tag.is_empty() {
                return Err(ReferenceError::EmptyTag(input.to_owned()));
            }
            if !valid_tag(tag) {
                return Err(ReferenceError::InvalidTag {
                    input: input.to_owned(),
                    tag: tag.to_owned(),
                });
            }
            (&rest[..c], Some(tag.to_owned()))
        }
        _ => (rest, None),
    };
    if name.is_empty() {
        return Err(ReferenceError::Empty(input.to_owned()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ReferenceError::TooLong(input.to_owned()));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == LOCAL_DOMAIN =>
        {
            if !valid_domain(first) {
                return Err(ReferenceError::InvalidDomain {
                    input: input.to_owned(),
                    domain: first.to_owned(),
                });
            }
            (Some(first.to_owned()), rest)
        }
        _ => (None, name),
    };
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase(input.to_owned()));
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            let hint = if component.contains(':') {
                " (more than one `:`: a reference has at most one tag)"
            } else if component.is_empty() {
                " (empty path component)"
            } else {
                " (lowercase letters and digits, joined by `.`, `_`, `__` or `-`)"
            };
            return Err(ReferenceError::InvalidName {
                input: input.to_owned(),
                name: name.to_owned(),
                hint,
            });
        }
    }
    Ok(Parts {
        domain,
        path: path.to_owned(),
        tag,
        digest,
    })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < b.len() {
        if alnum(b[i]) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return false;
        }
        // a separator: `.`, `_`, `__` or one or more `-`
        let sep_len = match b[i] {
            b'.' => 1,
            b'_' if b.get(i + 1) == Some(&b'_') => 2,
            b'_' => 1,
            b'-' => b[i..].iter().take_while(|&&x| x == b'-').count(),
            _ => return false,
        };
        i += sep_len;
        expect_alnum = true;
    }
    !expect_alnum
}

/// A host name (`[A-Za-z0-9]` components joined by `.`, inner `-` allowed) or `[IPv6]`, with an
/// optional numeric port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => return !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                None => return false,
            },
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn pull_normalisation() {
        let table = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("quay.io/a/b/c:v1", "quay.io/a/b/c:v1"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:x", "localhost:5000/app:x"),
            ("reg.example:443/ns/app", "reg.example:443/ns/app:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("a__b/c-d--e/f.g_h", "docker.io/a__b/c-d--e/f.g_h:latest"),
            ("busybox:_x.Y-1", "docker.io/library/busybox:_x.Y-1"),
            (
                &format!("busybox@{D}"),
                &format!("docker.io/library/busybox@{D}"),
            ),
            (
                &format!("busybox:1@{D}"),
                &format!("docker.io/library/busybox:1@{D}"),
            ),
        ];
        for (input, want) in table {
            let got = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
        }
    }

    #[test]
    fn local_normalisation() {
        let table = [
            ("app", "localhost/app:latest"),
            ("app:v2", "localhost/app:v2"),
            ("team/app", "localhost/team/app:latest"),
            (
                "docker.io/library/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("docker.io/busybox:1", "docker.io/library/busybox:1"),
            ("quay.io/x/y:z", "quay.io/x/y:z"),
        ];
        for (input, want) in table {
            let got = Reference::parse_local(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), want, "{input}");
        }
    }

    #[test]
    fn candidates_try_localhost_first() {
        let table: [(&str, &[&str]); 4] = [
            (
                "busybox",
                &[
                    "localhost/busybox:latest",
                    "docker.io/library/busybox:latest",
                ],
            ),
            ("a/b:1", &["localhost/a/b:1", "docker.io/a/b:1"]),
            ("localhost/x", &["localhost/x:latest"]),
            ("quay.io/x:2", &["quay.io/x:2"]),
        ];
        for (input, want) in table {
            let got: Vec<String> = Reference::candidates(input)
                .expect("valid")
                .iter()
                .map(|r| r.to_string())
                .collect();
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn refuses_invalid_references_with_the_reason() {
        let long = "a".repeat(256);
        let long_tag = format!("a:{}", "t".repeat(129));
        let table: [(&str, &str); 18] = [
            ("", "empty name"),
            ("UPPER/case", "must be lowercase"),
            ("Busybox", "must be lowercase"),
            ("quay.io/Foo", "must be lowercase"),
            ("a:b:c", "more than one `:`"),
            ("busybox:", "empty tag"),
            ("busybox:.x", "invalid tag `.x`"),
            ("busybox:a/b", "invalid registry `busybox:a`"),
            ("a//b", "empty path component"),
            ("-a", "invalid repository name"),
            ("a-", "invalid repository name"),
            ("a..b", "invalid repository name"),
            ("a___b", "invalid repository name"),
            ("busybox@sha256:abc", "invalid digest"),
            ("quay.io:x/a", "invalid registry"),
            (&long, "longer than 255"),
            (&long_tag, "invalid tag"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "image ID",
            ),
        ];
        for (input, want) in table {
            match Reference::parse(input) {
                Ok(r) => panic!("{input}: accepted as {r}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(want), "{input}: `{msg}` lacks `{want}`");
                }
            }
        }
    }

    #[test]
    fn short_names_on_a_registry() {
        assert!(!Reference::is_qualified("team/app").expect("valid"));
        assert!(Reference::is_qualified("quay.io/app").expect("valid"));
        let table = [
            ("busybox", "docker.io", "docker.io/library/busybox:latest"),
            (
                "team/app:1",
                "reg.example:5000",
                "reg.example:5000/team/app:1",
            ),
            ("quay.io/x", "reg.example", "quay.io/x:latest"),
        ];
        for (name, domain, want) in table {
            let got = Reference::parse_on(name, domain).expect("valid");
            assert_eq!(got.to_string(), want, "{name} on {domain}");
        }
        assert!(Reference::parse_on("x", "bad domain").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let r = Reference::parse("quay.io/a/b:1").expect("valid");
        let json = serde_json::to_string(&r).expect("serialize");
        assert_eq!(json, "\"quay.io/a/b:1\"");
        assert_eq!(
            serde_json::from_str::<Reference>(&json).expect("deserialize"),
            r
        );
        assert!(serde_json::from_str::<Reference>("\"UPPER/case\"").is_err());
    }

    #[test]
    fn parts_and_familiar_form() {
        let r = Reference::parse("busybox:1.36").expect("valid");
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(r.repository(), "docker.io/library/busybox");
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.familiar(), "busybox:1.36");
        let l = Reference::parse_local("app").expect("valid");
        assert_eq!(l.familiar(), "localhost/app:latest");
        assert_eq!(
            l.with_tag("v2").expect("tag").to_string(),
            "localhost/app:v2"
        );
        assert!(l.with_tag("bad tag").is_err());
        let d = Reference::parse(&format!("x@{D}")).expect("valid");
        assert_eq!(d.tag(), None);
        assert_eq!(d.without_digest().to_string(), "docker.io/library/x:latest");
    }

    /// Found by the `reference` fuzz target: `library/a/b` was shortened to `a/b`, which parses
    /// as `docker.io/a/b`, and `docker.io/er.io/x` to `er.io/x`, which names the registry
    /// `er.io`: other repositories.
    #[test]
    fn the_familiar_form_keeps_library_when_more_components_follow() {
        for (input, familiar) in [
            ("library/a/b", "library/a/b:latest"),
            ("docker.io/library/a/b:1", "library/a/b:1"),
            ("docker.io/library/busybox", "busybox:latest"),
            ("library/busybox", "busybox:latest"),
            // (second find) a first component that reads as a registry
            ("docker.io/er.io/busybox", "docker.io/er.io/busybox:latest"),
            ("docker.io/localhost/x", "docker.io/localhost/x:latest"),
        ] {
            let r = Reference::parse(input).expect("valid");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(
                Reference::parse(&r.familiar()).expect("parses"),
                r,
                "{input}"
            );
        }
    }

    /// Third find: a name of 250 characters fits as written but not once `docker.io/library/`
    /// is added, so its printed (stored) form did not parse back.
    #[test]
    fn the_length_limit_applies_to_the_full_name() {
        let long = "a".repeat(250);
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::TooLong(_))
        ));
        assert!(matches!(
            Reference::parse_local(&long),
            Err(ReferenceError::TooLong(_))
        ));
        assert!(Reference::candidates(&long).is_err());
        let fits = "a".repeat(255 - "docker.io/library/".len());
        let r = Reference::parse(&fits).expect("fits");
        assert_eq!(Reference::parse_local(&r.to_string()).expect("parses"), r);
    }
}
