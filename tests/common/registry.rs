//! A registry for tests: Debian's `docker-registry` (the distribution project's registry) on
//! 127.0.0.1 and a free port, its storage in its own temp dir, a config from
//! `fixtures/registry/`. Killed when dropped.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::require;

/// A running registry, killed when dropped.
pub struct Registry {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The certificate directory a client needs (`ca.crt`), for the TLS registry.
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The file of one blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.storage()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn open() -> Registry {
        Self::start("open.yml", |_| vec![])
    }

    pub fn start(
        config: &str,
        prepare: impl FnOnce(&Path) -> Vec<(&'static str, PathBuf)>,
    ) -> Registry {
        let bin = require("docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("hoist-registry-")
            .tempdir()
            .expect("temp dir");
        let extra = prepare(dir.path());
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg(super::repo().join("fixtures/registry").join(config))
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                dir.path().join("data"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("registry.log")).expect("log"));
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start docker-registry");
        let reg = Registry { child, port, dir };
        // ready when it accepts connections (it listens only after reading its config)
        for _ in 0..500 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return reg;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "docker-registry did not start:\n{}",
            fs::read_to_string(reg.dir.path().join("registry.log")).unwrap_or_default()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}
