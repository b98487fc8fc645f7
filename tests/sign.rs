//! Content trust against a real registry (Debian's `docker-registry` on loopback): hoist's
//! signatures, key files and policy checks, and interoperation with an independent
//! implementation of the cosign format (`scripts/cosign_spec.py`, Python's `cryptography` and
//! `PyNaCl`, installed by scripts/test.sh into `target/test-venv`).
//!
//! Every hoist command runs with its own HOME and registries.conf, so no host setting leaks in.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::registry::Registry;
use common::{show, TestEnv};

fn hoist<I, S>(env: &TestEnv, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let home = env.path("home");
    fs::create_dir_all(&home).expect("home");
    let conf = env.path("registries.conf");
    if !conf.exists() {
        fs::write(&conf, "").expect("registries.conf");
    }
    let mut c = env.cmd(args);
    c.env("HOME", &home)
        .env("CONTAINERS_REGISTRIES_CONF", &conf)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG");
    c
}

/// Every output of the test, to check that no key material ever appears in any.
#[derive(Default)]
struct Outputs(std::cell::RefCell<Vec<String>>);

impl Outputs {
    fn keep(&self, out: &Output) {
        self.0.borrow_mut().push(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
}

fn ok<I, S>(env: &TestEnv, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = hoist(env, args);
    let out = c.output().expect("run hoist");
    assert!(out.status.success(), "{c:?}\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs hoist, expects exit status 1, returns stderr.
fn fails<I, S>(env: &TestEnv, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = hoist(env, args);
    let out = c.output().expect("run hoist");
    assert_eq!(out.status.code(), Some(1), "{c:?}\n{}", show(&out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The Python of the test venv (made by scripts/test.sh; a missing one fails, never skips).
fn python() -> PathBuf {
    let p = common::repo().join("target/test-venv/bin/python3");
    assert!(
        p.exists(),
        "`{}` is missing: run scripts/test.sh, which makes it (python3 -m venv + pip install cryptography pynacl)",
        p.display()
    );
    p
}

/// `scripts/cosign_spec.py ARGS…`, which must succeed; returns stdout.
fn py(args: &[&str]) -> String {
    let out = py_out(args);
    assert!(
        out.status.success(),
        "cosign_spec.py {args:?}\n{}",
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn py_out(args: &[&str]) -> Output {
    Command::new(python())
        .arg(common::repo().join("scripts/cosign_spec.py"))
        .args(args)
        .output()
        .expect("run python")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A passphrase file.
fn passfile(env: &TestEnv, name: &str, pass: &str) -> PathBuf {
    let p = env.path(name);
    fs::write(&p, format!("{pass}\n")).expect("passphrase file");
    p
}

/// A hoist key pair `PREFIX.private` / `PREFIX.pub` in the test dir.
fn hoist_key(env: &TestEnv, prefix: &str, pass: &Path) -> (PathBuf, PathBuf) {
    let p = env.path(prefix);
    ok(
        env,
        [
            "generate-sigstore-key",
            "--output-prefix",
            s(&p),
            "--passphrase-file",
            s(pass),
        ],
    );
    (
        env.path(&format!("{prefix}.private")),
        env.path(&format!("{prefix}.pub")),
    )
}

/// A one-file image `localhost/NAME` (imported from a tar), distinct per `content`.
fn small_image(env: &TestEnv, name: &str, content: &str) {
    let dir = env.path(&format!("rootfs-{name}"));
    fs::create_dir_all(&dir).expect("rootfs");
    fs::write(dir.join("hello"), content).expect("file");
    let tar = env.path(&format!("{name}.tar"));
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    ok(env, ["import", s(&tar), name]);
}

/// Pushes `localhost/NAME` to `dest` (with `extra` flags); returns the manifest digest.
fn push(env: &TestEnv, name: &str, dest: &str, extra: &[&str]) -> String {
    let mut args = vec!["push", "-q", "--tls-verify=false"];
    args.extend_from_slice(extra);
    let local = format!("localhost/{name}");
    args.push(&local);
    args.push(dest);
    ok(env, args).trim().to_string()
}

/// A policy: everything rejected but `HOST/team`, which needs a signature by `key`.
fn policy(env: &TestEnv, reg: &Registry, key: &Path, identity: Option<&str>) -> PathBuf {
    let ident = match identity {
        Some(t) => format!(r#","signedIdentity":{{"type":"{t}"}}"#),
        None => String::new(),
    };
    let text = format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}/team":[{{"type":"sigstoreSigned","keyPath":"{}"{ident}}}],"{}/open":[{{"type":"insecureAcceptAnything"}}]}}}}}}"#,
        reg.host(),
        key.display(),
        reg.host()
    );
    let p = env.path("policy.json");
    fs::write(&p, text).expect("policy");
    p
}

/// Every blob file of the store, to show that a refused pull stored nothing.
fn blobs(env: &TestEnv) -> Vec<String> {
    let dir = env.root.join("blobs/sha256");
    let mut v: Vec<String> = match fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn one_line(stderr: &str) -> &str {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Trying to pull"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one line:\n{stderr}");
    lines[0]
}

#[test]
fn hoist_and_an_independent_cosign_implementation_read_each_others_signatures_and_keys() {
    let reg = Registry::open();
    let env = TestEnv::new();
    let host = reg.host();
    let pass = passfile(&env, "pass", "correct horse");
    let (h_priv, h_pub) = hoist_key(&env, "hoist", &pass);
    let py_prefix = env.path("py");
    py(&["genkey", s(&py_prefix), s(&pass)]);
    let (p_priv, p_pub) = (env.path("py.key"), env.path("py.pub"));

    small_image(&env, "a", "a");
    small_image(&env, "b", "b");
    small_image(&env, "c", "c");
    // hoist signs on push; the Python verifier accepts it with hoist's public key
    let a = push(
        &env,
        "a",
        &format!("{host}/team/a:1"),
        &[
            "--sign-by-sigstore-private-key",
            s(&h_priv),
            "--sign-passphrase-file",
            s(&pass),
        ],
    );
    let v = py(&["verify", s(&h_pub), &host, "team/a", "1"]);
    assert!(
        v.contains(&format!(r#""identity": "{host}/team/a:1""#)) && v.contains(&a),
        "{v}"
    );
    // … but not with another key
    assert!(!py_out(&["verify", s(&p_pub), &host, "team/a", "1"])
        .status
        .success());

    // Python signs with its own key (cosign-style identity: the repository only); a second
    // signature is added, the first kept
    py(&[
        "sign",
        s(&p_priv),
        s(&pass),
        &host,
        "team/a",
        "1",
        &format!("{host}/team/a"),
    ]);
    let shown = ok(
        &env,
        [
            "trust",
            "show",
            "--tls-verify=false",
            "--key",
            s(&h_pub),
            "--key",
            s(&p_pub),
            "--format",
            "json",
            &format!("{host}/team/a:1"),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&shown).expect("json");
    let sigs = v["Signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 2, "{shown}");
    assert_eq!(sigs[0]["VerifiedBy"][0], s(&h_pub), "{shown}");
    assert_eq!(sigs[1]["VerifiedBy"][0], s(&p_pub), "{shown}");
    assert_eq!(sigs[1]["Identity"], format!("{host}/team/a"), "{shown}");
    assert!(sigs.iter().all(|s| s["DigestMatches"] == true), "{shown}");

    // hoist verifies the Python signature on pull (matchRepository: cosign signs the repository)
    let pol = policy(&env, &reg, &p_pub, Some("matchRepository"));
    let pulled = TestEnv::new();
    ok(
        &pulled,
        [
            "pull",
            "-q",
            "--tls-verify=false",
            "--signature-policy",
            s(&pol),
            &format!("{host}/team/a:1"),
        ],
    );

    // the Python signer reads hoist's key file; hoist verifies what it signed
    push(&env, "b", &format!("{host}/team/b:1"), &[]);
    py(&[
        "sign",
        s(&h_priv),
        s(&pass),
        &host,
        "team/b",
        "1",
        &format!("{host}/team/b:1"),
    ]);
    let pol = policy(&env, &reg, &h_pub, None);
    ok(
        &pulled,
        [
            "pull",
            "-q",
            "--tls-verify=false",
            "--signature-policy",
            s(&pol),
            &format!("{host}/team/b:1"),
        ],
    );

    // hoist reads the Python key file and signs an image already in the registry; the Python
    // verifier accepts it
    push(&env, "c", &format!("{host}/team/c:1"), &[]);
    let out = ok(
        &env,
        [
            "sign",
            "--tls-verify=false",
            "--key",
            s(&p_priv),
            "--passphrase-file",
            s(&pass),
            &format!("{host}/team/c:1"),
        ],
    );
    assert!(out.starts_with(&format!("{host}/team/c@sha256:")), "{out}");
    let v = py(&["verify", s(&p_pub), &host, "team/c", "1"]);
    assert!(v.contains(r#""ok": true"#), "{v}");
}

#[test]
fn a_policy_requiring_a_key_admits_signed_images_only() {
    let reg = Registry::open();
    let env = TestEnv::new();
    let host = reg.host();
    let pass = passfile(&env, "pass", "pw");
    let (h_priv, h_pub) = hoist_key(&env, "trusted", &pass);
    let (o_priv, _) = hoist_key(&env, "other", &pass);
    let sign_by = |k: &Path| {
        vec![
            "--sign-by-sigstore-private-key".to_string(),
            s(k).to_string(),
            "--sign-passphrase-file".to_string(),
            s(&pass).to_string(),
        ]
    };
    let by_trusted = sign_by(&h_priv);
    let by_trusted: Vec<&str> = by_trusted.iter().map(String::as_str).collect();
    let by_other = sign_by(&o_priv);
    let by_other: Vec<&str> = by_other.iter().map(String::as_str).collect();
    for (n, c) in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")] {
        small_image(&env, n, c);
    }
    let a = push(&env, "a", &format!("{host}/team/a:1"), &by_trusted);
    push(&env, "b", &format!("{host}/team/b:1"), &[]);
    push(&env, "c", &format!("{host}/team/c:1"), &by_other);
    let d = push(&env, "d", &format!("{host}/team/a:2"), &[]);
    push(&env, "e", &format!("{host}/elsewhere/e:1"), &by_trusted);
    let pol = policy(&env, &reg, &h_pub, None);
    let puller = TestEnv::new();
    let pull = |name: &str| -> Vec<String> {
        vec![
            "pull".into(),
            "-q".into(),
            "--tls-verify=false".into(),
            "--signature-policy".into(),
            s(&pol).into(),
            format!("{host}/{name}"),
        ]
    };

    // signed by the trusted key: pulled
    ok(&puller, pull("team/a:1"));
    // `trust show` without `--key` verifies with the keys the policy names for the image
    let shown = ok(
        &puller,
        [
            "trust",
            "show",
            "--tls-verify=false",
            "--signature-policy",
            s(&pol),
            &format!("{host}/team/a:1"),
        ],
    );
    assert!(
        shown.contains(s(&h_pub)) && shown.contains("yes"),
        "{shown}"
    );
    let before = blobs(&puller);

    // unsigned: refused, one line naming the image and the rule, nothing stored
    let err = fails(&puller, pull("team/b:1"));
    let line = one_line(&err);
    assert!(
        line.contains(&format!("image `{host}/team/b:1` refused"))
            && line.contains("`sigstoreSigned`")
            && line.contains(&format!("`{host}/team`"))
            && line.contains("no signatures"),
        "{line}"
    );
    assert_eq!(blobs(&puller), before, "a refused pull stored something");

    // signed by another key: refused
    let err = fails(&puller, pull("team/c:1"));
    assert!(
        one_line(&err).contains("no signature is made by the key"),
        "{err}"
    );

    // a's signature copied onto d's `.sig` tag: the payload names a's digest, so refused
    let base = format!("http://{host}/v2/team/a/manifests");
    let sig = ureq::get(&format!("{base}/{}.sig", a.replace(':', "-")))
        .set("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .expect("get .sig");
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut sig.into_reader(), &mut body).expect("body");
    ureq::put(&format!("{base}/{}.sig", d.replace(':', "-")))
        .set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send_bytes(&body)
        .expect("put copied .sig");
    let err = fails(&puller, pull("team/a:2"));
    assert!(
        one_line(&err).contains(&format!("is for manifest `{a}`, not this image's `{d}`")),
        "{err}"
    );

    // a signature for the image but under another identity (default matchRepoDigestOrExact)
    ok(
        &env,
        [
            "sign",
            "--tls-verify=false",
            "--key",
            s(&h_priv),
            "--passphrase-file",
            s(&pass),
            &format!("{host}/team/a@{d}"),
        ],
    );
    let err = fails(&puller, pull("team/a:2"));
    assert!(one_line(&err).contains("does not match"), "{err}");

    // outside the signed scope the global default `reject` applies, signed or not
    let err = fails(&puller, pull("elsewhere/e:1"));
    assert!(
        one_line(&err).contains("`reject` for `docker` scope `default`"),
        "{err}"
    );
    assert_eq!(blobs(&puller), before, "a refused pull stored something");

    // without the flag, the user's ~/.config/containers/policy.json decides
    let user_policy = puller.path("home/.config/containers/policy.json");
    fs::create_dir_all(user_policy.parent().expect("dir")).expect("dir");
    fs::copy(&pol, &user_policy).expect("copy policy");
    let err = fails(
        &puller,
        [
            "pull",
            "-q",
            "--tls-verify=false",
            &format!("{host}/team/b:1"),
        ],
    );
    assert!(
        one_line(&err).contains("refused by signature policy"),
        "{err}"
    );
}

#[test]
fn build_from_and_run_of_an_unsigned_image_are_refused() {
    let reg = Registry::open();
    let env = TestEnv::new();
    let host = reg.host();
    let pass = passfile(&env, "pass", "pw");
    let (h_priv, h_pub) = hoist_key(&env, "k", &pass);
    small_image(&env, "signed", "s");
    small_image(&env, "unsigned", "u");
    push(
        &env,
        "signed",
        &format!("{host}/team/signed:1"),
        &[
            "--sign-by-sigstore-private-key",
            s(&h_priv),
            "--sign-passphrase-file",
            s(&pass),
        ],
    );
    push(&env, "unsigned", &format!("{host}/team/unsigned:1"), &[]);
    let pol = policy(&env, &reg, &h_pub, None);
    let builder = TestEnv::new();
    let ctx = builder.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(ctx.join("f"), "x").expect("f");
    let build = |from: &str| {
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {host}/team/{from}\nCOPY f /f\n"),
        )
        .expect("Dockerfile");
        vec![
            "build".to_string(),
            "-q".into(),
            "--tls-verify=false".into(),
            "--signature-policy".into(),
            s(&pol).into(),
            "-t".into(),
            "out".into(),
            s(&ctx).into(),
        ]
    };
    ok(&builder, build("signed:1"));
    let err = fails(&builder, build("unsigned:1"));
    assert!(
        err.contains(&format!(
            "image `{host}/team/unsigned:1` refused by signature policy"
        )),
        "{err}"
    );
    let images = ok(&builder, ["images", "--format", "json"]);
    assert!(!images.contains("unsigned"), "{images}");

    // `run` fails before any container starts: podman's code for that is 125
    let mut c = hoist(
        &builder,
        [
            "run",
            "--rm",
            "--tls-verify=false",
            "--signature-policy",
            s(&pol),
            &format!("{host}/team/unsigned:1"),
            "true",
        ],
    );
    let out = c.output().expect("run hoist");
    assert_eq!(out.status.code(), Some(125), "{c:?}\n{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "image `{host}/team/unsigned:1` refused by signature policy"
        )),
        "{err}"
    );
}

#[test]
fn key_files_wrong_passphrase_and_no_key_material_in_any_output() {
    let reg = Registry::open();
    let env = TestEnv::new();
    let host = reg.host();
    let outputs = Outputs::default();
    let run = |args: &[&str]| -> Output {
        let mut c = hoist(&env, args);
        let out = c.output().expect("run hoist");
        outputs.keep(&out);
        out
    };
    let secret = "Passphrase-Not-To-Be-Seen-4711";
    let pass = passfile(&env, "pass", secret);
    let wrong = passfile(&env, "wrong", "not it");
    let prefix = env.path("k");
    let gen = [
        "--log-level",
        "debug",
        "generate-sigstore-key",
        "--output-prefix",
        s(&prefix),
        "--passphrase-file",
        s(&pass),
    ];
    assert!(run(&gen).status.success());
    let private = env.path("k.private");
    let public = env.path("k.pub");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&public), 0o644);
    let private_text = fs::read_to_string(&private).expect("private");
    assert!(private_text.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(fs::read_to_string(&public)
        .expect("public")
        .starts_with("-----BEGIN PUBLIC KEY-----\n"));
    // never overwritten
    let out = run(&gen);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(fs::read_to_string(&private).expect("private"), private_text);

    // a wrong passphrase: one line naming the key, and nothing pushed
    small_image(&env, "a", "a");
    let dest = format!("{host}/team/a:1");
    let out = run(&[
        "--log-level",
        "debug",
        "push",
        "--tls-verify=false",
        "--sign-by-sigstore-private-key",
        s(&private),
        "--sign-passphrase-file",
        s(&wrong),
        "localhost/a",
        &dest,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.trim(),
        format!(
            "Error: `{}`: wrong passphrase (the key cannot be decrypted with it)",
            private.display()
        )
    );
    let out = run(&["trust", "show", "--tls-verify=false", &dest]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pushed despite the wrong passphrase"
    );

    // the same key signs with the right one; sign, show and pull with debug logs
    let out = run(&[
        "--log-level",
        "debug",
        "push",
        "--tls-verify=false",
        "--sign-by-sigstore-private-key",
        s(&private),
        "--sign-passphrase-file",
        s(&pass),
        "localhost/a",
        &dest,
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let out = run(&[
        "--log-level",
        "debug",
        "sign",
        "--tls-verify=false",
        "--key",
        s(&private),
        "--passphrase-file",
        s(&wrong),
        &dest,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    let out = run(&[
        "--log-level",
        "debug",
        "trust",
        "show",
        "--tls-verify=false",
        "--key",
        s(&public),
        &dest,
    ]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(s(&public)));
    // no terminal and no passphrase file: a clear error, not a hang
    let c = hoist(
        &env,
        ["sign", "--tls-verify=false", "--key", s(&private), &dest],
    );
    let out = Command::new("setsid")
        .arg("--wait")
        .arg(c.get_program())
        .args(c.get_args())
        .envs(c.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(env.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setsid");
    outputs.keep(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--passphrase-file"),
        "{}",
        show(&out)
    );

    // the encrypted key body, its base64 lines and the passphrase appear in no output
    let body: Vec<&str> = private_text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for o in outputs.0.borrow().iter() {
        assert!(!o.contains(secret), "the passphrase was printed:\n{o}");
        for l in &body {
            assert!(!o.contains(l), "key material was printed:\n{o}");
        }
    }
}

#[test]
fn load_follows_the_archive_transports_of_the_policy() {
    let env = TestEnv::new();
    small_image(&env, "a", "a");
    let trusted = env.path("trusted");
    fs::create_dir_all(&trusted).expect("dir");
    let oci = trusted.join("a.tar");
    let docker = env.path("a-docker.tar");
    ok(
        &env,
        [
            "save",
            "--format",
            "oci-archive",
            "-o",
            s(&oci),
            "localhost/a",
        ],
    );
    ok(
        &env,
        [
            "save",
            "--format",
            "docker-archive",
            "-o",
            s(&docker),
            "localhost/a",
        ],
    );
    let pol = env.path("policy.json");
    fs::write(
        &pol,
        format!(
            r#"{{"default":[{{"type":"reject"}}],"transports":{{"oci-archive":{{"{}":[{{"type":"insecureAcceptAnything"}}],"":[{{"type":"sigstoreSigned","keyData":"eA=="}}]}}}}}}"#,
            trusted.display()
        ),
    )
    .expect("policy");
    let loader = TestEnv::new();
    let load = |f: &Path| {
        vec![
            "load".to_string(),
            "-q".into(),
            "--signature-policy".into(),
            s(&pol).into(),
            "-i".into(),
            s(f).into(),
        ]
    };
    // under the trusted directory: accepted
    ok(&loader, load(&oci));
    // elsewhere: the transport default needs a signature, which an archive cannot carry
    let other = env.path("a.tar");
    fs::copy(&oci, &other).expect("copy");
    let err = fails(&loader, load(&other));
    assert!(
        one_line(&err).contains("`sigstoreSigned` for `oci-archive` scope `\"\"`")
            && one_line(&err).contains("carries no sigstore signatures"),
        "{err}"
    );
    // docker-archive has no scope here: the global default rejects it, nothing stored
    let fresh = TestEnv::new();
    let err = fails(&fresh, load(&docker));
    assert!(
        one_line(&err).contains("`reject` for `docker-archive` scope `default`"),
        "{err}"
    );
    assert!(blobs(&fresh).is_empty());
}

/// Uploads a blob to `repo` of the registry at `host` (POST, then a monolithic PUT).
fn upload_blob(host: &str, repo: &str, data: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
    let resp = ureq::post(&format!("http://{host}/v2/{repo}/blobs/uploads/"))
        .call()
        .expect("start upload");
    let loc = resp.header("Location").expect("location").to_string();
    let loc = if loc.starts_with('/') {
        format!("http://{host}{loc}")
    } else {
        loc
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    ureq::put(&format!("{loc}{sep}digest={digest}"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(data)
        .expect("upload");
    digest
}

#[test]
fn a_hostile_signature_manifest_is_refused_in_one_line_and_nothing_is_stored() {
    let reg = Registry::open();
    let env = TestEnv::new();
    let host = reg.host();
    let pass = passfile(&env, "pass", "pw");
    let (_, h_pub) = hoist_key(&env, "k", &pass);
    small_image(&env, "a", "a");
    let a = push(&env, "a", &format!("{host}/team/a:1"), &[]);
    // 300 signature layers (one junk payload listed again and again)
    let payload = upload_blob(&host, "team/a", b"{}");
    let config = upload_blob(&host, "team/a", b"{}");
    let layer = serde_json::json!({
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": 2, "digest": payload,
        "annotations": {"dev.cosignproject.cosign/signature": "AAAA"},
    });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2, "digest": config},
        "layers": vec![layer; 300],
    });
    ureq::put(&format!(
        "http://{host}/v2/team/a/manifests/{}.sig",
        a.replace(':', "-")
    ))
    .set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
    .send_bytes(&serde_json::to_vec(&manifest).expect("json"))
    .expect("put .sig");
    let pol = policy(&env, &reg, &h_pub, None);
    let puller = TestEnv::new();
    let err = fails(
        &puller,
        [
            "pull",
            "-q",
            "--tls-verify=false",
            "--signature-policy",
            s(&pol),
            &format!("{host}/team/a:1"),
        ],
    );
    assert!(
        one_line(&err).contains("300 signatures (hoist reads at most 256)")
            && one_line(&err).contains("refused by signature policy"),
        "{err}"
    );
    assert!(blobs(&puller).is_empty(), "a refused pull stored something");
}
