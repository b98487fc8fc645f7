//! Working containers: `hoist from`, `hoist run` without `--rm`, `copy`, `add`, `config`,
//! `commit`, `diff`. A container is its base image's unpacked layers, an overlay upper dir and a
//! copy of the image config, kept in the store ([`crate::store::containers`]).
//!
//! Everything here is the build's own code: RUN through [`crate::sandbox`] over the same layer
//! dirs, COPY/ADD through the build's [`LayerWriter`] (writing into the upper dir, so overlay
//! sees the files as if a RUN had made them), and commit through [`crate::exec::commit`], the
//! function `hoist build` commits its layers and images with (same whiteouts, `--timestamp`
//! clamping, compression). After a commit the container sits on the committed image with a fresh
//! upper dir (the old one becomes that layer's unpacked dir, as a RUN's does in a build), so a
//! second commit holds only what changed since the first. It must not parse command lines (the
//! CLI's) nor write the store's files other than through the store.

pub mod mount;

use std::fs;
use std::path::{Path, PathBuf};

use crate::exec::commit::{self, CommitError, LayerRef};
use crate::exec::config::{rfc3339, History, ImageConfig};
use crate::exec::copy::{Attrs, LayerWriter};
use crate::exec::perms::{Accounts, Chmod};
use crate::exec::rootfs::RootView;
use crate::exec::{add, LayerCompression};
use crate::image::{Digest, Reference};
use crate::store::containers::{self as state, ContainerRecord};
use crate::store::{ImageRecord, Store, StoreError};
use crate::util::FileLock;

/// Why a container operation failed; each message names the container or path.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("container `{name}`: {message}")]
    Op { name: String, message: String },
    #[error("`{path}`: {message}")]
    Source { path: String, message: String },
}

fn op(r: &ContainerRecord, message: impl ToString) -> ContainerError {
    ContainerError::Op {
        name: r.name.clone(),
        message: message.to_string(),
    }
}

/// A fresh random ID (64 hex digits).
fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    // the time and pid make IDs distinct even where /dev/urandom cannot be read
    let salt = format!(
        "{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    );
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, bytes);
    sha2::Digest::update(&mut h, salt.as_bytes());
    hex::encode(sha2::Digest::finalize(h))
}

/// buildah's default name for a container of `image`: its last path component without the tag,
/// then `-working-container`.
pub fn default_name(image: &str) -> String {
    let base = image.rsplit('/').next().unwrap_or(image);
    let base = base.split(['@', ':']).next().unwrap_or(base);
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = base.trim_start_matches(['_', '.', '-']);
    let base = if base.is_empty() { "scratch" } else { base };
    format!("{base}-working-container")
}

/// Makes a container over `image` (`None`: scratch). `typed` is the image as the user named it.
pub fn create(
    store: &Store,
    image: Option<&ImageRecord>,
    typed: &str,
    name: Option<&str>,
    default: &str,
) -> Result<ContainerRecord, ContainerError> {
    let (config, image_id, manifest, layers) = match image {
        Some(img) => {
            let mut config = ImageConfig::from_json(&store.read_blob(&img.id)?)
                .map_err(|e| StoreError::invalid(format!("image `{typed}`'s config"), e))?;
            // as a build's FROM: docker's PATH where the image has none
            config.ensure_path();
            let config = config.to_json();
            // unpacked now, so the first run or copy finds them (and a bad blob fails here)
            store.layer_dirs(img)?;
            (
                config,
                Some(img.id.to_string()),
                Some(img.manifest_digest.to_string()),
                img.diff_ids()?.iter().map(|d| d.to_string()).collect(),
            )
        }
        None => {
            let p = crate::exec::host_platform();
            let mut c = ImageConfig::scratch(&p.os, &p.arch, p.variant.as_deref());
            c.ensure_path();
            (c.to_json(), None, None, Vec::new())
        }
    };
    let record = ContainerRecord {
        id: new_id(),
        name: String::new(),
        image: typed.to_string(),
        image_id,
        base_manifest: manifest,
        base_layers: layers,
        created: rfc3339(chrono::Utc::now().timestamp()),
        command: Vec::new(),
        last_commit: None,
        pending: Vec::new(),
    };
    Ok(state::create(store, record, name, default, &config)?)
}

