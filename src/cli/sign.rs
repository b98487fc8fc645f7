//! Content-trust verbs and the glue the registry verbs share:
//! `hoist generate-sigstore-key` (a key pair in cosign's format), `hoist sign` (sign an image
//! already in a registry), `hoist trust show` (list an image's signatures and which key
//! verifies each), the `--signature-policy` flag of `pull`, `build` and `run` ([`TrustArgs`]),
//! and the passphrase prompt. The work itself is in [`crate::sign`].
//!
//! A passphrase comes from a file (its first line) or from the terminal (`/dev/tty`, echo
//! off); never from an argument, an environment variable or standard input, and it is never
//! printed. A wrong one is one line naming the key file.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use p256::elliptic_curve::zeroize::Zeroizing;

use super::pull::RegistryArgs;
use super::Globals;
use crate::image::{Digest, Reference};
use crate::registry::{ManifestKind, RegistryError, RemoteImage, Repo};
use crate::sign::{self, Policy, PrivateKey, PublicKey};

/// `--signature-policy`, for the verbs that pull.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustArgs {
    /// Decide what may be pulled by this policy.json (default: `~/.config/containers/policy.json`,
    /// else `/etc/containers/policy.json`; with neither, every image is accepted)
    #[arg(long, value_name = "FILE")]
    pub signature_policy: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct GenerateKeyArgs {
    /// Write `PREFIX.private` (encrypted, mode 0600) and `PREFIX.pub` (mode 0644)
    #[arg(long, value_name = "PREFIX")]
    pub output_prefix: PathBuf,
    /// Read the passphrase from the first line of this file (default: ask on the terminal)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The image in its registry: `REGISTRY/NAME[:TAG|@DIGEST]`
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// The sigstore private key (`generate-sigstore-key` or cosign's `cosign.key`)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Read the key's passphrase from the first line of this file (default: ask on the terminal)
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum TrustCommand {
    /// List the signatures an image in a registry carries and which key verifies each
    Show(ShowArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The image in its registry: `REGISTRY/NAME[:TAG|@DIGEST]`
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Verify with this public key (repeatable; default: the keys the signature policy names
    /// for the image)
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
    pub format: ShowFormat,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Reads a passphrase: the first line of `file`, or asked on the terminal (twice when
/// `confirm`). Never echoed, never printed.
pub fn passphrase(
    file: Option<&Path>,
    what: &str,
    confirm: bool,
) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    if let Some(f) = file {
        let text = Zeroizing::new(
            std::fs::read(f)
                .with_context(|| format!("cannot read the passphrase file `{}`", f.display()))?,
        );
        let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return Ok(Zeroizing::new(line.to_vec()));
    }
    let first = prompt(&format!("Passphrase for {what}"))?;
    if confirm {
        let again = prompt("Repeat the passphrase")?;
        if *first != *again {
            anyhow::bail!("the passphrases do not match");
        }
    }
    Ok(first)
}

/// Asks on the controlling terminal with echo off.
fn prompt(label: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| {
            anyhow::anyhow!(
                "no terminal to ask for the passphrase on: give it in a file with `--passphrase-file`"
            )
        })?;
    let saved = tcgetattr(&tty).context("cannot read the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&tty, SetArg::TCSANOW, &quiet).context("cannot turn off the terminal echo")?;
    let mut out = &tty;
    let _ = write!(out, "{label}: ");
    let _ = out.flush();
    let mut line = Zeroizing::new(Vec::new());
    let res = std::io::BufReader::new(&tty).read_until(b'\n', &mut line);
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &saved);
    let _ = writeln!(out);
    res.context("cannot read from the terminal")?;
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(line)
}

/// Opens a private key with its passphrase (from `passphrase_file` or the terminal).
pub fn open_key(key: &Path, passphrase_file: Option<&Path>) -> anyhow::Result<PrivateKey> {
    // a clear message for a missing key before asking for its passphrase
    std::fs::metadata(key).map_err(|e| anyhow::anyhow!("`{}`: {e}", key.display()))?;
    let pass = passphrase(passphrase_file, &format!("`{}`", key.display()), false)?;
    Ok(PrivateKey::read(key, &pass)?)
}

pub fn run_generate(args: GenerateKeyArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let prefix = &args.output_prefix;
    for ext in ["private", "pub"] {
        let p = PathBuf::from(format!("{}.{ext}", prefix.display()));
        if p.symlink_metadata().is_ok() {
            return Err(sign::SignError::Exists { path: p }.into());
        }
    }
    let pass = passphrase(args.passphrase_file.as_deref(), "the new key", true)?;
    let key = PrivateKey::generate();
    let (private, public) = sign::keys::write_key_pair(prefix, &key, &pass)?;
    super::output::note(&format!(
        "Key written to `{}` (private, encrypted) and `{}` (public)",
        private.display(),
        public.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The identity a signature of `reference` names: the repository and tag as given, or the
/// repository alone for a reference by digest (as cosign does).
pub fn identity_of(reference: &Reference) -> String {
    match (reference.digest(), reference.tag()) {
        (_, Some(t)) => format!("{}:{t}", reference.repository()),
        (_, None) => reference.repository(),
    }
}

fn parse_remote(name: &str) -> anyhow::Result<Reference> {
    let name = name.strip_prefix("docker://").unwrap_or(name);
    if !Reference::is_qualified(name).unwrap_or(false) {
        anyhow::bail!("`{name}`: name the registry (`REGISTRY/NAME[:TAG|@DIGEST]`)");
    }
    Reference::parse(name).with_context(|| format!("`{name}` is not a valid image reference"))
}

/// The digest the reference's tag (or digest) names in `repo`: an index's own digest for a
/// multi-platform image, as signatures are made over what the name points at.
fn resolve_digest(repo: &Repo, reference: &Reference) -> Result<Digest, RegistryError> {
    let tag_or_digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => crate::image::DEFAULT_TAG.to_string(),
    };
    let f = repo.client.get_manifest(&repo.path, &tag_or_digest)?;
    if ManifestKind::classify(&f.media_type, &f.bytes).is_none() {
        return Err(RegistryError::Invalid {
            reference: reference.to_string(),
            reason: format!("`{}` is not an image manifest or index", f.digest),
        });
    }
    Ok(f.digest)
}

pub fn run_sign(args: SignArgs, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let reference = parse_remote(&args.image)?;
    let key = open_key(&args.key, args.passphrase_file.as_deref())?;
    let regs = args.registry.session()?;
    let repo = regs.push_target(&reference)?;
    let digest =
        resolve_digest(&repo, &reference).with_context(|| format!("cannot sign `{reference}`"))?;
    sign::remote::sign(&repo, &digest, &identity_of(&reference), &key)
        .with_context(|| format!("cannot sign `{reference}`"))?;
    super::output::println(&format!("{}@{digest}", reference.repository()));
    Ok(ExitCode::SUCCESS)
}

/// Signs a manifest just pushed (`push --sign-by-sigstore-private-key`).
pub fn sign_pushed(
    repo: &Repo,
    dest: &Reference,
    digest: &Digest,
    key: &PrivateKey,
) -> anyhow::Result<()> {
    sign::remote::sign(repo, digest, &identity_of(dest), key)
        .with_context(|| format!("pushed `{dest}`, but cannot store its signature"))?;
    Ok(())
}

/// The policy in force for a verb that pulls.
pub fn load_policy(args: &TrustArgs) -> anyhow::Result<Option<Policy>> {
    Ok(Policy::load(args.signature_policy.as_deref())?)
}

/// Decides on an image about to be copied from a registry: the manifest pulled and, for a
/// multi-platform name, the index it came from. A refusal is one line naming the image and
/// the rule.
pub fn check_pull(
    policy: &Policy,
    reference: &Reference,
    remote: &RemoteImage,
) -> anyhow::Result<()> {
    let mut digests: Vec<Digest> = remote.index_digest().into_iter().cloned().collect();
    digests.push(remote.digest().clone());
    let repo = remote.repo().clone();
    let mut fetch = || sign::remote::candidates(&repo, &digests).map_err(|e| e.to_string());
    policy
        .check_docker(reference, &mut fetch)
        .map_err(anyhow::Error::new)
}

pub fn run_trust(cmd: TrustCommand, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let TrustCommand::Show(args) = cmd;
    let reference = parse_remote(&args.image)?;
    let mut keys = Vec::new();
    for k in &args.key {
        keys.push(PublicKey::read(k)?);
    }
    if args.key.is_empty() {
        if let Some(p) = load_policy(&args.trust)? {
            keys = p
                .docker_keys(&reference)
                .map_err(|e| anyhow::anyhow!("signature policy `{}`: {e}", p.path.display()))?;
        }
    }
    let regs = args.registry.session()?;
    let repo = regs
        .pull_sources(&reference)?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no registry to read `{reference}` from"))?;
    let digest =
        resolve_digest(&repo, &reference).with_context(|| format!("cannot read `{reference}`"))?;
    let stored = sign::remote::signatures(&repo, &digest)?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for s in &stored {
        let sig = s
            .layer
            .signature
            .as_deref()
            .and_then(PublicKey::decode_annotation);
        let verified_by: Vec<&PublicKey> = match &sig {
            Some(sig) => keys
                .iter()
                .filter(|k| k.verifies(&s.payload, sig))
                .collect(),
            None => Vec::new(),
        };
        let claims = sign::payload::parse(&s.payload).ok();
        let identity = claims
            .as_ref()
            .map(|c| c.docker_reference.clone())
            .unwrap_or_else(|| "(invalid payload)".into());
        let matches = claims.as_ref().is_some_and(|c| c.digest == digest);
        let by = if verified_by.is_empty() {
            if sig.is_none() {
                "(no signature)".to_string()
            } else {
                "(no key given verifies it)".to_string()
            }
        } else {
            verified_by
                .iter()
                .map(|k| k.origin.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push(vec![
            s.layer.digest.short().to_string(),
            identity.clone(),
            if matches { "yes" } else { "NO" }.to_string(),
            by,
        ]);
        json.push(serde_json::json!({
            "Payload": s.layer.digest.to_string(),
            "Identity": identity,
            "ClaimedDigest": claims.as_ref().map(|c| c.digest.to_string()),
            "DigestMatches": matches,
            "VerifiedBy": verified_by.iter().map(|k| k.origin.clone()).collect::<Vec<_>>(),
        }));
    }
    match args.format {
        ShowFormat::Json => {
            let v = serde_json::json!({
                "Image": reference.to_string(),
                "Digest": digest.to_string(),
                "Signatures": json,
            });
            super::output::println(&serde_json::to_string_pretty(&v)?);
        }
        ShowFormat::Table => {
            super::output::println(&format!("{reference} {digest}"));
            if rows.is_empty() {
                super::output::println("no signatures");
            } else {
                super::output::table(
                    &["PAYLOAD", "IDENTITY", "DIGEST MATCHES", "VERIFIED BY"],
                    &rows,
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
