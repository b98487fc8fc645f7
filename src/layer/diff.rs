//! Directories to OCI layer tars: an overlay upper dir after a RUN step, or a plain directory
//! (a COPY/ADD layer written into a fresh dir, or a flattened file system for `--output`).
//!
//! Output follows the OCI image spec's changeset rules (`layer.md`): an overlay whiteout (a 0:0
//! char device) becomes an empty regular file `.wh.NAME`, a directory marked opaque
//! (`user.overlay.opaque=y` or `trusted.overlay.opaque=y`) is followed by a `.wh..wh..opq` entry.
//! Hard links are kept through an inode map; extended attributes go into PAX `SCHILY.xattr.*`
//! records (overlay's own `user.overlay.*` / `trusted.overlay.*` never do); owners are numeric
//! with no names. Output is deterministic: entries in pre-order with each directory's children
//! sorted by name bytes, ustar headers with no atime/ctime, mtimes clamped to an optional
//! timestamp (`--timestamp` / `SOURCE_DATE_EPOCH`), and the tar streamed straight through
//! [`LayerWriter`] so the compressed blob and both digests come out of the same pass.
//! Sockets cannot be stored in a tar: they are left out, as docker and buildah do, and so are
//! their other hard-linked names. [`write_tar`] only reads the directory it is given; the blob
//! writers that commit a layer ([`write_upper_tar`], [`write_dir_tar`]) also remove those
//! sockets from the directory, because that directory becomes the layer's unpacked form, which
//! must show exactly what the blob holds.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use tar::{EntryType, Header};

use super::{
    Compression, LayerBlob, LayerError, LayerWriter, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR,
    TRUSTED_OPAQUE_XATTR, WHITEOUT_PREFIX,
};

/// How a layer tar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiffOptions {
    /// Clamp every mtime to at most this many seconds since the epoch.
    pub timestamp: Option<i64>,
    /// Compression of the blob.
    pub compression: Compression,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            timestamp: None,
            compression: Compression::Gzip,
        }
    }
}

/// What the directory given to [`write_tar`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirKind {
    /// An overlay upper dir: 0:0 char devices are whiteouts, opaque xattrs mark opaque dirs.
    OverlayUpper,
    /// A plain directory: everything is written as it is.
    Plain,
}

/// Turns an overlay upper dir into a compressed OCI layer blob written to `out`.
pub fn write_upper_tar<W: Write>(
    upper: &Path,
    out: W,
    opts: &DiffOptions,
) -> Result<(LayerBlob, W), LayerError> {
    write_blob(upper, out, DirKind::OverlayUpper, opts)
}

/// Turns a plain directory (a COPY/ADD layer's fresh dir) into a compressed OCI layer blob.
pub fn write_dir_tar<W: Write>(
    dir: &Path,
    out: W,
    opts: &DiffOptions,
) -> Result<(LayerBlob, W), LayerError> {
    write_blob(dir, out, DirKind::Plain, opts)
}

fn write_blob<W: Write>(
    dir: &Path,
    out: W,
    kind: DirKind,
    opts: &DiffOptions,
) -> Result<(LayerBlob, W), LayerError> {
    let w = LayerWriter::new(out, opts.compression)?;
    let w = write_tar_inner(dir, w, kind, opts.timestamp, true)?;
    let (out, blob) = w.finish()?;
    Ok((blob, out))
}

/// Writes the uncompressed tar of `dir` (not including `dir` itself) to `out` and returns `out`.
pub fn write_tar<W: Write>(
    dir: &Path,
    out: W,
    kind: DirKind,
    timestamp: Option<i64>,
) -> Result<W, LayerError> {
    write_tar_inner(dir, out, kind, timestamp, false)
}

/// [`write_tar`] for a layer being committed: what the tar leaves out (sockets, and hard links to
/// them) is removed from `dir` too, so the dir later steps mount shows exactly what the blob holds.
pub fn write_layer_tar<W: Write>(
    dir: &Path,
    out: W,
    kind: DirKind,
    timestamp: Option<i64>,
) -> Result<W, LayerError> {
    write_tar_inner(dir, out, kind, timestamp, true)
}