/// The image the container's upper dir sits on, `None` for scratch.
pub fn base_image(
    store: &Store,
    r: &ContainerRecord,
) -> Result<Option<ImageRecord>, ContainerError> {
    let Some(id) = &r.image_id else {
        return Ok(None);
    };
    let images = store.images()?;
    match images.into_iter().find(|i| i.id.to_string() == *id) {
        Some(i) => Ok(Some(i)),
        None => Err(op(r, format!("its image `{id}` is no longer in the store"))),
    }
}

/// The base image's unpacked layers, bottom first.
pub fn lower_dirs(store: &Store, r: &ContainerRecord) -> Result<Vec<PathBuf>, ContainerError> {
    match base_image(store, r)? {
        Some(img) => Ok(store.layer_dirs(&img)?),
        None => Ok(Vec::new()),
    }
}

/// The container's config copy.
pub fn config(store: &Store, r: &ContainerRecord) -> Result<ImageConfig, ContainerError> {
    let bytes = state::read_config(store, &r.id)?;
    ImageConfig::from_json(&bytes).map_err(|e| op(r, format!("its config: {e}")))
}

/// Replaces the container's config copy.
pub fn set_config(
    store: &Store,
    r: &ContainerRecord,
    c: &ImageConfig,
) -> Result<(), ContainerError> {
    Ok(state::save_config(store, &r.id, &c.to_json())?)
}

/// Takes the container for this process; see [`state::lock`].
pub fn lock(store: &Store, r: &ContainerRecord) -> Result<FileLock, ContainerError> {
    Ok(state::lock(store, r)?)
}

/// Records a command that ran in the container (for `ps` and the next commit's history).
pub fn record_run(
    store: &Store,
    r: &mut ContainerRecord,
    argv: &[String],
) -> Result<(), ContainerError> {
    r.command = argv.to_vec();
    r.pending.push(format!("RUN {}", argv.join(" ")));
    Ok(state::save(store, r)?)
}

/// One line of `hoist diff`: `A` added, `C` changed, `D` deleted, and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: char,
    pub path: String,
}

/// What the upper dir holds compared with the base image, in path order (docker's `diff`).
pub fn diff(store: &Store, r: &ContainerRecord) -> Result<Vec<Change>, ContainerError> {
    let upper = state::upper(store, &r.id);
    let base = RootView::new(lower_dirs(store, r)?);
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(&upper)
        .min_depth(1)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for e in walk {
        let e = e.map_err(|e| op(r, format!("reading its changes: {e}")))?;
        let rel = e.path().strip_prefix(&upper).unwrap_or(e.path());
        let image_path = Path::new("/").join(rel);
        let m = e
            .path()
            .symlink_metadata()
            .map_err(|err| op(r, format!("`{}`: {err}", image_path.display())))?;
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
        let in_base = base
            .stat(&image_path)
            .map_err(|err| op(r, format!("`{}`: {err}", image_path.display())))?
            .is_some();
        let kind = match (whiteout, in_base) {
            (true, _) => 'D',
            (false, true) => 'C',
            (false, false) => 'A',
        };
        if whiteout && !in_base {
            continue;
        }
        out.push(Change {
            kind,
            path: image_path.to_string_lossy().into_owned(),
        });
    }
    Ok(out)
}

/// Where `copy`/`add` read from.
#[derive(Debug)]
pub enum Sources {
    /// Paths on the host.
    Host(Vec<PathBuf>),
    /// Paths in an image's or container's file system (`--from`), read through its layer dirs.
    View {
        layers: Vec<PathBuf>,
        paths: Vec<String>,
        what: String,
    },
}

