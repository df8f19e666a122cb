//! Promoting through a cluster (DESIGN.md §2): resolve and check, create the `Promotion`, claim
//! the Stage, run the steps here with progress persisted on the Promotion after every step, and
//! record the result on the Promotion, the Stage and the Freight.
//!
//! **Claim and lease.** One Promotion runs per Stage: the runner writes
//! `Stage.status.currentPromotion` with a `resourceVersion` precondition, so of two runners only
//! one wins. The running Promotion carries a lease (annotations `promote.dev/lease-holder` and
//! `promote.dev/lease-expires`), renewed while it runs; a Stage whose current Promotion is
//! finished, gone, or whose lease ran out is free (the abandoned Promotion is marked `Aborted`
//! when another one takes over, or continued with `kubectl promote resume`).
//!
//! **Resume.** Steps that write outside this machine (`git-push`, `git-open-pr`,
//! `argocd-update`) and were recorded as done are not run again; local steps are replayed (a
//! re-clone sees the pushed commit, so the edits change nothing and the commit is skipped).

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use promote_api::keys::{ABORT, CREATE_ACTOR, LEASE_EXPIRES, LEASE_HOLDER, STAGE};
use promote_api::types::{
    Freight, FreightCollection, Promotion, PromotionPhase, PromotionStep, PromotionTask, Stage,
    StepExecutionMetadata,
};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::git::MirrorOptions;
use crate::interrupt;
use crate::kube::{Kube, kargo_path};
use crate::local::{self, Manifests};
use crate::output::{StderrProgress, Summary};
use crate::runner::{self, Progress, Recorded, StepRecord};
use crate::steps::{ClusterAccess, PromotionContext, Runtime};

/// Default lease: a runner that stops renewing frees its Stage after this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// What a cluster promotion needs besides the connection.
pub struct Options {
    /// Project (namespace).
    pub namespace: String,
    /// Queue behind a running Promotion instead of failing fast.
    pub wait: bool,
    /// Budget for the whole promotion (queueing and waiting for Argo CD included).
    pub timeout: Duration,
    /// Show what would happen; write nothing.
    pub dry_run: bool,
    /// Git mirror cache.
    pub cache_dir: PathBuf,
    /// No progress on stderr.
    pub quiet: bool,
    /// Lease length (`PROMOTE_LEASE_TTL` seconds overrides the default).
    pub lease_ttl: Duration,
    /// Actor when the server cannot say who we are.
    pub actor_fallback: Option<String>,
}

fn typed<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::Cluster(format!("cannot read {what}: {e}")))
}

/// The lease a Promotion carries: (holder, expiry).
fn lease(p: &Promotion) -> (String, Option<jiff::Timestamp>) {
    let a = p.metadata.annotations.clone().unwrap_or_default();
    (
        a.get(LEASE_HOLDER).cloned().unwrap_or_default(),
        a.get(LEASE_EXPIRES).and_then(|t| t.parse().ok()),
    )
}

fn lease_valid(p: &Promotion) -> bool {
    matches!(lease(p), (_, Some(exp)) if exp > jiff::Timestamp::now())
}

/// Who this process is, for the lease.
fn holder(actor: Option<&str>) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!(
        "{}@{host}/{}",
        actor.unwrap_or("unknown"),
        std::process::id()
    )
}

/// Install the Ctrl-C handler: the first stops the promotion cleanly, the second exits at once.
pub fn install_interrupt(kube: &Kube) {
    kube.spawn(async {
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            if interrupt::requested().is_some() {
                eprintln!("interrupted again: exiting now (the lease expires on its own)");
                std::process::exit(130);
            }
            eprintln!(
                "interrupt: stopping the promotion after recording its state (Ctrl-C again to quit at once)"
            );
            interrupt::request(interrupt::Stop::Interrupted);
        }
    });
}

/// The session: a connection, a project, an actor.
pub struct Session<'k> {
    /// The API.
    pub kube: &'k Kube,
    /// Options.
    pub opts: Options,
    /// The user the server says we are.
    pub actor: Option<String>,
    holder: String,
    /// The project's Git credentials, read once per session (`--downstream-from` runs several
    /// promotions).
    credentials: std::sync::OnceLock<std::sync::Arc<Vec<crate::credentials::ProjectCredential>>>,
    started: Instant,
}

