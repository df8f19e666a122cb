//! `kubectl promote abort PROMOTION`: sets `kargo.akuity.io/abort: terminate`; a live runner stops
//! at its next lease renewal and records `Aborted` itself; a Promotion nobody runs is closed here
//! and its Stage freed.

use std::time::{Duration, Instant};

use promote_api::keys::ABORT;
use promote_api::types::Promotion;
use serde_json::{Value, json};

use super::{Ctx, print_done, print_patch, s};
use crate::cli::AbortArgs;
use crate::error::{Error, context, decode};
use crate::kube::{Api, kargo_path};
use crate::promotion::lease::Lease;
use crate::promotion::record;

/// Run `abort`.
pub fn run(c: &Ctx<'_>, args: &AbortArgs) -> Result<(), Error> {
    let (kube, ns, name) = (&c.kube, c.ns.as_str(), args.promotion.as_str());
    let path = kargo_path("promotions", ns, name);
    let shown = format!("promotion.kargo.akuity.io/{name}");
    let read = |v: Value| -> Result<Promotion, Error> { decode(v, format!("Promotion {name}")) };
    let Some(v) = kube
        .get(&path)
        .map_err(context(format!("reading Promotion {name}")))?
    else {
        return Err(Error::PromotionState {
            promotion: name.to_owned(),
            problem: format!("not found in project \"{ns}\""),
            hint: "list them with kubectl promote get promotions".into(),
        });
    };
    let p = read(v)?;
    if p.phase().is_terminal() {
        return print_done(
            c.global,
            &shown,
            &format!("is already {}; nothing to abort", p.phase()),
        );
    }
    let patch = json!({"metadata": {"annotations": {ABORT: "terminate"}}});
    if args.dry_run {
        return print_patch(
            c.global,
            &patch,
            &format!("{shown} would be aborted (dry run)"),
        );
    }
    let actor = kube
        .whoami()
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    // The patch answers with the Promotion as it is now: the first look of the wait below.
    let mut v = Some(
        kube.merge_patch(&path, &patch)
            .map_err(context(format!("requesting abort of Promotion {name}")))?,
    );
    // A live runner notices at its next lease renewal and records the abort itself; wait for it
    // a little, then close the Promotion ourselves when nobody runs it.
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let Some(now) = v.take() else {
            return print_done(c.global, &shown, "was deleted");
        };
        // A live runner (its lease still valid) stops itself at its next renewal.
        let running = Lease::of_json(&now).live(jiff::Timestamp::now());
        let p = read(now)?;
        if p.phase().is_terminal() {
            let message = p
                .status
                .as_ref()
                .map(|s| s.message.as_str())
                .unwrap_or_default();
            return print_done(c.global, &shown, &format!("{} ({message})", p.phase()));
        }
        if !running || Instant::now() >= give_up {
            let msg = format!("Promotion terminated by {actor}");
            record::aborted(kube, ns, name, &msg)
                .map_err(context(format!("aborting Promotion {name}")))?;
            let stage_path = kargo_path("stages", ns, &p.spec.stage);
            if let Some(st) = kube.get(&stage_path).ok().flatten()
                && s(&st, "/status/currentPromotion/name") == name
            {
                let stage: promote_api::types::Stage =
                    decode(st, format!("Stage {}", p.spec.stage))?;
                record::stage_freed(kube, ns, &stage, name, &p.spec.freight, &msg)
                    .map_err(context(format!("freeing Stage {}", p.spec.stage)))?;
            }
            return print_done(c.global, &shown, "aborted");
        }
        std::thread::sleep(Duration::from_millis(500));
        v = kube
            .poll(&path)
            .map_err(context(format!("reading Promotion {name}")))?;
    }
}
