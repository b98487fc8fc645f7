//! `index.json`: reading image records from it, resolving what a user typed, and changing names
//! (always read-modify-write under `index.lock`, replaced by an atomic rename).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;

use chrono::{DateTime, Utc};
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, PlatformBuilder,
};

use super::{ImageRecord, Store, StoreError, REF_NAME_ANNOTATION};
use crate::image::{is_full_id, is_hex, Digest, Reference};
use crate::util;

pub(super) const EMPTY_INDEX: &str =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}";

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn is_image_config(m: &MediaType) -> bool {
    match m {
        MediaType::ImageConfig => true,
        MediaType::Other(m) => m == DOCKER_CONFIG,
        _ => false,
    }
}

/// Reads the current `index.json` snapshot.
pub(super) fn read_index(store: &Store) -> Result<ImageIndex, StoreError> {
    let p = store.root.join("index.json");
    let bytes = fs::read(&p).map_err(|e| StoreError::io(&p, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StoreError::invalid(format!("`{}`", p.display()), e))
}

/// Whether a descriptor in `index.json` points at a nested index (which hoist keeps, but does
/// not list as an image).
pub(super) fn is_index_type(m: &MediaType) -> bool {
    matches!(m, MediaType::ImageIndex) || m.to_string() == DOCKER_LIST
}

/// The name a descriptor carries, when it has a valid one.
pub(super) fn name_of(d: &Descriptor) -> Option<Reference> {
    let raw = d.annotations().as_ref()?.get(REF_NAME_ANNOTATION)?;
    match Reference::parse_local(raw) {
        Ok(r) if r.digest().is_none() => Some(r),
        _ => {
            log::debug!("index entry name `{raw}` is not an image name; ignored");
            None
        }
    }
}

fn has_name_annotation(d: &Descriptor) -> bool {
    d.annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(REF_NAME_ANNOTATION))
}

/// Builds every image record from one `index.json` snapshot, in index order.
///
/// With `lenient`, an entry whose manifest or config blob is missing or unreadable is skipped
/// with a warning instead of failing the whole listing.
pub(super) fn load_records(store: &Store, lenient: bool) -> Result<Vec<ImageRecord>, StoreError> {
    let index = read_index(store)?;
    let mut order: Vec<Digest> = Vec::new();
    let mut groups: HashMap<Digest, (Descriptor, Vec<Reference>)> = HashMap::new();
    for desc in index.manifests() {
        if is_index_type(desc.media_type()) {
            log::debug!("skipping nested index `{}` in index.json", desc.digest());
            continue;
        }
        let Ok(d) = Digest::from_oci(desc.digest()) else {
            log::warn!(
                "skipping index.json entry with unsupported digest `{}`",
                desc.digest()
            );
            continue;
        };
        let entry = groups.entry(d.clone()).or_insert_with(|| {
            order.push(d);
            (desc.clone(), Vec::new())
        });
        if let Some(n) = name_of(desc) {
            if !entry.1.contains(&n) {
                entry.1.push(n);
            }
        }
    }
    let mut out = Vec::with_capacity(order.len());
    for d in order {
        let (desc, names) = groups.remove(&d).expect("every ordered digest has a group");
        match load_record(store, &d, &desc, names) {
            Ok(r) => out.push(r),
            // a blob may have vanished under a concurrent prune: the caller reads the index again
            Err(e @ StoreError::MissingBlob(_)) if !lenient => return Err(e),
            // an artifact or a damaged entry written by another tool must not hide the images
            Err(e) => log::warn!("skipping index entry `{d}`: {e}"),
        }
    }
    Ok(out)
}

fn load_record(
    store: &Store,
    manifest_digest: &Digest,
    desc: &Descriptor,
    names: Vec<Reference>,
) -> Result<ImageRecord, StoreError> {
    let bytes = store.read_blob(manifest_digest)?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::invalid(format!("manifest `{manifest_digest}`"), e))?;
    if !is_image_config(manifest.config().media_type()) {
        return Err(StoreError::invalid(
            format!("manifest `{manifest_digest}`"),
            format!(
                "config media type `{}` is not an image config (an artifact?)",
                manifest.config().media_type()
            ),
        ));
    }
    let id = Digest::from_oci(manifest.config().digest())?;
    let cfg_bytes = store.read_blob(&id)?;
    let config: ImageConfiguration = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| StoreError::invalid(format!("image config `{id}`"), e))?;
    let created = config.created().as_deref().and_then(parse_time);
    let layers: u64 = manifest.layers().iter().map(|l| l.size()).sum();
    Ok(ImageRecord {
        id,
        manifest_digest: manifest_digest.clone(),
        manifest_size: bytes.len() as u64,
        manifest_media_type: desc.media_type().to_string(),
        size: bytes.len() as u64 + cfg_bytes.len() as u64 + layers,
        config_size: cfg_bytes.len() as u64,
        manifest,
        config,
        names,
        created,
    })
}

