//! Pure edits of image configs and manifests: a base config, adding layers and history, the
//! config changes of `import -c` (ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE; parsed by
//! the `dockerfile` room in `cli/import.rs`),
//! and canonical JSON (sorted keys, so the same config always gets the same digest).
//!
//! Follows the OCI image spec (`config.md`, `manifest.md`). No file system.

use std::collections::HashMap;

use oci_spec::image::{
    Arch, Config, Descriptor, History, HistoryBuilder, ImageConfiguration, ImageManifest,
    ImageManifestBuilder, MediaType, Os,
};
use serde::Serialize;

use super::{Digest, ImageError};

/// The GOARCH name of the machine hoist runs on (`amd64`, `arm64`, …).
pub fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "x86" => Arch::i386,
        "arm" => Arch::ARM,
        "powerpc64" => Arch::PowerPC64le,
        "s390x" => Arch::s390x,
        "riscv64" => Arch::RISCV64,
        other => Arch::Other(other.to_owned()),
    }
}

/// Serialises a value as compact JSON with object keys sorted, so that equal values give equal
/// bytes (oci-spec keeps labels and ports in hash maps, whose order varies).
pub fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, ImageError> {
    let invalid = |e: serde_json::Error| ImageError::Invalid {
        what: "JSON document".into(),
        reason: e.to_string(),
    };
    // serde_json's Value keeps objects in a BTreeMap: converting sorts every key
    let v = serde_json::to_value(value).map_err(invalid)?;
    serde_json::to_vec(&v).map_err(invalid)
}

/// An empty Linux config for this machine's architecture, created at `created` (RFC 3339).
pub fn base_config(created: &str) -> ImageConfiguration {
    let mut c = ImageConfiguration::default();
    c.set_os(Os::Linux);
    c.set_architecture(host_arch());
    c.set_created(Some(created.to_owned()));
    c.set_config(Some(Config::default()));
    c.set_history(Some(Vec::new()));
    c
}

/// One history entry.
pub fn history_entry(
    created: &str,
    created_by: &str,
    comment: Option<&str>,
    empty_layer: bool,
) -> History {
    let mut b = HistoryBuilder::default().created(created.to_owned());
    if !created_by.is_empty() {
        b = b.created_by(created_by.to_owned());
    }
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        b = b.comment(c.to_owned());
    }
    if empty_layer {
        b = b.empty_layer(true);
    }
    b.build().expect("every history field is optional")
}

/// Appends a layer's diff_id and its history entry.
pub fn add_layer(config: &mut ImageConfiguration, diff_id: &Digest, history: History) {
    config.rootfs_mut().diff_ids_mut().push(diff_id.to_string());
    config
        .history_mut()
        .get_or_insert_with(Vec::new)
        .push(history);
}

/// Appends a history entry for a step that changed only the config.
pub fn add_empty_history(config: &mut ImageConfiguration, history: History) {
    let mut h = history;
    h.set_empty_layer(Some(true));
    config.history_mut().get_or_insert_with(Vec::new).push(h);
}

/// An OCI manifest for a config blob and layer blobs (digest, size, media type), bottom first.
pub fn manifest_for(
    config_digest: &Digest,
    config_size: u64,
    layers: &[(Digest, u64, MediaType)],
) -> ImageManifest {
    let config = Descriptor::new(MediaType::ImageConfig, config_size, config_digest.to_oci());
    let layers = layers
        .iter()
        .map(|(d, size, mt)| Descriptor::new(mt.clone(), *size, d.to_oci()))
        .collect::<Vec<_>>();
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .expect("schema version, config and layers are all set")
}

/// A config change as `import -c` and `commit -c` take it, already parsed and expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ENV K=V…`
    Env(Vec<(String, String)>),
    /// `CMD …` (exec form, or shell form already wrapped in `/bin/sh -c`)
    Cmd(Vec<String>),
    /// `ENTRYPOINT …`
    Entrypoint(Vec<String>),
    /// `WORKDIR path`
    Workdir(String),
    /// `USER user[:group]`
    User(String),
    /// `LABEL k=v…`
    Label(Vec<(String, String)>),
    /// `EXPOSE port[/proto]…`
    Expose(Vec<String>),
}

impl Change {
    /// Applies the change to a config (the image's history is the caller's business).
    pub fn apply(&self, config: &mut ImageConfiguration) {
        let mut c = config.config().clone().unwrap_or_default();
        match self {
            Change::Env(pairs) => {
                let mut env = c.env().clone().unwrap_or_default();
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
                    {
                        Some(e) => *e = entry,
                        None => env.push(entry),
                    }
                }
                c.set_env(Some(env));
            }
            Change::Cmd(v) => {
                c.set_cmd(Some(v.clone()));
            }
            Change::Entrypoint(v) => {
                c.set_entrypoint(Some(v.clone()));
                // as docker: a new ENTRYPOINT clears an inherited CMD
                c.set_cmd(None);
            }
            Change::Workdir(w) => {
                c.set_working_dir(Some(w.clone()));
            }
            Change::User(u) => {
                c.set_user(Some(u.clone()));
            }
            Change::Label(pairs) => {
                let mut labels: HashMap<String, String> = c.labels().clone().unwrap_or_default();
                for (k, v) in pairs {
                    labels.insert(k.clone(), v.clone());
                }
                c.set_labels(Some(labels));
            }
            Change::Expose(ports) => {
                let mut all = c.exposed_ports().clone().unwrap_or_default();
                for p in ports {
                    if !all.contains(p) {
                        all.push(p.clone());
                    }
                }
                all.sort();
                c.set_exposed_ports(Some(all));
            }
        }
        config.set_config(Some(c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn applies_changes() {
        let mut c = base_config("2024-01-01T00:00:00Z");
        for ch in [
            Change::Env(p(&[("A", "1")])),
            Change::Env(p(&[("A", "2"), ("B", "3")])),
            Change::Cmd(s(&["/bin/sh", "-c", "x"])),
            Change::Entrypoint(s(&["/e"])),
            Change::Expose(s(&["80/tcp"])),
            Change::Label(p(&[("k", "v")])),
        ] {
            ch.apply(&mut c);
        }
        let cfg = c.config().clone().expect("config set");
        assert_eq!(cfg.env().clone().expect("env"), s(&["A=2", "B=3"]));
        assert_eq!(cfg.entrypoint().clone().expect("ep"), s(&["/e"]));
        assert_eq!(cfg.cmd(), &None, "ENTRYPOINT clears CMD");
        assert_eq!(cfg.exposed_ports().clone().expect("ports"), s(&["80/tcp"]));
        assert_eq!(
            cfg.labels()
                .clone()
                .expect("labels")
                .get("k")
                .map(String::as_str),
            Some("v")
        );
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let mut c = base_config("2024-01-01T00:00:00Z");
        Change::Label(p(&[("z", "1"), ("a", "2"), ("m", "3")])).apply(&mut c);
        let a = canonical_json(&c).expect("json");
        let b = canonical_json(&c.clone()).expect("json");
        assert_eq!(a, b);
        let text = String::from_utf8(a).expect("utf8");
        let (ia, iz) = (
            text.find("\"a\":").expect("a"),
            text.find("\"z\":").expect("z"),
        );
        assert!(ia < iz, "{text}");
    }
}
