//! Platforms (`os/architecture[/variant]`) as the OCI image index names them, and the choice of
//! one manifest from an index for this machine or for what `--platform` asks.
//!
//! Pure: no file system. Architecture names are Go's (`amd64`, `arm64`), as in OCI configs.

use std::fmt;

/// An `os/architecture[/variant]` triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform in OCI terms (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]` or a bare `arch` (the host's OS then).
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        let bad = || format!("invalid platform `{text}` (expected `os/arch[/variant]`)");
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => (std::env::consts::OS, *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(bad()),
        };
        Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        })
    }

    /// How well an index entry's platform fits this wanted one: `None` when it does not fit,
    /// higher is better. OS and architecture must be equal; a wanted variant must be equal (with
    /// `arm64` treating a missing variant as `v8`); without a wanted variant any fits, the
    /// host's default variant best.
    pub fn score(&self, os: &str, arch: &str, variant: Option<&str>) -> Option<u8> {
        if os != self.os || arch != self.architecture {
            return None;
        }
        let norm = |v: Option<&str>| -> Option<String> {
            match (arch, v) {
                ("arm64", None) => Some("v8".into()),
                (_, v) => v.map(str::to_string),
            }
        };
        let (want, have) = (norm(self.variant.as_deref()), norm(variant));
        match (&want, &have) {
            (Some(w), Some(h)) if w == h => Some(2),
            (Some(_), _) => None,
            (None, None) => Some(2),
            (None, Some(_)) => Some(1),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_score() {
        let p = Platform::parse("linux/arm64").expect("valid");
        assert_eq!(p.score("linux", "arm64", Some("v8")), Some(2));
        assert_eq!(p.score("linux", "arm64", None), Some(2));
        assert_eq!(p.score("linux", "amd64", None), None);
        let v7 = Platform::parse("linux/arm/v7").expect("valid");
        assert_eq!(v7.score("linux", "arm", Some("v6")), None);
        assert_eq!(v7.score("linux", "arm", Some("v7")), Some(2));
        let any_arm = Platform::parse("linux/arm").expect("valid");
        assert_eq!(any_arm.score("linux", "arm", Some("v6")), Some(1));
        assert_eq!(any_arm.to_string(), "linux/arm");
        assert!(Platform::parse("linux//x").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
        assert_eq!(
            Platform::parse("amd64").expect("valid").os,
            std::env::consts::OS
        );
    }
}