/// Parses an RFC 3339 time as image configs carry it.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How a user's word matched an image.
pub(super) enum Matched {
    /// By this name.
    Name(Reference),
    /// By ID, ID prefix or digest.
    Id,
}

/// [`super::Store::resolve`] over a list of records.
pub(super) fn resolve(records: &[ImageRecord], s: &str) -> Result<ImageRecord, StoreError> {
    resolve_how(records, s).map(|(r, _)| r)
}

pub(super) fn resolve_how(
    records: &[ImageRecord],
    s: &str,
) -> Result<(ImageRecord, Matched), StoreError> {
    let by_id = |r: ImageRecord| (r, Matched::Id);
    if let Some(hex) = s.strip_prefix("sha256:") {
        if is_full_id(hex) {
            let d = Digest::parse(s)?;
            return records
                .iter()
                .find(|r| r.id == d)
                .or_else(|| records.iter().find(|r| r.manifest_digest == d))
                .cloned()
                .map(by_id)
                .ok_or_else(|| StoreError::NotFound(s.to_owned()));
        }
        if is_hex(hex) {
            return by_prefix(records, hex, s).map(by_id);
        }
        return Err(Digest::parse(s)
            .err()
            .map_or_else(|| StoreError::NotFound(s.to_owned()), StoreError::from));
    }
    if is_full_id(s) {
        return records
            .iter()
            .find(|r| r.id.hex() == s)
            .cloned()
            .map(by_id)
            .ok_or_else(|| StoreError::NotFound(s.to_owned()));
    }
    let candidates = Reference::candidates(s)?;
    for c in &candidates {
        if let Some(d) = c.digest() {
            if let Some(r) = records.iter().find(|r| &r.manifest_digest == d) {
                return Ok(by_id(r.clone()));
            }
        } else if let Some(r) = records.iter().find(|r| r.names.contains(c)) {
            return Ok((r.clone(), Matched::Name(c.clone())));
        }
    }
    if is_hex(s) {
        return by_prefix(records, s, s).map(by_id);
    }
    Err(StoreError::NotFound(s.to_owned()))
}

fn by_prefix(records: &[ImageRecord], hex: &str, typed: &str) -> Result<ImageRecord, StoreError> {
    let mut found: BTreeMap<&Digest, &ImageRecord> = BTreeMap::new();
    for r in records {
        if r.id.hex().starts_with(hex) {
            found.entry(&r.id).or_insert(r);
        }
    }
    match found.len() {
        0 => Err(StoreError::NotFound(typed.to_owned())),
        1 => Ok(found.into_values().next().expect("one entry").clone()),
        _ => Err(StoreError::Ambiguous {
            prefix: typed.to_owned(),
            candidates: found.keys().map(|d| d.short().to_owned()).collect(),
        }),
    }
}

/// A manifest checked against the store, ready to be committed.
pub(super) struct CheckedManifest {
    pub manifest_digest: Digest,
    pub manifest_size: u64,
    pub media_type: MediaType,
    pub config_digest: Digest,
    pub config: ImageConfiguration,
}

/// Refuses manifests hoist does not store as images: indexes, artifacts, other schemas.
pub(super) fn check_manifest_kind(
    manifest: &ImageManifest,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let what = || format!("manifest `{}`", Digest::of_bytes(bytes));
    if manifest.schema_version() != 2 {
        return Err(StoreError::invalid(
            what(),
            format!("schemaVersion {} (expected 2)", manifest.schema_version()),
        ));
    }
    match manifest.media_type() {
        None | Some(MediaType::ImageManifest) => {}
        Some(MediaType::Other(m)) if m == DOCKER_MANIFEST => {}
        Some(m) => {
            return Err(StoreError::invalid(
                what(),
                format!("media type `{m}` is not a single-platform image manifest"),
            ))
        }
    }
    if !is_image_config(manifest.config().media_type()) {
        return Err(StoreError::invalid(
            what(),
            format!(
                "config media type `{}` is not an image config",
                manifest.config().media_type()
            ),
        ));
    }
    Ok(())
}

