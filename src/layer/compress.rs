//! Compression of layer tars with digests computed while the bytes flow, and decompression of
//! whatever a layer blob or rootfs tarball happens to be.
//!
//! [`LayerWriter`] is the one place a layer blob is produced: the uncompressed tar goes in, the
//! compressed blob comes out, and on [`LayerWriter::finish`] both the blob's digest and size and
//! the diff_id (sha256 of the uncompressed tar, OCI `rootfs.diff_ids`) are known — one pass, no
//! re-read. Gzip output is deterministic: no mtime, no file name, OS byte 255 ("unknown", as Go's
//! `compress/gzip` writes), fixed level. This module never touches the file system itself.

use std::io::{self, BufRead, BufReader, Cursor, Read, Write};

use flate2::write::GzEncoder;
use flate2::GzBuilder;
use oci_spec::image::MediaType;

use super::LayerError;
use crate::image::{Digest, DigestingWriter};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip (`…tar+gzip`), the default everywhere.
    Gzip,
    /// zstd (`…tar+zstd`).
    Zstd,
    /// bzip2; only read, never written.
    Bzip2,
    /// xz; only read, never written.
    Xz,
}

impl Compression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
            Compression::Bzip2 => MediaType::Other("application/x-bzip2".into()),
            Compression::Xz => MediaType::Other("application/x-xz".into()),
        }
    }
}

/// A finished layer blob: what a manifest and a config need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Size of the blob as stored, in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// Size of the uncompressed tar, in bytes.
    pub uncompressed_size: u64,
    /// The manifest media type for this blob.
    pub media_type: MediaType,
}

/// gzip level used for every layer hoist writes unless told otherwise; fixed so that output is
/// reproducible.
const GZIP_LEVEL: u32 = 6;
/// zstd level used for every layer hoist writes unless told otherwise.
const ZSTD_LEVEL: i32 = 3;
/// The gzip header OS byte: 255, "unknown", as Go's `compress/gzip` (docker, buildah) writes it.
const GZIP_OS_UNKNOWN: u8 = 255;

impl Compression {
    /// The name `--compression` takes (`none`, `gzip`, `zstd`, `bzip2`, `xz`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
        }
    }

    /// The levels `level` may take for this compression (`None` when it takes none).
    pub fn level_range(self) -> Option<(i32, i32)> {
        match self {
            Compression::Gzip => Some((0, 9)),
            Compression::Zstd => Some((1, 19)),
            _ => None,
        }
    }
}

/// zstd worker threads: every core. The output does not depend on the number (zstd splits the
/// input into jobs of a size fixed by the level, never by the worker count; see
/// `ZSTD_c_nbWorkers` in zstd.h and the test below), so one machine or another, the blob is the
/// same.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
        .clamp(1, 64)
}

