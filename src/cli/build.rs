//! `hoist build`: a Dockerfile and a context directory become an image in the store.
//!
//! This file only turns flags into an [`exec::BuildRequest`] (the rest of the program never sees
//! clap types) and prints progress events; planning and running the steps is `plan` and `exec`.
//! Flags follow `docker build` / `buildah build`; a flag or form hoist does not support is a clear
//! error, never silently ignored.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};

use super::{output, Globals};
use crate::exec::{self, BuildRequest, Event, ExportTarget, NetworkMode};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Name the image (repeatable)
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,

    /// The Dockerfile (`-` reads it from standard input); default `CONTEXT/Dockerfile`
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<String>,

    /// Set a build argument; `K` alone takes the value from the environment (repeatable)
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,

    /// Build this stage (name or index) and the stages it needs, nothing else
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,

    /// Run every step even if a cached result exists
    #[arg(long)]
    pub no_cache: bool,

    /// Run every step of these stages even if a cached result exists (repeatable, or a comma
    /// list)
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,

    /// Use the build cache and keep every step's layer (`--layers=false`: no cache for this
    /// build, as podman's switch)
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub layers: bool,

    /// For every step that misses the cache, print the first part of its key that changed
    #[arg(long)]
    pub explain_cache: bool,

    /// Network for RUN steps: `private` (own namespace, outbound access, no host loopback;
    /// the default where `pasta` is installed, see `hoist info`), `host`, `none`, or
    /// `default` (whichever applies, as when the flag is not given)
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,

    /// Add a label to the image (repeatable)
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,

    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,

    /// Set every time in the image (config, history, layer entries) to this Unix time
    #[arg(long, value_name = "N")]
    pub timestamp: Option<i64>,

    /// Progress output: `auto`, `plain` (each step's time on a `STEP n/m: DONE 0.3s` line),
    /// `tty` (the live view, with each step's time and the total; standard output must be a
    /// terminal), `quiet`, or `rawjson` (one JSON event per line on standard output, for CI
    /// tools: `step`, `output`, `cached`, `done` with its `seconds`, `cache-miss`, `warning`,
    /// `note`, `error`, and `image` with the ID at the end; each with its `time` and the
    /// `elapsed` seconds of the build)
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub progress: String,

    /// Print only the image ID
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// A secret for `RUN --mount=type=secret`: `id=NAME,src=FILE` (repeatable)
    #[arg(long = "secret", value_name = "id=NAME,src=FILE")]
    pub secrets: Vec<String>,

    /// Export the final file system: `type=local,dest=DIR`, `type=tar,dest=FILE`, `DIR`
    /// (docker's shorthand for `type=local`), or `-` (a tar on standard output; progress then
    /// goes to standard error)
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,

    /// Layer blobs: `none` (default: kept as plain tars, compressed when they leave the store),
    /// `gzip` or `zstd`
    #[arg(
        long,
        visible_alias = "compression-format",
        value_name = "FORMAT",
        default_value = "none"
    )]
    pub compression: String,

    /// Manifest format: `oci` (the default) or `docker` (Docker image manifest v2, schema 2,
    /// and Docker's config and layer media types). Both keep HEALTHCHECK, ONBUILD and SHELL
    /// in the config, as `docker build` does (buildah drops them from `oci` images); podman
    /// reads them only from `docker` images. Default: `BUILDAH_FORMAT`, else `oci`
    #[arg(
        long = "format",
        value_name = "FORMAT",
        env = "BUILDAH_FORMAT",
        hide_env_values = true
    )]
    pub format: Option<String>,

    /// Level for `--compression`: gzip 0-9 (default 6), zstd 1-19 (default 3)
    #[arg(long, value_name = "N")]
    pub compression_level: Option<i32>,

    /// Accepted for docker's scripts (`--rm`, `--rm=false`): hoist keeps no intermediate
    /// containers, so there is nothing to remove or keep
    #[arg(
        long = "rm",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub rm: Option<bool>,

    /// Accepted for docker's scripts: hoist keeps no intermediate containers, even after a
    /// failed step, so there is nothing to remove
    #[arg(
        long = "force-rm",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub force_rm: Option<bool>,

    /// Target platform; only this machine's platform is supported (no emulation)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,

    /// Run BuildKit's build checks and print their warnings without building (as
    /// `docker build --check`); exits 1 when any warning is found
    #[arg(long)]
    pub check: bool,

    /// When to pull base images: `always`, `missing` (default), `never`, `newer` (`--pull` alone: `always`)
    #[arg(long, value_enum, value_name = "POLICY", num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pub pull: Option<super::pull::PullPolicy>,

    /// Export the build cache to a registry: `REF` or `type=registry,ref=REF[,mode=max|min]`
    /// (default `max`: every step of every stage built; `min`: the target stage's steps)
    #[arg(long = "cache-to", value_name = "REF")]
    pub cache_to: Vec<String>,

    /// Import build cache from a registry: `REF` or `type=registry,ref=REF` (repeatable; a
    /// cache that cannot be read is a warning)
    #[arg(long = "cache-from", value_name = "REF")]
    pub cache_from: Vec<String>,

    #[command(flatten)]
    pub registry: super::pull::RegistryArgs,
    #[command(flatten)]
    pub trust: super::sign::TrustArgs,

    /// The build context directory, or `-`: the Dockerfile from standard input and an empty
    /// context (`hoist build - < Dockerfile`)
    #[arg(value_name = "CONTEXT")]
    pub context: String,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// A live step list (terminal only).
    Live,
    /// `STEP n/m: …` lines with RUN output under them.
    Plain,
    /// Nothing but the image ID.
    Quiet,
    /// One JSON event per line.
    RawJson,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let progress = match (args.quiet, args.progress.as_str()) {
        (true, _) | (_, "quiet") => Progress::Quiet,
        (false, "plain") => Progress::Plain,
        (false, "auto") if std::io::stdout().is_terminal() => Progress::Live,
        (false, "auto") => Progress::Plain,
        (false, "tty") if std::io::stdout().is_terminal() => Progress::Live,
        (false, "tty") => {
            bail!("`--progress tty`: standard output is not a terminal; use `plain` or `rawjson`")
        }
        (false, "rawjson") => Progress::RawJson,
        (false, other) => bail!(
            "unknown `--progress` mode `{other}`: use `auto`, `plain`, `tty`, `quiet` or `rawjson`"
        ),
    };
    // the cache flags are checked before anything is read
    let cache_to = args
        .cache_to
        .iter()
        .map(|v| super::buildcache::parse_spec("--cache-to", v, true))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut empty_context = None;
    let mut request = resolve(&args, &mut empty_context)?;
    if !cache_to.is_empty() && !request.layers {
        bail!("`--cache-to`: `--layers=false` keeps no build cache to export");
    }
    if args.check {
        return check_only(&request, globals);
    }
    // `-o -`: the tar is made beside the store, then copied to standard output; the progress
    // and the image ID go to standard error so the tar stays whole
    let to_stdout = args.outputs.iter().any(|o| is_stdout_output(o));
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("`--output -`: refusing to write a tar to a terminal: redirect standard output");
    }
    let progress = if to_stdout && progress == Progress::Live {
        Progress::Plain
    } else {
        progress
    };
    build_checks(&request, globals)?;
    if args.iidfile.is_some()
        && request.tags.is_empty()
        && (to_stdout || !request.outputs.is_empty())
    {
        bail!("`--iidfile`: with only `--output`, no image is stored; add `-t NAME` to store one");
    }
    let store = crate::store::Store::open(&globals.root)
        .with_context(|| format!("cannot open the store at `{}`", globals.root.display()))?;
    let stdout_tar = if to_stdout {
        let dir = store.tmp_dir()?;
        let file = dir.path().join("output.tar");
        request.outputs.push(ExportTarget::Tar(file.clone()));
        Some((dir, file))
    } else {
        None
    };
    let mut printer = Printer::new(progress);
    printer.to_stderr = to_stdout;
    let result = exec::build(&store, &request, &mut |e| printer.event(e));
    printer.finish(result.is_err());
    let built = match result {
        Ok(b) => b,
        Err(e) => {
            let e = anyhow::Error::from(e);
            printer.json(&serde_json::json!({"type": "error", "message": format!("{e:#}")}));
            return Err(e);
        }
    };
    if let Some(id) = &built.image_id {
        if let Some(file) = &args.iidfile {
            crate::util::write_user_file(file, id.to_string().as_bytes())
                .with_context(|| format!("cannot write the image ID to `{}`", file.display()))?;
        }
        if progress == Progress::RawJson && !to_stdout {
            printer.json(&serde_json::json!({"type": "image", "id": id.to_string()}));
        } else if to_stdout {
            output::note(id.hex());
        } else {
            output::println(id.hex());
        }
    }
    for spec in &cache_to {
        let (digest, n) =
            super::buildcache::export(&store, spec, &built.cache_keys, &args.registry)?;
        if progress != Progress::Quiet {
            output::note(&format!(
                "exported build cache to {} ({n} entries, {digest})",
                spec.reference
            ));
        }
    }
    if let Some((_dir, file)) = &stdout_tar {
        let mut tar = std::fs::File::open(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let mut out = output::Stdout;
        std::io::copy(&mut tar, &mut out).context("writing the tar to standard output")?;
        out.flush().context("writing the tar to standard output")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves the flags into a build request, checking every value. For the context `-`, the
/// empty context directory is made in `empty_context`, to live as long as the build.
fn resolve(
    args: &Args,
    empty_context: &mut Option<tempfile::TempDir>,
) -> anyhow::Result<BuildRequest> {
    let remote_cache = remote_cache(args)?;
    if args.context.contains("://") || args.context.starts_with("git@") {
        bail!(
            "context `{}`: only a local directory is supported as the build context",
            args.context
        );
    }
    let stdin_dockerfile = args.context == "-";
    if stdin_dockerfile && args.file.is_some() {
        bail!("context `-` reads the Dockerfile from standard input: `-f` cannot be given too");
    }
    let context_dir = if stdin_dockerfile {
        // docker's `build - < Dockerfile`: no context at all, so COPY has nothing to copy
        let dir = tempfile::Builder::new()
            .prefix("hoist-empty-context-")
            .tempdir()
            .context("cannot make the empty build context")?;
        let path = dir.path().to_path_buf();
        *empty_context = Some(dir);
        path
    } else {
        PathBuf::from(&args.context)
    };
    if !context_dir.is_dir() {
        bail!("context `{}` is not a directory", args.context);
    }
    let file = if stdin_dockerfile {
        Some("-")
    } else {
        args.file.as_deref()
    };
    let (dockerfile_text, dockerfile_path) = match file {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read the Dockerfile from standard input")?;
            (text, None)
        }
        Some(f) => {
            let p = PathBuf::from(f);
            (read_dockerfile(&p)?, Some(p))
        }
        None => {
            let p = context_dir.join("Dockerfile");
            // docker's order: `Dockerfile`, then `dockerfile`; podman's `Containerfile` too
            let p = if p.exists() {
                p
            } else if context_dir.join("Containerfile").exists() {
                context_dir.join("Containerfile")
            } else if context_dir.join("dockerfile").exists() {
                context_dir.join("dockerfile")
            } else {
                p
            };
            (read_dockerfile(&p)?, Some(p))
        }
    };
    let dockerfile_name = match &dockerfile_path {
        Some(p) => p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".to_string()),
        None => "Dockerfile".to_string(),
    };

    let mut build_args = BTreeMap::new();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                check_key("--build-arg", k, a)?;
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                check_key("--build-arg", a, a)?;
                // docker: a bare name takes its value from the environment, and is left out
                // when the environment has none
                if let Ok(v) = std::env::var(a) {
                    build_args.insert(a.clone(), v);
                }
            }
        }
    }

    let mut labels = Vec::new();
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        check_key("--label", k, l)?;
        labels.push((k.to_string(), v.to_string()));
    }

    let network = match args.network.as_deref() {
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some("private") => NetworkMode::Private,
        // docker build's word for its own default
        None | Some("default") => match crate::sandbox::network::default_network().network {
            crate::sandbox::Network::Private => NetworkMode::Private,
            crate::sandbox::Network::None => NetworkMode::None,
            crate::sandbox::Network::Host => NetworkMode::Host,
        },
        Some(other) => {
            bail!("unknown `--network` mode `{other}`: use `private`, `host`, `none` or `default`")
        }
    };

    let mut secrets = BTreeMap::new();
    for s in &args.secrets {
        let (id, src) = parse_secret(s)?;
        if secrets.insert(id.clone(), src).is_some() {
            bail!("`--secret {s}`: secret `{id}` is given twice");
        }
    }

    let mut outputs = Vec::new();
    for o in &args.outputs {
        // `-o -` is added by `run`, which copies the tar to standard output
        if !is_stdout_output(o) {
            outputs.push(parse_output(o)?);
        }
    }
    if args.outputs.iter().filter(|o| is_stdout_output(o)).count() > 1 {
        bail!("`--output -` is given twice: standard output takes one tar");
    }

    let timestamp = timestamp(args.timestamp)?;

    let compression = parse_compression(&args.compression, args.compression_level)?;
    let format = match args.format.as_deref() {
        None | Some("oci") | Some("") => exec::ImageFormat::Oci,
        Some("docker") => exec::ImageFormat::Docker,
        Some(other) => {
            bail!("unknown `--format` `{other}` (or `BUILDAH_FORMAT`): use `oci` or `docker`")
        }
    };
    if format == exec::ImageFormat::Docker
        && compression.compression == crate::layer::Compression::Zstd
    {
        bail!("`--format docker` cannot carry zstd layers: use `--compression gzip` or `none`");
    }

    let mut tags = Vec::new();
    for t in &args.tags {
        let r = crate::image::Reference::parse_local(t)
            .with_context(|| format!("`-t {t}` is not a valid image name"))?;
        tags.push(r);
    }

    Ok(BuildRequest {
        dockerfile_text,
        dockerfile_name,
        dockerfile_path,
        context_dir,
        build_args,
        target: args.target.clone(),
        tags,
        labels,
        network,
        timestamp,
        secrets,
        outputs,
        platform: args.platform.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        layers: args.layers,
        explain_cache: args.explain_cache,
        compression,
        format,
        images: image_provider(args)?,
        remote_cache,
    })
}

