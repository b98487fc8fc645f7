//! `hoist build --cache-to REF` / `--cache-from REF`: the build cache shared through a registry.
//!
//! One cache ref is one OCI image manifest. Its config blob (media type
//! [`TABLE_MEDIA_TYPE`]) is the table of cache entries, key → (layer, image config after the
//! step), sorted by key so that the same cache gives the same bytes; its layers are every
//! layer blob the entries name, as the store holds them (so a hit reproduces the exact image
//! that was built, like BuildKit's `mode=max`). A build that imports a ref fetches the manifest
//! and the table once (two requests), then looks keys up in memory; a layer is fetched only
//! for a hit the build uses, and it is verified against its digest while it streams, before
//! the store keeps it.
//!
//! This is glue between the store (`store::cache`) and the registry client, as pull's
//! [`super::pull::Puller`] is: the registry room never sees the store. The entries' key parts
//! (build-arg and env values among them) are not exported: only keys, layers and configs leave
//! the machine.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::OnceLock;

use anyhow::{bail, Context as _};
use oci_spec::image::ImageManifest;
use serde::{Deserialize, Serialize};

use super::pull::RegistryArgs;
use crate::image::{Digest, ImageError, ImageSource, Reference};
use crate::registry::{self, Registries, RegistryError, Repo, VerifyingReader};
use crate::store::cache::{self as store_cache, CacheEntry, CachedLayer};
use crate::store::Store;

/// The media type of the cache table (the manifest's config blob).
pub const TABLE_MEDIA_TYPE: &str = "application/vnd.hoist.build-cache.table.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A table larger than this is refused (it is read into memory).
const MAX_TABLE: u64 = 64 << 20;
/// Blobs uploaded at the same time on export.
const PUSH_JOBS: usize = 3;

/// What `--cache-to` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every step of every stage the build ran (the default).
    Max,
    /// Only the steps of the target stage.
    Min,
}

/// One `--cache-to` / `--cache-from` value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub reference: Reference,
    pub mode: Mode,
}

/// Parses `REF` or docker's `type=registry,ref=REF[,mode=min|max]` (`mode`, and BuildKit's
/// `image-manifest=true` / `oci-mediatype=true`, which hoist's format always is, only for
/// `--cache-to`). Any other type or option is an error naming it.
pub fn parse_spec(flag: &str, value: &str, export: bool) -> anyhow::Result<CacheSpec> {
    let mut reference = None;
    let mut mode = Mode::Max;
    if !value.contains('=') {
        reference = Some(value.to_string());
    } else {
        let mut fields = Vec::new();
        for field in value.split(',') {
            let Some((k, v)) = field.split_once('=') else {
                bail!("`{flag} {value}`: `{field}` is not KEY=VALUE");
            };
            fields.push((k, v));
        }
        // the type first: another type's options are not worth naming one by one
        match fields.iter().find(|(k, _)| *k == "type").map(|(_, v)| *v) {
            Some("registry") => {}
            Some(t) => bail!(
                "`{flag} {value}`: cache type `{t}` is not supported: hoist shares build cache only through a registry (`type=registry`)"
            ),
            None => bail!("`{flag} {value}`: `type=registry` is missing"),
        }
        for (k, v) in fields {
            match (k, v) {
                ("type", _) => {}
                ("ref", r) => reference = Some(r.to_string()),
                ("mode", "max") if export => mode = Mode::Max,
                ("mode", "min") if export => mode = Mode::Min,
                ("mode", m) if export => {
                    bail!("`{flag} {value}`: unknown mode `{m}`: use `min` or `max`")
                }
                // BuildKit's switches for what hoist always writes: an OCI image manifest
                ("image-manifest" | "oci-mediatype", "true") if export => {}
                ("image-manifest" | "oci-mediatype", _) if export => bail!(
                    "`{flag} {value}`: `{k}`: hoist always writes the cache as an OCI image manifest (only `{k}=true`)"
                ),
                (other, _) => bail!(
                    "`{flag} {value}`: option `{other}` is not supported (hoist takes `type=registry`, `ref=`{})",
                    if export {
                        ", `mode=`, `image-manifest=true` and `oci-mediatype=true`"
                    } else {
                        ""
                    }
                ),
            }
        }
    }
    let Some(text) = reference.filter(|r| !r.is_empty()) else {
        bail!("`{flag} {value}`: `ref=` is missing (the cache's place in a registry)");
    };
    let text = text.strip_prefix("docker://").unwrap_or(&text);
    let reference = Reference::parse(text)
        .with_context(|| format!("`{flag} {value}`: `{text}` is not a valid reference"))?;
    if export && reference.digest().is_some() {
        bail!("`{flag} {value}`: a cache is exported under a tag, not a digest");
    }
    Ok(CacheSpec { reference, mode })
}

