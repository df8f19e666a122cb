//! Where a promotion's progress and result go. [`Terminal`] only shows them (`--local`, and the
//! cluster's `--dry-run`); [`ClusterRecorder`] creates or takes over the Promotion, claims the
//! Stage, records every step on the Promotion and the result on the Promotion, the Stage and the
//! Freight.
//!
//! Every status write promote makes is one function here, with typed arguments: [`started`],
//! [`step`], [`interrupted`], [`aborted`], [`claimed`], [`finished`], [`stage_freed`],
//! [`approved`]. `kubectl promote abort` and `approve` use them too.

use std::collections::BTreeMap;
use std::time::Duration;

use promote_api::keys::{CREATE_ACTOR, STAGE};
use promote_api::types::{
    ExpressionVariable, Freight, FreightCollection, Promotion, PromotionPhase, PromotionStep,
    PromotionStepStatus, Stage, StepExecutionMetadata, Time,
};
use serde_json::{Map, Value, json};

use super::lease::{self, Claim, Renewal};
use super::plan::Plan;
use super::{Identity, Settings};
use crate::error::{Error, context, decode};
use crate::kube::{Api, ApiFailure, kargo_path, now};
use crate::output::{Outcome, StderrProgress, Summary};
use crate::runner::{Progress, RunResult, StepRecord};
use crate::steps::{Recorded, Runtime};

/// What a recorder started: the Promotion the steps run for.
#[derive(Clone, Debug, Default)]
pub struct Begun {
    /// The Promotion's name.
    pub name: String,
    /// The steps to run (the server's copy when there is one: the webhook re-derives them).
    pub steps: Vec<PromotionStep>,
    /// Promotion-level vars.
    pub vars: Vec<ExpressionVariable>,
    /// The human behind it (`ctx.meta.promotion.actor`).
    pub actor: Option<String>,
    /// What an interrupted earlier run recorded, by step alias (resume).
    pub recorded: BTreeMap<String, Recorded>,
    /// The Promotion a dry run would create.
    pub object: Option<Value>,
}

/// Receives a promotion's progress and result.
pub trait Recorder<'k>: Progress {
    /// Before any step runs.
    fn begin(&mut self, plan: &Plan) -> Result<Begun, Error>;
    /// The lease renewal to run beside the steps, if this recorder holds a lease.
    fn lease(&self) -> Option<Renewal<'k>> {
        None
    }
    /// The steps could not run at all (`error`); record it.
    fn abandon(&mut self, plan: &Plan, begun: &Begun, error: &Error) -> Result<(), Error>;
    /// The steps ran; record the result (and adjust the summary to what was recorded).
    fn close(
        &mut self,
        plan: &Plan,
        begun: &Begun,
        result: &RunResult,
        rt: &Runtime<'_>,
        summary: &mut Summary,
    ) -> Result<(), Error>;
}

fn short_freight(f: &Freight) -> String {
    format!(
        "{}{}",
        promote_api::naming::short_name(f.name()),
        f.alias().map(|a| format!(" ({a})")).unwrap_or_default()
    )
}

/// Shows progress on stderr and writes nothing.
pub struct Terminal {
    progress: StderrProgress,
    mode: Mode,
}

enum Mode {
    /// `--local`: the actor is the local user.
    Local {
        actor: Option<String>,
        dry_run: bool,
    },
    /// A cluster's `--dry-run`: shows the Promotion it would create.
    ClusterDryRun { identity: Identity, ttl: Duration },
}

impl Terminal {
    /// For `--local`.
    pub fn local(settings: &Settings, actor: Option<String>) -> Self {
        Self {
            progress: StderrProgress::new(settings.quiet),
            mode: Mode::Local {
                actor,
                dry_run: settings.dry_run,
            },
        }
    }

    /// For a cluster's `--dry-run`.
    pub fn cluster_dry_run(settings: &Settings, identity: Identity) -> Self {
        Self {
            progress: StderrProgress::new(settings.quiet),
            mode: Mode::ClusterDryRun {
                identity,
                ttl: settings.lease_ttl,
            },
        }
    }
}

