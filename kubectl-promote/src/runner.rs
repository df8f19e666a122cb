//! Runs a promotion's steps in order: checks every step's config before anything runs, evaluates
//! variables and expressions, honours `if` and `continueOnError`, stores each step's outputs for
//! the next ones, and decides the promotion's phase (Kargo's rules: the worst step status among
//! steps that may not fail; Failed is the user's to fix, Errored is technical).

use std::time::Instant;

use promote_api::types::{ExpressionVariable, PromotionPhase, PromotionStep, PromotionStepStatus};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::expr;
use crate::steps::{self, Runtime, StepStatus};

/// What happened to one step.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The step's alias (`as`, else `step-<n>`).
    pub alias: String,
    /// The step kind.
    pub uses: String,
    /// How it ended; `None` (shown `Pending`) for a step a dry run of `resume` would run.
    #[serde(serialize_with = "status_or_pending")]
    pub status: Option<PromotionStepStatus>,
    /// What it did, or why it failed.
    pub message: String,
    /// How long it took.
    pub duration_ms: u64,
}

impl StepRecord {
    /// The status as shown (`Pending` for a step not run yet).
    pub fn status_text(&self) -> String {
        status_text(self.status)
    }
}

/// A step status as Kargo writes it; `Pending` for none.
pub fn status_text(status: Option<PromotionStepStatus>) -> String {
    match status {
        Some(s) => format!("{s:?}"),
        None => "Pending".to_owned(),
    }
}

fn status_or_pending<S: serde::Serializer>(
    status: &Option<PromotionStepStatus>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&status_text(*status))
}

/// The outcome of running the steps.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Final phase.
    pub phase: PromotionPhase,
    /// Why (the first failure), or a success note.
    pub message: String,
    /// Every step, in order.
    pub steps: Vec<StepRecord>,
}

/// Receives progress as steps run (stderr lines, a progress bar, ...).
pub trait Progress {
    /// A step starts.
    fn start(&mut self, index: usize, total: usize, alias: &str, uses: &str);
    /// A step ended; `outputs` holds every finished step's outputs by alias.
    fn finish(
        &mut self,
        index: usize,
        total: usize,
        record: &StepRecord,
        outputs: &Map<String, Value>,
    );
}

