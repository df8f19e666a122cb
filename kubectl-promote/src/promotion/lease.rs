//! Who runs a Promotion, and which Promotion holds a Stage (DESIGN.md §2).
//!
//! **Lease.** A running Promotion carries `promote.dev/lease-holder` and
//! `promote.dev/lease-expires`, renewed while it runs ([`Renewal`]); a runner that stops renewing
//! loses it when it expires, and then its Promotion may be resumed or its Stage taken over.
//!
//! **Claim.** One Promotion runs per Stage: the runner writes `Stage.status.currentPromotion` with
//! a `resourceVersion` precondition, so of two runners only one wins ([`Claim::claim`]). A Stage
//! whose current Promotion is finished, gone, or abandoned (lease expired) is free; the abandoned
//! Promotion is closed as `Aborted` so nobody resumes it over the new one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use promote_api::keys::{ABORT, LEASE_EXPIRES, LEASE_HOLDER};
use promote_api::types::{Freight, Promotion, Stage};
use serde_json::{Value, json};

use super::record;
use crate::error::{Error, context, decode};
use crate::interrupt;
use crate::kube::{Api, kargo_path, timestamp};

/// Default lease: a runner that stops renewing frees its Stage after this long.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// A Promotion's lease, as its annotations say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (`user@host/pid`), empty when unknown.
    pub holder: String,
    /// When it ends; `None` when never set (or unreadable).
    pub expires: Option<jiff::Timestamp>,
}

impl Lease {
    /// The lease of a typed Promotion.
    pub fn of(p: &Promotion) -> Self {
        let a = p.metadata.annotations.as_ref();
        let get = |k: &str| a.and_then(|a| a.get(k)).map(String::as_str);
        Self::from_parts(get(LEASE_HOLDER), get(LEASE_EXPIRES))
    }

    /// The lease of a Promotion as open JSON (tables read it without decoding).
    pub fn of_json(p: &Value) -> Self {
        let a = p.pointer("/metadata/annotations");
        let get = |k: &str| a.and_then(|a| a.get(k)).and_then(Value::as_str);
        Self::from_parts(get(LEASE_HOLDER), get(LEASE_EXPIRES))
    }

    fn from_parts(holder: Option<&str>, expires: Option<&str>) -> Self {
        Self {
            holder: holder.unwrap_or_default().to_owned(),
            expires: expires.and_then(|t| t.parse().ok()),
        }
    }

    /// Whether someone still holds it at `now`.
    pub fn live(&self, now: jiff::Timestamp) -> bool {
        self.expires.is_some_and(|e| e > now)
    }

    /// Whether it was set and has run out at `now` (a stale Promotion).
    pub fn lapsed(&self, now: jiff::Timestamp) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The holder for messages.
    pub fn who(&self) -> &str {
        if self.holder.is_empty() {
            "unknown"
        } else {
            &self.holder
        }
    }

    /// The expiry for messages.
    pub fn until(&self) -> String {
        self.expires.map(timestamp).unwrap_or_default()
    }
}

