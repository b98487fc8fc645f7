//! exec: runs a [`crate::plan::BuildPlan`] — FROM from the local store, `scratch` or an earlier
//! stage; RUN through the sandbox over the stage's layer dirs with a fresh upper dir; COPY/ADD
//! written into a fresh layer dir with no container; config-only steps as pure edits of the
//! image config; the commit through `layer` and `store`.
//!
//! It must not parse Dockerfile syntax (that is `dockerfile` and `plan`) nor write the store's
//! files itself (that is `store`). Follows the OCI image spec for configs and manifests and
//! `docker build` for what each step does to the image.
//!
//! A failed build leaves the store as it was: new layer blobs stay staged in this process's
//! `tmp/` and new layer dirs in a work dir under it until the image is committed; both are
//! deleted when the build fails. The one exception by design is `RUN --mount=type=cache`
//! directories, which outlive builds.
//!
//! The build cache is on by default: each step's key ([`cache`]) is looked up with one read in
//! the store's `cache/` before the step runs; a hit reuses the recorded layer and config and
//! touches no layer data. With the cache, a step's layer is installed in the store as soon as
//! the step is done (so its entry is usable by the next build, also when this one fails later);
//! the entries and those layers are what a failed build leaves, as in docker and buildah.

pub mod add;
mod cache;
pub mod commit;
pub mod config;
pub mod copy;
pub mod export;
pub mod perms;
pub mod rootfs;
mod stage;

pub(crate) use stage::{accounts, from_view};

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::context::ContextError;
use crate::image::Digest;
use crate::image::Reference;
use crate::plan::{PlanError, Platform};
use crate::store::{Store, StoreError};

/// The network RUN steps get unless a step says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    Host,
    None,
    /// The sandbox's private network (pasta): outbound access, no host loopback.
    Private,
}

/// `--output`: where the final file system goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTarget {
    /// A directory (created; must be empty or missing).
    Local(PathBuf),
    /// A tar file (`-` is not supported).
    Tar(PathBuf),
}

/// Everything one build needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub dockerfile_text: String,
    /// The Dockerfile's name in messages (`Dockerfile`, `Containerfile`, `app.Dockerfile`).
    pub dockerfile_name: String,
    /// Where it was read from (`None` for stdin); its `.dockerignore` sibling is preferred.
    pub dockerfile_path: Option<PathBuf>,
    pub context_dir: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub tags: Vec<Reference>,
    pub labels: Vec<(String, String)>,
    pub network: NetworkMode,
    /// `--timestamp` / `SOURCE_DATE_EPOCH`.
    pub timestamp: Option<i64>,
    /// `--secret id=ID,src=FILE`.
    pub secrets: BTreeMap<String, PathBuf>,
    pub outputs: Vec<ExportTarget>,
    pub platform: Option<String>,
    /// `--no-cache`: no step is looked up in the cache (new results are still recorded).
    pub no_cache: bool,
    /// `--no-cache-filter STAGE`: the steps of these stages are not looked up.
    pub no_cache_filter: Vec<String>,
    /// `--layers` (podman's switch, on by default): with `false` the cache is neither read nor
    /// written, and only the target's layers are kept.
    pub layers: bool,
    /// `--explain-cache`: every miss says which part of its key changed.
    pub explain_cache: bool,
    /// How new layer blobs are written (`--compression`, `--compression-level`).
    pub compression: LayerCompression,
    /// The media types of the image's manifest, config and layers (`--format`).
    pub format: ImageFormat,
    /// Where `FROM` and `COPY --from` images come from when the store lacks them (or when
    /// the pull policy says to look again); `None`: the local store only.
    pub images: Option<std::sync::Arc<dyn ImageProvider>>,
    /// Build cache from elsewhere (`--cache-from`), asked when the store's own cache misses.
    pub remote_cache: Option<std::sync::Arc<dyn RemoteCache>>,
}

/// The manifest format a build writes (`--format`, podman's flag). The config is the same
/// bytes in both (Docker's fields `Healthcheck`, `OnBuild`, `Shell` kept, as `docker build`
/// does); only the media types differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// OCI image manifest and config media types.
    #[default]
    Oci,
    /// Docker image manifest v2, schema 2, and Docker's config and layer media types.
    Docker,
}

/// The manifest media type a build of `format` writes.
pub fn manifest_media_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Oci => "application/vnd.oci.image.manifest.v1+json",
        ImageFormat::Docker => "application/vnd.docker.distribution.manifest.v2+json",
    }
}

/// How a build writes its layer blobs: `none` by default (the tar as it is, hashed once and
/// never compressed on the build's path; see docs/DESIGN.md), or gzip/zstd at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerCompression {
    pub compression: crate::layer::Compression,
    /// `None`: the compression's default level.
    pub level: Option<i32>,
}

