//! The docker user's command line through the real binary: management verbs (`image ls`,
//! `system df`, `version`), suggestions for unknown verbs, a closed standard output, and
//! `prune -a`'s confirmation.

mod common;

use std::process::Stdio;

use common::{run, show, TestEnv};

/// Runs `hoist ARGS…` with standard output a pipe whose reader is already closed; asserts it
/// ends with 0 or 141 (SIGPIPE) and without a panic or an error message.
fn closed_stdout(env: &TestEnv, args: &[&str]) {
    let (reader, writer) = nix::unistd::pipe().expect("pipe");
    drop(reader);
    let mut cmd = env.cmd(args);
    cmd.stdout(Stdio::from(writer));
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{args:?} on a closed pipe: {:?}\n{}",
        out.status,
        show(&out)
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Error"),
        "{args:?} on a closed pipe said:\n{stderr}"
    );
}

#[test]
fn management_verbs_are_the_short_verbs() {
    let env = TestEnv::new();
    let id = env.import_busybox("base");
    // image ls / list = images, same rows
    let images = env.ok(["images"]);
    assert!(images.contains("localhost/base"), "{images}");
    assert_eq!(env.ok(["image", "ls"]), images);
    assert_eq!(env.ok(["image", "list"]), images);
    assert_eq!(env.ok(["image", "ls", "-q"]), env.ok(["images", "-q"]));
    // inspect, history, tag, rm, save, load
    let inspect = env.ok(["image", "inspect", "--format", "{{.Id}}", "base"]);
    assert_eq!(inspect.trim(), id);
    assert_eq!(
        env.ok(["image", "history", "base"]),
        env.ok(["history", "base"])
    );
    env.ok(["image", "tag", "base", "other"]);
    assert!(env.ok(["images"]).contains("localhost/other"));
    env.ok(["image", "rm", "other"]);
    assert!(!env.ok(["images"]).contains("localhost/other"));
    let archive = env.path("base.tar");
    env.ok([
        "image",
        "save",
        "-o",
        archive.to_str().expect("utf8"),
        "base",
    ]);
    env.ok(["rmi", "base"]);
    env.ok(["image", "load", "-i", archive.to_str().expect("utf8")]);
    assert!(env.ok(["images"]).contains("localhost/base"));
    // import under image
    let tar = common::busybox_rootfs();
    let id2 = env.ok([
        "image".as_ref(),
        "import".as_ref(),
        tar.as_os_str(),
        "again".as_ref(),
    ]);
    assert_eq!(id2.trim().len(), 64, "{id2}");
    // system info = info, system prune = prune
    let info = env.ok(["system", "info", "--format", "json"]);
    assert!(info.contains("\"store\""), "{info}");
    env.ok(["image", "prune"]);
    env.ok(["system", "prune"]);
    // system df counts images and the cache
    let df = env.ok(["system", "df"]);
    assert!(df.starts_with("TYPE"), "{df}");
    assert!(df.contains("Images"), "{df}");
    assert!(df.contains("Build Cache"), "{df}");
    let count = env.ok(["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]);
    assert!(count.contains("Images=2"), "{count}");
    // image build = build; builder prune empties the build cache
    context(
        &env,
        &[("Dockerfile", "FROM localhost/base\nRUN echo cached\n")],
    );
    env.ok(["image", "build", "-t", "built", "ctx"]);
    assert!(env.ok(["images"]).contains("localhost/built"));
    let cached = |env: &TestEnv| {
        env.ok(["system", "df", "--format", "{{.Type}}={{.TotalCount}}"])
            .lines()
            .any(|l| l == "Build Cache=0")
    };
    assert!(!cached(&env));
    env.ok(["builder", "prune", "-f"]);
    assert!(cached(&env));
}

#[test]
fn management_verbs_in_help_and_completions() {
    let env = TestEnv::new();
    let help = env.ok(["--help"]);
    for verb in ["image", "system", "version", "builder"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(verb)),
            "{verb} missing in --help:\n{help}"
        );
    }
    let image_help = env.ok(["image", "--help"]);
    for verb in [
        "ls", "rm", "inspect", "history", "prune", "tag", "save", "load", "import", "build",
    ] {
        assert!(
            image_help
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{verb} "))),
            "image {verb} missing:\n{image_help}"
        );
    }
    assert!(image_help.contains("list"), "{image_help}");
    let system_help = env.ok(["system", "--help"]);
    for verb in ["df", "prune", "info"] {
        assert!(system_help.contains(verb), "{system_help}");
    }
    let container_help = env.ok(["container", "--help"]);
    for verb in [
        "ls", "rm", "prune", "diff", "commit", "run", "create", "mount", "umount",
    ] {
        assert!(
            container_help
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{verb} "))),
            "container {verb} missing:\n{container_help}"
        );
    }
    let bash = env.ok(["completions", "bash"]);
    assert!(
        bash.contains("hoist__subcmd__image__subcmd__ls"),
        "bash completion lacks image ls"
    );
    assert!(
        bash.contains("hoist__subcmd__system__subcmd__df"),
        "bash completion lacks system df"
    );
}

