//! The promotion rules against an in-memory API server (`fake::MemApi`) and manifests in memory:
//! resolving, claiming and queueing, leases and takeovers, resuming, and the records. No sockets,
//! no git: the steps used here (`argocd-wait`, `argocd-update`, a skipped step) talk only to the
//! API.

use std::time::{Duration, Instant};

use promote_api::keys::{ALIAS, LEASE_EXPIRES, LEASE_HOLDER};
use promote_api::types::{
    Freight, FreightOrigin, Image, Promotion, PromotionPhase, PromotionStepStatus,
};
use serde_json::{Value, json};

use super::fake::MemApi;
use super::lease::{self, Lease};
use super::record::{self, ClusterRecorder, Terminal};
use super::source::{Cluster, Files};
use super::{Identity, Settings, Start, run};
use crate::error::Error;
use crate::kube::{app_path, kargo_path, timestamp};
use crate::manifests::Manifests;
use crate::output::{Outcome, Summary};

const NS: &str = "demo";

fn col(plural: &str) -> String {
    kargo_path(plural, NS, "")
}

fn path(plural: &str, name: &str) -> String {
    kargo_path(plural, NS, name)
}

fn wait_step(app: &str) -> Value {
    json!({"uses": "argocd-wait", "config": {"apps": [{"name": app}]}})
}

fn update_step(app: &str) -> Value {
    json!({"uses": "argocd-update", "config": {"apps": [{"name": app}]}})
}

fn stage_obj(name: &str, steps: Value, sources: Value) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "requestedFreight": [{"origin": {"kind": "Warehouse", "name": "web"}, "sources": sources}],
            "promotionTemplate": {"spec": {"steps": steps}},
        },
    })
}

fn direct(name: &str, steps: Value) -> Value {
    stage_obj(name, steps, json!({"direct": true}))
}

fn freight(alias: &str, tag: &str) -> Freight {
    let mut f = Freight::new(NS, FreightOrigin::warehouse("web"));
    f.images = vec![Image {
        repo_url: "nginx".into(),
        tag: tag.into(),
        ..Default::default()
    }];
    f.metadata.name = Some(promote_api::freight_id::freight_id(&f));
    f.alias = alias.into();
    f.metadata.labels = Some([(ALIAS.to_owned(), alias.to_owned())].into());
    f
}

fn app(name: &str, health: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd",
            "annotations": {"kargo.akuity.io/authorized-stage": format!("{NS}:dev")}},
        "spec": {"source": {"repoURL": "https://git.example/r.git", "targetRevision": "main"}},
        "status": {"health": {"status": health}, "sync": {"status": "Synced"}},
    })
}

/// A project with Stage dev (direct, one `argocd-wait` on a Healthy app) and Freight v1, v2.
fn world() -> (MemApi, Freight, Freight) {
    let api = MemApi::as_user("alice");
    api.put(
        &col("stages"),
        direct("dev", json!([wait_step("demo-dev")])),
    );
    let (v1, v2) = (freight("v1", "1.25"), freight("v2", "1.26"));
    for f in [&v1, &v2] {
        api.put(&col("freights"), serde_json::to_value(f).unwrap());
    }
    api.put(&app_path("argocd", ""), app("demo-dev", "Healthy"));
    (api, v1, v2)
}

fn settings() -> Settings {
    Settings {
        dry_run: false,
        quiet: true,
        cache_dir: std::env::temp_dir().join("promote-unit-cache"),
        wait: false,
        timeout: Duration::from_secs(5),
        deadline: Instant::now() + Duration::from_secs(5),
        lease_ttl: Duration::from_secs(30),
        poll_every: Duration::from_millis(1),
        retry_backoff: Duration::from_millis(1),
    }
}

fn identity() -> Identity {
    Identity {
        actor: Some("alice".into()),
        holder: "alice@test/1".into(),
    }
}

fn promote_with(api: &MemApi, stage: &str, alias: &str, s: &Settings) -> Result<Summary, Error> {
    let source = Cluster::new(api, NS.into(), true);
    let mut rec = ClusterRecorder::new(api, NS, s, identity());
    let start = Start::New {
        stage,
        freight: None,
        alias: Some(alias),
    };
    run(&source, &mut rec, start, s)
}

fn promote(api: &MemApi, stage: &str, alias: &str) -> Result<Summary, Error> {
    promote_with(api, stage, alias, &settings())
}

fn resume_with(api: &MemApi, name: &str, s: &Settings) -> Result<Summary, Error> {
    let source = Cluster::new(api, NS.into(), true);
    let mut rec = ClusterRecorder::new(api, NS, s, identity());
    run(&source, &mut rec, Start::Resume { promotion: name }, s)
}

fn get(api: &MemApi, plural: &str, name: &str) -> Value {
    api.object(&path(plural, name))
        .unwrap_or_else(|| panic!("{plural}/{name} missing"))
}

fn promotions(api: &MemApi) -> Vec<Value> {
    api.objects_in(&col("promotions"))
}

/// A Promotion of `stage` another runner made: `phase`, its lease ending `expires`.
fn foreign(name: &str, stage: &str, phase: &str, expires: jiff::Timestamp) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {"name": name, "namespace": NS, "annotations": {
            LEASE_HOLDER: "bob@elsewhere/7", LEASE_EXPIRES: timestamp(expires)}},
        "spec": {"stage": stage, "freight": "0000000000000000000000000000000000000000", "steps": [wait_step("demo-dev")]},
        "status": {"phase": phase},
    })
}

fn later(secs: i64) -> jiff::Timestamp {
    jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)
}

/// The world with Stage dev held by another promoter's Promotion `holder` in `phase`, its lease
/// ending at `expires`.
fn dev_held_by(holder: &str, phase: &str, expires: jiff::Timestamp) -> MemApi {
    let (api, _, _) = world();
    api.put(&col("promotions"), foreign(holder, "dev", phase, expires));
    held_by(&api, holder);
    api
}

/// Stage dev held by Promotion `holder`.
fn held_by(api: &MemApi, holder: &str) {
    let mut st = get(api, "stages", "dev");
    st["status"] = json!({"currentPromotion": {"name": holder}});
    api.put(&col("stages"), st);
}

