//! The context-level rows of the `.dockerignore` corpus: fsutil's walk cases
//! (`walk-cases.json`) and the Docker/BuildKit build scenarios (`build-scenarios.json`), checked
//! on what `COPY . DEST` would see. Every failing case is named.

use hoist::context::{Context, CopyOptions, WalkOptions};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn load_json(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dockerignore")
        .join(name);
    serde_json::from_str(&fs::read_to_string(path).expect("corpus file")).expect("json")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn report(what: &str, total: usize, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} of {total} {what} failed\n{}\n{}\n{}",
            failures.len(),
            "-".repeat(72),
            failures.join("\n"),
            "-".repeat(72)
        );
    }
}

/// A tree from a walk case, with its exclude patterns in an ignore file *outside* the context
/// (next to a Dockerfile named with `-f`), so the walk sees exactly the case's tree.
fn walk_case_context(case: &Value) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).expect("ctx");
    for item in case["tree"].as_array().expect("tree") {
        let p = ctx.join(item["path"].as_str().expect("path"));
        if item["type"] == "dir" {
            fs::create_dir_all(&p).expect("dir");
        } else {
            fs::create_dir_all(p.parent().expect("parent")).expect("dir");
            fs::write(&p, b"x").expect("file");
        }
    }
    let df = tmp.path().join("Dockerfile");
    fs::write(&df, "FROM scratch\n").expect("Dockerfile");
    let mut ignore = strings(&case["exclude_patterns"]).join("\n");
    ignore.push('\n');
    fs::write(tmp.path().join("Dockerfile.dockerignore"), ignore).expect("ignore");
    (tmp, ctx, df)
}

#[test]
fn every_walk_case() {
    let doc = load_json("walk-cases.json");
    let cases = doc["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let (_tmp, ctx, df) = walk_case_context(case);
        let opened = Context::open(&ctx, Some(&df));
        if case["expected_error"] == true {
            if opened.is_ok() {
                failures.push(format!("{name}: expected an error, the context opened"));
            }
            continue;
        }
        let ctx = match opened {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if case.get("expected_walk").is_some() {
            let opts = WalkOptions {
                include: strings(&case["include_patterns"]),
                exclude: Vec::new(),
            };
            match ctx.walk(&opts) {
                Ok(entries) => {
                    let got: Vec<String> = entries.iter().map(|e| e.listing()).collect();
                    let expected = strings(&case["expected_walk"]);
                    if got != expected {
                        failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
                    }
                }
                Err(e) => failures.push(format!("{name}: walk failed: {e}")),
            }
        }
        for p in strings(&case["openable"]) {
            if let Err(e) = ctx.open_file(&p) {
                failures.push(format!("{name}: `{p}` should open: {e}"));
            }
        }
        for p in strings(&case["not_openable"]) {
            if ctx.open_file(&p).is_ok() {
                failures.push(format!("{name}: `{p}` should not open"));
            }
        }
    }
    report("walk cases", cases.len(), failures);
}

/// Makes a scenario's context; returns (temp dir, context dir, Dockerfile path or None for stdin).
fn scenario_context(
    s: &Value,
    dockerfile_name: Option<&str>,
) -> (tempfile::TempDir, PathBuf, Option<PathBuf>) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let ctx = tmp.path().join("ctx");
    fs::create_dir(&ctx).expect("ctx");
    for (path, content) in s["context_files"].as_object().expect("context_files") {
        let p = ctx.join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        fs::write(&p, content.as_str().expect("content")).expect("file");
    }
    if let Some(text) = s["dockerignore"].as_str() {
        fs::write(ctx.join(".dockerignore"), text).expect(".dockerignore");
    }
    if s.get("dockerfile_from_stdin").is_some() {
        return (tmp, ctx, None);
    }
    let name = dockerfile_name
        .or(s["dockerfile_name"].as_str())
        .unwrap_or("Dockerfile");
    let df = ctx.join(name);
    if !df.exists() {
        let text = s["dockerfile"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("FROM busybox\n{}\n", s["copy"].as_str().unwrap_or("")));
        fs::write(&df, text).expect("Dockerfile");
    }
    (tmp, ctx, Some(df))
}

/// The `dest`s `COPY . DEST` would write.
fn copied(ctx: &Context) -> Result<Vec<String>, String> {
    let sources = ctx
        .resolve_sources(&["."], &CopyOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(sources
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.dest.clone()))
        .filter(|d| !d.is_empty())
        .collect())
}

