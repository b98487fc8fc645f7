//! `hoist inspect [--format TEMPLATE] IMAGE…`: an image's details as a JSON array (podman's
//! field names: Id, Digest, RepoTags, RepoDigests, Names, Created, Author, Os, Architecture,
//! Config, RootFS, History, Size, VirtualSize, CompressedSize, ManifestType, Labels). Size is
//! docker's: the unpacked size (the layers' uncompressed tars); CompressedSize is what the
//! manifest, config and layer blobs take in the store. `Config` is the stored config's
//! `config` object as written, so docker's fields (`Healthcheck`, `OnBuild`, `Shell`) show too. `--format` takes the simple Go template
//! forms scripts use: `{{.Id}}`, `{{.Config.Env}}`, `{{json .Config}}`.

use std::process::ExitCode;

use serde_json::{json, Value};

use super::{output, Globals};
use crate::store::{ImageRecord, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print each image through a template (`{{.Id}}`, `{{json .Config}}`) instead of JSON
    #[arg(short = 'f', long = "format", value_name = "TEMPLATE")]
    pub format: Option<String>,

    /// Images to inspect: names, IDs or unique ID prefixes
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let template = match &args.format {
        Some(t) if t != "json" => Some(Template::parse(t)?),
        _ => None,
    };
    let store = Store::open(&globals.root)?;
    let mut out = Vec::new();
    for i in &args.images {
        let image = store.resolve(i)?;
        let raw = stored_config(&store, &image)?;
        let unpacked = store.unpacked_size(&image)?;
        out.push(inspect_value(&image, raw, unpacked));
    }
    match template {
        Some(t) => {
            for v in &out {
                output::println(&t.render(v)?);
            }
        }
        None => output::println(&serde_json::to_string_pretty(&out)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The `config` object of the image's config blob exactly as stored: every field under the
/// name docker gives it (`Healthcheck`, `OnBuild`, `Shell`, `StopSignal`, `ArgsEscaped`, …),
/// including the Docker fields the OCI types leave out. `None` when the blob has no `config`.
fn stored_config(store: &Store, r: &ImageRecord) -> anyhow::Result<Option<Value>> {
    let blob = store.read_blob(&r.id)?;
    let doc: Value = serde_json::from_slice(&blob)
        .map_err(|e| anyhow::anyhow!("config of image `{}`: {e}", r.id.hex()))?;
    Ok(doc.get("config").filter(|c| c.is_object()).cloned())
}

/// The JSON document `inspect` prints for one image; `raw_config` is the stored `config`
/// object (see [`stored_config`]), else the OCI fields are shown. `unpacked` is docker's Size:
/// the sum of the layers' uncompressed tar sizes ([`Store::unpacked_size`]).
pub fn inspect_value(r: &ImageRecord, raw_config: Option<Value>, unpacked: u64) -> Value {
    let cfg = &r.config;
    let names: Vec<String> = r.names.iter().map(|n| n.to_string()).collect();
    let repo_digests: Vec<String> = r
        .names
        .iter()
        .map(|n| format!("{}@{}", n.repository(), r.manifest_digest))
        .collect();
    let config = raw_config.unwrap_or_else(|| {
        cfg.config()
            .as_ref()
            .map(|c| serde_json::to_value(c).unwrap_or(Value::Null))
            .unwrap_or_else(|| json!({}))
    });
    let labels = cfg
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .map(|l| serde_json::to_value(l.into_iter().collect::<std::collections::BTreeMap<_, _>>()))
        .transpose()
        .unwrap_or(None)
        .unwrap_or(Value::Null);
    json!({
        "Id": r.id.hex(),
        "Digest": r.manifest_digest.to_string(),
        "RepoTags": names,
        "RepoDigests": repo_digests,
        "Names": names,
        "Created": cfg.created(),
        "Author": cfg.author().clone().unwrap_or_default(),
        "Os": cfg.os().to_string(),
        "Architecture": cfg.architecture().to_string(),
        "Variant": cfg.variant(),
        "Config": config,
        "RootFS": {
            "Type": cfg.rootfs().typ(),
            "Layers": cfg.rootfs().diff_ids(),
        },
        "History": cfg.history().clone().unwrap_or_default(),
        "Size": unpacked,
        "VirtualSize": unpacked,
        "CompressedSize": r.size,
        "ManifestType": r.manifest_media_type,
        "Labels": labels,
    })
}

/// A small Go-template subset: literal text, `{{.A.B}}` and `{{json .A.B}}` (also used by
/// `images` and `history`). `\t` and `\n` in the text stand for a tab and a newline, as podman
/// reads them.
#[derive(Debug)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Field { path: Vec<String>, json: bool },
}

impl Template {
    pub(crate) fn parse(t: &str) -> anyhow::Result<Template> {
        let mut parts = Vec::new();
        let mut rest = t;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| anyhow::anyhow!("template `{t}`: `{{{{` without `}}}}`"))?;
            let action = after[..end].trim();
            let (json, field) = match action.strip_prefix("json ") {
                Some(f) => (true, f.trim()),
                None => (false, action),
            };
            let path = if field == "." {
                Vec::new()
            } else {
                let Some(p) = field.strip_prefix('.') else {
                    anyhow::bail!(
                        "template `{t}`: unsupported action `{action}` (use `{{{{.Field}}}}` or `{{{{json .Field}}}}`)"
                    );
                };
                p.split('.').map(str::to_owned).collect()
            };
            parts.push(Part::Field { path, json });
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    pub(crate) fn render(&self, v: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(&t.replace("\\t", "\t").replace("\\n", "\n")),
                Part::Field { path, json } => {
                    let mut cur = v;
                    for (i, key) in path.iter().enumerate() {
                        cur = match cur.get(key) {
                            Some(x) => x,
                            None if cur.is_object() && i == path.len() - 1 => &Value::Null,
                            None => anyhow::bail!(
                                "template: no field `{}` in the inspect output",
                                path[..=i].join(".")
                            ),
                        };
                    }
                    if *json {
                        out.push_str(&serde_json::to_string(cur)?);
                    } else {
                        out.push_str(&go_print(cur));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// How Go's template package prints a value.
fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_like_go() {
        let v = json!({"Id": "abc", "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v"}}, "Size": 3});
        let table = [
            ("{{.Id}}", "abc"),
            ("id={{ .Id }} size={{.Size}}", "id=abc size=3"),
            ("{{.Config.Env}}", "[A=1 B=2]"),
            ("{{.Config.Labels}}", "map[k:v]"),
            ("{{json .Config.Env}}", "[\"A=1\",\"B=2\"]"),
            ("{{.Config.User}}", "<no value>"),
        ];
        for (t, want) in table {
            let got = Template::parse(t).expect(t).render(&v).expect(t);
            assert_eq!(got, want, "{t}");
        }
        assert!(Template::parse("{{.Id").is_err());
        assert!(Template::parse("{{range .X}}").is_err());
        assert!(Template::parse("{{.Nope.Deeper}}")
            .expect("parse")
            .render(&v)
            .is_err());
    }
}

/// What `--format` asks of a listing verb: `table` (default), `json`, or a Go template.
#[derive(Debug)]
pub(crate) enum ListFormat {
    Table,
    Json,
    Template(Template),
}

impl ListFormat {
    pub(crate) fn parse(s: &str) -> anyhow::Result<ListFormat> {
        match s {
            "table" => Ok(ListFormat::Table),
            "json" => Ok(ListFormat::Json),
            t if t.starts_with("table ") => anyhow::bail!(
                "format `{t}`: `table TEMPLATE` is not supported: use `table`, `json` or a template such as `{{{{.ID}}}}`"
            ),
            t if t.contains("{{") => Ok(ListFormat::Template(Template::parse(t)?)),
            t => anyhow::bail!(
                "unsupported format `{t}`: use `table`, `json` or a Go template such as `{{{{.ID}}}}`"
            ),
        }
    }
}
