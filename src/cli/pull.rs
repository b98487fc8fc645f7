//! `hoist pull NAME`: reads an image from a registry ([`registry::RemoteImage`]) and copies it
//! into the store ([`Store::copy_from_parallel`]): every blob is verified against its digest
//! and size while it streams, layers the store has are not fetched, up to three layers come at
//! once, and nothing becomes visible before all of them are verified (an interrupted pull
//! leaves the store as it was). Prints the image ID, as `podman pull` does.
//!
//! Also home of what `build`, `run` and `push` share: the registry flags ([`RegistryArgs`]),
//! `--pull` policies, and the [`Puller`] that gives a build the images its `FROM` lines name.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;

use super::Globals;
use crate::image::{Digest, Platform, Reference};
use crate::registry::{self, Credential, Progress, Registries, RegistryError, RemoteImage};
use crate::store::{ImageRecord, Store};

/// Layers fetched at the same time.
const PULL_JOBS: usize = 3;

/// Flags every verb that talks to a registry takes (podman's names).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Read credentials from this auth file only (default: podman's and docker's files)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Use these credentials instead of stored ones: `USERNAME:PASSWORD`
    #[arg(long, value_name = "USER:PASS")]
    pub creds: Option<String>,
    /// Require https with a verified certificate (`--tls-verify=false` allows plain http and any certificate)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// Certificates for the registry: CA `*.crt`, client `*.cert` with its `*.key`
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

impl RegistryArgs {
    /// The flags as registry options (the password of `--creds` stays inside the credential).
    pub fn options(&self) -> anyhow::Result<registry::Options> {
        let creds = match &self.creds {
            Some(c) => Some(Credential::parse_creds(c).map_err(anyhow::Error::msg)?),
            None => None,
        };
        Ok(registry::Options {
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            authfile: self.authfile.clone(),
            creds,
        })
    }

    /// A registry session with these flags and `registries.conf`.
    pub fn session(&self) -> anyhow::Result<Registries> {
        Ok(Registries::new(self.options()?)?)
    }
}

/// `--pull`: when a build or run looks in a registry (podman's policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull every time; a failed pull is an error
    Always,
    /// Pull only what the store lacks
    #[default]
    Missing,
    /// Never pull
    Never,
    /// Pull when the registry has a different image; keep the local one if the registry cannot be reached
    Newer,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image: `[REGISTRY/]NAME[:TAG|@DIGEST]` (a short name is tried on registries.conf's
    /// `unqualified-search-registries`, else on docker.io)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Choose this platform from a multi-platform image (`os/arch[/variant]`)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Print only the image ID (no progress)
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub trust: super::sign::TrustArgs,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let platform = match &args.platform {
        Some(p) => Platform::parse(p).map_err(anyhow::Error::msg)?,
        None => Platform::host(),
    };
    let puller = Puller {
        options: args.registry.options()?,
        regs: std::sync::OnceLock::new(),
        explicit_platform: args.platform.is_some(),
        platform,
        policy: PullPolicy::Always,
        quiet: args.quiet,
        trust: args.trust.clone(),
        signature_policy: std::sync::OnceLock::new(),
    };
    let store = Store::open(&globals.root)
        .with_context(|| format!("cannot open the store at `{}`", globals.root.display()))?;
    let name = args.name.strip_prefix("docker://").unwrap_or(&args.name);
    let record = puller.pull(&store, name)?;
    super::output::println(record.id.hex());
    Ok(ExitCode::SUCCESS)
}

/// Pulls images into a store, by policy: what `hoist pull`, `FROM` and `hoist run` use.
#[derive(Debug)]
pub struct Puller {
    /// The connection settings; `registries.conf` is read on the first pull only, so a build
    /// that pulls nothing does not depend on it.
    pub options: registry::Options,
    regs: std::sync::OnceLock<Registries>,
    pub platform: Platform,
    /// Whether `--platform` was given (a single-platform image for another platform is then
    /// an error, else a warning).
    pub explicit_platform: bool,
    pub policy: PullPolicy,
    /// No progress and no "Trying to pull" lines.
    pub quiet: bool,
    /// `--signature-policy`: what may be pulled (see [`super::sign`]).
    pub trust: super::sign::TrustArgs,
    /// The policy, read on the first pull (`None` inside: no policy file anywhere).
    signature_policy: std::sync::OnceLock<Option<crate::sign::Policy>>,
}

