//! Registries: hoist against Debian's `docker-registry` (the distribution project's registry)
//! started by each test on 127.0.0.1 and a free port, with its storage in the test's temp dir
//! and a config from `fixtures/registry/`: open over plain http, or behind TLS (a CA and a
//! server certificate made with the openssl CLI at test time) with htpasswd (bcrypt) basic auth.
//! skopeo and podman check that what hoist pushes is what other tools read.
//!
//! Every hoist command runs with its own HOME, no `XDG_RUNTIME_DIR`, `REGISTRY_AUTH_FILE` or
//! `DOCKER_CONFIG`, and `CONTAINERS_REGISTRIES_CONF` pointing at the test's own file, so no
//! host setting leaks in.

mod common;
mod storecheck;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::registry::Registry;
use common::{require, show, TestEnv};

const USER: &str = "hoistuser";
const PASSWORD: &str = "pw-Secret-7781";

/// The TLS registry with htpasswd basic auth (`hoistuser`).
fn auth_tls_registry() -> Registry {
    Registry::start("auth-tls.yml", |dir| {
        make_certs(dir);
        let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
        fs::write(dir.join("htpasswd"), format!("{USER}:{hash}\n")).expect("htpasswd");
        vec![
            ("REGISTRY_AUTH_HTPASSWD_PATH", dir.join("htpasswd")),
            ("REGISTRY_HTTP_TLS_CERTIFICATE", dir.join("server.crt")),
            ("REGISTRY_HTTP_TLS_KEY", dir.join("server.key")),
        ]
    })
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new(require("openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}\n{}", show(&out));
}

/// A CA (`certs/ca.crt`) and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=hoist test CA",
    ]);
    openssl(&a, dir);
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(&a, dir);
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
        dir,
    );
    fs::create_dir_all(dir.join("certs")).expect("certs");
    fs::copy(dir.join("ca.crt"), dir.join("certs/ca.crt")).expect("ca");
}

/// `hoist ARGS…` with the test's own HOME and registries.conf, nothing from the host.
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

fn run_out(mut c: Command) -> Output {
    c.output().expect("run hoist")
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

fn fails<I, S>(env: &TestEnv, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = hoist(env, args);
    let out = c.output().expect("run hoist");
    assert_eq!(out.status.code(), Some(1), "{c:?}\n{}", show(&out));
    out
}

fn digest_of(env: &TestEnv, image: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&ok(env, ["inspect", image])).expect("json");
    v[0]["Digest"].as_str().expect("Digest").to_string()
}

fn layer_digests(env: &TestEnv, image: &str) -> Vec<String> {
    let record = hoist::store::Store::open(&env.root)
        .expect("store")
        .resolve(image)
        .expect("image");
    record
        .layer_digests()
        .expect("layers")
        .iter()
        .map(|d| d.to_string())
        .collect()
}

/// A small image built FROM the busybox fixture: one RUN layer over it.
fn build_app(env: &TestEnv, tag: &str) {
    env.import_busybox("bb");
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nRUN echo built-by-hoist > /marker\nCMD [\"cat\", \"/marker\"]\n",
    )
    .expect("Dockerfile");
    ok(
        env,
        ["build", "-q", "-t", tag, ctx.to_str().expect("utf-8")],
    );
}

fn validate_store(env: &TestEnv) {
    storecheck::verify(&env.root);
    let store = hoist::store::Store::open(&env.root).expect("store");
    for img in store.images().expect("images") {
        store.validate(&img).expect("image validates");
    }
}

#[test]
fn build_push_rmi_pull_gives_the_same_manifest_digest() {
    let reg = Registry::open();
    let env = TestEnv::new();
    build_app(&env, "app");
    let dest = format!("{}/team/app:1", reg.host());
    let digestfile = env.path("digest");
    let out = ok(
        &env,
        [
            "push",
            "--tls-verify=false",
            "--digestfile",
            digestfile.to_str().expect("utf-8"),
            "app",
            &dest,
        ],
    );
    // the layers are stored as plain tars and leave gzip-compressed: another manifest
    let stored = digest_of(&env, "app");
    let local = out.trim().to_string();
    assert_ne!(local, stored, "the pushed manifest names gzip layers");
    assert_eq!(fs::read_to_string(&digestfile).expect("digestfile"), local);

    // skopeo sees the same manifest
    let sk = Command::new(require("skopeo"))
        .args(["inspect", "--tls-verify=false", &format!("docker://{dest}")])
        .output()
        .expect("skopeo");
    assert!(sk.status.success(), "{}", show(&sk));
    let v: serde_json::Value = serde_json::from_slice(&sk.stdout).expect("json");
    assert_eq!(v["Digest"], local.as_str());

    ok(&env, ["rmi", "app"]);
    ok(&env, ["rmi", "bb"]);
    assert!(ok(&env, ["images", "-q"]).trim().is_empty());
    ok(&env, ["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(digest_of(&env, &dest), local);
    validate_store(&env);
    // the pulled image runs
    let ran = ok(&env, ["run", "--rm", &dest]);
    assert_eq!(ran.trim(), "built-by-hoist");

    // a second push skips every blob and gives the same digest; another repository mounts
    assert_eq!(
        ok(&env, ["push", "--tls-verify=false", &dest]).trim(),
        local
    );
    let other = format!("{}/elsewhere/app:2", reg.host());
    ok(&env, ["push", "--tls-verify=false", &dest, &other]);

    // docker format: a different manifest digest, same config (image ID)
    let docker = format!("{}/team/app:docker", reg.host());
    let d2 = ok(
        &env,
        [
            "push",
            "--tls-verify=false",
            "--format",
            "docker",
            &dest,
            &docker,
        ],
    );
    assert_ne!(d2.trim(), local);
    let raw = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{docker}"),
        ])
        .output()
        .expect("skopeo");
    assert!(String::from_utf8_lossy(&raw.stdout)
        .contains("application/vnd.docker.distribution.manifest.v2+json"));

    // search: the catalog and the tags
    let found = ok(
        &env,
        [
            "search",
            "--tls-verify=false",
            &format!("{}/app", reg.host()),
        ],
    );
    assert!(
        found.contains(&format!("{}/team/app", reg.host())),
        "{found}"
    );
    assert!(
        found.contains(&format!("{}/elsewhere/app", reg.host())),
        "{found}"
    );
    let tags = ok(
        &env,
        [
            "search",
            "--tls-verify=false",
            "--list-tags",
            &format!("{}/team/app", reg.host()),
        ],
    );
    assert!(tags.contains(" 1\n") || tags.contains(" 1 "), "{tags}");
    assert!(tags.contains("docker"), "{tags}");
}