/// `--check`: the build checks over every stage (or the `--target` and what it needs), printed;
/// no build. Exit 1 when a warning is found, as `docker build --check`.
fn check_only(req: &BuildRequest, globals: &Globals) -> anyhow::Result<ExitCode> {
    let df = crate::dockerfile::parse(&req.dockerfile_text, &req.dockerfile_name)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (findings, _) = run_checks(req, globals, &df, req.target.is_some())?;
    let n = findings.len();
    if n == 0 {
        output::println("Check complete, no warnings found.");
        return Ok(ExitCode::SUCCESS);
    }
    // buildx's words
    output::println(&if n == 1 {
        "Check complete, 1 warning has been found!".to_string()
    } else {
        format!("Check complete, {n} warnings have been found!")
    });
    Ok(ExitCode::from(1))
}

/// The checks a build runs first: warnings for the stages it builds; with
/// `# check=error=true` any warning fails the build before a step runs.
fn build_checks(req: &BuildRequest, globals: &Globals) -> anyhow::Result<()> {
    // a Dockerfile that does not parse or plan fails in the build with its own error
    let Ok(df) = crate::dockerfile::parse(&req.dockerfile_text, &req.dockerfile_name) else {
        return Ok(());
    };
    let (findings, config) = run_checks(req, globals, &df, true)?;
    if config.error && !findings.is_empty() {
        let mut rules: Vec<&str> = findings.iter().map(|f| f.rule.name).collect();
        rules.sort_unstable();
        rules.dedup();
        bail!(
            "{}: lint violation found for rules: {} (`# check=error=true`)",
            req.dockerfile_name,
            rules.join(", ")
        );
    }
    Ok(())
}

