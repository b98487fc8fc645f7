//! `hoist images [-a] [-q] [--no-trunc] [-f KEY=VALUE]… [--format table|json|TEMPLATE]
//! [REPOSITORY[:TAG]]`: lists the
//! images of the store as podman does: one row per name, unnamed images as `<none> <none>`,
//! newest first. Unnamed images that are another image's parent (intermediate) show only with
//! `-a`. SIZE is docker's: the unpacked size (the sum of the layers' uncompressed tars, see
//! `store/sizes.rs`); `--digests` adds the bytes the blobs take in the store (CONTENT SIZE,
//! docker's name in `docker images --tree`).

use std::process::ExitCode;

use chrono::Utc;
use serde::Serialize;

use super::inspect::ListFormat;
use super::{output, Globals};
use crate::image::Reference;
use crate::store::{has_children, ImageRecord, Store};
use crate::util::{human_duration, human_size};

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "One row per name; an unnamed image shows as `<none> <none>`. Unnamed images that are the parent of another image (intermediate images) are shown only with `--all`, as podman does. Rows are sorted newest first. SIZE is the unpacked size, as docker and podman show it: the sum of the image's uncompressed layers. With `--digests`, CONTENT SIZE is what the image's blobs take in the store (manifest, config and layers as stored, compressed or not). Names are full: `localhost/app` for images named here, `docker.io/library/busybox` for Docker Hub names."
)]
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

    /// Show the manifest digest in a DIGEST column, and the bytes the image's blobs take in the
    /// store in a CONTENT SIZE column
    #[arg(long = "digests")]
    pub digests: bool,

    /// Output format: `table`, `json`, or a Go template over ID, Repository, Tag, Digest,
    /// CreatedSince, CreatedAt, Size (unpacked), ContentSize (as stored)
    /// (`{{.Repository}}:{{.Tag}}`)
    #[arg(long = "format", value_name = "FORMAT", default_value = "table")]
    pub format: String,

    /// Show only images matching every filter: `dangling=true|false`, `label=KEY[=VALUE]`,
    /// `reference=PATTERN` (glob over names), `before=IMAGE`, `since=IMAGE`
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,

    /// Show only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub filter: Option<String>,
}

/// One `--filter`.
enum Filter {
    Dangling(bool),
    Label(String, Option<String>),
    Reference(globset::GlobMatcher),
    Before(String),
    Since(String),
}

impl Filter {
    fn parse(s: &str) -> anyhow::Result<Filter> {
        let Some((key, value)) = s.split_once('=') else {
            anyhow::bail!("filter `{s}`: expected KEY=VALUE");
        };
        Ok(match key {
            "dangling" => match value {
                "true" | "1" => Filter::Dangling(true),
                "false" | "0" => Filter::Dangling(false),
                _ => anyhow::bail!("filter `{s}`: dangling takes `true` or `false`"),
            },
            "label" => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_owned(), Some(v.to_owned())),
                None => Filter::Label(value.to_owned(), None),
            },
            "reference" => Filter::Reference(
                globset::GlobBuilder::new(value)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| anyhow::anyhow!("filter `{s}`: {e}"))?
                    .compile_matcher(),
            ),
            "before" => Filter::Before(value.to_owned()),
            "since" => Filter::Since(value.to_owned()),
            _ => anyhow::bail!(
                "unsupported filter `{key}` (supported: dangling, label, reference, before, since)"
            ),
        })
    }
}

