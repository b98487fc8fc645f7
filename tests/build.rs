//! `hoist build` through the real binary: every instruction and flag, multi-stage builds, layer
//! contents, errors at their step, determinism, rootless builds.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{assert_same, TestEnv};

/// A test environment with the busybox base image imported as `localhost/busybox`.
fn env() -> TestEnv {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    env
}

/// Writes a context dir `ctx` with the given files.
fn context(env: &TestEnv, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path("ctx");
    fs::create_dir_all(&dir).expect("ctx");
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
    }
    if env.as_user.is_some() {
        common::chown_tree(&dir, 65534);
    }
    dir
}

/// `hoist build --progress plain ARGS… ctx`, asserting success; returns stdout.
fn build(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push("ctx");
    env.ok(all)
}

/// The image ID a build printed last.
fn last_line(out: &str) -> String {
    out.lines().last().unwrap_or_default().trim().to_string()
}

/// The image config of `name` from `hoist inspect`.
fn inspect(env: &TestEnv, name: &str) -> serde_json::Value {
    let out = env.ok(["inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0].clone()
}

/// The raw config blob of image `name`, read from the store's OCI layout.
fn raw_config(env: &TestEnv, name: &str) -> serde_json::Value {
    let m = manifest(env, name);
    let d = m["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string();
    serde_json::from_slice(&fs::read(blob(env, &d)).expect("config blob")).expect("config json")
}

fn blob(env: &TestEnv, digest: &str) -> PathBuf {
    env.root
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn manifest(env: &TestEnv, name: &str) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(env.root.join("index.json")).expect("index"))
            .expect("json");
    let full = if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    };
    let desc = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == full.as_str())
        .unwrap_or_else(|| panic!("no image named {full} in the store"))
        .clone();
    let d = desc["digest"].as_str().expect("digest");
    serde_json::from_slice(&fs::read(blob(env, d)).expect("manifest blob")).expect("manifest json")
}

/// Every layer of `name` as a list of `path type mode uid:gid` lines.
fn layers(env: &TestEnv, name: &str) -> Vec<Vec<String>> {
    let m = manifest(env, name);
    let mut out = Vec::new();
    for l in m["layers"].as_array().expect("layers") {
        let f = fs::File::open(blob(env, l["digest"].as_str().expect("digest"))).expect("layer");
        // plain, gzip or zstd, whatever `--compression` wrote
        let (r, _) = hoist::layer::decompress(f).expect("layer stream");
        let mut ar = tar::Archive::new(r);
        let mut entries = Vec::new();
        for e in ar.entries().expect("entries") {
            let e = e.expect("entry");
            let h = e.header();
            entries.push(format!(
                "{} {:?} {:o} {}:{}",
                e.path().expect("path").display(),
                h.entry_type(),
                h.mode().expect("mode"),
                h.uid().expect("uid"),
                h.gid().expect("gid")
            ));
        }
        out.push(entries);
    }
    out
}

/// Exports the final file system of a build of `ctx` into `out/`.
fn export(env: &TestEnv, args: &[&str]) -> PathBuf {
    let dest = env.path("out");
    let spec = format!("type=local,dest={}", dest.display());
    let mut all: Vec<&str> = vec!["-o", &spec];
    all.extend_from_slice(args);
    build(env, &all);
    dest
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn hello_example_builds_with_plain_progress() {
    let env = env();
    let out = env.ok([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-t".as_ref(),
        "localhost/hello".as_ref(),
        common::repo().join("examples/hello").as_os_str(),
    ]);
    assert!(
        out.contains("STEP 1/10: FROM localhost/busybox AS build"),
        "{out}"
    );
    assert!(out.contains("STEP 10/10: CMD [\"greet\"]"), "{out}");
    let id = last_line(&out);
    assert_eq!(id.len(), 64, "{out}");
    let cfg = raw_config(&env, "localhost/hello");
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["greet"]));
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.title"],
        "hello"
    );
    // the final image has the base layer plus two COPY layers; the build stage is not in it
    assert_eq!(layers(&env, "localhost/hello").len(), 3);
}

#[test]
fn run_output_streams_under_its_step() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN echo hello-from-run && echo to-stderr >&2\n",
        )],
    );
    let out = build(&env, &["-t", "localhost/t"]);
    let step = out.find("STEP 2/2: RUN echo").expect("step line");
    let hello = out.find("hello-from-run").expect("run output");
    assert!(hello > step, "{out}");
    assert!(out.contains("to-stderr"), "{out}");
}