/// [`write_tar`]; with `remove_unstored`, what the tar leaves out (sockets) is removed from `dir`.
fn write_tar_inner<W: Write>(
    dir: &Path,
    out: W,
    kind: DirKind,
    timestamp: Option<i64>,
    remove_unstored: bool,
) -> Result<W, LayerError> {
    let mut builder = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut buf = vec![0u8; COPY_BUF];
    let walk = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for item in walk {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_owned();
            LayerError::Walk {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop")),
            }
        })?;
        let path = item.path();
        let rel = path.strip_prefix(dir).map_err(|_| LayerError::Walk {
            path: path.to_owned(),
            source: io::Error::other("walked outside the directory"),
        })?;
        let rel = rel.as_os_str().as_bytes().to_vec();
        // a regular file (by the directory's own listing) is opened first and read through its
        // descriptor: one look-up by path instead of three (stat, xattrs, open). Anything else,
        // or a file that cannot be opened, goes the way of every other entry.
        let opened = if item.file_type().is_file() {
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)
                .ok()
                .and_then(|f| {
                    let md = f.metadata().ok()?;
                    md.is_file().then_some((f, md))
                })
        } else {
            None
        };
        let (opened, md) = match opened {
            Some((f, md)) => (Some(f), md),
            None => (
                None,
                fs::symlink_metadata(path).map_err(|e| walk_err(path, e))?,
            ),
        };
        let ft = md.file_type();
        let mtime = clamp(md.mtime(), timestamp);
        let mut h = Header::new_ustar();
        h.set_uid(md.uid().into());
        h.set_gid(md.gid().into());
        h.set_mode(md.mode() & 0o7777);
        h.set_mtime(mtime);
        h.set_size(0);

        if kind == DirKind::OverlayUpper && ft.is_char_device() && md.rdev() == 0 {
            // an overlay whiteout: `.wh.NAME`, an empty regular file, as docker writes it
            let name = whiteout_name(&rel, WHITEOUT_PREFIX.as_bytes());
            h.set_entry_type(EntryType::Regular);
            h.set_mode(0o600);
            h.set_uid(0);
            h.set_gid(0);
            append(&mut builder, h, &name, None, &[], io::empty(), path)?;
            continue;
        }

        let mut xattrs = read_xattrs(path, opened.as_ref())?;
        // an owner recorded where the file system could not make it (single-id mode): the
        // entry's owner, and not an attribute of the layer
        if let Some(i) = xattrs
            .iter()
            .position(|(n, _)| n == super::RECORDED_OWNER_XATTR.as_bytes())
        {
            let (_, v) = xattrs.remove(i);
            if let Some((uid, gid)) = super::parse_recorded_owner(&v) {
                h.set_uid(uid.into());
                h.set_gid(gid.into());
            }
        }
        if ft.is_dir() {
            let mut name = rel.clone();
            name.push(b'/');
            h.set_entry_type(EntryType::Directory);
            append(
                &mut builder,
                h.clone(),
                &name,
                None,
                &xattrs,
                io::empty(),
                path,
            )?;
            if kind == DirKind::OverlayUpper && is_opaque(path) {
                let mut opq = rel.clone();
                opq.push(b'/');
                opq.extend_from_slice(OPAQUE_WHITEOUT.as_bytes());
                h.set_entry_type(EntryType::Regular);
                h.set_mode(md.mode() & 0o777);
                append(&mut builder, h, &opq, None, &[], io::empty(), path)?;
            }
            continue;
        }

        if ft.is_socket() {
            // sockets cannot be stored in a tar; docker and buildah leave them out too. Checked
            // before the hard link map, so that another name of the same socket is left out
            // as well instead of becoming a link to an entry the tar does not hold
            log::warn!("`{}`: socket left out of the layer", path.display());
            if remove_unstored {
                fs::remove_file(path).map_err(|e| walk_err(path, e))?;
            }
            continue;
        }
        let rel_s = String::from_utf8_lossy(&rel).into_owned();
        if md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = links.get(&key) {
                h.set_entry_type(EntryType::Link);
                append(
                    &mut builder,
                    h,
                    &rel,
                    Some(first.as_bytes()),
                    &[],
                    io::empty(),
                    path,
                )?;
                continue;
            }
            links.insert(key, rel_s);
        }

        if ft.is_file() {
            h.set_entry_type(EntryType::Regular);
            h.set_size(md.len());
            let file = match opened {
                Some(f) => f,
                None => fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)
                    .map_err(|e| walk_err(path, e))?,
            };
            let reader = SizedReader {
                inner: file,
                left: md.len(),
            };
            append_file(&mut builder, h, &rel, &xattrs, reader, path, &mut buf)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| walk_err(path, e))?;
            h.set_entry_type(EntryType::Symlink);
            append(
                &mut builder,
                h,
                &rel,
                Some(target.as_os_str().as_bytes()),
                &xattrs,
                io::empty(),
                path,
            )?;
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                EntryType::Char
            } else {
                EntryType::Block
            });
            let rdev = md.rdev();
            h.set_device_major(libc::major(rdev))
                .map_err(|e| walk_err(path, e))?;
            h.set_device_minor(libc::minor(rdev))
                .map_err(|e| walk_err(path, e))?;
            append(&mut builder, h, &rel, None, &xattrs, io::empty(), path)?;
        } else if ft.is_fifo() {
            h.set_entry_type(EntryType::Fifo);
            append(&mut builder, h, &rel, None, &xattrs, io::empty(), path)?;
        } else {
            return Err(walk_err(
                path,
                io::Error::other("a file of a kind a layer cannot hold"),
            ));
        }
    }
    builder
        .into_inner()
        .map_err(|e| LayerError::io("finishing layer tar", e))
}

