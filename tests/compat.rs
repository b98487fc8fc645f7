//! The compatibility suite: every context of `fixtures/compat/` and every busybox-only Buildah
//! conformance case (`fixtures/buildah-conformance/`) is built by `hoist build` and by Debian's
//! `buildah build --layers`, and the two images' flattened file systems and configs must be
//! equal (see `tests/compat_support/mod.rs`; deliberate differences are listed per case with the
//! reason). One test per case, named after it. `reference_side_builds_every_case` checks the
//! buildah side alone, so a broken reference is told apart from a hoist difference.

mod common;
mod compat_support;

use compat_support::{buildah_side, cases, check, conformance, Outcome};

macro_rules! compat {
    ($($test:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check(&cases::get($case));
            }
        )*
    };
}

macro_rules! conformance {
    ($($test:ident => $case:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check(&conformance::get($case));
            }
        )*
    };
}

compat! {
    compat_multi_stage_target => "multi-stage-target",
    compat_whiteout_file => "whiteout-file",
    compat_opaque_dir => "opaque-dir",
    compat_hard_links => "hard-links",
    compat_setuid_file => "setuid-file",
    compat_copy_chown_chmod => "copy-chown-chmod",
    compat_copy_from_stage => "copy-from-stage",
    compat_copy_exclude => "copy-exclude",
    compat_copy_parents => "copy-parents",
    compat_add_archives => "add-archives",
    compat_heredocs => "heredocs",
    compat_config_instructions => "config-instructions",
    compat_entrypoint_resets_cmd => "entrypoint-resets-cmd",
    compat_cmd_shell_form => "cmd-shell-form",
    compat_dockerignore => "dockerignore",
    compat_run_mounts => "run-mounts",
    compat_copy_2000_files => "copy-2000-files",
    compat_copy_dest_rules => "copy-dest-rules",
    compat_symlinks => "symlinks",
    compat_workdir_user => "workdir-user",
    compat_args_env_expansion => "args-env-expansion",
    compat_onbuild_triggers => "onbuild-triggers",
    compat_run_forms => "run-forms",
}