/// Runs the checks `# check=` leaves on and prints each finding on standard error. With
/// `only_built`, only the stages the build needs get the per-instruction rules.
fn run_checks(
    req: &BuildRequest,
    globals: &Globals,
    df: &crate::dockerfile::Dockerfile,
    only_built: bool,
) -> anyhow::Result<(
    Vec<crate::plan::checks::Finding>,
    crate::plan::checks::CheckConfig,
)> {
    use crate::plan::checks;
    // `--build-arg BUILDKIT_DOCKERFILE_CHECK=…` replaces the directive, as in BuildKit's dockerui
    let config = match (
        req.build_args.get("BUILDKIT_DOCKERFILE_CHECK"),
        &df.directives.check,
    ) {
        (Some(v), _) => checks::CheckConfig::parse(v)
            .map_err(|m| anyhow::anyhow!("`--build-arg BUILDKIT_DOCKERFILE_CHECK={v}`: {m}"))?,
        (None, Some(c)) => checks::CheckConfig::parse(&c.value).map_err(|m| {
            anyhow::anyhow!(
                "{}:{}: # check={}: {m}",
                req.dockerfile_name,
                c.span.line,
                c.value
            )
        })?,
        (None, None) => checks::CheckConfig::default(),
    };
    let platform = exec::host_platform();
    let built: Option<std::collections::BTreeSet<usize>> = if only_built {
        let planned = crate::plan::from_dockerfile::from_dockerfile(
            df,
            &req.dockerfile_text,
            &req.dockerfile_name,
        )
        .ok()
        .and_then(|input| {
            let opts = crate::plan::PlanOptions {
                file: req.dockerfile_name.clone(),
                build_args: req.build_args.clone(),
                target: req.target.clone(),
                platform: platform.clone(),
                requested_platform: None,
            };
            crate::plan::plan(&input, &opts).ok()
        });
        match planned {
            Some(p) => Some(p.order.iter().copied().collect()),
            // the build reports why it cannot plan
            None if req.target.is_some() => return Ok((Vec::new(), config)),
            None => None,
        }
    } else {
        None
    };
    // `.dockerignore` as the build sees it; BuildKit skips CopyIgnoredFile when it has `!`
    let ctx = crate::context::Context::open(&req.context_dir, req.dockerfile_path.as_deref()).ok();
    let matcher = ctx
        .as_ref()
        .filter(|c| c.ignore_file().is_some() && !c.ignore().has_exceptions())
        .map(|c| c.ignore());
    let ignored = |p: &str| {
        matcher
            .and_then(|m| m.verdict(p))
            .is_some_and(|v| v.excluded)
    };
    // base images' ENV names, from the store when the image is there (never created here)
    let store = if globals.root.join("index.json").is_file() {
        crate::store::Store::open(&globals.root).ok()
    } else {
        None
    };
    let base_env = |name: &str| -> Option<Vec<String>> {
        let image = store.as_ref()?.resolve(name).ok()?;
        let env = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.env().clone())
            .unwrap_or_default();
        Some(
            env.iter()
                .map(|kv| kv.split_once('=').map(|(k, _)| k).unwrap_or(kv).to_string())
                .collect(),
        )
    };
    let input = checks::CheckInput {
        df,
        text: &req.dockerfile_text,
        build_args: &req.build_args,
        platform: &platform,
        stages: built.as_ref(),
        ignored: matcher
            .is_some()
            .then_some(&ignored as &dyn Fn(&str) -> bool),
        base_env: &base_env,
    };
    let findings = checks::filter(checks::run(&input), &config, df, &req.dockerfile_text);
    for f in &findings {
        output::warn(&f.render(&req.dockerfile_name, &req.dockerfile_text));
    }
    Ok((findings, config))
}