/// The piece size file data is copied in: large enough that a big file costs few reads and
/// each piece goes past the blob's write buffer in one write.
const COPY_BUF: usize = 1024 * 1024;

fn walk_err(path: &Path, source: io::Error) -> LayerError {
    LayerError::Walk {
        path: path.to_owned(),
        source,
    }
}

fn clamp(mtime: i64, timestamp: Option<i64>) -> u64 {
    let t = match timestamp {
        Some(ts) if ts < mtime => ts,
        _ => mtime,
    };
    t.max(0) as u64
}

fn whiteout_name(rel: &[u8], prefix: &[u8]) -> Vec<u8> {
    let (dir, base) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&rel[..0], rel),
    };
    [dir, prefix, base].concat()
}

fn is_opaque(path: &Path) -> bool {
    [OVERLAY_OPAQUE_XATTR, TRUSTED_OPAQUE_XATTR]
        .iter()
        .any(|name| matches!(xattr::get(path, name), Ok(Some(v)) if v == b"y"))
}

/// An extended attribute's name and value.
type Xattr = (Vec<u8>, Vec<u8>);

/// The entry's extended attributes, sorted by name, without overlay's own.
/// Read through `file` (the entry opened) where given: no look-up by path.
fn read_xattrs(path: &Path, file: Option<&File>) -> Result<Vec<Xattr>, LayerError> {
    use xattr::FileExt;
    let listed = match file {
        Some(f) => f.list_xattr(),
        None => xattr::list(path),
    };
    let names = match listed {
        Ok(n) => n,
        // a file system without xattr support simply has none
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(walk_err(path, e)),
    };
    let mut out = Vec::new();
    for name in names {
        let b = name.as_bytes();
        if b.starts_with(b"user.overlay.") || b.starts_with(b"trusted.overlay.") {
            // a metacopy file holds no data and a redirected dir holds only part of its content:
            // the upper dir alone is then not the layer, so refuse rather than write a wrong one
            if b.ends_with(b".metacopy") || b.ends_with(b".redirect") {
                return Err(walk_err(
                    path,
                    io::Error::other(format!(
                        "overlay `{}` is set: the upper dir was mounted with metacopy or \
                         redirect_dir on, which hoist cannot turn into a layer",
                        name.to_string_lossy()
                    )),
                ));
            }
            continue;
        }
        let value = match file {
            Some(f) => f.get_xattr(&name),
            None => xattr::get(path, &name),
        };
        match value {
            Ok(Some(v)) => out.push((b.to_vec(), v)),
            Ok(None) => {}
            // trusted.* is unreadable without CAP_SYS_ADMIN: such an attribute cannot be kept
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                log::warn!(
                    "`{}`: extended attribute `{}` is not readable here and is left out",
                    path.display(),
                    name.to_string_lossy()
                );
            }
            Err(e) => return Err(walk_err(path, e)),
        }
    }
    out.sort();
    Ok(out)
}

/// One PAX record: `LEN key=value\n`, where LEN counts the whole record including itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    let mut rec = Vec::with_capacity(len);
    rec.extend_from_slice(len.to_string().as_bytes());
    rec.push(b' ');
    rec.extend_from_slice(key);
    rec.push(b'=');
    rec.extend_from_slice(value);
    rec.push(b'\n');
    rec
}