#[test]
fn pull_fetches_only_layers_the_store_lacks() {
    let reg = Registry::open();
    let env = TestEnv::new();
    build_app(&env, "app");
    let dest = format!("{}/app:1", reg.host());
    let pushed = ok(&env, ["push", "--tls-verify=false", "app", &dest]);
    let layers = layer_digests(&env, "app");
    // the base layer in the registry is spoiled: fetching it would fail its digest check
    let base = reg.blob_file(&layers[0]);
    let mut data = fs::read(&base).expect("blob");
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&base, &data).expect("tamper");
    let fresh = TestEnv::new();
    fresh.import_busybox("bb");
    ok(&fresh, ["pull", "-q", "--tls-verify=false", &dest]);
    assert_eq!(digest_of(&fresh, &dest), pushed.trim());
    validate_store(&fresh);
}

#[test]
fn tampered_blob_is_refused_naming_it_and_nothing_is_stored() {
    let reg = Registry::open();
    let env = TestEnv::new();
    build_app(&env, "app");
    let dest = format!("{}/app:1", reg.host());
    ok(&env, ["push", "--tls-verify=false", "app", &dest]);
    // the layers as pushed (the RUN layer leaves gzip-compressed)
    let m = raw_manifest(&dest);
    let layers: Vec<&str> = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest"))
        .collect();
    let top = layers.last().expect("a layer").to_string();
    let f = reg.blob_file(&top);
    let mut data = fs::read(&f).expect("blob");
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(&f, &data).expect("tamper");

    // the store has neither layer: both are fetched side by side, and the good one is not
    // kept either
    let fresh = TestEnv::new();
    let small = fresh.path("small.tar");
    random_tar(&small, 4096);
    ok(&fresh, ["import", small.to_str().expect("utf-8"), "other"]);
    let before = storecheck::listing(&fresh.root);
    let out = fails(&fresh, ["pull", "--tls-verify=false", &dest]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&top), "the error names the blob: {err}");
    assert!(err.contains("digest"), "{err}");
    assert_eq!(
        storecheck::listing(&fresh.root),
        before,
        "a refused pull changes nothing in the store"
    );
}