/// A `copy` or `add`.
#[derive(Debug)]
pub struct CopyRequest {
    pub sources: Sources,
    /// URLs to fetch (`add` only).
    pub urls: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    /// `add`: local archives are unpacked.
    pub add: bool,
}

/// One entry to copy: real source path, path below the destination, whether the source named a
/// directory (its contents are copied), whether the entry is a directory.
type Item = (PathBuf, String, bool, bool);

fn host_items(src: &Path) -> Result<Vec<Item>, ContainerError> {
    let shown = src.display().to_string();
    let m = fs::symlink_metadata(src).map_err(|e| ContainerError::Source {
        path: shown.clone(),
        message: if e.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory on the host".to_string()
        } else {
            e.to_string()
        },
    })?;
    if !m.is_dir() {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(src.to_path_buf(), name, false, false)]);
    }
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(src)
        .follow_links(false)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()));
    for e in walk {
        let e = e.map_err(|e| ContainerError::Source {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let rel = e
            .path()
            .strip_prefix(src)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((e.path().to_path_buf(), rel, true, e.file_type().is_dir()));
    }
    Ok(out)
}

/// Copies into the container's upper dir with the build's COPY/ADD writer. Every source is
/// checked before anything is written.
pub fn copy(store: &Store, r: &ContainerRecord, req: &CopyRequest) -> Result<(), ContainerError> {
    let upper = state::upper(store, &r.id);
    let mut layers = lower_dirs(store, r)?;
    layers.push(upper.clone());
    let view = RootView::new(layers);
    // all sources first: a missing one fails before the container changes
    let mut groups: Vec<Vec<Item>> = Vec::new();
    match &req.sources {
        Sources::Host(paths) => {
            for p in paths {
                groups.push(host_items(p)?);
            }
        }
        Sources::View {
            layers,
            paths,
            what,
        } => {
            let sv = RootView::new(layers.clone());
            for p in paths {
                let found =
                    crate::exec::from_view(&sv, p, false).map_err(|m| ContainerError::Source {
                        path: p.clone(),
                        message: format!("{m} in {what}"),
                    })?;
                for (from_dir, entries) in found {
                    groups.push(
                        entries
                            .into_iter()
                            .map(|(src, rel, is_dir)| (src, rel, from_dir, is_dir))
                            .collect(),
                    );
                }
            }
        }
    }
    let chown = match &req.chown {
        Some(spec) => {
            let acc: Accounts = crate::exec::accounts(&view).map_err(|e| op(r, e))?;
            Some(acc.chown(spec).map_err(|e| op(r, e))?)
        }
        None => None,
    };
    let chmod = match &req.chmod {
        Some(spec) => Some(Chmod::parse(spec).map_err(|e| op(r, e))?),
        None => None,
    };
    let mut w = LayerWriter::for_upper(&upper, &view);
    let dest_path = PathBuf::from(req.dest.trim_end_matches('/'));
    let dest_path = if dest_path.as_os_str().is_empty() {
        PathBuf::from("/")
    } else {
        dest_path
    };
    if !dest_path.is_absolute() {
        return Err(op(
            r,
            format!("destination `{}` is not an absolute path", req.dest),
        ));
    }
    let dest_is_dir = w.is_dir(&dest_path).map_err(|e| op(r, e))?;
    let n_sources = groups.len() + req.urls.len();
    let into_dir = req.dest.ends_with('/') || dest_is_dir || n_sources > 1;
    if n_sources > 1 && !req.dest.ends_with('/') && !dest_is_dir {
        return Err(op(
            r,
            format!(
                "when copying several sources, the destination must be a directory ending in `/`: use `{}/`",
                req.dest
            ),
        ));
    }
    let attrs = Attrs {
        chown,
        chmod: chmod.clone(),
        keep_owner: matches!(req.sources, Sources::View { .. }),
    };
    let err =
        |target: &Path, e: std::io::Error| op(r, format!("copying to `{}`: {e}", target.display()));
    let mut dir_times = Vec::new();
    for items in &groups {
        // `add` of one local archive: unpacked at the destination
        if req.add {
            if let [(src, _, false, false)] = items.as_slice() {
                let mut f = fs::File::open(src).map_err(|e| err(&dest_path, e))?;
                if add::is_archive(&mut f).map_err(|e| err(&dest_path, e))? {
                    let resolved = w.resolve_dest(&dest_path).map_err(|e| err(&dest_path, e))?;
                    w.make_parents(&resolved, (0, 0))
                        .and_then(|_| w.make_dir(&resolved, (0, 0)))
                        .map_err(|e| err(&dest_path, e))?;
                    let opts = crate::layer::ApplyOptions {
                        layer_name: format!("add {}", src.display()),
                        skip_devices: true,
                        record_owners: true,
                        ..crate::layer::ApplyOptions::default()
                    };
                    crate::layer::apply_blob(f, &w.real(&resolved), &opts)
                        .map_err(|e| op(r, format!("unpacking `{}`: {e}", src.display())))?;
                    continue;
                }
            }
        }
        for (src, rel, from_dir, is_dir) in items {
            let target = if *from_dir || into_dir {
                if rel.is_empty() {
                    dest_path.clone()
                } else {
                    dest_path.join(rel)
                }
            } else {
                dest_path.clone()
            };
            let resolved = w.resolve_dest(&target).map_err(|e| err(&target, e))?;
            if rel.is_empty() && *is_dir && w.is_dir(&resolved).unwrap_or(false) {
                w.make_parents(&resolved, chown.unwrap_or((0, 0)))
                    .and_then(|_| w.make_dir(&resolved, chown.unwrap_or((0, 0))))
                    .map_err(|e| err(&target, e))?;
            } else {
                w.put(src, &resolved, &attrs).map_err(|e| err(&target, e))?;
            }
            if *is_dir {
                if let Ok(m) = fs::symlink_metadata(src) {
                    dir_times.push((resolved, m));
                }
            }
        }
    }
    let now = chrono::Utc::now().timestamp();
    for u in &req.urls {
        let fetched = add::fetch(u, None).map_err(|e| op(r, e))?;
        let target = if into_dir {
            dest_path.join(add::url_file_name(u))
        } else {
            dest_path.clone()
        };
        let resolved = w.resolve_dest(&target).map_err(|e| err(&target, e))?;
        let url_attrs = Attrs {
            chown,
            chmod: Some(chmod.clone().unwrap_or(Chmod::Octal(0o600))),
            keep_owner: false,
        };
        w.put_bytes(
            &resolved,
            &fetched.data,
            &url_attrs,
            fetched.mtime.unwrap_or(now),
        )
        .map_err(|e| err(&target, e))?;
    }
    w.fix_dir_times(&dir_times).map_err(|e| op(r, e))?;
    if !w.unmappable.is_empty() {
        log::warn!(
            "container `{}`: owners {:?} cannot be represented in this user namespace; those files keep the current owner",
            r.name,
            w.unmappable
        );
    }
    Ok(())
}

/// Records a copy in the container's pending history.
pub fn record_copy(
    store: &Store,
    r: &mut ContainerRecord,
    what: String,
) -> Result<(), ContainerError> {
    r.pending.push(what);
    Ok(state::save(store, r)?)
}

/// How to commit.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the image's and the history entry's author.
    pub author: Option<String>,
    /// All layers flattened into one.
    pub squash: bool,
    /// `--timestamp` / `SOURCE_DATE_EPOCH`.
    pub timestamp: Option<i64>,
    pub compression: LayerCompression,
    pub names: Vec<Reference>,
}