conformance! {
    conformance_002_copy_file_to_root => "002-copy-file-to-root",
    conformance_003_copy_file_to_same_file => "003-copy-file-to-same-file",
    conformance_004_copy_file_to_workdir => "004-copy-file-to-workdir",
    conformance_005_copy_file_to_workdir_rename => "005-copy-file-to-workdir-rename",
    conformance_006_copy_folder_contents_to_higher_level => "006-copy-folder-contents-to-higher-level",
    conformance_007_copy_wildcard_folder_contents_to_higher_level => "007-copy-wildcard-folder-contents-to-higher-level",
    conformance_008_copy_folder_with_dot_contents_to_higher_level => "008-copy-folder-with-dot-contents-to-higher-level",
    conformance_009_copy_root_file_to_different_root_name => "009-copy-root-file-to-different-root-name",
    conformance_010_copy_nested_file_to_different_root_name => "010-copy-nested-file-to-different-root-name",
    conformance_011_copy_file_to_deeper_directory_with_explicit_slash => "011-copy-file-to-deeper-directory-with-explicit-slash",
    conformance_012_copy_file_to_deeper_directory_without_explicit_slash => "012-copy-file-to-deeper-directory-without-explicit-slash",
    conformance_013_copy_directory_to_deeper_directory_without_explicit_slash => "013-copy-directory-to-deeper-directory-without-explicit-slash",
    conformance_014_copy_directory_to_root_without_explicit_slash => "014-copy-directory-to-root-without-explicit-slash",
    conformance_015_copy_directory_trailing_to_root_without_explicit_slash => "015-copy-directory-trailing-to-root-without-explicit-slash",
    conformance_017_directory => "017-directory",
    conformance_022_copy_from_subdir_to_new_directory => "022-copy-from-subdir-to-new-directory",
    conformance_025_directory_with_slash => "025-directory-with-slash",
    conformance_026_directory_without_slash => "026-directory-without-slash",
    conformance_027_environment => "027-environment",
    conformance_028_edgecases => "028-edgecases",
    conformance_029_exposed_default => "029-exposed-default",
    conformance_031_run_with_json => "031-run-with-json",
    conformance_032_wildcard => "032-wildcard",
    conformance_033_volume => "033-volume",
    conformance_034_volumerun => "034-volumerun",
    conformance_037_ci_pipeline_modified => "037-ci-pipeline-modified",
    conformance_039_copy_permissions => "039-copy-permissions",
    conformance_040_copy_permissions_implicit => "040-copy-permissions-implicit",
    conformance_042_dockerfile_in_subdirectory => "042-dockerfile-in-subdirectory",
    conformance_043_setuid_file_in_context => "043-setuid-file-in-context",
    conformance_044_xattrs_file_in_context => "044-xattrs-file-in-context",
    conformance_045_from_scratch_simple_file => "045-from-scratch-simple-file",
    conformance_046_setuid_file_in_archive => "046-setuid-file-in-archive",
    conformance_047_xattrs_file_in_archive => "047-xattrs-file-in-archive",
    conformance_048_setuid_file_in_other_stage => "048-setuid-file-in-other-stage",
    conformance_049_xattrs_file_in_other_stage => "049-xattrs-file-in-other-stage",
    conformance_050_copy_multiple_some_missing => "050-copy-multiple-some-missing",
    conformance_051_copy_multiple_missing_file_with_glob => "051-copy-multiple-missing-file-with-glob",
    conformance_052_copy_multiple_missing_file_with_nomatch_on_glob => "052-copy-multiple-missing-file-with-nomatch-on-glob",
    conformance_053_copy_multiple_some_missing_glob => "053-copy-multiple-some-missing-glob",
    conformance_054_file_in_workdir_in_other_stage => "054-file-in-workdir-in-other-stage",
    conformance_056_copy_integration2 => "056-copy-integration2",
    conformance_057_copy_integration3 => "057-copy-integration3",
    conformance_060_copy_absolute_directory_1 => "060-copy-absolute-directory-1",
    conformance_061_copy_absolute_directory_2 => "061-copy-absolute-directory-2",
    conformance_062_copy_absolute_directory_3 => "062-copy-absolute-directory-3",
    conformance_064_multi_stage_derived => "064-multi-stage-derived",
    conformance_066_dockerignore_is_even_there => "066-dockerignore-is-even-there",
    conformance_067_dockerignore_irrelevant => "067-dockerignore-irrelevant",
    conformance_068_dockerignore_exceptions_dot => "068-dockerignore-exceptions-dot",
    conformance_069_dockerignore_extensions_star => "069-dockerignore-extensions-star",
    conformance_070_dockerignore_includes_dot => "070-dockerignore-includes-dot",
    conformance_092_dockerignore_includes_star => "092-dockerignore-includes-star",
    conformance_093_dockerignore_exclude_plain_dot => "093-dockerignore-exclude-plain-dot",
    conformance_094_dockerignore_exclude_plain_star => "094-dockerignore-exclude-plain-star",
    conformance_095_dockerignore_exclude_plain_dot => "095-dockerignore-exclude-plain-dot",
    conformance_096_dockerignore_exclude_plain_star => "096-dockerignore-exclude-plain-star",
    conformance_097_dockerignore_exclude_wildcard_dot => "097-dockerignore-exclude-wildcard-dot",
    conformance_098_dockerignore_exclude_wildcard_star => "098-dockerignore-exclude-wildcard-star",
    conformance_099_dockerignore_exclude_deep_wildcard_dot => "099-dockerignore-exclude-deep-wildcard-dot",
    conformance_100_dockerignore_exclude_deep_wildcard_star => "100-dockerignore-exclude-deep-wildcard-star",
    conformance_101_dockerignore_exclude_deep_subdir_dot => "101-dockerignore-exclude-deep-subdir-dot",
    conformance_102_dockerignore_exclude_deep_subdir_star => "102-dockerignore-exclude-deep-subdir-star",
    conformance_103_dockerignore_exclude_not_so_deep_subdir_dot => "103-dockerignore-exclude-not-so-deep-subdir-dot",
    conformance_104_dockerignore_exclude_not_so_deep_subdir_star => "104-dockerignore-exclude-not-so-deep-subdir-star",
    conformance_105_dockerignore_exclude_kind_of_deep_subdir_dot => "105-dockerignore-exclude-kind-of-deep-subdir-dot",
    conformance_106_dockerignore_exclude_kind_of_deep_subdir_star => "106-dockerignore-exclude-kind-of-deep-subdir-star",
    conformance_107_dockerignore_exclude_deep_subdir_dot => "107-dockerignore-exclude-deep-subdir-dot",
    conformance_108_dockerignore_exclude_deep_subdir_star => "108-dockerignore-exclude-deep-subdir-star",
    conformance_109_env_whitespace => "109-env-whitespace",
    conformance_110_env_simple => "110-env-simple",
    conformance_111_env_unquoted_list => "111-env-unquoted-list",
    conformance_112_env_dquoted_list => "112-env-dquoted-list",
    conformance_113_env_escaped_value => "113-env-escaped-value",
    conformance_114_env_squote_in_dquote => "114-env-squote-in-dquote",
    conformance_115_env_dquote_in_squote => "115-env-dquote-in-squote",
    conformance_116_env_escaped_list => "116-env-escaped-list",
    conformance_117_env_eddquote => "117-env-eddquote",
    conformance_118_env_invalid_ssquote => "118-env-invalid-ssquote",
    conformance_119_env_esdquote => "119-env-esdquote",
    conformance_120_env_essquote => "120-env-essquote",
    conformance_121_env_edsquote => "121-env-edsquote",
    conformance_122_env_empty_squote_in_empty_dquote => "122-env-empty-squote-in-empty-dquote",
    conformance_123_env_multiline => "123-env-multiline",
    conformance_129_add_parent_dangling => "129-add-parent-dangling",
    conformance_130_add_parent_clean => "130-add-parent-clean",
    conformance_141_dockerignore_allowlist_subdir_nofile_dir => "141-dockerignore-allowlist-subdir-nofile-dir",
    conformance_142_dockerignore_allowlist_subdir_nofile_file => "142-dockerignore-allowlist-subdir-nofile-file",
    conformance_143_dockerignore_allowlist_subdir_file_dir => "143-dockerignore-allowlist-subdir-file-dir",
    conformance_144_dockerignore_allowlist_subdir_file_file => "144-dockerignore-allowlist-subdir-file-file",
    conformance_145_dockerignore_allowlist_nothing_dot => "145-dockerignore-allowlist-nothing-dot",
    conformance_146_dockerignore_allowlist_nothing_slash => "146-dockerignore-allowlist-nothing-slash",
    conformance_148_dockerignore_allowlist_subsubdir_nofile => "148-dockerignore-allowlist-subsubdir-nofile",
    conformance_149_dockerignore_allowlist_subsubdir_nosubdir => "149-dockerignore-allowlist-subsubdir-nosubdir",
    conformance_151_dockerignore_allowlist_alternating_nothing => "151-dockerignore-allowlist-alternating-nothing",
    conformance_152_dockerignore_allowlist_alternating_other => "152-dockerignore-allowlist-alternating-other",
    conformance_159_replace_symlink_with_directory => "159-replace-symlink-with-directory",
    conformance_160_replace_directory_with_symlink => "160-replace-directory-with-symlink",
    conformance_161_replace_symlink_with_directory_subdir => "161-replace-symlink-with-directory-subdir",
    conformance_162_replace_directory_with_symlink_subdir => "162-replace-directory-with-symlink-subdir",
    conformance_165_env_precedence => "165-env-precedence",
    conformance_168_workdir_with_trailing_separator => "168-workdir-with-trailing-separator",
    conformance_169_workdir_without_trailing_separator => "169-workdir-without-trailing-separator",
    conformance_170_chown_volume => "170-chown-volume",
    conformance_173_copyglob_1 => "173-copyglob-1",
    conformance_174_copyglob_2 => "174-copyglob-2",
    conformance_175_copyglob_3 => "175-copyglob-3",
    conformance_182_build_arg_overrides_header_arg_for_from => "182-build-arg-overrides-header-arg-for-from",
    conformance_184_stage_arg_overrides_header_arg_in_same_stage => "184-stage-arg-overrides-header-arg-in-same-stage",
}