/// `--timestamp N`, else `SOURCE_DATE_EPOCH`.
pub(super) fn timestamp(flag: Option<i64>) -> anyhow::Result<Option<i64>> {
    let timestamp = match flag {
        Some(t) => Some(t),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(v.trim().parse::<i64>().map_err(|_| {
                anyhow::anyhow!("`SOURCE_DATE_EPOCH` is `{v}`, not a Unix time in seconds")
            })?),
            _ => None,
        },
    };
    if let Some(t) = timestamp {
        if t < 0 {
            bail!("`--timestamp {t}`: a time before 1970 is not supported");
        }
    }
    Ok(timestamp)
}

/// `--compression FORMAT` and `--compression-level N`.
pub(super) fn parse_compression(
    format: &str,
    level: Option<i32>,
) -> anyhow::Result<exec::LayerCompression> {
    use crate::layer::Compression;
    let compression = match format {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        other => bail!("unknown `--compression` format `{other}`: use `gzip`, `zstd` or `none`"),
    };
    if let Some(l) = level {
        match compression.level_range() {
            Some((lo, hi)) if (lo..=hi).contains(&l) => {}
            Some((lo, hi)) => {
                bail!("`--compression-level {l}`: {format} levels go from {lo} to {hi}")
            }
            None => bail!(
                "`--compression-level {l}`: `--compression {format}` takes no level; add `--compression gzip` or `zstd`"
            ),
        }
    }
    Ok(exec::LayerCompression { compression, level })
}

