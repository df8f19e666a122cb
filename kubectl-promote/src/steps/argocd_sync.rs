//! `argocd-update` and `argocd-wait` against a cluster: patch the Application exactly as
//! `promote_api::argocd::build_sync_patch` builds it (the webhook accepts nothing else), then wait
//! honestly. Per Application, on every look (Kargo's `mustPerformUpdate`):
//!
//! - our operation (its `info` names this Promotion) still pending or running → wait;
//! - our operation finished: no sync result, or revisions differing from the desired ones index by
//!   index → sync again; `Failed`/`Error` → the step fails with Argo CD's message; `Succeeded` →
//!   wait for Argo CD to reconcile after it (`reconciledAt >= finishedAt`), the synced revisions in
//!   `status.sync` and health `Healthy` (`Degraded` fails at once; `Progressing`, `Suspended`, `Missing` and `Unknown` wait);
//! - someone else's operation pending or running → wait for it, then sync;
//! - otherwise → sync now. A 409 (the Application moved on, or the webhook saying an operation is
//!   in progress) means: look again.
//!
//! Nothing here reports success that Argo CD did not report.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use promote_api::argocd::{self, SourceUpdate, SyncRequest};

use super::{ClusterAccess, StepError, fail};
use crate::interrupt;
use crate::kube::app_path;

/// What one look at an Application decided.
#[derive(Debug, PartialEq)]
enum Look {
    /// Sync now.
    Sync,
    /// Wait (why, for the progress line).
    Wait(String),
    /// Our sync finished well; now wait for health.
    Synced,
}

fn info_promotion(op: Option<&Value>) -> Option<&str> {
    argocd::operation_promotion(op.filter(|o| !o.is_null()))
}

/// Whether `got` holds every non-empty desired revision at its index.
fn revisions_match(desired: &[String], got: &[String]) -> bool {
    desired
        .iter()
        .enumerate()
        .all(|(i, d)| d.is_empty() || got.get(i).is_some_and(|g| g == d))
}

fn look(app: &Value, promotion: &str, desired: &[String]) -> Result<Look, StepError> {
    let name = argocd::app_name(app);
    let pending = app.get("operation").filter(|o| !o.is_null());
    let state = app
        .pointer("/status/operationState")
        .filter(|o| !o.is_null());
    if let Some(op) = pending {
        return Ok(Look::Wait(match info_promotion(Some(op)) {
            Some(p) if p == promotion => "waiting for Argo CD to start the sync".into(),
            _ => format!(
                "an operation initiated by {:?} is pending: waiting for it",
                op.pointer("/initiatedBy/username")
                    .and_then(Value::as_str)
                    .unwrap_or("someone")
            ),
        }));
    }
    let Some(state) = state else {
        return Ok(Look::Sync);
    };
    let ours = info_promotion(state.get("operation")) == Some(promotion);
    let phase = state
        .get("phase")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let running = matches!(phase, "Running" | "Terminating");
    if !ours {
        return Ok(if running {
            Look::Wait(format!(
                "another operation ({}) is {phase}: waiting for it to finish",
                info_promotion(state.get("operation"))
                    .map(|p| format!("Promotion {p}"))
                    .unwrap_or_else(|| "not from a promotion".into())
            ))
        } else {
            Look::Sync
        });
    }
    if running {
        return Ok(Look::Wait(format!("sync {phase}")));
    }
    match phase {
        "Succeeded" => {
            let Some(result) = state.get("syncResult").filter(|r| !r.is_null()) else {
                return Ok(Look::Sync); // completed without a sync result: sync again
            };
            if revisions_match(desired, &argocd::revisions(app, Some(result))) {
                Ok(Look::Synced)
            } else {
                Ok(Look::Sync)
            }
        }
        "Failed" | "Error" => Err(fail(format!(
            "Argo CD could not sync Application {:?} in namespace {:?}: operation {phase}: {}",
            name,
            argocd::app_namespace(app),
            state
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
        ))),
        other => Ok(Look::Wait(format!("operation phase {other:?}"))),
    }
}

/// Argo CD's health message of `app`, or `(no message)`.
fn health_message(app: &Value) -> &str {
    app.pointer("/status/health/message")
        .and_then(Value::as_str)
        .unwrap_or("(no message)")
}