/// The buildah side of every case builds (or fails where the case must fail) and yields a
/// non-empty file system, and the lists of tests above name every case exactly once.
#[test]
fn reference_side_builds_every_case() {
    let all: Vec<_> = cases::all().into_iter().chain(conformance::all()).collect();
    let here = include_str!("compat.rs");
    let mut failures = Vec::new();
    for case in &all {
        let listed = here.matches(&format!("=> \"{}\",", case.name)).count();
        if listed != 1 {
            failures.push(format!(
                "{}: listed {listed} times in tests/compat.rs",
                case.name
            ));
        }
        match buildah_side(case) {
            Ok(Some(built)) => {
                if built.listing.is_empty() && case.outcome == Outcome::Image {
                    failures.push(format!("{}: empty file system", case.name));
                }
            }
            Ok(None) => {}
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} cases fail on the buildah side\n{}\n{}\n{}",
            failures.len(),
            all.len(),
            "=".repeat(72),
            failures.join("\n"),
            "=".repeat(72)
        );
    }
}

/// The flattener the suite relies on, on a hand-made layout: a named image (found by its
/// `org.opencontainers.image.ref.name` annotation, as in hoist's store) whose second layer
/// whites out a file, makes a directory opaque, adds a hard link and replaces a directory by a
/// file.
#[test]
fn flattener_applies_whiteouts_opaque_dirs_and_hard_links() {
    use sha2::{Digest, Sha256};
    use std::fs;
    fn layer(entries: &[(&str, char, u32, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            h.set_uid(0);
            h.set_gid(0);
            match kind {
                'd' => h.set_entry_type(tar::EntryType::Directory),
                'l' => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_link_name(data).expect("link");
                }
                's' => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_link_name(data).expect("link");
                }
                _ => h.set_entry_type(tar::EntryType::Regular),
            }
            let body: &[u8] = if *kind == 'f' { data.as_bytes() } else { b"" };
            h.set_size(body.len() as u64);
            b.append_data(&mut h, path, body).expect("append");
        }
        b.into_inner().expect("tar")
    }
    let tmp = tempfile::tempdir().expect("temp");
    let root = tmp.path();
    fs::create_dir_all(root.join("blobs/sha256")).expect("blobs");
    let put = |data: &[u8]| {
        let hex = hex::encode(Sha256::digest(data));
        fs::write(root.join("blobs/sha256").join(&hex), data).expect("blob");
        (format!("sha256:{hex}"), data.len())
    };
    let l1 = put(&layer(&[
        ("etc/", 'd', 0o755, ""),
        ("etc/a", 'f', 0o644, "a"),
        ("etc/b", 'f', 0o600, "b"),
        ("data/", 'd', 0o755, ""),
        ("data/old", 'f', 0o644, "old"),
        ("gone/", 'd', 0o755, ""),
        ("gone/x", 'f', 0o644, "x"),
    ]));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(
        &mut gz,
        &layer(&[
            ("etc/.wh.a", 'f', 0o644, ""),
            ("data/new", 'f', 0o644, "new"),
            ("data/.wh..wh..opq", 'f', 0o644, ""),
            ("etc/b2", 'l', 0o600, "etc/b"),
            ("etc/link", 's', 0o777, "b"),
            ("gone", 'f', 0o4755, "now a file"),
        ]),
    )
    .expect("gzip");
    let l2 = put(&gz.finish().expect("gzip"));
    let config =
        put(br#"{"config":{"Env":["A=1"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l1.0, "size": l1.1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l2.0, "size": l2.1},
        ],
    });
    let m = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m.0, "size": m.1,
         "annotations": {"org.opencontainers.image.ref.name": "localhost/sample:latest"}}
    ]});
    fs::write(root.join("index.json"), index.to_string()).expect("index");
    let flat = compat_support::flatten::flatten(root, Some("sample")).expect("flatten");
    let got: Vec<String> = flat.listing();
    let want = [
        "/data dir 0755 0:0",
        "/data/new file 0644 0:0 3 11507a0e2f5e69d5",
        "/etc dir 0755 0:0",
        "/etc/b file 0600 0:0 1 3e23e8160039594a hardlinks=etc/b,etc/b2",
        "/etc/b2 file 0600 0:0 1 3e23e8160039594a hardlinks=etc/b,etc/b2",
        "/etc/link symlink 0777 0:0 -> b",
        "/gone file 4755 0:0 10 92af885f330ed4b1",
    ];
    common::assert_same("flattened listing", &want.join("\n"), &got.join("\n"));
    assert_eq!(flat.config["config"]["Cmd"], serde_json::json!(["sh"]));
    assert!(compat_support::flatten::flatten(root, Some("other")).is_err());
}
