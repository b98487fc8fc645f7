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

fn write_mode(p: &Path, data: &str, mode: u32) {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).expect("tweak dir");
    }
    fs::write(p, data).expect("tweak file");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// One archive member: path, kind, mode, data and PAX records.
type Member<'a> = (
    &'a str,
    tar::EntryType,
    u32,
    &'a str,
    &'a [(&'a str, &'a str)],
);

/// A tar of members, owned by 0:0.
fn archive(entries: &[Member<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, data, pax) in entries {
        if !pax.is_empty() {
            let mut records = Vec::new();
            for (k, v) in *pax {
                let body = format!(" {k}={v}\n");
                // the length counts its own digits
                let mut len = body.len() + 1;
                while format!("{len}{body}").len() != len {
                    len += 1;
                }
                records.extend_from_slice(format!("{len}{body}").as_bytes());
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_mode(0o644);
            h.set_size(records.len() as u64);
            h.set_path(format!("PaxHeaders/{path}")).expect("pax path");
            h.set_cksum();
            b.append(&h, records.as_slice()).expect("pax header");
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_485_449_953);
        h.set_size(data.len() as u64);
        h.set_path(path).expect("path");
        h.set_cksum();
        b.append(&h, data.as_bytes()).expect("entry");
    }
    b.into_inner().expect("tar")
}

/// Makes upstream's context tweak `name` (described in the corpus' `cases.json`).
fn tweak(name: &str, ctx: &Path) {
    use std::os::unix::fs::chown;
    match name {
        "setuid-files" => {
            write_mode(&ctx.join("should-be-setuid-file"), "test content", 0o4755);
            write_mode(&ctx.join("should-be-setgid-file"), "test content", 0o2755);
            write_mode(&ctx.join("should-be-sticky-file"), "test content", 0o1755);
            write_mode(
                &ctx.join("should-not-be-setuid-setgid-sticky-file"),
                "test content",
                0o640,
            );
        }
        "owned-by-99" => {
            let root = ctx.join("subdir/would-be-owned-by-root");
            let other = ctx.join("subdir/would-be-owned-by-99");
            write_mode(&root, "test content", 0o640);
            write_mode(&other, "test content", 0o640);
            chown(&root, Some(0), Some(0)).expect("chown 0");
            chown(&other, Some(99), Some(99)).expect("chown 99 (the suite runs as root)");
        }
        "xattrs-file" => {
            let p = ctx.join("xattrs-file");
            write_mode(&p, "test content", 0o640);
            xattr::set(&p, "user.a", b"test")
                .expect("user xattr (needs a file system with user xattrs)");
        }
        "setuid-archive" => {
            let bytes = archive(&[
                (
                    "setuid-file",
                    tar::EntryType::Regular,
                    0o4755,
                    "whatever",
                    &[],
                ),
                (
                    "setgid-file",
                    tar::EntryType::Regular,
                    0o2755,
                    "whatever",
                    &[],
                ),
                (
                    "sticky-file",
                    tar::EntryType::Regular,
                    0o1755,
                    "whatever",
                    &[],
                ),
                ("setuid-dir/", tar::EntryType::Directory, 0o4755, "", &[]),
                ("setgid-dir/", tar::EntryType::Directory, 0o2755, "", &[]),
                ("sticky-dir/", tar::EntryType::Directory, 0o1755, "", &[]),
            ]);
            fs::write(ctx.join("archive.tar"), bytes).expect("archive.tar");
        }
        "xattrs-archive" => {
            let bytes = archive(&[(
                "xattr-file",
                tar::EntryType::Regular,
                0o640,
                "whatever",
                &[("SCHILY.xattr.user.a", "test")],
            )]);
            fs::write(ctx.join("archive.tar"), bytes).expect("archive.tar");
        }
        other => panic!("unknown conformance tweak `{other}`"),
    }
}

/// Where hoist deliberately differs from Debian's buildah in a conformance case.
fn differences(index: u64) -> Vec<Difference> {
    match index {
        // `VOLUME /var/www` then `RUN touch … /var/www/file3`
        34 => volume(&["/var/www/file3 file 0644 0:0 0 e3b0c44298fc1c14"]),
        // `VOLUME /volumea …` then, in a child stage, `RUN chown 1000:1000 /volumea …`
        170 => volume(&[
            "/volumea dir 0755 1000:1000",
            "/volumeb dir 0755 1000:1000",
            "/volumec dir 0755 1000:1000",
        ]),
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
        105 => reincluded(&[
            "/subdir/subdir-e dir 0755 0:0",
            "/subdir/subdir-e/subdir-f dir 0755 0:0",
            "/subdir/subdir-e/subdir-f/file-a.txt file 0644 0:0 16 c0023f9a8c3109df",
            "/subdir/subdir-e/subdir-f/file-n.txt file 0644 0:0 13 45ec1cc77b252623",
            "/subdir/subdir-e/subdir-f/file-o.txt file 0644 0:0 7 fbdf95c344261c45",
            "/subdir/subdir-e/subdir-f/subdir-g dir 0755 0:0",
            "/subdir/subdir-e/subdir-f/subdir-g/subdir-b file 0644 0:0 17 7ee561c81f3c6931",
        ]),
        106 => reincluded(&[
            "/subdir/subdir-f dir 0755 0:0",
            "/subdir/subdir-f/file-a.txt file 0644 0:0 16 c0023f9a8c3109df",
            "/subdir/subdir-f/file-n.txt file 0644 0:0 13 45ec1cc77b252623",
            "/subdir/subdir-f/file-o.txt file 0644 0:0 7 fbdf95c344261c45",
            "/subdir/subdir-f/subdir-g dir 0755 0:0",
            "/subdir/subdir-f/subdir-g/subdir-b file 0644 0:0 17 7ee561c81f3c6931",
        ]),
        107 => reincluded(&[
            "/subdir/subdir-e/subdir-f dir 0755 0:0",
            "/subdir/subdir-e/subdir-f/subdir-g dir 0755 0:0",
            "/subdir/subdir-e/subdir-f/subdir-g/subdir-b file 0644 0:0 17 7ee561c81f3c6931",
        ]),
        108 => reincluded(&[
            "/subdir/subdir-f dir 0755 0:0",
            "/subdir/subdir-f/subdir-g dir 0755 0:0",
            "/subdir/subdir-f/subdir-g/subdir-b file 0644 0:0 17 7ee561c81f3c6931",
        ]),
        // `COPY **/*.txt /` and `COPY e/**/*sub/*.txt /`
        173 => doublestar(&[
            "/Auer.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Beach.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Croghan.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Ellston.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Hamon.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Minnnie.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Tytonidae.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/Vernaccia.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/alkalinity.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/anapaestic.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/ankylosing.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/bilobate.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/cache.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/castlelike.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/chromaticness.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/disadvise.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/fiddlecome.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/fine-headed.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/gade.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/galliots.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/glandules.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/hexachlorocyclohexane.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/huerta.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/ileosigmoidostomy.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/inaccordance.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/mine-run.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/minning.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/misidentification.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/near-blindness.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/noninhabitancy.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/ocean-born.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/overdilation.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/palling.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/papsquidder.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/parcae.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/pasteups.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/paymaster-generalship.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/protopatriarchal.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/restocks.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/ribbon-marked.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/smopple.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/stacc..txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/topsy-turvydom.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/travel-sick.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/unblazoned.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/undestructible.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/unweariableness.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/vice-guilty.txt file 0644 0:0 5 b9e68e1bea3e5b19",
        ]),
        175 => doublestar(&[
            "/Tytonidae.txt file 0644 0:0 5 b9e68e1bea3e5b19",
            "/vice-guilty.txt file 0644 0:0 5 b9e68e1bea3e5b19",
        ]),
        _ => Vec::new(),
    }
}

const DOUBLESTAR_REASON: &str = "`**` in a COPY source matches any number of directories, none \
    included, as BuildKit's matcher does (issue 13, item 10; the reference's own \
    `COPY --parents ./src/**/*.txt` example); Debian's buildah 1.28 reads `**` as `*`, one \
    directory level, so it copies only the files exactly one level down";

fn doublestar(lines: &[&'static str]) -> Vec<Difference> {
    with_reason(lines, DOUBLESTAR_REASON)
}

const VOLUME_REASON: &str = "a RUN's changes under a declared VOLUME are kept, as BuildKit keeps \
    them (issue 13, item 1; the reference's VOLUME notes: \"those changes will be discarded when \
    using the legacy builder. When using Buildkit, the changes will instead be kept\"); Debian's \
    buildah 1.28 throws them away like the legacy builder";

fn volume(lines: &[&'static str]) -> Vec<Difference> {
    with_reason(lines, VOLUME_REASON)
}

const REPLACE_REASON: &str = "a COPY never replaces an entry by one of the other kind, as \
    BuildKit's copy refuses it (\"cannot copy to non-directory\", \"cannot replace to directory \
    … with file\"; issue 13, item 8; moby/buildkit#2626); Debian's buildah 1.28, like Docker's \
    legacy builder, replaces the entry";

const REINCLUDED_REASON: &str = "a `!` exception re-includes paths below an excluded directory \
    (moby/patternmatcher: the last matching line decides and a path matches when one of its \
    parents does; the `.dockerignore` corpus pins this, and the excluded directory is then sent \
    as their parent); Debian's buildah 1.28 drops them here; hoist follows Docker";

/// Expected lines for re-included paths, each held to its listing line.
fn reincluded(lines: &[&'static str]) -> Vec<Difference> {
    with_reason(lines, REINCLUDED_REASON)
}

/// One expected listing line per path, all for one reason.
fn with_reason(lines: &[&'static str], reason: &'static str) -> Vec<Difference> {
    lines
        .iter()
        .map(|l| {
            let path = l
                .split(' ')
                .next()
                .expect("a listing line starts with its path");
            Difference::Path(path, Some(l), reason)
        })
        .collect()
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
        let tweak_name = c["tweak"].as_str().map(str::to_string);
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
            if let Some(t) = &tweak_name {
                tweak(t, ctx);
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
            // `COPY tree1/ /` then `COPY tree2/ /` (or the reverse), where one tree has a file
            // and the other a directory of the same name
            None if (159..=162).contains(&index) => Outcome::HoistFailsAtLine(3, REPLACE_REASON),
            None => Outcome::Image,
        };
        out.push(Case {
            name: case_id(index, name),
            fixture: c["context_dir"]
                .as_str()
                .map(|d| dir().join("testdata").join(d)),
            dockerfile,
            buildah_dockerfile: None,
            bases: Vec::new(),
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
