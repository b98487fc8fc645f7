//! `sha256:<64 hex>` digests, and readers/writers that compute one while data flows through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A sha256 content digest, `sha256:` followed by 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest `{0}`: expected `sha256:` and 64 lowercase hex digits")]
    Invalid(String),
    #[error("unsupported digest algorithm in `{0}`: only sha256 is supported")]
    Algorithm(String),
}

impl Digest {
    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(DigestError::Invalid(s.to_owned()));
        };
        if algo != "sha256" {
            if algo.is_empty() || hex.is_empty() {
                return Err(DigestError::Invalid(s.to_owned()));
            }
            return Err(DigestError::Algorithm(s.to_owned()));
        }
        Self::from_hex(hex).ok_or_else(|| DigestError::Invalid(s.to_owned()))
    }

    /// Takes 64 lowercase hex digits (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Option<Digest> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Digest {
            hex: hex.to_owned(),
        })
    }

    /// The digest of some bytes.
    pub fn of_bytes(data: &[u8]) -> Digest {
        Self::from_hasher(Sha256::new_with_prefix(data))
    }

    fn from_hasher(h: Sha256) -> Digest {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as image IDs are shown.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }

    /// Converts to oci-spec's digest type.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        oci_spec::image::Digest::from_str(&self.to_string())
            .expect("a sha256 digest is always a valid oci digest")
    }

    /// Converts from oci-spec's digest type; only sha256 is accepted.
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Digest, DigestError> {
        Self::parse(d.as_ref())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Wraps a writer and hashes (and counts) every byte written through it.
///
/// A long stream (a big layer's tar, a pulled blob) is hashed on a helper thread once it
/// passes [`HELPER_AFTER`] bytes: sha256 then runs beside the reading and the writing instead
/// of after them (a 100 MiB layer's sha256 takes 68 ms on one core, about as long as reading
/// its files and writing its blob). The bytes go over in pieces of [`PIECE`]; a short stream,
/// most of them, never starts the thread.
pub struct DigestingWriter<W> {
    inner: W,
    hasher: Hashing,
    count: u64,
}

/// Bytes hashed in line before the helper thread takes over.
const HELPER_AFTER: u64 = 8 << 20;
/// The size of the pieces handed to the helper.
const PIECE: usize = 1 << 20;
/// Pieces on their way to the helper before the writer waits for it.
const QUEUED: usize = 4;

enum Hashing {
    Inline(Sha256),
    Helper {
        /// Bytes not yet handed over (less than a piece).
        pending: Vec<u8>,
        to: std::sync::mpsc::SyncSender<Vec<u8>>,
        /// Pieces the helper is done with, for reuse.
        back: std::sync::mpsc::Receiver<Vec<u8>>,
        done: std::thread::JoinHandle<Sha256>,
    },
}

impl Hashing {
    fn update(&mut self, buf: &[u8], total: u64) {
        if let Hashing::Inline(h) = self {
            if total <= HELPER_AFTER {
                h.update(buf);
                return;
            }
            let h = std::mem::take(h);
            match Hashing::helper(h) {
                Ok(helper) => *self = helper,
                Err(mut h) => {
                    // no thread to be had: hash in line to the end
                    h.update(buf);
                    *self = Hashing::Inline(h);
                    return;
                }
            }
        }
        if let Hashing::Helper {
            pending, to, back, ..
        } = self
        {
            let mut rest = buf;
            while !rest.is_empty() {
                let take = (PIECE - pending.len()).min(rest.len());
                pending.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if pending.len() == PIECE {
                    let next = back
                        .try_recv()
                        .map(|mut v| {
                            v.clear();
                            v
                        })
                        .unwrap_or_else(|_| Vec::with_capacity(PIECE));
                    let full = std::mem::replace(pending, next);
                    // the helper only ends when this side hangs up
                    let _ = to.send(full);
                }
            }
        }
    }

    /// Moves `h` to a helper thread; gives it back if no thread can be started.
    fn helper(h: Sha256) -> Result<Hashing, Sha256> {
        let (to, from) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUED);
        let (give_back, back) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut theirs = h.clone();
        let spawned = std::thread::Builder::new()
            .name("hoist-sha256".into())
            .spawn(move || {
                for piece in from {
                    theirs.update(&piece);
                    let _ = give_back.send(piece);
                }
                theirs
            });
        match spawned {
            Ok(done) => Ok(Hashing::Helper {
                pending: Vec::with_capacity(PIECE),
                to,
                back,
                done,
            }),
            Err(_) => Err(h),
        }
    }

    fn finish(self) -> Sha256 {
        match self {
            Hashing::Inline(h) => h,
            Hashing::Helper {
                pending, to, done, ..
            } => {
                if !pending.is_empty() {
                    let _ = to.send(pending);
                }
                drop(to);
                done.join().expect("the sha256 helper does not panic")
            }
        }
    }
}

impl<W: Write> DigestingWriter<W> {
    pub fn new(inner: W) -> Self {
        DigestingWriter {
            inner,
            hasher: Hashing::Inline(Sha256::new()),
            count: 0,
        }
    }

    /// Bytes written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_hasher(self.hasher.finish()),
            self.count,
        )
    }
}

impl<W: Write> Write for DigestingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        self.hasher.update(&buf[..n], self.count);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Wraps a reader and hashes (and counts) every byte read through it.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> DigestingReader<R> {
    pub fn new(inner: R) -> Self {
        DigestingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns the digest and byte count of what was read.
    pub fn finish(self) -> (Digest, u64) {
        (Digest::from_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d = Digest::of_bytes(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).expect("valid"), d);
        assert_eq!(d.short(), "e3b0c44298fc");
    }

    #[test]
    fn refuses_bad_digests() {
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            "e3b0",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Digest::parse("sha512:abcd"),
            Err(DigestError::Algorithm(_))
        ));
    }

    #[test]
    fn a_long_stream_hashed_by_the_helper_gives_the_same_digest() {
        // pieces of odd sizes across the hand-over point and the piece boundaries
        let data: Vec<u8> = (0..(HELPER_AFTER as usize + 3 * PIECE + 12_345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let mut w = DigestingWriter::new(Vec::new());
        let mut at = 0;
        for size in [1usize, 511, 4096, 1 << 20, 3 << 20, 777].iter().cycle() {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            w.write_all(&data[at..end]).expect("write");
            at = end;
        }
        assert!(matches!(w.hasher, Hashing::Helper { .. }));
        let (buf, d, n) = w.finish();
        assert_eq!(buf, data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of_bytes(&data));
    }

    #[test]
    fn writer_hashes_what_flows_through() {
        let mut w = DigestingWriter::new(Vec::new());
        w.write_all(b"hello").expect("write");
        let (buf, d, n) = w.finish();
        assert_eq!(buf, b"hello");
        assert_eq!(n, 5);
        assert_eq!(d, Digest::of_bytes(b"hello"));
    }
}
