//! The conformance table: every instruction, flag and option of BuildKit's Dockerfile reference
//! (docs.docker.com/reference/dockerfile) with what hoist does — works, partial, differs or
//! refused, and why — and the tests through the real binary that show it. README.md's section
//! between the `conformance:begin` and `conformance:end` markers is generated from [`ROWS`]; a
//! test fails when it is stale (`HOIST_BLESS=1 cargo test --test conformance` rewrites it) or when
//! a row names a test that does not exist.

use std::fs;
use std::path::Path;

/// One item of the reference: its name, hoist's status, why (for anything but `works`), and
/// the tests (`file::function` under `tests/`) that show it.
struct Row {
    item: &'static str,
    status: &'static str,
    note: &'static str,
    tests: &'static [&'static str],
}

const fn row(
    item: &'static str,
    status: &'static str,
    note: &'static str,
    tests: &'static [&'static str],
) -> Row {
    Row {
        item,
        status,
        note,
        tests,
    }
}

const ROWS: &[Row] = &[
    row(
        "parser directive `syntax`",
        "works",
        "`docker/dockerfile:1…` accepted; other frontends refused",
        &[
            "dockerfile_errors::every_error_kind_is_located",
            "dockerfile_instructions::stages_meta_args_and_from",
        ],
    ),
    row(
        "parser directive `escape`",
        "works",
        "drives line continuation and every word expansion",
        &[
            "dockerfile_semantics::escape_directive_drives_word_expansion",
            "dockerfile_instructions::escape_directive_backtick",
        ],
    ),
    row(
        "parser directive `check`",
        "works",
        "",
        &[
            "checks::check_directive_skip_and_error",
            "checks::check_comment_above_an_instruction_or_stage",
        ],
    ),
    row(
        "build checks (21 rules)",
        "works",
        "",
        &[
            "checks::reference_examples_of_each_rule",
            "checks::real_world_corpus_warns_only_where_the_rules_say",
        ],
    ),
    row(
        "environment replacement (`$VAR`, `${VAR:-x}`, `${VAR:+x}`, …)",
        "works",
        "all pairs of one `ENV` see the values from before it",
        &[
            "dockerfile_semantics::env_pairs_see_the_values_from_before_the_instruction",
            "build::build_args_scope_and_warn_when_unused",
        ],
    ),
    row(
        "`.dockerignore`",
        "works",
        "",
        &[
            "context_sources::excluded_sources_name_the_line_of_the_ignore_file",
            "context_sources::a_named_dockerfile_ignore_file_is_preferred",
        ],
    ),
    row(
        "`FROM image`, `AS name`, meta `ARG`",
        "works",
        "a stage name used twice means the latest",
        &[
            "dockerfile_instructions::stages_meta_args_and_from",
            "build::target_builds_only_the_stages_it_needs",
            "dockerfile_semantics::duplicate_stage_names_mean_the_latest",
        ],
    ),
    row(
        "`FROM --platform`",
        "partial",
        "this machine's platform only (no emulation)",
        &[
            "build::foreign_platforms_and_unknown_flags_are_refused",
            "dockerfile_semantics::platform_with_a_native_variant_is_accepted",
        ],
    ),
    row(
        "`RUN` shell and exec form, heredocs",
        "works",
        "",
        &[
            "dockerfile_instructions::run_forms_and_flags",
            "build::heredoc_run_and_user_affects_run",
            "build::heredoc_scripts_with_a_shebang_run_with_their_interpreter",
        ],
    ),
    row(
        "`RUN --mount=type=bind`",
        "works",
        "target relative to WORKDIR; CSV-quoted fields",
        &[
            "build::cache_tmpfs_and_bind_mounts",
            "dockerfile_semantics::mount_targets_are_relative_to_workdir",
            "dockerfile_semantics::mount_csv_field_with_commas",
        ],
    ),
    row(
        "`RUN --mount=type=cache`",
        "partial",
        "`from=` seeding refused",
        &[
            "build::cache_tmpfs_and_bind_mounts",
            "dockerfile_semantics::unsupported_features_are_refused_with_one_line",
            "cache::sharing_locked_serializes_two_concurrent_builds",
            "cache::sharing_private_gives_a_concurrent_user_a_fresh_directory",
        ],
    ),
    row(
        "`RUN --mount=type=tmpfs`",
        "works",
        "",
        &["build::cache_tmpfs_and_bind_mounts"],
    ),
    row(
        "`RUN --mount=type=secret`",
        "partial",
        "as a file; `env=` refused",
        &[
            "build::secrets_are_readable_in_run_and_never_in_a_layer",
            "dockerfile_semantics::unsupported_features_are_refused_with_one_line",
        ],
    ),
    row(
        "`RUN --mount=type=ssh`",
        "refused",
        "not yet: a clear error",
        &["dockerfile_semantics::unsupported_features_are_refused_with_one_line"],
    ),
    row(
        "`RUN --network`",
        "works",
        "",
        &["dockerfile_semantics::run_network_none_has_only_loopback"],
    ),
    row(
        "`RUN --security`, `--device`",
        "refused",
        "not yet: a clear error",
        &["dockerfile_semantics::unsupported_features_are_refused_with_one_line"],
    ),
    row(
        "`CMD`, `ENTRYPOINT`, `SHELL`",
        "works",
        "",
        &[
            "build::entrypoint_resets_an_inherited_cmd_but_not_its_own",
            "dockerfile_instructions::cmd_entrypoint_shell_and_simple_ones",
        ],
    ),
    row(
        "`LABEL`, `MAINTAINER`",
        "works",
        "",
        &[
            "build::config_instructions_edit_the_image_config",
            "dockerfile_instructions::env_label_arg_forms",
        ],
    ),
    row(
        "`EXPOSE`",
        "works",
        "one key per port of a range; a host mapping is dropped with a warning",
        &["dockerfile_semantics::expose_ranges_give_one_key_per_port"],
    ),
    row(
        "`ENV`, `ARG`",
        "works",
        "",
        &[
            "dockerfile_semantics::env_pairs_see_the_values_from_before_the_instruction",
            "build::build_args_scope_and_warn_when_unused",
        ],
    ),
    row(
        "`COPY` sources, wildcards, `**`, `../`, destination rules",
        "works",
        "",
        &[
            "build::copy_destination_rules",
            "dockerfile_semantics::copy_parents_with_double_star",
            "dockerfile_semantics::copy_strips_parent_navigation",
        ],
    ),
    row(
        "`COPY` over an entry of the other kind",
        "works",
        "refused as BuildKit refuses it (buildah 1.28 replaces)",
        &["dockerfile_semantics::copy_never_replaces_an_entry_of_the_other_kind"],
    ),
    row(
        "`COPY --from`",
        "works",
        "a stage defined earlier, an index or an image; no variables",
        &[
            "dockerfile_semantics::from_with_a_variable_or_a_later_stage_is_refused",
            "build::independent_stages_build_side_by_side_and_a_failure_among_them_is_reported",
        ],
    ),
    row(
        "`COPY --chown`, `--chmod`",
        "works",
        "",
        &["dockerfile_semantics::copy_chmod_copies_a_class"],
    ),
    row(
        "`COPY --link`, `ADD --link`",
        "works",
        "",
        &["dockerfile_semantics::copy_link_writes_as_into_an_empty_tree"],
    ),
    row(
        "`COPY --parents`, `--exclude`",
        "works",
        "",
        &[
            "dockerfile_semantics::copy_parents_with_double_star",
            "context_sources::exclude_patterns_apply_below_each_source",
        ],
    ),
    row(
        "`ADD` local archives, files, URLs, `--checksum`",
        "works",
        "",
        &["build::add_unpacks_local_archives_and_fetches_urls"],
    ),
    row(
        "`ADD --chown` on an archive, `--unpack`",
        "works",
        "",
        &["dockerfile_semantics::add_chown_owns_unpacked_archives_and_unpack_fetches_urls"],
    ),
    row(
        "`ADD` archive unpacked through the image's symlinks",
        "works",
        "",
        &["dockerfile_semantics::add_archive_lands_through_the_image_symlinks"],
    ),
    row(
        "`ADD` git repositories, `--keep-git-dir`",
        "refused",
        "not yet: a clear error",
        &["dockerfile_semantics::unsupported_features_are_refused_with_one_line"],
    ),
    row(
        "`VOLUME`",
        "works",
        "a later RUN's changes under it are kept (buildah 1.28 drops them)",
        &["dockerfile_semantics::run_changes_under_a_volume_are_kept"],
    ),
    row(
        "`USER`, `WORKDIR`",
        "works",
        "",
        &[
            "build::heredoc_run_and_user_affects_run",
            "build::config_instructions_edit_the_image_config",
        ],
    ),
    row(
        "`ONBUILD`",
        "works",
        "",
        &["build::onbuild_triggers_run_after_from"],
    ),
    row(
        "`STOPSIGNAL`, `HEALTHCHECK`",
        "works",
        "",
        &[
            "build::config_instructions_edit_the_image_config",
            "dockerfile_instructions::healthcheck_forms",
        ],
    ),
    row(
        "`SOURCE_DATE_EPOCH` / `--timestamp`",
        "works",
        "layer dirs hold what the blobs hold; `type=local` clamped too",
        &[
            "build::timestamp_builds_are_reproducible",
            "dockerfile_semantics::timestamp_child_is_the_same_on_a_built_or_a_loaded_base",
            "dockerfile_semantics::timestamp_applies_to_a_local_output",
        ],
    ),
];