/// The table: what one cache ref holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    /// Entries by key (a map, so the same cache serialises to the same bytes).
    entries: BTreeMap<String, TableEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    layer: Option<CachedLayer>,
    config: String,
}

/// `--cache-from`: the refs to look keys up in, read on the first lookup.
#[derive(Debug)]
pub struct RegistryCache {
    specs: Vec<CacheSpec>,
    options: registry::Options,
    quiet: bool,
    loaded: OnceLock<Vec<Loaded>>,
}

/// One imported ref: where it lives and its table.
#[derive(Debug)]
struct Loaded {
    repo: Repo,
    name: String,
    table: Table,
    /// Layer sizes by blob digest, from the manifest.
    sizes: HashMap<String, u64>,
}

impl RegistryCache {
    pub fn new(specs: Vec<CacheSpec>, args: &RegistryArgs, quiet: bool) -> anyhow::Result<Self> {
        Ok(RegistryCache {
            specs,
            options: args.options()?,
            quiet,
            loaded: OnceLock::new(),
        })
    }

    fn loaded(&self, tell: &mut dyn FnMut(bool, &str)) -> &[Loaded] {
        self.loaded.get_or_init(|| {
            let regs = match Registries::new(self.options.clone()) {
                Ok(r) => r,
                Err(e) => {
                    tell(true, &format!("build cache: {e}; building without it"));
                    return Vec::new();
                }
            };
            let mut out = Vec::new();
            for spec in &self.specs {
                match load(&regs, &spec.reference) {
                    Ok(l) => {
                        if !self.quiet {
                            tell(
                                false,
                                &format!(
                                    "importing build cache from {} ({} entries)",
                                    spec.reference,
                                    l.table.entries.len()
                                ),
                            );
                        }
                        out.push(l)
                    }
                    // docker's behaviour: a cache that cannot be read is a warning, not a failure
                    Err(e) => tell(
                        true,
                        &format!(
                            "cannot import build cache `{}`: {e:#}; building without it",
                            spec.reference
                        ),
                    ),
                }
            }
            out
        })
    }
}

/// Fetches the manifest and the table of one cache ref.
fn load(regs: &Registries, reference: &Reference) -> anyhow::Result<Loaded> {
    let repo = regs
        .pull_sources(reference)?
        .pop()
        .ok_or_else(|| RegistryError::Blocked(reference.domain().to_string()))?;
    let tag = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let fetched = repo.client.get_manifest(&repo.path, &tag)?;
    let manifest: ImageManifest = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| anyhow::anyhow!("its manifest is not an image manifest: {e}"))?;
    let config = manifest.config();
    if config.media_type().to_string() != TABLE_MEDIA_TYPE {
        bail!(
            "it is not a hoist build cache (its config is `{}`, not `{TABLE_MEDIA_TYPE}`)",
            config.media_type()
        );
    }
    if config.size() > MAX_TABLE {
        bail!("its cache table is larger than 64 MiB");
    }
    let digest = Digest::from_oci(config.digest())?;
    let r = repo.client.get_blob(&repo.path, &digest)?;
    let mut bytes = Vec::new();
    VerifyingReader::new(r, digest, Some(config.size()), repo.client.host())
        .take(MAX_TABLE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let table: Table =
        serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("invalid cache table: {e}"))?;
    let sizes = manifest
        .layers()
        .iter()
        .map(|l| (l.digest().to_string(), l.size()))
        .collect();
    Ok(Loaded {
        name: reference.to_string(),
        repo,
        table,
        sizes,
    })
}