// ---- resolving ------------------------------------------------------------------------------

fn files(stages: Vec<Value>, freight: Vec<Freight>) -> Files {
    let m = Manifests {
        stages: stages
            .into_iter()
            .map(|s| serde_json::from_value(s).unwrap())
            .collect(),
        freight,
        ..Manifests::default()
    };
    Files::new(m, NS.into())
}

fn plan(
    source: &dyn super::Source,
    stage: &str,
    name: Option<&str>,
    alias: Option<&str>,
) -> Result<super::Plan, Error> {
    super::plan::resolve(source, stage, name, alias, jiff::Timestamp::now())
}

#[test]
fn an_unknown_stage_lists_the_projects_stages() {
    let src = files(vec![direct("dev", json!([wait_step("a")]))], vec![]);
    match plan(&src, "prod", None, Some("v1")) {
        Err(Error::StageNotFound { available, .. }) => assert_eq!(available, ["dev"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn freight_resolves_by_full_name_unique_prefix_and_alias() {
    let (v1, v2) = (freight("v1", "1.25"), freight("v2", "1.26"));
    let src = files(
        vec![direct("dev", json!([wait_step("a")]))],
        vec![v1.clone(), v2.clone()],
    );
    let by = |n: Option<&str>, a: Option<&str>| plan(&src, "dev", n, a).unwrap().freight;
    assert_eq!(by(Some(v1.name()), None).name(), v1.name());
    assert_eq!(by(Some(&v2.name()[..12]), None).name(), v2.name());
    assert_eq!(by(None, Some("v2")).name(), v2.name());
    // An alias given to --freight is accepted when unambiguous.
    assert_eq!(by(Some("v1"), None).name(), v1.name());
}

#[test]
fn an_ambiguous_prefix_names_the_candidates() {
    let (v1, v2) = (freight("v1", "1.25"), freight("v2", "1.26"));
    let src = files(vec![direct("dev", json!([wait_step("a")]))], vec![v1, v2]);
    match plan(&src, "dev", Some(""), None) {
        Err(Error::FreightAmbiguous { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn freight_not_verified_upstream_is_unavailable_and_says_where() {
    let test = stage_obj("test", json!([wait_step("a")]), json!({"stages": ["dev"]}));
    let src = files(
        vec![direct("dev", json!([wait_step("a")])), test],
        vec![freight("v1", "1.25")],
    );
    let e = plan(&src, "test", None, Some("v1")).unwrap_err();
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("dev"), "{e}");
    assert!(e.hint().unwrap().contains("upstream"), "{:?}", e.hint());
}

#[test]
fn a_bad_step_config_is_refused_before_anything_is_written() {
    let (api, _, _) = world();
    api.put(
        &col("stages"),
        direct(
            "dev",
            json!([{"uses": "argocd-wait", "config": {"aps": []}}]),
        ),
    );
    let e = promote(&api, "dev", "v1").unwrap_err();
    // The Stage's own validation (which the webhook runs at apply time) names the field.
    assert!(
        e.to_string()
            .contains("spec.promotionTemplate.spec.steps[0].config.aps: Invalid value: unknown field (known: apps)"),
        "{e}"
    );
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    // The Stage is refused before its Freight is even looked up.
    let e = promote(&api, "dev", "nope").unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
}

#[test]
fn an_unknown_step_kind_lists_the_registry() {
    let src = files(
        vec![direct(
            "dev",
            json!([{"uses": "git-frobnicate", "config": {}}]),
        )],
        vec![freight("v1", "1.25")],
    );
    let e = plan(&src, "dev", None, Some("v1")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("unknown step kind \"git-frobnicate\""),
        "{text}"
    );
    for s in crate::steps::REGISTRY {
        assert!(text.contains(s.name), "{} in {text}", s.name);
    }
}

#[test]
fn the_collection_keeps_other_origins_current_freight() {
    let mut dev = direct("dev", json!([wait_step("a")]));
    dev["spec"]["requestedFreight"]
        .as_array_mut()
        .unwrap()
        .push(json!({"origin": {"kind": "Warehouse", "name": "db"}, "sources": {"direct": true}}));
    dev["status"] = json!({"freightHistory": [{"items": {
        "Warehouse/db": {"name": "d".repeat(40), "origin": {"kind": "Warehouse", "name": "db"}},
        "Warehouse/old": {"name": "e".repeat(40), "origin": {"kind": "Warehouse", "name": "old"}},
    }}]});
    let v1 = freight("v1", "1.25");
    let src = files(vec![dev], vec![v1.clone()]);
    let p = plan(&src, "dev", None, Some("v1")).unwrap();
    let origins: Vec<&String> = p.collection.freight.keys().collect();
    // The db Freight stays, the web Freight is the new one, an origin no longer requested goes.
    assert_eq!(origins, ["Warehouse/db", "Warehouse/web"]);
    assert_eq!(p.collection.freight["Warehouse/web"].name, v1.name());
    assert!(!p.collection.id.is_empty());
}

#[test]
fn a_local_promotion_writes_nothing_and_acts_as_the_local_user() {
    let mut m = Manifests {
        stages: vec![
            serde_json::from_value(direct("dev", json!([update_step("demo-dev")]))).unwrap(),
        ],
        freight: vec![freight("v1", "1.25")],
        ..Manifests::default()
    };
    m.applications.push(app("demo-dev", "Healthy"));
    let src = Files::new(m, NS.into());
    let s = settings();
    let mut rec = Terminal::local(&s, Some("carol".into()));
    let start = Start::New {
        stage: "dev",
        freight: None,
        alias: Some("v1"),
    };
    let summary = run(&src, &mut rec, start, &s).unwrap();
    assert!(summary.phase.succeeded(), "{summary:?}");
    assert_eq!(summary.applications.len(), 1);
    let op = &summary.applications[0].patch["operation"];
    assert_eq!(op["initiatedBy"]["username"], "carol", "{op}");
    assert!(summary.object.is_none());
}

// ---- leases -----------------------------------------------------------------------------------

#[test]
fn a_lease_knows_live_from_lapsed_and_reads_the_same_typed_or_not() {
    let now = jiff::Timestamp::now();
    let live = foreign("p", "dev", "Running", later(60));
    let lapsed = foreign("p", "dev", "Running", later(-60));
    let typed = |v: &Value| Lease::of(&serde_json::from_value::<Promotion>(v.clone()).unwrap());
    assert!(Lease::of_json(&live).live(now) && !Lease::of_json(&live).lapsed(now));
    assert!(Lease::of_json(&lapsed).lapsed(now) && !Lease::of_json(&lapsed).live(now));
    assert_eq!(typed(&live), Lease::of_json(&live));
    assert_eq!(Lease::of_json(&live).who(), "bob@elsewhere/7");
    let none = Lease::of_json(&json!({"metadata": {}}));
    assert!(!none.live(now) && !none.lapsed(now));
    assert_eq!(none.who(), "unknown");
}

#[test]
fn the_holder_id_names_user_host_and_process() {
    let id = lease::holder_id(Some("alice"));
    assert!(id.starts_with("alice@"), "{id}");
    assert!(id.ends_with(&format!("/{}", std::process::id())), "{id}");
    assert!(lease::holder_id(None).starts_with("unknown@"));
}

#[test]
fn finished_or_live_promotions_are_not_resumable() {
    let now = jiff::Timestamp::now();
    let done: Promotion =
        serde_json::from_value(foreign("p", "dev", "Succeeded", later(-60))).unwrap();
    let e = lease::resumable(&done, now).unwrap_err();
    assert!(e.to_string().contains("already Succeeded"), "{e}");
    assert!(e.hint().unwrap().contains("kubectl promote stage/dev"));
    let live: Promotion =
        serde_json::from_value(foreign("p", "dev", "Running", later(60))).unwrap();
    let e = lease::resumable(&live, now).unwrap_err();
    assert!(
        e.to_string().contains("still being run by bob@elsewhere/7"),
        "{e}"
    );
    let stale: Promotion =
        serde_json::from_value(foreign("p", "dev", "Running", later(-60))).unwrap();
    assert!(lease::resumable(&stale, now).is_ok());
}

#[test]
fn a_takeover_from_a_stale_copy_loses_to_the_one_who_moved_first() {
    let (api, _, _) = world();
    api.put(
        &col("promotions"),
        foreign("p", "dev", "Running", later(-60)),
    );
    let stale: Promotion = serde_json::from_value(get(&api, "promotions", "p")).unwrap();
    let mut moved = get(&api, "promotions", "p");
    moved["metadata"]["annotations"][LEASE_HOLDER] = json!("carol@x/1");
    api.put(&col("promotions"), moved);
    let e = lease::take_over(&api, &stale, "alice@test/1", Duration::from_secs(30)).unwrap_err();
    assert!(e.to_string().contains("taken over by someone else"), "{e}");
    assert_eq!(
        get(&api, "promotions", "p")["metadata"]["annotations"][LEASE_HOLDER],
        "carol@x/1"
    );
}

// ---- claiming and recording ---------------------------------------------------------------------

#[test]
fn a_free_stage_is_claimed_promoted_and_recorded_everywhere() {
    let (api, v1, _) = world();
    let s = promote(&api, "dev", "v1").unwrap();
    assert!(s.phase.succeeded(), "{s:?}");
    let p = get(&api, "promotions", &s.promotion);
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(
        p["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        "kubernetes:alice"
    );
    assert_eq!(p["status"]["freight"]["name"], v1.name());
    let st = get(&api, "stages", "dev");
    assert!(st["status"].get("currentPromotion").is_none(), "{st}");
    assert_eq!(st["status"]["lastPromotion"]["name"], s.promotion.as_str());
    assert_eq!(
        st["status"]["lastPromotion"]["status"]["phase"],
        "Succeeded"
    );
    assert_eq!(
        st["status"]["freightHistory"][0]["items"]["Warehouse/web"]["name"],
        v1.name()
    );
    assert_eq!(st["status"]["health"]["status"], "Healthy");
    let f = get(&api, "freights", v1.name());
    assert!(
        f["status"]["currentlyIn"]["dev"]["since"].is_string(),
        "{f}"
    );
    assert!(
        f["status"]["verifiedIn"]["dev"]["verifiedAt"].is_string(),
        "{f}"
    );
}

#[test]
fn progress_is_recorded_on_the_promotion_after_every_step() {
    let (api, _, _) = world();
    api.put(
        &col("stages"),
        direct("dev", json!([wait_step("demo-dev"), wait_step("demo-dev")])),
    );
    let s = promote(&api, "dev", "v1").unwrap();
    let p = get(&api, "promotions", &s.promotion);
    // As Kargo leaves it: the index of the last step (0-based) once all ran.
    assert_eq!(p["status"]["currentStep"], 1);
    let meta = p["status"]["stepExecutionMetadata"].as_array().unwrap();
    assert_eq!(meta.len(), 2);
    assert!(
        meta.iter()
            .all(|m| m["status"] == "Succeeded" && m["finishedAt"].is_string())
    );
    assert_eq!(
        p["status"]["state"]["step-2"]["apps"][0]["name"],
        "demo-dev"
    );
    let step_writes = api
        .writes()
        .iter()
        .filter(|(m, p)| m == "PATCH" && p.ends_with(&format!("{}/status", s.promotion)))
        .count();
    // started, two steps, the result
    assert_eq!(step_writes, 4);
}

#[test]
fn a_busy_stage_fails_fast_and_nothing_is_created() {
    let api = dev_held_by("other", "Running", later(60));
    let e = promote(&api, "dev", "v1").unwrap_err();
    match &e {
        Error::StageBusy {
            running, holder, ..
        } => {
            assert_eq!(running, "other");
            assert!(holder.contains("bob@elsewhere/7"), "{holder}");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.hint().unwrap().contains("--wait"));
    assert_eq!(promotions(&api).len(), 1);
}

#[test]
fn a_queued_promotion_runs_once_the_holder_finishes() {
    let api = dev_held_by("other", "Running", later(60));
    let mut s = settings();
    s.wait = true;
    s.poll_every = Duration::from_millis(5);
    // The holder's runner finishes as record::finished does: the Promotion first, the Stage
    // (freed, its lastPromotion written) a moment later. Nobody may claim the Stage in between,
    // or that last write would wipe the claim and the record of the Promotion that claimed it.
    let summary = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            let mut p = get(&api, "promotions", "other");
            p["status"]["phase"] = json!("Succeeded");
            api.put(&col("promotions"), p);
            std::thread::sleep(Duration::from_millis(150));
            let mut st = get(&api, "stages", "dev");
            st["status"]["currentPromotion"] = Value::Null;
            st["status"]["lastPromotion"] = json!({"name": "other"});
            api.put(&col("stages"), st);
        });
        promote_with(&api, "dev", "v1", &s)
    })
    .unwrap();
    assert!(summary.phase.succeeded());
    assert_eq!(
        get(&api, "promotions", "other")["status"]["phase"],
        "Succeeded"
    );
    assert_eq!(
        get(&api, "stages", "dev")["status"]["lastPromotion"]["name"],
        json!(summary.promotion),
        "the queued promotion ran after the holder freed the Stage"
    );
}

/// The result goes on the Freight before the Stage is freed (a Promotion queued behind would
/// otherwise sync over the Argo CD state the Freight's status rests on); a refused Freight write
/// still frees the Stage and records the Promotion there, and says what failed.
#[test]
fn the_stage_is_freed_last_even_when_the_freight_write_fails() {
    let (api, v1, _) = world();
    let freight_status = format!("freights/{}/status", v1.name());
    api.fail_writes(&freight_status, 403, 1);
    let e = promote(&api, "dev", "v1").unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("recording Stage dev on Freight {}", v1.name())),
        "{e}"
    );
    let st = get(&api, "stages", "dev");
    assert!(st["status"].get("currentPromotion").is_none(), "{st}");
    let name = st["status"]["lastPromotion"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        get(&api, "promotions", &name)["status"]["phase"],
        "Succeeded"
    );
    // The Freight was written first: when the Stage's freeing write comes, it is there already.
    let (api, v1, _) = world();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let key = path("freights", v1.name());
    for _ in 0..10 {
        let (seen, key) = (seen.clone(), key.clone());
        api.before_write("stages/dev/status", move |objects| {
            let f = objects.get(&key).cloned().unwrap_or_default();
            seen.lock()
                .unwrap()
                .push(f.pointer("/status/currentlyIn/dev").is_some());
        });
    }
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    let seen = seen.lock().unwrap();
    assert!(seen.len() < 10, "every Stage write was observed: {seen:?}");
    assert_eq!(seen.first(), Some(&false), "{seen:?}");
    assert_eq!(seen.last(), Some(&true), "{seen:?}");
}

#[test]
fn a_finished_holder_keeps_the_stage_until_its_runner_frees_it() {
    let api = dev_held_by("done", "Succeeded", later(60));
    let e = promote(&api, "dev", "v1").unwrap_err();
    assert!(
        matches!(&e, Error::StageBusy { running, phase, .. } if running == "done" && phase == "Succeeded"),
        "{e:?}"
    );
}

#[test]
fn queueing_past_the_timeout_is_its_own_error() {
    let api = dev_held_by("other", "Running", later(60));
    let mut s = settings();
    s.wait = true;
    s.deadline = Instant::now();
    let e = promote_with(&api, "dev", "v1", &s).unwrap_err();
    assert!(
        matches!(&e, Error::QueueTimeout { running, .. } if running == "other"),
        "{e:?}"
    );
    let hint = e.hint().unwrap();
    assert!(
        hint.contains("--timeout") && hint.contains("abort other"),
        "{hint}"
    );
    assert!(!hint.contains("--kubeconfig"), "{hint}");
    assert_eq!(promotions(&api).len(), 1, "nothing created while queueing");
}

#[test]
fn an_abandoned_holder_is_closed_and_its_stage_taken_over() {
    let api = dev_held_by("other", "Running", later(-5));
    let s = promote(&api, "dev", "v1").unwrap();
    assert!(s.phase.succeeded());
    let other = get(&api, "promotions", "other");
    assert_eq!(other["status"]["phase"], "Aborted");
    let msg = other["status"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("abandoned: the lease of bob@elsewhere/7 expired at")
            && msg.ends_with(&format!("taken over by Promotion {}", s.promotion)),
        "{msg}"
    );
}

#[test]
fn a_finished_or_deleted_holder_frees_the_stage_untouched() {
    let api = dev_held_by("done", "Failed", later(-5));
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    assert_eq!(get(&api, "promotions", "done")["status"]["phase"], "Failed");
    assert!(
        get(&api, "promotions", "done")["status"]
            .get("message")
            .is_none()
    );
    held_by(&api, "gone");
    assert!(promote(&api, "dev", "v2").unwrap().phase.succeeded());
}

#[test]
fn losing_the_claim_race_closes_ours_as_not_started() {
    let (api, _, _) = world();
    api.put(
        &col("promotions"),
        foreign("rival", "dev", "Running", later(60)),
    );
    // Right before our claim, the rival claims the Stage: our resourceVersion is stale.
    api.before_write("stages/dev/status", |objects| {
        let st = objects.get_mut(&path("stages", "dev")).unwrap();
        st["status"] = json!({"currentPromotion": {"name": "rival"}});
    });
    let e = promote(&api, "dev", "v1").unwrap_err();
    assert!(
        matches!(&e, Error::StageBusy { running, .. } if running == "rival"),
        "{e:?}"
    );
    let ours: Vec<Value> = promotions(&api)
        .into_iter()
        .filter(|p| p["metadata"]["name"] != "rival")
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["status"]["phase"], "Aborted");
    assert!(
        ours[0]["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not started: Stage \"dev\" in project \"demo\" is busy"),
        "{}",
        ours[0]["status"]
    );
    assert_eq!(
        get(&api, "stages", "dev")["status"]["currentPromotion"]["name"],
        "rival"
    );
}

#[test]
fn a_claim_conflict_from_an_unrelated_write_is_retried() {
    let (api, _, _) = world();
    api.before_write("stages/dev/status", |objects| {
        let st = objects.get_mut(&path("stages", "dev")).unwrap();
        st["metadata"]["labels"] = json!({"team": "web"});
    });
    let s = promote(&api, "dev", "v1").unwrap();
    assert!(s.phase.succeeded(), "{s:?}");
}

#[test]
fn a_failed_step_fails_the_promotion_and_marks_no_freight() {
    let (api, v1, _) = world();
    api.put(&col("stages"), direct("dev", json!([wait_step("missing")])));
    let s = promote(&api, "dev", "v1").unwrap();
    assert_eq!(s.phase, Outcome::Finished(PromotionPhase::Failed));
    assert!(
        s.message
            .contains("unable to find Argo CD Application \"missing\""),
        "{}",
        s.message
    );
    assert_eq!(s.steps[0].status, Some(PromotionStepStatus::Failed));
    let st = get(&api, "stages", "dev");
    assert_eq!(st["status"]["lastPromotion"]["status"]["phase"], "Failed");
    assert!(st["status"].get("freightHistory").is_none(), "{st}");
    assert!(get(&api, "freights", v1.name()).get("status").is_none());
    let meta = &get(&api, "promotions", &s.promotion)["status"]["stepExecutionMetadata"][0];
    assert_eq!(meta["errorCount"], 1);
}

#[test]
fn continue_on_error_lets_the_promotion_succeed_and_if_skips() {
    let (api, _, _) = world();
    let mut failing = wait_step("missing");
    failing["continueOnError"] = json!(true);
    let mut skipped = wait_step("missing");
    skipped["if"] = json!("${{ false }}");
    api.put(
        &col("stages"),
        direct("dev", json!([failing, skipped, wait_step("demo-dev")])),
    );
    let s = promote(&api, "dev", "v1").unwrap();
    assert!(s.phase.succeeded(), "{s:?}");
    let statuses: Vec<_> = s.steps.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            Some(PromotionStepStatus::Failed),
            Some(PromotionStepStatus::Skipped),
            Some(PromotionStepStatus::Succeeded)
        ]
    );
}