/// Whether Argo CD assessed the Application after its last operation finished
/// (`reconciledAt >= finishedAt`, Kargo's rule: Argo CD runs operations and health assessment in
/// separate loops); true when no operation ever finished.
fn reconciled_after_operation(app: &Value) -> bool {
    let Some(finished) = app
        .pointer("/status/operationState/finishedAt")
        .and_then(Value::as_str)
    else {
        return true;
    };
    // RFC 3339 UTC timestamps of the same shape compare as strings; parse to be safe.
    let ts = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let reconciled = app.pointer("/status/reconciledAt").and_then(Value::as_str);
    matches!((reconciled.and_then(ts), ts(finished)), (Some(r), Some(f)) if r >= f)
}

/// Health once our sync succeeded: `Ok(true)` healthy and reconciled, `Ok(false)` not yet.
fn healthy(app: &Value, desired: &[String]) -> Result<bool, StepError> {
    let finished = app.pointer("/status/operationState/finishedAt");
    if finished.is_none_or(Value::is_null) || !reconciled_after_operation(app) {
        return Ok(false);
    }
    if !revisions_match(
        desired,
        &argocd::revisions(app, app.pointer("/status/sync")),
    ) {
        return Ok(false);
    }
    let health = app
        .pointer("/status/health/status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match health {
        "Healthy" => Ok(true),
        // Missing and Unknown wait too: right after a sync the real Argo CD may still report the
        // health it assessed from a cache that had not yet seen the resources just created
        // (found on the real tier: `Missing`, with `reconciledAt` in the second the sync finished).
        // Kargo's argocd-wait waits on these as well; only Degraded ends the wait.
        "Degraded" => Err(fail(format!(
            "Argo CD Application {:?} in namespace {:?} is Degraded after the sync: {}",
            argocd::app_name(app),
            argocd::app_namespace(app),
            health_message(app)
        ))),
        _ => Ok(false),
    }
}

/// Poll pacing: quick at first, then every second.
pub(super) struct Poll {
    n: u32,
}

impl Poll {
    pub(super) fn new() -> Self {
        Self { n: 0 }
    }

    /// Sleep before the next look; fails when the deadline passed or a stop was asked for.
    pub(super) fn wait(&mut self, cl: &ClusterAccess<'_>, what: &str) -> Result<(), StepError> {
        if let Some(stop) = interrupt::requested() {
            return Err(StepError::Stopped(format!("{stop:?} while {what}")));
        }
        if Instant::now() >= cl.deadline {
            return Err(StepError::Timeout(format!(
                "timed out after {}s: {what}",
                cl.timeout.as_secs()
            )));
        }
        self.n += 1;
        let d = Duration::from_millis(match self.n {
            0..=5 => 100,
            6..=20 => 250,
            _ => 1000,
        });
        std::thread::sleep(d.min(cl.deadline.saturating_duration_since(Instant::now())));
        Ok(())
    }
}

fn get_app(cl: &ClusterAccess<'_>, ns: &str, name: &str) -> Result<Value, StepError> {
    cl.kube
        .poll(&app_path(ns, name))
        .map_err(|failure| StepError::Kube {
            action: format!("reading Argo CD Application {ns}/{name}"),
            failure,
        })?
        .ok_or_else(|| {
            fail(format!(
                "Argo CD Application {name:?} in namespace {ns:?} disappeared during the promotion"
            ))
        })
}

/// The sanitized status recorded for the Stage's health (no timestamps that change every look).
fn app_status(app: &Value) -> Value {
    json!({
        "name": argocd::app_name(app),
        "namespace": argocd::app_namespace(app),
        "health": app.pointer("/status/health").cloned().unwrap_or(Value::Null),
        "sync": app.pointer("/status/sync").cloned().unwrap_or(Value::Null),
    })
}

