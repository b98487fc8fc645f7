//! `hoist history [--no-trunc] [-q] [--format table|json] IMAGE`: an image's history, newest
//! first, as podman prints it: IMAGE (the ID on the top row, `<missing>` below), CREATED, CREATED
//! BY (cut at 45 characters unless `--no-trunc`), SIZE (the layer's unpacked size, its
//! uncompressed tar, as docker shows it; 0B for steps that changed only the config), COMMENT.

use std::process::ExitCode;

use chrono::Utc;
use serde::Serialize;

use super::inspect::ListFormat;
use super::{output, Globals};
use crate::store::{parse_time, Store};
use crate::util::{human_duration, human_size};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not cut long CREATED BY commands, show full IDs
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,

    /// Print the image ID column only (as a JSON array with `--format json`)
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Output format: `table`, `json`, or a Go template over ID, Created, CreatedSince,
    /// CreatedBy, Size, Comment (`{{.ID}} {{.CreatedBy}}`)
    #[arg(long = "format", value_name = "FORMAT", default_value = "table")]
    pub format: String,

    /// The image: a name, an ID or a unique ID prefix
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// `2 minutes ago`, or `N/A` without a valid time.
fn since(created: Option<&str>, now: chrono::DateTime<Utc>) -> String {
    created
        .and_then(parse_time)
        .map(|t| format!("{} ago", human_duration((now - t).num_seconds())))
        .unwrap_or_else(|| "N/A".into())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    created: Option<String>,
    created_by: String,
    size: u64,
    comment: String,
    empty_layer: bool,
}

const CREATED_BY_WIDTH: usize = 45;

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let format = ListFormat::parse(&args.format)?;
    let store = Store::open(&globals.root)?;
    let image = store.resolve(&args.image)?;
    let history = image.config.history().clone().unwrap_or_default();
    // docker's SIZE: what the layer unpacks to (its uncompressed tar)
    let layer_sizes = store.layer_unpacked_sizes(&image)?;
    // pair every non-empty entry with its layer, bottom up
    let mut rows = Vec::new();
    let mut layer = 0usize;
    for h in &history {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty {
            0
        } else {
            let s = layer_sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        rows.push(Row {
            id: "<missing>".into(),
            created: h.created().clone(),
            created_by: h.created_by().clone().unwrap_or_default(),
            size,
            comment: h.comment().clone().unwrap_or_default(),
            empty_layer: empty,
        });
    }
    rows.reverse();
    let id = if args.no_trunc {
        image.id.hex().to_owned()
    } else {
        image.id.short().to_owned()
    };
    match rows.first_mut() {
        Some(top) => top.id = id,
        None => rows.push(Row {
            id,
            created: image.config.created().clone(),
            created_by: String::new(),
            size: layer_sizes.iter().sum(),
            comment: String::new(),
            empty_layer: false,
        }),
    }
    if args.quiet {
        match format {
            ListFormat::Json => {
                let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                output::println(&serde_json::to_string_pretty(&ids)?);
            }
            ListFormat::Table => rows.iter().for_each(|r| output::println(&r.id)),
            ListFormat::Template(_) => {
                anyhow::bail!("`--quiet` and a `--format` template cannot be combined")
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        ListFormat::Json => output::println(&serde_json::to_string_pretty(&rows)?),
        ListFormat::Template(t) => {
            let now = Utc::now();
            for r in &rows {
                let mut v = serde_json::to_value(r)?;
                v["CreatedSince"] = serde_json::Value::String(since(r.created.as_deref(), now));
                v["Size"] = serde_json::Value::String(human_size(r.size));
                output::println(&t.render(&v)?);
            }
        }
        ListFormat::Table => {
            let now = Utc::now();
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let created = since(r.created.as_deref(), now);
                    let by = if args.no_trunc || r.created_by.chars().count() <= CREATED_BY_WIDTH {
                        r.created_by.clone()
                    } else {
                        let cut: String = r.created_by.chars().take(CREATED_BY_WIDTH - 3).collect();
                        format!("{cut}...")
                    };
                    vec![
                        r.id.clone(),
                        created,
                        by,
                        human_size(r.size),
                        r.comment.clone(),
                    ]
                })
                .collect();
            output::table(
                &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
                &table,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