impl Progress for Terminal {
    fn start(&mut self, index: usize, total: usize, alias: &str, uses: &str) {
        self.progress.start(index, total, alias, uses);
    }
    fn finish(&mut self, i: usize, n: usize, r: &StepRecord, outputs: &Map<String, Value>) {
        self.progress.finish(i, n, r, outputs);
    }
}

impl Recorder<'_> for Terminal {
    fn begin(&mut self, plan: &Plan) -> Result<Begun, Error> {
        let mut begun = Begun {
            name: plan.name.clone(),
            steps: plan.steps.clone(),
            vars: plan.vars.clone(),
            ..Begun::default()
        };
        match &self.mode {
            Mode::Local { actor, dry_run } => {
                self.progress.note(&format!(
                    "Promoting Freight {} to Stage {}/{} ({}){}",
                    short_freight(&plan.freight),
                    plan.project,
                    plan.stage.name(),
                    plan.name,
                    if *dry_run { ", dry run" } else { "" }
                ));
                begun.actor = actor.clone();
            }
            Mode::ClusterDryRun { identity, ttl } => {
                self.progress.note(&format!(
                    "Dry run: would create Promotion {} (Freight {} to Stage {}/{})",
                    plan.name,
                    promote_api::naming::short_name(plan.freight.name()),
                    plan.project,
                    plan.stage.name()
                ));
                begun.actor = identity.actor.clone();
                begun.object = Some(promotion_object(plan, identity, *ttl));
            }
        }
        Ok(begun)
    }

    fn abandon(&mut self, _: &Plan, _: &Begun, _: &Error) -> Result<(), Error> {
        self.progress.done();
        Ok(())
    }

    fn close(
        &mut self,
        _: &Plan,
        _: &Begun,
        _: &RunResult,
        _: &Runtime<'_>,
        _: &mut Summary,
    ) -> Result<(), Error> {
        self.progress.done();
        Ok(())
    }
}

/// The Promotion object for a plan, as created (and as a dry run shows it).
pub fn promotion_object(plan: &Plan, identity: &Identity, ttl: Duration) -> Value {
    let mut annotations = Map::new();
    if let Some(a) = &identity.actor {
        annotations.insert(CREATE_ACTOR.into(), json!(format!("kubernetes:{a}")));
    }
    if let Value::Object(lease) = lease::annotations(&identity.holder, ttl) {
        annotations.extend(lease);
    }
    let stage = plan.stage.name();
    annotations.insert(STAGE.into(), json!(stage));
    json!({
        "apiVersion": promote_api::API_VERSION,
        "kind": "Promotion",
        "metadata": {
            "name": plan.name,
            "namespace": plan.project,
            "labels": {STAGE: promote_api::naming::stage_label(stage)},
            "annotations": annotations,
        },
        "spec": {"stage": stage, "freight": plan.freight.name(), "vars": plan.vars, "steps": plan.steps},
    })
}

/// Records on the cluster.
pub struct ClusterRecorder<'k> {
    api: &'k dyn Api,
    claim: Claim<'k>,
    identity: Identity,
    ttl: Duration,
    quiet: bool,
    progress: StderrProgress,
    meta: Vec<StepExecutionMetadata>,
    step_started: Option<Time>,
    failures: Vec<String>,
    name: String,
    /// The Stage as claimed (its history is what `finished` extends).
    stage: Option<Stage>,
    /// The Promotion's uid and creation time (its Events name it).
    promotion_meta: (String, String),
    /// Whether an Event could not be recorded (said once).
    events_refused: std::cell::Cell<bool>,
}