/// Writes one entry: a PAX header first when the name or link target does not fit a ustar
/// header or there are xattrs, then the ustar header and the data.
fn append<W: Write, R: io::Read>(
    builder: &mut tar::Builder<W>,
    h: Header,
    name: &[u8],
    link: Option<&[u8]>,
    xattrs: &[Xattr],
    data: R,
    src: &Path,
) -> Result<(), LayerError> {
    let h = entry_header(builder, h, name, link, xattrs, src)?;
    builder.append(&h, data).map_err(|e| walk_err(src, e))
}

/// Appends a regular file's entry, its data copied through `buf` (a large buffer, reused from
/// file to file: the tar crate copies in 8 KiB pieces, and a layer of hundreds of megabytes is
/// then mostly per-piece overhead). A file that shrinks while it is read is an error; one that
/// grows is cut at the size its header records.
fn append_file<W: Write>(
    builder: &mut tar::Builder<W>,
    h: Header,
    name: &[u8],
    xattrs: &[Xattr],
    mut data: SizedReader,
    src: &Path,
    buf: &mut [u8],
) -> Result<(), LayerError> {
    let h = entry_header(builder, h, name, None, xattrs, src)?;
    let out = builder.get_mut();
    out.write_all(h.as_bytes()).map_err(|e| walk_err(src, e))?;
    let mut len = 0u64;
    loop {
        let n = match io::Read::read(&mut data, buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(walk_err(src, e)),
        };
        out.write_all(&buf[..n]).map_err(|e| walk_err(src, e))?;
        len += n as u64;
    }
    let pad = (512 - len % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
        .map_err(|e| walk_err(src, e))
}

/// Writes the PAX extended header an entry needs (long name or link, xattrs) and returns the
/// entry's own header, checksummed.
fn entry_header<W: Write>(
    builder: &mut tar::Builder<W>,
    mut h: Header,
    name: &[u8],
    link: Option<&[u8]>,
    xattrs: &[Xattr],
    src: &Path,
) -> Result<Header, LayerError> {
    let mut pax = Vec::new();
    if !set_ustar_name(&mut h, name) {
        pax.extend(pax_record(b"path", name));
        set_raw_name(&mut h, name);
    }
    if let Some(link) = link {
        if h.set_link_name(OsStr::from_bytes(link)).is_err() {
            pax.extend(pax_record(b"linkpath", link));
            let n = link.len().min(100);
            h.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
        }
    }
    for (k, v) in xattrs {
        let key = [b"SCHILY.xattr.".as_slice(), k].concat();
        pax.extend(pax_record(&key, v));
    }
    if !pax.is_empty() {
        let mut ph = Header::new_ustar();
        let base = name
            .rsplit(|&b| b == b'/')
            .find(|s| !s.is_empty())
            .unwrap_or(b"entry");
        let pname = [b"PaxHeaders.0/".as_slice(), base].concat();
        set_raw_name(&mut ph, &pname);
        ph.set_entry_type(EntryType::XHeader);
        ph.set_mode(0o644);
        ph.set_mtime(0);
        ph.set_size(pax.len() as u64);
        ph.set_cksum();
        builder
            .append(&ph, &pax[..])
            .map_err(|e| walk_err(src, e))?;
    }
    h.set_cksum();
    Ok(h)
}

/// Stores `name` in the ustar name and prefix fields exactly as given (a directory keeps its
/// trailing `/`); `false` when it does not fit.
fn set_ustar_name(h: &mut Header, name: &[u8]) -> bool {
    if name.len() <= 100 {
        set_raw_name(h, name);
        return true;
    }
    // split at a `/` so that the prefix has at most 155 bytes and the rest at most 100
    let Some(ustar) = h.as_ustar_mut() else {
        return false;
    };
    for (i, &b) in name.iter().enumerate() {
        if b == b'/' && i > 0 && i <= 155 && name.len() - i - 1 <= 100 && name.len() - i - 1 > 0 {
            ustar.prefix.fill(0);
            ustar.prefix[..i].copy_from_slice(&name[..i]);
            ustar.name.fill(0);
            ustar.name[..name.len() - i - 1].copy_from_slice(&name[i + 1..]);
            return true;
        }
    }
    false
}

/// Puts the first 100 bytes of `name` into the header's name field (the full name is in PAX).
fn set_raw_name(h: &mut Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
}

/// Reads exactly the size recorded in the header: a file that grows while it is archived must
/// not corrupt the tar, and one that shrinks is an error.
struct SizedReader {
    inner: File,
    left: u64,
}

impl io::Read for SizedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
