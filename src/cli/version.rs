//! `hoist version [--format json|TEMPLATE]`: hoist's version and the platform it was built
//! for, as `docker version` prints its client part (hoist has no daemon, so no server part).

use std::process::ExitCode;

use serde::Serialize;

use super::inspect::Template;
use super::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format: text (default), `json`, or a Go template over Version, OsArch
    /// (`{{.Version}}`)
    #[arg(short = 'f', long = "format", value_name = "FORMAT")]
    pub format: Option<String>,
}

#[derive(Debug, Serialize)]
struct Version {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "OsArch")]
    os_arch: String,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let v = Version {
        version: env!("CARGO_PKG_VERSION"),
        os_arch: format!("{}/{}", std::env::consts::OS, go_arch()),
    };
    match args.format.as_deref() {
        None => {
            output::println(&format!("Version:   {}", v.version));
            output::println(&format!("OS/Arch:   {}", v.os_arch));
        }
        Some("json") => output::println(&serde_json::to_string(&v)?),
        Some(t) => output::println(&Template::parse(t)?.render(&serde_json::to_value(&v)?)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The architecture under Go's (and OCI's) name, as docker prints it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}
