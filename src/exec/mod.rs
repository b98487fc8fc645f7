//! exec: runs a [`crate::plan::BuildPlan`] — FROM from the local store, `scratch` or an earlier
//! stage; RUN through the sandbox over the stage's layer dirs with a fresh upper dir; COPY/ADD
//! written into a fresh layer dir with no container; config-only steps as pure edits of the
//! image config; the commit through `layer` and `store`.
//!
//! It must not parse Dockerfile syntax (that is `dockerfile` and `plan`) nor write the store's
//! files itself (that is `store`). Follows the OCI image spec for configs and manifests and
//! `docker build` for what each step does to the image.

pub mod config;
pub mod copy;
pub mod perms;
pub mod rootfs;