impl<'k> Session<'k> {
    /// Open a session (asks the server who we are: one request).
    pub fn new(kube: &'k Kube, opts: Options) -> Result<Self, Error> {
        let actor = kube
            .whoami()
            .map_err(crate::kube::context("asking the API server who you are"))?
            .or_else(|| opts.actor_fallback.clone());
        let holder = holder(actor.as_deref());
        Ok(Self {
            kube,
            opts,
            actor,
            holder,
            credentials: std::sync::OnceLock::new(),
            started: Instant::now(),
        })
    }

    fn ns(&self) -> &str {
        &self.opts.namespace
    }

    fn deadline(&self) -> Instant {
        self.started + self.opts.timeout
    }

    fn path(&self, plural: &str, name: &str) -> String {
        kargo_path(plural, self.ns(), name)
    }

    fn get_stage(&self, name: &str) -> Result<(Stage, Value), Error> {
        match self
            .kube
            .get(&self.path("stages", name))
            .map_err(crate::kube::context(format!("reading Stage {name}")))?
        {
            Some(v) => Ok((typed(v.clone(), &format!("Stage {name}"))?, v)),
            None => {
                let available = self
                    .kube
                    .list(&self.path("stages", ""), None)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| s.pointer("/metadata/name").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect();
                Err(Error::StageNotFound {
                    stage: name.to_owned(),
                    project: self.ns().to_owned(),
                    available,
                })
            }
        }
    }

    fn get_promotion(&self, name: &str) -> Result<Option<Promotion>, Error> {
        self.kube
            .get(&self.path("promotions", name))
            .map_err(crate::kube::context(format!("reading Promotion {name}")))?
            .map(|v| typed(v, &format!("Promotion {name}")))
            .transpose()
    }