fn check_presence(
    name: &str,
    got: &[String],
    present: &[String],
    absent: &[String],
    failures: &mut Vec<String>,
) {
    for p in present {
        if !got.contains(p) {
            failures.push(format!("{name}: `{p}` should be copied; copied {got:?}"));
        }
    }
    for p in absent {
        if got
            .iter()
            .any(|g| g == p || g.starts_with(&format!("{p}/")))
        {
            failures.push(format!(
                "{name}: `{p}` should not be copied; copied {got:?}"
            ));
        }
    }
}

#[test]
fn every_build_scenario_at_the_context_level() {
    let doc = load_json("build-scenarios.json");
    let scenarios = doc["scenarios"].as_array().expect("scenarios");
    let mut failures = Vec::new();
    for s in scenarios {
        let name = s["name"].as_str().expect("name");
        if let Some(builds) = s["builds"].as_array() {
            for b in builds {
                let df_name = b["dockerfile_name"].as_str().expect("dockerfile_name");
                let (_tmp, dir, df) = scenario_context(s, Some(df_name));
                let label = format!("{name} (-f {df_name})");
                match Context::open(&dir, df.as_deref())
                    .map_err(|e| e.to_string())
                    .and_then(|c| copied(&c))
                {
                    Ok(got) => check_presence(
                        &label,
                        &got,
                        &strings(&b["present"]),
                        &strings(&b["absent"]),
                        &mut failures,
                    ),
                    Err(e) => failures.push(format!("{label}: {e}")),
                }
            }
            continue;
        }
        let (_tmp, dir, df) = scenario_context(s, None);
        let result = Context::open(&dir, df.as_deref())
            .map_err(|e| e.to_string())
            .and_then(|c| copied(&c).map(|got| (c, got)));
        if s["expect"] == "error" {
            match result {
                Ok(_) => failures.push(format!("{name}: expected an error")),
                Err(e) => {
                    if let Some(want) = s["error_contains"].as_str() {
                        if !e.contains(want) {
                            failures.push(format!("{name}: error {e:?} lacks {want:?}"));
                        }
                    }
                }
            }
            continue;
        }
        let (ctx, got) = match result {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        check_presence(
            name,
            &got,
            &strings(&s["present"]),
            &strings(&s["absent"]),
            &mut failures,
        );
        if let Some(exact) = s["exact_listing"].as_array() {
            let top: Vec<String> = got.iter().filter(|d| !d.contains('/')).cloned().collect();
            let want: Vec<String> = exact
                .iter()
                .map(|v| v.as_str().expect("s").to_string())
                .collect();
            if top != want {
                failures.push(format!("{name}: expected exactly {want:?}, got {top:?}"));
            }
        }
        if let Some(contents) = s["contents"].as_object() {
            for (path, want) in contents {
                let mut text = String::new();
                use std::io::Read;
                match ctx.open_file(path).map(|mut f| f.read_to_string(&mut text)) {
                    Ok(_) if text == want.as_str().unwrap_or("") => {}
                    other => {
                        failures.push(format!("{name}: `{path}` content {text:?} ({other:?})"))
                    }
                }
            }
        }
        if let Some(df) = &df {
            // the Dockerfile is readable by the builder even when ignored
            if let Err(e) = ctx.read_dockerfile() {
                failures.push(format!(
                    "{name}: Dockerfile `{}` unreadable: {e}",
                    df.display()
                ));
            }
            if name.starts_with("TestBuildDockerignoreTouchDockerfile") {
                let before = ctx
                    .resolve_sources(&["."], &CopyOptions::default())
                    .and_then(|s| ctx.digest(&s));
                fs::write(df, "FROM busybox\nADD . /tmp/\n# touched\n").expect("touch");
                let after = ctx
                    .resolve_sources(&["."], &CopyOptions::default())
                    .and_then(|s| ctx.digest(&s));
                match (before, after) {
                    (Ok(b), Ok(a)) if a == b => {}
                    (b, a) => failures.push(format!(
                        "{name}: digest changed with the ignored Dockerfile: {b:?} vs {a:?}"
                    )),
                }
            }
        }
    }
    report("build scenarios", scenarios.len(), failures);
}
