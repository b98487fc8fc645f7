//! The reference side of the compatibility suite: Debian's `buildah` in a private storage under
//! the test target directory (`vfs` driver, `--isolation chroot`, `runc`, host network), with the
//! busybox fixture committed as `localhost/busybox` (made from the same root file system tarball
//! hoist imports, with a fixed timestamp so buildah's `--layers` cache survives between runs).

use crate::common;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A private buildah storage with the busybox base in it.
pub struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    /// The storage of this test run, made (and the base committed) once per test binary.
    pub fn get() -> &'static Buildah {
        static B: OnceLock<Buildah> = OnceLock::new();
        B.get_or_init(|| {
            common::require("buildah");
            common::require("runc");
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-buildah");
            std::fs::create_dir_all(&dir).expect("buildah dir");
            let b = Buildah {
                root: dir.join("root"),
                runroot: dir.join("runroot"),
            };
            let lock = hoist::util::FileLock::exclusive(&dir.join("base.lock")).expect("lock");
            b.make_base();
            drop(lock);
            b
        })
    }

    /// `buildah --root … --runroot … --storage-driver vfs ARGS…`, not yet run.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new("buildah");
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--storage-driver")
            .arg("vfs")
            .args(args)
            .env("BUILDAH_ISOLATION", "chroot")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(std::process::Stdio::null());
        c
    }

    fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.cmd(args);
        let out = common::run(&mut c);
        common::assert_success(&c, &out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn make_base(&self) {
        let tar = common::busybox_rootfs();
        let ctr = self
            .ok(["from", "--pull=never", "scratch"])
            .trim()
            .to_string();
        self.ok(["add".as_ref(), ctr.as_ref(), tar.as_os_str(), "/".as_ref()]);
        self.ok([
            "commit",
            "--quiet",
            "--timestamp",
            "0",
            "--format",
            "docker",
            "--rm",
            &ctr,
            "localhost/busybox",
        ]);
    }

    /// Builds `context` with `buildah build --layers`, tags it `tag`.
    pub fn build(
        &self,
        context: &Path,
        dockerfile: &str,
        tag: &str,
        extra: &[String],
    ) -> Result<(), String> {
        let mut c = self.cmd([
            "build",
            "--layers",
            "--pull=never",
            "--format",
            "docker",
            "--runtime",
            "runc",
            "--network",
            "host",
            "--isolation",
            "chroot",
            "-t",
            tag,
        ]);
        c.arg("-f").arg(context.join(dockerfile));
        c.args(extra);
        c.arg(context);
        // the mirror's faults (a Dockerfile that installs packages) and runc's own transient
        // failure are retried
        let out = common::with_transient_retries("buildah build", || common::run(&mut c));
        if !out.status.success() {
            return Err(format!(
                "{c:?} failed with {:?}\n{}",
                out.status,
                common::show(&out)
            ));
        }
        Ok(())
    }

    /// Exports `tag` as an OCI layout at `dest`.
    pub fn export(&self, tag: &str, dest: &Path) -> Result<(), String> {
        let mut c = self.cmd(["push", "--quiet", "--remove-signatures"]);
        c.arg(tag).arg(format!("oci:{}", dest.display()));
        let out = common::run(&mut c);
        if !out.status.success() {
            return Err(format!("{c:?} failed\n{}", common::show(&out)));
        }
        Ok(())
    }

    /// The Docker-form config of `tag` (keeps HEALTHCHECK, ONBUILD and SHELL, which OCI drops).
    pub fn config(&self, tag: &str) -> Result<Value, String> {
        let mut c = self.cmd(["inspect", "--type", "image", tag]);
        let out = common::run(&mut c);
        if !out.status.success() {
            return Err(format!("{c:?} failed\n{}", common::show(&out)));
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        Ok(v["Docker"]["config"].clone())
    }

    /// Removes image `tag` (ignoring failures: it is only tidying).
    pub fn rmi(&self, tag: &str) {
        let _ = self.cmd(["rmi", tag]).output();
    }
}