    /// Freight candidates: one GET for a full name, else a LIST (by alias label when asked).
    fn freight_candidates(
        &self,
        name: Option<&str>,
        alias: Option<&str>,
    ) -> Result<Vec<Freight>, Error> {
        if let Some(n) = name.filter(|n| n.len() == 40 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            && let Some(v) = self
                .kube
                .get(&self.path("freights", n))
                .map_err(crate::kube::context(format!("reading Freight {n}")))?
        {
            return Ok(vec![typed(v, &format!("Freight {n}"))?]);
        }
        let selector = alias.map(|a| format!("{}={a}", promote_api::keys::ALIAS));
        self.kube
            .list(&self.path("freights", ""), selector.as_deref())
            .map_err(crate::kube::context("listing Freight"))?
            .into_iter()
            .map(|v| typed(v, "Freight"))
            .collect()
    }

    /// What the Stage's template needs: the project's Stages (legacy upstream origins) and
    /// PromotionTasks (task references), each listed only when needed.
    fn template_inputs(&self, stage: &Stage) -> Result<(Vec<Stage>, Vec<PromotionTask>), Error> {
        let stages = if promote_api::legacy::is_legacy(stage) {
            self.kube
                .list(&self.path("stages", ""), None)
                .map_err(crate::kube::context("listing Stages"))?
                .into_iter()
                .map(|v| typed(v, "Stage"))
                .collect::<Result<Vec<Stage>, _>>()?
        } else {
            vec![stage.clone()]
        };
        let tasks = if stage.template_steps().iter().any(|s| s.task.is_some()) {
            self.kube
                .list(&self.path("promotiontasks", ""), None)
                .map_err(crate::kube::context("listing PromotionTasks"))?
                .into_iter()
                .map(|v| typed(v, "PromotionTask"))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        Ok((stages, tasks))
    }

    /// Whether the Stage's current Promotion (other than `mine`) still holds it.
    fn holder_of_stage(&self, stage: &Stage, mine: &str) -> Result<Option<Promotion>, Error> {
        let Some(cur) = stage
            .status
            .as_ref()
            .and_then(|s| s.current_promotion.as_ref())
            .filter(|c| !c.name.is_empty() && c.name != mine)
        else {
            return Ok(None);
        };
        let Some(p) = self.get_promotion(&cur.name)? else {
            return Ok(None);
        };
        if p.phase().is_terminal() {
            return Ok(None);
        }
        if lease_valid(&p) {
            return Ok(Some(p));
        }
        // Abandoned: its runner stopped renewing. Close it so nobody resumes it over ours.
        let (h, exp) = lease(&p);
        let msg = format!(
            "abandoned: the lease of {} expired at {}; the Stage was taken over by Promotion {mine}",
            if h.is_empty() { "its runner" } else { &h },
            exp.map(crate::kube::timestamp)
                .unwrap_or_else(|| "(never set)".into())
        );
        self.kube
            .merge_patch(
                &format!("{}/status", self.path("promotions", p.name())),
                &json!({"status": {"phase": "Aborted", "message": msg, "finishedAt": crate::kube::now()}}),
            )
            .map_err(crate::kube::context(format!("closing abandoned Promotion {}", p.name())))?;
        if !self.opts.quiet {
            eprintln!("Promotion {} was {msg}", p.name());
        }
        Ok(None)
    }

    fn busy(&self, stage: &Stage, p: &Promotion) -> Error {
        let (h, exp) = lease(p);
        Error::StageBusy {
            stage: stage.name().to_owned(),
            project: self.ns().to_owned(),
            running: p.name().to_owned(),
            phase: p.phase().to_string(),
            holder: format!(
                "run by {}, lease until {}",
                if h.is_empty() { "unknown" } else { &h },
                exp.map(crate::kube::timestamp).unwrap_or_default()
            ),
        }
    }

    /// Wait (with `--wait`) until the Stage is free; returns the fresh Stage.
    fn wait_free(&self, mut stage: Stage, mine: &str) -> Result<Stage, Error> {
        let mut said = String::new();
        while let Some(p) = self.holder_of_stage(&stage, mine)? {
            if !self.opts.wait {
                return Err(self.busy(&stage, &p));
            }
            if interrupt::requested().is_some() {
                return Err(Error::Cluster(
                    "interrupted while waiting for the Stage".into(),
                ));
            }
            if Instant::now() >= self.deadline() {
                return Err(Error::Cluster(format!(
                    "timed out after {}s waiting for Promotion {} to free Stage {}",
                    self.opts.timeout.as_secs(),
                    p.name(),
                    stage.name()
                )));
            }
            if said != p.name() && !self.opts.quiet {
                eprintln!(
                    "Stage {} is busy with Promotion {} ({}); waiting (--wait)",
                    stage.name(),
                    p.name(),
                    p.phase()
                );
                said = p.name().to_owned();
            }
            std::thread::sleep(Duration::from_millis(500));
            stage = match self.kube.poll(&self.path("stages", stage.name())).map_err(
                crate::kube::context(format!("reading Stage {}", stage.name())),
            )? {
                Some(v) => typed(v, "Stage")?,
                None => {
                    return Err(Error::StageNotFound {
                        stage: stage.name().to_owned(),
                        project: self.ns().to_owned(),
                        available: vec![],
                    });
                }
            };
        }
        Ok(stage)
    }

    /// Make `promotion` the Stage's current Promotion (resourceVersion-guarded); waits or fails
    /// when another holds it. Returns the Stage as written.
    fn claim(
        &self,
        mut stage: Stage,
        promotion: &Promotion,
        freight: &Freight,
    ) -> Result<Stage, Error> {
        loop {
            stage = self.wait_free(stage, promotion.name())?;
            let already = stage
                .status
                .as_ref()
                .and_then(|s| s.current_promotion.as_ref())
                .is_some_and(|c| c.name == promotion.name());
            if already {
                return Ok(stage);
            }
            let patch = json!({
                "metadata": {"resourceVersion": stage.metadata.resource_version},
                "status": {"currentPromotion": {
                    "name": promotion.name(),
                    "freight": freight.reference(),
                }},
            });
            match self.kube.merge_patch(
                &format!("{}/status", self.path("stages", stage.name())),
                &patch,
            ) {
                Ok(v) => return typed(v, "Stage"),
                Err(e) if e.conflict() => {
                    stage = self.get_stage(stage.name())?.0;
                }
                Err(e) => {
                    return Err(crate::kube::context(format!(
                        "claiming Stage {}",
                        stage.name()
                    ))(e));
                }
            }
        }
    }
}

/// What `resume --dry-run` shows: each step, run again or skipped as recorded.
fn resume_plan(p: &Promotion) -> Summary {
    let status = p.status.clone().unwrap_or_default();
    let recorded = |alias: &str| {
        status
            .step_execution_metadata
            .iter()
            .find(|m| m.alias == alias)
            .and_then(|m| m.status)
            .map(|s| json!(s).as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    let steps = p
        .spec
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let alias = step.effective_alias(i);
            let done = recorded(&alias);
            let skip = done == "Succeeded" && runner::REMOTE_STEPS.contains(&step.uses.as_str());
            StepRecord {
                uses: step.uses.clone(),
                status: if skip { "Skipped" } else { "Pending" }.into(),
                message: if skip {
                    "would not run again: recorded as done".into()
                } else if done.is_empty() {
                    "would run".into()
                } else {
                    format!("would run again (recorded {done})")
                },
                alias,
                duration_ms: 0,
            }
        })
        .collect();
    Summary {
        promotion: p.name().to_owned(),
        project: p.project().to_owned(),
        stage: p.spec.stage.clone(),
        freight: p.spec.freight.clone(),
        freight_alias: None,
        phase: "Succeeded".into(),
        message: format!(
            "dry run: Promotion is {} with its lease expired; resume would take it over",
            p.phase()
        ),
        dry_run: true,
        steps,
        commits: Vec::new(),
        applications: Vec::new(),
        diff: String::new(),
        object: None,
    }
}

/// Progress that also records each finished step on the Promotion.
struct Recording<'a, 'k> {
    inner: StderrProgress,
    session: &'a Session<'k>,
    status_path: String,
    meta: Vec<StepExecutionMetadata>,
    started_at: Option<String>,
    failures: Vec<String>,
}

fn step_status(s: &str) -> Option<promote_api::types::PromotionStepStatus> {
    serde_json::from_value(json!(s)).ok()
}

impl Progress for Recording<'_, '_> {
    fn start(&mut self, index: usize, total: usize, alias: &str, uses: &str) {
        self.started_at = Some(crate::kube::now());
        self.inner.start(index, total, alias, uses);
    }

    fn finish(
        &mut self,
        index: usize,
        total: usize,
        record: &StepRecord,
        outputs: &Map<String, Value>,
    ) {
        self.inner.finish(index, total, record, outputs);
        let entry = StepExecutionMetadata {
            alias: record.alias.clone(),
            started_at: self.started_at.take().and_then(|t| time(&t)),
            finished_at: time(&crate::kube::now()),
            error_count: u32::from(matches!(record.status.as_str(), "Failed" | "Errored")),
            status: step_status(&record.status),
            message: record.message.clone(),
            continue_on_error: false,
        };
        if index < self.meta.len() {
            self.meta[index] = entry;
        } else {
            self.meta.push(entry);
        }
        let patch = json!({"status": {
            "currentStep": index + 1,
            "stepExecutionMetadata": self.meta,
            "state": outputs,
        }});
        if let Err(e) = self.session.kube.merge_patch(&self.status_path, &patch) {
            let msg = format!(
                "warning: could not record step {} on the Promotion: {e}",
                record.alias
            );
            self.inner.note(&msg);
            self.failures.push(msg);
        }
    }
}

fn time(s: &str) -> Option<promote_api::types::Time> {
    serde_json::from_value(json!(s)).ok()
}

/// Everything a run of a claimed Promotion needs.
struct Run<'a> {
    promotion: Promotion,
    stage: Stage,
    freight: Freight,
    steps: Vec<PromotionStep>,
    vars: Vec<promote_api::types::ExpressionVariable>,
    recorded: &'a [StepExecutionMetadata],
    state: Option<Value>,
}

impl Session<'_> {
    /// `kubectl promote stage/<name> --freight F` against the cluster.
    pub fn promote(
        &self,
        stage_name: &str,
        freight: Option<&str>,
        alias: Option<&str>,
    ) -> Result<Summary, Error> {
        let (stage, _) = self.get_stage(stage_name)?;
        let candidates = self.freight_candidates(freight, alias)?;
        let (stages, tasks) = self.template_inputs(&stage)?;
        let mut m = Manifests {
            stages,
            freight: candidates,
            tasks,
            ..Manifests::default()
        };
        if !m.stages.iter().any(|s| s.name() == stage.name()) {
            m.stages.push(stage.clone());
        }
        let (_, f) = local::prepare(
            &m,
            self.ns(),
            stage_name,
            freight,
            alias,
            jiff::Timestamp::now(),
        )?;
        let f = f.clone();
        let (steps, vars) = local::stage_steps(&stage, &m.stages, &m.tasks)?;
        runner::check_steps(stage_name, &steps)?;
        let name = local::promotion_name(stage_name, f.name())?;
        let object = self.promotion_object(&name, stage_name, f.name(), &steps, &vars);
        if self.opts.dry_run {
            return self.dry_run(object, stage, f, steps, vars);
        }
        // Fail fast (or queue) before writing anything when the Stage is visibly busy.
        let stage = self.wait_free(stage, &name)?;
        let created = self
            .kube
            .create(&self.path("promotions", ""), &object)
            .map_err(crate::kube::context(format!(
                "creating Promotion {name} for Stage {stage_name}"
            )))?;
        let promotion: Promotion = typed(created, "the created Promotion")?;
        if !self.opts.quiet {
            eprintln!(
                "Promotion {} created: Freight {}{} to Stage {}/{stage_name}",
                promotion.name(),
                promote_api::naming::short_name(f.name()),
                f.alias().map(|a| format!(" ({a})")).unwrap_or_default(),
                self.ns()
            );
        }
        let stage = match self.claim(stage, &promotion, &f) {
            Ok(s) => s,
            Err(e) => {
                // Lost the race (or timed out queueing): ours never ran; close it honestly.
                let _ = self.kube.merge_patch(
                    &format!("{}/status", self.path("promotions", promotion.name())),
                    &json!({"status": {"phase": "Aborted", "message": format!("not started: {e}"), "finishedAt": crate::kube::now()}}),
                );
                return Err(e);
            }
        };
        // The server's copy is authoritative: the webhook re-derives steps and vars.
        let steps = promotion.spec.steps.clone();
        let vars = promotion.spec.vars.clone();
        self.run(Run {
            promotion,
            stage,
            freight: f,
            steps,
            vars,
            recorded: &[],
            state: None,
        })
    }