#[test]
fn quiet_prints_only_the_image_id() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nRUN echo noisy\n")],
    );
    let out = env.ok(["build", "-q", "-t", "localhost/q", "ctx"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(out.trim().len(), 64);
    let out2 = env.ok(["build", "--progress", "quiet", "ctx"]);
    assert_eq!(out2.lines().count(), 1, "{out2}");
}

#[test]
fn config_instructions_edit_the_image_config() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            r#"FROM localhost/busybox
MAINTAINER someone@example.com
ENV A=1 B="two words"
ENV C=${A}-x
LABEL version="1.0" "with space"=yes
EXPOSE 80 53/udp
VOLUME /data
VOLUME ["/logs"]
USER 1000:1000
WORKDIR /app
WORKDIR sub
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
CMD echo $A
ONBUILD RUN echo triggered
"#,
        )],
    );
    build(&env, &["-t", "localhost/cfg", "--label", "extra=1"]);
    let c = raw_config(&env, "localhost/cfg");
    let cfg = &c["config"];
    let env_list: Vec<String> = serde_json::from_value(cfg["Env"].clone()).expect("env");
    assert!(env_list.contains(&"A=1".to_string()), "{env_list:?}");
    assert!(
        env_list.contains(&"B=two words".to_string()),
        "{env_list:?}"
    );
    assert!(env_list.contains(&"C=1-x".to_string()), "{env_list:?}");
    assert_eq!(cfg["Labels"]["version"], "1.0");
    assert_eq!(cfg["Labels"]["with space"], "yes");
    assert_eq!(cfg["Labels"]["extra"], "1");
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "80/tcp": {}})
    );
    assert_eq!(
        cfg["Volumes"],
        serde_json::json!({"/data": {}, "/logs": {}})
    );
    assert_eq!(cfg["User"], "1000:1000");
    assert_eq!(cfg["WorkingDir"], "/app/sub");
    assert_eq!(cfg["StopSignal"], "SIGTERM");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "wget -q localhost || exit 1"])
    );
    assert_eq!(cfg["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(cfg["Healthcheck"]["Retries"], 3);
    assert_eq!(cfg["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["/bin/sh", "-ec", "echo $A"]));
    assert_eq!(cfg["OnBuild"], serde_json::json!(["RUN echo triggered"]));
    assert_eq!(c["author"], "someone@example.com");
    // config-only steps are empty layers in the history
    let hist = c["history"].as_array().expect("history");
    let env_entry = hist
        .iter()
        .find(|h| h["created_by"].as_str().unwrap_or("").contains("ENV A=1"))
        .expect("ENV in history");
    assert_eq!(env_entry["empty_layer"], true);
    // WORKDIR made the missing directory, owned by the USER
    let out = env.path("out");
    let spec = format!("type=local,dest={}", out.display());
    build(&env, &["-o", &spec]);
    let m = fs::metadata(out.join("app/sub")).expect("workdir exists");
    assert!(m.is_dir());
    assert_eq!(m.uid(), 1000);
}

#[test]
fn entrypoint_resets_an_inherited_cmd_but_not_its_own() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nCMD [\"base\"]\n")],
    );
    build(&env, &["-t", "localhost/base-cmd"]);
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/base-cmd\nENTRYPOINT [\"/bin/echo\"]\n",
    )
    .expect("write");
    build(&env, &["-t", "localhost/ep"]);
    let c = raw_config(&env, "localhost/ep");
    assert_eq!(c["config"]["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert!(c["config"]["Cmd"].is_null(), "{c}");
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/base-cmd\nCMD [\"mine\"]\nENTRYPOINT /bin/echo\n",
    )
    .expect("write");
    build(&env, &["-t", "localhost/ep2"]);
    let c = raw_config(&env, "localhost/ep2");
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["mine"]));
    assert_eq!(
        c["config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c", "/bin/echo"])
    );
}

#[test]
fn onbuild_triggers_run_after_from() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nONBUILD RUN echo fired > /onbuild.txt\n",
        )],
    );
    build(&env, &["-t", "localhost/parent"]);
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/parent\nRUN cat /onbuild.txt\n",
    )
    .expect("write");
    let out = export(&env, &["-t", "localhost/child"]);
    assert_eq!(read(&out.join("onbuild.txt")), "fired\n");
    let c = raw_config(&env, "localhost/child");
    assert!(
        c["config"]["OnBuild"].is_null(),
        "triggers are not inherited: {c}"
    );
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            r#"ARG BASE=localhost/busybox
FROM ${BASE} AS base
RUN echo base > /base.txt

FROM base AS broken
RUN echo this stage must never run && exit 3

FROM localhost/busybox AS tools
RUN echo tool > /tool.txt

FROM base AS final
COPY --from=tools /tool.txt /from-tools.txt
COPY --from=0 /base.txt /from-index.txt
RUN cat /base.txt /from-tools.txt
"#,
        )],
    );
    let out = export(&env, &["--target", "final", "-t", "localhost/final"]);
    assert_eq!(read(&out.join("from-tools.txt")), "tool\n");
    assert_eq!(read(&out.join("from-index.txt")), "base\n");
    assert_eq!(read(&out.join("base.txt")), "base\n");
    let err = env.fails(1, ["build", "--target", "nope", "ctx"]);
    assert!(
        err.contains("target stage `nope` could not be found"),
        "{err}"
    );
    // without --target the last stage is built, which needs only base and tools too
    fs::remove_dir_all(env.path("out")).expect("rm");
    let out = env.ok(["build", "--progress", "plain", "ctx"]);
    assert!(!out.contains("must never run"), "{out}");
}

#[test]
fn a_build_steps_syncs_return_at_once_but_those_of_a_container_or_a_cache_mount_step_do_not() {
    // `sync FILE` fsyncs it; a pipe cannot be synced, so the kernel's answer is EINVAL, and
    // a sync that never reaches the kernel answers success
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN echo | sync /dev/stdin\n",
        )],
    );
    build(&env, &["-t", "localhost/synced"]);
    let err = env.fails(
        1,
        [
            "run",
            "--rm",
            "localhost/busybox",
            "sh",
            "-c",
            "echo | sync /dev/stdin",
        ],
    );
    assert!(err.contains("Invalid argument"), "{err}");
    // a cache mount's files outlive the build: its step's syncs are real
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN --mount=type=cache,target=/c echo | sync /dev/stdin\n",
        )],
    );
    let mut cmd = env.cmd(["build", "--progress", "plain", "ctx"]);
    let out = common::run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", common::show(&out));
    let all = common::show(&out);
    assert!(all.contains("sync: /dev/stdin: Invalid argument"), "{all}");
    assert!(all.contains("exit status 1"), "{all}");
}

#[test]
fn run_layers_carry_whiteouts_and_opaque_dirs() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            r#"FROM localhost/busybox
RUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b && echo gone > /gone && echo keep > /keep
RUN rm /gone && rm -rf /d && mkdir /d && echo new > /d/new && ln /keep /keep-link
"#,
        )],
    );
    build(&env, &["-t", "localhost/wh"]);
    let ls = layers(&env, "localhost/wh");
    let last = ls.last().expect("layers").join("\n");
    assert!(last.contains(".wh.gone Regular"), "{last}");
    assert!(last.contains("d/.wh..wh..opq Regular"), "{last}");
    assert!(last.contains("d/new Regular"), "{last}");
    assert!(
        last.contains("keep-link Link") || last.contains("keep Link"),
        "{last}"
    );
    let out = export(&env, &[]);
    assert!(!out.join("gone").exists());
    assert!(!out.join("d/a").exists());
    assert_eq!(read(&out.join("d/new")), "new\n");
}

