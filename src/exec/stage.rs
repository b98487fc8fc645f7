//! The runner: orders the planned stages, runs each stage's steps, and commits the target.
//!
//! Every stage runs in its own thread from the start; a stage waits for another only at the step
//! that reads it (its `FROM`, a `COPY --from`, a `RUN --mount from=`), so independent work of
//! two stages overlaps step by step. Each step is looked up in the build cache by its key
//! ([`super::cache`]) before it runs; a hit reuses the recorded layer and config.

use std::collections::BTreeSet;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::add;
use super::cache;
use super::commit::{self as commit_mod, LayerRef};
use super::config::{rfc3339, Healthcheck, ImageConfig};
use super::copy::{Attrs, LayerWriter};
use super::perms::{parse_group, parse_passwd, Accounts, Chmod};
use super::rootfs::RootView;
use super::{BuildRequest, Built, Event, ExecError, NetworkMode};
use crate::context::{Context, CopyOptions, EntryKind};
use crate::image::Digest;
use crate::plan::{self, Base, BaseInfo, BuildPlan, CopyOp, FromRef, Op, RunMount, RunOp, Step};
use crate::sandbox;
use crate::store::cache as store_cache;
use crate::store::{StagedBlob, Store};
use crate::util::{lock, FileLock};

/// A stage's result: its config, its layers and their unpacked dirs (bottom first), and the
/// cache key of its last step.
#[derive(Debug, Clone)]
struct StageOut {
    config: ImageConfig,
    layers: Vec<LayerRef>,
    /// Where each layer's dir is in `layers/`; those in `unready` are not unpacked yet.
    dirs: Vec<PathBuf>,
    /// The layers (blob, diff_id) whose dirs no step has read yet (a cached step's, a last
    /// COPY's made in memory): unpacked by [`Runner::ready`] when a step reads the files.
    unready: Vec<(Digest, Digest)>,
    key: String,
}

impl StageOut {
    /// What a reader of the stage's files (`COPY --from`, a bind mount `from=`, a later `FROM`)
    /// depends on: its key and its layers' content.
    fn content_key(&self) -> String {
        let mut parts: cache::Parts = vec![("key".to_string(), self.key.clone())];
        for l in &self.layers {
            parts.push(("layer".to_string(), l.diff_id.to_string()));
        }
        cache::key_of(&parts)
    }
}

/// A layer this build made, waiting for the commit (only without the cache: with it, layers
/// are installed as soon as their step is done, so that the entry naming them is usable).
struct NewLayer {
    staged: Option<StagedBlob>,
    diff_id: Digest,
    dir: PathBuf,
}

/// A finished stage: its result, or `None` when it failed (its error is reported by its own
/// thread).
type Finished = BTreeMap<usize, Option<StageOut>>;

/// Runs one build.
pub(super) struct Runner<'a> {
    store: &'a Store,
    req: &'a BuildRequest,
    plan: BuildPlan,
    ctx: Context,
    /// A memory dir for the state of the build's RUN steps ([`sandbox::Spec::state_dir`]),
    /// mounted at the first RUN; `None` where this process can have none. Declared before
    /// `work`, which holds its mount point, so that it is dropped (unmounted) first.
    run_state: std::sync::OnceLock<Option<sandbox::memdir::MemoryDir>>,
    /// Forks the inits of the build's RUN steps ([`sandbox::Launcher`]), started at the first
    /// RUN; `None` where it could not be started (each step then executes its own).
    launcher: std::sync::OnceLock<Option<sandbox::Launcher>>,
    work: tempfile::TempDir,
    /// Shared by the stages that run side by side; each event is shown whole.
    events: Mutex<&'a mut (dyn FnMut(Event<'_>) + Send)>,
    /// Stages as they finish; `done` wakes the stages waiting for one.
    outs: Mutex<Finished>,
    done: Condvar,
    /// Set when a stage fails: the others stop at their next step.
    failed: AtomicBool,
    new_layers: Mutex<HashMap<String, NewLayer>>,
    images: Mutex<HashMap<String, StageOut>>,
    loading: Mutex<()>,
    created: String,
    counter: AtomicUsize,
    /// Stages whose steps are not looked up in the cache (`--no-cache`, `--no-cache-filter`).
    no_lookup: BTreeSet<usize>,
    /// The keys of the steps recorded or reused, with their stage (for `--cache-to`).
    keys: Mutex<Vec<(usize, String)>>,
}

fn stage_label(plan: &BuildPlan, i: usize) -> String {
    plan.stages[i].name.clone().unwrap_or_else(|| i.to_string())
}

/// Why a stage stopped early: another stage failed (that stage reports its own error).
fn aborted() -> ExecError {
    ExecError::Aborted
}

fn is_abort(e: &ExecError) -> bool {
    matches!(e, ExecError::Aborted)
}