#[test]
fn without_an_argocd_step_the_stage_health_is_unknown() {
    let (api, _, _) = world();
    let mut skipped = wait_step("demo-dev");
    skipped["if"] = json!("${{ false }}");
    api.put(&col("stages"), direct("dev", json!([skipped])));
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    let health = &get(&api, "stages", "dev")["status"]["health"];
    assert_eq!(health["status"], "Unknown");
    assert!(
        health["issues"][0]
            .as_str()
            .unwrap()
            .contains("not observed")
    );
}

#[test]
fn an_unhealthy_application_leaves_the_stage_unhealthy() {
    let (api, _, _) = world();
    api.put(&app_path("argocd", ""), app("demo-dev", "Progressing"));
    let mut only_sync = wait_step("demo-dev");
    only_sync["config"]["apps"][0]["waitFor"] = json!(["sync"]);
    api.put(&col("stages"), direct("dev", json!([only_sync])));
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    assert_eq!(
        get(&api, "stages", "dev")["status"]["health"]["status"],
        "Unhealthy"
    );
}

#[test]
fn progress_write_failures_are_counted_in_the_recorded_result() {
    let (api, _, _) = world();
    let s = settings();
    let source = Cluster::new(&api, NS.into(), true);
    let mut rec = ClusterRecorder::new(&api, NS, &s, identity());
    let plan =
        super::plan::resolve(&source, "dev", None, Some("v1"), jiff::Timestamp::now()).unwrap();
    let name = plan.name.clone();
    // Fail only the step record: after `started`, before the result.
    let summary = {
        use super::Recorder;
        let begun = rec.begin(&plan).unwrap();
        api.fail_writes(&format!("promotions/{name}/status"), 500, 1);
        let ctx = crate::steps::PromotionContext {
            project: NS.into(),
            stage: "dev".into(),
            promotion: name.clone(),
            target_freight: plan.freight.clone(),
            collection: plan.collection.clone(),
            actor: begun.actor.clone(),
        };
        let mut rt = crate::steps::Runtime::new(&ctx, Default::default(), false);
        rt.quiet = true;
        super::Source::equip(&source, &mut rt, s.deadline, s.timeout);
        let result =
            crate::runner::run_steps("dev", &begun.steps, &begun.vars, &mut rt, &mut rec).unwrap();
        let mut summary = super::summary::of(&rt, &result, &plan, &begun).unwrap();
        rec.close(&plan, &begun, &result, &rt, &mut summary)
            .unwrap();
        summary
    };
    assert!(summary.phase.succeeded());
    let p = get(&api, "promotions", &name);
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(
        p["status"]["message"],
        "all steps completed (1 progress write(s) failed)"
    );
}

