//! Fuzzes layer unpacking: arbitrary bytes go to `layer::check_tar` and to `layer::apply_tar`
//! (both whiteout modes) into `ROOT/a/b/target`, where ROOT is a fresh directory of this process.
//! Errors are fine; a panic is a bug, and so is anything written outside `target`: after each
//! run, ROOT must hold nothing but `a/b/target` and the untouched `a/sentinel` file. A symlink
//! the layer makes with `../..` targets aims at exactly those paths.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hoist::layer::{self, ApplyOptions, WhiteoutMode};
use libfuzzer_sys::fuzz_target;

static ROOT: OnceLock<PathBuf> = OnceLock::new();

const SENTINEL: &[u8] = b"sentinel\n";

/// Every path below `dir` (relative), without following links.
fn listing(dir: &Path, below: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir.join(below)) else {
        return;
    };
    for e in rd.flatten() {
        let rel = below.join(e.file_name());
        out.push(rel.clone());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            listing(dir, &rel, out);
        }
    }
}

fn run(data: &[u8], mode: WhiteoutMode) {
    let root = ROOT.get_or_init(|| {
        let r = std::env::temp_dir().join(format!("hoist-fuzz-apply-{}", std::process::id()));
        let _ = fs::remove_dir_all(&r);
        r
    });
    let _ = fs::remove_dir_all(root);
    let target = root.join("a/b/target");
    fs::create_dir_all(&target).expect("make the target");
    fs::write(root.join("a/sentinel"), SENTINEL).expect("write the sentinel");
    let opts = ApplyOptions {
        whiteouts: mode,
        skip_devices: true,
        layer_name: "fuzz".to_string(),
    };
    let _ = layer::apply_tar(data, &target, &opts);
    let mut seen = Vec::new();
    listing(root, Path::new(""), &mut seen);
    for p in &seen {
        let ok = p.starts_with("a/b/target")
            || [Path::new("a"), Path::new("a/b"), Path::new("a/sentinel")].contains(&p.as_path());
        assert!(ok, "apply_tar wrote `{}` outside its target", p.display());
    }
    let s = fs::read(root.join("a/sentinel")).expect("the sentinel is still there");
    assert_eq!(s, SENTINEL, "apply_tar changed a file outside its target");
    let meta = fs::symlink_metadata(root.join("a/b")).expect("a/b is still there");
    assert!(meta.is_dir(), "apply_tar replaced a parent of its target");
}

fuzz_target!(|data: &[u8]| {
    let _ = layer::check_tar(data);
    run(data, WhiteoutMode::Overlay);
    run(data, WhiteoutMode::Delete);
});