/// The compressing side of a [`LayerWriter`]. A plain tar is hashed once: its blob digest is its
/// diff_id.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(GzEncoder<DigestingWriter<W>>),
    Zstd(zstd::stream::write::Encoder<'static, DigestingWriter<W>>),
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// A writer taking an uncompressed tar stream and writing the compressed blob to `W`, hashing
/// both sides as it goes (one side only for a plain tar, whose blob is the tar itself).
pub struct LayerWriter<W: Write> {
    inner: DigestingWriter<Encoder<W>>,
    compression: Compression,
}

impl<W: Write> LayerWriter<W> {
    /// Starts a blob compressed with `compression` (`None`, `Gzip` or `Zstd`) at its default
    /// level.
    pub fn new(out: W, compression: Compression) -> Result<LayerWriter<W>, LayerError> {
        LayerWriter::with_level(out, compression, None)
    }

    /// Starts a blob compressed with `compression` at `level` (gzip 0–9, zstd 1–19; `None` for
    /// the default: gzip 6, zstd 3). zstd runs on every core; its output is the same whatever
    /// their number.
    pub fn with_level(
        out: W,
        compression: Compression,
        level: Option<i32>,
    ) -> Result<LayerWriter<W>, LayerError> {
        LayerWriter::with_workers(out, compression, level, zstd_workers())
    }

    fn with_workers(
        out: W,
        compression: Compression,
        level: Option<i32>,
        workers: u32,
    ) -> Result<LayerWriter<W>, LayerError> {
        let bad = |reason: String| LayerError::Invalid {
            path: String::new(),
            reason,
        };
        if let Some(l) = level {
            match compression.level_range() {
                Some((lo, hi)) if (lo..=hi).contains(&l) => {}
                Some((lo, hi)) => {
                    return Err(bad(format!(
                        "compression level {l} is out of range for {} ({lo} to {hi})",
                        compression.name()
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "{} compression takes no level",
                        compression.name()
                    )))
                }
            }
        }
        let enc = match compression {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(
                GzBuilder::new()
                    .mtime(0)
                    .operating_system(GZIP_OS_UNKNOWN)
                    .write(
                        DigestingWriter::new(out),
                        flate2::Compression::new(level.map_or(GZIP_LEVEL, |l| l as u32)),
                    ),
            ),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(
                    DigestingWriter::new(out),
                    level.unwrap_or(ZSTD_LEVEL),
                )
                .map_err(|e| LayerError::io("starting zstd compression", e))?;
                e.multithread(workers)
                    .map_err(|e| LayerError::io("starting zstd worker threads", e))?;
                Encoder::Zstd(e)
            }
            Compression::Bzip2 | Compression::Xz => {
                return Err(bad(format!(
                    "{} is only read, never written",
                    compression.name()
                )))
            }
        };
        Ok(LayerWriter {
            inner: DigestingWriter::new(enc),
            compression,
        })
    }

    /// Uncompressed bytes written so far.
    pub fn uncompressed_count(&self) -> u64 {
        self.inner.count()
    }

    /// Ends the compressed stream and returns the writer and the blob's digests and sizes.
    pub fn finish(self) -> Result<(W, LayerBlob), LayerError> {
        let (enc, diff_id, uncompressed_size) = self.inner.finish();
        let (mut out, digest, size) = match enc {
            Encoder::Plain(w) => (w, diff_id.clone(), uncompressed_size),
            Encoder::Gzip(w) => w
                .finish()
                .map_err(|e| LayerError::io("finishing gzip stream", e))?
                .finish(),
            Encoder::Zstd(w) => w
                .finish()
                .map_err(|e| LayerError::io("finishing zstd stream", e))?
                .finish(),
        };
        out.flush()
            .map_err(|e| LayerError::io("flushing layer blob", e))?;
        Ok((
            out,
            LayerBlob {
                digest,
                size,
                diff_id,
                uncompressed_size,
                media_type: self.compression.media_type(),
            },
        ))
    }
}

impl<W: Write> Write for LayerWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compresses the uncompressed tar read from `tar` into `out`, in one pass; returns the blob's
/// digests and sizes and gives `out` back (for fsync and rename).
pub fn compress<R: Read, W: Write>(
    mut tar: R,
    out: W,
    compression: Compression,
) -> Result<(LayerBlob, W), LayerError> {
    let mut w = LayerWriter::new(out, compression)?;
    io::copy(&mut tar, &mut w).map_err(|e| LayerError::io("compressing layer", e))?;
    let (out, blob) = w.finish()?;
    Ok((blob, out))
}

/// Recognises a compression format from the first bytes of a stream (at least 6 bytes, fewer
/// when the stream is shorter). Anything unrecognised is taken as a plain tar.
pub fn detect_compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