impl crate::exec::RemoteCache for RegistryCache {
    fn lookup(
        &self,
        store: &Store,
        key: &str,
        tell: &mut dyn FnMut(bool, &str),
    ) -> Result<Option<CacheEntry>, String> {
        for l in self.loaded(tell) {
            let Some(e) = l.table.entries.get(key) else {
                continue;
            };
            if let Some(layer) = &e.layer {
                fetch_layer(store, l, layer).map_err(|e| format!("{e:#}"))?;
            }
            return Ok(Some(CacheEntry {
                key: key.to_string(),
                parts: Vec::new(),
                layer: e.layer.clone(),
                config: e.config.clone(),
            }));
        }
        Ok(None)
    }
}

/// Makes a layer of an imported cache available in the store: fetched unless the store has
/// it, verified (digest and size) while it streams; nothing is kept of a blob that fails.
fn fetch_layer(store: &Store, l: &Loaded, layer: &CachedLayer) -> anyhow::Result<()> {
    let digest = Digest::parse(&layer.digest)?;
    let bad = |why: String| anyhow::anyhow!("build cache `{}`: layer `{digest}` {why}", l.name);
    // what the table says goes into the image being built: it must be what the blob is
    let Some((_, compression)) = LAYER_TYPES.iter().find(|(t, _)| *t == layer.media_type) else {
        return Err(bad(format!(
            "has media type `{}`, not a layer type",
            layer.media_type
        )));
    };
    let Some(size) = l.sizes.get(&layer.digest) else {
        return Err(bad("is in its table but not in its manifest".to_string()));
    };
    if *size != layer.size {
        return Err(bad(format!(
            "has {} bytes in its manifest and {} in its table",
            size, layer.size
        )));
    }
    if !store.has_blob(&digest) {
        let r = l.repo.client.get_blob(&l.repo.path, &digest)?;
        let mut r = VerifyingReader::new(r, digest.clone(), Some(*size), l.repo.client.host());
        store
            .write_blob_expect(&mut r, &digest)
            .map_err(|e| match e {
                crate::store::StoreError::Io { error, .. }
                    if error.kind() == std::io::ErrorKind::InvalidData =>
                {
                    anyhow::anyhow!("{error}")
                }
                other => other.into(),
            })
            .with_context(|| format!("build cache `{}`", l.name))?;
    }
    let mut head = Vec::with_capacity(6);
    store
        .open_blob(&digest)?
        .take(6)
        .read_to_end(&mut head)
        .with_context(|| format!("cannot read blob `{digest}`"))?;
    let is = crate::layer::detect_compression(&head);
    if is != *compression {
        return Err(bad(format!(
            "is {} data, but its media type says {}",
            is.name(),
            compression.name()
        )));
    }
    Ok(())
}

/// The layer media types a cache entry may name, with the compression each one means.
const LAYER_TYPES: [(&str, crate::layer::Compression); 5] = [
    (
        "application/vnd.oci.image.layer.v1.tar",
        crate::layer::Compression::None,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        crate::layer::Compression::Gzip,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+zstd",
        crate::layer::Compression::Zstd,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar",
        crate::layer::Compression::None,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        crate::layer::Compression::Gzip,
    ),
];

/// `--cache-to`: writes the entries of `keys` (those the store has, with their layers) as one
/// cache manifest under `spec`'s tag. Returns the manifest digest and the number of entries.
pub fn export(
    store: &Store,
    spec: &CacheSpec,
    keys: &[(String, bool)],
    args: &RegistryArgs,
) -> anyhow::Result<(Digest, usize)> {
    let mut table = Table::default();
    for (key, in_target) in keys {
        if spec.mode == Mode::Min && !in_target {
            continue;
        }
        let Some(e) = store_cache::lookup(store, key) else {
            continue;
        };
        if !store_cache::usable(store, &e) {
            continue;
        }
        table.entries.insert(
            key.clone(),
            TableEntry {
                layer: e.layer,
                config: e.config,
            },
        );
    }
    let table_bytes = serde_json::to_vec(&table).context("cannot write the cache table")?;
    let table_digest = Digest::of_bytes(&table_bytes);
    let mut layers: BTreeMap<String, &CachedLayer> = BTreeMap::new();
    for e in table.entries.values() {
        if let Some(l) = &e.layer {
            layers.entry(l.digest.clone()).or_insert(l);
        }
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": TABLE_MEDIA_TYPE,
            "digest": table_digest.to_string(),
            "size": table_bytes.len(),
        },
        "layers": layers.values().map(|l| serde_json::json!({
            "mediaType": l.media_type,
            "digest": l.digest,
            "size": l.size,
        })).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest).context("cannot write the manifest")?;
    let parsed: ImageManifest =
        serde_json::from_slice(&manifest_bytes).context("the cache manifest does not read back")?;
    let src = CacheImage {
        store,
        manifest_bytes,
        manifest: parsed,
        table_bytes,
        table_digest,
    };
    let regs = args.session()?;
    let target = regs.push_target(&spec.reference)?;
    let opts = registry::push::PushOptions {
        jobs: PUSH_JOBS,
        ..Default::default()
    };
    let digest = registry::push::push(&src, &target, spec.reference.tag(), &opts)
        .with_context(|| format!("cannot export the build cache to `{}`", spec.reference))?;
    Ok((digest, table.entries.len()))
}

