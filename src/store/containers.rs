//! Working containers' state in the store: `containers/ID/` (ID: 64 hex digits) holds
//! `container.json` (the [`ContainerRecord`]), `config.json` (the container's copy of its image
//! config, edited by `hoist config`), `upper/` and `work/` (the overlay upper and work dirs over
//! the base image's unpacked layers), `lock` (held exclusively by the one hoist process using
//! the container) and, once `hoist mount` has run, `merged/` (its mount point), `mounted` (the
//! mount namespace it was mounted in, while it is) and for a scratch container `empty/` (its one,
//! empty, lower dir).
//!
//! A container is made whole in the process's `tmp/` and renamed into `containers/` under
//! `containers.lock` (which also keeps names unique); it is removed by renaming it back into
//! `tmp/` first, so `containers/` only ever holds whole containers. Files inside are replaced by
//! atomic writes. What a container needs (its base image's manifest, config and unpacked layers)
//! is a garbage-collection root ([`gc_roots`]), and `prune` leaves its base image listed
//! ([`images_in_use`]). This module keeps state only: running, copying and committing are the
//! `container` room's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::check::Checker;
use super::{remove_tree, GcRoots, Store, StoreError};
use crate::image::{is_hex, Digest};
use crate::util::{self, FileLock};

/// The store's dir of working containers.
pub const DIR: &str = "containers";
const RECORD: &str = "container.json";
const CONFIG: &str = "config.json";
const LOCK: &str = "lock";
const MOUNTED: &str = "mounted";

/// One working container, as `container.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    pub name: String,
    /// The image as the user named it (`scratch` for none).
    pub image: String,
    /// The ID (config digest) of the image the upper dir sits on: the image it was made from,
    /// or the image of its last commit. `None` for `scratch` before any commit.
    #[serde(default)]
    pub image_id: Option<String>,
    /// That image's manifest digest.
    #[serde(default)]
    pub base_manifest: Option<String>,
    /// That image's layers (diff_ids, bottom first): the overlay's lower dirs.
    #[serde(default)]
    pub base_layers: Vec<String>,
    /// RFC 3339.
    pub created: String,
    /// The last command run in the container.
    #[serde(default)]
    pub command: Vec<String>,
    /// The image ID of the last commit.
    #[serde(default)]
    pub last_commit: Option<String>,
    /// What was done since the last commit (`RUN …`, `COPY …`): the next commit's history.
    #[serde(default)]
    pub pending: Vec<String>,
}

/// `containers/ID`.
pub fn dir(store: &Store, id: &str) -> PathBuf {
    store.root().join(DIR).join(id)
}

/// The container's upper dir.
pub fn upper(store: &Store, id: &str) -> PathBuf {
    dir(store, id).join("upper")
}

/// The container's overlay work dir.
pub fn work(store: &Store, id: &str) -> PathBuf {
    dir(store, id).join("work")
}

/// Where `hoist mount` mounts the container's root file system.
pub fn merged(store: &Store, id: &str) -> PathBuf {
    dir(store, id).join("merged")
}

/// The mount namespace (`mnt:[N]`) `hoist mount` last mounted the container in, if recorded.
pub fn mount_marker(store: &Store, id: &str) -> Option<String> {
    fs::read_to_string(dir(store, id).join(MOUNTED))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Records the mount namespace the container is mounted in.
pub fn set_mount_marker(store: &Store, id: &str, ns: &str) -> Result<(), StoreError> {
    store.writable()?;
    write_file(&dir(store, id).join(MOUNTED), format!("{ns}\n").as_bytes())
}

/// Forgets the mount namespace record.
pub fn clear_mount_marker(store: &Store, id: &str) -> Result<(), StoreError> {
    let p = dir(store, id).join(MOUNTED);
    match fs::remove_file(&p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(&p, e)),
        _ => Ok(()),
    }
}