impl Puller {
    /// A puller for `build` / `run` flags.
    pub fn new(
        registry: &RegistryArgs,
        policy: PullPolicy,
        platform: Option<&str>,
        quiet: bool,
    ) -> anyhow::Result<Puller> {
        let platform_given = platform.is_some();
        let platform = match platform {
            Some(p) => Platform::parse(p).map_err(anyhow::Error::msg)?,
            None => Platform::host(),
        };
        Ok(Puller {
            options: registry.options()?,
            regs: std::sync::OnceLock::new(),
            explicit_platform: platform_given,
            platform,
            policy,
            quiet,
            trust: super::sign::TrustArgs::default(),
            signature_policy: std::sync::OnceLock::new(),
        })
    }

    /// The same puller deciding by `--signature-policy` (or the default policy files).
    pub fn with_trust(mut self, trust: &super::sign::TrustArgs) -> Puller {
        self.trust = trust.clone();
        self
    }

    fn signature_policy(&self) -> anyhow::Result<Option<&crate::sign::Policy>> {
        if let Some(p) = self.signature_policy.get() {
            return Ok(p.as_ref());
        }
        let p = super::sign::load_policy(&self.trust)?;
        Ok(self.signature_policy.get_or_init(|| p).as_ref())
    }

    /// Fetches `name` from its registry into `store` and returns the stored image.
    pub fn pull(&self, store: &Store, name: &str) -> anyhow::Result<ImageRecord> {
        let regs = self.regs()?;
        let candidates = regs.candidates(name)?;
        let mut last_err: Option<RegistryError> = None;
        let mut not_found = Vec::new();
        for candidate in &candidates {
            let sources = match regs.pull_sources(candidate) {
                Ok(s) => s,
                Err(e) => {
                    last_err = Some(e);
                    continue;
                }
            };
            for repo in sources {
                if !self.quiet {
                    eprintln!("Trying to pull {candidate}...");
                }
                let remote = match RemoteImage::open(&repo, candidate, &self.platform) {
                    Ok(r) => r,
                    Err(RegistryError::NotFound { registry, .. }) => {
                        not_found.push(format!("{registry}/{}", repo.path));
                        continue;
                    }
                    Err(e) => {
                        log::debug!("{e}");
                        last_err = Some(e);
                        continue;
                    }
                };
                if !remote.from_index() {
                    let has = remote.config_platform()?;
                    if self
                        .platform
                        .score(&has.os, &has.architecture, has.variant.as_deref())
                        .is_none()
                    {
                        let msg = format!(
                            "image `{candidate}` is for platform `{has}`, not `{}`",
                            self.platform
                        );
                        if self.explicit_platform {
                            anyhow::bail!(msg);
                        }
                        super::output::warn(&msg);
                    }
                }
                // the policy decides before a single blob is fetched: a refused image stores nothing
                if let Some(policy) = self.signature_policy()? {
                    super::sign::check_pull(policy, candidate, &remote)?;
                }
                let remote = match self.progress() {
                    Some(p) => remote.with_progress(p.clone()),
                    None => remote,
                };
                let names: Vec<Reference> = match candidate.tag() {
                    Some(_) => vec![candidate.without_digest()],
                    None => Vec::new(),
                };
                let record = store
                    .copy_from_parallel(&remote, PULL_JOBS, &names)
                    .map_err(verification_error)
                    .with_context(|| format!("cannot pull `{candidate}`"))?;
                return Ok(record);
            }
        }
        if let Some(e) = last_err {
            return Err(e).with_context(|| format!("cannot pull `{name}`"));
        }
        anyhow::bail!(
            "image `{name}` not found: no registry has it (tried {})",
            not_found
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn regs(&self) -> anyhow::Result<&Registries> {
        if let Some(r) = self.regs.get() {
            return Ok(r);
        }
        let r = Registries::new(self.options.clone())?;
        Ok(self.regs.get_or_init(|| r))
    }

    fn progress(&self) -> Option<Arc<dyn Progress>> {
        if self.quiet || !std::io::stderr().is_terminal() {
            return None;
        }
        Some(Arc::new(TermProgress::default()))
    }

    /// The image `name` means for a build or run, pulling it as the policy says.
    pub fn resolve(
        &self,
        store: &Store,
        name: &str,
        present: Option<ImageRecord>,
    ) -> anyhow::Result<ImageRecord> {
        // an image made here (`localhost/…`) is never looked for in a registry
        let local = present.as_ref().is_some_and(|r| {
            r.names
                .iter()
                .any(|n| n.domain() == crate::image::LOCAL_DOMAIN)
        }) && !Reference::is_qualified(name).unwrap_or(true);
        // `localhost/…` names the images made on this machine: there is no registry to ask
        let made_here =
            Reference::parse(name).is_ok_and(|r| r.domain() == crate::image::LOCAL_DOMAIN);
        match (self.policy, present) {
            (_, Some(r)) if local || made_here => Ok(r),
            (_, None) if made_here => anyhow::bail!(
                "image `{name}` is not in the local store (`localhost/` names images made on this machine, which are never pulled)"
            ),
            (PullPolicy::Never, Some(r)) | (PullPolicy::Missing, Some(r)) => Ok(r),
            (PullPolicy::Never, None) => anyhow::bail!(
                "image `{name}` is not in the local store, and pulling is off (`--pull=never`)"
            ),
            (PullPolicy::Newer, Some(r)) => match self.pull(store, name) {
                Ok(new) => Ok(new),
                Err(e) => {
                    super::output::warn(&format!("{e:#}; using the image in the local store"));
                    Ok(r)
                }
            },
            (_, _) => self.pull(store, name),
        }
    }
}

/// A blob the registry sent that failed its check while it was staged comes back from the
/// store as an I/O error on the staged file; the check's own message (naming the blob) is the
/// one to show.
fn verification_error(e: crate::store::StoreError) -> anyhow::Error {
    match e {
        crate::store::StoreError::Io { error, .. }
            if error.kind() == std::io::ErrorKind::InvalidData =>
        {
            anyhow::anyhow!("{error}")
        }
        other => other.into(),
    }
}

impl crate::exec::ImageProvider for Puller {
    fn provide(
        &self,
        store: &Store,
        name: &str,
        present: Option<ImageRecord>,
    ) -> Result<ImageRecord, String> {
        self.resolve(store, name, present)
            .map_err(|e| format!("{e:#}"))
    }
}

/// One line per blob on standard error, redrawn in place as bytes arrive.
#[derive(Default)]
struct TermProgress {
    state: Mutex<TermState>,
}

#[derive(Default)]
struct TermState {
    /// Blob → (done, total, finished), in the order they started.
    lines: BTreeMap<usize, (Digest, u64, u64, bool)>,
    drawn: usize,
    last: Option<Instant>,
}

impl Progress for TermProgress {
    fn update(&self, digest: &Digest, done: u64, total: u64, finished: bool) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = st
            .lines
            .iter()
            .find(|(_, (d, ..))| d == digest)
            .map(|(k, _)| *k)
            .unwrap_or(st.lines.len());
        st.lines
            .insert(key, (digest.clone(), done, total, finished));
        let now = Instant::now();
        if !finished
            && st
                .last
                .is_some_and(|t| now.duration_since(t).as_millis() < 100)
        {
            return;
        }
        st.last = Some(now);
        let mut err = std::io::stderr().lock();
        let mut out = String::new();
        if st.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for (d, done, total, fin) in st.lines.values() {
            let state = if *fin {
                "done".to_string()
            } else {
                format!(
                    "{} / {}",
                    crate::util::human_size(*done),
                    crate::util::human_size(*total)
                )
            };
            out.push_str(&format!("\x1b[2KCopying blob {} {state}\n", d.short()));
        }
        st.drawn = st.lines.len();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}