    /// `kubectl promote resume PROMOTION`: take over an interrupted Promotion.
    pub fn resume(&self, name: &str) -> Result<Summary, Error> {
        let Some(promotion) = self.get_promotion(name)? else {
            return Err(Error::PromotionState {
                promotion: name.to_owned(),
                problem: format!("not found in project \"{}\"", self.ns()),
                hint: "list them with kubectl promote get promotions".into(),
            });
        };
        if promotion.phase().is_terminal() {
            return Err(Error::PromotionState {
                promotion: name.to_owned(),
                problem: format!("is already {}: nothing to resume", promotion.phase()),
                hint: format!(
                    "start a new one with kubectl promote stage/{} --freight {}",
                    promotion.spec.stage,
                    promote_api::naming::short_name(&promotion.spec.freight)
                ),
            });
        }
        if lease_valid(&promotion) {
            let (h, exp) = lease(&promotion);
            return Err(Error::PromotionState {
                promotion: name.to_owned(),
                problem: format!(
                    "is still being run by {h} (lease until {})",
                    exp.map(crate::kube::timestamp).unwrap_or_default()
                ),
                hint: "wait for it; a runner that stopped frees it when its lease expires".into(),
            });
        }
        if self.opts.dry_run {
            return Ok(resume_plan(&promotion));
        }
        // Take the lease, guarded by resourceVersion so two resumers cannot both win.
        let expires = crate::kube::timestamp(jiff::Timestamp::now() + self.opts.lease_ttl);
        let taken = self
            .kube
            .merge_patch(
                &self.path("promotions", name),
                &json!({"metadata": {"resourceVersion": promotion.metadata.resource_version,
                    "annotations": {LEASE_HOLDER: self.holder, LEASE_EXPIRES: expires}}}),
            )
            .map_err(|e| {
                if e.conflict() {
                    Error::PromotionState {
                        promotion: name.to_owned(),
                        problem: "was taken over by someone else just now".into(),
                        hint: "check with kubectl promote get promotions".into(),
                    }
                } else {
                    crate::kube::context(format!("taking over Promotion {name}"))(e)
                }
            })?;
        let promotion: Promotion = typed(taken, "Promotion")?;
        let (stage, _) = self.get_stage(&promotion.spec.stage)?;
        let freight = self
            .freight_candidates(Some(&promotion.spec.freight), None)?
            .into_iter()
            .find(|f| f.name() == promotion.spec.freight)
            .ok_or_else(|| Error::FreightNotFound {
                what: format!("named \"{}\"", promotion.spec.freight),
                project: self.ns().to_owned(),
                available: vec![],
            })?;
        let stage = self.claim(stage, &promotion, &freight)?;
        let status = promotion.status.clone().unwrap_or_default();
        if !self.opts.quiet {
            eprintln!(
                "Resuming Promotion {name} (Stage {}, {} of {} steps recorded)",
                promotion.spec.stage,
                status.step_execution_metadata.len(),
                promotion.spec.steps.len()
            );
        }
        let steps = promotion.spec.steps.clone();
        let vars = promotion.spec.vars.clone();
        self.run(Run {
            promotion,
            stage,
            freight,
            steps,
            vars,
            recorded: &status.step_execution_metadata,
            state: status.state.clone(),
        })
    }