#[test]
fn the_freight_it_replaces_leaves_the_stage_and_history_stays_unique_and_short() {
    let (api, v1, v2) = world();
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    assert!(promote(&api, "dev", "v2").unwrap().phase.succeeded());
    let f1 = get(&api, "freights", v1.name());
    assert!(f1["status"]["currentlyIn"].get("dev").is_none(), "{f1}");
    assert!(
        f1["status"]["verifiedIn"]["dev"].is_object(),
        "verification stays"
    );
    assert!(get(&api, "freights", v2.name())["status"]["currentlyIn"]["dev"].is_object());
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    let history = get(&api, "stages", "dev")["status"]["freightHistory"].clone();
    let names: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["items"]["Warehouse/web"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [v1.name(), v2.name()],
        "the same collection is not listed twice"
    );
    // At most HISTORY entries.
    let mut st = get(&api, "stages", "dev");
    st["status"]["freightHistory"] = json!(
        (0..12)
            .map(|i| json!({"id": format!("old{i}"), "items": {}}))
            .collect::<Vec<_>>()
    );
    api.put(&col("stages"), st);
    assert!(promote(&api, "dev", "v2").unwrap().phase.succeeded());
    let history = &get(&api, "stages", "dev")["status"]["freightHistory"];
    assert_eq!(history.as_array().unwrap().len(), record::HISTORY);
    assert_eq!(history[0]["items"]["Warehouse/web"]["name"], v2.name());
}