fn read_record(entry: &Path) -> Result<ContainerRecord, StoreError> {
    let p = entry.join(RECORD);
    let bytes = fs::read(&p).map_err(|e| StoreError::io(&p, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::invalid(format!("`{}`", p.display()), e))
}

/// Every container, oldest first. Entries that are not whole containers are left to `check`.
pub fn list(store: &Store) -> Result<Vec<ContainerRecord>, StoreError> {
    let root = store.root().join(DIR);
    let rd = match fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&root, e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| StoreError::io(&root, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_id(&name) {
            continue;
        }
        match read_record(&e.path()) {
            Ok(r) if r.id == name => out.push(r),
            Ok(_) => {
                log::warn!("container `{name}`: its record names another ID (see `hoist check`)")
            }
            Err(err) => log::warn!("container `{name}`: {err} (see `hoist check`)"),
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn is_id(s: &str) -> bool {
    s.len() == 64 && is_hex(s)
}

/// The container named `typed`: its name, its full ID, or a unique prefix of its ID.
pub fn find(store: &Store, typed: &str) -> Result<ContainerRecord, StoreError> {
    let all = list(store)?;
    if let Some(r) = all.iter().find(|r| r.name == typed || r.id == typed) {
        return Ok(r.clone());
    }
    let prefix = typed.strip_prefix("sha256:").unwrap_or(typed);
    if prefix.len() >= 3 && is_hex(prefix) {
        let hits: Vec<&ContainerRecord> = all.iter().filter(|r| r.id.starts_with(prefix)).collect();
        match hits.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            many => {
                return Err(StoreError::Ambiguous {
                    prefix: typed.to_string(),
                    candidates: many.iter().map(|r| r.name.clone()).collect(),
                })
            }
        }
    }
    Err(StoreError::ContainerNotFound(typed.to_string()))
}

/// Whether a container `name_or_id` exists (by name or full/short ID).
pub fn exists(store: &Store, typed: &str) -> bool {
    find(store, typed).is_ok()
}

/// docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok || is_id(name) {
        return Err(StoreError::invalid(
            format!("container name `{name}`"),
            "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
        ));
    }
    Ok(())
}

fn containers_lock(store: &Store) -> Result<FileLock, StoreError> {
    store.writable()?;
    let p = store.root().join("containers.lock");
    FileLock::exclusive(&p).map_err(|e| StoreError::io(&p, e))
}

/// Makes a container: `config` is its image config copy. With `name` `None`, `default_name`
/// is used, with `-2`, `-3`… appended while it is taken. Returns the record as stored.
pub fn create(
    store: &Store,
    mut record: ContainerRecord,
    name: Option<&str>,
    default_name: &str,
    config: &[u8],
) -> Result<ContainerRecord, StoreError> {
    if let Some(n) = name {
        check_name(n)?;
    }
    let work = store.tmp_dir()?;
    let entry = work.path().join("container");
    for d in [entry.join("upper"), entry.join("work")] {
        fs::create_dir_all(&d).map_err(|e| StoreError::io(&d, e))?;
    }
    let _lock = containers_lock(store)?;
    let taken: Vec<String> = list(store)?.into_iter().map(|r| r.name).collect();
    record.name = match name {
        Some(n) if taken.iter().any(|t| t == n) => {
            return Err(StoreError::invalid(
                format!("container name `{n}`"),
                "it is in use by another container (`hoist rm` it first)",
            ))
        }
        Some(n) => n.to_string(),
        None => {
            let mut n = default_name.to_string();
            let mut i = 2;
            while taken.contains(&n) {
                n = format!("{default_name}-{i}");
                i += 1;
            }
            n
        }
    };
    write_file(&entry.join(CONFIG), config)?;
    write_file(&entry.join(RECORD), &record_json(&record))?;
    let dest = dir(store, &record.id);
    fs::rename(&entry, &dest).map_err(|e| StoreError::io(&dest, e))?;
    let parent = store.root().join(DIR);
    util::sync_dir(&parent).map_err(|e| StoreError::io(&parent, e))?;
    Ok(record)
}

fn record_json(r: &ContainerRecord) -> Vec<u8> {
    serde_json::to_vec_pretty(r).expect("a record always serialises")
}

fn write_file(p: &Path, data: &[u8]) -> Result<(), StoreError> {
    util::write_atomic(p, data).map_err(|e| StoreError::io(p, e))
}

/// Replaces `container.json`.
pub fn save(store: &Store, record: &ContainerRecord) -> Result<(), StoreError> {
    store.writable()?;
    write_file(&dir(store, &record.id).join(RECORD), &record_json(record))
}

/// The container's image config copy.
pub fn read_config(store: &Store, id: &str) -> Result<Vec<u8>, StoreError> {
    let p = dir(store, id).join(CONFIG);
    fs::read(&p).map_err(|e| StoreError::io(&p, e))
}

/// Replaces the container's image config copy.
pub fn save_config(store: &Store, id: &str, config: &[u8]) -> Result<(), StoreError> {
    store.writable()?;
    write_file(&dir(store, id).join(CONFIG), config)
}

/// Takes the container for this process (a run, a copy, a commit): fails at once when another
/// hoist process has it.
pub fn lock(store: &Store, record: &ContainerRecord) -> Result<FileLock, StoreError> {
    store.writable()?;
    let p = dir(store, &record.id).join(LOCK);
    match FileLock::try_exclusive(&p).map_err(|e| StoreError::io(&p, e))? {
        Some(l) => Ok(l),
        None => Err(StoreError::ContainerInUse(record.name.clone())),
    }
}

/// Whether another process uses the container now.
pub fn in_use(store: &Store, record: &ContainerRecord) -> bool {
    let p = dir(store, &record.id).join(LOCK);
    matches!(FileLock::try_exclusive(&p), Ok(None))
}

/// Removes a container (its upper dir with it). Fails when another process uses it.
pub fn remove(store: &Store, record: &ContainerRecord) -> Result<(), StoreError> {
    let held = lock(store, record)?;
    let work = store.tmp_dir()?;
    let _names = containers_lock(store)?;
    let from = dir(store, &record.id);
    let to = work.path().join("removed");
    fs::rename(&from, &to).map_err(|e| StoreError::io(&from, e))?;
    drop(held);
    remove_tree(&to).map_err(|e| StoreError::io(&to, e))
}

/// What containers keep alive: their base image's manifest (and so its config and layer blobs)
/// and its unpacked layers.
pub fn gc_roots(store: &Store) -> Result<GcRoots, StoreError> {
    let mut roots = GcRoots::default();
    for r in list(store)? {
        if let Some(m) = &r.base_manifest {
            roots.blobs.push(Digest::parse(m)?);
        }
        for l in &r.base_layers {
            roots.diff_ids.push(Digest::parse(l)?);
        }
    }
    Ok(roots)
}

/// The image IDs containers are based on (`prune` keeps them listed, `rmi` refuses them).
pub fn images_in_use(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    Ok(list(store)?
        .into_iter()
        .filter_map(|r| r.image_id.map(|i| (i, r.name)))
        .collect())
}

/// `hoist check`'s part: every entry of `containers/` is a whole container whose base is present.
pub(super) fn check(c: &mut Checker<'_>) -> Result<(), StoreError> {
    let store = c.store();
    let root = store.root().join(DIR);
    let mut entries: Vec<fs::DirEntry> = match fs::read_dir(&root) {
        Ok(rd) => rd
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::io(&root, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(StoreError::io(&root, e)),
    };
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let rel = format!("{DIR}/{name}");
        let fix = || remove_tree(&p).map_err(|e| e.to_string());
        if !is_id(&name) || !p.is_dir() {
            c.problem(format!("leftover `{rel}`: not a container"), fix);
            continue;
        }
        let why = match read_record(&p) {
            Err(err) => Some(format!("{err}")),
            Ok(r) if r.id != name => Some("its record names another ID".to_string()),
            Ok(r) => {
                let config_ok = fs::read(p.join(CONFIG)).is_ok_and(|b| {
                    serde_json::from_slice::<serde_json::Value>(&b).is_ok_and(|v| v.is_object())
                });
                if !config_ok {
                    Some(format!("`{CONFIG}` is missing or damaged"))
                } else if !p.join("upper").is_dir() || !p.join("work").is_dir() {
                    Some("its upper or work dir is missing".to_string())
                } else {
                    r.base_manifest
                        .as_deref()
                        .and_then(|m| Digest::parse(m).ok())
                        .filter(|m| !store.has_blob(m))
                        .map(|m| format!("its base image's manifest `{m}` is missing"))
                }
            }
        };
        if let Some(why) = why {
            c.problem(format!("container `{rel}`: {why}"), fix);
        }
    }
    Ok(())
}