/// The forms a reference pattern is matched against: `docker.io/library/busybox:latest`,
/// `docker.io/library/busybox`, `busybox:latest`, `busybox`.
fn reference_forms(n: &Reference) -> Vec<String> {
    let repo = n.repository();
    let last = n.path().rsplit('/').next().unwrap_or(n.path()).to_owned();
    let tag = n.tag().unwrap_or("latest");
    vec![
        format!("{repo}:{tag}"),
        repo,
        format!("{last}:{tag}"),
        last,
        n.familiar(),
    ]
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
    virtual_size: u64,
    content_size: u64,
    dangling: bool,
    labels: std::collections::BTreeMap<String, String>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let format = ListFormat::parse(&args.format)?;
    // a filter names a repository, optionally with a tag
    let filter = match &args.filter {
        Some(f) => {
            let with_tag = f.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
            Some((Reference::candidates(f)?, with_tag))
        }
        None => None,
    };
    let filters = args
        .filters
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = Store::open(&globals.root)?;
    let all = store.images()?;
    // before/since name an image whose creation time bounds the listing
    let mut bounds = Vec::new();
    for f in &filters {
        if let Filter::Before(i) | Filter::Since(i) = f {
            let r = store.resolve(i)?;
            bounds.push((matches!(f, Filter::Before(_)), r.created, r.id));
        }
    }
    let reference_ok = |n: &Reference| {
        filters.iter().all(|f| match f {
            Filter::Reference(g) => reference_forms(n).iter().any(|form| g.is_match(form)),
            _ => true,
        })
    };
    let has_reference_filter = filters.iter().any(|f| matches!(f, Filter::Reference(_)));
    let image_ok = |r: &ImageRecord| {
        let labels = r
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        let simple = filters.iter().all(|f| match f {
            Filter::Dangling(d) => r.is_dangling() == *d,
            Filter::Label(k, v) => match (labels.get(k), v) {
                (Some(have), Some(want)) => have == want,
                (Some(_), None) => true,
                (None, _) => false,
            },
            Filter::Reference(_) => r.names.iter().any(reference_ok),
            Filter::Before(_) | Filter::Since(_) => true,
        });
        let bounded = bounds.iter().all(|(before, t, id)| {
            &r.id != id
                && match (r.created, t) {
                    (Some(c), Some(t)) => {
                        if *before {
                            c < *t
                        } else {
                            c > *t
                        }
                    }
                    _ => false,
                }
        });
        simple && bounded
    };
    let mut shown: Vec<&ImageRecord> = all
        .iter()
        .filter(|r| args.all || !r.is_dangling() || !has_children(&all, r))
        .filter(|r| image_ok(r))
        .collect();
    // newest first, then by first name
    shown.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.names.first().cmp(&b.names.first()))
    });
    let name_matches = |n: &Reference| match &filter {
        None => !has_reference_filter || reference_ok(n),
        Some((cands, with_tag)) => {
            (!has_reference_filter || reference_ok(n))
                && cands
                    .iter()
                    .any(|c| c.repository() == n.repository() && (!with_tag || c.tag() == n.tag()))
        }
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
        match format {
            ListFormat::Json => output::println(&serde_json::to_string_pretty(&ids)?),
            ListFormat::Table => ids.iter().for_each(|i| output::println(i)),
            ListFormat::Template(_) => {
                anyhow::bail!("`--quiet` and a `--format` template cannot be combined")
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = Utc::now();
    let mut unpacked = std::collections::HashMap::new();
    for r in &shown {
        if !unpacked.contains_key(&r.id) {
            unpacked.insert(r.id.clone(), store.unpacked_size(r)?);
        }
    }
    let unpacked_of = |r: &ImageRecord| unpacked.get(&r.id).copied().unwrap_or_default();
    // one row per shown name (or one `<none>` row for an unnamed image)
    let mut rows: Vec<RowValues> = Vec::new();
    for r in &shown {
        let created = match r.created {
            Some(t) => format!("{} ago", human_duration((now - t).num_seconds())),
            None => "N/A".to_owned(),
        };
        let names: Vec<&Reference> = r.names.iter().filter(|n| name_matches(n)).collect();
        let pairs: Vec<(String, String)> = if names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            names
                .iter()
                .map(|n| (n.repository(), n.tag().unwrap_or("<none>").to_owned()))
                .collect()
        };
        for (repository, tag) in pairs {
            rows.push(RowValues {
                id: id_of(r),
                repository,
                tag,
                digest: r.manifest_digest.to_string(),
                created_since: created.clone(),
                created_at: r.created.map(|t| t.to_rfc3339()).unwrap_or_default(),
                size: human_size(unpacked_of(r)),
                content_size: human_size(r.size),
            });
        }
    }
    match format {
        ListFormat::Json => {
            let list: Vec<JsonImage> = shown
                .iter()
                .map(|r| json_image(r, unpacked_of(r)))
                .collect();
            output::println(&serde_json::to_string_pretty(&list)?);
        }
        ListFormat::Template(t) => {
            for row in &rows {
                output::println(&t.render(&serde_json::to_value(row)?)?);
            }
        }
        ListFormat::Table => {
            let table: Vec<Vec<String>> = rows
                .into_iter()
                .map(|r| {
                    let mut row = vec![r.repository, r.tag];
                    if args.digests {
                        row.push(r.digest);
                    }
                    row.extend([r.id, r.created_since, r.size]);
                    if args.digests {
                        row.push(r.content_size);
                    }
                    row
                })
                .collect();
            let header: &[&str] = if args.digests {
                &[
                    "REPOSITORY",
                    "TAG",
                    "DIGEST",
                    "IMAGE ID",
                    "CREATED",
                    "SIZE",
                    "CONTENT SIZE",
                ]
            } else {
                &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
            };
            output::table(header, &table);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One listing row, as templates see it (podman's field names).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RowValues {
    #[serde(rename = "ID")]
    id: String,
    repository: String,
    tag: String,
    digest: String,
    created_since: String,
    created_at: String,
    /// The unpacked size.
    size: String,
    /// What the blobs take in the store.
    content_size: String,
}

fn json_image(r: &ImageRecord, unpacked: u64) -> JsonImage {
    let names: Vec<String> = r.names.iter().map(|n| n.to_string()).collect();
    JsonImage {
        id: r.id.hex().to_owned(),
        repo_tags: names.clone(),
        names,
        digest: r.manifest_digest.to_string(),
        created: r.created.map(|t| t.timestamp()).unwrap_or(0),
        created_at: r.created.map(|t| t.to_rfc3339()),
        size: unpacked,
        virtual_size: unpacked,
        content_size: r.size,
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
