//! `hoist push NAME [DEST]`: sends an image of the store ([`Store::source`], an `ImageSource`)
//! to a registry with [`registry::push::push`]: blobs the registry has are skipped, blobs
//! another repository of that registry holds are mounted, the rest stream up in parallel; the
//! manifest goes last. Prints the manifest digest (and writes it to `--digestfile`). With
//! `--sign-by-sigstore-private-key` the pushed manifest is then signed ([`super::sign`]).
//!
//! Layers stored as plain tars leave gzip-compressed by default (`--compression-format`,
//! podman's flag), through the store's record of compressed copies
//! ([`crate::store::compressed`]): deterministic, so pushing the same image twice gives the
//! same manifest digest, and compressed once.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::pull::RegistryArgs;
use super::Globals;
use crate::image::{Digest, Reference};
use crate::registry::push::{self, Format, PushOptions};
use crate::registry::Mount;
use crate::store::{compressed, Store};

/// Blobs uploaded at the same time.
const PUSH_JOBS: usize = 3;

/// Transports other tools accept in DEST that hoist does not push to.
const OTHER_TRANSPORTS: [&str; 6] = [
    "oci:",
    "oci-archive:",
    "docker-archive:",
    "dir:",
    "containers-storage:",
    "docker-daemon:",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// OCI image manifest
    Oci,
    /// Docker image manifest v2, schema 2
    #[value(alias = "v2s2")]
    Docker,
}

/// How plain layers are compressed on their way out (podman's `--compression-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CompressionArg {
    /// gzip, what every registry client reads
    #[default]
    Gzip,
    /// zstd (OCI manifests only)
    Zstd,
    /// Send layers as stored
    None,
}

impl CompressionArg {
    pub fn compression(self) -> crate::layer::Compression {
        match self {
            CompressionArg::Gzip => crate::layer::Compression::Gzip,
            CompressionArg::Zstd => crate::layer::Compression::Zstd,
            CompressionArg::None => crate::layer::Compression::None,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image in the local store (name or ID)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Where to push: `[docker://]REGISTRY/REPO[:TAG]` (default: NAME)
    #[arg(value_name = "DEST")]
    pub dest: Option<String>,
    /// Write the pushed manifest's digest to this file
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    /// Manifest format: `oci` or `docker` (default: as stored)
    #[arg(short, long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// Compress plain-tar layers with this on the way out (`gzip` by default; layers already
    /// compressed are sent as they are)
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "gzip")]
    pub compression_format: CompressionArg,
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Sign the pushed manifest with this sigstore private key (a cosign-style signature at
    /// the tag `sha256-<hex>.sig` of the same repository)
    #[arg(long, value_name = "FILE")]
    pub sign_by_sigstore_private_key: Option<PathBuf>,
    /// Read the signing key's passphrase from the first line of this file (default: ask on the terminal)
    #[arg(long, value_name = "FILE", requires = "sign_by_sigstore_private_key")]
    pub sign_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let dest_text = args.dest.as_deref().unwrap_or(&args.name);
    let dest_text = dest_text.strip_prefix("docker://").unwrap_or(dest_text);
    if let Some(t) = OTHER_TRANSPORTS.iter().find(|t| dest_text.starts_with(**t)) {
        anyhow::bail!(
            "`{dest_text}`: hoist pushes only to registries (`docker://`); for `{}` use `hoist save`",
            t.trim_end_matches(':')
        );
    }
    let dest = if args.dest.is_some() {
        Reference::parse(dest_text)
    } else {
        Reference::parse_local(dest_text)
    }
    .with_context(|| format!("`{dest_text}` is not a valid destination"))?;
    let store = Store::open(&globals.root)
        .with_context(|| format!("cannot open the store at `{}`", globals.root.display()))?;
    let record = store.resolve(&args.name)?;
    // the key is opened before anything is sent: a wrong passphrase pushes nothing
    let signing_key = match &args.sign_by_sigstore_private_key {
        Some(k) => Some(super::sign::open_key(
            k,
            args.sign_passphrase_file.as_deref(),
        )?),
        None => None,
    };
    let regs = args.registry.session()?;
    let target = regs.push_target(&dest)?;
    let compression = args.compression_format.compression();
    let src = store
        .source_compressed(&record, compression)
        .with_context(|| format!("cannot compress the layers of `{}`", args.name))?;

    // blobs other images of the same registry hold can be mounted instead of uploaded
    let mut mount_from: HashMap<Digest, String> = HashMap::new();
    for img in store.images()? {
        for n in img.names.iter().filter(|n| n.domain() == dest.domain()) {
            if n.path() == target.path {
                continue;
            }
            for d in img.layer_digests()?.into_iter().chain([img.id.clone()]) {
                // what a push of that image sent: the compressed copy of a plain layer
                if let Some((c, _)) = compressed::recorded(&store, compression, &d) {
                    mount_from.entry(c).or_insert_with(|| n.path().to_string());
                }
                mount_from.entry(d).or_insert_with(|| n.path().to_string());
            }
        }
    }

    let show = !args.quiet && std::io::stderr().is_terminal();
    let opts = PushOptions {
        format: args.format.map(|f| match f {
            FormatArg::Oci => Format::Oci,
            FormatArg::Docker => Format::Docker,
        }),
        jobs: PUSH_JOBS,
        mount_from,
        progress: None,
        on_blob: show.then(|| {
            let cb: push::BlobReport = Box::new(|d, how| {
                let what = match how {
                    Mount::Exists => "skipped: already exists",
                    Mount::Mounted => "mounted",
                    Mount::Uploaded => "done",
                };
                eprintln!("Copying blob {} {what}", d.short());
            });
            cb
        }),
    };
    let reference = dest.tag().map(str::to_string);
    let digest = push::push(&src, &target, reference.as_deref(), &opts)
        .with_context(|| format!("cannot push `{}` to `{dest}`", args.name))?;
    if let Some(key) = &signing_key {
        super::sign::sign_pushed(&target, &dest, &digest, key)?;
    }
    if let Some(f) = &args.digestfile {
        crate::util::write_user_file(f, digest.to_string().as_bytes())
            .with_context(|| format!("cannot write the digest to `{}`", f.display()))?;
    }
    super::output::println(&digest.to_string());
    Ok(ExitCode::SUCCESS)
}
