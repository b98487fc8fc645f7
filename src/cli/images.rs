//! `hoist images [-a] [-q] [--no-trunc] [--format table|json] [REPOSITORY[:TAG]]`: lists the
//! images of the store as podman does: one row per name, unnamed images as `<none> <none>`,
//! newest first. Unnamed images that are another image's parent (intermediate) show only with
//! `-a`. SIZE is the bytes the image's blobs take in the store (compressed layers).

use std::process::ExitCode;

use chrono::Utc;
use serde::Serialize;

use super::{output, Globals};
use crate::image::Reference;
use crate::store::{has_children, ImageRecord, Store};
use crate::util::{human_duration, human_size};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show intermediate images too (unnamed parents of other images)
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Print image IDs only (as a JSON array with `--format json`)
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Show full image IDs
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,

    /// Output format
    #[arg(long = "format", value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Show only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub filter: Option<String>,
}

/// How to print a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonImage {
    id: String,
    names: Vec<String>,
    repo_tags: Vec<String>,
    digest: String,
    created: i64,
    created_at: Option<String>,
    size: u64,
    dangling: bool,
    labels: std::collections::BTreeMap<String, String>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    // a filter names a repository, optionally with a tag
    let filter = match &args.filter {
        Some(f) => {
            let with_tag = f.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
            Some((Reference::candidates(f)?, with_tag))
        }
        None => None,
    };
    let store = Store::open(&globals.root)?;
    let all = store.images()?;
    let mut shown: Vec<&ImageRecord> = all
        .iter()
        .filter(|r| args.all || !r.is_dangling() || !has_children(&all, r))
        .collect();
    // newest first, then by first name
    shown.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.names.first().cmp(&b.names.first()))
    });
    let name_matches = |n: &Reference| match &filter {
        None => true,
        Some((cands, with_tag)) => cands
            .iter()
            .any(|c| c.repository() == n.repository() && (!with_tag || c.tag() == n.tag())),
    };
    if filter.is_some() {
        shown.retain(|r| r.names.iter().any(name_matches));
    }
    let id_of = |r: &ImageRecord| {
        if args.no_trunc {
            r.id.to_string()
        } else {
            r.id.short().to_owned()
        }
    };
    if args.quiet {
        // IDs only: one per line, or a JSON array of them with `--format json`
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = shown
            .iter()
            .filter(|r| seen.insert(&r.id))
            .map(|r| id_of(r))
            .collect();
        match args.format {
            Format::Json => output::println(&serde_json::to_string_pretty(&ids)?),
            Format::Table => ids.iter().for_each(|i| output::println(i)),
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        Format::Json => {
            let list: Vec<JsonImage> = shown.iter().map(|r| json_image(r)).collect();
            output::println(&serde_json::to_string_pretty(&list)?);
        }
        Format::Table => {
            let now = Utc::now();
            let mut rows = Vec::new();
            for r in &shown {
                let created = match r.created {
                    Some(t) => format!("{} ago", human_duration((now - t).num_seconds())),
                    None => "N/A".to_owned(),
                };
                let size = human_size(r.size);
                let names: Vec<&Reference> = r.names.iter().filter(|n| name_matches(n)).collect();
                if names.is_empty() {
                    rows.push(vec![
                        "<none>".into(),
                        "<none>".into(),
                        id_of(r),
                        created.clone(),
                        size.clone(),
                    ]);
                }
                for n in names {
                    rows.push(vec![
                        n.repository(),
                        n.tag().unwrap_or("<none>").to_owned(),
                        id_of(r),
                        created.clone(),
                        size.clone(),
                    ]);
                }
            }
            output::table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn json_image(r: &ImageRecord) -> JsonImage {
    let names: Vec<String> = r.names.iter().map(|n| n.to_string()).collect();
    JsonImage {
        id: r.id.hex().to_owned(),
        repo_tags: names.clone(),
        names,
        digest: r.manifest_digest.to_string(),
        created: r.created.map(|t| t.timestamp()).unwrap_or(0),
        created_at: r.created.map(|t| t.to_rfc3339()),
        size: r.size,
        dangling: r.is_dangling(),
        labels: r
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}
