//! The image configuration a build edits step by step, and the pure edits themselves.
//!
//! The types follow the OCI image spec's config (`application/vnd.oci.image.config.v1+json`)
//! plus the Docker fields that `docker build` and `buildah build` write there (`Healthcheck`,
//! `OnBuild`, `Shell`, `ArgsEscaped`). Maps are `BTreeMap`s so that the serialised JSON, and with
//! it the image ID, is the same on every run; fields this module does not know are kept as they
//! were read. Nothing here touches the file system.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An empty JSON object, the value type of Docker's `map[string]struct{}` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `HEALTHCHECK` as Docker stores it; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: u64,
    #[serde(default, skip_serializing_if = "is_zero_i")]
    pub retries: i64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i(v: &i64) -> bool {
    *v == 0
}

/// The `config` object: what a container started from the image gets by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Fields this module does not edit, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One entry of the image history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// `rootfs`: the layers' uncompressed digests, bottom first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// The whole image configuration blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields this module does not edit, kept as read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Docker's default `PATH` for a stage that starts from `scratch` or an image without one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl ImageConfig {
    /// Parses a config blob.
    pub fn from_json(bytes: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The canonical serialisation (compact, fields in a fixed order, maps sorted).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an image config always serialises: all keys are strings")
    }

    /// The config of a stage that starts `FROM scratch`.
    pub fn scratch(os: &str, architecture: &str, variant: Option<&str>) -> ImageConfig {
        ImageConfig {
            architecture: architecture.to_string(),
            os: os.to_string(),
            variant: variant.map(str::to_string),
            ..ImageConfig::default()
        }
    }

    /// The environment as `(key, value)` pairs, in order.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .flatten()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect()
    }

    /// Looks up one variable of the environment.
    pub fn env_get(&self, key: &str) -> Option<String> {
        self.env_pairs()
            .into_iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `ENV key=value`: replaces an existing entry in place, else appends.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map(|(k, _)| k).unwrap_or(kv) == key)
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }

    /// Adds `PATH` when the image has none, as Docker does for every stage.
    pub fn ensure_path(&mut self) {
        if self.env_get("PATH").is_none() {
            self.set_env("PATH", DEFAULT_PATH);
        }
    }

    /// `LABEL key=value`.
    pub fn set_label(&mut self, key: &str, value: &str) {
        self.config
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_string(), value.to_string());
    }

    /// `EXPOSE port[/proto]` (the protocol defaults to tcp).
    pub fn expose(&mut self, port: &str) {
        let port = if port.contains('/') {
            port.to_ascii_lowercase()
        } else {
            format!("{port}/tcp")
        };
        self.config
            .exposed_ports
            .get_or_insert_with(BTreeMap::new)
            .insert(port, Empty {});
    }

    /// `VOLUME path`.
    pub fn add_volume(&mut self, path: &str) {
        self.config
            .volumes
            .get_or_insert_with(BTreeMap::new)
            .insert(path.to_string(), Empty {});
    }

    /// `CMD`: replaces the command.
    pub fn set_cmd(&mut self, cmd: Vec<String>) {
        self.config.cmd = Some(cmd);
    }

    /// `ENTRYPOINT`: replaces the entrypoint and, as Docker does, drops a CMD inherited from
    /// the base image; a CMD set earlier in the same stage (`cmd_set`) is kept.
    pub fn set_entrypoint(&mut self, entrypoint: Vec<String>, cmd_set: bool) {
        self.config.entrypoint = Some(entrypoint);
        if !cmd_set {
            self.config.cmd = None;
        }
    }

    /// `WORKDIR`: a relative path joins the current working directory.
    pub fn set_workdir(&mut self, dir: &str) {
        let joined = join_workdir(self.config.working_dir.as_deref().unwrap_or("/"), dir);
        self.config.working_dir = Some(joined);
    }

    /// The working directory, `/` when unset.
    pub fn workdir(&self) -> String {
        match self.config.working_dir.as_deref() {
            Some(d) if !d.is_empty() => d.to_string(),
            _ => "/".to_string(),
        }
    }

    /// `USER`.
    pub fn set_user(&mut self, user: &str) {
        self.config.user = Some(user.to_string());
    }

    /// `STOPSIGNAL`.
    pub fn set_stop_signal(&mut self, signal: &str) {
        self.config.stop_signal = Some(signal.to_string());
    }

    /// `SHELL`.
    pub fn set_shell(&mut self, shell: Vec<String>) {
        self.config.shell = Some(shell);
    }

    /// The shell for shell-form instructions: the stage's `SHELL`, else `/bin/sh -c`.
    pub fn shell(&self) -> Vec<String> {
        match &self.config.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec!["/bin/sh".to_string(), "-c".to_string()],
        }
    }

    /// `ONBUILD instruction`: stored for images built FROM this one.
    pub fn add_onbuild(&mut self, trigger: &str) {
        self.config
            .on_build
            .get_or_insert_with(Vec::new)
            .push(trigger.to_string());
    }

    /// `HEALTHCHECK`.
    pub fn set_healthcheck(&mut self, hc: Healthcheck) {
        self.config.healthcheck = Some(hc);
    }

    /// Appends a history entry for a step.
    pub fn push_history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        self.history.push(History {
            created: Some(created.to_string()),
            created_by: Some(created_by.to_string()),
            author: None,
            comment: None,
            empty_layer,
        });
    }

    /// Appends a layer's diff_id to `rootfs`.
    pub fn push_layer(&mut self, diff_id: &str) {
        self.rootfs.diff_ids.push(diff_id.to_string());
    }

    /// Sets every time stamp (the image's and each history entry's) to `created`; used for
    /// `--timestamp` / `SOURCE_DATE_EPOCH`, so that builds are reproducible.
    pub fn clamp_times(&mut self, created: &str) {
        self.created = Some(created.to_string());
        for h in &mut self.history {
            h.created = Some(created.to_string());
        }
    }
}

