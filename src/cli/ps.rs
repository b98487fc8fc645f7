//! `hoist ps [-a]` and `hoist containers` (buildah's): the working containers of the store.
//! `ps` alone lists the containers a hoist process is using now (docker's running ones); `-a`
//! and `containers` list them all.

use std::process::ExitCode;

use super::{output, Globals};
use crate::store::containers::{self, ContainerRecord};
use crate::store::Store;
use crate::util::human_duration;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Columns: CONTAINER ID (short), IMAGE (as named when the container was made), COMMAND (the last one run), CREATED, STATUS (`Up` while a hoist process uses it, `Exited` after a run, `Created` before any) and NAMES. hoist runs no container in the background: `ps` alone shows only containers in use right now; `ps -a` (and `hoist containers`) shows every container."
)]
pub struct Args {
    /// List every container, not only those in use
    #[arg(short, long)]
    pub all: bool,
    /// Print only the container IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: `table` or `json` (one object per line)
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: String,
}

fn status(store: &Store, r: &ContainerRecord) -> &'static str {
    if containers::in_use(store, r) {
        "Up"
    } else if r.command.is_empty() {
        "Created"
    } else {
        "Exited"
    }
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.format != "table" && args.format != "json" {
        anyhow::bail!(
            "unknown `--format` `{}`: use `table` or `json`",
            args.format
        );
    }
    let store = Store::open(&globals.root)?;
    let all = containers::list(&store)?;
    let shown: Vec<&ContainerRecord> = all
        .iter()
        .filter(|r| args.all || containers::in_use(&store, r))
        .collect();
    if args.quiet {
        for r in shown {
            output::println(&r.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.format == "json" {
        for r in shown {
            let v = serde_json::json!({
                "Id": r.id,
                "Names": [r.name],
                "Image": r.image,
                "ImageID": r.image_id,
                "Command": r.command.join(" "),
                "Created": r.created,
                "State": status(&store, r),
                "LastCommit": r.last_commit,
            });
            output::println(&v.to_string());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono::Utc::now();
    let rows: Vec<Vec<String>> = shown
        .iter()
        .map(|r| {
            let created = chrono::DateTime::parse_from_rfc3339(&r.created)
                .map(|t| format!("{} ago", human_duration((now - t.to_utc()).num_seconds())))
                .unwrap_or_else(|_| r.created.clone());
            let mut cmd = r.command.join(" ");
            if cmd.chars().count() > 30 {
                cmd = cmd.chars().take(29).collect::<String>() + "…";
            }
            vec![
                r.id[..12].to_string(),
                r.image.clone(),
                format!("\"{cmd}\""),
                created,
                status(&store, r).to_string(),
                r.name.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "NAMES",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
