//! `man/` holds one page per verb, generated with clap_mangen from the one clap definition
//! (`hoist::cli::Cli`). This test fails when a page is stale, missing or left over; run it with
//! `HOIST_UPDATE_MAN=1` to rewrite `man/`:
//!
//! ```text
//! HOIST_UPDATE_MAN=1 cargo test --test verbs_man
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use clap::CommandFactory;

/// Every page, by file name: `hoist.1` and `hoist-VERB.1` for each visible subcommand.
fn render_pages() -> BTreeMap<String, Vec<u8>> {
    fn walk(cmd: clap::Command, out: &mut BTreeMap<String, Vec<u8>>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
            walk(sub, out);
        }
        let man = clap_mangen::Man::new(cmd);
        let mut buf = Vec::new();
        man.render(&mut buf).expect("render man page");
        out.insert(man.get_filename(), buf);
    }
    let mut cmd = hoist::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = BTreeMap::new();
    walk(cmd, &mut out);
    out
}

#[test]
fn man_pages_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = render_pages();
    assert!(pages.contains_key("hoist.1"));
    assert!(pages.contains_key("hoist-images.1"));
    if std::env::var_os("HOIST_UPDATE_MAN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("create man/");
        for e in std::fs::read_dir(&dir).expect("list man/").flatten() {
            if e.file_name().to_string_lossy().ends_with(".1") {
                std::fs::remove_file(e.path()).expect("remove old page");
            }
        }
        for (name, data) in &pages {
            std::fs::write(dir.join(name), data).expect("write page");
        }
        return;
    }
    let mut problems = Vec::new();
    for (name, data) in &pages {
        match std::fs::read(dir.join(name)) {
            Ok(old) if &old == data => {}
            Ok(_) => problems.push(format!("man/{name} is stale")),
            Err(_) => problems.push(format!("man/{name} is missing")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".1") && !pages.contains_key(&name) {
                problems.push(format!("man/{name} has no command any more"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nrun `HOIST_UPDATE_MAN=1 cargo test --test verbs_man` to regenerate man/",
        problems.join("\n")
    );
}