/// Commits the container (its config copy as `config`, already edited by `--change`) as an image
/// and moves the container onto it with a fresh upper dir. The caller holds the container's lock.
pub fn commit(
    store: &Store,
    r: &mut ContainerRecord,
    mut config: ImageConfig,
    opts: &CommitOptions,
) -> Result<ImageRecord, ContainerError> {
    let upper = state::upper(store, &r.id);
    let base = base_image(store, r)?;
    let lowers = match &base {
        Some(img) => store.layer_dirs(img)?,
        None => Vec::new(),
    };
    let created = rfc3339(
        opts.timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp()),
    );
    let commit_err = |e: CommitError| match e {
        CommitError::Store(e) => ContainerError::Store(e),
        other => op(r, other),
    };
    let scratch = store.tmp_dir()?;
    let (layer_dir, upper_form, mut layers) = if opts.squash {
        let flat = scratch.path().join("squashed");
        let mut dirs = lowers.clone();
        dirs.push(upper.clone());
        fs::create_dir(&flat).map_err(|e| op(r, format!("squashing: {e}")))?;
        crate::exec::export::flatten(&dirs, &flat, true).map_err(|e| match e {
            crate::exec::ExecError::Output(m) => op(r, format!("squashing: {m}")),
            other => op(r, format!("squashing: {other}")),
        })?;
        config.history.clear();
        (flat, false, Vec::new())
    } else {
        let layers: Vec<LayerRef> = match &base {
            Some(img) => commit::image_layers(img)?,
            None => Vec::new(),
        };
        (upper.clone(), true, layers)
    };
    let (layer, staged) = commit::write_layer(
        store,
        &layer_dir,
        upper_form,
        true,
        opts.timestamp,
        opts.compression,
    )
    .map_err(commit_err)?;
    store.install_blob(staged)?;
    layers.push(layer.clone());
    let created_by = if r.pending.is_empty() {
        "hoist commit".to_string()
    } else {
        r.pending.join(" && ")
    };
    config.history.push(History {
        created: Some(created.clone()),
        created_by: Some(created_by),
        author: opts.author.clone(),
        comment: opts.message.clone(),
        empty_layer: false,
    });
    if let Some(a) = &opts.author {
        config.author = Some(a.clone());
    }
    config.created = Some(created.clone());
    if opts.timestamp.is_some() {
        config.clamp_times(&created);
    }
    let image = commit::write_image(
        store,
        &mut config,
        &layers,
        &opts.names,
        crate::exec::ImageFormat::Oci,
    )
    .map_err(commit_err)?;
    // the container now sits on the new image: first the record (a crash after it leaves the
    // same changes both in the base and in the upper dir, which shows the same files), then the
    // upper dir becomes the layer's unpacked dir and a fresh one takes its place
    r.image_id = Some(image.id.to_string());
    r.base_manifest = Some(image.manifest_digest.to_string());
    r.base_layers = layers.iter().map(|l| l.diff_id.to_string()).collect();
    r.last_commit = Some(image.id.to_string());
    r.pending.clear();
    state::save_config(store, &r.id, &store.read_blob(&image.id)?)?;
    state::save(store, r)?;
    let moved = scratch.path().join("old-upper");
    fs::rename(&upper, &moved).map_err(|e| op(r, format!("replacing its upper dir: {e}")))?;
    fs::create_dir(&upper).map_err(|e| op(r, format!("making its upper dir: {e}")))?;
    let work = state::work(store, &r.id);
    let _ = crate::store::remove_tree(&work);
    fs::create_dir_all(&work).map_err(|e| op(r, format!("making its work dir: {e}")))?;
    let placed_from = if opts.squash { layer_dir } else { moved };
    store.add_unpacked_layer(&layer.diff_id, &placed_from)?;
    Ok(image)
}

/// The digest form of an image ID for messages.
pub fn short_id(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_buildah() {
        for (image, want) in [
            ("busybox", "busybox-working-container"),
            ("docker.io/library/alpine:3.19", "alpine-working-container"),
            ("localhost/app@sha256:abc", "app-working-container"),
            ("scratch", "scratch-working-container"),
            ("registry:5000/x/y:1", "y-working-container"),
        ] {
            assert_eq!(default_name(image), want, "{image}");
        }
    }
}