/// The generated markdown.
fn render() -> String {
    let mut s = String::from(
        "<!-- generated by tests/conformance.rs: edit ROWS there, then `HOIST_BLESS=1 cargo test --test conformance` -->\n\n\
         | Dockerfile reference | hoist | shown by |\n| --- | --- | --- |\n",
    );
    for r in ROWS {
        let status = if r.note.is_empty() {
            r.status.to_string()
        } else {
            format!("{}: {}", r.status, r.note)
        };
        let tests: Vec<String> = r.tests.iter().map(|t| format!("`{t}`")).collect();
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            r.item,
            status,
            tests.join(", ")
        ));
    }
    s
}

#[test]
fn every_row_names_tests_that_exist() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    for r in ROWS {
        assert!(
            ["works", "partial", "differs", "refused"].contains(&r.status),
            "{}: unknown status {}",
            r.item,
            r.status
        );
        assert!(
            r.status == "works" || !r.note.is_empty(),
            "{}: say why",
            r.item
        );
        assert!(!r.tests.is_empty(), "{}: no test shows it", r.item);
        for t in r.tests {
            let (file, name) = t.split_once("::").expect("file::function");
            let text = fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap_or_default();
            if !text.contains(&format!("#[test]\nfn {name}()")) {
                missing.push(*t);
            }
        }
    }
    assert!(missing.is_empty(), "no such tests: {missing:?}");
}

const BEGIN: &str = "<!-- conformance:begin -->\n";
const END: &str = "<!-- conformance:end -->\n";

#[test]
fn readme_conformance_table_is_generated_from_the_rows() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = fs::read_to_string(&path).expect("README.md");
    let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!(
            "README.md lacks the `{}` and `{}` markers",
            BEGIN.trim(),
            END.trim()
        );
    };
    assert!(b < e, "README.md: the conformance markers are out of order");
    let have = &readme[b + BEGIN.len()..e];
    let want = render();
    if have != want && std::env::var_os("HOIST_BLESS").is_some() {
        let new = format!("{}{want}{}", &readme[..b + BEGIN.len()], &readme[e..]);
        fs::write(&path, new).expect("write README.md");
        return;
    }
    assert!(
        have == want,
        "README.md's conformance table is stale: run `HOIST_BLESS=1 cargo test --test conformance`"
    );
}