#[test]
fn copy_destination_rules() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                r#"FROM localhost/busybox
COPY a.txt /dest/
COPY a.txt /renamed.txt
COPY dir /contents/
COPY a.txt b.txt /many/
COPY *.txt /glob/
COPY a.* /single-glob
COPY dir/sub/deep.txt /new/parents/made/
WORKDIR /w
COPY a.txt .
COPY a.txt rel/
COPY --chown=nobody:nogroup a.txt /owned-by-name
COPY --chown=123 a.txt /owned-by-number
COPY --chmod=751 a.txt /mode-octal
COPY --chmod=u=rwx,go=r a.txt /mode-symbolic
COPY <<EOF /inline.txt
inline ${HOME}
EOF
"#,
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("dir/top.txt", "top\n"),
            ("dir/sub/deep.txt", "deep\n"),
        ],
    );
    let out = export(&env, &[]);
    assert_eq!(read(&out.join("dest/a.txt")), "a\n");
    assert_eq!(read(&out.join("renamed.txt")), "a\n");
    assert_eq!(read(&out.join("contents/top.txt")), "top\n");
    assert_eq!(read(&out.join("contents/sub/deep.txt")), "deep\n");
    assert!(
        !out.join("contents/dir").exists(),
        "a dir source copies its contents"
    );
    assert_eq!(read(&out.join("many/b.txt")), "b\n");
    assert_eq!(read(&out.join("glob/a.txt")), "a\n");
    assert_eq!(read(&out.join("glob/b.txt")), "b\n");
    assert_eq!(
        read(&out.join("single-glob")),
        "a\n",
        "one match is a single source"
    );
    assert_eq!(read(&out.join("new/parents/made/deep.txt")), "deep\n");
    assert_eq!(read(&out.join("w/a.txt")), "a\n");
    assert_eq!(read(&out.join("w/rel/a.txt")), "a\n");
    let m = fs::metadata(out.join("owned-by-name")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    let m = fs::metadata(out.join("owned-by-number")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (123, 123));
    assert_eq!(
        fs::metadata(out.join("mode-octal")).expect("stat").mode() & 0o7777,
        0o751
    );
    assert_eq!(
        fs::metadata(out.join("mode-symbolic"))
            .expect("stat")
            .mode()
            & 0o7777,
        0o744
    );
    let m = fs::metadata(out.join("dest/a.txt")).expect("stat");
    assert_eq!((m.uid(), m.gid()), (0, 0), "context files belong to root");
    assert_eq!(read(&out.join("inline.txt")), "inline \n");
}

#[test]
fn several_sources_need_a_directory_destination() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox\nCOPY a.txt b.txt /file\n",
            ),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    let err = env.fails(1, ["build", "ctx"]);
    assert!(
        err.contains("Dockerfile:2: COPY a.txt b.txt /file: when copying several sources, the destination must be a directory ending in `/`"),
        "{err}"
    );
}

#[test]
fn copy_errors_name_the_source_and_the_ignore_line() {
    let env = env();
    context(
        &env,
        &[
            ("Dockerfile", "FROM localhost/busybox\nCOPY src/ /app/\n"),
            ("other.txt", "x"),
        ],
    );
    let err = env.fails(1, ["build", "ctx"]);
    assert!(
        err.contains("Dockerfile:2: COPY src/ /app/: src: not in the build context"),
        "{err}"
    );
    context(
        &env,
        &[
            ("src/main.c", "int main;"),
            (".dockerignore", "# comment\nsrc\n"),
        ],
    );
    let err = env.fails(1, ["build", "ctx"]);
    assert!(err.contains("Dockerfile:2: COPY src/ /app/: src"), "{err}");
    assert!(err.contains(".dockerignore line 2"), "{err}");
}

#[test]
fn a_failing_run_reports_its_line_and_leaves_the_store_unchanged() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nRUN echo one > /x\n")],
    );
    let first = last_line(&build(&env, &["-t", "localhost/keep"]));
    let images_before = env.ok(["images", "-q"]);
    let layers_before: Vec<_> = fs::read_dir(env.root.join("layers"))
        .expect("layers")
        .collect();
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/busybox\nRUN echo two > /x\n\nRUN exit 2\n",
    )
    .expect("write");
    let err = env.fails(1, ["build", "-t", "localhost/keep", "ctx"]);
    assert!(
        err.contains("Dockerfile:4: RUN exit 2: exit status 2"),
        "{err}"
    );
    assert_same("images", &images_before, &env.ok(["images", "-q"]));
    let cfg = inspect(&env, "localhost/keep");
    assert!(cfg["Id"].as_str().unwrap_or("").contains(&first), "{cfg}");
    // what stays is the build cache of the steps that succeeded: their layers, each named by
    // a cache entry (as docker and buildah keep them)
    let names = |d: &str| -> std::collections::BTreeSet<String> {
        fs::read_dir(env.root.join(d))
            .map(|rd| {
                rd.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before: std::collections::BTreeSet<String> = layers_before
        .into_iter()
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let cached: String = names("cache/keys")
        .iter()
        .map(|k| fs::read_to_string(env.root.join("cache/keys").join(k)).expect("entry"))
        .collect();
    let new: Vec<String> = names("layers").difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "{new:?}");
    for l in &new {
        assert!(cached.contains(l.as_str()), "layer {l} is no cache entry's");
    }
    let tmp_left: Vec<_> = fs::read_dir(env.root.join("tmp"))
        .expect("tmp")
        .filter_map(|e| e.ok())
        .collect();
    assert!(tmp_left.is_empty(), "tmp not cleaned: {tmp_left:?}");
}

#[test]
fn missing_base_image_with_pull_never_says_pulling_is_off() {
    let env = TestEnv::new();
    context(
        &env,
        &[("Dockerfile", "FROM docker.io/library/alpine:3\nRUN true\n")],
    );
    let err = env.fails(1, ["build", "--pull=never", "ctx"]);
    assert!(
        err.contains("Dockerfile:1: FROM docker.io/library/alpine:3"),
        "{err}"
    );
    assert!(err.contains("pulling is off (`--pull=never`)"), "{err}");
}

#[test]
fn foreign_platforms_and_unknown_flags_are_refused() {
    let env = env();
    context(&env, &[("Dockerfile", "FROM localhost/busybox\n")]);
    let err = env.fails(1, ["build", "--platform", "linux/s390x", "ctx"]);
    assert!(err.contains("no emulation"), "{err}");
    let err = env.fails(2, ["build", "--squash", "ctx"]);
    assert!(err.contains("--squash"), "{err}");
    let err = env.fails(1, ["build", "--network", "bridge", "ctx"]);
    assert!(err.contains("unknown `--network` mode `bridge`"), "{err}");
    let err = env.fails(1, ["build", "--output", "type=registry", "ctx"]);
    assert!(err.contains("--output"), "{err}");
    let own = format!(
        "linux/{}",
        if cfg!(target_arch = "x86_64") {
            "amd64"
        } else {
            "arm64"
        }
    );
    env.ok(["build", "-q", "--platform", &own, "ctx"]);
}

#[test]
fn timestamp_builds_are_reproducible() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox\nCOPY a.txt /a.txt\nRUN echo fixed > /r && mkdir -p /d && touch /d/f\nENV X=1\n",
            ),
            ("a.txt", "a"),
        ],
    );
    let one = last_line(&build(
        &env,
        &["--timestamp", "1700000000", "-t", "localhost/r1"],
    ));
    let two = last_line(&build(
        &env,
        &["--timestamp", "1700000000", "-t", "localhost/r2"],
    ));
    assert_eq!(one, two);
    let c = raw_config(&env, "localhost/r1");
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    // SOURCE_DATE_EPOCH does the same
    let mut cmd = env.cmd(["build", "-q", "ctx"]);
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), one);
}

