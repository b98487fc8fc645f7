//! plan: a parsed Dockerfile, build args and a target become a [`BuildPlan`] — the stage DAG
//! pruned to the target, ARG/ENV scopes, built-in platform args, meta ARGs before FROM, ONBUILD
//! triggers of base images — as resolved [`Step`]s that exec runs without knowing Dockerfile
//! syntax.
//!
//! Pure: no file system, no environment, no store. Follows Docker's Dockerfile reference for
//! which instructions expand variables and how ARG and ENV scope.

pub mod step;

pub use step::{CopyOp, FromRef, HealthcheckOp, InlineFile, Network, Op, RunMount, RunOp, Step};