/// Sync one Application for the promotion and wait for an honest result. `authorize` is checked
/// on every fresh read (the annotation can change while we wait). Returns the app's status.
pub(super) fn sync_and_wait(
    cl: &ClusterAccess<'_>,
    app: Value,
    updates: &[SourceUpdate],
    req: &SyncRequest<'_>,
    authorize: &dyn Fn(&Value) -> Result<(), StepError>,
    note: &mut dyn FnMut(String),
) -> Result<Value, StepError> {
    // The webhook admits the write only when it matches what the Promotion recorded first
    // (SECURITY.md: revisions come from the runner's record, never from the write's text).
    let record_plan = |patch: &argocd::SyncPatch, ns: &str, name: &str| {
        let path = format!(
            "{}/status",
            crate::kube::kargo_path("promotions", req.project, req.promotion)
        );
        let body = serde_json::json!({"status": {"state": {promote_api::trust::SYNC_PLAN: {
            promote_api::trust::app_key(ns, name): patch.plan()
        }}}});
        cl.kube
            .merge_patch(&path, &body)
            .map(drop)
            .map_err(|failure| StepError::Kube {
                action: format!(
                    "recording the sync plan for Argo CD Application {ns}/{name} on Promotion {}",
                    req.promotion
                ),
                failure,
            })
    };
    let ns = argocd::app_namespace(&app).to_owned();
    let name = argocd::app_name(&app).to_owned();
    let mut app = app;
    let mut poll = Poll::new();
    let mut last_note = String::new();
    let mut synced_by_us = false;
    loop {
        authorize(&app)?;
        let desired = argocd::desired_revisions(&app, updates);
        let decision = if synced_by_us {
            // After our write, only ever wait for our own operation.
            match look(&app, req.promotion, &desired)? {
                Look::Sync
                    if info_promotion(app.pointer("/status/operationState/operation"))
                        != Some(req.promotion) =>
                {
                    Look::Wait("waiting for Argo CD to start the sync".into())
                }
                other => other,
            }
        } else {
            look(&app, req.promotion, &desired)?
        };
        match decision {
            Look::Sync => {
                let patch = argocd::build_sync_patch(&app, updates, req)
                    .map_err(|e| fail(e.to_string()))?;
                record_plan(&patch, &ns, &name)?;
                match cl
                    .kube
                    .merge_patch(&app_path(&ns, &name), &patch.merge_patch)
                {
                    Ok(new) => {
                        synced_by_us = true;
                        note(format!("{ns}/{name}: sync requested"));
                        app = new;
                        continue;
                    }
                    Err(e) if e.conflict() => {
                        let msg = format!("{ns}/{name}: {}", e.message);
                        if msg != last_note {
                            note(format!("{msg}; looking again"));
                            last_note = msg;
                        }
                        poll.wait(cl, &format!("syncing Argo CD Application {ns}/{name}"))?;
                    }
                    Err(e) if e.code == 403 || e.code == 422 || e.code == 400 => {
                        return Err(fail(format!(
                            "the API server refused the sync of Argo CD Application {name:?} in namespace {ns:?}: {}",
                            e.message
                        )));
                    }
                    Err(failure) => {
                        return Err(StepError::Kube {
                            action: format!("patching Argo CD Application {ns}/{name}"),
                            failure,
                        });
                    }
                }
            }
            Look::Wait(why) => {
                let msg = format!("{ns}/{name}: {why}");
                if msg != last_note {
                    note(msg.clone());
                    last_note = msg;
                }
                poll.wait(
                    cl,
                    &format!("waiting for Argo CD Application {ns}/{name} ({why})"),
                )?;
            }
            Look::Synced => {
                if healthy(&app, &desired)? {
                    return Ok(app_status(&app));
                }
                let msg = format!(
                    "{ns}/{name}: synced; waiting for health ({})",
                    app.pointer("/status/health/status")
                        .and_then(Value::as_str)
                        .unwrap_or("not reported yet")
                );
                if msg != last_note {
                    note(msg.clone());
                    last_note = msg;
                }
                let now = match (
                    app.pointer("/status/health/status").and_then(Value::as_str),
                    app.pointer("/status/health/message")
                        .and_then(Value::as_str),
                ) {
                    (Some(h), Some(m)) if !m.is_empty() => format!("; it is {h}: {m}"),
                    (Some(h), _) => format!("; it is {h}"),
                    (None, _) => String::new(),
                };
                poll.wait(
                    cl,
                    &format!("waiting for Argo CD Application {ns}/{name} to be Healthy{now}"),
                )?;
            }
        }
        app = get_app(cl, &ns, &name)?;
    }
}

/// `argocd-wait`: wait until each condition in `wait_for` holds (`health`, `sync`, `operation`,
/// `suspended`, `degraded`); see [`wait_look`].
pub(super) fn wait_for(
    cl: &ClusterAccess<'_>,
    app: Value,
    wait_for: &[String],
    note: &mut dyn FnMut(String),
) -> Result<Value, StepError> {
    let ns = argocd::app_namespace(&app).to_owned();
    let name = argocd::app_name(&app).to_owned();
    let mut app = app;
    let mut poll = Poll::new();
    let mut previous = String::new();
    let mut last_note = String::new();
    loop {
        let missing = wait_look(&app, wait_for, &mut previous)?;
        if missing.is_empty() {
            return Ok(app_status(&app));
        }
        let msg = format!("{ns}/{name}: waiting for {}", missing.join(", "));
        if msg != last_note {
            note(msg.clone());
            last_note = msg;
        }
        poll.wait(
            cl,
            &format!(
                "waiting for Argo CD Application {ns}/{name} ({})",
                missing.join(", ")
            ),
        )?;
        app = get_app(cl, &ns, &name)?;
    }
}