#[test]
fn build_args_scope_and_warn_when_unused() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            r#"ARG VERSION=1
FROM localhost/busybox
ARG VERSION
ARG NAME=default
ARG TARGETARCH
RUN echo "$VERSION $NAME $TARGETARCH" > /args
LABEL v=$VERSION
"#,
        )],
    );
    let mut cmd = env.cmd([
        "build",
        "--progress",
        "plain",
        "--build-arg",
        "NAME=given",
        "--build-arg",
        "FROMENV",
        "--build-arg",
        "UNUSED=x",
        "-t",
        "localhost/args",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    cmd.env("FROMENV", "y");
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UNUSED"), "{stderr}");
    assert!(stderr.contains("FROMENV"), "{stderr}");
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    assert_eq!(read(&env.path("out/args")), format!("1 given {arch}\n"));
    assert_eq!(
        raw_config(&env, "localhost/args")["config"]["Labels"]["v"],
        "1"
    );
}

#[test]
fn output_tar_holds_the_final_file_system() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN echo x > /x && rm /bin/true\n",
        )],
    );
    let out = build(&env, &["-o", "type=tar,dest=fs.tar"]);
    assert!(
        out.lines().all(|l| l.len() != 64),
        "no image stored without -t: {out}"
    );
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(env.path("fs.tar")).expect("tar"));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let p = e.path().expect("path").display().to_string();
        if p == "x" {
            let mut s = String::new();
            e.read_to_string(&mut s).expect("read");
            assert_eq!(s, "x\n");
        }
        names.push(p);
    }
    assert!(names.contains(&"x".to_string()), "{names:?}");
    assert!(names.contains(&"bin/sh".to_string()), "{names:?}");
    assert!(!names.contains(&"bin/true".to_string()), "{names:?}");
}

#[test]
fn dockerfile_from_stdin_and_outside_the_context() {
    let env = env();
    context(&env, &[("f.txt", "f")]);
    let mut cmd = env.cmd(["build", "-q", "-f", "-", "-t", "localhost/stdin", "ctx"]);
    cmd.stdin(std::process::Stdio::piped());
    cmd.stdout(std::process::Stdio::piped());
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"FROM localhost/busybox\nCOPY f.txt /\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", common::show(&out));
    fs::write(
        env.path("elsewhere.Dockerfile"),
        "FROM localhost/busybox\nLABEL from=outside\n",
    )
    .expect("write");
    env.ok([
        "build",
        "-q",
        "-f",
        "elsewhere.Dockerfile",
        "-t",
        "localhost/outside",
        "ctx",
    ]);
    assert_eq!(
        raw_config(&env, "localhost/outside")["config"]["Labels"]["from"],
        "outside"
    );
}

#[test]
fn iidfile_labels_and_several_tags() {
    let env = env();
    context(&env, &[("Dockerfile", "FROM localhost/busybox\n")]);
    let out = env.ok([
        "build",
        "-q",
        "-t",
        "localhost/one",
        "-t",
        "localhost/two:v2",
        "--iidfile",
        "iid",
        "--label",
        "a=b",
        "ctx",
    ]);
    let iid = read(&env.path("iid"));
    assert_eq!(iid, format!("sha256:{}", out.trim()));
    manifest(&env, "localhost/one");
    manifest(&env, "localhost/two:v2");
    assert_eq!(
        raw_config(&env, "localhost/two:v2")["config"]["Labels"]["a"],
        "b"
    );
}

#[test]
fn add_unpacks_local_archives_and_fetches_urls() {
    let env = env();
    // a tar.gz in the context
    let ctx = context(&env, &[]);
    {
        let f = fs::File::create(ctx.join("files.tar.gz")).expect("create");
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            f,
            flate2::Compression::fast(),
        ));
        let mut h = tar::Header::new_ustar();
        h.set_size(7);
        h.set_mode(0o640);
        h.set_uid(42);
        h.set_gid(43);
        h.set_cksum();
        b.append_data(&mut h, "pkg/readme", &b"unpack\n"[..])
            .expect("append");
        b.into_inner().expect("tar").finish().expect("gzip");
    }
    // a one-shot HTTP server for the URL source
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let body = "remote\n";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Tue, 14 Nov 2023 22:13:20 GMT\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            std::io::Write::write_all(&mut s, resp.as_bytes()).expect("write");
        }
    });
    let sum = "sha256:a5a81d32b0fc2c2ea1fb8fdf3ae8b8b1f4d99af39c2a0da3e62e0b7b42cd2bb7";
    let good = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"remote\n"))
    );
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM localhost/busybox\nADD files.tar.gz /opt/\nADD --checksum={good} http://127.0.0.1:{port}/dl/remote.txt /downloads/\n"
        ),
    )
    .expect("write");
    let out = export(&env, &[]);
    assert_eq!(read(&out.join("opt/pkg/readme")), "unpack\n");
    let m = fs::metadata(out.join("opt/pkg/readme")).expect("stat");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (42, 43, 0o640));
    assert_eq!(read(&out.join("downloads/remote.txt")), "remote\n");
    let m = fs::metadata(out.join("downloads/remote.txt")).expect("stat");
    assert_eq!(m.mode() & 0o777, 0o600);
    assert_eq!(m.mtime(), 1_700_000_000);
    // a wrong checksum fails the step
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM localhost/busybox\nADD --checksum={sum} http://127.0.0.1:{port}/x /x\n"),
    )
    .expect("write");
    let err = env.fails(1, ["build", "ctx"]);
    assert!(err.contains("checksum mismatch"), "{err}");
    server.join().expect("server");
}