/// The cache manifest as an [`ImageSource`] for the pusher: the table from memory, layers from
/// the store.
struct CacheImage<'a> {
    store: &'a Store,
    manifest_bytes: Vec<u8>,
    manifest: ImageManifest,
    table_bytes: Vec<u8>,
    table_digest: Digest,
}

impl ImageSource for CacheImage<'_> {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        Ok((self.manifest_bytes.clone(), self.manifest.clone()))
    }

    fn config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.table_bytes.clone())
    }

    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        if digest == &self.table_digest {
            return Ok(Box::new(&self.table_bytes[..]));
        }
        // the build that made these layers holds the store's collection lock still
        let f = self
            .store
            .open_blob(digest)
            .map_err(|e| ImageError::Io(std::io::Error::other(e.to_string())))?;
        Ok(Box::new(std::io::BufReader::with_capacity(256 * 1024, f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_plain_forms_parse_and_others_are_refused() {
        let plain = parse_spec("--cache-from", "127.0.0.1:5000/c:app", false).expect("plain");
        assert_eq!(plain.reference.to_string(), "127.0.0.1:5000/c:app");
        let d = parse_spec(
            "--cache-to",
            "type=registry,ref=127.0.0.1:5000/c:app,mode=min",
            true,
        )
        .expect("docker form");
        assert_eq!(d.mode, Mode::Min);
        assert_eq!(
            parse_spec("--cache-to", "type=registry,ref=r.io/c", true)
                .expect("default mode")
                .mode,
            Mode::Max
        );
        let err = |flag: &str, v: &str, export: bool| {
            format!("{:#}", parse_spec(flag, v, export).expect_err(v))
        };
        assert!(err("--cache-to", "type=local,dest=/tmp/c", true).contains("cache type `local`"));
        assert!(err("--cache-from", "type=gha", false).contains("`gha`"));
        assert!(err(
            "--cache-to",
            "type=registry,ref=r.io/c,compression=zstd",
            true
        )
        .contains("option `compression`"));
        assert!(
            err("--cache-from", "type=registry,ref=r.io/c,mode=max", false)
                .contains("option `mode`")
        );
        assert!(err("--cache-to", "type=registry,ref=r.io/c,mode=all", true).contains("`all`"));
        assert!(parse_spec(
            "--cache-to",
            "type=registry,ref=r.io/c,mode=max,image-manifest=true,oci-mediatype=true",
            true
        )
        .is_ok());
        assert!(err(
            "--cache-to",
            "type=registry,ref=r.io/c,oci-mediatype=false",
            true
        )
        .contains("`oci-mediatype`"));
        assert!(err("--cache-to", "ref=r.io/c", true).contains("`type=registry` is missing"));
        assert!(err("--cache-to", "type=registry", true).contains("`ref=` is missing"));
        assert!(err("--cache-to", "Not A Ref", true).contains("not a valid reference"));
    }

    #[test]
    fn the_table_serialises_in_key_order() {
        let mut t = Table::default();
        for k in ["b", "a", "c"] {
            t.entries.insert(
                k.to_string(),
                TableEntry {
                    layer: None,
                    config: "{}".to_string(),
                },
            );
        }
        let s = String::from_utf8(serde_json::to_vec(&t).expect("json")).expect("utf-8");
        assert_eq!(
            s,
            r#"{"entries":{"a":{"config":"{}"},"b":{"config":"{}"},"c":{"config":"{}"}}}"#
        );
    }
}