/// The registry puller `FROM` uses, by `--pull` (none for `never`).
fn image_provider(args: &Args) -> anyhow::Result<Option<std::sync::Arc<dyn exec::ImageProvider>>> {
    let policy = args.pull.unwrap_or_default();
    if policy == super::pull::PullPolicy::Never {
        return Ok(None);
    }
    let puller =
        super::pull::Puller::new(&args.registry, policy, None, args.quiet)?.with_trust(&args.trust);
    Ok(Some(std::sync::Arc::new(puller)))
}

/// The registry caches of `--cache-from`, read on the first lookup.
fn remote_cache(args: &Args) -> anyhow::Result<Option<std::sync::Arc<dyn exec::RemoteCache>>> {
    if args.cache_from.is_empty() {
        return Ok(None);
    }
    let specs = args
        .cache_from
        .iter()
        .map(|v| super::buildcache::parse_spec("--cache-from", v, false))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cache = super::buildcache::RegistryCache::new(specs, &args.registry, args.quiet)?;
    Ok(Some(std::sync::Arc::new(cache)))
}

fn read_dockerfile(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p)
        .with_context(|| format!("cannot read the Dockerfile `{}`", p.display()))
}

fn check_key(flag: &str, key: &str, whole: &str) -> anyhow::Result<()> {
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        bail!("`{flag} {whole}`: expected K=V with a non-empty name");
    }
    Ok(())
}