#[test]
fn secrets_are_readable_in_run_and_never_in_a_layer() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /copied-on-purpose && ls /run/secrets\n",
        )],
    );
    fs::write(env.path("token"), "s3cret").expect("write");
    let spec = format!("id=tok,src={}", env.path("token").display());
    let out = build(&env, &["--secret", &spec, "-t", "localhost/sec"]);
    assert!(out.contains("tok"), "{out}");
    let ls = layers(&env, "localhost/sec");
    let last = ls.last().expect("layer").join("\n");
    assert!(last.contains("copied-on-purpose"), "{last}");
    assert!(!last.contains("run/secrets/tok"), "{last}");
    let hist = raw_config(&env, "localhost/sec")["history"].to_string();
    assert!(!hist.contains("s3cret"), "{hist}");
    // a required secret that is missing fails clearly
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/busybox\nRUN --mount=type=secret,id=other,required cat /run/secrets/other\n",
    )
    .expect("write");
    let err = env.fails(1, ["build", "ctx"]);
    assert!(err.contains("secret `other` is required"), "{err}");
}

#[test]
fn cache_tmpfs_and_bind_mounts() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                r#"FROM localhost/busybox
RUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; wc -l < /cache/log > /count'
RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/t && cat /scratch/t > /tmpfs-ok'
RUN --mount=type=bind,source=data,target=/mnt cat /mnt/d.txt > /bound
RUN --mount=type=bind,source=data/d.txt,target=/one.txt cat /one.txt > /bound-file
"#,
            ),
            ("data/d.txt", "bound-data\n"),
        ],
    );
    build(&env, &["-q"]);
    let out = export(&env, &["--no-cache"]);
    assert_eq!(
        read(&out.join("count")).trim(),
        "2",
        "the cache dir outlives builds"
    );
    assert_eq!(read(&out.join("tmpfs-ok")), "t\n");
    assert_eq!(read(&out.join("bound")), "bound-data\n");
    assert_eq!(read(&out.join("bound-file")), "bound-data\n");
    assert!(!out.join("scratch/t").exists());
    assert!(!out.join("mnt/d.txt").exists());
}

#[test]
fn heredoc_run_and_user_affects_run() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN <<EOF\necho heredoc-one > /h1\necho two >> /h1\nEOF\nUSER nobody\nRUN id -u > /tmp/uid\n",
        )],
    );
    let out = export(&env, &[]);
    assert_eq!(read(&out.join("h1")), "heredoc-one\ntwo\n");
    assert_eq!(read(&out.join("tmp/uid")), "65534\n");
}

#[test]
fn a_build_as_an_unprivileged_user() {
    let env = TestEnv::rootless();
    env.import_busybox("localhost/busybox");
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox AS b\nRUN echo built > /b.txt\nFROM localhost/busybox\nCOPY --from=b /b.txt /b.txt\nCOPY a.txt /a.txt\nRUN cat /b.txt /a.txt > /both\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    let out = build(
        &env,
        &["-t", "localhost/rootless", "-o", "type=local,dest=out"],
    );
    assert_eq!(last_line(&out).len(), 64, "{out}");
    assert_eq!(read(&env.path("out/both")), "built\na\n");
}

#[test]
fn many_files_copy() {
    let env = env();
    let ctx = context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nCOPY tree/ /tree/\n")],
    );
    for i in 0..2000 {
        let p = ctx.join(format!("tree/d{}/f{i}.txt", i % 20));
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, format!("{i}")).expect("write");
    }
    let out = export(&env, &[]);
    assert_eq!(read(&out.join("tree/d7/f1207.txt")), "1207");
    let count = walkdir::WalkDir::new(out.join("tree"))
        .into_iter()
        .filter(|e| e.as_ref().map(|e| e.file_type().is_file()).unwrap_or(false))
        .count();
    assert_eq!(count, 2000);
}

#[test]
fn hoist_run_shows_the_built_files() {
    let env = env();
    let out = env.ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        "localhost/hello".as_ref(),
        common::repo().join("examples/hello").as_os_str(),
    ]);
    assert_eq!(out.trim().len(), 64);
    let run = env.ok(["run", "--rm", "localhost/hello"]);
    assert!(run.contains("Hello from a hoist-built image!"), "{run}");
    assert!(run.contains("built on"), "{run}");
}

#[test]
fn umoci_unpacks_the_image_to_the_tree_hoist_run_shows() {
    let umoci = common::require("umoci");
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox\nRUN mkdir -p /app/sub && echo x > /app/sub/x && ln -s sub/x /app/link && rm /bin/true\nCOPY a.txt /app/a.txt\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    build(&env, &["-t", "localhost/umoci"]);
    let listing = "find /app /bin -xdev | sort; cat /app/sub/x /app/a.txt";
    let shown = env.ok(["run", "--rm", "localhost/umoci", "sh", "-c", listing]);
    let bundle = env.path("bundle");
    let mut cmd = std::process::Command::new(umoci);
    cmd.args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:localhost/umoci:latest", env.root.display()))
        .arg(&bundle);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let rootfs = bundle.join("rootfs");
    let mut paths: Vec<String> = walkdir::WalkDir::new(rootfs.join("app"))
        .into_iter()
        .chain(walkdir::WalkDir::new(rootfs.join("bin")))
        .map(|e| {
            let e = e.expect("walk");
            format!(
                "/{}",
                e.path().strip_prefix(&rootfs).expect("prefix").display()
            )
        })
        .collect();
    paths.sort();
    let mut unpacked = paths.join("\n");
    unpacked.push('\n');
    unpacked.push_str(&read(&rootfs.join("app/sub/x")));
    unpacked.push_str(&read(&rootfs.join("app/a.txt")));
    assert_same("tree", &shown, &unpacked);
}

#[test]
fn heredoc_scripts_with_a_shebang_run_with_their_interpreter() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN <<EOF\n#!/bin/sh -e\necho \"script $0\" > /script.txt\nEOF\n",
        )],
    );
    let out = export(&env, &["-t", "localhost/shebang"]);
    // run as a file with its own interpreter line, not as `sh -c TEXT`
    assert_eq!(
        read(&out.join("script.txt")),
        "script /run/hoist/heredoc/EOF\n"
    );
    assert!(
        !out.join("run/hoist").exists(),
        "the script mount leaves nothing behind"
    );
}