impl<'k> ClusterRecorder<'k> {
    /// A recorder for promotions in `project`.
    pub fn new(api: &'k dyn Api, project: &str, settings: &Settings, identity: Identity) -> Self {
        Self {
            api,
            claim: Claim {
                api,
                project: project.to_owned(),
                wait: settings.wait,
                deadline: settings.deadline,
                timeout: settings.timeout,
                poll_every: settings.poll_every,
                quiet: settings.quiet,
            },
            identity,
            ttl: settings.lease_ttl,
            quiet: settings.quiet,
            progress: StderrProgress::new(settings.quiet),
            meta: Vec::new(),
            step_started: None,
            failures: Vec::new(),
            name: String::new(),
            stage: None,
            promotion_meta: Default::default(),
            events_refused: std::cell::Cell::new(false),
        }
    }

    /// Record a Kubernetes Event on the Promotion, as Kargo does (`promote_api::events`). Best
    /// effort: a refusal (no `create` on events) is said once and changes nothing else.
    fn event(&self, plan: &Plan, reason: &str, message: &str, apps: &[Value]) {
        let stage = self.stage.as_ref().unwrap_or(&plan.stage);
        let applications: Vec<(String, String)> = apps
            .iter()
            .map(|a| {
                (
                    promote_api::argocd::app_namespace(a).to_owned(),
                    promote_api::argocd::app_name(a).to_owned(),
                )
            })
            .collect();
        let actor = match &self.identity.actor {
            Some(user) => format!("kubernetes:{user}"),
            None => "unknown actor".to_owned(),
        };
        let now = crate::kube::now();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let event = promote_api::events::promotion_event(&promote_api::events::PromotionEvent {
            reason,
            message,
            project: self.project(),
            promotion: &self.name,
            uid: &self.promotion_meta.0,
            created: &self.promotion_meta.1,
            stage: stage.name(),
            freight: &plan.freight,
            actor: &actor,
            applications: &applications,
            verification_pending: (reason == "PromotionSucceeded")
                .then(|| promote_api::stage_status::asks_verification(stage)),
            now: &now,
            suffix: &format!("{nanos:x}"),
        });
        let path = format!("/api/v1/namespaces/{}/events", self.project());
        if let Err(e) = self.api.create(&path, &event)
            && !self.events_refused.replace(true)
        {
            self.say(&format!(
                "note: the Promotion's Events were not recorded ({e}); hint: promote-promoter grants create on events"
            ));
        }
    }

    fn project(&self) -> &str {
        &self.claim.project
    }

    fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Create the Promotion and claim the Stage for it.
    fn create(&mut self, plan: &Plan) -> Result<Promotion, Error> {
        let object = promotion_object(plan, &self.identity, self.ttl);
        // Fail fast (or queue) before writing anything when the Stage is visibly busy.
        let stage = self.claim.wait_free(plan.stage.clone(), &plan.name)?;
        let created = self
            .api
            .create(&kargo_path("promotions", self.project(), ""), &object)
            .map_err(context(format!(
                "creating Promotion {} for Stage {}",
                plan.name,
                plan.stage.name()
            )))?;
        let promotion: Promotion = decode(created, "the created Promotion")?;
        self.remember(&promotion);
        self.say(&format!(
            "Promotion {} created: Freight {} to Stage {}/{}",
            promotion.name(),
            short_freight(&plan.freight),
            self.project(),
            plan.stage.name()
        ));
        match self.claim.claim(stage, &promotion, &plan.freight) {
            Ok(s) => {
                self.stage = Some(s);
                let actor = self.identity.actor.as_deref().unwrap_or("unknown actor");
                self.event(
                    plan,
                    "PromotionCreated",
                    &format!(
                        "Promotion created for Stage {:?} by {:?}",
                        plan.stage.name(),
                        format!("kubernetes:{actor}")
                    ),
                    &[],
                );
            }
            Err(e) => {
                // Lost the race (or timed out queueing): ours never ran; close it honestly.
                let _ = aborted(
                    self.api,
                    self.project(),
                    promotion.name(),
                    &format!("not started: {e}"),
                );
                return Err(e);
            }
        }
        Ok(promotion)
    }