#[test]
fn skopeo_copied_image_is_pulled_and_built_from() {
    let reg = Registry::open();
    let src = TestEnv::new();
    src.import_busybox("bb");
    let dest = format!("{}/skopeo/bb:1", reg.host());
    let sk = Command::new(require("skopeo"))
        .args([
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:localhost/bb:latest", src.root.display()),
            &format!("docker://{dest}"),
        ])
        .output()
        .expect("skopeo");
    assert!(sk.status.success(), "{}", show(&sk));

    // FROM pulls what the store lacks (registries.conf marks the registry insecure)
    let env = TestEnv::new();
    fs::write(
        env.path("registries.conf"),
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            reg.host()
        ),
    )
    .expect("conf");
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {dest}\nRUN echo from-skopeo > /m\n"),
    )
    .expect("Dockerfile");
    ok(
        &env,
        ["build", "-q", "-t", "child", ctx.to_str().expect("utf-8")],
    );
    let ran = ok(&env, ["run", "--rm", "child", "cat", "/m"]);
    assert_eq!(ran.trim(), "from-skopeo");
    assert!(ok(&env, ["images"]).contains(&format!("{}/skopeo/bb", reg.host())));
    validate_store(&env);

    // `--pull=never` does not look in the registry; `run` pulls by itself
    let never = TestEnv::new();
    let ctx2 = never.path("ctx");
    fs::create_dir_all(&ctx2).expect("ctx");
    fs::write(ctx2.join("Dockerfile"), format!("FROM {dest}\n")).expect("Dockerfile");
    let out = fails(
        &never,
        [
            "build",
            "--pull=never",
            "-t",
            "x",
            ctx2.to_str().expect("utf-8"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pulling is off"),
        "{}",
        show(&out)
    );
    let ran = ok(
        &never,
        ["run", "--rm", "--tls-verify=false", &dest, "echo", "ran"],
    );
    assert!(ran.contains("ran"), "{ran}");
}

#[test]
fn registries_conf_search_list_and_blocked_registries() {
    let reg = Registry::open();
    let env = TestEnv::new();
    env.import_busybox("bb");
    ok(
        &env,
        [
            "push",
            "--tls-verify=false",
            "bb",
            &format!("{}/library/tool:1", reg.host()),
        ],
    );
    let fresh = TestEnv::new();
    // a short name goes only to the configured search registry
    fs::write(
        fresh.path("registries.conf"),
        format!(
            "unqualified-search-registries = [\"{h}\"]\n[[registry]]\nlocation = \"{h}\"\ninsecure = true\n",
            h = reg.host()
        ),
    )
    .expect("conf");
    ok(&fresh, ["pull", "-q", "library/tool:1"]);
    assert!(ok(&fresh, ["images"]).contains(&format!("{}/library/tool", reg.host())));
    // blocked: refused before any connection
    fs::write(
        fresh.path("registries.conf"),
        format!(
            "[[registry]]\nlocation = \"{}\"\nblocked = true\n",
            reg.host()
        ),
    )
    .expect("conf");
    let out = fails(
        &fresh,
        [
            "pull",
            "--tls-verify=false",
            &format!("{}/library/tool:1", reg.host()),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is blocked in registries.conf"),
        "{}",
        show(&out)
    );
    // a file hoist cannot use stops a pull with its name, but not a build that pulls nothing
    fs::write(
        fresh.path("registries.conf"),
        "[registries.search]\nregistries = ['docker.io']\n",
    )
    .expect("conf");
    let out = fails(&fresh, ["pull", "library/tool:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("registries.conf") && err.contains("version 1"),
        "{err}"
    );
    fresh.import_busybox("bb");
    let ctx = fresh.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(ctx.join("Dockerfile"), "FROM bb\nLABEL x=y\n").expect("Dockerfile");
    ok(&fresh, ["build", "-q", ctx.to_str().expect("utf-8")]);

    // without `insecure` or `--tls-verify=false`, plain http is not used
    fs::write(fresh.path("registries.conf"), "").expect("conf");
    let out = fails(&fresh, ["pull", &format!("{}/library/tool:1", reg.host())]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&reg.host()),
        "{}",
        show(&out)
    );
}

#[test]
fn podman_pulls_what_hoist_pushed() {
    let reg = Registry::open();
    let env = TestEnv::new();
    build_app(&env, "app");
    let dest = format!("{}/podman/app:1", reg.host());
    let docker = format!("{}/podman/app:docker", reg.host());
    ok(&env, ["push", "--tls-verify=false", "app", &dest]);
    ok(
        &env,
        [
            "push",
            "--tls-verify=false",
            "--format=docker",
            "app",
            &docker,
        ],
    );
    let pod = env.path("podman");
    for image in [&dest, &docker] {
        let out = Command::new(require("podman"))
            .args([
                "--root",
                pod.join("root").to_str().expect("utf-8"),
                "--runroot",
                pod.join("run").to_str().expect("utf-8"),
                "--storage-driver",
                "vfs",
                "pull",
                "--tls-verify=false",
                image,
            ])
            .env("CONTAINERS_REGISTRIES_CONF", env.path("registries.conf"))
            .output()
            .expect("podman");
        assert!(out.status.success(), "podman pull {image}\n{}", show(&out));
    }
}

#[test]
fn login_wrong_password_creds_and_logout_over_tls() {
    let reg = auth_tls_registry();
    let env = TestEnv::new();
    env.import_busybox("bb");
    let host = reg.host();
    let certs = reg.cert_dir();
    let certs = certs.to_str().expect("utf-8");
    let dest = format!("{host}/secure/bb:1");
    let mut outputs: Vec<Output> = Vec::new();

    // no credentials: one line asking for them
    let out = fails(&env, ["push", "--cert-dir", certs, "bb", &dest]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authentication required"),
        "{}",
        show(&out)
    );
    outputs.push(out);

    // without the CA the certificate is refused
    let out = fails(&env, ["pull", &dest]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&host),
        "{}",
        show(&out)
    );
    outputs.push(out);

    // a wrong password: one clear line naming the registry
    let mut c = hoist(
        &env,
        [
            "login",
            "--cert-dir",
            certs,
            "-u",
            USER,
            "--password-stdin",
            &host,
        ],
    );
    let out = with_stdin(&mut c, "wrong-password-5531\n");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("registry `{host}`")), "{err}");
    assert!(err.contains("invalid username or password"), "{err}");
    assert!(!err.contains("wrong-password-5531"), "{err}");
    let authfile = env.path("home/.config/containers/auth.json");
    assert!(!authfile.exists(), "a failed login stores nothing");
    outputs.push(out);

    // `--creds` with a wrong password, likewise
    let out = fails(
        &env,
        [
            "push",
            "--cert-dir",
            certs,
            "--creds",
            &format!("{USER}:nope-9912"),
            "bb",
            &dest,
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid username or password"));
    assert!(!show(&out).contains("nope-9912"));

    // login, push and pull with the stored credential
    let mut c = hoist(
        &env,
        [
            "login",
            "--cert-dir",
            certs,
            "-u",
            USER,
            "--password-stdin",
            &host,
        ],
    );
    let out = with_stdin(&mut c, &format!("{PASSWORD}\n"));
    assert!(out.status.success(), "{}", show(&out));
    outputs.push(out);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&authfile)
        .expect("auth.json")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let mut c = hoist(&env, ["push", "--cert-dir", certs, "bb", &dest]);
    let out = run_out_checked(&mut c);
    let pushed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    outputs.push(out);
    let fresh_root = env.path("fresh-root");
    let mut c = hoist(&env, ["pull", "-q", "--cert-dir", certs, &dest]);
    c.env("HOIST_ROOT", &fresh_root);
    outputs.push(run_out_checked(&mut c));

    // skopeo reads it with the same credentials
    let sk = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{USER}:{PASSWORD}"),
            &format!("docker://{dest}"),
        ])
        .output()
        .expect("skopeo");
    assert!(sk.status.success(), "{}", show(&sk));
    let v: serde_json::Value = serde_json::from_slice(&sk.stdout).expect("json");
    assert_eq!(v["Digest"], pushed.as_str());

    // logout removes the credential: the next pull needs one again
    let out = run_out(hoist(&env, ["logout", &host]));
    assert!(out.status.success(), "{}", show(&out));
    outputs.push(out);
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(&authfile).expect("auth.json")).expect("json");
    assert!(v["auths"].get(&host).is_none(), "{v}");
    let out = fails(&env, ["pull", "--cert-dir", certs, &dest]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("authentication required"));
    outputs.push(out);
    let out = fails(&env, ["logout", &host]);
    outputs.push(out);

    // docker's config.json with a credential helper (`docker-credential-NAME get`)
    let bin = env.path("bin");
    fs::create_dir_all(&bin).expect("bin");
    let helper = bin.join("docker-credential-hoisttest");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\n[ \"$server\" = \"{host}\" ] || exit 1\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n"
        ),
    )
    .expect("helper");
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::create_dir_all(env.path("home/.docker")).expect("docker dir");
    fs::write(
        env.path("home/.docker/config.json"),
        format!("{{\"credHelpers\":{{\"{host}\":\"hoisttest\"}}}}"),
    )
    .expect("config.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = hoist(&env, ["pull", "-q", "--cert-dir", certs, &dest]);
    c.env("PATH", &path)
        .env("HOIST_ROOT", env.path("helper-root"));
    outputs.push(run_out_checked(&mut c));

    for o in &outputs {
        let all = show(o);
        assert!(!all.contains(PASSWORD), "a password was printed:\n{all}");
    }
}