    fn promotion_object(
        &self,
        name: &str,
        stage: &str,
        freight: &str,
        steps: &[PromotionStep],
        vars: &[promote_api::types::ExpressionVariable],
    ) -> Value {
        let mut annotations = Map::new();
        if let Some(a) = &self.actor {
            annotations.insert(CREATE_ACTOR.into(), json!(format!("kubernetes:{a}")));
        }
        annotations.insert(LEASE_HOLDER.into(), json!(self.holder));
        annotations.insert(
            LEASE_EXPIRES.into(),
            json!(crate::kube::timestamp(
                jiff::Timestamp::now() + self.opts.lease_ttl
            )),
        );
        annotations.insert(STAGE.into(), json!(stage));
        let label = promote_api::naming::stage_label(stage);
        json!({
            "apiVersion": promote_api::API_VERSION,
            "kind": "Promotion",
            "metadata": {
                "name": name,
                "namespace": self.ns(),
                "labels": {STAGE: label},
                "annotations": annotations,
            },
            "spec": {"stage": stage, "freight": freight, "vars": vars, "steps": steps},
        })
    }

    /// The project's Kargo Git credentials (Secrets labelled `kargo.akuity.io/cred-type: git`).
    /// Reading them needs `list` on Secrets in the project (`promote-credentials-reader`); without
    /// it the user's own credentials are used.
    fn project_credentials(&self) -> Vec<crate::credentials::ProjectCredential> {
        let selector = format!("{}=git", promote_api::keys::CRED_TYPE);
        match self.kube.list(
            &format!("/api/v1/namespaces/{}/secrets", self.ns()),
            Some(&selector),
        ) {
            Ok(items) => items
                .iter()
                .filter_map(crate::credentials::ProjectCredential::from_secret)
                .collect(),
            // Promoters usually may not read Secrets (403): their own Git credentials apply.
            Err(e) if e.code == 403 || e.code == 404 => Vec::new(),
            Err(e) => {
                if !self.opts.quiet {
                    eprintln!(
                        "warning: cannot read the project's Git credential Secrets ({e}); your own Git credentials apply"
                    );
                }
                Vec::new()
            }
        }
    }