    /// Take over an interrupted Promotion and claim its Stage.
    fn take_over(&mut self, plan: &Plan, p: &Promotion) -> Result<Promotion, Error> {
        let promotion = lease::take_over(self.api, p, &self.identity.holder, self.ttl)?;
        self.remember(&promotion);
        self.stage = Some(
            self.claim
                .claim(plan.stage.clone(), &promotion, &plan.freight)?,
        );
        let status = promotion.status.clone().unwrap_or_default();
        self.say(&format!(
            "Resuming Promotion {} (Stage {}, {} of {} steps recorded)",
            promotion.name(),
            promotion.spec.stage,
            status.step_execution_metadata.len(),
            promotion.spec.steps.len()
        ));
        Ok(promotion)
    }

    fn record_finished(
        &self,
        plan: &Plan,
        phase: PromotionPhase,
        message: &str,
        apps: &[Value],
    ) -> Result<(), Error> {
        let stage = self.stage.as_ref().unwrap_or(&plan.stage);
        finished(
            self.api,
            self.project(),
            &self.name,
            stage,
            &plan.freight,
            &plan.collection,
            phase,
            message,
            apps,
        )?;
        let text = if message.is_empty() {
            format!("Promotion {phase}")
        } else {
            format!("Promotion {phase}: {message}")
        };
        self.event(plan, &format!("Promotion{phase}"), &text, apps);
        Ok(())
    }

    /// The Promotion's uid and creation time, for its Events.
    fn remember(&mut self, p: &Promotion) {
        self.name = p.name().to_owned();
        self.promotion_meta = (
            p.metadata.uid.clone().unwrap_or_default(),
            p.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
        );
    }
}

impl Progress for ClusterRecorder<'_> {
    fn start(&mut self, index: usize, total: usize, alias: &str, uses: &str) {
        self.step_started = time_now();
        self.progress.start(index, total, alias, uses);
    }

    fn finish(
        &mut self,
        index: usize,
        total: usize,
        record: &StepRecord,
        outputs: &Map<String, Value>,
    ) {
        self.progress.finish(index, total, record, outputs);
        let entry = StepExecutionMetadata {
            alias: record.alias.clone(),
            started_at: self.step_started.take(),
            finished_at: time_now(),
            error_count: u32::from(matches!(
                record.status,
                Some(PromotionStepStatus::Failed | PromotionStepStatus::Errored)
            )),
            status: record.status,
            message: record.message.clone(),
            continue_on_error: false,
        };
        if index < self.meta.len() {
            self.meta[index] = entry;
        } else {
            self.meta.push(entry);
        }
        // Kargo's currentStep: the index of the step running now, the last one once all ran.
        let current = (index + 1).min(total.saturating_sub(1));
        if let Err(e) = step(
            self.api,
            self.project(),
            &self.name,
            current,
            &self.meta,
            outputs,
        ) {
            let msg = format!(
                "warning: could not record step {} on the Promotion: {e}",
                record.alias
            );
            self.progress.note(&msg);
            self.failures.push(msg);
        }
    }
}