impl<'a> Runner<'a> {
    pub(super) fn build(
        store: &'a Store,
        req: &'a BuildRequest,
        events: &'a mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<Built, ExecError> {
        let df = crate::dockerfile::parse(&req.dockerfile_text, &req.dockerfile_name)
            .map_err(|e| ExecError::Dockerfile(e.to_string()))?;
        let input = plan::from_dockerfile::from_dockerfile(
            &df,
            &req.dockerfile_text,
            &req.dockerfile_name,
        )?;
        let opts = plan::PlanOptions {
            file: req.dockerfile_name.clone(),
            build_args: req.build_args.clone(),
            target: req.target.clone(),
            platform: super::host_platform(),
            requested_platform: req.platform.clone(),
        };
        let plan = plan::plan(&input, &opts)?;
        for w in &plan.warnings {
            events(Event::Warning(w));
        }
        let mut no_lookup = BTreeSet::new();
        if req.no_cache || !req.layers {
            no_lookup.extend(0..plan.stages.len());
        }
        for name in &req.no_cache_filter {
            match plan.stage_ref(name, plan.stages.len()) {
                Some(i) => {
                    no_lookup.insert(i);
                }
                None => {
                    return Err(ExecError::Dockerfile(format!(
                        "`--no-cache-filter {name}`: the Dockerfile has no stage `{name}`"
                    )))
                }
            }
        }
        let ctx = Context::open(&req.context_dir, req.dockerfile_path.as_deref())?;
        let work = store.tmp_dir()?;
        // pasta takes about 0.1 s to get ready: start the private network now, beside the
        // layer work, when a RUN step may use it
        if req.network == NetworkMode::Private
            && plan.order.iter().any(|i| {
                plan.stages[*i]
                    .input
                    .instrs
                    .iter()
                    .any(|s| matches!(s.kind, plan::input::Kind::Run { .. }))
            })
        {
            sandbox::network::prestart(work.path());
        }
        let created = match req.timestamp {
            Some(t) => rfc3339(t),
            None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        let r = Runner {
            store,
            req,
            plan,
            ctx,
            run_state: std::sync::OnceLock::new(),
            launcher: std::sync::OnceLock::new(),
            work,
            events: Mutex::new(events),
            outs: Mutex::new(BTreeMap::new()),
            done: Condvar::new(),
            failed: AtomicBool::new(false),
            new_layers: Mutex::new(HashMap::new()),
            images: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
            created,
            counter: AtomicUsize::new(0),
            no_lookup,
            keys: Mutex::new(Vec::new()),
        };
        // every stage in its own thread, started at once: a stage waits for another only at the
        // step that reads it (FROM, COPY --from, RUN --mount from=), not before its first step
        let order = r.plan.order.clone();
        let results: Vec<(usize, Result<(), ExecError>)> = if order.len() == 1 {
            vec![(order[0], r.run_stage_and_publish(order[0]))]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = order
                    .iter()
                    .map(|&i| {
                        let r = &r;
                        (i, s.spawn(move || r.run_stage_and_publish(i)))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|(i, h)| {
                        let res = h.join().unwrap_or_else(|_| {
                            r.failed.store(true, Ordering::SeqCst);
                            r.publish(i, None);
                            Err(ExecError::Layer(format!(
                                "stage `{}` panicked",
                                stage_label(&r.plan, i)
                            )))
                        });
                        (i, res)
                    })
                    .collect()
            })
        };
        // report the first real failure (in build order), not a stage that stopped because of it
        let mut first_abort = None;
        for (_, res) in results {
            match res {
                Ok(()) => {}
                Err(e) if is_abort(&e) => first_abort = first_abort.or(Some(e)),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = first_abort {
            return Err(e);
        }
        let target = r.plan.target;
        let mut out = lock(&r.outs)
            .remove(&target)
            .flatten()
            .expect("the target stage is always in the build order");
        if !req.outputs.is_empty() {
            r.ready(&mut out)?;
        }
        for o in &req.outputs {
            super::export::export(&out.dirs, o, req.timestamp)?;
        }
        let store_image = !req.tags.is_empty() || req.outputs.is_empty();
        let image_id = if store_image {
            Some(r.commit(out)?)
        } else {
            None
        };
        let mut seen = BTreeSet::new();
        let cache_keys = std::mem::take(&mut *lock(&r.keys))
            .into_iter()
            .filter(|(_, k)| seen.insert(k.clone()))
            .map(|(stage, k)| (k, stage == target))
            .collect();
        Ok(Built {
            image_id,
            cache_keys,
        })
    }

    /// Runs a stage and makes its result (or its failure) known to the stages waiting for it.
    fn run_stage_and_publish(&self, i: usize) -> Result<(), ExecError> {
        match self.run_stage(i) {
            Ok(out) => {
                self.publish(i, Some(out));
                Ok(())
            }
            Err(e) => {
                let first = !self.failed.swap(true, Ordering::SeqCst);
                let e = match e {
                    // the first failure stops the RUN steps running in other stages; a step
                    // that ends because of that (or fails after it) is an abort, not the
                    // build's error
                    e if first && !is_abort(&e) => {
                        if self.plan.order.len() > 1 {
                            crate::sandbox::stop_all();
                        }
                        e
                    }
                    _ if !first => aborted(),
                    e => e,
                };
                self.publish(i, None);
                Err(e)
            }
        }
    }

    fn publish(&self, i: usize, out: Option<StageOut>) {
        lock(&self.outs).insert(i, out);
        self.done.notify_all();
    }

    /// Waits until stage `j` is done; an error when it failed.
    fn wait_stage(&self, j: usize) -> Result<StageOut, ExecError> {
        let mut g = lock(&self.outs);
        loop {
            match g.get(&j) {
                Some(Some(o)) => return Ok(o.clone()),
                Some(None) => return Err(aborted()),
                None => g = self.done.wait(g).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    fn emit(&self, e: Event<'_>) {
        let mut f = lock(&self.events);
        (*f)(e);
    }

    fn step_err(&self, step_line: usize, text: &str, message: impl ToString) -> ExecError {
        ExecError::Step {
            file: self.plan.file.clone(),
            line: step_line,
            text: text.to_string(),
            message: message.to_string(),
        }
    }

    /// Loads an image of the store as a stage base or `COPY --from` source.
    fn load_image(&self, name: &str) -> Result<StageOut, String> {
        if let Some(o) = lock(&self.images).get(name) {
            return Ok(o.clone());
        }
        // one loader at a time, so two stages on one base unpack its layers once
        let _loading = lock(&self.loading);
        if let Some(o) = lock(&self.images).get(name) {
            return Ok(o.clone());
        }
        let record = super::resolve_base(self.store, self.req, name)?;
        let raw = self
            .store
            .read_blob(&record.id)
            .map_err(|e| e.to_string())?;
        let config = ImageConfig::from_json(&raw)
            .map_err(|e| format!("image `{name}` has an invalid config: {e}"))?;
        let platform = super::host_platform();
        if !config.architecture.is_empty() && config.architecture != platform.arch {
            return Err(format!(
                "image `{name}` is for {}/{}, but hoist builds only for this machine's platform `{}` (no emulation)",
                config.os,
                config.architecture,
                platform.to_text()
            ));
        }
        let dirs = self.store.layer_dirs(&record).map_err(|e| e.to_string())?;
        let diff_ids = record.diff_ids().map_err(|e| e.to_string())?;
        let layers = record
            .manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(l, diff_id)| {
                Ok(LayerRef {
                    diff_id,
                    digest: Digest::from_oci(l.digest()).map_err(|e| e.to_string())?,
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let key = cache::key_of(&vec![("image".to_string(), record.id.to_string())]);
        let out = StageOut {
            config,
            layers,
            dirs,
            unready: Vec::new(),
            key,
        };
        lock(&self.images).insert(name.to_string(), out.clone());
        Ok(out)
    }

    fn run_stage(&self, i: usize) -> Result<StageOut, ExecError> {
        let sp = self.plan.stages[i].clone();
        let label = stage_label(&self.plan, i);
        let total = self.plan.total_steps;
        let t0 = Instant::now();
        let mut out = match &sp.base {
            Base::Scratch => {
                let p = super::host_platform();
                StageOut {
                    config: ImageConfig::scratch(&p.os, &p.arch, p.variant.as_deref()),
                    layers: Vec::new(),
                    dirs: Vec::new(),
                    unready: Vec::new(),
                    key: cache::key_of(&vec![("scratch".to_string(), p.to_text())]),
                }
            }
            Base::Stage(j) => {
                let mut o = self.wait_stage(*j)?;
                o.key = cache::key_of(&vec![("stage".to_string(), o.content_key())]);
                o
            }
            Base::Image(name) => {
                let name = name.clone();
                self.load_image(&name)
                    .map_err(|m| self.step_err(sp.line, &sp.text, m))?
            }
        };
        self.emit(Event::Step {
            number: sp.first_step,
            total,
            text: &sp.text,
            stage: &label,
        });
        out.config.ensure_path();
        // the base's triggers run now and are not inherited further
        let triggers = out.config.config.on_build.take().unwrap_or_default();
        let mut onbuild = Vec::new();
        for t in &triggers {
            let mut parsed = plan::from_dockerfile::parse_trigger(t).map_err(|m| {
                self.step_err(sp.line, &sp.text, format!("ONBUILD trigger `{t}`: {m}"))
            })?;
            parsed.line = sp.line;
            onbuild.push(parsed);
        }
        let base = BaseInfo {
            env: out.config.config.env.clone().unwrap_or_default(),
            shell: out.config.config.shell.clone(),
            workdir: out.config.config.working_dir.clone(),
            onbuild: onbuild.clone(),
        };
        self.emit(Event::StepDone {
            number: sp.first_step,
            total,
            seconds: t0.elapsed().as_secs_f64(),
            cached: false,
        });
        let steps = self.plan.resolve_stage(i, &base)?;
        let mut cmd_set = false;
        // the stage's last step that reads its files: in the target (without `--output`), what
        // a step after it writes is read by nobody
        let last_reader = steps.iter().rposition(|s| reads_files(&s.op));
        // the line of the last step that missed, for explaining the misses after it
        let mut missed: Option<(usize, String)> = None;
        for (k, step) in steps.iter().enumerate() {
            if self.failed.load(Ordering::SeqCst) {
                return Err(aborted());
            }
            let is_trigger = k < onbuild.len();
            let number = if is_trigger {
                sp.first_step
            } else {
                sp.first_step + 1 + k - onbuild.len()
            };
            if is_trigger {
                let note = format!("ONBUILD trigger: {}", step.text);
                self.emit(Event::Note(&note));
            } else {
                self.emit(Event::Step {
                    number,
                    total,
                    text: &step.text,
                    stage: &label,
                });
            }
            let t0 = Instant::now();
            // no later step of the build reads what this one writes (the target stage's last
            // step that writes files, no `--output`): its layer dir is not needed
            let unread = i == self.plan.target
                && self.req.outputs.is_empty()
                && last_reader.is_none_or(|l| l <= k);
            let hit = self.step_cached(i, k, step, unread, &mut out, &mut cmd_set, &mut missed)?;
            if !is_trigger {
                self.emit(Event::StepDone {
                    number,
                    total,
                    seconds: t0.elapsed().as_secs_f64(),
                    cached: hit,
                });
            }
        }
        Ok(out)
    }

    /// Runs a step through the cache: computes its key, reuses a usable entry (returns `true`),
    /// or runs the step and records what it made.
    #[allow(clippy::too_many_arguments)]
    fn step_cached(
        &self,
        stage: usize,
        position: usize,
        step: &Step,
        unread: bool,
        out: &mut StageOut,
        cmd_set: &mut bool,
        missed: &mut Option<(usize, String)>,
    ) -> Result<bool, ExecError> {
        let t_key = Instant::now();
        let parts = match self.req.layers {
            true => self.key_parts(step, out)?,
            false => None,
        };
        if parts.is_some() {
            log::debug!(
                "step {}: key computed in {:.3} s",
                step.line,
                t_key.elapsed().as_secs_f64()
            );
        }
        let parts = match parts {
            Some(p) => p,
            // `--layers=false`, or an ADD of a URL without a checksum (its content is known only
            // after fetching it): the step runs and nothing is recorded
            None => {
                self.apply(step, unread, out, cmd_set)?;
                // what follows depends on what the step made
                let config = Digest::of_bytes(&out.config.to_json());
                out.key = cache::key_of(&vec![
                    ("uncached".to_string(), out.content_key()),
                    ("config".to_string(), config.to_string()),
                ]);
                return Ok(false);
            }
        };
        let key = cache::key_of(&parts);
        let pointer = cache::pointer(&out.key, step.kind());
        // the entry last built at this place of this Dockerfile: the closest one when the
        // parent is new (a changed base image)
        let place = cache::pointer(
            &format!(
                "{}\0{}\0{}",
                self.req.context_dir.display(),
                self.plan.file,
                self.plan.stages[stage].line
            ),
            &format!("{}#{position}", step.kind()),
        );
        if !self.no_lookup.contains(&stage) {
            let mut found = store_cache::lookup(self.store, &key)
                .filter(|e| store_cache::usable(self.store, e));
            if found.is_none() {
                if let Some(remote) = &self.req.remote_cache {
                    // another machine's build recorded it (`--cache-from`): its layer is now in
                    // the store, verified; the entry becomes this store's own
                    let mut tell = |warning: bool, m: &str| match warning {
                        true => self.emit(Event::Warning(m)),
                        false => self.emit(Event::Note(m)),
                    };
                    if let Some(entry) = remote
                        .lookup(self.store, &key, &mut tell)
                        .map_err(|m| self.step_err(step.line, &step.text, m))?
                    {
                        store_cache::record(self.store, &entry, &[&pointer, &place])?;
                        found = Some(entry);
                    }
                }
            }
            if let Some(entry) = found {
                if let Some(hit) = self.reuse(step, &entry)? {
                    let (config, layer) = hit;
                    out.config = config;
                    if let Some((l, dir, unpacked)) = layer {
                        if !unpacked {
                            out.unready.push((l.digest.clone(), l.diff_id.clone()));
                        }
                        out.layers.push(l);
                        out.dirs.push(dir);
                    }
                    if matches!(step.op, Op::Cmd(_)) {
                        *cmd_set = true;
                    }
                    lock(&self.keys).push((stage, key.clone()));
                    out.key = key;
                    return Ok(true);
                }
            }
            if self.req.explain_cache {
                let why = match missed {
                    Some((line, text)) => {
                        format!(
                            "the earlier step `{}:{line}: {text}` missed",
                            self.plan.file
                        )
                    }
                    None => {
                        let closest = store_cache::closest(self.store, &pointer)
                            .or_else(|| store_cache::closest(self.store, &place));
                        let why = cache::explain(&parts, closest.as_ref().map(|c| &c.parts));
                        if position == 0 && why == cache::PARENT_CHANGED {
                            format!(
                                "the stage's base changed (`{}`)",
                                self.plan.stages[stage].text
                            )
                        } else {
                            why
                        }
                    }
                };
                let msg = format!(
                    "{}:{}: {}: cache miss: {why}",
                    self.plan.file, step.line, step.text
                );
                self.emit(Event::CacheMiss(&msg));
            }
        }
        *missed = Some((step.line, step.text.clone()));
        let n_layers = out.layers.len();
        self.apply(step, unread, out, cmd_set)?;
        let layer = if out.layers.len() > n_layers {
            out.layers.last().map(|l| store_cache::CachedLayer {
                digest: l.digest.to_string(),
                diff_id: l.diff_id.to_string(),
                size: l.size,
                media_type: l.media_type.clone(),
            })
        } else {
            None
        };
        let entry = store_cache::CacheEntry {
            key: key.clone(),
            parts,
            layer,
            config: String::from_utf8(out.config.to_json())
                .expect("serde_json always writes UTF-8"),
        };
        store_cache::record(self.store, &entry, &[&pointer, &place])?;
        lock(&self.keys).push((stage, key.clone()));
        out.key = key;
        Ok(false)
    }

    /// The config and layer of a cache entry (with its dir's path and whether it is unpacked);
    /// `None` when the entry cannot be used after all (an unreadable config or layer record): a
    /// miss, never an error.
    #[allow(clippy::type_complexity)]
    fn reuse(
        &self,
        step: &Step,
        entry: &store_cache::CacheEntry,
    ) -> Result<Option<(ImageConfig, Option<(LayerRef, PathBuf, bool)>)>, ExecError> {
        let Ok(config) = ImageConfig::from_json(entry.config.as_bytes()) else {
            log::warn!("cache entry {}: unreadable config; a miss", entry.key);
            return Ok(None);
        };
        let layer = match &entry.layer {
            None => None,
            Some(l) => {
                let (Ok(digest), Ok(diff_id)) =
                    (Digest::parse(&l.digest), Digest::parse(&l.diff_id))
                else {
                    return Ok(None);
                };
                // the dir is unpacked only when a later step reads the files
                let unpacked = match self.store.layer_unpacked(&diff_id) {
                    Ok(u) => u,
                    Err(e) => {
                        log::warn!(
                            "{}:{}: cached layer {} cannot be used ({e}); running the step",
                            self.plan.file,
                            step.line,
                            l.digest
                        );
                        return Ok(None);
                    }
                };
                Some((
                    LayerRef {
                        diff_id: diff_id.clone(),
                        digest,
                        size: l.size,
                        media_type: l.media_type.clone(),
                    },
                    self.store.layer_path(&diff_id),
                    unpacked,
                ))
            }
        };
        Ok(Some((config, layer)))
    }

    /// The named parts of a step's cache key, `None` for a step that cannot be cached.
    fn key_parts(&self, step: &Step, out: &StageOut) -> Result<Option<cache::Parts>, ExecError> {
        let err = |s: &Runner<'_>, m: String| s.step_err(step.line, &step.text, m);
        let mut parts: cache::Parts = vec![("parent".to_string(), out.key.clone())];
        parts.extend(step.cache_parts());
        parts.push(("platform".to_string(), super::host_platform().to_text()));
        parts.push((
            "timestamp".to_string(),
            self.req
                .timestamp
                .map(|t| t.to_string())
                .unwrap_or_default(),
        ));
        match &step.op {
            Op::Copy(c) => {
                if c.sources.iter().any(|s| add::is_url(s)) && c.checksum.is_none() {
                    return Ok(None);
                }
                let locals: Vec<&String> = c.sources.iter().filter(|s| !add::is_url(s)).collect();
                if !locals.is_empty() {
                    match &c.from {
                        None => {
                            let opts = CopyOptions {
                                exclude: c.excludes.clone(),
                                parents: c.parents,
                            };
                            parts.extend(
                                self.context_parts(&locals, &opts, "")
                                    .map_err(|m| err(self, m))?,
                            );
                        }
                        Some(from) => {
                            parts.push(("from".to_string(), self.source_key(step, from)?));
                        }
                    }
                }
            }
            Op::Run(r) => {
                // the build's `--network` decides what a RUN without `--network=` can reach, so
                // it is part of what the step is (BuildKit keys an exec op by its network mode)
                if r.network == plan::Network::Default {
                    parts.push((
                        "network".to_string(),
                        format!("{:?}", self.req.network).to_lowercase(),
                    ));
                }
                for m in &r.mounts {
                    if let RunMount::Bind {
                        target,
                        source,
                        from,
                        ..
                    } = m
                    {
                        match from {
                            None => {
                                let opts = CopyOptions::default();
                                let src = source.as_str();
                                let label = format!("bind {target} ");
                                let bind_parts = self
                                    .context_parts(&[src], &opts, &label)
                                    .map_err(|m| err(self, m))?;
                                // one part per mount: the files' digests fold into it
                                parts.push((format!("bind {target}"), cache::key_of(&bind_parts)));
                            }
                            Some(f) => {
                                parts.push((format!("bind {target}"), self.source_key(step, f)?));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(Some(parts))
    }

    /// Key parts for context sources: one `file DEST` part per regular file (its content
    /// digest), then the whole listing (`sources`: path, type, mode, size, link target, hard
    /// links) and its owners and xattrs. Computed before anything is copied.
    fn context_parts<S: AsRef<str>>(
        &self,
        sources: &[S],
        opts: &CopyOptions,
        prefix: &str,
    ) -> Result<cache::Parts, String> {
        let trimmed: Vec<&str> = sources
            .iter()
            .map(|s| {
                let t = s.as_ref().trim_end_matches('/');
                if t.is_empty() {
                    "/"
                } else {
                    t
                }
            })
            .collect();
        let resolved = self
            .ctx
            .resolve_sources_once(&trimmed, opts)
            .map_err(|e| e.to_string())?;
        let digest = self.ctx.digest(&resolved).map_err(|e| e.to_string())?;
        let mut parts: cache::Parts = digest
            .files
            .into_iter()
            .map(|(dest, d)| (format!("{prefix}file {dest}"), d))
            .collect();
        parts.push((format!("{prefix}sources"), digest.digest));
        let entries: Vec<&crate::context::Entry> =
            resolved.iter().flat_map(|s| s.entries.iter()).collect();
        let meta = cache::owners_and_xattrs(&self.ctx, &entries)
            .map_err(|e| format!("reading the sources' attributes: {e}"))?;
        parts.push((format!("{prefix}owners and xattrs"), meta));
        Ok(parts)
    }

    /// The key part of what a `COPY --from` or bind mount `from=` reads: the producing stage's
    /// content key (waiting for the stage) or the image's ID.
    fn source_key(&self, step: &Step, from: &FromRef) -> Result<String, ExecError> {
        match from {
            FromRef::Stage(i) => {
                if !self.plan.order.contains(i) {
                    return Err(self.step_err(
                        step.line,
                        &step.text,
                        format!(
                            "stage `{}` is not part of this build",
                            stage_label(&self.plan, *i)
                        ),
                    ));
                }
                Ok(self.wait_stage(*i)?.content_key())
            }
            FromRef::Image(name) => {
                let o = self
                    .load_image(name)
                    .map_err(|m| self.step_err(step.line, &step.text, m))?;
                Ok(o.key)
            }
        }
    }

    /// Runs one step against the stage's state; `unread`: nothing later in the build reads the
    /// files it writes.
    fn apply(
        &self,
        step: &Step,
        unread: bool,
        out: &mut StageOut,
        cmd_set: &mut bool,
    ) -> Result<(), ExecError> {
        let err = |r: &Runner<'_>, m: String| r.step_err(step.line, &step.text, m);
        if reads_files(&step.op) {
            self.ready(out)?;
        }
        let mut empty = true;
        let mut summary = String::new();
        match &step.op {
            Op::Run(r) => {
                self.run(step, r, out)?;
                empty = false;
            }
            Op::Copy(c) => {
                summary = self.copy(step, c, unread, out)?;
                empty = false;
            }
            Op::Workdir(dir) => {
                out.config.set_workdir(dir);
                let view = RootView::new(out.dirs.clone());
                let exists = view
                    .stat(Path::new(dir))
                    .map_err(|e| err(self, e.to_string()))?
                    .map(|e| e.meta.is_dir())
                    .unwrap_or(false);
                if !exists {
                    let owner = self.current_owner(&view, out).map_err(|m| err(self, m))?;
                    let layer = self.layer_dir()?;
                    {
                        let mut w = LayerWriter::new(&layer, &view);
                        w.record_owners = true;
                        let (resolved, _) = view
                            .resolve(Path::new(dir), true)
                            .map_err(|e| err(self, e.to_string()))?;
                        w.make_parents(&resolved, owner)
                            .and_then(|_| w.make_dir(&resolved, owner))
                            .map_err(|e| err(self, format!("creating `{dir}`: {e}")))?;
                    }
                    self.commit_layer(step, &layer, false, true, out)?;
                    empty = false;
                }
            }
            Op::Env(pairs) => {
                for (k, v) in pairs {
                    out.config.set_env(k, v);
                }
            }
            Op::Arg(_) => {}
            Op::Label(pairs) => {
                for (k, v) in pairs {
                    out.config.set_label(k, v);
                }
            }
            Op::User(u) => out.config.set_user(u),
            Op::Expose(ports) => {
                for p in ports {
                    out.config.expose(p);
                }
            }
            Op::Volume(vs) => {
                for v in vs {
                    out.config.add_volume(v);
                }
            }
            Op::Cmd(c) => {
                out.config.set_cmd(c.clone());
                *cmd_set = true;
            }
            Op::Entrypoint(e) => out.config.set_entrypoint(e.clone(), *cmd_set),
            Op::StopSignal(s) => out.config.set_stop_signal(s),
            Op::Healthcheck(h) => out.config.set_healthcheck(Healthcheck {
                test: h.test.clone(),
                interval: h.interval_ns,
                timeout: h.timeout_ns,
                start_period: h.start_period_ns,
                start_interval: h.start_interval_ns,
                retries: h.retries,
            }),
            Op::Shell(s) => out.config.set_shell(s.clone()),
            Op::OnBuild(t) => out.config.add_onbuild(t),
            Op::Maintainer(m) => out.config.author = Some(m.clone()),
        }
        let created_by = step.created_by(&summary);
        out.config.push_history(&self.created, &created_by, empty);
        Ok(())
    }

    /// The uid/gid of the stage's USER (for directories WORKDIR creates), 0:0 for root.
    fn current_owner(&self, view: &RootView, out: &StageOut) -> Result<(u32, u32), String> {
        match out.config.config.user.as_deref() {
            None | Some("") => Ok((0, 0)),
            Some(u) => {
                let acc = accounts(view).map_err(|e| e.to_string())?;
                let pu = acc.process_user(u).map_err(|e| e.to_string())?;
                Ok((pu.uid, pu.gid))
            }
        }
    }

    /// A fresh directory for a new layer, under the store's tmp (same file system as `layers/`).
    fn layer_dir(&self) -> Result<PathBuf, ExecError> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        let d = self.work.path().join(format!("layer-{n}"));
        fs::create_dir(&d).map_err(ExecError::io(format!("creating `{}`", d.display())))?;
        Ok(d)
    }

    /// Turns a layer dir into a staged blob and appends it to the stage. With `place` the dir
    /// becomes the layer's dir in `layers/`; without, the blob is installed at once and the
    /// dir is left to its owner (a memory dir): the layer is unpacked from the blob when a
    /// step reads it.
    fn commit_layer(
        &self,
        step: &Step,
        dir: &Path,
        upper: bool,
        place: bool,
        out: &mut StageOut,
    ) -> Result<(), ExecError> {
        let t0 = Instant::now();
        let cpu0 = crate::util::thread_cpu_seconds();
        let (layer, staged) = commit_mod::write_layer(
            self.store,
            dir,
            upper,
            place,
            self.req.timestamp,
            self.req.compression,
        )
        .map_err(|e| match e {
            commit_mod::CommitError::Store(e) => ExecError::Store(e),
            other => self.step_err(step.line, &step.text, other.to_string()),
        })?;
        let blob = layer.clone();
        out.layers.push(layer);
        let t_sync = t0.elapsed();
        if place && !self.req.layers {
            // `--layers=false`: the layer waits for the commit, which installs what the image uses
            out.dirs.push(dir.to_path_buf());
            lock(&self.new_layers)
                .entry(blob.digest.to_string())
                .or_insert(NewLayer {
                    staged: Some(staged),
                    diff_id: blob.diff_id,
                    dir: dir.to_path_buf(),
                });
            return Ok(());
        }
        // with the cache, the layer goes into the store now, so that its entry is usable; so
        // does a layer made in memory, whose dir is not kept. The blob's name becomes durable
        // with the image (`commit` syncs `blobs/` once)
        self.store.install_blob_unsynced(staged)?;
        let t_blob = t0.elapsed();
        let (path, dir_step) = if place {
            (
                self.store.add_unpacked_layer(&blob.diff_id, dir)?,
                "dir placed",
            )
        } else {
            if !self.store.layer_unpacked(&blob.diff_id)? {
                out.unready
                    .push((blob.digest.clone(), blob.diff_id.clone()));
            }
            (
                self.store.layer_path(&blob.diff_id),
                "from memory, dir left",
            )
        };
        log::debug!(
            "layer {} ({} bytes stored): committed in {:.3} s ({:.3} s CPU): tar and blob {:.3} s, install {:.3} s, {dir_step} {:.3} s",
            blob.diff_id,
            blob.size,
            t0.elapsed().as_secs_f64(),
            crate::util::thread_cpu_seconds() - cpu0,
            t_sync.as_secs_f64(),
            (t_blob - t_sync).as_secs_f64(),
            (t0.elapsed() - t_blob).as_secs_f64()
        );
        out.dirs.push(path);
        Ok(())
    }

    fn stage_dirs(&self, step: &Step, from: &FromRef) -> Result<(Vec<PathBuf>, String), ExecError> {
        match from {
            FromRef::Stage(i) => match self.plan.order.contains(i) {
                true => {
                    let mut o = self.wait_stage(*i)?;
                    self.ready(&mut o)?;
                    Ok((o.dirs, format!("stage `{}`", stage_label(&self.plan, *i))))
                }
                false => Err(self.step_err(
                    step.line,
                    &step.text,
                    format!(
                        "stage `{}` is not part of this build",
                        stage_label(&self.plan, *i)
                    ),
                )),
            },
            FromRef::Image(name) => {
                let o = self
                    .load_image(name)
                    .map_err(|m| self.step_err(step.line, &step.text, m))?;
                Ok((o.dirs, format!("image `{name}`")))
            }
        }
    }

    fn run(&self, step: &Step, r: &RunOp, out: &mut StageOut) -> Result<(), ExecError> {
        let err = |s: &Runner<'_>, m: String| s.step_err(step.line, &step.text, m);
        let layer = self.layer_dir()?;
        // the overlay's work dir; `scratch` (mount sources, a heredoc script) only when used
        let work = PathBuf::from(format!("{}-work", layer.display()));
        let scratch = PathBuf::from(format!("{}-run", layer.display()));
        let make_scratch = || {
            fs::create_dir_all(&scratch)
                .map_err(ExecError::io(format!("creating `{}`", scratch.display())))
        };
        fs::create_dir(&work).map_err(ExecError::io(format!("creating `{}`", work.display())))?;
        let mut spec = sandbox::Spec::new(
            out.dirs.clone(),
            layer.clone(),
            work.clone(),
            r.argv.clone(),
        );
        spec.env = r.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        spec.cwd = out.config.workdir();
        spec.user = out.config.config.user.clone().unwrap_or_default();
        spec.network = match (r.network, self.req.network) {
            (plan::Network::Host, _) | (plan::Network::Default, NetworkMode::Host) => {
                sandbox::Network::Host
            }
            (plan::Network::None, _) | (plan::Network::Default, NetworkMode::None) => {
                sandbox::Network::None
            }
            (plan::Network::Default, NetworkMode::Private) => sandbox::Network::Private,
        };
        // nothing the step writes outlives the build unless it is committed, and the commit
        // syncs the blob (the layer dir's marker names the boot it was written in): the step's
        // own syncs only wait for the disk. A cache mount's files outlive the build: a step
        // with one keeps them.
        spec.state_dir = self.run_state_dir();
        spec.volatile_upper = true;
        spec.discard_sync = !r.mounts.iter().any(|m| matches!(m, RunMount::Cache { .. }));
        let mut held = Vec::new();
        for (n, m) in r.mounts.iter().enumerate() {
            let mount_dir = scratch.join(format!("mount-{n}"));
            let sm = self
                .mount(step, m, &mount_dir, &mut held)
                .map_err(|e| match e {
                    ExecError::Step { .. } => e,
                    other => err(self, other.to_string()),
                })?;
            if let Some(sm) = sm {
                spec.mounts.push(sm);
            }
        }
        let single_id = sandbox::userns::current().is_some_and(sandbox::UsernsMode::single_id);
        if single_id
            && !r.env.iter().any(|(k, _)| k == "APT_CONFIG")
            && out
                .dirs
                .iter()
                .any(|d| fs::symlink_metadata(d.join("usr/bin/apt-get")).is_ok())
        {
            // single-id mode, an image with apt: apt's drop to `_apt` cannot take effect and apt
            // checks that it did; a config file outside the image tells it to stay root
            // (docs/DESIGN.md). Only where apt is, so other images get no extra mount point.
            let p = scratch.join("apt-single-id.conf");
            make_scratch()?;
            fs::write(&p, APT_SINGLE_ID_CONF)
                .map_err(ExecError::io(format!("writing `{}`", p.display())))?;
            spec.mounts.push(sandbox::Mount::Bind {
                source: p,
                destination: APT_SINGLE_ID_PATH.to_string(),
                readonly: true,
            });
            spec.env.push(format!("APT_CONFIG={APT_SINGLE_ID_PATH}"));
        }
        if let Some(f) = &r.script {
            let p = scratch.join("heredoc-script");
            make_scratch()?;
            fs::write(&p, &f.content)
                .map_err(ExecError::io(format!("writing `{}`", p.display())))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .map_err(ExecError::io(format!("chmod `{}`", p.display())))?;
            spec.mounts.push(sandbox::Mount::Bind {
                source: p,
                destination: format!("{}/{}", plan::resolve::HEREDOC_DIR, f.name),
                readonly: true,
            });
        }
        let (reader, writer) =
            nix::unistd::pipe().map_err(|e| err(self, format!("creating a pipe: {e}")))?;
        let writer2: OwnedFd = writer
            .try_clone()
            .map_err(|e| err(self, format!("duplicating a pipe: {e}")))?;
        let stdio = sandbox::Stdio {
            stdin: None,
            stdout: Some(writer),
            stderr: Some(writer2),
        };
        let status = std::thread::scope(|s| {
            let launcher = self.launcher.get_or_init(sandbox::Launcher::start).as_ref();
            let h = s.spawn(move || sandbox::run_launched(&spec, stdio, launcher));
            let mut f = fs::File::from(reader);
            let mut buf = [0u8; 8192];
            // whole lines only, so that output of stages running side by side never mixes
            // within a line (a line longer than the buffer goes out in pieces)
            let mut pending: Vec<u8> = Vec::new();
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        pending.extend_from_slice(&buf[..n]);
                        let cut = match pending.iter().rposition(|&b| b == b'\n') {
                            Some(i) => i + 1,
                            None if pending.len() >= buf.len() => pending.len(),
                            None => continue,
                        };
                        self.emit(Event::Output(&pending[..cut]));
                        pending.drain(..cut);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            if !pending.is_empty() {
                self.emit(Event::Output(&pending));
            }
            h.join()
        });
        let status = match status {
            Ok(Ok(st)) => st,
            Ok(Err(e)) => return Err(err(self, e.to_string())),
            Err(_) => return Err(err(self, "the sandbox thread panicked".to_string())),
        };
        if let Some(sig) = status.interrupted {
            return Err(err(self, format!("interrupted by signal {sig}")));
        }
        if status.code != 0 {
            return Err(err(self, format!("exit status {}", status.code)));
        }
        let _ = fs::remove_dir_all(&work);
        let _ = fs::remove_dir_all(&scratch);
        // single-id mode ran a non-root USER as uid 0: what the step made is recorded as that
        // user's, as a subuid range or root would have made it
        if let Some(u) = out.config.config.user.as_deref() {
            if single_id && sandbox::names_another_user(u) {
                let view = RootView::new(out.dirs.clone());
                let (uid, gid) = self
                    .current_owner(&view, out)
                    .map_err(|m| err(self, format!("user `{u}`: {m}")))?;
                record_new_entries(&layer, &out.dirs, uid, gid)
                    .map_err(|e| err(self, format!("recording what the step made: {e}")))?;
            }
        }
        self.commit_layer(step, &layer, true, true, out)
    }

    /// Prepares one `RUN --mount` (`None`: an optional secret that was not given).
    /// A cache mount's lock (`sharing=locked|private`) goes into `held`, which the caller keeps
    /// until the step is done.
    fn mount(
        &self,
        step: &Step,
        m: &RunMount,
        dir: &Path,
        held: &mut Vec<FileLock>,
    ) -> Result<Option<sandbox::Mount>, ExecError> {
        fs::create_dir_all(dir).map_err(ExecError::io(format!("creating `{}`", dir.display())))?;
        match m {
            RunMount::Bind {
                target,
                source,
                from,
                rw,
            } => {
                // a copy, so that `rw` writes are thrown away and .dockerignore holds
                let copy_dir = dir.join("src");
                fs::create_dir(&copy_dir)
                    .map_err(ExecError::io(format!("creating `{}`", copy_dir.display())))?;
                let op = CopyOp {
                    add: false,
                    sources: vec![source.clone()],
                    inline: vec![],
                    dest: "/".to_string(),
                    from: from.clone(),
                    chown: None,
                    chmod: None,
                    excludes: vec![],
                    parents: false,
                    checksum: None,
                    link: false,
                    keep_git_dir: false,
                    unpack: Some(false),
                };
                let empty = RootView::new(Vec::new());
                let single_file =
                    self.copy_into(step, &op, &copy_dir, &empty, &Accounts::default(), true)?;
                let src = match single_file {
                    Some(name) => copy_dir.join(name),
                    None => copy_dir,
                };
                Ok(Some(sandbox::Mount::Bind {
                    source: src,
                    destination: target.clone(),
                    readonly: !rw,
                }))
            }
            RunMount::Cache {
                target,
                id,
                mode,
                uid,
                gid,
                read_only,
                sharing,
            } => {
                let hex = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes()));
                let mounts = self.store.cache_dir().join("run-mounts");
                fs::create_dir_all(&mounts)
                    .map_err(ExecError::io(format!("creating `{}`", mounts.display())))?;
                let lock_path = mounts.join(format!("{}.lock", &hex[..32]));
                let lock_err = ExecError::io(format!("locking `{}`", lock_path.display()));
                let mut d = mounts.join(&hex[..32]);
                match sharing {
                    plan::Sharing::Shared => {}
                    // held until the step is done: a second user waits
                    plan::Sharing::Locked => {
                        held.push(FileLock::exclusive(&lock_path).map_err(lock_err)?);
                    }
                    // a second user at the same time gets a fresh directory of its own
                    plan::Sharing::Private => {
                        match FileLock::try_exclusive(&lock_path).map_err(lock_err)? {
                            Some(l) => held.push(l),
                            None => d = dir.join("private"),
                        }
                    }
                }
                if !d.exists() {
                    fs::create_dir_all(&d)
                        .map_err(ExecError::io(format!("creating `{}`", d.display())))?;
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&d, fs::Permissions::from_mode(*mode))
                        .map_err(ExecError::io(format!("chmod `{}`", d.display())))?;
                    if let Err(e) = std::os::unix::fs::chown(&d, Some(*uid), Some(*gid)) {
                        log::warn!("cache mount `{id}`: cannot give it owner {uid}:{gid}: {e}");
                    }
                }
                Ok(Some(sandbox::Mount::Bind {
                    source: d,
                    destination: target.clone(),
                    readonly: *read_only,
                }))
            }
            RunMount::Tmpfs { target, size } => Ok(Some(sandbox::Mount::Tmpfs {
                destination: target.clone(),
                size: *size,
                mode: None,
            })),
            RunMount::Secret {
                id,
                target,
                required,
                mode,
                uid,
                gid,
            } => {
                let Some(src) = self.req.secrets.get(id) else {
                    if *required {
                        return Err(self.step_err(
                            step.line,
                            &step.text,
                            format!("secret `{id}` is required: pass it with `--secret id={id},src=FILE`"),
                        ));
                    }
                    return Ok(None);
                };
                let f = dir.join("secret");
                fs::copy(src, &f).map_err(ExecError::io(format!(
                    "reading secret `{id}` from `{}`",
                    src.display()
                )))?;
                use std::os::unix::fs::PermissionsExt;
                if let Err(e) = std::os::unix::fs::chown(&f, Some(*uid), Some(*gid)) {
                    log::debug!("secret `{id}`: cannot give it owner {uid}:{gid}: {e}");
                }
                fs::set_permissions(&f, fs::Permissions::from_mode(*mode))
                    .map_err(ExecError::io(format!("chmod `{}`", f.display())))?;
                Ok(Some(sandbox::Mount::Bind {
                    source: f,
                    destination: target.clone(),
                    readonly: true,
                }))
            }
        }
    }

    /// COPY/ADD into a fresh layer; returns the history's content summary.
    fn copy(
        &self,
        step: &Step,
        c: &CopyOp,
        unread: bool,
        out: &mut StageOut,
    ) -> Result<String, ExecError> {
        let view = RootView::fixed(out.dirs.clone());
        let acc = if c.chown.is_some() {
            accounts(&view).map_err(|e| self.step_err(step.line, &step.text, e.to_string()))?
        } else {
            Accounts::default()
        };
        // `--link`: the files are copied into an empty tree that becomes the layer, so nothing
        // of the image below is read for the destination: no symlink of it is followed, no
        // directory of it is taken for the destination or its mode (reference, "COPY --link")
        let below = if c.link {
            RootView::new(Vec::new())
        } else {
            view
        };
        let summary = self.summary(c);
        // a layer nothing reads during the build is written in memory, where creating files
        // costs next to nothing, and only its blob is stored; anything that goes wrong there
        // (a COPY bigger than the memory dir) is done again on disk. Not for URLs: fetched once.
        if unread && !c.sources.iter().any(|s| add::is_url(s)) {
            let t0 = Instant::now();
            if let Some(mem) = self.memory_dir() {
                let layer = mem.path().join("layer");
                let done = fs::create_dir(&layer)
                    .map_err(ExecError::io(format!("creating `{}`", layer.display())))
                    .and_then(|()| self.copy_into(step, c, &layer, &below, &acc, false));
                match done {
                    Ok(_) => {
                        log::debug!(
                            "step {}: copied in memory in {:.3} s",
                            step.line,
                            t0.elapsed().as_secs_f64()
                        );
                        self.commit_layer(step, &layer, false, false, out)?;
                        return Ok(summary);
                    }
                    Err(e) => log::debug!("the copy in memory failed ({e}); copying on disk"),
                }
            }
        }
        let t0 = Instant::now();
        let layer = self.layer_dir()?;
        self.copy_into(step, c, &layer, &below, &acc, false)?;
        log::debug!(
            "step {}: copied in {:.3} s",
            step.line,
            t0.elapsed().as_secs_f64()
        );
        self.commit_layer(step, &layer, false, true, out)?;
        Ok(summary)
    }

    /// A fresh memory dir for a layer ([`sandbox::memdir`]), where this process may have one.
    fn memory_dir(&self) -> Option<sandbox::memdir::MemoryDir> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
        sandbox::memdir::MemoryDir::mount(&self.work.path().join(format!("memory-{n}")))
    }

    /// The memory dir RUN steps keep their state in, mounted once per build.
    fn run_state_dir(&self) -> Option<PathBuf> {
        self.run_state
            .get_or_init(|| sandbox::memdir::MemoryDir::mount(&self.work.path().join("run-state")))
            .as_ref()
            .map(|m| m.path().to_path_buf())
    }

    /// Unpacks the layers of `out` whose dirs no step has needed yet ([`StageOut::unready`]).
    fn ready(&self, out: &mut StageOut) -> Result<(), ExecError> {
        if out.unready.is_empty() {
            return Ok(());
        }
        // one unpacker at a time, as for base images: two stages never unpack one layer twice
        let _loading = lock(&self.loading);
        for (blob, diff_id) in std::mem::take(&mut out.unready) {
            self.store.unpacked_layer(&blob, &diff_id)?;
        }
        Ok(())
    }

    fn summary(&self, c: &CopyOp) -> String {
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        for s in &c.sources {
            sha2::Digest::update(&mut h, s.as_bytes());
            sha2::Digest::update(&mut h, b"\0");
        }
        for f in &c.inline {
            sha2::Digest::update(&mut h, f.content.as_bytes());
        }
        let hex = hex::encode(sha2::Digest::finalize(h));
        let kind = if c.sources.len() + c.inline.len() > 1 {
            "multi"
        } else {
            "file"
        };
        format!("{kind}:{hex}")
    }

    /// Writes a COPY/ADD's result into `layer`. `view` is the image below (for the destination's
    /// symlinks and existing dirs). With `bind` (a RUN bind mount's copy) a single-file source
    /// is placed under its own name and that name returned.
    fn copy_into(
        &self,
        step: &Step,
        c: &CopyOp,
        layer: &Path,
        view: &RootView,
        acc: &Accounts,
        bind: bool,
    ) -> Result<Option<String>, ExecError> {
        let err = |s: &Runner<'_>, m: String| s.step_err(step.line, &step.text, m);
        let chown = match &c.chown {
            Some(spec) => Some(acc.chown(spec).map_err(|e| err(self, e.to_string()))?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(spec) => Some(Chmod::parse(spec).map_err(|e| err(self, e.to_string()))?),
            None => None,
        };
        if c.checksum.is_some() && !c.sources.iter().all(|s| add::is_url(s)) {
            return Err(err(
                self,
                "`--checksum` is only supported for URL sources".to_string(),
            ));
        }
        if let Some(s) = c.sources.iter().find(|s| add::is_git(s)) {
            return Err(err(self, format!("`{s}`: git sources are not supported; clone the repository into the context instead")));
        }
        if !c.add && c.sources.iter().any(|s| add::is_url(s)) {
            return Err(err(self, "COPY does not fetch URLs: use ADD".to_string()));
        }
        let mut w = LayerWriter::new(layer, view);
        w.record_owners = true;
        // every caller passes a fresh, empty dir
        w.track();
        let dest = PathBuf::from(c.dest.trim_end_matches('/'));
        let dest = if dest.as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            dest
        };
        let dir_intent = c.dest.ends_with('/');
        let dest_is_dir = w.is_dir(&dest).map_err(|e| err(self, e.to_string()))?;
        // the destination is resolved through the image's symlinks, its last component too, as
        // BuildKit's `RootPath` does (`COPY f /link` writes where `/link` leads); what is copied
        // below it is then checked entry by entry (`LayerWriter::check_replace`)
        let (dest, _) = view
            .resolve(&dest, true)
            .map_err(|e| err(self, e.to_string()))?;
        let urls: Vec<&String> = c.sources.iter().filter(|s| add::is_url(s)).collect();
        let locals: Vec<&String> = c.sources.iter().filter(|s| !add::is_url(s)).collect();
        let mtime_now = self
            .req
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp());

        // local sources: from the context or from another stage/image
        struct Item {
            src: PathBuf,
            /// Path below the destination ("" = the destination itself).
            rel: String,
            /// The source was a directory (its contents are copied).
            from_dir: bool,
            kind_dir: bool,
            hardlink_to: Option<String>,
            /// A context entry: read through `Context::open_entry`, never by path.
            entry: Option<crate::context::Entry>,
        }
        let mut items: Vec<Item> = Vec::new();
        let mut n_sources = urls.len() + c.inline.len();
        let mut archives: Vec<(PathBuf, fs::File)> = Vec::new();
        let keep_owner = c.from.is_some();
        if !locals.is_empty() {
            match &c.from {
                None => {
                    // `src/` and `src` name the same source (and errors say `src`)
                    let trimmed: Vec<&str> = locals
                        .iter()
                        .map(|s| {
                            let t = s.trim_end_matches('/');
                            if t.is_empty() {
                                "/"
                            } else {
                                t
                            }
                        })
                        .collect();
                    let sources = self
                        .ctx
                        .resolve_sources_once(
                            &trimmed,
                            &CopyOptions {
                                exclude: c.excludes.clone(),
                                parents: c.parents,
                            },
                        )
                        .map_err(|e| err(self, e.to_string()))?;
                    n_sources += sources.len();
                    for s in sources {
                        let from_dir = s.kind == EntryKind::Dir;
                        if c.add && !from_dir && c.unpack != Some(false) {
                            if let Some(f) = s.entries.first().filter(|e| e.kind == EntryKind::File)
                            {
                                let p = self.ctx.root().join(&s.path);
                                let mut opened = self
                                    .ctx
                                    .open_entry(f)
                                    .map_err(|e| err(self, e.to_string()))?;
                                let file = opened.reader().expect("open_entry checked a file");
                                if add::is_archive(file).map_err(|e| err(self, e.to_string()))? {
                                    let file = file.try_clone().map_err(|e| {
                                        err(self, format!("`{}`: {e}", p.display()))
                                    })?;
                                    archives.push((p, file));
                                    continue;
                                }
                            }
                        }
                        for e in s.entries {
                            items.push(Item {
                                src: self.ctx.root().join(&e.path),
                                rel: e.dest.clone(),
                                from_dir,
                                kind_dir: e.kind == EntryKind::Dir,
                                hardlink_to: e.hardlink_to.clone(),
                                entry: Some(e),
                            });
                        }
                    }
                }
                Some(from) => {
                    let (dirs, what) = self.stage_dirs(step, from)?;
                    let sv = RootView::fixed(dirs);
                    let exclude = crate::ignore::Matcher::from_patterns(&c.excludes)
                        .map_err(|e| err(self, format!("--exclude: {e}")))?;
                    for pat in &locals {
                        let found = from_view(&sv, pat, c.parents)
                            .map_err(|m| err(self, format!("{pat}: {m} in {what}")))?;
                        n_sources += found.len();
                        for (from_dir, entries) in found {
                            for (src, rel, is_dir) in entries {
                                if !rel.is_empty() && exclude.is_excluded(&rel) {
                                    continue;
                                }
                                items.push(Item {
                                    src,
                                    rel,
                                    from_dir,
                                    kind_dir: is_dir,
                                    hardlink_to: None,
                                    entry: None,
                                });
                            }
                        }
                    }
                }
            }
        }
        // a wildcard matching one file is a single source, as in BuildKit
        let multi = n_sources > 1;
        if multi && !dir_intent && !dest_is_dir && !bind {
            return Err(err(
                self,
                format!(
                    "when copying several sources, the destination must be a directory ending in `/`: use `{}/`",
                    c.dest
                ),
            ));
        }
        let into_dir = dir_intent || dest_is_dir || multi;
        let attrs = Attrs {
            chown,
            chmod: chmod.clone(),
            keep_owner,
        };
        let mut placed: HashMap<String, PathBuf> = HashMap::new();
        let mut dir_times: Vec<(PathBuf, fs::Metadata)> = Vec::new();
        let mut single: Option<String> = None;
        let put = |w: &mut LayerWriter<'_>, it: &Item, resolved: &Path| match &it.entry {
            Some(e) => w.put_context(&self.ctx, e, resolved, &attrs).map(Some),
            None => w.put(&it.src, resolved, &attrs).map(|_| None),
        };
        for it in &items {
            let mut copied: Option<fs::Metadata> = None;
            if bind && !it.from_dir {
                single = Path::new(&it.rel)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
            }
            let target = if it.from_dir || into_dir {
                if it.rel.is_empty() {
                    dest.clone()
                } else {
                    dest.join(&it.rel)
                }
            } else {
                dest.clone()
            };
            let resolved = w
                .resolve_dest(&target)
                .map_err(|e| err(self, e.to_string()))?;
            let kind_ok = if it.rel.is_empty() && it.kind_dir {
                // the destination itself: an existing directory is kept
                match w.is_dir(&resolved) {
                    Ok(true) => Ok(()),
                    _ => w.check_replace(&resolved, true),
                }
            } else {
                w.check_replace(&resolved, it.kind_dir)
            };
            kind_ok.map_err(|e| err(self, e.to_string()))?;
            let res = if let Some(first) = &it.hardlink_to {
                match placed.get(first) {
                    Some(p) => w.hard_link(p, &resolved, chown.unwrap_or((0, 0))),
                    None => put(&mut w, it, &resolved).map(|m| copied = m),
                }
            } else if it.rel.is_empty() && it.kind_dir && w.is_dir(&resolved).unwrap_or(false) {
                // the destination dir exists already: keep it as the image has it
                w.make_parents(&resolved, chown.unwrap_or((0, 0)))
                    .and_then(|_| w.make_dir(&resolved, chown.unwrap_or((0, 0))))
            } else {
                put(&mut w, it, &resolved).map(|m| copied = m)
            };
            res.map_err(|e| err(self, format!("copying to `{}`: {e}", target.display())))?;
            if it.kind_dir {
                let m = match (copied, &it.entry) {
                    (Some(m), _) => Some(m),
                    // a context dir that already existed in the image: its own time, by fd
                    (None, Some(e)) => self.ctx.open_entry(e).ok().map(|o| o.metadata().clone()),
                    (None, None) => fs::symlink_metadata(&it.src).ok(),
                };
                if let Some(m) = m {
                    dir_times.push((resolved.clone(), m));
                }
            }
            placed.insert(it.rel.clone(), resolved);
        }
        // an archive is unpacked into the destination directory; `--chown` gives every entry
        // its owner, as BuildKit's unpack does (`mapArchiveHeaderOwner`: "explicit --chown
        // values override the header ownership")
        let unpack = |w: &mut LayerWriter<'_>, f: &mut dyn Read, name: &str| {
            let resolved = w
                .resolve_dest(&dest)
                .map_err(|e| err(self, e.to_string()))?;
            w.check_replace(&resolved, true)
                .map_err(|e| err(self, e.to_string()))?;
            let owner = chown.unwrap_or((0, 0));
            w.make_parents(&resolved, owner)
                .and_then(|_| w.make_dir(&resolved, owner))
                .map_err(|e| err(self, e.to_string()))?;
            let opts = crate::layer::ApplyOptions {
                layer_name: format!("ADD {name}"),
                skip_devices: true,
                owner: chown,
                record_owners: true,
                ..crate::layer::ApplyOptions::default()
            };
            // unpacked beside the layer first, then placed through the image's symlinks
            let tree = tempfile::tempdir_in(self.work.path())
                .map_err(|e| err(self, format!("unpacking `{name}`: {e}")))?;
            crate::layer::apply_blob(f, tree.path(), &opts)
                .map_err(|e| err(self, format!("unpacking `{name}`: {e}")))?;
            w.place_tree(tree.path(), &resolved)
                .map_err(|e| err(self, format!("unpacking `{name}`: {e}")))
        };
        for (a, mut f) in archives {
            unpack(&mut w, &mut f, &a.display().to_string())?;
        }
        for u in &urls {
            let fetched =
                add::fetch(u, c.checksum.as_deref()).map_err(|e| err(self, e.to_string()))?;
            if c.unpack == Some(true) {
                // `ADD --unpack=true URL`: an archive is unpacked like a local one; anything
                // else is copied as a file (BuildKit's AttemptUnpack)
                let mut tmp = tempfile::tempfile_in(self.work.path())
                    .and_then(|mut t| t.write_all(&fetched.data).map(|_| t))
                    .map_err(|e| err(self, format!("`{u}`: {e}")))?;
                if add::is_archive(&mut tmp).map_err(|e| err(self, format!("`{u}`: {e}")))? {
                    unpack(&mut w, &mut tmp, u)?;
                    continue;
                }
            }
            let target = if into_dir {
                dest.join(add::url_file_name(u))
            } else {
                dest.clone()
            };
            let resolved = w
                .resolve_dest(&target)
                .map_err(|e| err(self, e.to_string()))?;
            w.check_replace(&resolved, false)
                .map_err(|e| err(self, e.to_string()))?;
            let url_attrs = Attrs {
                chown,
                chmod: Some(chmod.clone().unwrap_or(Chmod::Octal(0o600))),
                keep_owner: false,
            };
            w.put_bytes(
                &resolved,
                &fetched.data,
                &url_attrs,
                fetched.mtime.unwrap_or(mtime_now),
            )
            .map_err(|e| err(self, format!("writing `{}`: {e}", target.display())))?;
        }
        for f in &c.inline {
            let target = if into_dir {
                dest.join(&f.name)
            } else {
                dest.clone()
            };
            let resolved = w
                .resolve_dest(&target)
                .map_err(|e| err(self, e.to_string()))?;
            w.check_replace(&resolved, false)
                .map_err(|e| err(self, e.to_string()))?;
            w.put_bytes(&resolved, f.content.as_bytes(), &attrs, mtime_now)
                .map_err(|e| err(self, format!("writing `{}`: {e}", target.display())))?;
        }
        w.fix_dir_times(&dir_times)
            .map_err(|e| err(self, e.to_string()))?;
        if !w.unmappable.is_empty() {
            log::warn!(
                "{}:{}: {}: owners {:?} cannot be represented in this user namespace; those files keep the current owner",
                self.plan.file,
                step.line,
                step.text,
                w.unmappable
            );
        }
        Ok(single)
    }

    /// Writes the config and manifest, installs the new layers, names the image.
    fn commit(&self, mut out: StageOut) -> Result<Digest, ExecError> {
        for (k, v) in &self.req.labels {
            out.config.set_label(k, v);
        }
        // the time of the last step, so that a build whose steps all came from the cache makes
        // the very same config (and image ID)
        let last = out.config.history.last().and_then(|h| h.created.clone());
        out.config.created = Some(last.unwrap_or_else(|| self.created.clone()));
        if self.req.timestamp.is_some() {
            let c = self.created.clone();
            out.config.clamp_times(&c);
        }
        out.config.rootfs.diff_ids = out.layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config = out.config.to_json();
        let id = Digest::of_bytes(&config);
        let images = self.store.images()?;
        // an unchanged rebuild: the image is there with every name already; nothing is written
        if let Some(existing) = images.iter().find(|r| r.id == id) {
            if self.req.tags.iter().all(|t| existing.names.contains(t)) {
                self.warn_kept_format(existing);
                for t in &self.req.tags {
                    let note = format!("COMMIT {t}");
                    self.emit(Event::Note(&note));
                }
                return Ok(id);
            }
        }
        // the images that hold the names now: left unnamed, they are removed below
        let previous: Vec<Digest> = images
            .iter()
            .filter(|r| r.id != id && r.names.iter().any(|n| self.req.tags.contains(n)))
            .map(|r| r.id.clone())
            .collect();
        // install the layers the image uses; the rest of this build's work is dropped
        for l in &out.layers {
            if let Some(nl) = lock(&self.new_layers).get_mut(&l.digest.to_string()) {
                if let Some(staged) = nl.staged.take() {
                    self.store.install_blob_unsynced(staged)?;
                    self.store.add_unpacked_layer(&nl.diff_id, &nl.dir)?;
                }
            }
        }
        // the layers of this build the image does not use (an earlier stage's): moved into
        // `layers/` by rename, for the next `prune` to delete, rather than deleted here, which
        // took seconds for an apt layer at the end of every `--layers=false` build
        for nl in lock(&self.new_layers).values_mut() {
            if nl.staged.take().is_some() && nl.dir.is_dir() {
                if let Err(e) = self.store.add_unpacked_layer(&nl.diff_id, &nl.dir) {
                    log::debug!("layer {} is deleted with the build's work: {e}", nl.diff_id);
                }
            }
        }
        // the layer blobs this build installed: their names are durable before the image that
        // names them is
        self.store.sync_blobs()?;
        let record = commit_mod::write_image(
            self.store,
            &mut out.config,
            &out.layers,
            &self.req.tags,
            self.req.format,
        )
        .map_err(|e| match e {
            commit_mod::CommitError::Store(e) => ExecError::Store(e),
            other => ExecError::Format(other.to_string()),
        })?;
        self.warn_kept_format(&record);
        for t in &self.req.tags {
            let note = format!("COMMIT {t}");
            self.emit(Event::Note(&note));
        }
        self.drop_previous(&previous);
        Ok(record.id)
    }

    /// Warns when the image was stored before under another manifest format than `--format`
    /// asks: a store keeps one manifest per image ID (the first committed), as with
    /// `--compression`.
    fn warn_kept_format(&self, record: &crate::store::ImageRecord) {
        let want = super::manifest_media_type(self.req.format);
        if record.manifest_media_type != want {
            let w = format!(
                "image {} is stored already under the manifest type `{}`, which it keeps (`hoist push --format` converts it)",
                record.id.short(),
                record.manifest_media_type
            );
            self.emit(Event::Warning(&w));
        }
    }

    /// Removes the images the new one took its names from, when they are left without a name
    /// and no other image is built on them (so rebuilds leave no `<none>` images behind). Their
    /// blobs stay until `prune`, so cache entries naming them stay usable.
    fn drop_previous(&self, previous: &[Digest]) {
        if previous.is_empty() {
            return;
        }
        let Ok(all) = self.store.images() else {
            return;
        };
        for id in previous {
            let Some(old) = all.iter().find(|r| &r.id == id) else {
                continue;
            };
            if !old.is_dangling() || crate::store::has_children(&all, old) {
                continue;
            }
            if let Err(e) = self.store.remove(&id.to_string(), false) {
                log::warn!("cannot remove the previous image {id}: {e}");
            }
        }
    }
}

/// Whether a step reads the stage's files (and so needs its layers unpacked).
fn reads_files(op: &Op) -> bool {
    matches!(op, Op::Run(_) | Op::Copy(_) | Op::Workdir(_))
}

/// Records `uid:gid` ([`crate::layer::RECORDED_OWNER_XATTR`]) on every entry of the upper dir
/// `upper` that no dir of `lowers` has and that carries no record yet (a chown the step made
/// wins). Whiteouts and symbolic links are left as they are: a link holds no attribute.
fn record_new_entries(upper: &Path, lowers: &[PathBuf], uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let value = crate::layer::recorded_owner_value(uid, gid);
    for e in walkdir::WalkDir::new(upper).min_depth(1) {
        let e = e.map_err(std::io::Error::other)?;
        let md = e.metadata().map_err(std::io::Error::other)?;
        let ft = md.file_type();
        if ft.is_symlink() || (ft.is_char_device() && md.rdev() == 0) {
            continue;
        }
        let rel = e
            .path()
            .strip_prefix(upper)
            .map_err(std::io::Error::other)?;
        if lowers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
        {
            continue;
        }
        if xattr::get(e.path(), crate::layer::RECORDED_OWNER_XATTR)?.is_none() {
            xattr::set(
                e.path(),
                crate::layer::RECORDED_OWNER_XATTR,
                value.as_bytes(),
            )?;
        }
    }
    Ok(())
}

/// The image's `/etc/passwd` and `/etc/group`.
pub(crate) fn accounts(view: &RootView) -> std::io::Result<Accounts> {
    let passwd = view
        .read_file(Path::new("/etc/passwd"))?
        .unwrap_or_default();
    let group = view.read_file(Path::new("/etc/group"))?.unwrap_or_default();
    Ok(Accounts {
        passwd: parse_passwd(&String::from_utf8_lossy(&passwd)),
        group: parse_group(&String::from_utf8_lossy(&group)),
    })
}

/// Entries for one `COPY --from` source pattern: per match, (is a dir, [(real path, path
/// below the destination, is a dir)]).
#[allow(clippy::type_complexity)]
pub(crate) fn from_view(
    sv: &RootView,
    pattern: &str,
    parents: bool,
) -> Result<Vec<(bool, Vec<(PathBuf, String, bool)>)>, String> {
    let clean = plan::resolve::clean(&format!("/{pattern}"));
    let mut matches: Vec<PathBuf> = Vec::new();
    if crate::ignore::has_wildcards(&clean) {
        let (parent, last) = clean.rsplit_once('/').unwrap_or(("", &clean));
        if crate::ignore::has_wildcards(parent) {
            return Err("wildcards are supported only in the last path component".to_string());
        }
        let glob = crate::ignore::GlobPattern::new(last).map_err(|e| e.to_string())?;
        let parent = if parent.is_empty() { "/" } else { parent };
        let (resolved, _) = sv
            .resolve(Path::new(parent), true)
            .map_err(|e| e.to_string())?;
        for e in sv.read_dir(&resolved).map_err(|e| e.to_string())? {
            let name = e
                .image_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if glob.matches(&name) {
                matches.push(e.image_path.clone());
            }
        }
        if matches.is_empty() {
            return Err("no file matches".to_string());
        }
    } else {
        matches.push(PathBuf::from(crate::ignore::unescape(&clean)));
    }
    let mut out = Vec::new();
    for m in matches {
        let (resolved, entry) = sv.resolve(&m, true).map_err(|e| e.to_string())?;
        let Some(entry) = entry else {
            return Err("not found".to_string());
        };
        let keep = if parents {
            let p = if entry.meta.is_dir() {
                m.clone()
            } else {
                m.parent().map(Path::to_path_buf).unwrap_or_default()
            };
            p.to_string_lossy().trim_start_matches('/').to_string()
        } else {
            String::new()
        };
        let joined = |rel: &str| -> String {
            match (keep.is_empty(), rel.is_empty()) {
                (true, _) => rel.to_string(),
                (false, true) => keep.clone(),
                (false, false) => format!("{keep}/{rel}"),
            }
        };
        if entry.meta.is_dir() {
            let mut list = Vec::new();
            for e in sv.walk(&resolved).map_err(|e| e.to_string())? {
                let rel = e
                    .image_path
                    .strip_prefix(&resolved)
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                list.push((e.real.clone(), joined(&rel), e.meta.is_dir()));
            }
            out.push((true, list));
        } else {
            let name = m
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((false, vec![(entry.real.clone(), joined(&name), false)]));
        }
    }
    Ok(out)
}

/// Where RUN steps in single-id mode find [`APT_SINGLE_ID_CONF`] (a read-only bind mount on a
/// mount point of the run's skeleton, so neither is in the committed layer), named by
/// `APT_CONFIG`, which apt reads besides `/etc/apt/apt.conf{,.d}`.
pub const APT_SINGLE_ID_PATH: &str = "/run/hoist/apt-single-id.conf";

/// apt's setting that keeps its download methods as root instead of switching to `_apt`
/// (Charliecloud's `ch-image --force` writes the same into the image; hoist does not).
pub const APT_SINGLE_ID_CONF: &str = "APT::Sandbox::User \"root\";\n";