fn with_stdin(c: &mut Command, input: &str) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn run_out_checked(c: &mut Command) -> Output {
    let out = c.output().expect("run");
    assert!(out.status.success(), "{c:?}\n{}", show(&out));
    out
}

/// A TCP proxy that passes everything until a connection has sent `limit` bytes towards the
/// client, then holds that connection (signalling `paused`) until `release`.
fn stalling_proxy(upstream: u16, limit: u64) -> (u16, Arc<AtomicBool>, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let paused = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (p, r) = (paused.clone(), release.clone());
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c_in, mut s_out) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
            });
            let (mut s_in, mut c_out) = (server, client);
            let (p, r) = (p.clone(), r.clone());
            std::thread::spawn(move || {
                let mut sent = 0u64;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if c_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    sent += n as u64;
                    if sent >= limit {
                        p.store(true, Ordering::SeqCst);
                        while !r.load(Ordering::SeqCst) {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                        return;
                    }
                }
            });
        }
    });
    (port, paused, release)
}

/// A tar holding one file of `size` pseudo-random (incompressible) bytes.
fn random_tar(path: &Path, size: usize) {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let mut t = tar::Builder::new(fs::File::create(path).expect("tar"));
    let mut h = tar::Header::new_gnu();
    h.set_size(size as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    t.append_data(&mut h, "big.bin", &data[..]).expect("append");
    t.finish().expect("finish");
}

#[test]
fn pull_killed_mid_layer_leaves_the_store_valid_and_repeats() {
    let reg = Registry::open();
    let env = TestEnv::new();
    let tar = env.path("big.tar");
    random_tar(&tar, 8 << 20);
    ok(&env, ["import", tar.to_str().expect("utf-8"), "big"]);
    ok(
        &env,
        [
            "push",
            "--tls-verify=false",
            "big",
            &format!("{}/big:1", reg.host()),
        ],
    );

    let (proxy, paused, release) = stalling_proxy(reg.port, 1 << 20);
    let fresh = TestEnv::new();
    fresh.import_busybox("bb");
    let mut c = hoist(
        &fresh,
        [
            "pull",
            "-q",
            "--tls-verify=false",
            &format!("127.0.0.1:{proxy}/big:1"),
        ],
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = c.spawn().expect("spawn pull");
    // the layer is streaming when the proxy holds it: part of it is staged under tmp/
    while !paused.load(Ordering::SeqCst) {
        if let Some(st) = child.try_wait().expect("wait") {
            panic!("the pull ended before the layer streamed: {st}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    let st = child.wait().expect("wait");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "killed mid-layer");
    release.store(true, Ordering::SeqCst);

    validate_store(&fresh);
    let images = ok(&fresh, ["images"]);
    assert!(!images.contains("big"), "{images}");

    ok(
        &fresh,
        [
            "pull",
            "-q",
            "--tls-verify=false",
            &format!("{}/big:1", reg.host()),
        ],
    );
    assert_eq!(
        digest_of(&fresh, &format!("{}/big:1", reg.host())),
        digest_of(&env, "big")
    );
    validate_store(&fresh);
}

/// A context whose RUN steps leave random bytes in the image (a rebuild that ran them would
/// give another image), on a base pushed to `reg` as `REG/base:1`; returns the context dir.
fn cache_context(env: &TestEnv, reg: &Registry) -> PathBuf {
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(ctx.join("hello.txt"), "hello from the context\n").expect("hello");
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}/base:1\nCOPY hello.txt /hello.txt\nRUN head -c 16 /dev/urandom | od -An -tx1 > /random\nENV STAGE=one\nRUN cat /random /hello.txt > /both\n",
            reg.host()
        ),
    )
    .expect("Dockerfile");
    ctx
}

/// Pushes the busybox fixture to `REG/base:1` from `env`.
fn push_base(env: &TestEnv, reg: &Registry) {
    env.import_busybox("bb");
    ok(
        env,
        [
            "push",
            "--tls-verify=false",
            "bb",
            &format!("{}/base:1", reg.host()),
        ],
    );
}

/// Builds `ctx` as `app` with `--progress plain` and `extra` flags; returns standard output
/// and standard error.
fn build_plain(env: &TestEnv, ctx: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "build",
        "--progress",
        "plain",
        "--tls-verify=false",
        "-t",
        "app",
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().expect("utf-8"));
    let mut c = hoist(env, &args);
    let out = c.output().expect("run hoist");
    assert!(out.status.success(), "{c:?}\n{}", show(&out));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn build_cache_exported_to_a_registry_gives_an_empty_store_every_step() {
    let reg = Registry::open();
    let env = TestEnv::new();
    push_base(&env, &reg);
    let ctx = cache_context(&env, &reg);
    let cache = format!("{}/cache/app:buildcache", reg.host());
    let (out, exported) = build_plain(&env, &ctx, &["--cache-to", &cache]);
    assert!(!out.contains("CACHED"), "{out}");
    assert!(exported.contains("exported build cache"), "{exported}");
    let built = digest_of(&env, "app");

    // another machine: an empty store, docker's form of the flag
    let fresh = TestEnv::new();
    let from = format!("type=registry,ref={cache}");
    let (out, err) = build_plain(&fresh, &ctx, &["--cache-from", &from]);
    for n in 2..=5 {
        assert!(
            out.contains(&format!("STEP {n}/5: CACHED")),
            "step {n}:\n{out}\n{err}"
        );
    }
    // the RUN steps did not run: their random bytes are the first build's
    assert_eq!(digest_of(&fresh, "app"), built);
    validate_store(&fresh);
    ok(&fresh, ["check"]);
    let ran = ok(&fresh, ["run", "--rm", "app", "cat", "/both"]);
    assert!(ran.contains("hello from the context"), "{ran}");

    // the cache manifest: one OCI manifest whose config is the table and whose layers are
    // every step's layer (3 layers: COPY and two RUNs)
    let raw = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{cache}"),
        ])
        .output()
        .expect("skopeo");
    assert!(raw.status.success(), "{}", show(&raw));
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("json");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.hoist.build-cache.table.v1+json"
    );
    assert_eq!(m["layers"].as_array().expect("layers").len(), 3, "{m}");

    // exporting the same cache again gives the same manifest (a deterministic table)
    let again = TestEnv::new();
    let (_, err2) = build_plain(
        &again,
        &ctx,
        &["--cache-from", &cache, "--cache-to", &cache],
    );
    let digest = |e: &str| {
        e.lines()
            .find(|l| l.contains("exported build cache"))
            .and_then(|l| l.split("sha256:").nth(1))
            .map(|s| s.trim_end_matches(')').to_string())
            .expect("exported line")
    };
    assert_eq!(digest(&err2), digest(&exported));
}