impl<'k> Recorder<'k> for ClusterRecorder<'k> {
    fn begin(&mut self, plan: &Plan) -> Result<Begun, Error> {
        let promotion = match &plan.resumed {
            None => self.create(plan)?,
            Some(p) => self.take_over(plan, p)?,
        };
        self.name = promotion.name().to_owned();
        let status = promotion.status.clone().unwrap_or_default();
        started(
            self.api,
            self.project(),
            &self.name,
            &self.identity.holder,
            status.started_at.clone(),
            &plan.freight,
            &plan.collection,
        )
        .map_err(context(format!("starting Promotion {}", self.name)))?;
        let state = status
            .state
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let recorded = status
            .step_execution_metadata
            .iter()
            .map(|m| {
                (
                    m.alias.clone(),
                    Recorded {
                        status: m.status,
                        outputs: state.get(&m.alias).cloned(),
                    },
                )
            })
            .collect();
        Ok(Begun {
            name: self.name.clone(),
            actor: promotion.create_actor().map(str::to_owned),
            // The server's copy is authoritative: the webhook re-derives steps and vars.
            steps: promotion.spec.steps,
            vars: promotion.spec.vars,
            recorded,
            object: None,
        })
    }

    fn lease(&self) -> Option<Renewal<'k>> {
        Some(Renewal {
            api: self.api,
            path: kargo_path("promotions", self.project(), &self.name),
            name: self.name.clone(),
            holder: self.identity.holder.clone(),
            ttl: self.ttl,
            quiet: self.quiet,
        })
    }

    fn abandon(&mut self, plan: &Plan, _: &Begun, error: &Error) -> Result<(), Error> {
        self.progress.done();
        self.record_finished(plan, PromotionPhase::Errored, &error.to_string(), &[])
    }

    fn close(
        &mut self,
        plan: &Plan,
        _: &Begun,
        result: &RunResult,
        rt: &Runtime<'_>,
        summary: &mut Summary,
    ) -> Result<(), Error> {
        self.progress.done();
        if result.phase == PromotionPhase::Running {
            // Interrupted while a push (or another remote write) was in flight: leave it
            // resumable and free the lease at once.
            let msg = format!(
                "{}; it may or may not have landed: resume with kubectl promote resume {} -n {}",
                result.message,
                self.name,
                self.project()
            );
            let _ = interrupted(self.api, self.project(), &self.name, &msg);
            lease::release(self.api, self.project(), &self.name);
            summary.phase = Outcome::Interrupted;
            summary.message = msg;
            return Ok(());
        }
        let mut message = result.message.clone();
        if !self.failures.is_empty() {
            message.push_str(&format!(
                " ({} progress write(s) failed)",
                self.failures.len()
            ));
        }
        self.record_finished(plan, result.phase, &message, &rt.app_health)
    }
}

fn time_now() -> Option<Time> {
    serde_json::from_value(json!(now())).ok()
}

fn status_path(project: &str, plural: &str, name: &str) -> String {
    format!("{}/status", kargo_path(plural, project, name))
}

/// Promotion `name` starts running on `holder` (its first `startedAt` is kept on a resume).
pub fn started(
    api: &dyn Api,
    project: &str,
    name: &str,
    holder: &str,
    started_at: Option<Time>,
    freight: &Freight,
    collection: &FreightCollection,
) -> Result<Value, ApiFailure> {
    let started_at = started_at.map_or_else(|| json!(now()), |t| json!(t));
    api.merge_patch(
        &status_path(project, "promotions", name),
        &json!({"status": {
            "phase": PromotionPhase::Running.to_string(),
            "message": format!("running on {holder}"),
            "startedAt": started_at,
            "freight": freight.reference(),
            "freightCollection": collection,
        }}),
    )
}

/// A step of Promotion `name` finished: `current` is the step that runs next (Kargo's
/// `currentStep`), with every step's record so far, and the outputs.
pub fn step(
    api: &dyn Api,
    project: &str,
    name: &str,
    current: usize,
    meta: &[StepExecutionMetadata],
    outputs: &Map<String, Value>,
) -> Result<Value, ApiFailure> {
    api.merge_patch(
        &status_path(project, "promotions", name),
        &json!({"status": {
            "currentStep": current,
            "stepExecutionMetadata": meta,
            "state": outputs,
        }}),
    )
}

/// Promotion `name` was interrupted during a remote write: it stays `Running`, saying so.
pub fn interrupted(
    api: &dyn Api,
    project: &str,
    name: &str,
    message: &str,
) -> Result<Value, ApiFailure> {
    api.merge_patch(
        &status_path(project, "promotions", name),
        &json!({"status": {"message": message}}),
    )
}

/// Close Promotion `name` as `Aborted` (lost its claim, abandoned, or aborted by a user).
pub fn aborted(
    api: &dyn Api,
    project: &str,
    name: &str,
    message: &str,
) -> Result<Value, ApiFailure> {
    api.merge_patch(
        &status_path(project, "promotions", name),
        &json!({"status": {
            "phase": PromotionPhase::Aborted.to_string(),
            "message": message,
            "finishedAt": now(),
        }}),
    )
}