/// Parses a manifest and checks that its config and layers are in the store and agree.
pub(super) fn check_manifest(store: &Store, bytes: &[u8]) -> Result<CheckedManifest, StoreError> {
    let manifest_digest = Digest::of_bytes(bytes);
    let manifest: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::invalid(format!("manifest `{manifest_digest}`"), e))?;
    check_manifest_kind(&manifest, bytes)?;
    let config_digest = Digest::from_oci(manifest.config().digest())?;
    let cfg_bytes = store.read_blob(&config_digest)?;
    let config: ImageConfiguration = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| StoreError::invalid(format!("image config `{config_digest}`"), e))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(StoreError::invalid(
            format!("image config `{config_digest}`"),
            format!(
                "{} diff_ids for {} layers in manifest `{manifest_digest}`",
                diff_ids.len(),
                manifest.layers().len()
            ),
        ));
    }
    for d in diff_ids {
        Digest::parse(d)?;
    }
    for l in manifest.layers() {
        let d = Digest::from_oci(l.digest())?;
        if !store.has_blob(&d) {
            return Err(StoreError::MissingBlob(d));
        }
    }
    Ok(CheckedManifest {
        manifest_digest,
        manifest_size: bytes.len() as u64,
        media_type: manifest
            .media_type()
            .clone()
            .unwrap_or(MediaType::ImageManifest),
        config_digest,
        config,
    })
}