/// Joins a `WORKDIR` argument onto the current directory: an absolute one stays as written
/// (Docker keeps `/tmp/`), a relative one is joined and cleaned.
pub fn join_workdir(current: &str, dir: &str) -> String {
    if dir.starts_with('/') {
        dir.to_string()
    } else {
        crate::plan::resolve::clean(&format!("{}/{}", current.trim_end_matches('/'), dir))
    }
}

/// RFC 3339 with second precision in UTC, as a Unix time stamp.
pub fn rfc3339(epoch: i64) -> String {
    match chrono::DateTime::from_timestamp(epoch, 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "1970-01-01T00:00:00Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_resets_inherited_cmd() {
        let mut c = ImageConfig::scratch("linux", "amd64", None);
        c.set_cmd(vec!["sh".into()]);
        c.set_entrypoint(vec!["/bin/app".into()], false);
        assert_eq!(c.config.cmd, None);
        c.set_cmd(vec!["x".into()]);
        c.set_entrypoint(vec!["/bin/app".into()], true);
        assert_eq!(c.config.cmd, Some(vec!["x".to_string()]));
        c.set_cmd(vec!["--help".into()]);
        assert_eq!(c.config.cmd, Some(vec!["--help".to_string()]));
    }

    #[test]
    fn env_replaces_in_place() {
        let mut c = ImageConfig::default();
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3");
        assert_eq!(
            c.config.env,
            Some(vec!["A=3".to_string(), "B=2".to_string()])
        );
        assert_eq!(c.env_get("A").as_deref(), Some("3"));
    }

    #[test]
    fn workdir_joins_relative() {
        assert_eq!(join_workdir("/", "app"), "/app");
        assert_eq!(join_workdir("/app", "src/../lib"), "/app/lib");
        assert_eq!(join_workdir("/app", "/abs/"), "/abs/");
    }

    #[test]
    fn json_is_stable_and_keeps_unknown_fields() {
        let raw = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Foo":1},"rootfs":{"type":"layers","diff_ids":[]},"moby.x":"y"}"#;
        let mut c = ImageConfig::from_json(raw).expect("parse");
        c.expose("80");
        c.expose("53/UDP");
        c.add_volume("/data");
        let text = String::from_utf8(c.to_json()).expect("utf8");
        assert!(
            text.contains(r#""ExposedPorts":{"53/udp":{},"80/tcp":{}}"#),
            "{text}"
        );
        assert!(text.contains(r#""Foo":1"#), "{text}");
        assert!(text.contains(r#""moby.x":"y""#), "{text}");
        assert_eq!(ImageConfig::from_json(text.as_bytes()).expect("again"), c);
    }

    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
