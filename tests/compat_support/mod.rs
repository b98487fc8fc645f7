//! The compatibility suite's harness: builds one context with `hoist build` and with
//! `buildah build --layers` (the reference), flattens both images (see `flatten`) and compares
//! their file systems (path, type, mode, owner, size, content digest, link target, hard links,
//! xattrs) and configs (Env, Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes,
//! StopSignal, and Healthcheck, OnBuild and Shell). A mismatch panics with the differences
//! between rulers. Where hoist deliberately differs, the case says what and why.
#![allow(dead_code)]

pub mod buildah;
pub mod cases;
pub mod conformance;
pub mod flatten;

use crate::common::{self, TestEnv};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Something hoist deliberately does differently from buildah in one case, with the reason.
/// The suite then expects hoist to show what is given here instead of what buildah shows.
#[derive(Debug, Clone)]
pub enum Difference {
    /// For this path hoist must show this listing line (`None`: the path must be absent).
    Path(&'static str, Option<&'static str>, &'static str),
    /// For this config key hoist must have this JSON value (`None`: absent).
    Config(&'static str, Option<&'static str>, &'static str),
    /// A label left out of the comparison on both sides.
    IgnoreLabel(&'static str, &'static str),
}

/// How a case is expected to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Both build an image; the images must be equal.
    Image,
    /// Both must fail; hoist's error must name this Dockerfile line (`Dockerfile:N` or `line N`).
    FailsAtLine(usize),
    /// buildah builds an image, but hoist must fail at this line, as BuildKit does, for the
    /// reason given (a deliberate difference).
    HoistFailsAtLine(usize, &'static str),
}

/// Makes generated inputs in a copied context.
pub type Generator = Box<dyn Fn(&Path)>;

/// One case of the suite.
pub struct Case {
    pub name: String,
    /// The context as committed (copied to a temporary directory before each build); `None`
    /// for an empty context.
    pub fixture: Option<PathBuf>,
    /// The Dockerfile, relative to the context.
    pub dockerfile: String,
    /// When Debian's buildah (1.28) cannot read a syntax the case uses (heredocs, `--parents`,
    /// `--exclude`), the buildah side builds this Dockerfile instead, which spells the same steps
    /// in older syntax; the reason is given.
    pub buildah_dockerfile: Option<(String, &'static str)>,
    /// Images built first, in order, into the same store: `(Dockerfile in the context, tag)`
    /// (for example a base image with ONBUILD triggers).
    pub bases: Vec<(String, String)>,
    /// Extra `build` arguments given to both (`--target`, `--build-arg`, `--secret`, `--label`);
    /// `{ctx}` stands for the copied context's path.
    pub args: Vec<String>,
    /// Makes generated inputs (big trees, archives, hard links, setuid files) in the copied
    /// context, so they are not committed.
    pub generate: Option<Generator>,
    pub differences: Vec<Difference>,
    pub outcome: Outcome,
}

/// Global deliberate differences, true of every case.
pub const GLOBAL_DIFFERENCES: &[Difference] = &[
    Difference::IgnoreLabel(
        "io.buildah.version",
        "buildah stamps its own version as a label; hoist does not pretend to be buildah",
    ),
    Difference::Path(
        "/etc/hostname",
        None,
        "buildah leaves the empty files it bind-mounts over in RUN (hostname, hosts, resolv.conf) \
         in the layer; Docker does not, and the busybox base has none",
    ),
    Difference::Path("/etc/hosts", None, "as for /etc/hostname"),
    Difference::Path("/etc/resolv.conf", None, "as for /etc/hostname"),
];

/// The keys of the image config the suite compares.
pub const CONFIG_KEYS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// A built image as the suite compares it.
pub struct Built {
    pub listing: BTreeMap<String, String>,
    pub config: BTreeMap<String, Value>,
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn all_differences(diffs: &[Difference]) -> impl Iterator<Item = &Difference> {
    diffs.iter().chain(GLOBAL_DIFFERENCES)
}

/// The compared subset of a Docker-form `config` object, with empty values dropped and ignored
/// labels removed; for the reference side (`reference`), the case's expected values replace
/// buildah's.
pub fn config_view(
    config: &Value,
    diffs: &[Difference],
    reference: bool,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for key in CONFIG_KEYS {
        let mut v = config.get(*key).cloned().unwrap_or(Value::Null);
        if let Value::Object(map) = &mut v {
            if *key == "Labels" {
                for d in all_differences(diffs) {
                    if let Difference::IgnoreLabel(l, _) = d {
                        map.remove(*l);
                    }
                }
            }
        }
        if reference {
            for d in all_differences(diffs) {
                if let Difference::Config(k, expect, _) = d {
                    if k == key {
                        v = expect
                            .map(|e| {
                                serde_json::from_str(e).expect("expected config value is JSON")
                            })
                            .unwrap_or(Value::Null);
                    }
                }
            }
        }
        if !is_empty(&v) {
            out.insert(key.to_string(), v);
        }
    }
    out
}

/// The listing keyed by path; for the reference side, the case's expected lines replace
/// buildah's.
fn listing_view(
    flat: &flatten::Flat,
    diffs: &[Difference],
    reference: bool,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = flat
        .listing()
        .into_iter()
        .map(|line| (line.split(' ').next().unwrap_or("").to_string(), line))
        .collect();
    if reference {
        for d in all_differences(diffs) {
            if let Difference::Path(p, expect, _) = d {
                out.remove(*p);
                if let Some(line) = expect {
                    out.insert(p.to_string(), line.to_string());
                }
            }
        }
    }
    out
}

/// Copies the case's context to a fresh temporary directory (modes, links kept) and generates
/// its inputs there.
pub fn prepare(case: &Case) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("hoist-compat-")
        .tempdir()
        .expect("temp dir");
    let ctx = tmp.path().join("context");
    match &case.fixture {
        Some(fixture) => {
            let mut cp = Command::new("cp");
            cp.arg("-a").arg(fixture).arg(&ctx);
            let out = common::run(&mut cp);
            common::assert_success(&cp, &out);
        }
        None => std::fs::create_dir(&ctx).expect("empty context"),
    }
    if let Some(generate) = &case.generate {
        generate(&ctx);
    }
    (tmp, ctx)
}

/// The case's extra arguments with `{ctx}` replaced.
fn args_for(case: &Case, ctx: &Path) -> Vec<String> {
    let c = ctx.to_string_lossy();
    case.args.iter().map(|a| a.replace("{ctx}", &c)).collect()
}

fn tag_of(case: &Case) -> String {
    format!(
        "localhost/compat-{}:latest",
        case.name
            .to_lowercase()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    )
}

/// Builds the case with buildah and reads the image back.
pub fn buildah_side(case: &Case) -> Result<Option<Built>, String> {
    let b = buildah::Buildah::get();
    // one buildah at a time: a parallel `rmi` can remove a layer another build's cache lookup
    // is reading (`layer not known`)
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (tmp, ctx) = prepare(case);
    let tag = tag_of(case);
    let df = case
        .buildah_dockerfile
        .as_ref()
        .map(|(d, _)| d.clone())
        .unwrap_or_else(|| case.dockerfile.clone());
    for (base_df, base_tag) in &case.bases {
        b.build(&ctx, base_df, base_tag, &[])?;
    }
    let built = b.build(&ctx, &df, &tag, &args_for(case, &ctx));
    match (&case.outcome, built) {
        (Outcome::FailsAtLine(_), Err(_)) => return Ok(None),
        (Outcome::FailsAtLine(n), Ok(())) => {
            b.rmi(&tag);
            return Err(format!(
                "buildah built the case, which should fail at line {n}"
            ));
        }
        (Outcome::Image | Outcome::HoistFailsAtLine(..), Err(e)) => return Err(e),
        (Outcome::Image | Outcome::HoistFailsAtLine(..), Ok(())) => {}
    }
    let oci = tmp.path().join("oci");
    b.export(&tag, &oci)?;
    let flat = flatten::flatten(&oci, None)?;
    let config = b.config(&tag)?;
    b.rmi(&tag);
    Ok(Some(Built {
        listing: listing_view(&flat, &case.differences, true),
        config: config_view(&config, &case.differences, true),
    }))
}

/// Builds the case with `hoist build` (as root, like the buildah side) and reads the image back
/// from hoist's store.
pub fn hoist_side(case: &Case) -> Result<Option<Built>, String> {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    let (_tmp, ctx) = prepare(case);
    for (base_df, base_tag) in &case.bases {
        let mut cmd = env.cmd(["build", "--progress", "plain", "-t", base_tag]);
        cmd.arg("-f").arg(ctx.join(base_df)).arg(&ctx);
        let out = common::run(&mut cmd);
        if !out.status.success() {
            return Err(format!(
                "{cmd:?} failed with {:?}\n{}",
                out.status,
                common::show(&out)
            ));
        }
    }
    let tag = tag_of(case);
    let mut cmd = env.cmd(["build", "--progress", "plain", "-t", &tag]);
    cmd.arg("-f").arg(ctx.join(&case.dockerfile));
    cmd.args(args_for(case, &ctx));
    cmd.arg(&ctx);
    let out = common::run(&mut cmd);
    match &case.outcome {
        Outcome::FailsAtLine(n) | Outcome::HoistFailsAtLine(n, _) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return Err(format!(
                    "hoist built the case, which should fail at line {n}"
                ));
            }
            let named = stderr.contains(&format!(":{n}:")) || stderr.contains(&format!("line {n}"));
            if !named {
                return Err(format!(
                    "hoist failed without naming line {n}\n{}",
                    common::show(&out)
                ));
            }
            return Ok(None);
        }
        Outcome::Image => {
            if !out.status.success() {
                return Err(format!(
                    "{cmd:?} failed with {:?}\n{}",
                    out.status,
                    common::show(&out)
                ));
            }
        }
    }
    let flat = flatten::flatten(&env.root, Some(&tag))?;
    let config = flat.config["config"].clone();
    Ok(Some(Built {
        listing: listing_view(&flat, &case.differences, false),
        config: config_view(&config, &case.differences, false),
    }))
}

/// The differences between two builds, one line each; empty when they are equal.
pub fn diff(reference: &Built, hoist: &Built) -> Vec<String> {
    let mut out = Vec::new();
    let paths: std::collections::BTreeSet<&String> = reference
        .listing
        .keys()
        .chain(hoist.listing.keys())
        .collect();
    for p in paths {
        match (reference.listing.get(p), hoist.listing.get(p)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                out.push(format!("- {a}"));
                out.push(format!("+ {b}"));
            }
            (Some(a), None) => out.push(format!("- {a}")),
            (None, Some(b)) => out.push(format!("+ {b}")),
            (None, None) => {}
        }
    }
    let keys: std::collections::BTreeSet<&String> =
        reference.config.keys().chain(hoist.config.keys()).collect();
    for k in keys {
        let a = reference.config.get(k);
        let b = hoist.config.get(k);
        if a != b {
            out.push(format!(
                "- config {k}: {}",
                a.map(|v| v.to_string()).unwrap_or("(none)".into())
            ));
            out.push(format!(
                "+ config {k}: {}",
                b.map(|v| v.to_string()).unwrap_or("(none)".into())
            ));
        }
    }
    out
}