#[test]
fn a_dry_run_writes_nothing_and_shows_the_promotion_it_would_create() {
    let (api, _, _) = world();
    let mut s = settings();
    s.dry_run = true;
    let source = Cluster::new(&api, NS.into(), true);
    let mut rec = Terminal::cluster_dry_run(&s, identity());
    let start = Start::New {
        stage: "dev",
        freight: None,
        alias: Some("v1"),
    };
    let summary = run(&source, &mut rec, start, &s).unwrap();
    assert!(summary.dry_run);
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    let obj = summary.object.unwrap();
    let a = &obj["metadata"]["annotations"];
    assert_eq!(a["kargo.akuity.io/create-actor"], "kubernetes:alice");
    assert_eq!(a[LEASE_HOLDER], "alice@test/1");
    assert!(a[LEASE_EXPIRES].is_string());
    assert_eq!(obj["spec"]["steps"][0]["uses"], "argocd-wait");
    assert_eq!(obj["metadata"]["labels"]["kargo.akuity.io/stage"], "dev");
}

#[test]
fn begin_failing_to_start_the_promotion_says_so() {
    let (api, _, _) = world();
    let s = settings();
    let source = Cluster::new(&api, NS.into(), true);
    let plan =
        super::plan::resolve(&source, "dev", None, Some("v1"), jiff::Timestamp::now()).unwrap();
    // The claim goes through; the first write of the Promotion's status (`started`) fails.
    api.fail_writes(&format!("promotions/{}/status", plan.name), 503, 1);
    let mut rec = ClusterRecorder::new(&api, NS, &s, identity());
    let e = super::Recorder::begin(&mut rec, &plan).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("starting Promotion {}", plan.name)),
        "{e}"
    );
}