#[test]
fn version_as_text_json_and_template() {
    let env = TestEnv::new();
    let text = env.ok(["version"]);
    assert!(
        text.contains(&format!("Version:   {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("OS/Arch:   linux/"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["version", "--format", "json"])).expect("json");
    assert_eq!(json["Version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        env.ok(["version", "--format", "{{.Version}}"]).trim(),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn unknown_verbs_get_suggestions_only_when_close() {
    let env = TestEnv::new();
    let stop = env.fails(2, ["stop"]);
    assert!(stop.contains("unrecognized subcommand 'stop'"), "{stop}");
    assert!(
        !stop.contains("similar"),
        "stop must suggest nothing: {stop}"
    );
    let typo = env.fails(2, ["biuld"]);
    assert!(typo.contains("'build'"), "{typo}");
    let nested = env.fails(2, ["image", "lss"]);
    assert!(nested.contains("'ls'"), "{nested}");
    let kill = env.fails(2, ["kill"]);
    assert!(!kill.contains("similar"), "{kill}");
}

#[test]
fn closed_stdout_is_the_end() {
    let env = TestEnv::new();
    env.import_busybox("base");
    for shell in ["fish", "bash", "zsh"] {
        closed_stdout(&env, &["completions", shell]);
    }
    closed_stdout(&env, &["images"]);
    closed_stdout(&env, &["image", "ls", "--format", "json"]);
    closed_stdout(&env, &["inspect", "base"]);
    closed_stdout(&env, &["history", "base"]);
    closed_stdout(&env, &["save", "base"]);
    closed_stdout(&env, &["version"]);
    closed_stdout(&env, &["system", "df"]);
    closed_stdout(&env, &["--help"]);
}

#[test]
fn inspect_shows_every_stored_config_field() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox\n\
         SHELL [\"/bin/sh\", \"-ec\"]\n\
         HEALTHCHECK --interval=5s --retries=2 CMD true\n\
         ONBUILD RUN echo later\n\
         STOPSIGNAL SIGINT\n",
    )
    .expect("Dockerfile");
    env.ok(["build", "-q", "-t", "hc", "ctx"]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(["inspect", "hc"])).expect("inspect prints JSON");
    let config = &v[0]["Config"];
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"]),
        "{config}"
    );
    assert_eq!(config["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(config["OnBuild"], serde_json::json!(["RUN echo later"]));
    assert_eq!(config["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(config["StopSignal"], "SIGINT");
    let hc = env.ok(["inspect", "--format", "{{json .Config.Healthcheck}}", "hc"]);
    let hc: serde_json::Value = serde_json::from_str(hc.trim()).expect("json");
    assert_eq!(hc["Retries"], 2);
    assert_eq!(
        env.ok([
            "image",
            "inspect",
            "--format",
            "{{.Config.StopSignal}} {{.Config.Shell}}",
            "hc"
        ])
        .trim(),
        "SIGINT [/bin/sh -ec]"
    );
}

/// `hoist ARGS…` with `input` on its standard input (a pipe), not asserted.
fn with_stdin(env: &TestEnv, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut cmd = env.cmd(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn hoist");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// `hoist ARGS…` under `script`, so its standard input is a terminal, typing `input`.
fn on_terminal(env: &TestEnv, args: &str, input: &[u8]) -> std::process::Output {
    use std::io::{Read, Write};
    let line = format!("{} {args}", common::hoist_bin().display());
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env("HOIST_ROOT", &env.root)
        .current_dir(env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    // the answer is typed once the question is on the screen, as a user would: typed ahead, it
    // could reach the terminal before hoist has it (seen once on a loaded machine)
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        let mut asked = false;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            if !asked && all.windows(5).any(|w| w == b"[y/N]") {
                asked = true;
                let _ = tx.send(());
            }
        }
        all
    });
    if !input.is_empty() {
        // no question within the time limit: the output below shows what came instead
        let _ = rx.recv_timeout(std::time::Duration::from_secs(60));
    }
    let mut stderr = child.stderr.take().expect("stderr");
    let errs = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all);
        all
    });
    let _ = stdin.write_all(input);
    let status = child.wait().expect("wait");
    drop(stdin);
    std::process::Output {
        status,
        stdout: reader.join().unwrap_or_default(),
        stderr: errs.join().unwrap_or_default(),
    }
}

#[test]
fn prune_all_asks_unless_forced() {
    let env = TestEnv::new();
    let id = env.import_busybox("base");
    // a pipe is no terminal: nothing removed, whatever it says, and the reason given
    for args in [&["prune", "-a"][..], &["system", "prune", "-a"][..]] {
        let out = with_stdin(&env, args, b"n\n");
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a terminal"), "{stderr}");
        assert!(stderr.contains("-f"), "{stderr}");
        let out = with_stdin(&env, args, b"y\n");
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(env.ok(["images", "-q", "--no-trunc"]).contains(&id));
    }
    // on a terminal: `n` keeps, `y` removes
    let out = on_terminal(&env, "prune -a", b"n\n");
    assert!(out.status.success(), "{}", show(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("[y/N]"), "{shown}");
    assert!(env.ok(["images", "-q", "--no-trunc"]).contains(&id));
    let out = on_terminal(&env, "prune -a", b"y\n");
    assert!(out.status.success(), "{}", show(&out));
    assert!(env.ok(["images", "-q"]).trim().is_empty());
    // -f needs no terminal
    env.import_busybox("base");
    env.ok(["prune", "-a", "-f"]);
    assert!(env.ok(["images", "-q"]).trim().is_empty());
    env.import_busybox("base");
    env.ok(["system", "prune", "--all", "--force"]);
    assert!(env.ok(["images", "-q"]).trim().is_empty());
}

/// A context dir `ctx` holding `files`.
fn context(env: &TestEnv, files: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = env.path("ctx");
    std::fs::create_dir_all(&dir).expect("ctx");
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write");
    }
    dir
}

#[test]
fn build_output_to_stdout_is_a_tar_of_the_file_system() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox\nCOPY hello.txt /hello.txt\n",
            ),
            ("hello.txt", "hi\n"),
        ],
    );
    let mut cmd = env.cmd(["build", "--progress", "plain", "-o", "-", "ctx"]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", show(&out));
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(&out.stdout[..]);
    for e in archive.entries().expect("a tar on stdout") {
        let e = e.expect("tar entry");
        names.push(e.path().expect("path").to_string_lossy().into_owned());
    }
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "hello.txt"),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "bin/busybox"),
        "{names:?}"
    );
    // the progress went to standard error
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STEP 2/2"), "{stderr}");
    // `type=tar,dest=-` is the same; with -t the image is stored and its ID is on stderr
    let mut cmd = env.cmd(["build", "-q", "-t", "both", "-o", "type=tar,dest=-", "ctx"]);
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", show(&out));
    assert!(tar::Archive::new(&out.stdout[..])
        .entries()
        .expect("tar")
        .next()
        .is_some());
    let id = env.ok(["images", "-q", "--no-trunc", "both"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(id.trim().trim_start_matches("sha256:")),
        "{}",
        show(&out)
    );
    // `-o DIR` is `type=local,dest=DIR`
    env.ok(["build", "-q", "-o", "outdir", "ctx"]);
    assert_eq!(
        std::fs::read_to_string(env.path("outdir/hello.txt")).expect("exported"),
        "hi\n"
    );
}

