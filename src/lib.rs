//! hoist: a rootless, daemonless container image builder.
//!
//! The library holds every room of the design (see `../shared/DESIGN.md` and `docs/DESIGN.md`);
//! the binary in `src/main.rs` only maps [`cli::main`] to an exit code. Dependencies point one
//! way: `cli` sees everything; `exec` drives `plan`, `context`, `sandbox`, `layer` and `store`;
//! `container` (working containers) uses `exec`'s COPY writer and commit, `sandbox` and `store`;
//! `sandbox`, `dockerfile`, `ignore` and `image` depend on nothing of ours.

pub mod archive;
pub mod cli;
pub mod container;
pub mod context;
pub mod dockerfile;
pub mod exec;
pub mod ignore;
pub mod image;
pub mod layer;
pub mod plan;
pub mod registry;
pub mod sandbox;
pub mod sign;
pub mod store;
pub mod util;