/// Wraps `reader` in the decompressor its first bytes call for (gzip, zstd, bzip2, xz), or
/// returns it unchanged for a plain tar. Returns the detected compression too.
pub fn decompress<'a, R: Read + 'a>(
    reader: R,
) -> Result<(Box<dyn Read + 'a>, Compression), LayerError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut head = Vec::with_capacity(6);
    // fill_buf may return fewer bytes than asked; read until 6 bytes or end of stream
    while head.len() < 6 {
        let buf = reader
            .fill_buf()
            .map_err(|e| LayerError::io("reading layer stream", e))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(6 - head.len());
        head.extend_from_slice(&buf[..n]);
        reader.consume(n);
    }
    let compression = detect_compression(&head);
    let stream = Cursor::new(head).chain(reader);
    let out: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| LayerError::io("starting zstd decompression", e))?,
        ),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(stream)),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(stream)),
    };
    Ok((out, compression))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn gzip_digests_match_both_sides() {
        let data = sample();
        let (blob, out) = compress(&data[..], Vec::new(), Compression::Gzip).expect("compress");
        assert_eq!(blob.digest, Digest::of_bytes(&out));
        assert_eq!(blob.size, out.len() as u64);
        assert_eq!(blob.diff_id, Digest::of_bytes(&data));
        assert_eq!(blob.uncompressed_size, data.len() as u64);
        assert_eq!(blob.media_type, MediaType::ImageLayerGzip);
        // deterministic header: magic, deflate, no flags, mtime 0, OS 255
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let (again, out2) = compress(&data[..], Vec::new(), Compression::Gzip).expect("again");
        assert_eq!(again, blob);
        assert_eq!(out, out2);
    }

    #[test]
    fn every_format_round_trips_through_decompress() {
        let data = sample();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (blob, out) = compress(&data[..], Vec::new(), c).expect("compress");
            let (mut r, found) = decompress(&out[..]).expect("decompress");
            assert_eq!(found, c);
            let mut back = Vec::new();
            r.read_to_end(&mut back).expect("read");
            assert_eq!(back, data, "{c:?}");
            assert_eq!(blob.diff_id, Digest::of_bytes(&data));
        }
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).expect("bz");
        let bz = bz.finish().expect("bz");
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).expect("xz");
        let xz = xz.finish().expect("xz");
        for (blob, c) in [(bz, Compression::Bzip2), (xz, Compression::Xz)] {
            let (mut r, found) = decompress(&blob[..]).expect("decompress");
            assert_eq!(found, c);
            let mut back = Vec::new();
            r.read_to_end(&mut back).expect("read");
            assert_eq!(back, data, "{c:?}");
        }
    }

    /// Compressible but not trivial: a few MiB more than one zstd job at level 3.
    fn big_sample() -> Vec<u8> {
        let mut x: u32 = 1;
        (0..24 * 1024 * 1024)
            .map(|i: u32| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if i % 7 == 0 {
                    (x >> 24) as u8
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect()
    }

    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() {
        let data = big_sample();
        let one = |workers| {
            let mut w = LayerWriter::with_workers(Vec::new(), Compression::Zstd, None, workers)
                .expect("start");
            w.write_all(&data).expect("write");
            w.finish().expect("finish")
        };
        let (a, blob_a) = one(1);
        let (b, blob_b) = one(3);
        assert_eq!(blob_a, blob_b);
        assert!(a == b, "zstd blobs differ between 1 and 3 workers");
        let (mut r, _) = decompress(&a[..]).expect("decompress");
        let mut back = Vec::new();
        r.read_to_end(&mut back).expect("read");
        assert!(back == data, "zstd round trip");
    }

    #[test]
    fn a_plain_blob_is_its_tar() {
        let data = sample();
        let (blob, out) = compress(&data[..], Vec::new(), Compression::None).expect("plain");
        assert_eq!(out, data);
        assert_eq!(blob.digest, blob.diff_id);
        assert_eq!(blob.digest, Digest::of_bytes(&data));
        assert_eq!(blob.size, data.len() as u64);
        assert_eq!(blob.media_type, MediaType::ImageLayer);
    }

    #[test]
    fn levels_are_checked_and_change_the_output() {
        let data = sample();
        let at = |c, l| {
            let mut w = LayerWriter::with_level(Vec::new(), c, l).expect("start");
            w.write_all(&data).expect("write");
            w.finish().expect("finish").0
        };
        assert_ne!(
            at(Compression::Gzip, Some(1)),
            at(Compression::Gzip, Some(9))
        );
        assert_eq!(at(Compression::Gzip, None), at(Compression::Gzip, Some(6)));
        assert_ne!(
            at(Compression::Zstd, Some(1)),
            at(Compression::Zstd, Some(19))
        );
        for (c, l) in [
            (Compression::Gzip, 10),
            (Compression::Zstd, 0),
            (Compression::Zstd, 20),
            (Compression::None, 1),
        ] {
            let e = LayerWriter::with_level(Vec::new(), c, Some(l))
                .err()
                .expect("refused");
            assert!(e.to_string().contains(c.name()), "{e}");
        }
    }

    #[test]
    fn short_streams_are_plain() {
        let (mut r, c) = decompress(&b"ab"[..]).expect("decompress");
        assert_eq!(c, Compression::None);
        let mut back = Vec::new();
        r.read_to_end(&mut back).expect("read");
        assert_eq!(back, b"ab");
    }
}