#[test]
fn build_from_stdin_lowercase_dockerfile_and_rm_flags() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    // `build -`: the Dockerfile on stdin, an empty context
    let out = with_stdin(
        &env,
        &["build", "-q", "-t", "fromstdin", "-"],
        b"FROM localhost/busybox\nLABEL from=stdin\n",
    );
    assert!(out.status.success(), "{}", show(&out));
    let label = env.ok(["inspect", "--format", "{{.Labels.from}}", "fromstdin"]);
    assert_eq!(label.trim(), "stdin");
    let out = with_stdin(
        &env,
        &["build", "-q", "-"],
        b"FROM localhost/busybox\nCOPY x /x\n",
    );
    assert_eq!(out.status.code(), Some(1), "COPY from an empty context");
    // a lowercase `dockerfile` when `Dockerfile` is missing
    context(
        &env,
        &[("dockerfile", "FROM localhost/busybox\nLABEL case=lower\n")],
    );
    env.ok(["build", "-q", "-t", "lower", "--rm", "--force-rm", "ctx"]);
    let label = env.ok(["inspect", "--format", "{{.Labels.case}}", "lower"]);
    assert_eq!(label.trim(), "lower");
    env.ok(["build", "-q", "--rm=false", "--force-rm=true", "ctx"]);
    let help = env.ok(["build", "--help"]);
    assert!(help.contains("--force-rm"), "{help}");
    assert!(help.contains("no intermediate"), "{help}");
}