/// `id=NAME,src=FILE` (also `source=`; `type=file` accepted; `env=` is refused clearly).
fn parse_secret(s: &str) -> anyhow::Result<(String, PathBuf)> {
    let mut id = None;
    let mut src = None;
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("`--secret {s}`: expected `id=NAME,src=FILE`"))?;
        match k {
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(PathBuf::from(v)),
            "type" if v == "file" => {}
            _ => bail!("`--secret {s}`: unsupported key `{k}`: use `id=NAME,src=FILE`"),
        }
    }
    let id = id.with_context(|| format!("`--secret {s}`: `id=` is missing"))?;
    let src = src.with_context(|| format!("`--secret {s}`: `src=` is missing"))?;
    if !src.is_file() {
        bail!("`--secret {s}`: `{}` is not a readable file", src.display());
    }
    Ok((id, src))
}

/// Whether an `--output` asks for a tar on standard output: `-`, or `type=tar,dest=-`.
fn is_stdout_output(s: &str) -> bool {
    s == "-" || {
        let parts: Vec<&str> = s.split(',').collect();
        parts.contains(&"dest=-") && parts.contains(&"type=tar") && parts.len() == 2
    }
}

/// `type=local,dest=DIR`, `type=tar,dest=FILE`, or a bare `DIR` (docker's `-o DIR`).
fn parse_output(s: &str) -> anyhow::Result<ExportTarget> {
    if !s.contains('=') && !s.is_empty() {
        return Ok(ExportTarget::Local(PathBuf::from(s)));
    }
    let mut kind = None;
    let mut dest = None;
    for part in s.split(',') {
        let (k, v) = part.split_once('=').with_context(|| {
            format!("`--output {s}`: expected `type=local,dest=DIR` or `type=tar,dest=FILE`")
        })?;
        match k {
            "type" => kind = Some(v.to_string()),
            "dest" => dest = Some(PathBuf::from(v)),
            _ => bail!("`--output {s}`: unsupported key `{k}`"),
        }
    }
    let dest = dest.with_context(|| format!("`--output {s}`: `dest=` is missing"))?;
    match kind.as_deref() {
        Some("local") => Ok(ExportTarget::Local(dest)),
        Some("tar") => Ok(ExportTarget::Tar(dest)),
        Some(other) => bail!("`--output {s}`: unsupported type `{other}`: use `local` or `tar`"),
        None => bail!("`--output {s}`: `type=` is missing"),
    }
}

/// Shows build events: plain lines, a live step list, or nothing.
struct Printer {
    mode: Progress,
    /// Plain lines go to standard error (standard output carries `-o -`'s tar).
    to_stderr: bool,
    /// The step running now (`rawjson` output events name it).
    step: usize,
    /// Live mode: the running step's line (finished steps are printed once and left alone).
    /// (independent stages run at the same time, so several steps can be running; by number)
    running: std::collections::BTreeMap<usize, String>,
    /// Live mode: the running step's last output lines, and the unfinished one.
    tail: std::collections::VecDeque<String>,
    partial: String,
    /// Live mode: screen rows drawn by the last redraw (each line is cut to the terminal's
    /// width, so one line is one row).
    drawn: usize,
    /// When the build started (the live view's total, `rawjson`'s `elapsed`).
    started: std::time::Instant,
    /// Steps finished so far, and the build's number of steps (the live view's total line).
    done: usize,
    total: usize,
}

/// Output lines of the running step kept under it, and shown after a failure.
const TAIL_LINES: usize = 10;

impl Printer {
    fn new(mode: Progress) -> Printer {
        Printer {
            mode,
            to_stderr: false,
            step: 0,
            running: std::collections::BTreeMap::new(),
            tail: std::collections::VecDeque::new(),
            partial: String::new(),
            drawn: 0,
            started: std::time::Instant::now(),
            done: 0,
            total: 0,
        }
    }