#[test]
fn missing_build_cache_ref_is_a_warning_and_the_build_runs() {
    let reg = Registry::open();
    let env = TestEnv::new();
    push_base(&env, &reg);
    let ctx = cache_context(&env, &reg);
    let (out, err) = build_plain(
        &env,
        &ctx,
        &[
            "--cache-from",
            &format!("{}/cache/none:nothing", reg.host()),
        ],
    );
    assert!(!out.contains("CACHED"), "{out}");
    assert!(
        err.contains("WARNING: cannot import build cache") && err.contains("not found"),
        "{err}"
    );
    validate_store(&env);
    // with `--progress rawjson` the warning is one of the JSON events, not a stray line (a
    // fresh store: the cache is asked only when the store's own cache misses)
    let fresh = TestEnv::new();
    let out = ok(
        &fresh,
        [
            "build",
            "--progress",
            "rawjson",
            "--tls-verify=false",
            "--cache-from",
            &format!("{}/cache/none:nothing", reg.host()),
            ctx.to_str().expect("utf-8"),
        ],
    );
    let warning = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON event"))
        .find(|v| v["type"] == "warning")
        .expect("a warning event");
    assert!(
        warning["message"]
            .as_str()
            .expect("message")
            .contains("cannot import build cache"),
        "{warning}"
    );
}