/// The JSON events of a `--progress rawjson` run's standard output.
fn events(out: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

#[test]
fn progress_rawjson_prints_one_event_per_line() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nRUN echo hello\n")],
    );
    let out = run(&mut env.cmd(["build", "--progress", "rawjson", "ctx"]));
    assert!(out.status.success(), "{}", show(&out));
    let ev = events(&out);
    let kinds: Vec<&str> = ev
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        ["step", "done", "step", "output", "done", "image"],
        "{ev:?}"
    );
    assert_eq!(ev[2]["text"], "RUN echo hello");
    // every event carries its time; a finished step its duration
    for e in &ev {
        let t = e["time"].as_str().unwrap_or_else(|| panic!("no time: {e}"));
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{e}");
        assert!(e["elapsed"].as_f64().is_some_and(|s| s >= 0.0), "{e}");
    }
    assert!(ev[4]["seconds"].as_f64().is_some(), "{}", ev[4]);
    assert_eq!(ev[3]["step"], 2);
    assert_eq!(ev[3]["data"], "hello\n");
    let id = ev[5]["id"].as_str().expect("id");
    assert!(env
        .ok(["images", "-q", "--no-trunc"])
        .contains(id.trim_start_matches("sha256:")));
    // again: the RUN is cached
    let ev = events(&run(&mut env.cmd(["build", "--progress=rawjson", "ctx"])));
    assert_eq!(ev[3]["type"], "cached", "{ev:?}");
    // a failing step ends with an error event, and the exit status is 1
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN echo out; exit 3\n",
        )],
    );
    let out = run(&mut env.cmd(["build", "--progress", "rawjson", "ctx"]));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let ev = events(&out);
    let last = ev.last().expect("events");
    assert_eq!(last["type"], "error", "{ev:?}");
    assert!(
        last["message"]
            .as_str()
            .expect("message")
            .contains("exit status 3"),
        "{last}"
    );
    // `tty` is the live view, so it needs a terminal
    let err = env.fails(1, ["build", "--progress", "tty", "ctx"]);
    assert!(err.contains("not a terminal"), "{err}");
    context(
        &env,
        &[("Dockerfile", "FROM localhost/busybox\nLABEL a=b\n")],
    );
    let out = on_terminal(&env, "build --progress tty -t viatty ctx", b"");
    assert!(out.status.success(), "{}", show(&out));
    env.ok(["inspect", "viatty"]);
}