impl Default for LayerCompression {
    fn default() -> Self {
        LayerCompression {
            compression: crate::layer::Compression::None,
            level: None,
        }
    }
}

/// Gives a build the images it names (the CLI's registry puller, by pull policy).
pub trait ImageProvider: Send + Sync + std::fmt::Debug {
    /// Makes `name` (as the Dockerfile wrote it) available in `store` and returns it.
    /// `present` is what the store resolves the name to now, if anything.
    fn provide(
        &self,
        store: &Store,
        name: &str,
        present: Option<crate::store::ImageRecord>,
    ) -> Result<crate::store::ImageRecord, String>;
}

/// Build cache entries kept outside the store (the CLI's registry cache of `--cache-from`).
pub trait RemoteCache: Send + Sync + std::fmt::Debug {
    /// The entry recorded for `key`, with its layer blob (if any) made available in `store`,
    /// verified against its digest. `Ok(None)`: no such entry. An error (a layer that does
    /// not match its digest) fails the step. Remarks (a cache that cannot be read, what was
    /// imported) go to `tell` as (is it a warning, text), shown with the build's progress.
    fn lookup(
        &self,
        store: &Store,
        key: &str,
        tell: &mut dyn FnMut(bool, &str),
    ) -> Result<Option<crate::store::cache::CacheEntry>, String>;
}

/// The store's image for a base or `COPY --from` name, asking the request's provider when the
/// store lacks it (or always, if the provider's pull policy says so).
pub(crate) fn resolve_base(
    store: &Store,
    req: &BuildRequest,
    name: &str,
) -> Result<crate::store::ImageRecord, String> {
    let present = match store.resolve(name) {
        Ok(r) => Some(r),
        Err(StoreError::NotFound(_)) => None,
        Err(other) => return Err(format!("image `{name}`: {other}")),
    };
    match (&req.images, present) {
        (Some(p), present) => p.provide(store, name, present),
        (None, Some(r)) => Ok(r),
        (None, None) => Err(format!(
            "image `{name}` is not in the local store, and pulling is off (`--pull=never`)"
        )),
    }
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image ID (config digest), when an image was stored.
    pub image_id: Option<Digest>,
    /// The cache keys of the steps this build recorded or reused, in the order they finished,
    /// with whether the step belongs to the target stage (for `--cache-to`).
    pub cache_keys: Vec<(String, bool)>,
}

/// A progress event, shown by the CLI's printer.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step starts: `STEP number/total: text`.
    Step {
        number: usize,
        total: usize,
        text: &'a str,
        /// The stage's name or index.
        stage: &'a str,
    },
    /// Step `number` is done (`cached`: reused from the build cache).
    StepDone {
        number: usize,
        total: usize,
        seconds: f64,
        cached: bool,
    },
    /// Why a step missed the cache (`--explain-cache`).
    CacheMiss(&'a str),
    /// Output of a RUN step, as it comes.
    Output(&'a [u8]),
    Warning(&'a str),
    /// An informational line (`COMMIT localhost/app:latest`).
    Note(&'a str),
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The Dockerfile does not parse (the front end's message names file, line and column).
    #[error("{0}")]
    Dockerfile(String),
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A step failed: `Dockerfile:12: RUN make: exit status 2`.
    #[error("{file}:{line}: {text}: {message}")]
    Step {
        file: String,
        line: usize,
        text: String,
        message: String,
    },
    #[error("build context: {0}")]
    Context(#[from] ContextError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Layer(String),
    #[error("`--output`: {0}")]
    Output(String),
    /// The image cannot be written in the asked format (`--format docker` with zstd layers).
    #[error("`--format`: {0}")]
    Format(String),
    /// A stage stopped because another one failed (that one's error is what a build reports).
    #[error("stopped because another stage failed")]
    Aborted,
}

impl ExecError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExecError {
        let what = what.into();
        move |source| ExecError::Io { what, source }
    }
}

/// This machine's platform, as [`crate::image::Platform::host`] gives it (one table of
/// architectures for the whole program): `linux/arm64/v8` on arm64, the variant docker's arm64
/// image configs carry; the built-in args drop that variant as BuildKit does
/// ([`Platform::builtin_args`]).
pub fn host_platform() -> Platform {
    let host = crate::image::Platform::host();
    Platform {
        os: host.os,
        arch: host.architecture,
        variant: host.variant,
    }
}

/// Builds the image `req` describes into `store`, reporting progress through `events`.
/// Stages that do not need each other run side by side, so `events` may interleave steps of
/// different stages (each event is whole).
pub fn build(
    store: &Store,
    req: &BuildRequest,
    events: &mut (dyn FnMut(Event<'_>) + Send),
) -> Result<Built, ExecError> {
    stage::Runner::build(store, req, events)
}