#[test]
fn tampered_build_cache_layer_is_refused_and_nothing_is_stored() {
    let reg = Registry::open();
    let env = TestEnv::new();
    push_base(&env, &reg);
    let ctx = cache_context(&env, &reg);
    let cache = format!("{}/cache/app:1", reg.host());
    build_plain(&env, &ctx, &["--cache-to", &cache]);
    // the COPY step's layer, the first one an importing build fetches
    let copy_layer = layer_digests(&env, "app")[1].clone();
    let f = reg.blob_file(&copy_layer);
    let mut data = fs::read(&f).expect("blob");
    let mid = data.len() / 2;
    data[mid] ^= 0x01;
    fs::write(&f, &data).expect("tamper");

    let fresh = TestEnv::new();
    // the base is there (pulled and unpacked by a build of it) before the refused build
    let base_ctx = fresh.path("base-ctx");
    fs::create_dir_all(&base_ctx).expect("ctx");
    fs::write(
        base_ctx.join("Dockerfile"),
        format!("FROM {}/base:1\nENV X=1\n", reg.host()),
    )
    .expect("Dockerfile");
    build_plain(&fresh, &base_ctx, &[]);
    let before = storecheck::listing(&fresh.root);
    let mut c = hoist(
        &fresh,
        [
            "build",
            "--tls-verify=false",
            "--cache-from",
            &cache,
            "-t",
            "app2",
            ctx.to_str().expect("utf-8"),
        ],
    );
    let out = c.output().expect("run hoist");
    assert_eq!(out.status.code(), Some(1), "{c:?}\n{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&copy_layer), "the error names the blob: {err}");
    assert!(err.contains("does not match its digest"), "{err}");
    assert_eq!(
        storecheck::listing(&fresh.root),
        before,
        "a refused cache import changes nothing in the store"
    );
    validate_store(&fresh);
}

/// The raw manifest skopeo reads for `image` (a `REG/…` reference).
fn raw_manifest(image: &str) -> serde_json::Value {
    let raw = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("skopeo");
    assert!(raw.status.success(), "{}", show(&raw));
    serde_json::from_slice(&raw.stdout).expect("json")
}

fn layer_types(m: &serde_json::Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().expect("mediaType").to_string())
        .collect()
}