/// Check every step's config shape before running anything.
pub fn check_steps(stage: &str, steps: &[PromotionStep]) -> Result<(), Error> {
    let mut problems = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.task.is_some() {
            problems.push(format!(
                "steps[{i}]: task references must be inflated before running"
            ));
            continue;
        }
        if let Err(errs) = steps::validate_config(&s.uses, s.config.as_ref()) {
            for e in errs {
                problems.push(format!(
                    "steps[{i}] ({}, {}): {e}",
                    s.uses,
                    s.effective_alias(i)
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Steps {
            stage: stage.to_owned(),
            problems,
        })
    }
}

/// Evaluate variables in order: each may use `ctx`, the variables before it and (for step
/// variables) `outputs`.
fn eval_vars(
    base: &Map<String, Value>,
    vars: &[ExpressionVariable],
    rt: &Runtime<'_>,
    outputs: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, expr::ExprError> {
    let mut out = base.clone();
    for v in vars {
        let mut env = Map::new();
        env.insert("ctx".into(), rt.ctx.ctx_value());
        env.insert("vars".into(), Value::Object(out.clone()));
        if let Some(o) = outputs {
            env.insert("outputs".into(), Value::Object(o.clone()));
        }
        let value = expr::eval_template(&v.value, &env, &rt.functions(false))?;
        out.insert(v.name.clone(), value);
    }
    Ok(out)
}

/// Run `steps` with promotion-level `vars` (Stage vars, then template vars).
pub fn run_steps(
    stage: &str,
    steps_list: &[PromotionStep],
    vars: &[ExpressionVariable],
    rt: &mut Runtime<'_>,
    progress: &mut dyn Progress,
) -> Result<RunResult, Error> {
    check_steps(stage, steps_list)?;
    let total = steps_list.len();
    let mut records = Vec::new();
    let promo_vars = match eval_vars(&Map::new(), vars, rt, None) {
        Ok(v) => v,
        Err(e) => {
            return Ok(RunResult {
                phase: PromotionPhase::Failed,
                message: format!("variables: {e}"),
                steps: records,
            });
        }
    };
    let mut failed: Option<(PromotionPhase, String)> = None;
    for (i, step) in steps_list.iter().enumerate() {
        let alias = step.effective_alias(i);
        if let Some(stop) = crate::interrupt::requested()
            && failed.is_none()
        {
            failed = Some((
                PromotionPhase::Aborted,
                format!("{} before step {alias} ({})", stop_text(stop), step.uses),
            ));
        }
        progress.start(i, total, &alias, &step.uses);
        let started = Instant::now();
        let recorded = rt.recorded.get(&alias).cloned();
        if let Some(rec) = recorded
            .as_ref()
            .filter(|r| {
                r.status == Some(PromotionStepStatus::Succeeded) && steps::is_remote(&step.uses)
            })
            .filter(|_| failed.is_none())
        {
            // A recorded remote write is checked before it is trusted where the step knows how
            // (a push: the recorded commit must be on the recorded branch; SECURITY.md).
            let verify = steps::lookup(&step.uses).and_then(|s| s.verify_recorded);
            let verified = match verify {
                Some(verify) => {
                    step_config(step, &alias, &promo_vars, false, false, rt).and_then(|cfg| {
                        verify(
                            cfg.as_ref().unwrap_or(&Value::Null),
                            rec.outputs.as_ref().unwrap_or(&Value::Null),
                            rt,
                        )
                    })
                }
                None => Ok(()),
            };
            if let Err(e) = verified {
                let msg = e.to_string();
                failed = Some((
                    PromotionPhase::Errored,
                    format!("step {alias} ({}): {msg}", step.uses),
                ));
                let record = StepRecord {
                    alias,
                    uses: step.uses.clone(),
                    status: Some(PromotionStepStatus::Errored),
                    message: msg,
                    duration_ms: started.elapsed().as_millis() as u64,
                };
                progress.finish(i, total, &record, &rt.outputs);
                rt.step_statuses
                    .insert(record.alias.clone(), status_text(record.status));
                records.push(record);
                continue;
            }
            if let Some(o) = &rec.outputs {
                rt.outputs.insert(alias.clone(), o.clone());
            }
            let record = StepRecord {
                alias,
                uses: step.uses.clone(),
                status: Some(PromotionStepStatus::Succeeded),
                message: if verify.is_some() {
                    "done before the interruption (recorded on the Promotion, and the commit is on the remote); not run again"
                } else {
                    "done before the interruption (recorded on the Promotion); not run again"
                }
                .into(),
                duration_ms: 0,
            };
            progress.finish(i, total, &record, &rt.outputs);
            rt.step_statuses
                .insert(record.alias.clone(), status_text(record.status));
            records.push(record);
            continue;
        }
        let outcome = if matches!(&failed, Some((PromotionPhase::Aborted, _))) {
            Ok(None)
        } else {
            run_one(step, &alias, &promo_vars, failed.is_some(), rt)
        };
        let (status, message) = match outcome {
            Ok(Some(r)) => {
                let output = match (&r.status, recorded.and_then(|rec| rec.outputs)) {
                    // Replayed after an interruption and nothing left to do: what the first run
                    // produced (e.g. the commit it pushed) is the step's output.
                    (StepStatus::Skipped, Some(Value::Object(o))) if !o.is_empty() => {
                        Value::Object(o)
                    }
                    _ => Value::Object(r.output),
                };
                rt.outputs.insert(alias.clone(), output);
                (
                    match r.status {
                        StepStatus::Succeeded => PromotionStepStatus::Succeeded,
                        StepStatus::Skipped => PromotionStepStatus::Skipped,
                    },
                    r.message,
                )
            }
            Ok(None) if matches!(&failed, Some((PromotionPhase::Aborted, _))) => (
                PromotionStepStatus::Aborted,
                "not run: the promotion was stopped".to_owned(),
            ),
            Ok(None) => (
                PromotionStepStatus::Skipped,
                if failed.is_some() {
                    "skipped: an earlier step failed".to_owned()
                } else {
                    "skipped: its if condition is false".to_owned()
                },
            ),
            Err(e) => {
                let (phase, status) = if let steps::StepError::Stopped(_) = &e {
                    (PromotionPhase::Aborted, PromotionStepStatus::Aborted)
                } else if crate::interrupt::requested().is_some() && steps::is_remote(&step.uses) {
                    // Interrupted in the middle of a remote write (its git child got the
                    // Ctrl-C too): it may or may not have landed. Say so; resume finds out.
                    (PromotionPhase::Running, PromotionStepStatus::Running)
                } else if e.is_failure() {
                    (PromotionPhase::Failed, PromotionStepStatus::Failed)
                } else {
                    (PromotionPhase::Errored, PromotionStepStatus::Errored)
                };
                let msg = e.to_string();
                if !step.continue_on_error && failed.is_none() {
                    failed = Some((phase, format!("step {} ({}): {msg}", alias, step.uses)));
                }
                (status, msg)
            }
        };
        let record = StepRecord {
            alias,
            uses: step.uses.clone(),
            status: Some(status),
            message,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        progress.finish(i, total, &record, &rt.outputs);
        rt.step_statuses
            .insert(record.alias.clone(), status_text(record.status));
        records.push(record);
    }
    // A promotion that stopped part-way says which remote writes had already landed: the
    // Stage may run them (a pushed commit, a sync Argo CD is carrying out) though it ended.
    let landed: Vec<String> = records
        .iter()
        .filter(|r| r.status == Some(PromotionStepStatus::Succeeded) && steps::is_remote(&r.uses))
        .map(|r| {
            let out = |k: &str| {
                rt.outputs
                    .get(&r.alias)
                    .and_then(|o| o.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            match r.uses.as_str() {
                "git-push" | "github-push" => match out("commit") {
                    Some(c) => format!("{} pushed commit {c}", r.alias),
                    None => format!("{} pushed", r.alias),
                },
                "argocd-update" => format!(
                    "{} asked Argo CD to sync (it may still be syncing)",
                    r.alias
                ),
                "git-open-pr" => format!("{} opened a pull request", r.alias),
                "git-merge-pr" => format!("{} merged a pull request", r.alias),
                other => format!("{} ({other}) ran", r.alias),
            }
        })
        .collect();
    Ok(match failed {
        Some((phase, mut message)) => {
            if !landed.is_empty() && phase != PromotionPhase::Succeeded {
                message.push_str(&format!(
                    "; already done before it ended: {}; kubectl promote refresh shows what the Stage runs now",
                    landed.join(", ")
                ));
            }
            RunResult {
                phase,
                message,
                steps: records,
            }
        }
        None => RunResult {
            phase: PromotionPhase::Succeeded,
            message: "all steps completed".into(),
            steps: records,
        },
    })
}

fn stop_text(stop: crate::interrupt::Stop) -> &'static str {
    match stop {
        crate::interrupt::Stop::Interrupted => "interrupted (Ctrl-C)",
        crate::interrupt::Stop::Aborted => "aborted (kubectl promote abort)",
    }
}

/// Run one step; `Ok(None)` when it is skipped by `if` (or by an earlier failure).
fn run_one(
    step: &PromotionStep,
    alias: &str,
    promo_vars: &Map<String, Value>,
    earlier_failed: bool,
    rt: &mut Runtime<'_>,
) -> Result<Option<steps::StepResult>, steps::StepError> {
    let Some(cfg) = step_config(step, alias, promo_vars, earlier_failed, true, rt)? else {
        return Ok(None);
    };
    let policy = RetryPolicy::of(step)?;
    let started = Instant::now();
    let mut errors = 0u32;
    loop {
        let err = match steps::run(&step.uses, alias, &cfg, rt) {
            Ok(r) => return Ok(Some(r)),
            Err(e) => e,
        };
        errors += 1;
        // Failures are the user's to fix and a stop is a stop: neither is retried.
        if err.is_failure() || matches!(err, steps::StepError::Stopped(_)) {
            return Err(err);
        }
        let transient = err.is_transient();
        let allowed = if transient {
            policy.threshold.max(TRANSIENT_ATTEMPTS)
        } else {
            policy.threshold
        };
        let wait = rt.retry_backoff * 2u32.saturating_pow(errors - 1).min(32);
        let out_of_time = started.elapsed() + wait > policy.timeout
            || rt.deadline.is_some_and(|d| Instant::now() + wait >= d);
        if errors >= allowed || out_of_time || crate::interrupt::requested().is_some() {
            return Err(if errors > 1 {
                steps::StepError::Retried {
                    attempts: errors,
                    last: Box::new(err),
                }
            } else {
                err
            });
        }
        rt.note(&format!(
            "{alias} ({}): {err}; trying again in {:.1}s (attempt {} of {allowed})",
            step.uses,
            wait.as_secs_f64(),
            errors + 1
        ));
        std::thread::sleep(wait);
    }
}

/// How many times a transient error (network, HTTP 429 and 5xx, API server timeouts) is tried in
/// all, whatever `retry.errorThreshold` says; Kargo gives up at the first.
pub const TRANSIENT_ATTEMPTS: u32 = 4;

/// A step's `retry` (Kargo's fields): how many consecutive errors end it (default 1), and for how
/// long it may keep retrying (default 5 minutes, and never past `--timeout`).
struct RetryPolicy {
    threshold: u32,
    timeout: std::time::Duration,
}

impl RetryPolicy {
    fn of(step: &PromotionStep) -> Result<Self, steps::StepError> {
        let retry = step.retry.clone().unwrap_or_default();
        let timeout = match retry.timeout.as_deref() {
            None | Some("") => std::time::Duration::from_secs(300),
            Some(t) => promote_api::duration::parse(t).map_err(|e| {
                steps::StepError::Failed(format!("retry.timeout {t:?} is not a duration: {e}"))
            })?,
        };
        Ok(Self {
            threshold: retry.error_threshold.max(1),
            timeout,
        })
    }
}

/// A step's configuration with its expressions evaluated; `None` when its `if` (checked only
/// with `check_if`) says it does not run.
fn step_config(
    step: &PromotionStep,
    alias: &str,
    promo_vars: &Map<String, Value>,
    earlier_failed: bool,
    check_if: bool,
    rt: &mut Runtime<'_>,
) -> Result<Option<Value>, steps::StepError> {
    let vars = eval_vars(promo_vars, &step.vars, rt, Some(&rt.outputs.clone()))?;
    let mut env = Map::new();
    env.insert("ctx".into(), rt.ctx.ctx_value());
    env.insert("vars".into(), Value::Object(vars));
    env.insert("outputs".into(), Value::Object(rt.outputs.clone()));
    if let Some((task_alias, _)) = alias.split_once("::") {
        let prefix = format!("{task_alias}::");
        let task_outputs: Map<String, Value> = rt
            .outputs
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_owned(), v.clone())))
            .collect();
        env.insert("task".into(), json!({ "outputs": task_outputs }));
    }
    let failed_fn = rt.functions(earlier_failed).for_step(alias);
    if !check_if {
        // The caller runs the step whatever its condition (a recorded step being checked).
    } else if step.if_.is_empty() {
        if earlier_failed {
            return Ok(None);
        }
    } else {
        let cond = expr::eval_template(&step.if_, &env, &failed_fn)?;
        if !matches!(cond, Value::Bool(true)) {
            return Ok(None);
        }
    }
    let cfg = expr::eval_value(
        step.config.as_ref().unwrap_or(&Value::Null),
        &env,
        &failed_fn,
    )?;
    Ok(Some(cfg))
}
