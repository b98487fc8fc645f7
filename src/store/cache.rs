//! The build cache index under `cache/`: one small JSON file per step key
//! (`cache/keys/KEYHEX.json`), written atomically, so a lookup is one read of a file named by the
//! key and never a scan of images. Each entry keeps the named parts its key was hashed from (so
//! a miss can be explained) and what the step produced: a layer (blob digest, diff_id, size,
//! media type) or none, and the image config after the step.
//!
//! `cache/last/HEX` holds, per (parent key, instruction kind) and per place in a Dockerfile, the
//! key of the entry written last for it: the "closest" entry a miss is compared with, also one
//! read. `cache/run-mounts/` holds
//! the directories of `RUN --mount=type=cache`.
//!
//! This module only stores and lists entries; computing keys is the build engine's (`exec`).
//! Collection does not read the cache: an entry may name a blob that is gone, so readers check
//! [`Store::has_blob`] and treat such an entry as a miss.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{remove_tree, tree_size, Store, StoreError};
use crate::image::Digest;
use crate::util;

/// The layer a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub media_type: String,
}

/// One cached step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The key (sha256 hex).
    pub key: String,
    /// The named parts the key was hashed from, in order (`parent`, `instruction`, `env X`,
    /// `platform`, `file PATH` …).
    pub parts: Vec<(String, String)>,
    /// The layer the step added, `None` for config-only steps.
    pub layer: Option<CachedLayer>,
    /// The image config (JSON) after the step.
    pub config: String,
}

/// What one cache entry needs from the store, for `check` and collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheNeeds {
    pub key: String,
    /// The layer blob and its unpacked dir (`layers/DIFFIDHEX/diff`), when the step made a layer.
    pub blob: Option<Digest>,
    pub diff_id: Option<Digest>,
}

/// What `prune --cache` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheClearReport {
    pub entries: usize,
    /// Bytes of the entries and of the `RUN --mount=type=cache` directories removed.
    pub reclaimed: u64,
}

fn keys_dir(store: &Store) -> PathBuf {
    store.cache_dir().join("keys")
}

fn last_dir(store: &Store) -> PathBuf {
    store.cache_dir().join("last")
}

fn is_hex_key(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn read_entry(path: &std::path::Path) -> Option<CacheEntry> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                log::debug!("cache entry `{}`: {e}", path.display());
            }
            return None;
        }
    };
    match serde_json::from_slice(&data) {
        Ok(e) => Some(e),
        // what a power loss can leave of an entry (`record` does not wait for the disk)
        Err(_) if data.is_empty() => None,
        Err(e) => {
            log::warn!(
                "cache entry `{}` is unreadable ({e}); treated as a miss",
                path.display()
            );
            None
        }
    }
}

/// Looks a key up: one read. A missing or unreadable entry is `None`.
pub fn lookup(store: &Store, key: &str) -> Option<CacheEntry> {
    if !is_hex_key(key) {
        return None;
    }
    read_entry(&keys_dir(store).join(format!("{key}.json")))
}

/// The entry last recorded under `pointer` (a hash of parent key and instruction kind).
pub fn closest(store: &Store, pointer: &str) -> Option<CacheEntry> {
    if !is_hex_key(pointer) {
        return None;
    }
    let key = fs::read_to_string(last_dir(store).join(pointer)).ok()?;
    lookup(store, key.trim())
}

/// Records an entry (atomically) and points each of `pointers` at it.
pub fn record(store: &Store, entry: &CacheEntry, pointers: &[&str]) -> Result<(), StoreError> {
    store.writable()?;
    if !is_hex_key(&entry.key) || !pointers.iter().all(|p| is_hex_key(p)) {
        return Err(StoreError::invalid(
            "build cache entry",
            "its key is not a sha256 hex string",
        ));
    }
    let keys = keys_dir(store);
    let last = last_dir(store);
    for d in [&keys, &last] {
        util::ensure_dir(d).map_err(|e| StoreError::io(d, e))?;
    }
    let data = serde_json::to_vec(entry).expect("a cache entry always serialises");
    // not fsynced: an entry is written after the blobs it names are durable, and one lost or
    // left empty by a power loss is a miss (`read_entry`), never a wrong hit
    let p = keys.join(format!("{}.json", entry.key));
    write_if_changed(&p, &data, true).map_err(|e| StoreError::io(&p, e))?;
    for pointer in pointers {
        let p = last.join(pointer);
        write_if_changed(&p, entry.key.as_bytes(), false).map_err(|e| StoreError::io(&p, e))?;
    }
    Ok(())
}