/// Runs one case on both sides and panics with the differences (`-` buildah, `+` hoist) between
/// rulers, followed by the case's deliberate differences.
pub fn check(case: &Case) {
    let reference =
        buildah_side(case).unwrap_or_else(|e| panic!("case `{}`: buildah side: {e}", case.name));
    let ours = hoist_side(case).unwrap_or_else(|e| panic!("case `{}`: hoist side: {e}", case.name));
    let (Some(reference), Some(ours)) = (reference, ours) else {
        return; // both failed at the expected line, or hoist did where BuildKit does
    };
    let d = diff(&reference, &ours);
    if !d.is_empty() {
        let shown: Vec<&String> = d.iter().take(400).collect();
        let mut notes = String::new();
        for diff in all_differences(&case.differences) {
            match diff {
                Difference::Path(p, e, why) => notes.push_str(&format!(
                    "  {p}: expected {}: {why}\n",
                    e.unwrap_or("absent")
                )),
                Difference::Config(k, e, why) => notes.push_str(&format!(
                    "  config {k}: expected {}: {why}\n",
                    e.unwrap_or("absent")
                )),
                Difference::IgnoreLabel(l, why) => {
                    notes.push_str(&format!("  label {l}: not compared: {why}\n"))
                }
            }
        }
        if let Some((df, why)) = &case.buildah_dockerfile {
            notes.push_str(&format!("  buildah builds {df}: {why}\n"));
        }
        panic!(
            "case `{}`: hoist's image differs from buildah's ({} lines; - buildah, + hoist)\n{}\n{}\n{}\ndeliberate differences (hoist is held to these instead of buildah's):\n{}",
            case.name,
            d.len(),
            "=".repeat(72),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
            "=".repeat(72),
            notes
        );
    }
}