// ---- resuming ---------------------------------------------------------------------------------------

/// An interrupted Promotion of dev: `argocd-update` (of an app that does not exist, so running it
/// again would fail) recorded as `status0`, then an `argocd-wait`.
fn interrupted(api: &MemApi, v1: &Freight, status0: &str) -> String {
    let name = format!("dev.01jabcdefghjkmnpqrstvwxyz0.{}", &v1.name()[..7]);
    api.put(
        &col("promotions"),
        json!({
            "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
            "metadata": {"name": name, "namespace": NS, "annotations": {
                "kargo.akuity.io/create-actor": "kubernetes:alice",
                LEASE_HOLDER: "alice@laptop/9", LEASE_EXPIRES: timestamp(later(-30))}},
            "spec": {"stage": "dev", "freight": v1.name(), "steps": [update_step("gone"), wait_step("demo-dev")]},
            "status": {"phase": "Running", "startedAt": "2026-12-01T10:00:00Z",
                "stepExecutionMetadata": [{"alias": "step-1", "status": status0}],
                "state": {"step-1": {"apps": [{"name": "gone", "namespace": "argocd"}]}}},
        }),
    );
    held_by(api, &name);
    name
}

#[test]
fn resume_does_not_run_again_a_remote_step_recorded_as_done() {
    let (api, v1, _) = world();
    let name = interrupted(&api, &v1, "Succeeded");
    let s = resume_with(&api, &name, &settings()).unwrap();
    assert!(s.phase.succeeded(), "{s:?}");
    assert!(
        s.steps[0]
            .message
            .starts_with("done before the interruption"),
        "{:?}",
        s.steps[0]
    );
    let p = get(&api, "promotions", &name);
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(
        p["status"]["startedAt"], "2026-12-01T10:00:00Z",
        "the first start is kept"
    );
    assert_eq!(
        p["status"]["state"]["step-1"]["apps"][0]["name"], "gone",
        "outputs kept"
    );
    assert_eq!(p["metadata"]["annotations"][LEASE_HOLDER], "alice@test/1");
}

#[test]
fn resume_runs_again_a_remote_step_that_did_not_succeed() {
    let (api, v1, _) = world();
    let name = interrupted(&api, &v1, "Running");
    // Not recorded as done, the argocd-update runs again: so it is checked before any write,
    // and its Application is gone.
    let e = resume_with(&api, &name, &settings()).unwrap_err();
    assert!(
        matches!(&e, Error::Undeliverable { step, reason } if step.starts_with("step-1") && reason.contains("argocd/gone does not exist")),
        "{e:?}"
    );
    assert!(api.writes().is_empty(), "{:?}", api.writes());
}

#[test]
fn resume_dry_run_lists_what_would_run_and_writes_nothing() {
    let (api, v1, _) = world();
    let name = interrupted(&api, &v1, "Succeeded");
    let mut s = settings();
    s.dry_run = true;
    let source = Cluster::new(&api, NS.into(), true);
    let mut rec = Terminal::cluster_dry_run(&s, identity());
    let summary = run(&source, &mut rec, Start::Resume { promotion: &name }, &s).unwrap();
    let shown: Vec<String> = summary.steps.iter().map(|r| r.status_text()).collect();
    assert_eq!(shown, ["Skipped", "Pending"]);
    assert!(api.writes().is_empty(), "{:?}", api.writes());
}

#[test]
fn resume_refuses_a_missing_or_live_promotion() {
    let (api, v1, _) = world();
    let e = resume_with(&api, "nope", &settings()).unwrap_err();
    assert!(
        e.to_string().contains("not found in project \"demo\""),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("get promotions"));
    let name = interrupted(&api, &v1, "Succeeded");
    let mut p = get(&api, "promotions", &name);
    p["metadata"]["annotations"][LEASE_EXPIRES] = json!(timestamp(later(60)));
    api.put(&col("promotions"), p);
    let e = resume_with(&api, &name, &settings()).unwrap_err();
    assert!(
        e.to_string().contains("still being run by alice@laptop/9"),
        "{e}"
    );
    assert!(api.writes().is_empty());
}

// ---- records shared with other commands, and errors ---------------------------------------------------