/// Every row a person sees after `hoist ARGS…` ran on an 80×24 terminal (under `script`):
/// the scrollback, then the screen, as a small terminal emulator (vt100) shows them.
fn terminal_rows(env: &TestEnv, args: &str) -> (Vec<String>, Vec<String>) {
    let line = format!(
        "stty cols 80 rows 24 && {} {args}",
        common::hoist_bin().display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env("HOIST_ROOT", &env.root)
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
    let out = run(&mut cmd);
    let (rows, cols) = (
        std::num::NonZeroU16::new(24).expect("rows"),
        std::num::NonZeroU16::new(80).expect("cols"),
    );
    let mut parser = vt100::Parser::new(rows, cols, 10_000);
    parser.process(&out.stdout);
    let screen = parser.screen_mut();
    screen.set_scrollback(usize::MAX);
    let history = screen.scrollback();
    let mut scrollback = Vec::new();
    for off in (1..=history).rev() {
        screen.set_scrollback(off);
        scrollback.extend(screen.rows(0, 80).next());
    }
    screen.set_scrollback(0);
    let visible: Vec<String> = screen.rows(0, 80).collect();
    (scrollback, visible)
}

#[test]
fn live_progress_fits_the_terminal_and_keeps_a_failure_on_screen() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    let long = format!("RUN echo {}", "x".repeat(141));
    assert_eq!(long.len(), 150);
    context(
        &env,
        &[(
            "Dockerfile",
            &format!("FROM localhost/busybox\n{long}\nRUN echo second\nLABEL a=b\n"),
        )],
    );
    let (scrollback, visible) = terminal_rows(&env, "build --progress tty ctx");
    let all: Vec<&String> = scrollback.iter().chain(&visible).collect();
    // each step line ends with its time, and a total closes the list
    let timed = |r: &&&String| {
        r.rsplit_once("✔ ")
            .is_some_and(|(_, t)| t.trim_end().ends_with('s'))
    };
    assert_eq!(
        all.iter()
            .filter(|r| r.starts_with('[') && timed(r))
            .count(),
        4,
        "{all:#?}"
    );
    let total: Vec<&&String> = all
        .iter()
        .filter(|r| r.starts_with("[+] Building "))
        .collect();
    assert_eq!(total.len(), 1, "{all:#?}");
    assert!(
        total[0].trim_end().ends_with("s (4/4) FINISHED"),
        "{all:#?}"
    );
    for step in [
        "[1/4] FROM",
        "[2/4] RUN echo xxx",
        "[3/4] RUN echo second",
        "[4/4] LABEL",
    ] {
        let n = all.iter().filter(|r| r.starts_with(step)).count();
        assert_eq!(n, 1, "`{step}` shown {n} times:\n{all:#?}");
    }
    assert!(
        all.iter().all(|r| r.chars().count() < 80),
        "a row reaches the edge: {all:#?}"
    );
    // a failing RUN: its last output lines and the error stay on the screen
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30; do echo line$i; done; exit 3\n",
        )],
    );
    let (_, visible) = terminal_rows(&env, "build --progress tty ctx");
    let screen = visible.join("\n");
    assert!(screen.contains("> line30"), "{screen}");
    assert!(screen.contains("> line25"), "{screen}");
    assert!(screen.contains("[2/2] RUN for i in"), "{screen}");
    assert!(screen.contains("exit status 3"), "{screen}");
    assert!(screen.contains("(1/2) FAILED"), "{screen}");
    // the error is the last thing on the screen, the output's last line right above the error
    let rows: Vec<&str> = visible
        .iter()
        .map(|r| r.trim_end())
        .filter(|r| !r.is_empty())
        .collect();
    let last_output = rows
        .iter()
        .rposition(|r| r.contains("> line30"))
        .expect("output on screen");
    let after = rows[last_output + 1..].concat();
    assert!(after.contains("exit status 3"), "{screen}");
    assert!(!after.contains("> ") && !after.contains("[+]"), "{screen}");
}