    fn event(&mut self, e: Event<'_>) {
        match e {
            Event::Step { total, .. } => self.total = total,
            Event::StepDone { .. } => self.done += 1,
            _ => {}
        }
        match self.mode {
            Progress::RawJson => {
                let v = match e {
                    Event::Step {
                        number,
                        total,
                        text,
                        stage,
                    } => {
                        self.step = number;
                        serde_json::json!({"type": "step", "step": number, "total": total, "stage": stage, "text": text})
                    }
                    Event::StepDone {
                        number,
                        total,
                        seconds,
                        cached,
                    } => serde_json::json!({
                        "type": if cached { "cached" } else { "done" },
                        "step": number,
                        "total": total,
                        "seconds": seconds,
                    }),
                    Event::Output(bytes) => serde_json::json!({
                        "type": "output",
                        "step": self.step,
                        "data": String::from_utf8_lossy(bytes),
                    }),
                    Event::CacheMiss(m) => {
                        serde_json::json!({"type": "cache-miss", "step": self.step, "message": m})
                    }
                    Event::Warning(w) => serde_json::json!({"type": "warning", "message": w}),
                    Event::Note(n) => serde_json::json!({"type": "note", "message": n}),
                };
                self.json(&v);
            }
            Progress::Quiet => {
                if let Event::Warning(w) = e {
                    output::warn(w);
                }
            }
            Progress::Plain => match e {
                Event::Step {
                    number,
                    total,
                    text,
                    ..
                } => self.line(&format!("STEP {number}/{total}: {text}")),
                Event::Output(bytes) if self.to_stderr => output::write_raw_err(bytes),
                Event::Output(bytes) => output::write_raw(bytes),
                Event::Warning(w) => output::warn(w),
                Event::Note(n) => self.line(n),
                Event::StepDone {
                    number,
                    total,
                    cached: true,
                    ..
                } => self.line(&format!("STEP {number}/{total}: CACHED")),
                // BuildKit's plain progress: `#5 DONE 0.3s`
                Event::StepDone {
                    number,
                    total,
                    seconds,
                    ..
                } => self.line(&format!("STEP {number}/{total}: DONE {seconds:.1}s")),
                Event::CacheMiss(m) => self.line(m),
            },
            Progress::Live => match e {
                Event::Step {
                    number,
                    total,
                    text,
                    ..
                } => {
                    if self.running.is_empty() {
                        self.tail.clear();
                        self.partial.clear();
                    }
                    self.running
                        .insert(number, format!("[{number}/{total}] {text}"));
                    self.redraw();
                }
                Event::StepDone {
                    number,
                    total,
                    seconds,
                    cached,
                } => {
                    let line = self
                        .running
                        .remove(&number)
                        .unwrap_or_else(|| format!("[{number}/{total}]"));
                    // a long step line is cut before its time, which stays in view
                    let suffix = if cached {
                        "  CACHED".to_string()
                    } else {
                        format!("  ✔ {seconds:.1}s")
                    };
                    if self.running.is_empty() {
                        self.tail.clear();
                        self.partial.clear();
                    }
                    let (_, cols) = Self::screen();
                    let room = cols.saturating_sub(suffix.chars().count()).max(2);
                    self.commit(&format!("{}{suffix}", fit(&line, room)));
                }
                Event::CacheMiss(m) => self.commit(m),
                Event::Output(bytes) => {
                    self.partial.push_str(&String::from_utf8_lossy(bytes));
                    while let Some(i) = self.partial.find('\n') {
                        let line: String = self.partial.drain(..=i).collect();
                        // a progress bar rewrites its line with `\r`: keep what shows last
                        let shown = line.trim_end_matches(['\n', '\r']);
                        let shown = shown.rsplit('\r').next().unwrap_or_default();
                        self.tail.push_back(shown.to_string());
                        if self.tail.len() > TAIL_LINES {
                            self.tail.pop_front();
                        }
                    }
                    self.redraw();
                }
                Event::Warning(w) => {
                    self.erase();
                    output::warn(w);
                    self.redraw();
                }
                Event::Note(_) => {}
            },
        }
    }