/// Who this process is, for the lease: `user@host/pid`.
pub fn holder_id(actor: Option<&str>) -> String {
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

/// The annotations that give the lease to `holder` for `ttl` from now.
pub fn annotations(holder: &str, ttl: Duration) -> Value {
    json!({
        LEASE_HOLDER: holder,
        LEASE_EXPIRES: timestamp(jiff::Timestamp::now() + ttl),
    })
}

/// Whether Promotion `p` may be resumed at `now`: unfinished and nobody's lease live.
pub fn resumable(p: &Promotion, now: jiff::Timestamp) -> Result<(), Error> {
    if p.phase().is_terminal() {
        return Err(Error::PromotionState {
            promotion: p.name().to_owned(),
            problem: format!("is already {}: nothing to resume", p.phase()),
            hint: format!(
                "start a new one with kubectl promote stage/{} --freight {}",
                p.spec.stage,
                promote_api::naming::short_name(&p.spec.freight)
            ),
        });
    }
    let lease = Lease::of(p);
    if lease.live(now) {
        return Err(Error::PromotionState {
            promotion: p.name().to_owned(),
            problem: format!(
                "is still being run by {} (lease until {})",
                lease.holder,
                lease.until()
            ),
            hint: "wait for it; a runner that stopped frees it when its lease expires".into(),
        });
    }
    Ok(())
}

/// Take the lease of an interrupted Promotion, guarded by its `resourceVersion` so that of two
/// resumers only one wins.
pub fn take_over(
    api: &dyn Api,
    p: &Promotion,
    holder: &str,
    ttl: Duration,
) -> Result<Promotion, Error> {
    let name = p.name();
    let taken = api
        .merge_patch(
            &kargo_path("promotions", p.project(), name),
            &json!({"metadata": {"resourceVersion": p.metadata.resource_version,
                "annotations": annotations(holder, ttl)}}),
        )
        .map_err(|e| {
            if e.conflict() {
                Error::PromotionState {
                    promotion: name.to_owned(),
                    problem: "was taken over by someone else just now".into(),
                    hint: "check with kubectl promote get promotions".into(),
                }
            } else {
                context(format!("taking over Promotion {name}"))(e)
            }
        })?;
    decode(taken, format!("Promotion {name}"))
}

/// End the lease now (an interrupted runner lets a resume start at once). Best effort: the lease
/// runs out by itself anyway.
pub fn release(api: &dyn Api, project: &str, name: &str) {
    let _ = api.merge_patch(
        &kargo_path("promotions", project, name),
        &json!({"metadata": {"annotations": {LEASE_EXPIRES: crate::kube::now()}}}),
    );
}

/// Renews a lease beside the running steps and notices `kubectl promote abort` (and the
/// Promotion's deletion), which it turns into a stop request.
pub struct Renewal<'k> {
    /// The API.
    pub api: &'k dyn Api,
    /// The Promotion's path.
    pub path: String,
    /// The Promotion's name (messages).
    pub name: String,
    /// Our holder id.
    pub holder: String,
    /// Lease length.
    pub ttl: Duration,
    /// No notes on stderr.
    pub quiet: bool,
}

impl Renewal<'_> {
    /// Renew every third of the lease until `stop` says the steps are done.
    pub fn run(self, stop: mpsc::Receiver<()>) {
        let every = (self.ttl / 3).max(Duration::from_millis(500));
        while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
            self.renew_once();
        }
    }

    /// One renewal.
    pub fn renew_once(&self) {
        let patch = json!({"metadata": {"annotations": annotations(&self.holder, self.ttl)}});
        match self.api.merge_patch(&self.path, &patch) {
            Ok(v) => {
                if v.pointer("/metadata/annotations")
                    .and_then(|a| a.get(ABORT))
                    .is_some()
                {
                    if !self.quiet {
                        eprintln!("Promotion {}: abort requested; stopping", self.name);
                    }
                    interrupt::request(interrupt::Stop::Aborted);
                }
            }
            Err(e) if e.not_found() => {
                eprintln!("Promotion {} was deleted; stopping", self.name);
                interrupt::request(interrupt::Stop::Aborted);
            }
            Err(e) => eprintln!(
                "warning: could not renew the lease on Promotion {}: {e}",
                self.name
            ),
        }
    }
}

/// Claiming a Stage for a Promotion, queueing behind another with `--wait`.
pub struct Claim<'k> {
    /// The API.
    pub api: &'k dyn Api,
    /// The project.
    pub project: String,
    /// Queue behind a running Promotion instead of failing fast.
    pub wait: bool,
    /// When queueing gives up.
    pub deadline: Instant,
    /// The whole budget (messages).
    pub timeout: Duration,
    /// How often a queued runner looks again.
    pub poll_every: Duration,
    /// No notes on stderr.
    pub quiet: bool,
}