#[test]
fn dockerfile_syntax_errors_name_file_line_and_column() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nRUNN echo hi\n")],
    );
    let err = env.fails(1, ["build", "ctx"]);
    assert!(err.contains("Dockerfile:2:1: unknown instruction"), "{err}");
}

#[test]
fn independent_stages_build_side_by_side_and_a_failure_among_them_is_reported() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox AS a\nRUN echo a > /a\nFROM localhost/busybox AS b\nRUN echo b > /b\nFROM localhost/busybox AS c\nRUN echo c > /c\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\nCOPY --from=c /c /c\n",
        )],
    );
    let out = export(&env, &["-t", "localhost/abc"]);
    assert_eq!(read(&out.join("a")), "a\n");
    assert_eq!(read(&out.join("b")), "b\n");
    assert_eq!(read(&out.join("c")), "c\n");
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/busybox AS a\nRUN echo a > /a\nFROM localhost/busybox AS b\nRUN exit 4\nFROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    )
    .expect("write");
    let before = env.ok(["images", "-q"]);
    let err = env.fails(1, ["build", "-t", "localhost/abc", "ctx"]);
    assert!(
        err.contains("Dockerfile:4: RUN exit 4: exit status 4"),
        "{err}"
    );
    assert_same("images", &before, &env.ok(["images", "-q"]));
}

#[test]
fn a_failing_stage_stops_the_run_steps_of_the_stages_beside_it() {
    let env = env();
    // stage `slow` marks in a cache mount that its step started, and would mark that it finished
    // 20 s later; stage `bad` fails once `slow` has started
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox AS slow
RUN --mount=type=cache,id=marks,target=/m touch /m/started && sleep 20 && touch /m/finished
FROM localhost/busybox AS bad
RUN --mount=type=cache,id=marks,sharing=shared,target=/m i=0; while [ ! -e /m/started ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; exit 3
FROM scratch
COPY --from=slow /etc/passwd /a
COPY --from=bad /etc/passwd /b
",
        )],
    );
    let err = env.fails(1, ["build", "ctx"]);
    // the error is the failing step's, not the stopped one's
    assert!(err.contains("Dockerfile:4: RUN"), "{err}");
    assert!(err.contains("exit status 3"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let marks: Vec<String> = walkdir::WalkDir::new(env.root.join("cache/run-mounts"))
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(marks.contains(&"started".to_string()), "{marks:?}");
    assert!(
        !marks.contains(&"finished".to_string()),
        "the other stage's step ran to its end: {marks:?}"
    );
}

/// A single-id (uid 65534, no subordinate range) environment with busybox and a context whose
/// Dockerfile is `dockerfile`.
fn single_id_context(dockerfile: &str) -> TestEnv {
    let env = TestEnv::rootless();
    env.import_busybox("localhost/busybox");
    context(&env, &[("Dockerfile", dockerfile)]);
    env
}

#[test]
fn single_id_mode_runs_a_non_root_user_as_root_and_records_what_it_made_as_the_users() {
    let env = single_id_context(
        "FROM localhost/busybox
RUN mkdir -p /home/app && touch /home/app/old
USER app
RUN id -u > /home/app/who && mkdir -p /home/app/d/e && echo x >> /home/app/old
",
    );
    let mut cmd = env.cmd(["build", "-t", "localhost/u", "ctx"]);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("single-id mode: `USER app` runs as uid 0"),
        "{err}"
    );
    let all = layers(&env, "localhost/u");
    let last = all.last().expect("layer");
    let line = |p: &str| -> &str {
        last.iter()
            .find(|l| l.split(' ').next() == Some(p))
            .unwrap_or_else(|| panic!("{p} not in {last:?}"))
    };
    // made by the step: the user's (busybox's app is 1000:1000)
    assert!(line("home/app/who").ends_with(" 1000:1000"), "{last:?}");
    assert!(line("home/app/d/").ends_with(" 1000:1000"), "{last:?}");
    assert!(line("home/app/d/e/").ends_with(" 1000:1000"), "{last:?}");
    // there before (copied up): the owner the file system has, the only id
    assert!(line("home/app/").ends_with(" 0:0"), "{last:?}");
    assert!(line("home/app/old").ends_with(" 0:0"), "{last:?}");
    // the step ran as uid 0, the only id there is
    assert_eq!(
        env.ok([
            "run",
            "--rm",
            "-u",
            "0",
            "localhost/u",
            "cat",
            "/home/app/who"
        ]),
        "0\n"
    );
    // what the layer says is what a later stage and `--output` see too
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/u AS u\nFROM localhost/busybox\nCOPY --from=u /home/app/who /who\n",
    )
    .expect("write");
    build(&env, &["-t", "localhost/copied"]);
    let copied = layers(&env, "localhost/copied");
    let top = copied.last().expect("layer");
    assert!(
        top.iter()
            .any(|l| l.starts_with("who ") && l.ends_with(" 1000:1000")),
        "{top:?}"
    );
    let mut export = env.cmd(["build", "-q", "-o", "-", "ctx"]);
    let tar = common::run(&mut export);
    common::assert_success(&export, &tar);
    let mut ar = tar::Archive::new(&tar.stdout[..]);
    let who = ar
        .entries()
        .expect("entries")
        .map(|e| e.expect("entry"))
        .find(|e| e.path().expect("path") == Path::new("who"))
        .expect("who in the output");
    assert_eq!(
        (
            who.header().uid().expect("uid"),
            who.header().gid().expect("gid")
        ),
        (1000, 1000)
    );
    // a directory output cannot hold the owner; hoist's internal record is not left in it
    let dir = env.path("outdir");
    env.ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-o".as_ref(),
        dir.as_os_str(),
        "ctx".as_ref(),
    ]);
    assert_eq!(
        xattr::get(dir.join("who"), hoist::layer::RECORDED_OWNER_XATTR).expect("xattr"),
        None
    );
}