#[test]
fn plain_progress_prints_each_steps_time() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox
RUN echo hi
",
        )],
    );
    let out = env.ok(["build", "--progress", "plain", "ctx"]);
    for n in 1..=2 {
        let done = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("STEP {n}/2: DONE ")))
            .unwrap_or_else(|| panic!("no time for step {n}:\n{out}"));
        let secs = done.strip_suffix('s').expect("seconds");
        assert!(secs.parse::<f64>().is_ok(), "{out}");
    }
    // a cached step says so instead
    let out = env.ok(["build", "--progress", "plain", "ctx"]);
    assert!(out.contains("STEP 2/2: CACHED"), "{out}");
    assert!(!out.contains("STEP 2/2: DONE"), "{out}");
}

/// `inspect --format '{{.Size}}'` of `image`, in bytes.
fn inspect_bytes(env: &TestEnv, image: &str, field: &str) -> u64 {
    env.ok(["inspect", "--format", &format!("{{{{.{field}}}}}"), image])
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{field} of {image}: {e}"))
}

#[test]
fn images_size_is_the_unpacked_size() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    // the imported layer is the fixture tar itself, stored gzipped: SIZE is the tar's length
    let tar_len = std::fs::metadata(common::busybox_rootfs())
        .expect("fixture")
        .len();
    let human = hoist::util::human_size(tar_len);
    assert_eq!(inspect_bytes(&env, "busybox", "Size"), tar_len);
    let stored = inspect_bytes(&env, "busybox", "CompressedSize");
    assert!(stored < tar_len / 2 + tar_len / 4, "{stored} of {tar_len}");
    assert_eq!(env.ok(["images", "--format", "{{.Size}}"]).trim(), human);
    let table = env.ok(["images"]);
    let row = table.lines().nth(1).expect("a row");
    assert!(row.ends_with(&human), "{table}");
    // `--digests` adds what the blobs take as stored
    let table = env.ok(["images", "--digests"]);
    assert!(
        table
            .lines()
            .next()
            .expect("header")
            .ends_with("SIZE     CONTENT SIZE"),
        "{table}"
    );
    let row = table.lines().nth(1).expect("a row");
    assert!(row.ends_with(&hoist::util::human_size(stored)), "{table}");
    let df = env.ok(["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(df.contains(&format!("Images {human}")), "{df}");
    // history's SIZE is the layer's unpacked size too, as docker shows it
    let history = env.ok(["history", "--format", "json", "busybox"]);
    assert!(history.contains(&format!("{tar_len}")), "{history}");
    // a build with gzipped layers: 3 MB of zeros squeeze to a few kB, but count in full; the
    // second image shares the base layer, which `system df` counts once
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN head -c 3000000 /dev/zero > /zeros\n",
        )],
    );
    env.ok(["build", "--compression", "gzip", "-t", "zeros", "ctx"]);
    let size = inspect_bytes(&env, "zeros", "Size");
    assert!(size > tar_len + 3_000_000, "{size}");
    assert!(size < tar_len + 3_100_000, "{size}");
    assert!(inspect_bytes(&env, "zeros", "CompressedSize") < stored + 100_000);
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(["images", "--format", "json"])).expect("json");
    let sizes: Vec<u64> = json
        .as_array()
        .expect("array")
        .iter()
        .map(|i| i["Size"].as_u64().expect("Size"))
        .collect();
    assert!(sizes.contains(&size) && sizes.contains(&tar_len), "{json}");
    let df = env.ok(["system", "df", "--format", "{{.Type}} {{.Size}}"]);
    assert!(
        df.contains(&format!("Images {}", hoist::util::human_size(size))),
        "{df}"
    );
    // one size record per compressed layer, gone with the layer
    let records = || {
        std::fs::read_dir(env.root.join("sizes"))
            .expect("sizes")
            .count()
    };
    assert_eq!(records(), 2);
    env.ok(["rmi", "zeros"]);
    env.ok(["prune"]);
    assert_eq!(records(), 1);
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The stored manifest of `image`, parsed.
fn stored_manifest(env: &TestEnv, image: &str) -> serde_json::Value {
    let digest = env.ok(["inspect", "--format", "{{.Digest}}", image]);
    let hex = digest.trim().trim_start_matches("sha256:").to_string();
    let bytes = std::fs::read(env.root.join("blobs/sha256").join(hex)).expect("manifest blob");
    serde_json::from_slice(&bytes).expect("manifest JSON")
}

