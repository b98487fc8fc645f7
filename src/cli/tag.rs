//! `hoist tag IMAGE NAME…`: gives an image more names (a name another image had moves), as
//! `podman tag`: unqualified names get `localhost/`, the tag defaults to `latest`.

use std::process::ExitCode;

use super::Globals;
use crate::image::Reference;
use crate::store::Store;

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Unqualified names get `localhost/` and the tag `latest`, as podman names local images. A name that belongs to another image moves to this one; an image left without names stays, unnamed."
)]
pub struct Args {
    /// The image: a name, an ID or a unique ID prefix
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// New names for it
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let names = args
        .names
        .iter()
        .map(|n| Reference::parse_local(n))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(n) = names.iter().find(|n| n.digest().is_some()) {
        anyhow::bail!("`{n}`: a name cannot carry a digest (tag names only)");
    }
    let store = Store::open(&globals.root)?;
    store.tag(&args.image, &names)?;
    Ok(ExitCode::SUCCESS)
}