/// Replaces `p` with `data` (atomically) unless it holds exactly that already: then, with
/// `touch`, only its mtime is set to now (an entry's age is the time it was last recorded).
/// A rebuild with `--no-cache` records the same entries again; a new file each time costs an
/// inode allocation and a deletion on the store's disk.
fn write_if_changed(p: &Path, data: &[u8], touch: bool) -> io::Result<()> {
    if fs::read(p).is_ok_and(|old| old == data) {
        if touch {
            fs::File::options()
                .write(true)
                .open(p)?
                .set_modified(std::time::SystemTime::now())?;
        }
        return Ok(());
    }
    util::write_replace(p, data)
}

/// Whether the layer an entry names can be used: its blob is in the store.
pub fn usable(store: &Store, entry: &CacheEntry) -> bool {
    match &entry.layer {
        None => true,
        Some(l) => Digest::parse(&l.digest)
            .map(|d| store.has_blob(&d))
            .unwrap_or(false),
    }
}

/// Every entry with the blob and layer dir it needs (for `hoist check` and collection).
pub fn needs(store: &Store) -> Result<Vec<CacheNeeds>, StoreError> {
    let dir = keys_dir(store);
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(&dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(key) = name.strip_suffix(".json") else {
            continue;
        };
        if !is_hex_key(key) {
            continue;
        }
        let Some(e) = read_entry(&ent.path()) else {
            continue;
        };
        let (blob, diff_id) = match &e.layer {
            Some(l) => (
                Digest::parse(&l.digest).ok(),
                Digest::parse(&l.diff_id).ok(),
            ),
            None => (None, None),
        };
        out.push(CacheNeeds {
            key: key.to_string(),
            blob,
            diff_id,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// Removes the entries whose layer blob is gone (`hoist prune`); returns how many.
pub fn prune_missing(store: &Store) -> Result<usize, StoreError> {
    store.writable()?;
    let mut n = 0;
    for e in needs(store)? {
        if let Some(b) = &e.blob {
            if !store.has_blob(b) {
                let p = keys_dir(store).join(format!("{}.json", e.key));
                match fs::remove_file(&p) {
                    Ok(()) => n += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(StoreError::io(&p, err)),
                }
            }
        }
    }
    Ok(n)
}

/// Removes the whole build cache: entries, pointers and `RUN --mount=type=cache` directories
/// (`hoist prune --cache`, `hoist builder prune`). Layer blobs the entries named stay until a
/// `prune` finds no image using them.
pub fn clear(store: &Store) -> Result<CacheClearReport, StoreError> {
    store.writable()?;
    let mut report = CacheClearReport {
        entries: needs(store)?.len(),
        reclaimed: 0,
    };
    for d in [
        keys_dir(store),
        last_dir(store),
        store.cache_dir().join("run-mounts"),
    ] {
        if !d.exists() {
            continue;
        }
        report.reclaimed += tree_size(&d);
        remove_tree(&d).map_err(|e| StoreError::io(&d, e))?;
    }
    Ok(report)
}

/// Limits `builder prune --filter until=… --keep-storage …` applies to the build cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheLimits {
    /// Remove what was last written longer ago than this.
    pub older_than: Option<std::time::Duration>,
    /// Then remove the oldest until the cache takes at most this many bytes.
    pub keep_bytes: Option<u64>,
}

/// One thing the cache holds: an entry file or a `RUN --mount=type=cache` directory.
struct Item {
    path: PathBuf,
    time: std::time::SystemTime,
    size: u64,
    entry: bool,
}

/// Removes the cache entries and `RUN --mount=type=cache` directories older than
/// `limits.older_than` (by the time they were last written), then the oldest ones until what is
/// left takes at most `limits.keep_bytes`. A cache mount directory a build holds locked right
/// now (`sharing=locked|private`) is kept. Layer blobs stay until a `prune` finds no image using
/// them, as with [`clear`].
pub fn prune_limited(store: &Store, limits: CacheLimits) -> Result<CacheClearReport, StoreError> {
    store.writable()?;
    let mut items = Vec::new();
    let mounts = store.cache_dir().join("run-mounts");
    for (dir, entry) in [(keys_dir(store), true), (mounts.clone(), false)] {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
            let path = ent.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let wanted = if entry {
                meta.is_file() && path.extension().is_some_and(|x| x == "json")
            } else {
                meta.is_dir()
            };
            if !wanted {
                continue;
            }
            let size = if entry { meta.len() } else { tree_size(&path) };
            let time = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            items.push(Item {
                path,
                time,
                size,
                entry,
            });
        }
    }
    // oldest first
    items.sort_by(|a, b| a.time.cmp(&b.time).then(a.path.cmp(&b.path)));
    let now = std::time::SystemTime::now();
    let mut total: u64 = items.iter().map(|i| i.size).sum();
    let mut report = CacheClearReport::default();
    for item in &items {
        let too_old = limits
            .older_than
            .is_some_and(|d| now.duration_since(item.time).is_ok_and(|age| age > d));
        let too_big = limits.keep_bytes.is_some_and(|k| total > k);
        if !too_old && !too_big {
            continue;
        }
        if item.entry {
            match fs::remove_file(&item.path) {
                Ok(()) => report.entries += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io(&item.path, e)),
            }
        } else {
            // a build using the directory holds its lock: keep it then
            let name = item.path.file_name().unwrap_or_default().to_string_lossy();
            let lock_path = mounts.join(format!("{name}.lock"));
            let Some(_lock) = util::FileLock::try_exclusive(&lock_path)
                .map_err(|e| StoreError::io(&lock_path, e))?
            else {
                continue;
            };
            // out of sight in one rename, then deleted: never half there
            let scratch = store.tmp_dir()?;
            let aside = scratch.path().join("mount");
            fs::rename(&item.path, &aside).map_err(|e| StoreError::io(&item.path, e))?;
            let _ = fs::remove_file(&lock_path);
            if let Err(e) = remove_tree(&aside) {
                log::debug!("cannot remove `{}`: {e} (swept later)", aside.display());
            }
        }
        total -= item.size;
        report.reclaimed += item.size;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, layer: Option<CachedLayer>) -> CacheEntry {
        CacheEntry {
            key: key.to_string(),
            parts: vec![("instruction".to_string(), "RUN true".to_string())],
            layer,
            config: "{}".to_string(),
        }
    }

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    #[test]
    fn record_then_lookup_and_closest_are_one_read_each() {
        let d = tempfile::tempdir().expect("tmp");
        let store = Store::open(d.path()).expect("store");
        assert_eq!(lookup(&store, &hex('a')), None);
        let e = entry(&hex('a'), None);
        record(&store, &e, &[&hex('b')]).expect("record");
        assert_eq!(lookup(&store, &hex('a')), Some(e.clone()));
        assert_eq!(closest(&store, &hex('b')), Some(e));
        // keys that are not sha256 hex never become paths
        assert_eq!(lookup(&store, "../../index"), None);
        assert!(record(&store, &entry("x/../y", None), &[&hex('b')]).is_err());
    }

    #[test]
    fn an_entry_whose_blob_is_gone_is_unusable_and_pruned() {
        let d = tempfile::tempdir().expect("tmp");
        let store = Store::open(d.path()).expect("store");
        let (digest, size) = store.write_blob(&mut &b"layer"[..]).expect("blob");
        let layer = |digest: &Digest| CachedLayer {
            digest: digest.to_string(),
            diff_id: digest.to_string(),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
        };
        let here = entry(&hex('a'), Some(layer(&digest)));
        let gone = entry(&hex('c'), Some(layer(&Digest::of_bytes(b"other"))));
        record(&store, &here, &[&hex('b')]).expect("record");
        record(&store, &gone, &[&hex('d')]).expect("record");
        assert!(usable(&store, &here));
        assert!(!usable(&store, &gone));
        let listed = needs(&store).expect("needs");
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].blob.as_ref(), Some(&digest));
        assert_eq!(prune_missing(&store).expect("prune"), 1);
        assert_eq!(lookup(&store, &hex('c')), None);
        assert!(lookup(&store, &hex('a')).is_some());
    }

    #[test]
    fn an_unreadable_entry_is_a_miss_and_clear_removes_everything() {
        let d = tempfile::tempdir().expect("tmp");
        let store = Store::open(d.path()).expect("store");
        record(&store, &entry(&hex('a'), None), &[&hex('b')]).expect("record");
        fs::write(keys_dir(&store).join(format!("{}.json", hex('a'))), "{torn").expect("write");
        assert_eq!(lookup(&store, &hex('a')), None);
        // what a power loss can leave (entries are not fsynced): empty entry and pointer
        fs::write(keys_dir(&store).join(format!("{}.json", hex('a'))), "").expect("write");
        fs::write(last_dir(&store).join(hex('b')), "").expect("write");
        assert_eq!(lookup(&store, &hex('a')), None);
        assert_eq!(closest(&store, &hex('b')), None);
        let mounts = store.cache_dir().join("run-mounts/x");
        fs::create_dir_all(&mounts).expect("mkdir");
        fs::write(mounts.join("f"), "12345").expect("write");
        let r = clear(&store).expect("clear");
        assert!(r.reclaimed >= 5);
        assert!(!keys_dir(&store).exists());
        assert!(!store.cache_dir().join("run-mounts").exists());
        assert!(store.cache_dir().is_dir());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn set_age(p: &std::path::Path, secs_ago: u64) {
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
        fs::File::options()
            .write(true)
            .open(p)
            .or_else(|_| fs::File::open(p))
            .expect("open")
            .set_modified(t)
            .expect("set mtime");
    }

    fn entry(key: &str) -> CacheEntry {
        CacheEntry {
            key: key.to_string(),
            parts: vec![("instruction".into(), "RUN true".into())],
            layer: None,
            config: "{}".into(),
        }
    }

    #[test]
    fn until_removes_old_entries_and_keep_storage_the_oldest_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path()).expect("open");
        let keys: Vec<String> = ["a", "b", "c"].iter().map(|c| c.repeat(64)).collect();
        for k in &keys {
            record(&store, &entry(k), &[]).expect("record");
        }
        let path = |k: &str| keys_dir(&store).join(format!("{k}.json"));
        set_age(&path(&keys[0]), 3 * 3600);
        set_age(&path(&keys[1]), 2 * 3600);
        let mounts = store.cache_dir().join("run-mounts");
        fs::create_dir_all(mounts.join("m1")).expect("mkdir");
        fs::write(mounts.join("m1/data"), vec![0u8; 10_000]).expect("write");
        set_age(&mounts.join("m1"), 60);
        // older than 150 minutes: only a
        let r = prune_limited(
            &store,
            CacheLimits {
                older_than: Some(std::time::Duration::from_secs(150 * 60)),
                keep_bytes: None,
            },
        )
        .expect("prune");
        assert_eq!(r.entries, 1);
        assert!(lookup(&store, &keys[0]).is_none());
        assert!(lookup(&store, &keys[1]).is_some());
        // at most 20 kB: the 10 kB mount fits, nothing goes
        let r = prune_limited(
            &store,
            CacheLimits {
                older_than: None,
                keep_bytes: Some(20_000),
            },
        )
        .expect("prune");
        assert_eq!(r, CacheClearReport::default());
        // at most 10 kB: the oldest (b) goes first, then the mount, and c fits
        let r = prune_limited(
            &store,
            CacheLimits {
                older_than: None,
                keep_bytes: Some(1_000),
            },
        )
        .expect("prune");
        assert_eq!(r.entries, 1);
        assert!(lookup(&store, &keys[1]).is_none());
        assert!(!mounts.join("m1").exists());
        assert!(lookup(&store, &keys[2]).is_some());
    }
}