/// Asserts the manifest's own, config and layer media types are all `docker`'s or all OCI's.
fn assert_media_types(m: &serde_json::Value, docker: bool) {
    let (manifest, config, layer) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar",
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar",
        )
    };
    assert_eq!(m["mediaType"], manifest, "{m}");
    assert_eq!(m["config"]["mediaType"], config, "{m}");
    let layers = m["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 2, "{m}");
    for l in layers {
        let t = l["mediaType"].as_str().expect("layer type");
        assert!(t.starts_with(layer), "{m}");
    }
}

#[test]
fn build_format_docker_or_oci_keeps_healthcheck_onbuild_shell() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    let dockerfile = |label: &str| {
        format!(
            "FROM localhost/busybox\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN echo child\nSHELL [\"/bin/sh\", \"-ec\"]\nLABEL which={label}\nRUN echo hi > /hi\n"
        )
    };
    let docker_fields = |image: &str| {
        env.ok([
            "inspect",
            "--format",
            "{{json .Config.Healthcheck}} {{json .Config.OnBuild}} {{json .Config.Shell}}",
            image,
        ])
    };
    let want = r#"{"Interval":5000000000,"Test":["CMD-SHELL","true"]} ["RUN echo child"] ["/bin/sh","-ec"]"#;
    context(&env, &[("Dockerfile", &dockerfile("docker"))]);
    env.ok(["build", "--format", "docker", "-t", "d", "ctx"]);
    assert_eq!(
        env.ok(["inspect", "--format", "{{.ManifestType}}", "d"])
            .trim(),
        DOCKER_MANIFEST
    );
    assert_media_types(&stored_manifest(&env, "d"), true);
    assert_eq!(docker_fields("d").trim(), want);
    // the default is OCI, and keeps the same fields (as docker build does)
    context(&env, &[("Dockerfile", &dockerfile("default"))]);
    env.ok(["build", "-t", "o", "ctx"]);
    assert_media_types(&stored_manifest(&env, "o"), false);
    assert_eq!(docker_fields("o").trim(), want);
    // podman's environment variable chooses too; the flag wins over it
    context(&env, &[("Dockerfile", &dockerfile("env"))]);
    let out = run(env
        .cmd(["build", "-t", "e", "ctx"])
        .env("BUILDAH_FORMAT", "docker"));
    assert!(out.status.success(), "{}", show(&out));
    assert_media_types(&stored_manifest(&env, "e"), true);
    context(&env, &[("Dockerfile", &dockerfile("flag"))]);
    let out = run(env
        .cmd(["build", "--format", "oci", "-t", "f", "ctx"])
        .env("BUILDAH_FORMAT", "docker"));
    assert!(out.status.success(), "{}", show(&out));
    assert_media_types(&stored_manifest(&env, "f"), false);
    // the same image again in the other format keeps its manifest, and says so
    context(&env, &[("Dockerfile", &dockerfile("docker"))]);
    let out = run(&mut env.cmd(["build", "--format", "oci", "-t", "d2", "ctx"]));
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("which it keeps"), "{stderr}");
    assert_media_types(&stored_manifest(&env, "d2"), true);
    // an oci-archive carries OCI media types (skopeo's `oci-archive:` reads only those), the
    // same config; loaded elsewhere it still has its healthcheck
    let archive = env.path("d.tar");
    env.ok([
        "save".as_ref(),
        "--format".as_ref(),
        "oci-archive".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        "d".as_ref(),
    ]);
    let mut files = std::collections::BTreeMap::new();
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).expect("archive"));
    for e in tar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("read");
        files.insert(name, data);
    }
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).expect("index");
    assert_eq!(index["manifests"][0]["mediaType"], OCI_MANIFEST, "{index}");
    let mdigest = index["manifests"][0]["digest"].as_str().expect("digest");
    let m: serde_json::Value = serde_json::from_slice(
        &files[&format!("blobs/sha256/{}", mdigest.trim_start_matches("sha256:"))],
    )
    .expect("manifest");
    assert_media_types(&m, false);
    let other = TestEnv::new();
    other.ok(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
    assert_eq!(
        other
            .ok(["inspect", "--format", "{{json .Config.Healthcheck}}", "d"])
            .trim(),
        r#"{"Interval":5000000000,"Test":["CMD-SHELL","true"]}"#
    );
    // what cannot be written is refused before anything runs
    let err = env.fails(1, ["build", "--format", "v1", "ctx"]);
    assert!(err.contains("unknown `--format` `v1`"), "{err}");
    let err = env.fails(
        1,
        [
            "build",
            "--format",
            "docker",
            "--compression",
            "zstd",
            "ctx",
        ],
    );
    assert!(err.contains("zstd"), "{err}");
}

