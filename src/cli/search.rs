//! `hoist search REGISTRY/TERM`: the repositories of a registry's catalog (`/v2/_catalog`)
//! whose name contains TERM; `--list-tags REGISTRY/REPO` lists a repository's tags. The
//! distribution API has no search: a registry without a catalog (Docker Hub, most hosted ones)
//! gets a clear message instead.

use std::process::ExitCode;

use super::pull::RegistryArgs;
use super::Globals;
use crate::registry::Registries;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// `REGISTRY/TERM` (`REGISTRY/` lists every repository); with `--list-tags`, `REGISTRY/REPO`
    #[arg(value_name = "REGISTRY/TERM")]
    pub term: String,
    /// List the tags of the repository named instead of searching
    #[arg(long)]
    pub list_tags: bool,
    /// Show at most N results
    #[arg(long, value_name = "N", default_value_t = 25)]
    pub limit: usize,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub fn run(args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let text = args.term.strip_prefix("docker://").unwrap_or(&args.term);
    let (host, term) = match text.split_once('/') {
        Some((h, t)) if h.contains('.') || h.contains(':') || h == "localhost" => (h, t),
        _ => anyhow::bail!(
            "`{text}`: name the registry to search, as `REGISTRY/TERM` (the distribution API has no search across registries)"
        ),
    };
    if args.limit == 0 {
        anyhow::bail!("`--limit` must be at least 1");
    }
    let regs: Registries = args.registry.session()?;
    if regs.conf.host_blocked(host) {
        anyhow::bail!("registry `{host}` is blocked in registries.conf");
    }
    let client = regs.client(host, regs.conf.host_insecure(host))?;
    if args.list_tags {
        let repo = term.split([':', '@']).next().unwrap_or(term);
        if repo.is_empty() {
            anyhow::bail!("`--list-tags` needs a repository: `REGISTRY/REPO`");
        }
        let tags = client.tags(repo, args.limit)?;
        let rows: Vec<Vec<String>> = tags
            .into_iter()
            .map(|t| vec![format!("{host}/{repo}"), t])
            .collect();
        super::output::table(&["NAME", "TAG"], &rows);
    } else {
        // the whole catalog is read (it has no filter); the limit applies to the matches
        let repos = client.catalog(100_000)?;
        let rows: Vec<Vec<String>> = repos
            .into_iter()
            .filter(|r| r.contains(term))
            .take(args.limit)
            .map(|r| vec![format!("{host}/{r}")])
            .collect();
        super::output::table(&["NAME"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}