    /// One `rawjson` event line (nothing in the other modes), with the wall-clock `time`
    /// (RFC 3339, milliseconds) and the seconds `elapsed` since the build started.
    fn json(&self, v: &serde_json::Value) {
        if self.mode == Progress::RawJson {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "time".into(),
                    chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        .into(),
                );
                o.insert(
                    "elapsed".into(),
                    serde_json::json!(round_ms(self.started.elapsed().as_secs_f64())),
                );
            }
            self.line(&v.to_string());
        }
    }

    /// A plain progress line, on standard output or (with `-o -`) standard error.
    fn line(&self, l: &str) {
        if self.to_stderr {
            output::note(l);
        } else {
            output::println(l);
        }
    }

    /// Live mode: the terminal's rows and columns, read at every redraw (so a resize is
    /// followed); 24×80 when standard output does not say.
    fn screen() -> (usize, usize) {
        match terminal_size::terminal_size_of(std::io::stdout()) {
            Some((terminal_size::Width(w), terminal_size::Height(h))) if w > 0 && h > 0 => {
                (usize::from(h), usize::from(w))
            }
            _ => (24, 80),
        }
    }

    /// Live mode: clears the rows the last redraw drew.
    fn erase(&mut self) {
        if self.drawn > 0 {
            output::write_raw(format!("\r\x1b[{}A\x1b[J", self.drawn).as_bytes());
            self.drawn = 0;
        }
    }

    /// Live mode: prints a finished line once, above the live part.
    fn commit(&mut self, line: &str) {
        self.erase();
        let (_, cols) = Self::screen();
        output::println(&fit(line, cols));
        self.redraw();
    }

    /// Live mode: redraws the running steps and their last output lines, at most the
    /// terminal's height less one row, each cut to its width.
    fn redraw(&mut self) {
        self.erase();
        let (rows, cols) = Self::screen();
        let room = rows.saturating_sub(1).max(1);
        let mut lines: Vec<String> = self.running.values().take(room).cloned().collect();
        let steps = lines.len().max(1);
        let partial = Some(&self.partial).filter(|p| !p.trim().is_empty());
        lines.extend(
            self.tail
                .iter()
                .chain(partial)
                .map(|l| format!("  > {}", l.rsplit('\r').next().unwrap_or_default())),
        );
        if lines.len() > room {
            // the step lines stay; the oldest output lines go
            let cut = lines.len() - room;
            lines.drain(steps..steps + cut);
        }
        let mut text = String::new();
        for l in &lines {
            text.push_str(&fit(l, cols));
            text.push('\n');
        }
        output::write_raw(text.as_bytes());
        self.drawn = lines.len();
    }

    /// Ends the live part: after a failure the running step and its last output lines stay on
    /// screen above the error (docker shows them); after a success nothing is left to draw.
    fn finish(&mut self, failed: bool) {
        if self.mode != Progress::Live {
            return;
        }
        self.erase();
        // BuildKit's total line: `[+] Building 3.2s (6/6) FINISHED`
        let (_, cols) = Self::screen();
        output::println(&fit(
            &format!(
                "[+] Building {:.1}s ({}/{}) {}",
                self.started.elapsed().as_secs_f64(),
                self.done,
                self.total,
                if failed { "FAILED" } else { "FINISHED" }
            ),
            cols,
        ));
        if failed {
            for r in std::mem::take(&mut self.running).values() {
                output::println(&fit(r, cols));
            }
            let partial = std::mem::take(&mut self.partial);
            for l in self
                .tail
                .iter()
                .chain(Some(&partial).filter(|p| !p.is_empty()))
            {
                output::println(&fit(&format!("  > {l}"), cols));
            }
        }
    }
}

/// Seconds rounded to the millisecond, for JSON.
fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// A line cut to fit `cols` columns without wrapping: control characters (escapes in RUN
/// output) become spaces, and a cut line ends with `…`. Counts one column per character.
fn fit(line: &str, cols: usize) -> String {
    let clean: Vec<char> = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let max = cols.saturating_sub(1).max(1);
    if clean.len() <= max {
        return clean.into_iter().collect();
    }
    let mut out: String = clean[..max - 1].iter().collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs() {
        let f = tempfile::NamedTempFile::new().expect("tmp");
        let spec = format!("id=tok,src={}", f.path().display());
        let (id, src) = parse_secret(&spec).expect("ok");
        assert_eq!(id, "tok");
        assert_eq!(src, f.path());
        assert!(parse_secret("id=tok").is_err());
        assert!(parse_secret("id=tok,env=X").is_err());
    }

    #[test]
    fn lines_fit_the_terminal() {
        assert_eq!(fit("short", 80), "short");
        let cut = fit(&"x".repeat(150), 80);
        assert_eq!(cut.chars().count(), 79);
        assert!(cut.ends_with('…'));
        assert_eq!(fit("a\tb\x1b[31mc", 80), "a b [31mc");
    }

    #[test]
    fn output_specs() {
        assert!(matches!(
            parse_output("type=local,dest=out").expect("ok"),
            ExportTarget::Local(p) if p == Path::new("out")
        ));
        assert!(matches!(
            parse_output("type=tar,dest=o.tar").expect("ok"),
            ExportTarget::Tar(_)
        ));
        assert!(parse_output("type=registry,dest=x").is_err());
        assert!(parse_output("type=local").is_err());
        assert!(matches!(
            parse_output("out").expect("ok"),
            ExportTarget::Local(p) if p == Path::new("out")
        ));
        assert!(is_stdout_output("-"));
        assert!(is_stdout_output("type=tar,dest=-"));
        assert!(!is_stdout_output("type=local,dest=-"));
    }
}