#[test]
fn live_progress_names_each_step_of_parallel_stages_once_with_its_time() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    // stages `a` and `b` run side by side: `a`'s RUN is still running when `b`'s steps finish
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox AS a\nRUN sleep 1; echo a > /a\nFROM localhost/busybox AS b\nRUN echo b > /b\nRUN echo b2 > /b2\nFROM localhost/busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        )],
    );
    let (scrollback, visible) = terminal_rows(&env, "build --progress tty ctx");
    let all: Vec<&String> = scrollback.iter().chain(&visible).collect();
    for step in [
        "[1/8] FROM localhost/busybox AS a",
        "[2/8] RUN sleep 1; echo a > /a",
        "[3/8] FROM localhost/busybox AS b",
        "[4/8] RUN echo b > /b",
        "[5/8] RUN echo b2 > /b2",
        "[6/8] FROM localhost/busybox",
        "[7/8] COPY --from=a /a /a",
        "[8/8] COPY --from=b /b /b",
    ] {
        let rows: Vec<&&String> = all.iter().filter(|r| r.starts_with(step)).collect();
        assert_eq!(rows.len(), 1, "`{step}`:\n{all:#?}");
        assert!(rows[0].contains("  ✔ "), "`{step}` has no time:\n{all:#?}");
    }
    // no step is finished under another step's number
    let bare = all
        .iter()
        .filter(|r| r.starts_with('[') && r.contains("]  ✔"))
        .count();
    assert_eq!(bare, 0, "{all:#?}");
}