impl Claim<'_> {
    fn path(&self, plural: &str, name: &str) -> String {
        kargo_path(plural, &self.project, name)
    }

    fn stage(&self, name: &str, poll: bool) -> Result<Stage, Error> {
        let path = self.path("stages", name);
        let got = if poll {
            self.api.poll(&path)
        } else {
            self.api.get(&path)
        };
        match got.map_err(context(format!("reading Stage {name}")))? {
            Some(v) => decode(v, format!("Stage {name}")),
            None => Err(Error::StageNotFound {
                stage: name.to_owned(),
                project: self.project.clone(),
                available: vec![],
            }),
        }
    }

    /// The Promotion (other than `mine`) that still holds the Stage, if any. An abandoned one
    /// (lease expired) is closed as `Aborted` on the way.
    pub fn holder(&self, stage: &Stage, mine: &str) -> Result<Option<Promotion>, Error> {
        let Some(cur) = stage
            .status
            .as_ref()
            .and_then(|s| s.current_promotion.as_ref())
            .filter(|c| !c.name.is_empty() && c.name != mine)
        else {
            return Ok(None);
        };
        let Some(v) = self
            .api
            .get(&self.path("promotions", &cur.name))
            .map_err(context(format!("reading Promotion {}", cur.name)))?
        else {
            return Ok(None);
        };
        let p: Promotion = decode(v, format!("Promotion {}", cur.name))?;
        let lease = Lease::of(&p);
        let live = lease.live(jiff::Timestamp::now());
        if p.phase().is_terminal() {
            // Its runner records the result on the Promotion first and frees the Stage last
            // (record::finished); a claim in between would be overwritten by that last write.
            // So the Stage stays held until then, or until the lease runs out (a runner that
            // died between the two writes).
            return Ok(live.then_some(p));
        }
        if live {
            return Ok(Some(p));
        }
        let msg = format!(
            "abandoned: the lease of {} expired at {}; the Stage was taken over by Promotion {mine}",
            if lease.holder.is_empty() {
                "its runner"
            } else {
                &lease.holder
            },
            lease
                .expires
                .map(timestamp)
                .unwrap_or_else(|| "(never set)".into())
        );
        record::aborted(self.api, &self.project, p.name(), &msg)
            .map_err(context(format!("closing abandoned Promotion {}", p.name())))?;
        if !self.quiet {
            eprintln!("Promotion {} was {msg}", p.name());
        }
        Ok(None)
    }

    fn busy(&self, stage: &Stage, p: &Promotion) -> Error {
        let lease = Lease::of(p);
        Error::StageBusy {
            stage: stage.name().to_owned(),
            project: self.project.clone(),
            running: p.name().to_owned(),
            phase: p.phase().to_string(),
            holder: format!("run by {}, lease until {}", lease.who(), lease.until()),
        }
    }

    /// Wait (with `--wait`) until the Stage is free; returns the fresh Stage.
    pub fn wait_free(&self, mut stage: Stage, mine: &str) -> Result<Stage, Error> {
        let mut said = String::new();
        while let Some(p) = self.holder(&stage, mine)? {
            if !self.wait {
                return Err(self.busy(&stage, &p));
            }
            if interrupt::requested().is_some() {
                return Err(Error::Interrupted {
                    during: format!("waiting for Stage {}", stage.name()),
                });
            }
            if Instant::now() >= self.deadline {
                return Err(Error::QueueTimeout {
                    stage: stage.name().to_owned(),
                    running: p.name().to_owned(),
                    waited_s: self.timeout.as_secs(),
                });
            }
            if said != p.name() && !self.quiet {
                eprintln!(
                    "Stage {} is busy with Promotion {} ({}); waiting (--wait)",
                    stage.name(),
                    p.name(),
                    p.phase()
                );
                said = p.name().to_owned();
            }
            std::thread::sleep(
                self.poll_every
                    .min(self.deadline.saturating_duration_since(Instant::now())),
            );
            stage = self.stage(stage.name(), true)?;
        }
        Ok(stage)
    }

    /// Make `promotion` the Stage's current Promotion (`resourceVersion`-guarded); waits or
    /// fails when another holds it. Returns the Stage as written.
    pub fn claim(
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
            match record::claimed(self.api, &self.project, &stage, promotion.name(), freight) {
                Ok(v) => return decode(v, format!("Stage {}", stage.name())),
                Err(e) if e.conflict() => stage = self.stage(stage.name(), false)?,
                Err(e) => {
                    return Err(context(format!("claiming Stage {}", stage.name()))(e));
                }
            }
        }
    }
}
