//! `hoist info`: how hoist runs on this machine — the user namespace mode and why it is
//! reduced, the store root, the kernel, overlay support, the user's subordinate id ranges, the
//! id mapping helpers and the default network of RUN steps (and why) — then the checks of
//! `sandbox::probe` (user namespace, per-run namespaces, `/proc`, overlay on the store's file
//! system), each `ok`, `fallback` (naming the fallback) or `cannot build`, with the exact fix;
//! as text or `--format json`. Exits 1 when builds cannot run here.
//!
//! It enters no namespace itself (the checks run in short-lived children) and does not open
//! the store (the overlay trial uses a scratch dir in the store's `tmp/`, removed at once).

use std::process::ExitCode;

use serde::Serialize;

use super::output;
use super::Globals;
use crate::sandbox::probe::{self, Finding, Status};
use crate::sandbox::userns::{self, Host, IdRange};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Serialize)]
struct Info {
    mode: String,
    mode_description: String,
    reason: Option<String>,
    store: String,
    kernel: String,
    overlay: String,
    overlay_ok: bool,
    user: String,
    uid: u32,
    subuid: Vec<IdRange>,
    subgid: Vec<IdRange>,
    newuidmap: Option<String>,
    newgidmap: Option<String>,
    /// The default network of RUN steps and `hoist run`: `private`, `host` or `none`.
    network: String,
    network_reason: String,
    /// Whether RUN steps can run here (else the exit status is 1).
    builds: bool,
    checks: Vec<Finding>,
}

fn ranges(r: &[IdRange]) -> String {
    if r.is_empty() {
        return "none".to_string();
    }
    r.iter()
        .map(|r| format!("{}:{}", r.start, r.count))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let host = Host::current();
    let mode = userns::probe();
    log::debug!("user namespace mode: {mode}");
    let at = probe::scratch_parent(&globals.root);
    let scratch = tempfile::Builder::new()
        .prefix(".hoist-info-")
        .tempdir_in(&at)?;
    let overlay = userns::probe_overlay(&scratch.path().join("overlay"));
    let trial = probe::try_sandbox(scratch.path());
    // overlayfs leaves `work/work` with mode 000, which a plain removal cannot enter
    crate::sandbox::mounts::remove_scratch(scratch.path());
    drop(scratch);
    let mut checks = vec![probe::userns_finding(&mode, &host)];
    checks.extend(probe::sandbox_findings(&trial, &mode));
    let overlay_check = probe::overlay_finding(&overlay, &at);
    // without a user namespace the overlay trial could not even start: the userns check says why
    if !matches!(mode, userns::UsernsMode::Unavailable { .. }) {
        checks.push(overlay_check.clone());
    }
    let builds = !checks.iter().any(|c| c.status == Status::CannotBuild);
    let net = crate::sandbox::network::default_network();
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|e| format!("unknown ({e})"));
    let info = Info {
        mode: mode.name().to_string(),
        mode_description: mode.to_string(),
        reason: mode.reason().map(ToString::to_string),
        store: globals.root.display().to_string(),
        kernel,
        overlay: match &overlay {
            Ok(true) => "yes (new mount API, one `lowerdir+` per layer, userxattr)".to_string(),
            Ok(false) => {
                "yes (legacy mount options over short symlinked paths, userxattr)".to_string()
            }
            Err(_) if matches!(mode, userns::UsernsMode::Unavailable { .. }) => {
                "not tried: no user namespace".to_string()
            }
            Err(_) => format!("no: {}", overlay_check.message),
        },
        overlay_ok: overlay.is_ok(),
        user: host.user.clone().unwrap_or_else(|| host.euid.to_string()),
        uid: host.euid,
        subuid: host.ranges(&host.subuid),
        subgid: host.ranges(&host.subgid),
        newuidmap: host.newuidmap.as_ref().map(|p| p.display().to_string()),
        newgidmap: host.newgidmap.as_ref().map(|p| p.display().to_string()),
        network: match net.network {
            crate::sandbox::Network::Private => "private",
            crate::sandbox::Network::Host => "host",
            crate::sandbox::Network::None => "none",
        }
        .to_string(),
        network_reason: net.reason,
        builds,
        checks,
    };
    match args.format {
        Format::Json => output::println(&serde_json::to_string_pretty(&info)?),
        Format::Text => {
            let lines = [
                ("mode", format!("{} — {}", info.mode, info.mode_description)),
                ("reason", info.reason.clone().unwrap_or_else(|| "-".into())),
                ("store", info.store.clone()),
                ("kernel", info.kernel.clone()),
                ("overlay", info.overlay.clone()),
                ("user", format!("{} (uid {})", info.user, info.uid)),
                ("subuid", ranges(&info.subuid)),
                ("subgid", ranges(&info.subgid)),
                (
                    "newuidmap",
                    info.newuidmap.clone().unwrap_or_else(|| "not found".into()),
                ),
                (
                    "newgidmap",
                    info.newgidmap.clone().unwrap_or_else(|| "not found".into()),
                ),
                (
                    "network",
                    format!("{} — {}", info.network, info.network_reason),
                ),
            ];
            for (k, v) in lines {
                output::println(&format!("{k:<10} {v}"));
            }
            for c in &info.checks {
                output::println(&format!(
                    "{:<10} {}: {}",
                    c.check,
                    c.status.name(),
                    c.message
                ));
                if let Some(fix) = &c.fix {
                    output::println(&format!("{:<10} fix: {fix}", ""));
                }
            }
        }
    }
    if let Some(c) = info.checks.iter().find(|c| c.status == Status::CannotBuild) {
        let fix = c
            .fix
            .as_deref()
            .map(|f| format!("; fix: {f}"))
            .unwrap_or_default();
        anyhow::bail!("builds cannot run here: {}{fix}", c.message);
    }
    Ok(ExitCode::SUCCESS)
}