/// Read-modify-write of `index.json`'s manifest list under `index.lock`.
pub(super) fn update_index<T>(
    store: &Store,
    f: impl FnOnce(&mut Vec<Descriptor>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let _lock = store.index_lock()?;
    let mut index = read_index(store)?;
    let mut manifests = index.manifests().clone();
    let out = f(&mut manifests)?;
    if &manifests != index.manifests() {
        index.set_manifests(manifests);
        write_index(store, &index)?;
    }
    Ok(out)
}

fn write_index(store: &Store, index: &ImageIndex) -> Result<(), StoreError> {
    let p = store.root.join("index.json");
    let text = serde_json::to_vec(index).map_err(|e| StoreError::invalid("index.json", e))?;
    util::write_atomic_mode(&p, &text, super::PUBLIC_FILE_MODE).map_err(|e| StoreError::io(&p, e))
}

/// Removes `tmp` files an interrupted `write_atomic` of `index.json` left in the root.
pub(super) fn sweep_index_leftovers(store: &Store) {
    let Ok(entries) = fs::read_dir(&store.root) else {
        return;
    };
    let leftovers: Vec<_> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.path())
        .collect();
    if leftovers.is_empty() {
        return;
    }
    // a live writer holds the lock while its temp file exists
    if let Ok(_lock) = store.index_lock() {
        for p in leftovers {
            match fs::remove_file(&p) {
                Ok(()) => log::debug!("swept leftover `{}`", p.display()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => log::debug!("cannot remove `{}`: {e}", p.display()),
            }
        }
    }
}

fn manifest_descriptor(
    checked: &CheckedManifest,
    name: Option<&Reference>,
) -> Result<Descriptor, StoreError> {
    let mut d = Descriptor::new(
        checked.media_type.clone(),
        checked.manifest_size,
        checked.manifest_digest.to_oci(),
    );
    let platform = PlatformBuilder::default()
        .os(checked.config.os().clone())
        .architecture(checked.config.architecture().clone())
        .build()
        .map_err(|e| StoreError::invalid("platform", e))?;
    d.set_platform(Some(platform));
    set_name(&mut d, name);
    Ok(d)
}

fn set_name(d: &mut Descriptor, name: Option<&Reference>) {
    let mut ann = d.annotations().clone().unwrap_or_default();
    match name {
        Some(n) => {
            ann.insert(REF_NAME_ANNOTATION.to_owned(), n.to_string());
        }
        None => {
            ann.remove(REF_NAME_ANNOTATION);
        }
    }
    d.set_annotations(if ann.is_empty() { None } else { Some(ann) });
}

/// The config digest of a manifest in the store (`None` for what is not an image manifest).
fn config_of(store: &Store, manifest: &Digest) -> Option<Digest> {
    let bytes = store.read_blob(manifest).ok()?;
    let m: ImageManifest = serde_json::from_slice(&bytes).ok()?;
    Digest::from_oci(m.config().digest()).ok()
}

/// Adds a checked image to the index with `names`; an image with the same config already listed
/// keeps its manifest and gains the names. The decision is taken under `index.lock`, and the
/// manifest blob is written only when a new entry needs it. Returns the image ID.
pub(super) fn add_image(
    store: &Store,
    checked: &CheckedManifest,
    manifest: &[u8],
    names: &[Reference],
) -> Result<Digest, StoreError> {
    update_index(store, |descs| {
        let target = match find_by_config(
            store,
            descs,
            &checked.config_digest,
            Some(&checked.manifest_digest),
        ) {
            Some(t) => t,
            None => {
                let (digest, _) = store.write_blob(&mut &manifest[..])?;
                debug_assert_eq!(digest, checked.manifest_digest);
                descs.push(manifest_descriptor(checked, None)?);
                checked.manifest_digest.clone()
            }
        };
        add_names_in(descs, &target, names)?;
        Ok(checked.config_digest.clone())
    })
}

/// The manifest of the listed image whose config is `config` (or whose manifest is `manifest`).
fn find_by_config(
    store: &Store,
    descs: &[Descriptor],
    config: &Digest,
    manifest: Option<&Digest>,
) -> Option<Digest> {
    for d in descs {
        if is_index_type(d.media_type()) {
            continue;
        }
        let Ok(md) = Digest::from_oci(d.digest()) else {
            continue;
        };
        if Some(&md) == manifest || config_of(store, &md).as_ref() == Some(config) {
            return Some(md);
        }
    }
    None
}

/// Under `index.lock`: when an image with config `config` is listed, gives it `names` and
/// returns its manifest digest; `None` (nothing changed) when there is no such image.
pub(super) fn add_names_to_config(
    store: &Store,
    config: &Digest,
    names: &[Reference],
) -> Result<Option<Digest>, StoreError> {
    update_index(store, |descs| {
        let Some(target) = find_by_config(store, descs, config, None) else {
            return Ok(None);
        };
        add_names_in(descs, &target, names)?;
        Ok(Some(target))
    })
}

/// Under `index.lock`: resolves what the user typed in the current index and gives that image
/// `names`, so that a concurrent removal either happens first (then this fails: not known) or
/// sees the new names.
pub(super) fn tag(
    store: &Store,
    typed: &str,
    names: &[Reference],
) -> Result<ImageRecord, StoreError> {
    update_index(store, |descs| {
        let records = store.images()?;
        let image = resolve(&records, typed)?;
        add_names_in(descs, &image.manifest_digest, names)?;
        Ok(image)
    })
}

fn digest_of(d: &Descriptor) -> Option<Digest> {
    Digest::from_oci(d.digest()).ok()
}

fn add_names_in(
    descs: &mut Vec<Descriptor>,
    target: &Digest,
    names: &[Reference],
) -> Result<(), StoreError> {
    let template = descs
        .iter()
        .find(|d| digest_of(d).as_ref() == Some(target))
        .cloned()
        .ok_or_else(|| StoreError::NotFound(target.to_string()))?;
    for n in names {
        if descs
            .iter()
            .any(|d| digest_of(d).as_ref() == Some(target) && name_of(d).as_ref() == Some(n))
        {
            continue;
        }
        // take the name from whichever image has it; an image left without any entry stays
        // listed, unnamed (dangling)
        let mut losers = Vec::new();
        descs.retain(|d| {
            if name_of(d).as_ref() == Some(n) {
                losers.push(d.clone());
                false
            } else {
                true
            }
        });
        for mut l in losers {
            let ld = digest_of(&l);
            if !descs.iter().any(|d| digest_of(d) == ld) {
                set_name(&mut l, None);
                descs.push(l);
            }
        }
        // name the target's unnamed entry if it has one, else add an entry
        if let Some(d) = descs
            .iter_mut()
            .find(|d| digest_of(d).as_ref() == Some(target) && !has_name_annotation(d))
        {
            set_name(d, Some(n));
        } else {
            let mut d = template.clone();
            set_name(&mut d, Some(n));
            descs.push(d);
        }
    }
    Ok(())
}

/// Removes one name; the image stays listed unnamed if `keep_image` and that was its last name.
pub(super) fn remove_name_in(
    descs: &mut Vec<Descriptor>,
    name: &Reference,
    keep_image: bool,
) -> bool {
    let Some(pos) = descs.iter().position(|d| name_of(d).as_ref() == Some(name)) else {
        return false;
    };
    let mut removed = descs.remove(pos);
    let digest = digest_of(&removed);
    if keep_image && !descs.iter().any(|d| digest_of(d) == digest) {
        set_name(&mut removed, None);
        descs.push(removed);
    }
    true
}

/// Removes every entry of the image with manifest `target`.
pub(super) fn remove_image_in(descs: &mut Vec<Descriptor>, target: &Digest) {
    descs.retain(|d| digest_of(d).as_ref() != Some(target));
}