/// Make Promotion `name` the Stage's current one, if the Stage has not moved on (409 otherwise).
pub fn claimed(
    api: &dyn Api,
    project: &str,
    stage: &Stage,
    name: &str,
    freight: &Freight,
) -> Result<Value, ApiFailure> {
    let conditions = promote_api::stage_status::merged(
        stage,
        promote_api::stage_status::while_promoting(stage, name, "Running", &now()),
        &[],
    );
    api.merge_patch(
        &status_path(project, "stages", stage.name()),
        &json!({
            "metadata": {"resourceVersion": stage.metadata.resource_version},
            "status": {
                "currentPromotion": {"name": name, "freight": freight.reference()},
                "conditions": conditions,
            },
        }),
    )
}

/// Free a Stage whose current Promotion `name` was aborted by a user.
pub fn stage_freed(
    api: &dyn Api,
    project: &str,
    stage: &Stage,
    name: &str,
    freight: &str,
    message: &str,
) -> Result<Value, ApiFailure> {
    let aborted = PromotionPhase::Aborted.to_string();
    let outcome = promote_api::stage_status::Outcome {
        phase: &aborted,
        message,
        health: None,
        verified: false,
    };
    let conditions = promote_api::stage_status::merged(
        stage,
        promote_api::stage_status::after(stage, &outcome, &now()),
        &["Promoting"],
    );
    api.merge_patch(
        &status_path(project, "stages", stage.name()),
        &json!({"status": {"currentPromotion": null, "conditions": conditions, "lastPromotion": {
            "name": name,
            "freight": {"name": freight},
            "status": {"phase": aborted, "message": message},
            "finishedAt": now(),
        }}}),
    )
}

/// The patch approving Freight for `stage` (`kubectl promote approve`).
pub fn approval(stage: &str) -> Value {
    json!({"status": {"approvedFor": {stage: {"approvedAt": now()}}}})
}

/// Approve Freight `freight` for `stage`.
pub fn approved(
    api: &dyn Api,
    project: &str,
    freight: &str,
    stage: &str,
) -> Result<Value, ApiFailure> {
    api.merge_patch(&status_path(project, "freights", freight), &approval(stage))
}

/// How many collections a Stage's `freightHistory` keeps.
pub const HISTORY: usize = 10;