#[test]
fn push_compresses_plain_layers_with_gzip_and_the_same_image_gives_the_same_digest() {
    let reg = Registry::open();
    let env = TestEnv::new();
    build_app(&env, "app");
    let stored = digest_of(&env, "app");
    let record = hoist::store::Store::open(&env.root)
        .expect("store")
        .resolve("app")
        .expect("image");
    assert_eq!(
        record.manifest.layers()[1].media_type().to_string(),
        "application/vnd.oci.image.layer.v1.tar",
        "the RUN layer is stored as a plain tar"
    );
    let push = |extra: &[&str], dest: &str| {
        let mut args = vec!["push", "--tls-verify=false"];
        args.extend_from_slice(extra);
        args.extend(["app", dest]);
        ok(&env, &args).trim().to_string()
    };
    let gz1 = format!("{}/gz/app:1", reg.host());
    let first = push(&[], &gz1);
    let m = raw_manifest(&gz1);
    let types = layer_types(&m);
    assert_eq!(types.len(), 2, "{m}");
    assert!(
        types
            .iter()
            .all(|t| t == "application/vnd.oci.image.layer.v1.tar+gzip"),
        "{types:?}"
    );
    for l in m["layers"].as_array().expect("layers") {
        let blob = fs::read(reg.blob_file(l["digest"].as_str().expect("digest"))).expect("blob");
        assert_eq!(&blob[..2], &[0x1f, 0x8b], "a gzip stream");
    }
    // pushed again: the recorded copies, the same manifest
    assert_eq!(push(&[], &format!("{}/gz/app:2", reg.host())), first);
    // with the copies collected, compressed again: still the same bytes
    ok(&env, ["prune"]);
    assert!(
        !env.root.join("blobs/sha256").join(&first[7..]).exists(),
        "the manifest was never stored"
    );
    assert_eq!(push(&[], &format!("{}/gz/app:3", reg.host())), first);
    validate_store(&env);

    // skopeo reads the gzip layers back
    let out_dir = env.path("skopeo-oci");
    let sk = Command::new(require("skopeo"))
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{gz1}"),
            &format!("oci:{}:app", out_dir.display()),
        ])
        .output()
        .expect("skopeo");
    assert!(sk.status.success(), "{}", show(&sk));

    // docker format: docker's gzip media type
    let docker = format!("{}/gz/app:docker", reg.host());
    push(&["--format", "docker"], &docker);
    assert!(layer_types(&raw_manifest(&docker))
        .iter()
        .all(|t| t == "application/vnd.docker.image.rootfs.diff.tar.gzip"));

    // zstd (OCI only), and none: the layers as stored
    let zs = format!("{}/zs/app:1", reg.host());
    let zd = push(&["--compression-format", "zstd"], &zs);
    // the base layer came gzip-compressed and stays so; the RUN layer was a plain tar
    let types = layer_types(&raw_manifest(&zs));
    assert_eq!(
        types.last().map(String::as_str),
        Some("application/vnd.oci.image.layer.v1.tar+zstd"),
        "{types:?}"
    );
    let fresh = TestEnv::new();
    ok(&fresh, ["pull", "-q", "--tls-verify=false", &zs]);
    assert_eq!(digest_of(&fresh, &zs), zd);
    validate_store(&fresh);
    let out = fails(
        &env,
        [
            "push",
            "--tls-verify=false",
            "--format",
            "docker",
            "--compression-format",
            "zstd",
            "app",
            &format!("{}/zs/app:docker", reg.host()),
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("zstd"));
    assert_eq!(
        push(
            &["--compression-format", "none"],
            &format!("{}/plain/app:1", reg.host())
        ),
        stored
    );
}

/// A client certificate (`client.cert`, `client.key`) signed by the CA of [`make_certs`].
fn make_client_cert(dir: &Path) {
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=hoist test client",
        ],
        dir,
    );
    fs::write(
        dir.join("client-ext.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.cert",
            "-days",
            "2",
            "-extfile",
            "client-ext.cnf",
        ],
        dir,
    );
}

#[test]
fn client_certificate_from_certs_d_is_presented_to_a_registry_that_requires_one() {
    let reg = Registry::start("mtls.yml", |dir| {
        make_certs(dir);
        make_client_cert(dir);
        vec![
            ("REGISTRY_HTTP_TLS_CERTIFICATE", dir.join("server.crt")),
            ("REGISTRY_HTTP_TLS_KEY", dir.join("server.key")),
            // a YAML list, as the registry reads list settings from the environment
            (
                "REGISTRY_HTTP_TLS_CLIENTCAS",
                PathBuf::from(format!("[{}]", dir.join("ca.crt").display())),
            ),
        ]
    });
    let env = TestEnv::new();
    build_app(&env, "app");
    let dest = format!("{}/mtls/app:1", reg.host());

    // the CA alone: the server is trusted, but the registry refuses a client with no certificate
    let out = fails(
        &env,
        [
            "push",
            "--cert-dir",
            reg.cert_dir().to_str().expect("utf-8"),
            "app",
            &dest,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&reg.host()),
        "the error names the registry: {err}"
    );
    assert!(err.contains("requires a client certificate"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    // certs.d of the user (`~/.config/containers/certs.d/HOST:PORT`): CA, client cert and key
    let certs_d = |e: &TestEnv| {
        let d = e.path("home/.config/containers/certs.d").join(reg.host());
        fs::create_dir_all(&d).expect("certs.d");
        let src = reg.dir.path();
        fs::copy(src.join("ca.crt"), d.join("ca.crt")).expect("ca");
        fs::copy(src.join("client.cert"), d.join("client.cert")).expect("cert");
        fs::copy(src.join("client.key"), d.join("client.key")).expect("key");
    };
    certs_d(&env);
    let pushed = ok(&env, ["push", "app", &dest]);
    let fresh = TestEnv::new();
    certs_d(&fresh);
    ok(&fresh, ["pull", "-q", &dest]);
    assert_eq!(digest_of(&fresh, &dest), pushed.trim());
    validate_store(&fresh);
}

#[test]
fn cache_mode_min_exports_only_the_target_stage() {
    let reg = Registry::open();
    let env = TestEnv::new();
    push_base(&env, &reg);
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {0}/base:1 AS build\nRUN echo built > /out\nFROM {0}/base:1\nCOPY --from=build /out /copied\n",
            reg.host()
        ),
    )
    .expect("Dockerfile");
    let layers = |tag: &str, spec: &str| {
        let cache = format!("{}/cache/ms:{tag}", reg.host());
        build_plain(&env, &ctx, &["--cache-to", &spec.replace("REF", &cache)]);
        raw_manifest(&cache)["layers"]
            .as_array()
            .expect("layers")
            .len()
    };
    // max: the build stage's RUN layer and the target's COPY layer; min: the COPY layer only
    assert_eq!(layers("max", "REF"), 2);
    assert_eq!(layers("min", "type=registry,ref=REF,mode=min"), 1);
}

