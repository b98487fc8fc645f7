//! Buildah's conformance cases that need only the busybox base (`fixtures/buildah-conformance`,
//! see its README for the selection and the `FROM` rewrite), as suite cases: the context
//! directory is copied, the case's Dockerfile text and `.dockerignore` tweak are written into
//! it, and (case 43) setuid, setgid and sticky files are made.

use super::cases::SETUID_REASON;
use super::{Case, Difference, Outcome};
use serde_json::Value;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/buildah-conformance")
}

/// The upstream cases' setuid tweak: four files with special mode bits.
fn setuid_tweak(ctx: &Path) {
    for (name, mode) in [
        ("should-be-setuid-file", 0o4755),
        ("should-be-setgid-file", 0o2755),
        ("should-be-sticky-file", 0o1755),
        ("should-not-be-setuid-setgid-sticky-file", 0o640),
    ] {
        let p = ctx.join(name);
        fs::write(&p, "test content").expect("tweak file");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

/// Where hoist deliberately differs from Debian's buildah in a conformance case.
fn differences(index: u64) -> Vec<Difference> {
    match index {
        43 => vec![
            Difference::Path(
                "/subdir1/should-be-setuid-file",
                Some("/subdir1/should-be-setuid-file file 4755 0:0 12 6ae8a75555209fd6"),
                SETUID_REASON,
            ),
            Difference::Path(
                "/subdir1/should-be-setgid-file",
                Some("/subdir1/should-be-setgid-file file 2755 0:0 12 6ae8a75555209fd6"),
                SETUID_REASON,
            ),
            Difference::Path(
                "/subdir2/should-be-setuid-file",
                Some("/subdir2/should-be-setuid-file file 4755 0:0 12 6ae8a75555209fd6"),
                SETUID_REASON,
            ),
            Difference::Path(
                "/subdir2/should-be-setgid-file",
                Some("/subdir2/should-be-setgid-file file 2755 0:0 12 6ae8a75555209fd6"),
                SETUID_REASON,
            ),
        ],
        _ => Vec::new(),
    }
}

/// The suite name of a case: its upstream index and name, e.g. `043-setuid-file-in-context`.
pub fn case_id(index: u64, name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{index:03}-{slug}")
}

/// Every selected conformance case.
pub fn all() -> Vec<Case> {
    let text = fs::read_to_string(dir().join("cases.json")).expect("cases.json");
    let doc: Value = serde_json::from_str(&text).expect("cases.json is json");
    let mut out = Vec::new();
    for c in doc["cases"].as_array().expect("cases") {
        let index = c["index"].as_u64().expect("index");
        let name = c["name"].as_str().expect("name");
        let dockerfile = c["dockerfile"].as_str().expect("dockerfile").to_string();
        let contents = c["dockerfile_contents"]
            .as_str()
            .expect("contents")
            .to_string();
        let ignore = c["dockerignore"].as_str().map(str::to_string);
        let setuid = c["setuid_tweak"] == true;
        let df = dockerfile.clone();
        let generate = move |ctx: &Path| {
            let p = ctx.join(&df);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).expect("Dockerfile dir");
            }
            // the corpus copy is read-only; replace rather than write through
            let _ = fs::remove_file(&p);
            fs::write(&p, &contents).expect("Dockerfile");
            if let Some(text) = &ignore {
                let _ = fs::remove_file(ctx.join(".dockerignore"));
                fs::write(ctx.join(".dockerignore"), text).expect(".dockerignore");
            }
            if setuid {
                setuid_tweak(ctx);
            }
        };
        let mut args = Vec::new();
        if let Some(map) = c["build_args"].as_object() {
            for (k, v) in map {
                args.push("--build-arg".to_string());
                args.push(format!("{k}={}", v.as_str().unwrap_or("")));
            }
        }
        let outcome = match c["should_fail_at_line"].as_u64() {
            Some(n) => Outcome::FailsAtLine(n as usize),
            None => Outcome::Image,
        };
        out.push(Case {
            name: case_id(index, name),
            fixture: c["context_dir"]
                .as_str()
                .map(|d| dir().join("testdata").join(d)),
            dockerfile,
            buildah_dockerfile: None,
            args,
            generate: Some(Box::new(generate)),
            differences: differences(index),
            outcome,
        });
    }
    out
}

/// The case with suite name `id`.
pub fn get(id: &str) -> Case {
    all()
        .into_iter()
        .find(|c| c.name == id)
        .unwrap_or_else(|| panic!("no conformance case `{id}`"))
}
