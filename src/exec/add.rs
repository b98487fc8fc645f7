//! What ADD does beyond COPY: fetching `http(s)://` sources (with `--checksum`), and recognising
//! local tar archives (plain, gzip, bzip2, xz, zstd) that ADD unpacks instead of copying.
//! A local archive is sniffed and unpacked from the one descriptor the context opened (beneath
//! its root, no links followed), never reopened by path.
//!
//! Unpacking itself goes through [`crate::layer::apply_tar`], which refuses every path that
//! would leave the target. Follows Docker's ADD reference: a downloaded file gets mode 0600 and
//! the server's `Last-Modified` time; archives are recognised by content, not by name.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use sha2::{Digest as _, Sha256};

/// Why an ADD source could not be fetched or checked.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("`{url}`: {message}")]
    Fetch { url: String, message: String },
    #[error("`{url}`: checksum mismatch: expected `{expected}`, got `{actual}`")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("invalid `--checksum={0}`: expected `sha256:<64 hex digits>`")]
    BadChecksum(String),
}

/// Whether an ADD source is a URL.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Whether an ADD source is a git repository (not supported).
pub fn is_git(s: &str) -> bool {
    s.starts_with("git@")
        || s.starts_with("git://")
        || (is_url(s) && s.split('#').next().unwrap_or(s).ends_with(".git"))
}

/// The file name a URL's content is saved under when the destination is a directory.
pub fn url_file_name(url: &str) -> String {
    let path = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let path = path.split_once('/').map(|(_, p)| p).unwrap_or("");
    match path.rsplit('/').find(|s| !s.is_empty()) {
        Some(n) => n.to_string(),
        None => "__unnamed__".to_string(),
    }
}

/// A downloaded file.
#[derive(Debug)]
pub struct Fetched {
    pub data: Vec<u8>,
    /// `Last-Modified` as a Unix time, when the server sent one.
    pub mtime: Option<i64>,
}

/// Downloads `url`, checking `checksum` (`sha256:HEX`) when given.
pub fn fetch(url: &str, checksum: Option<&str>) -> Result<Fetched, AddError> {
    let expected = match checksum {
        Some(c) => {
            let hex = c
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| AddError::BadChecksum(c.to_string()))?;
            Some(hex.to_ascii_lowercase())
        }
        None => None,
    };
    let fail = |message: String| AddError::Fetch {
        url: url.to_string(),
        message,
    };
    let resp = ureq::get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, _) => fail(format!("server answered HTTP {code}")),
        other => fail(other.to_string()),
    })?;
    let mtime = resp
        .header("Last-Modified")
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
        .map(|t| t.timestamp());
    let mut data = Vec::new();
    resp.into_reader()
        .read_to_end(&mut data)
        .map_err(|e| fail(e.to_string()))?;
    if let Some(hex) = expected {
        let actual = hex::encode(Sha256::digest(&data));
        if actual != hex {
            return Err(AddError::Checksum {
                url: url.to_string(),
                expected: format!("sha256:{hex}"),
                actual: format!("sha256:{actual}"),
            });
        }
    }
    Ok(Fetched { data, mtime })
}

/// Whether an opened file is a tar archive, possibly compressed (read by content). The file is
/// read from its start and left positioned at its start again.
pub fn is_archive(file: &mut File) -> io::Result<bool> {
    file.seek(SeekFrom::Start(0))?;
    let found = sniff(&*file);
    file.seek(SeekFrom::Start(0))?;
    Ok(found)
}

fn sniff(f: &File) -> bool {
    let (mut r, _) = match crate::layer::decompress(f) {
        Ok(x) => x,
        Err(_) => return false,
    };
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    if n < 512 {
        return false;
    }
    // ustar magic, or an old-style header with a valid checksum
    if &head[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = head
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    stored == Some(sum) && head[0] != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_names() {
        assert_eq!(
            url_file_name("https://example.com/a/b/file.tar.gz?x=1"),
            "file.tar.gz"
        );
        assert_eq!(url_file_name("https://example.com/"), "__unnamed__");
        assert_eq!(url_file_name("http://h:8080/dir/"), "dir");
        assert!(is_git("https://github.com/x/y.git"));
        assert!(!is_git("https://example.com/y.tar"));
    }

    #[test]
    fn archives_are_recognised_by_content() {
        let t = tempfile::tempdir().expect("tmp");
        let plain = t.path().join("a.tar");
        {
            let mut b = tar::Builder::new(File::create(&plain).expect("create"));
            let mut h = tar::Header::new_ustar();
            h.set_size(2);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, "x", &b"hi"[..]).expect("append");
            b.finish().expect("finish");
        }
        assert!(is_archive(&mut File::open(&plain).expect("open")).expect("read"));
        let gz = t.path().join("a.tgz");
        {
            let mut e = flate2::write::GzEncoder::new(
                File::create(&gz).expect("create"),
                flate2::Compression::fast(),
            );
            io::copy(&mut File::open(&plain).expect("open"), &mut e).expect("copy");
            e.finish().expect("finish");
        }
        assert!(is_archive(&mut File::open(&gz).expect("open")).expect("read"));
        let txt = t.path().join("t.txt");
        std::fs::write(&txt, "just text").expect("write");
        let mut t = File::open(&txt).expect("open");
        assert!(!is_archive(&mut t).expect("read"));
        let mut back = String::new();
        t.read_to_string(&mut back).expect("read again");
        assert_eq!(back, "just text", "is_archive leaves the file at its start");
    }
}