/// Uploads `data` as a blob of `repo` on the open registry `reg` (the distribution API by hand).
fn upload_blob(reg: &Registry, repo: &str, data: &[u8]) -> String {
    let digest = hoist::image::Digest::of_bytes(data).to_string();
    let base = format!("http://{}", reg.host());
    let resp = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/"))
        .call()
        .expect("start upload");
    let location = resp.header("Location").expect("Location").to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("{base}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    ureq::put(&format!("{url}{sep}digest={digest}"))
        .set("Content-Type", "application/octet-stream")
        .send_bytes(data)
        .expect("upload");
    digest
}

#[test]
fn build_cache_table_that_lies_about_a_layer_is_refused() {
    let reg = Registry::open();
    let env = TestEnv::new();
    push_base(&env, &reg);
    let ctx = cache_context(&env, &reg);
    let cache = format!("{}/cache/app:1", reg.host());
    build_plain(&env, &ctx, &["--cache-to", &cache]);
    let copy_layer = layer_digests(&env, "app")[1].clone();

    // the same cache, but its table calls the COPY layer (a plain tar) gzip
    let base = format!("http://{}", reg.host());
    let manifest = ureq::get(&format!("{base}/v2/cache/app/manifests/1"))
        .set("Accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .expect("manifest")
        .into_reader();
    let manifest: serde_json::Value = serde_json::from_reader(manifest).expect("json");
    let table_digest = manifest["config"]["digest"].as_str().expect("digest");
    let table = ureq::get(&format!("{base}/v2/cache/app/blobs/{table_digest}"))
        .call()
        .expect("table")
        .into_reader();
    let mut table: serde_json::Value = serde_json::from_reader(table).expect("json");
    let mut changed = 0;
    for (_, e) in table["entries"].as_object_mut().expect("entries") {
        if e["layer"]["digest"] == copy_layer.as_str() {
            e["layer"]["media_type"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
            changed += 1;
        }
    }
    assert_eq!(changed, 1);
    let bytes = serde_json::to_vec(&table).expect("json");
    let new_digest = upload_blob(&reg, "cache/app", &bytes);
    let mut lying = manifest.clone();
    lying["config"]["digest"] = new_digest.into();
    lying["config"]["size"] = bytes.len().into();
    ureq::put(&format!("{base}/v2/cache/app/manifests/lying"))
        .set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .send_bytes(&serde_json::to_vec(&lying).expect("json"))
        .expect("put manifest");

    let fresh = TestEnv::new();
    let mut c = hoist(
        &fresh,
        [
            "build",
            "--tls-verify=false",
            "--cache-from",
            &format!("{}/cache/app:lying", reg.host()),
            "-t",
            "app",
            ctx.to_str().expect("utf-8"),
        ],
    );
    let out = c.output().expect("run hoist");
    assert_eq!(out.status.code(), Some(1), "{c:?}\n{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&copy_layer) && err.contains("is none data, but its media type says gzip"),
        "{err}"
    );
    validate_store(&fresh);
}

#[test]
fn build_format_docker_is_pushed_as_docker_schema_2_byte_for_byte() {
    let reg = Registry::open();
    let env = TestEnv::new();
    env.import_busybox("bb");
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nHEALTHCHECK CMD true\nRUN echo hi > /hi\n",
    )
    .expect("Dockerfile");
    ok(
        &env,
        [
            "build",
            "-q",
            "--format",
            "docker",
            "-t",
            "dock",
            ctx.to_str().expect("utf-8"),
        ],
    );
    let local = digest_of(&env, "dock");
    let dest = format!("{}/fmt/dock:1", reg.host());
    // no `--format` and no compression: the stored docker manifest goes up as it is, under its
    // own media type
    let pushed = ok(
        &env,
        [
            "push",
            "--tls-verify=false",
            "--compression-format",
            "none",
            "dock",
            &dest,
        ],
    );
    assert!(pushed.contains(&local), "{pushed}\n{local}");
    let raw = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ])
        .output()
        .expect("skopeo");
    assert!(raw.status.success(), "{}", show(&raw));
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("manifest");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    let cfg = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--config",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{dest}"),
        ])
        .output()
        .expect("skopeo");
    let cfg: serde_json::Value = serde_json::from_slice(&cfg.stdout).expect("config");
    assert_eq!(cfg["config"]["Healthcheck"]["Test"][1], "true", "{cfg}");

    // by default the plain layers leave gzipped, under Docker's gzip layer type
    let gz = format!("{}/fmt/dock:gz", reg.host());
    ok(&env, ["push", "--tls-verify=false", "dock", &gz]);
    let raw = Command::new(require("skopeo"))
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{gz}"),
        ])
        .output()
        .expect("skopeo");
    assert!(raw.status.success(), "{}", show(&raw));
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("manifest");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    for l in m["layers"].as_array().expect("layers") {
        assert_eq!(
            l["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "{m}"
        );
    }
}