/// Record a finished Promotion on itself, its Stage and (when it succeeded) its Freight.
#[allow(clippy::too_many_arguments)]
pub fn finished(
    api: &dyn Api,
    project: &str,
    name: &str,
    stage: &Stage,
    freight: &Freight,
    collection: &FreightCollection,
    phase: PromotionPhase,
    message: &str,
    apps: &[Value],
) -> Result<(), Error> {
    let finished_at = now();
    let mut promo_status =
        json!({"phase": phase.to_string(), "message": message, "finishedAt": finished_at});
    if !apps.is_empty() {
        promo_status["healthChecks"] = json!([{"uses": "argocd-update", "config": {"apps": apps.iter().map(|a| json!({"name": a["name"], "namespace": a["namespace"]})).collect::<Vec<_>>()}}]);
    }
    let written = api
        .merge_patch(
            &status_path(project, "promotions", name),
            &json!({"status": promo_status}),
        )
        .map_err(context(format!("recording the result on Promotion {name}")))?;
    let last_status = written.get("status").cloned().unwrap_or(Value::Null);
    let mut stage_status = json!({
        "currentPromotion": null,
        "lastPromotion": {
            "name": name,
            "freight": freight.reference(),
            "status": last_status,
            "finishedAt": finished_at,
        },
    });
    let succeeded = phase == PromotionPhase::Succeeded;
    let mut head = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
        .cloned();
    if succeeded {
        head = Some(collection.clone());
        let mut history: Vec<FreightCollection> = stage
            .status
            .as_ref()
            .map(|s| s.freight_history.clone())
            .unwrap_or_default();
        history.retain(|c| c.id != collection.id);
        history.insert(0, collection.clone());
        history.truncate(HISTORY);
        stage_status["freightHistory"] = json!(history);
        let healthy = apps
            .iter()
            .all(|a| a.pointer("/health/status").and_then(Value::as_str) == Some("Healthy"));
        stage_status["health"] = if apps.is_empty() {
            json!({"status": "Unknown", "issues": ["no argocd-update or argocd-wait step: health not observed"]})
        } else if healthy {
            json!({"status": "Healthy", "output": {"applicationStatuses": apps, "checkedAt": finished_at}})
        } else {
            json!({"status": "Unhealthy", "output": {"applicationStatuses": apps, "checkedAt": finished_at}})
        };
    } else {
        // The Freight that ran before may or may not still run (a push may have landed, a sync
        // may have started): the health recorded for it is no longer known to be true.
        let issue = format!(
            "Promotion {name} {phase}: what the Stage runs was not checked since; kubectl promote refresh stage/{} checks it",
            stage.name()
        );
        stage_status["health"] = if apps.is_empty() {
            json!({"status": "Unknown", "issues": [issue]})
        } else {
            let healthy = apps
                .iter()
                .all(|a| a.pointer("/health/status").and_then(Value::as_str) == Some("Healthy"));
            json!({"status": if healthy { "Unknown" } else { "Unhealthy" }, "issues": [issue],
                "output": {"applicationStatuses": apps, "checkedAt": finished_at}})
        };
    }
    // What `kubectl get stages` shows (Kargo's printer columns read these).
    let healthy_apps = apps
        .iter()
        .filter(|a| a.pointer("/health/status").and_then(Value::as_str) == Some("Healthy"))
        .count();
    let phase_text = phase.to_string();
    let outcome = promote_api::stage_status::Outcome {
        phase: &phase_text,
        message,
        health: (!apps.is_empty()).then_some((healthy_apps, apps.len())),
        verified: succeeded && !promote_api::stage_status::asks_verification(stage),
    };
    let conditions = promote_api::stage_status::after(stage, &outcome, &finished_at);
    let ready = conditions
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    stage_status["conditions"] = json!(promote_api::stage_status::merged(
        stage,
        conditions,
        &["Promoting"]
    ));
    stage_status["freightSummary"] = json!(promote_api::stage_status::freight_summary(
        stage.spec.requested_freight.len(),
        head.as_ref()
    ));
    if ready && let Some(g) = stage.metadata.generation {
        stage_status["observedGeneration"] = json!(g);
    }
    // The Freight before the Stage: writing the Stage frees it (currentPromotion), and the next
    // Promotion's sync would then replace the Argo CD state that is this one's evidence for
    // the Freight's status (the webhook's freights/status rule).
    // A failed Freight write still frees the Stage; its error is returned after.
    let mut freight_written = Ok(());
    if succeeded {
        // A Stage that asks for verification (not run by promote) does not verify its Freight.
        let mut freight_status = json!({"currentlyIn": {stage.name(): {"since": finished_at}}});
        if outcome.verified {
            freight_status["verifiedIn"] = json!({stage.name(): {"verifiedAt": finished_at}});
        }
        freight_written = api
            .merge_patch(
                &status_path(project, "freights", freight.name()),
                &json!({ "status": freight_status }),
            )
            .map(drop)
            .map_err(context(format!(
                "recording Stage {} on Freight {}",
                stage.name(),
                freight.name()
            )));
        // Freight of the same origin that was in the Stage before is not any more.
        let previous = stage
            .status
            .as_ref()
            .and_then(|s| s.freight_history.first())
            .and_then(|c| c.freight.get(&freight.origin.to_string()))
            .map(|r| r.name.clone())
            .filter(|p| !p.is_empty() && p != freight.name());
        if let Some(prev) = previous.filter(|_| freight_written.is_ok()) {
            let _ = api.merge_patch(
                &status_path(project, "freights", &prev),
                &json!({"status": {"currentlyIn": {stage.name(): null}}}),
            );
        }
    }
    api.merge_patch(
        &status_path(project, "stages", stage.name()),
        &json!({"status": stage_status}),
    )
    .map_err(context(format!(
        "recording Promotion {name} on Stage {}",
        stage.name()
    )))?;
    freight_written
}