#[test]
fn abort_closes_the_promotion_and_frees_its_stage() {
    let api = dev_held_by("p", "Running", later(-1));
    record::aborted(&api, NS, "p", "Promotion terminated by alice").unwrap();
    let stage: promote_api::types::Stage =
        serde_json::from_value(get(&api, "stages", "dev")).unwrap();
    record::stage_freed(&api, NS, &stage, "p", "f", "Promotion terminated by alice").unwrap();
    let p = get(&api, "promotions", "p");
    assert_eq!(p["status"]["phase"], "Aborted");
    assert!(p["status"]["finishedAt"].is_string());
    let st = get(&api, "stages", "dev");
    assert!(st["status"].get("currentPromotion").is_none());
    assert_eq!(st["status"]["lastPromotion"]["status"]["phase"], "Aborted");
    let ready = ready_condition(&st);
    assert_eq!(
        (ready.0.as_str(), ready.1.as_str()),
        ("False", "LastPromotionAborted")
    );
}

/// The Ready condition's (status, reason, message).
fn ready_condition(stage: &Value) -> (String, String, String) {
    let c = stage["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    let f = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    (f("status"), f("reason"), f("message"))
}

#[test]
fn the_stage_shows_its_freight_and_readiness_as_kargo_does() {
    let (api, v1, _) = world();
    let s = promote(&api, "dev", "v1").unwrap();
    let st = get(&api, "stages", "dev");
    assert_eq!(st["status"]["freightSummary"], v1.name());
    assert_eq!(
        ready_condition(&st),
        (
            "True".into(),
            "Verified".into(),
            "Freight has been verified".into()
        )
    );
    assert!(
        st["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "Promoting")
    );
    // A failed promotion leaves the Freight the Stage had, and says it is not Ready.
    api.put(&col("stages"), {
        let mut st = get(&api, "stages", "dev");
        st["spec"]["promotionTemplate"]["spec"]["steps"] = json!([wait_step("missing")]);
        st
    });
    let failed = promote(&api, "dev", "v2").unwrap();
    let st = get(&api, "stages", "dev");
    assert_eq!(st["status"]["freightSummary"], v1.name(), "{}", s.promotion);
    let (status, reason, message) = ready_condition(&st);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "LastPromotionFailed")
    );
    assert_eq!(message, failed.message);
}

#[test]
fn a_claimed_stage_says_it_is_promoting() {
    let (api, v1, _) = world();
    let stage: promote_api::types::Stage =
        serde_json::from_value(get(&api, "stages", "dev")).unwrap();
    record::claimed(&api, NS, &stage, "dev.p", &v1).unwrap();
    let st = get(&api, "stages", "dev");
    let (status, reason, message) = ready_condition(&st);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "ActivePromotion")
    );
    assert_eq!(message, "Promotion \"dev.p\" is currently Running");
}

#[test]
fn approval_is_recorded_on_the_freight_status() {
    let (api, v1, _) = world();
    record::approved(&api, NS, v1.name(), "prod").unwrap();
    assert!(
        get(&api, "freights", v1.name())["status"]["approvedFor"]["prod"]["approvedAt"].is_string()
    );
    let e = record::approved(&api, NS, "nope", "prod").unwrap_err();
    assert!(e.not_found());
}

#[test]
fn each_failure_has_the_hint_that_fits_it() {
    let connect = Error::Connect(crate::kube::ConnectError::NoCluster("no config".into()));
    assert!(connect.hint().unwrap().contains("--kubeconfig"));
    let decode = Error::Decode {
        what: "Stage dev".into(),
        reason: "bad".into(),
    };
    assert!(decode.hint().unwrap().contains("manifests/crds"));
    let interrupted = Error::Interrupted {
        during: "waiting for Stage dev".into(),
    };
    assert_eq!(
        interrupted.to_string(),
        "interrupted while waiting for Stage dev"
    );
    let missing = Error::NotFound {
        kind: "Freight",
        name: "x".into(),
        project: NS.into(),
    };
    assert_eq!(
        missing.to_string(),
        "Freight \"x\" not found in project \"demo\""
    );
    assert_eq!(
        missing.hint().unwrap(),
        "list them with kubectl promote get freight"
    );
    assert_eq!(Error::Usage("x".into()).exit_code(), 2);
    assert_eq!(decode.exit_code(), 1);
}

#[test]
fn identity_comes_from_the_server_else_the_local_user() {
    let api = MemApi::as_user("alice");
    let id = Identity::ask(&api, Some("carol".into())).unwrap();
    assert_eq!(id.actor.as_deref(), Some("alice"));
    assert!(id.holder.starts_with("alice@"));
    let anonymous = MemApi::default();
    let id = Identity::ask(&anonymous, Some("carol".into())).unwrap();
    assert_eq!(id.actor.as_deref(), Some("carol"));
}

// ---- retries ----------------------------------------------------------------------------------------

#[test]
fn transient_errors_are_tried_again_with_backoff() {
    let (api, _, _) = world();
    // The API server answers 503 twice, then the Application.
    api.fail_reads("applications/demo-dev", 503, 2);
    let s = promote(&api, "dev", "v1").unwrap();
    assert!(s.phase.succeeded(), "{s:?}");
    let gets = api
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|(m, p)| m == "GET" && p.ends_with("applications/demo-dev"))
        .count();
    assert_eq!(gets, 3);
}

#[test]
fn transient_errors_give_up_after_their_attempts_and_refusals_at_once() {
    let (api, _, _) = world();
    api.fail_reads("applications/demo-dev", 503, 100);
    let s = promote(&api, "dev", "v1").unwrap();
    assert_eq!(s.phase, Outcome::Finished(PromotionPhase::Errored));
    assert!(
        s.message.ends_with(&format!(
            "(after {} attempts)",
            crate::runner::TRANSIENT_ATTEMPTS
        )),
        "{}",
        s.message
    );
    let (api, _, _) = world();
    api.fail_reads("applications/demo-dev", 403, 100);
    let s = promote(&api, "dev", "v1").unwrap();
    assert_eq!(s.phase, Outcome::Finished(PromotionPhase::Errored));
    assert!(
        !s.message.contains("attempts"),
        "a refusal is not retried: {}",
        s.message
    );
}

