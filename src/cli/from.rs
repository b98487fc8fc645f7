//! `hoist from [--name NAME] IMAGE|scratch`: makes a working container (buildah's `from`) and
//! prints its name.

use std::process::ExitCode;

use super::{output, Globals};
use crate::container;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "The container is the image's layers, a fresh upper dir and a copy of the image's config, kept in the store until `hoist rm`. Work on it with `hoist run NAME -- CMD…`, `hoist copy`, `hoist add`, `hoist config`; make an image of it with `hoist commit NAME IMAGE`. The default name is IMAGE-working-container (buildah's), with -2, -3… when taken."
)]
pub struct Args {
    /// When to pull the image: `always`, `missing` (default), `never`, `newer`
    #[arg(long, value_enum, value_name = "POLICY", num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pub pull: Option<super::pull::PullPolicy>,
    #[command(flatten)]
    pub registry: super::pull::RegistryArgs,
    /// The container's name
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The image (or `scratch` for an empty file system)
    #[arg(value_name = "IMAGE|scratch")]
    pub image: String,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    if let Some(n) = &args.name {
        crate::store::containers::check_name(n)?;
    }
    let image = if args.image == "scratch" {
        None
    } else {
        let present = match store.resolve(&args.image) {
            Ok(r) => Some(r),
            Err(crate::store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let policy = args.pull.unwrap_or_default();
        if policy == super::pull::PullPolicy::Never
            || (present.is_some() && policy == super::pull::PullPolicy::Missing)
        {
            Some(present.ok_or_else(|| {
                anyhow::anyhow!(
                    "image `{}` is not in the local store, and pulling is off (`--pull=never`)",
                    args.image
                )
            })?)
        } else {
            let puller = super::pull::Puller::new(&args.registry, policy, None, false)?;
            Some(puller.resolve(&store, &args.image, present)?)
        }
    };
    let r = container::create(
        &store,
        image.as_ref(),
        &args.image,
        args.name.as_deref(),
        &container::default_name(&args.image),
    )?;
    output::println(&r.name);
    Ok(ExitCode::SUCCESS)
}