    fn runtime_for<'c>(&'c self, ctx: &'c PromotionContext, dry_run: bool) -> Runtime<'c> {
        let mut rt = Runtime::new(
            ctx,
            MirrorOptions {
                cache_root: self.opts.cache_dir.clone(),
                project_credentials: self
                    .credentials
                    .get_or_init(|| std::sync::Arc::new(self.project_credentials()))
                    .clone(),
                ..Default::default()
            },
            dry_run,
        );
        rt.quiet = self.opts.quiet;
        rt.cluster = Some(ClusterAccess {
            kube: self.kube,
            deadline: self.deadline(),
            timeout: self.opts.timeout,
        });
        rt
    }

    fn dry_run(
        &self,
        object: Value,
        stage: Stage,
        freight: Freight,
        steps: Vec<PromotionStep>,
        vars: Vec<promote_api::types::ExpressionVariable>,
    ) -> Result<Summary, Error> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ctx = PromotionContext {
            project: self.ns().to_owned(),
            stage: stage.name().to_owned(),
            promotion: name.clone(),
            collection: local::collection(&stage, &freight),
            target_freight: freight.clone(),
            actor: self.actor.clone(),
        };
        let mut rt = self.runtime_for(&ctx, true);
        let mut progress = StderrProgress::new(self.opts.quiet);
        progress.note(&format!(
            "Dry run: would create Promotion {name} (Freight {} to Stage {}/{})",
            promote_api::naming::short_name(freight.name()),
            self.ns(),
            stage.name()
        ));
        let result = runner::run_steps(stage.name(), &steps, &vars, &mut rt, &mut progress)?;
        drop(progress);
        let mut summary = crate::promote::summarize(&rt, result, true)?;
        summary.promotion = name;
        summary.project = self.ns().to_owned();
        summary.stage = stage.name().to_owned();
        summary.freight = freight.name().to_owned();
        summary.freight_alias = freight.alias().map(str::to_owned);
        summary.object = Some(object);
        Ok(summary)
    }

    fn run(&self, run: Run<'_>) -> Result<Summary, Error> {
        let Run {
            promotion,
            stage,
            freight,
            steps,
            vars,
            recorded,
            state,
        } = run;
        let name = promotion.name().to_owned();
        let status_path = format!("{}/status", self.path("promotions", &name));
        let collection = local::collection(&stage, &freight);
        let started_at = promotion
            .status
            .as_ref()
            .and_then(|s| s.started_at.clone())
            .map(|t| json!(t))
            .unwrap_or_else(|| json!(crate::kube::now()));
        self.kube
            .merge_patch(
                &status_path,
                &json!({"status": {
                    "phase": "Running",
                    "message": format!("running on {}", self.holder),
                    "startedAt": started_at,
                    "freight": freight.reference(),
                    "freightCollection": collection,
                }}),
            )
            .map_err(crate::kube::context(format!("starting Promotion {name}")))?;
        let ctx = PromotionContext {
            project: self.ns().to_owned(),
            stage: stage.name().to_owned(),
            promotion: name.clone(),
            collection: collection.clone(),
            target_freight: freight.clone(),
            actor: promotion.create_actor().map(str::to_owned),
        };
        let mut rt = self.runtime_for(&ctx, false);
        let state_map = state
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for m in recorded {
            rt.recorded.insert(
                m.alias.clone(),
                Recorded {
                    status: m
                        .status
                        .map(|s| json!(s).as_str().unwrap_or_default().to_owned())
                        .unwrap_or_default(),
                    outputs: state_map.get(&m.alias).cloned(),
                },
            );
        }
        let mut progress = Recording {
            inner: StderrProgress::new(self.opts.quiet),
            session: self,
            status_path: status_path.clone(),
            meta: Vec::new(),
            started_at: None,
            failures: Vec::new(),
        };
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let result = std::thread::scope(|scope| {
            scope.spawn(|| self.renew_lease(&name, stop_rx));
            let r = runner::run_steps(stage.name(), &steps, &vars, &mut rt, &mut progress);
            drop(stop_tx);
            r
        });
        let record_failures = std::mem::take(&mut progress.failures);
        drop(progress);
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.finish(
                    &name,
                    &stage,
                    &freight,
                    &collection,
                    PromotionPhase::Errored,
                    &e.to_string(),
                    &[],
                )?;
                return Err(e);
            }
        };
        let mut summary = crate::promote::summarize(&rt, result.clone(), false)?;
        summary.promotion = name.clone();
        summary.project = self.ns().to_owned();
        summary.stage = stage.name().to_owned();
        summary.freight = freight.name().to_owned();
        summary.freight_alias = freight.alias().map(str::to_owned);
        if result.phase == PromotionPhase::Running {
            // Interrupted while a push (or another remote write) was in flight: leave it
            // resumable and free the lease at once.
            let msg = format!(
                "{}; it may or may not have landed: resume with kubectl promote resume {name} -n {}",
                result.message,
                self.ns()
            );
            let _ = self
                .kube
                .merge_patch(&status_path, &json!({"status": {"message": msg}}));
            let _ = self.kube.merge_patch(
                &self.path("promotions", &name),
                &json!({"metadata": {"annotations": {LEASE_EXPIRES: crate::kube::now()}}}),
            );
            summary.phase = "Interrupted".into();
            summary.message = msg;
            return Ok(summary);
        }
        let mut message = result.message.clone();
        if !record_failures.is_empty() {
            message.push_str(&format!(
                " ({} progress write(s) failed)",
                record_failures.len()
            ));
        }
        self.finish(
            &name,
            &stage,
            &freight,
            &collection,
            result.phase,
            &message,
            &rt.app_health,
        )?;
        Ok(summary)
    }

    /// Renew the lease until told to stop; notice `kubectl promote abort`.
    fn renew_lease(&self, name: &str, stop: mpsc::Receiver<()>) {
        let every = (self.opts.lease_ttl / 3).max(Duration::from_millis(500));
        let path = self.path("promotions", name);
        loop {
            match stop.recv_timeout(every) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let patch = json!({"metadata": {"annotations": {
                LEASE_HOLDER: self.holder,
                LEASE_EXPIRES: crate::kube::timestamp(jiff::Timestamp::now() + self.opts.lease_ttl)}}});
            match self.kube.merge_patch(&path, &patch) {
                Ok(v) => {
                    if v.pointer("/metadata/annotations")
                        .and_then(|a| a.get(ABORT))
                        .is_some()
                    {
                        if !self.opts.quiet {
                            eprintln!("Promotion {name}: abort requested; stopping");
                        }
                        interrupt::request(interrupt::Stop::Aborted);
                    }
                }
                Err(e) if e.not_found() => {
                    eprintln!("Promotion {name} was deleted; stopping");
                    interrupt::request(interrupt::Stop::Aborted);
                }
                Err(e) => eprintln!("warning: could not renew the lease on Promotion {name}: {e}"),
            }
        }
    }

    /// Record a finished Promotion on itself, its Stage and its Freight.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        name: &str,
        stage: &Stage,
        freight: &Freight,
        collection: &FreightCollection,
        phase: PromotionPhase,
        message: &str,
        apps: &[Value],
    ) -> Result<(), Error> {
        let finished = crate::kube::now();
        let status_path = format!("{}/status", self.path("promotions", name));
        let mut promo_status =
            json!({"phase": phase.to_string(), "message": message, "finishedAt": finished});
        if !apps.is_empty() {
            promo_status["healthChecks"] = json!([{"uses": "argocd-update", "config": {"apps": apps.iter().map(|a| json!({"name": a["name"], "namespace": a["namespace"]})).collect::<Vec<_>>()}}]);
        }
        let written = self
            .kube
            .merge_patch(&status_path, &json!({"status": promo_status}))
            .map_err(crate::kube::context(format!(
                "recording the result on Promotion {name}"
            )))?;
        let last_status = written.get("status").cloned().unwrap_or(Value::Null);
        let mut stage_status = json!({
            "currentPromotion": null,
            "lastPromotion": {
                "name": name,
                "freight": freight.reference(),
                "status": last_status,
                "finishedAt": finished,
            },
        });
        let succeeded = phase == PromotionPhase::Succeeded;
        if succeeded {
            let mut history: Vec<FreightCollection> = stage
                .status
                .as_ref()
                .map(|s| s.freight_history.clone())
                .unwrap_or_default();
            history.retain(|c| c.id != collection.id);
            history.insert(0, collection.clone());
            history.truncate(10);
            stage_status["freightHistory"] = json!(history);
            let healthy = apps
                .iter()
                .all(|a| a.pointer("/health/status").and_then(Value::as_str) == Some("Healthy"));
            stage_status["health"] = if apps.is_empty() {
                json!({"status": "Unknown", "issues": ["no argocd-update or argocd-wait step: health not observed"]})
            } else if healthy {
                json!({"status": "Healthy", "output": {"applicationStatuses": apps}})
            } else {
                json!({"status": "Unhealthy", "output": {"applicationStatuses": apps}})
            };
        }
        self.kube
            .merge_patch(
                &format!("{}/status", self.path("stages", stage.name())),
                &json!({"status": stage_status}),
            )
            .map_err(crate::kube::context(format!(
                "recording Promotion {name} on Stage {}",
                stage.name()
            )))?;
        if succeeded {
            let mut fstatus = json!({"currentlyIn": {stage.name(): {"since": finished}}});
            fstatus["verifiedIn"] = json!({stage.name(): {"verifiedAt": finished}});
            self.kube
                .merge_patch(
                    &format!("{}/status", self.path("freights", freight.name())),
                    &json!({"status": fstatus}),
                )
                .map_err(crate::kube::context(format!(
                    "recording Stage {} on Freight {}",
                    stage.name(),
                    freight.name()
                )))?;
            // Freight of the same origin that was in the Stage before is not any more.
            let previous = stage
                .status
                .as_ref()
                .and_then(|s| s.freight_history.first())
                .and_then(|c| c.freight.get(&freight.origin.to_string()))
                .map(|r| r.name.clone())
                .filter(|p| !p.is_empty() && p != freight.name());
            if let Some(prev) = previous {
                let _ = self.kube.merge_patch(
                    &format!("{}/status", self.path("freights", &prev)),
                    &json!({"status": {"currentlyIn": {stage.name(): null}}}),
                );
            }
        }
        Ok(())
    }
}