#[test]
fn error_threshold_retries_any_error_that_many_times() {
    let (api, _, _) = world();
    let mut step = wait_step("demo-dev");
    step["retry"] = json!({"errorThreshold": 6, "timeout": "1m"});
    api.put(&col("stages"), direct("dev", json!([step])));
    api.fail_reads("applications/demo-dev", 503, 5);
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    let mut bad = wait_step("demo-dev");
    bad["retry"] = json!({"timeout": "soon"});
    api.put(&col("stages"), direct("dev", json!([bad])));
    // A bad timeout is refused when the Stage is read, before anything is written.
    let e = promote(&api, "dev", "v1").unwrap_err();
    assert!(e.to_string().contains("retry.timeout"), "{e}");
}

// ---- before the first write --------------------------------------------------------------------------

#[test]
fn an_application_that_does_not_authorize_the_stage_stops_the_promotion_before_any_write() {
    let (api, _, _) = world();
    let mut other = app("demo-dev", "Healthy");
    other["metadata"]["annotations"]["kargo.akuity.io/authorized-stage"] = json!("demo:prod");
    api.put(&app_path("argocd", ""), other);
    api.put(
        &col("stages"),
        direct("dev", json!([wait_step("demo-dev"), {"uses": "argocd-update", "vars": [{"name": "app", "value": "demo-${{ ctx.stage }}"}], "config": {"apps": [{"name": "${{ vars.app }}"}]}}])),
    );
    let e = promote(&api, "dev", "v1").unwrap_err();
    assert!(matches!(e, Error::Undeliverable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .contains("step step-2 (argocd-update) cannot deliver"),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("nothing was written"));
    assert!(api.writes().is_empty(), "{:?}", api.writes());
    // A missing Application too; one named from step outputs is left to the step.
    api.put(&col("stages"), direct("dev", json!([update_step("nope")])));
    assert!(matches!(
        promote(&api, "dev", "v1"),
        Err(Error::Undeliverable { .. })
    ));
    api.put(
        &col("stages"),
        direct("dev", json!([{"uses": "argocd-wait", "as": "wait", "config": {"apps": [{"name": "demo-dev"}]}}, {"uses": "argocd-update", "config": {"apps": [{"name": "${{ outputs.wait.apps[0].name }}x"}]}}])),
    );
    let s = promote(&api, "dev", "v1").unwrap();
    assert!(s.message.contains("unable to find"), "{}", s.message);
}

#[test]
fn a_stage_that_asks_for_verification_is_not_verified_by_a_promotion() {
    let (api, v1, _) = world();
    let mut s = direct("dev", json!([wait_step("demo-dev")]));
    s["spec"]["verification"] = json!({ "analysisTemplates": [{ "name": "smoke" }] });
    api.put(&col("stages"), s);
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    let f = get(&api, "freights", v1.name());
    assert!(f["status"]["currentlyIn"]["dev"].is_object(), "{f}");
    assert!(f["status"].get("verifiedIn").is_none(), "{f}");
    let stage = get(&api, "stages", "dev");
    let cond = |t: &str| {
        stage["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond("Verified")["reason"], "VerificationNotRun");
    assert_eq!(cond("Ready")["status"], "False");
    assert_eq!(cond("Ready")["reason"], "PendingVerification");
}

#[test]
fn a_failed_promotion_leaves_no_stale_healthy_and_refresh_records_live_health() {
    use crate::commands::refresh::{live_health, refresh_patch};
    use crate::kube::Api;
    let (api, _, _) = world();
    assert!(promote(&api, "dev", "v1").unwrap().phase.succeeded());
    assert_eq!(
        get(&api, "stages", "dev")["status"]["health"]["status"],
        "Healthy"
    );
    // The next promotion fails before it reaches Argo CD: what runs is no longer known.
    api.put(
        &col("stages"),
        direct(
            "dev",
            json!([{"uses": "fail", "config": {"message": "boom"}}, wait_step("demo-dev")]),
        ),
    );
    let mut stage = get(&api, "stages", "dev");
    let s = promote(&api, "dev", "v2").unwrap();
    assert_eq!(s.phase, Outcome::Finished(PromotionPhase::Failed));
    stage = {
        let now = get(&api, "stages", "dev");
        assert_ne!(now, stage);
        now
    };
    let health = &stage["status"]["health"];
    assert_eq!(health["status"], "Unknown", "{health}");
    assert!(
        health["issues"][0]
            .as_str()
            .unwrap()
            .contains("kubectl promote refresh stage/dev"),
        "{health}"
    );
    // Later the Application degrades: the live health says so, and refresh records it.
    let mut degraded = app("demo-dev", "Degraded");
    degraded["status"]["health"]["message"] = json!("crash loop");
    api.put(&app_path("argocd", ""), degraded);
    let live = live_health(&api, &stage)
        .unwrap()
        .expect("an Application to check");
    assert_eq!(live["status"], "Unhealthy");
    assert_eq!(
        live["issues"][0],
        "Argo CD Application argocd/demo-dev is Degraded: crash loop"
    );
    assert!(
        live["output"]["checkedAt"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let patch = refresh_patch(&stage, &live).unwrap();
    api.merge_patch(&format!("{}/status", path("stages", "dev")), &patch)
        .unwrap();
    let stage = get(&api, "stages", "dev");
    assert_eq!(stage["status"]["health"]["status"], "Unhealthy");
    let cond = |t: &str| {
        stage["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond("Healthy")["status"], "False");
    assert_eq!(cond("Healthy")["reason"], "Unhealthy");
    assert_eq!(cond("Ready")["status"], "False");
    // Healthy again: recorded as Healthy, conditions follow.
    api.put(&app_path("argocd", ""), app("demo-dev", "Healthy"));
    let live = live_health(&api, &stage).unwrap().unwrap();
    assert_eq!(live["status"], "Healthy");
    assert!(live.get("issues").is_none());
    let patch = refresh_patch(&stage, &live).unwrap();
    assert_eq!(
        patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Healthy")
            .unwrap()["status"],
        "True"
    );
}