#[test]
fn single_id_mode_says_once_that_a_step_switched_to_an_id_it_does_not_have() {
    let env = single_id_context(
        "FROM localhost/busybox\nRUN su app -c 'id -u > /tmp/who'\nRUN su app -c true && cat /tmp/who\n",
    );
    let mut cmd = env.cmd(["build", "--progress", "plain", "ctx"]);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    // su's switch answered success; the process went on as uid 0, and the build says so once
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\n0\n"),
        "{out:?}"
    );
    assert_eq!(
        err.matches("single-id mode: a process switched to gid 1000, uid 1000")
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn single_id_mode_records_the_owners_steps_chown_to() {
    let env = single_id_context(
        "FROM localhost/busybox
RUN mkdir -p /home/app && touch /home/app/f && chown -R app:app /home/app && chown 5:6 /etc/passwd && ln -s x /l && chown -h 7 /l && touch /r && chown 9 /r && chown 0 /r && stat -c %u:%g /home/app/f
RUN echo more >> /home/app/f && if chown app /nonexistent; then exit 9; fi
FROM localhost/busybox
COPY --from=0 /home/app /kept
COPY --from=0 --chown=3:4 /home/app/f /chowned
",
    );
    let mut cmd = env.cmd(["build", "--progress", "plain", "-t", "localhost/rec", "ctx"]);
    let done = common::run(&mut cmd);
    common::assert_success(&cmd, &done);
    let out = String::from_utf8_lossy(&done.stdout);
    // inside the step the file system has the one id there is
    assert!(out.contains("\n0:0\n"), "{out}");
    // the link's owner cannot be recorded, and the build says so once
    let err = String::from_utf8_lossy(&done.stderr);
    assert_eq!(
        err.matches("the owner given to symbolic link /l cannot be recorded")
            .count(),
        1,
        "{err}"
    );
    assert!(out.contains("No such file or directory"), "{out}");
    let entry = |layer: &[String], p: &str| -> String {
        layer
            .iter()
            .find(|l| l.split(' ').next() == Some(p))
            .unwrap_or_else(|| panic!("{p} not in {layer:?}"))
            .clone()
    };
    // the chowns are recorded in the layers, as a subuid range or root would have them
    fs::write(
        env.path("ctx/Dockerfile"),
        "FROM localhost/busybox
RUN mkdir -p /home/app && touch /home/app/f && chown -R app:app /home/app && chown 5:6 /etc/passwd && ln -s x /l && chown -h 7 /l && touch /r && chown 9 /r && chown 0 /r
RUN echo more >> /home/app/f
",
    )
    .expect("write");
    build(&env, &["-t", "localhost/steps"]);
    let all = layers(&env, "localhost/steps");
    let (first, second) = (&all[all.len() - 2], &all[all.len() - 1]);
    assert!(
        entry(first, "home/app/").ends_with(" 1000:1000"),
        "{first:?}"
    );
    assert!(
        entry(first, "home/app/f").ends_with(" 1000:1000"),
        "{first:?}"
    );
    assert!(entry(first, "etc/passwd").ends_with(" 5:6"), "{first:?}");
    // a link cannot hold the record; chown back to root leaves none
    assert!(entry(first, "l").ends_with(" 0:0"), "{first:?}");
    assert!(entry(first, "r").ends_with(" 0:0"), "{first:?}");
    // a later step that changes the file keeps its recorded owner
    assert!(
        entry(second, "home/app/f").ends_with(" 1000:1000"),
        "{second:?}"
    );
    // COPY --from keeps it, --chown replaces it
    let copied = layers(&env, "localhost/rec");
    let n = copied.len();
    assert!(
        entry(&copied[n - 2], "kept/f").ends_with(" 1000:1000"),
        "{copied:?}"
    );
    assert!(
        entry(&copied[n - 1], "chowned").ends_with(" 3:4"),
        "{copied:?}"
    );
    // the record is not an attribute of the image
    let m = manifest(&env, "localhost/steps");
    for l in m["layers"].as_array().expect("layers") {
        let f = fs::File::open(blob(&env, l["digest"].as_str().expect("digest"))).expect("blob");
        let (r, _) = hoist::layer::decompress(f).expect("layer stream");
        let mut ar = tar::Archive::new(r);
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            if let Some(ext) = e.pax_extensions().expect("pax") {
                for x in ext {
                    let key = x.expect("pax record").key().expect("key").to_string();
                    assert!(!key.contains("hoist.owner"), "{key} is in a layer");
                }
            }
        }
    }
}

#[test]
fn single_id_mode_keeps_the_owners_of_base_files_a_step_changes() {
    let env = TestEnv::rootless();
    // a base whose file belongs to 5:6, which single-id mode cannot make on disk
    let base = env.path("base.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&base).expect("tar"));
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(5);
        h.set_gid(6);
        h.set_size(4);
        h.set_mtime(1);
        b.append_data(&mut h, "f", &b"base"[..]).expect("entry");
        let bb = common::busybox_rootfs();
        let mut ar = tar::Archive::new(fs::File::open(bb).expect("busybox"));
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let mut h = e.header().clone();
            let path = e.path().expect("path").into_owned();
            match h.entry_type() {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = e.link_name().expect("link").expect("target").into_owned();
                    b.append_link(&mut h, &path, &target).expect("link");
                }
                _ => b.append_data(&mut h, &path, &mut e).expect("entry"),
            }
        }
        b.finish().expect("finish");
    }
    common::chown_tree(env.dir.path(), 65534);
    let mut import = env.cmd([
        "import".as_ref(),
        base.as_os_str(),
        "localhost/base".as_ref(),
    ]);
    let out = common::run(&mut import);
    common::assert_success(&import, &out);
    // recorded, not lost: no warning about owners
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("cannot be represented"), "{err}");
    context(
        &env,
        &[("Dockerfile", "FROM localhost/base\nRUN echo more >> /f\n")],
    );
    build(&env, &["-t", "localhost/changed"]);
    let all = layers(&env, "localhost/changed");
    let last = all.last().expect("layer");
    assert!(
        last.iter()
            .any(|l| l.starts_with("f ") && l.ends_with(" 5:6")),
        "{last:?}"
    );
}