/// One look of `argocd-wait`, as Kargo's argocd-wait decides it: the conditions not yet met
/// (empty: done). Health is not trusted until Argo CD reconciled after the last operation
/// finished (`reconciledAt >= finishedAt`); while waiting for `health`, turning Degraded from
/// a known other state (`previous`, the last trusted health seen; not Unknown) fails at once.
fn wait_look(
    app: &Value,
    wait_for: &[String],
    previous: &mut String,
) -> Result<Vec<String>, StepError> {
    let health_checked = wait_for
        .iter()
        .any(|w| matches!(w.as_str(), "health" | "suspended" | "degraded"));
    let trusted = !health_checked || reconciled_after_operation(app);
    let health = app
        .pointer("/status/health/status")
        .and_then(Value::as_str)
        .filter(|_| trusted)
        .unwrap_or_default();
    if wait_for.iter().any(|w| w == "health")
        && health == "Degraded"
        && !matches!(previous.as_str(), "" | "Degraded" | "Unknown")
    {
        return Err(fail(format!(
            "Argo CD Application {:?} in namespace {:?} health has regressed from {previous} to Degraded: {}",
            argocd::app_name(app),
            argocd::app_namespace(app),
            health_message(app)
        )));
    }
    if !health.is_empty() {
        health.clone_into(previous);
    }
    let mut missing = Vec::new();
    for w in wait_for {
        let ok = match w.as_str() {
            "health" => health == "Healthy",
            "sync" => app.pointer("/status/sync/status").and_then(Value::as_str) == Some("Synced"),
            "operation" => {
                app.get("operation").is_none_or(Value::is_null)
                    && !argocd::operation_in_progress(app)
            }
            "suspended" => health == "Suspended",
            "degraded" => health == "Degraded",
            _ => true,
        };
        if !ok {
            missing.push(
                if trusted || !matches!(w.as_str(), "health" | "suspended" | "degraded") {
                    w.clone()
                } else {
                    format!("{w} (not assessed since the last operation finished)")
                },
            );
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(state: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "argocd"},
               "spec": {"source": {"repoURL": "https://git.example.com/r.git"}},
               "status": {"operationState": state}})
    }

    #[test]
    fn decisions() {
        let mine = json!({"info": [{"name": "kargo.akuity.io/promotion", "value": "p1"}]});
        let other = json!({"info": [{"name": "kargo.akuity.io/promotion", "value": "p0"}]});
        let d = vec!["abc".to_owned()];
        assert_eq!(look(&app(Value::Null), "p1", &d).ok(), Some(Look::Sync));
        let running_other = app(json!({"operation": other, "phase": "Running"}));
        assert!(matches!(
            look(&running_other, "p1", &d).ok(),
            Some(Look::Wait(_))
        ));
        let done_other = app(
            json!({"operation": other, "phase": "Succeeded", "syncResult": {"revision": "abc"}}),
        );
        assert_eq!(look(&done_other, "p1", &d).ok(), Some(Look::Sync));
        let running_mine = app(json!({"operation": mine, "phase": "Running"}));
        assert!(matches!(
            look(&running_mine, "p1", &d).ok(),
            Some(Look::Wait(_))
        ));
        let ok_mine = app(
            json!({"operation": mine, "phase": "Succeeded", "syncResult": {"revision": "abc"}}),
        );
        assert_eq!(look(&ok_mine, "p1", &d).ok(), Some(Look::Synced));
        let wrong_rev = app(
            json!({"operation": mine, "phase": "Succeeded", "syncResult": {"revision": "def"}}),
        );
        assert_eq!(
            look(&wrong_rev, "p1", &d).ok(),
            Some(Look::Sync),
            "a sync of other revisions is not ours to accept"
        );
        let no_result = app(json!({"operation": mine, "phase": "Succeeded"}));
        assert_eq!(look(&no_result, "p1", &d).ok(), Some(Look::Sync));
        let failed = app(json!({"operation": mine, "phase": "Failed", "message": "boom"}));
        assert!(look(&failed, "p1", &d).is_err_and(|e| e.to_string().contains("boom")));
        let mut pending = app(Value::Null);
        pending["operation"] = mine.clone();
        assert!(matches!(look(&pending, "p1", &d).ok(), Some(Look::Wait(_))));
    }

    #[test]
    fn health_needs_reconcile_revision_and_healthy() {
        let d = vec!["abc".to_owned()];
        let mut a = app(json!({"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:10Z"}));
        a["status"]["reconciledAt"] = json!("2026-01-01T00:00:09Z");
        a["status"]["sync"] = json!({"status": "Synced", "revision": "abc"});
        a["status"]["health"] = json!({"status": "Healthy"});
        assert!(
            !healthy(&a, &d).unwrap_or(true),
            "reconciled before the sync finished"
        );
        a["status"]["reconciledAt"] = json!("2026-01-01T00:00:10Z");
        assert!(healthy(&a, &d).unwrap_or(false));
        a["status"]["sync"]["revision"] = json!("old");
        assert!(
            !healthy(&a, &d).unwrap_or(true),
            "status.sync shows another revision"
        );
        a["status"]["sync"]["revision"] = json!("abc");
        for waits in ["Progressing", "Suspended", "Missing", "Unknown", ""] {
            a["status"]["health"] = json!({"status": waits});
            assert!(!healthy(&a, &d).unwrap_or(true), "{waits} waits");
        }
        a["status"]["health"] = json!({"status": "Degraded", "message": "crash loop"});
        assert!(healthy(&a, &d).is_err_and(|e| e.to_string().contains("crash loop")));
    }

    /// argocd-wait as Kargo's: health read only once reconciled after the last operation;
    /// Degraded fails only while waiting for health and only after a known other state.
    #[test]
    fn argocd_wait_trusts_health_only_after_the_operation_and_fails_on_regression() {
        let w = |c: &[&str]| c.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut a = app(json!({"phase": "Succeeded", "finishedAt": "2026-01-01T00:00:10Z"}));
        a["status"]["reconciledAt"] = json!("2026-01-01T00:00:09Z");
        a["status"]["health"] = json!({"status": "Healthy"});
        a["status"]["sync"] = json!({"status": "Synced"});
        let mut prev = String::new();
        let missing = wait_look(&a, &w(&["health", "sync"]), &mut prev).unwrap();
        assert_eq!(
            missing,
            vec!["health (not assessed since the last operation finished)".to_owned()]
        );
        assert_eq!(prev, "", "stale health is not remembered");
        a["status"]["reconciledAt"] = json!("2026-01-01T00:00:10Z");
        assert!(
            wait_look(&a, &w(&["health", "sync"]), &mut prev)
                .unwrap()
                .is_empty()
        );
        assert_eq!(prev, "Healthy");
        a["status"]["health"] = json!({"status": "Degraded", "message": "crash loop"});
        let e = wait_look(&a, &w(&["health"]), &mut prev)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("health has regressed from Healthy to Degraded: crash loop"),
            "{e}"
        );
        // Progressing → Degraded fails too; Unknown → Degraded and a first look do not.
        let mut prev = "Progressing".to_owned();
        assert!(wait_look(&a, &w(&["health"]), &mut prev).is_err());
        let mut prev = "Unknown".to_owned();
        assert_eq!(
            wait_look(&a, &w(&["health"]), &mut prev).unwrap(),
            vec!["health".to_owned()]
        );
        let mut prev = String::new();
        assert!(wait_look(&a, &w(&["health"]), &mut prev).is_ok());
        // Waiting for degraded: Degraded is the goal, never a failure.
        let mut prev = "Healthy".to_owned();
        assert!(
            wait_look(&a, &w(&["degraded"]), &mut prev)
                .unwrap()
                .is_empty()
        );
        // No operation ever finished: health is trusted as it is.
        let mut fresh = app(Value::Null);
        fresh["status"]["health"] = json!({"status": "Healthy"});
        assert!(
            wait_look(&fresh, &w(&["health"]), &mut String::new())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn multi_source_revisions_are_index_aligned() {
        let a = json!({"spec": {"sources": [{"repoURL": "a"}, {"repoURL": "b"}]}});
        let got = argocd::revisions(&a, Some(&json!({"revisions": ["x", "y"]})));
        assert!(revisions_match(&["".into(), "y".into()], &got));
        assert!(!revisions_match(&["y".into(), "".into()], &got));
    }
}
