//! What a Dockerfile means, checked against BuildKit's Dockerfile reference
//! (docs.docker.com/reference/dockerfile, vendored by moby/buildkit as
//! `frontend/dockerfile/docs/reference.md`) and, where the reference is silent, BuildKit's
//! `dockerfile2llb` source. Each test names the section it follows. The builds are config-only
//! (`FROM scratch`, no RUN), so they need no sandbox.

mod common;

use std::fs;
use std::path::PathBuf;

use common::TestEnv;

/// Writes `ctx/Dockerfile` with `dockerfile` (and the given files) into a fresh environment.
fn context(env: &TestEnv, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path("ctx");
    fs::create_dir_all(&dir).expect("ctx");
    fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
    }
    dir
}

/// Builds `dockerfile` as `localhost/t` and returns the image's config (`.config`).
fn config_of(dockerfile: &str) -> serde_json::Value {
    let env = TestEnv::new();
    context(&env, dockerfile, &[]);
    env.ok(["build", "--progress", "plain", "-t", "localhost/t", "ctx"]);
    let out = env.ok(["inspect", "localhost/t"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0]["Config"].clone()
}

fn env_of(cfg: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(cfg["Env"].clone()).expect("Env is a list")
}

/// Reference, EXPOSE: "EXPOSE <port> [<port>/<protocol>...]"; BuildKit's `parsePort`
/// (dockerfile2llb/convert_expose.go) writes one `ExposedPorts` key per port of a range and
/// accepts (and drops) a host-port mapping such as `8080:80`, with an `ExposeInvalidFormat`
/// warning.
#[test]
fn expose_ranges_give_one_key_per_port() {
    let cfg = config_of("FROM scratch\nEXPOSE 8000-8002 7000-7001/udp 8080:80 53/UDP\n");
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({
            "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {},
            "7000/udp": {}, "7001/udp": {},
            "80/tcp": {}, "53/udp": {}
        })
    );
}

/// Reference, "escape": the escape directive sets the character used to escape characters in
/// the Dockerfile, so with `` ` `` a backslash is an ordinary character everywhere (its own
/// example is `COPY testfile.txt c:\` / `RUN dir c:\`), and `` `$ `` is a literal dollar.
#[test]
fn escape_directive_drives_word_expansion() {
    let cfg = config_of(
        "# escape=`\nFROM scratch\nENV A=a\\b D=`$HOME Q=\"x`\"y\"\nWORKDIR C:\\work\nLABEL l=c:\\dir\n",
    );
    let env = env_of(&cfg);
    assert!(env.contains(&"A=a\\b".to_string()), "{env:?}");
    assert!(env.contains(&"D=$HOME".to_string()), "{env:?}");
    assert!(env.contains(&"Q=x\"y".to_string()), "{env:?}");
    // on Linux `C:\work` is a relative path: it joins `/` with the backslash kept
    assert_eq!(cfg["WorkingDir"], "/C:\\work");
    assert_eq!(cfg["Labels"]["l"], "c:\\dir");
}

/// Reference, "Environment replacement": "Environment variable substitution use the same value
/// for each variable throughout the entire instruction" — `ENV abc=bye def=$abc` gives
/// `def=hello` when `abc` was `hello` before. BuildKit's `EnvCommand.Expand` also expands the
/// keys (`expandKvp`), as it does for LABEL.
#[test]
fn env_pairs_see_the_values_from_before_the_instruction() {
    let cfg = config_of(
        "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nARG K=key\nENV $K=v\nLABEL $K=w\n",
    );
    let env = env_of(&cfg);
    assert!(env.contains(&"abc=bye".to_string()), "{env:?}");
    assert!(env.contains(&"def=hello".to_string()), "{env:?}");
    assert!(env.contains(&"ghi=bye".to_string()), "{env:?}");
    assert!(env.contains(&"key=v".to_string()), "{env:?}");
    assert_eq!(cfg["Labels"]["key"], "w");
}

/// `docker import --change 'CMD ["sh"]' --change 'ENTRYPOINT ["/e"]'` keeps both: docker
/// applies the changes like a Dockerfile stage, where an ENTRYPOINT clears only a CMD that
/// was not set in the same stage.
#[test]
fn import_keeps_cmd_given_before_entrypoint() {
    let env = TestEnv::new();
    let tar = common::busybox_rootfs();
    env.ok([
        "import".as_ref(),
        "-c".as_ref(),
        "CMD [\"sh\"]".as_ref(),
        "-c".as_ref(),
        "ENTRYPOINT [\"/bin/env\"]".as_ref(),
        tar.as_os_str(),
        "localhost/imp".as_ref(),
    ]);
    let out = env.ok(["inspect", "localhost/imp"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        v[0]["Config"]["Entrypoint"],
        serde_json::json!(["/bin/env"])
    );
}