#[test]
fn copy_keeps_extended_attributes() {
    let env = env();
    let ctx = context(
        &env,
        &[
            ("Dockerfile", "FROM localhost/busybox AS a\nCOPY x.txt /x.txt\nFROM localhost/busybox\nCOPY --from=a /x.txt /y.txt\n"),
            ("x.txt", "x"),
        ],
    );
    xattr::set(ctx.join("x.txt"), "user.note", b"kept").expect("the test dir takes user xattrs");
    build(&env, &["-t", "localhost/xattr"]);
    let m = manifest(&env, "localhost/xattr");
    let layers = m["layers"].as_array().expect("layers");
    let last = layers.last().expect("layer");
    let f = fs::File::open(blob(&env, last["digest"].as_str().expect("digest"))).expect("blob");
    let (r, _) = hoist::layer::decompress(f).expect("layer stream");
    let mut ar = tar::Archive::new(r);
    let mut found = false;
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").ends_with("y.txt") {
            if let Some(ext) = e.pax_extensions().expect("pax") {
                for x in ext {
                    let x = x.expect("pax record");
                    if x.key().expect("key") == "SCHILY.xattr.user.note" {
                        assert_eq!(x.value_bytes(), b"kept");
                        found = true;
                    }
                }
            }
        }
    }
    assert!(found, "user.note is not in the COPY --from layer");
}

#[test]
fn auto_progress_on_a_terminal_keeps_a_live_step_list() {
    let script = common::require("script");
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN echo live-output\nENV A=1\n",
        )],
    );
    let inner = format!(
        "HOIST_ROOT={} {} build --progress auto ctx",
        env.root.display(),
        common::hoist_bin().display()
    );
    let mut cmd = std::process::Command::new(script);
    cmd.args(["-qec", &inner, "/dev/null"])
        .current_dir(env.path(""));
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\x1b["),
        "no cursor movement on a terminal: {text:?}"
    );
    assert!(text.contains("[2/3] RUN echo live-output"), "{text:?}");
    assert!(
        !text.contains("STEP 2/3"),
        "plain lines on a terminal: {text:?}"
    );
}

/// `hoist --log-level debug build --progress plain ARGS… ctx`, not yet run.
fn debug_build(env: &TestEnv, args: &[&str]) -> std::process::Command {
    let mut all = vec!["--log-level", "debug", "build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push("ctx");
    env.cmd(all)
}

/// A build's RUN steps get their inits forked by one launcher (`sandbox::zygote`), started at
/// the first RUN and gone when the build is, as root and rootless: each step still sees its
/// own namespaces and network mode, a failing step still fails the build with its code, and
/// the launcher does not outlive hoist.
#[test]
fn a_builds_steps_share_one_launcher_that_ends_with_the_build() {
    for env in [TestEnv::new(), TestEnv::rootless()] {
        env.import_busybox("localhost/busybox");
        context(
            &env,
            &[(
                "Dockerfile",
                "FROM localhost/busybox\nRUN echo one > /one && echo $$ > /pid\n\
                 RUN --network=none sh -c 'ip -o link | wc -l > /links; cat /one'\n\
                 RUN test \"$(cat /pid)\" = \"$$\" && test \"$$\" -le 2 && hostname > /host\n",
            )],
        );
        let mut cmd = debug_build(&env, &["-t", "l"]);
        let out = common::run(&mut cmd);
        common::assert_success(&cmd, &out);
        let err = String::from_utf8_lossy(&out.stderr);
        let started: Vec<&str> = err
            .lines()
            .filter_map(|l| l.split("launcher started as pid ").nth(1))
            .collect();
        assert_eq!(started.len(), 1, "one launcher per build:\n{err}");
        assert_eq!(
            err.matches("init forked by the launcher").count(),
            3,
            "every step's init comes from it:\n{err}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("one"), "{stdout}");
        // each step had a pid namespace of its own (the same small pid for its command);
        // `--network=none` had only `lo`
        let links = env.ok(["run", "--rm", "l", "cat", "/links"]);
        assert_eq!(links.trim(), "1");
        // the launcher ended with the build (a zombie until its new parent reaps it at most)
        let pid: u32 = started[0].trim().parse().expect("pid");
        let gone = (0..50).any(|_| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if !String::from_utf8_lossy(&cmdline).contains("__zygote") {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        });
        assert!(gone, "the launcher (pid {pid}) outlived the build");
        // a failing step fails the build with its code, the launcher's init as any other
        context(
            &env,
            &[(
                "Dockerfile",
                "FROM localhost/busybox\nRUN true\nRUN exit 7\n",
            )],
        );
        let err = env.fails(1, ["build", "--progress", "plain", "ctx"]);
        assert!(err.contains("RUN exit 7: exit status 7"), "{err}");
    }
}

/// Whether a process `pid` is running (not gone, not a zombie waiting to be reaped).
fn running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// SIGKILL to hoist in the middle of a RUN step ends the build's launcher and the step's
/// container with it (the launcher, and through `CLONE_PARENT` every init it forked, die with
/// the hoist thread that started it).
#[test]
fn killing_hoist_mid_build_ends_the_launcher_and_the_steps_container() {
    use std::io::BufRead;
    for env in [TestEnv::new(), TestEnv::rootless()] {
        env.import_busybox("localhost/busybox");
        let marker = format!("hoist-kill-{}", std::process::id());
        context(
            &env,
            &[(
                "Dockerfile",
                &format!(
                    "FROM localhost/busybox\nRUN echo a > /a\nRUN sh -c 'echo started; sleep 600; echo {marker}'\n"
                ),
            )],
        );
        let mut cmd = debug_build(&env, &[]);
        let mut child = cmd
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("hoist build");
        let stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let mut launcher = None;
        let mut started = 0;
        for line in stderr.lines() {
            let line = line.expect("stderr line");
            if let Some(p) = line.split("launcher started as pid ").nth(1) {
                launcher = p.trim().parse::<u32>().ok();
            }
            if line.contains("command started") {
                started += 1;
                if started == 2 {
                    break;
                }
            }
        }
        let launcher = launcher.expect("the build started a launcher");
        // the second step's command is running
        let holds_marker = || {
            fs::read_dir("/proc").expect("/proc").flatten().any(|e| {
                let pid: Option<u32> = e.file_name().to_str().and_then(|n| n.parse().ok());
                pid.is_some_and(|p| {
                    running(p)
                        && fs::read(e.path().join("cmdline"))
                            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
                })
            })
        };
        assert!(running(launcher), "the launcher runs during the build");
        let runs = (0..100).any(|_| {
            holds_marker() || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                false
            }
        });
        assert!(runs, "the step's command runs");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let gone = (0..100).any(|_| {
            if !running(launcher) && !holds_marker() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        });
        assert!(gone, "the launcher or the step's container outlived hoist");
    }
}
