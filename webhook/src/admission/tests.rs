//! Decision tests: each review runs as the API server runs it (mutating hook, patch applied,
//! then validating hook), against objects held in a [`StaticCluster`].

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::cluster::StaticCluster;

const PROJECT: &str = "kargo-demo";
const PROMO: &str = "test.01j00000000000000000000000.be79d3d";
const OLD_PROMO: &str = "test.01h00000000000000000000000.1a2b3c4";
const FREIGHT: &str = "be79d3d863f2323dd406cff7a99de434892f8740";
const CONTROLLER: &str = "system:serviceaccount:argocd:argocd-application-controller";

fn promotion(name: &str, stage: &str, phase: Option<&str>) -> Value {
    let mut p = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Promotion",
        "metadata": {
            "name": name,
            "namespace": PROJECT,
            "annotations": { "kargo.akuity.io/create-actor": "kubernetes:alice" }
        },
        "spec": {
            "stage": stage,
            "freight": FREIGHT,
            "steps": [{ "uses": "argocd-update", "config": { "apps": [{ "name": "guestbook-test" }] } }]
        }
    });
    // What kubectl promote records before its write (promote_api::trust::SYNC_PLAN).
    p["status"] = json!({ "state": { "promote.dev/argocd-update": { "argocd/guestbook-test": {
        "sources": [{ "repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main" }],
        "revisions": ["bbbb"]
    } } } });
    if let Some(phase) = phase {
        p["status"]["phase"] = json!(phase);
    }
    p
}

fn stage(name: &str, with_steps: bool) -> Value {
    let mut s = json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Stage",
        "metadata": { "name": name, "namespace": PROJECT, "uid": format!("uid-{name}") },
        "spec": {
            "vars": [{ "name": "gitRepo", "value": "https://git.example.com/gitops.git" }],
            "requestedFreight": [{
                "origin": { "kind": "Warehouse", "name": "my-warehouse" },
                "sources": { "direct": name == "dev", "stages": if name == "dev" { json!([]) } else { json!(["dev"]) } }
            }]
        }
    });
    if with_steps {
        s["spec"]["promotionTemplate"] = json!({ "spec": { "steps": [
            { "uses": "git-clone", "config": { "repoURL": "${{ vars.gitRepo }}", "checkout": [{ "branch": "main", "path": "./src" }] } },
            { "uses": "argocd-update", "config": { "apps": [{ "name": format!("guestbook-{name}") }] } }
        ] } });
    }
    s
}

fn freight(verified_in: &[&str]) -> Value {
    let verified: serde_json::Map<String, Value> = verified_in
        .iter()
        .map(|s| ((*s).to_owned(), json!({})))
        .collect();
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Freight",
        "metadata": { "name": FREIGHT, "namespace": PROJECT },
        "alias": "frozen-fox",
        "origin": { "kind": "Warehouse", "name": "my-warehouse" },
        "images": [{ "repoURL": "nginx", "tag": "1.25.0" }],
        "status": { "verifiedIn": verified }
    })
}

fn app(annotation: Option<&str>) -> Value {
    let mut a = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": { "name": "guestbook-test", "namespace": "argocd", "resourceVersion": "41" },
        "spec": {
            "project": "default",
            "source": { "repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main" },
            "destination": { "server": "https://kubernetes.default.svc", "namespace": "guestbook" },
            "syncPolicy": { "syncOptions": ["CreateNamespace=true"] }
        },
        "status": {
            "sync": { "status": "Synced", "revision": "aaaa" },
            "health": { "status": "Healthy" },
            "operationState": { "phase": "Succeeded", "startedAt": "2026-11-20T10:00:00Z", "operation": { "sync": { "revision": "aaaa" } } }
        }
    });
    if let Some(v) = annotation {
        a["metadata"]["annotations"] = json!({ "kargo.akuity.io/authorized-stage": v });
    }
    a
}

/// The operation `kubectl promote` sends (before the mutating hook completes it).
fn client_op(promotion: &str) -> Value {
    json!({
        "info": [
            { "name": "kargo.akuity.io/promotion", "value": promotion },
            { "name": "kargo.akuity.io/project", "value": PROJECT }
        ],
        "sync": { "revision": "bbbb" }
    })
}

fn with_op(mut a: Value, op: Value) -> Value {
    a["operation"] = op;
    a
}

fn user(name: &str) -> Value {
    json!({ "username": name, "groups": ["system:authenticated"] })
}

fn request(
    kind: &str,
    operation: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    who: &str,
) -> Request {
    let obj = new.or(old).cloned().unwrap_or(Value::Null);
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": if kind == "Application" { "argoproj.io" } else { "kargo.akuity.io" }, "version": "v1alpha1", "kind": kind },
            "resource": { "group": "", "version": "v1alpha1", "resource": "" },
            "name": obj.pointer("/metadata/name").cloned().unwrap_or(json!("")),
            "namespace": obj.pointer("/metadata/namespace").cloned().unwrap_or(json!("")),
            "operation": operation,
            "userInfo": user(who),
            "object": new,
            "oldObject": old,
        }
    });
    parse_review(review.to_string().as_bytes()).unwrap()
}

/// A cluster with the standard objects; alice may promote everything, bob nothing.
fn cluster(promotions: Vec<Value>) -> StaticCluster {
    let mut c = StaticCluster::default();
    for p in promotions {
        c.add(p).unwrap();
    }
    for s in [
        stage("dev", true),
        stage("test", true),
        stage("empty", false),
    ] {
        c.add(s).unwrap();
    }
    c.add(freight(&["dev"])).unwrap();
    c.add(json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": { "name": "my-warehouse", "namespace": PROJECT },
        "spec": { "subscriptions": [{ "image": { "repoURL": "nginx" } }] }
    }))
    .unwrap();
    c.promoters = Some(vec![("alice".into(), PROJECT.into(), "*".into())]);
    c.authorizers = Some(vec![("alice".into(), PROJECT.into(), "*".into())]);
    c
}

fn policy() -> Policy {
    Policy {
        now: "2026-11-24T12:00:00Z".parse().unwrap(),
        ulid: ulid::Ulid::from_parts(1_790_000_000_000, 7),
        ..Policy::default()
    }
}

fn apply(obj: &Value, patch: &[json_patch::PatchOperation]) -> Value {
    let mut out = obj.clone();
    json_patch::patch(&mut out, patch).unwrap();
    out
}

/// Run the mutating then the validating hook of `kind`, as kube-apiserver does; returns the
/// final verdict and the object as stored.
fn admit(
    c: &StaticCluster,
    kind: &str,
    operation: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    who: &str,
) -> (Verdict, Option<Value>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut new = new.cloned();
    if let Some(m) = Hook::for_kind(kind, true) {
        let req = request(kind, operation, old, new.as_ref(), who);
        let v = rt.block_on(review(m, &req, c, &policy()));
        if !v.allowed {
            return (v, None);
        }
        if let Some(obj) = &new {
            new = Some(apply(obj, &v.patch));
        }
    }
    let hook = Hook::for_kind(kind, false).unwrap();
    let req = request(kind, operation, old, new.as_ref(), who);
    (rt.block_on(review(hook, &req, c, &policy())), new)
}

fn validate_only(
    c: &StaticCluster,
    kind: &str,
    operation: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    who: &str,
) -> Verdict {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let hook = Hook::for_kind(kind, false).unwrap();
    rt.block_on(review(
        hook,
        &request(kind, operation, old, new, who),
        c,
        &policy(),
    ))
}

/// Expected outcome: `Ok(())` allowed, `Err((code, fragment))` denied with a message containing
/// the fragment.
type Expect = Result<(), (u16, &'static str)>;

fn check(name: &str, got: &Verdict, want: &Expect) {
    match want {
        Ok(()) => assert!(
            got.allowed,
            "{name}: expected allowed, got {} {}",
            got.code, got.message
        ),
        Err((code, fragment)) => {
            assert!(!got.allowed, "{name}: expected a denial");
            assert_eq!(got.code, *code, "{name}: {}", got.message);
            assert!(
                got.message.contains(fragment),
                "{name}: message {:?} lacks {fragment:?}",
                got.message
            );
        }
    }
}

#[test]
fn application_authorization_table() {
    let running = promotion(PROMO, "test", Some("Running"));
    let pending = promotion(PROMO, "test", None);
    let c = cluster(vec![
        running.clone(),
        promotion(OLD_PROMO, "test", Some("Succeeded")),
    ]);
    let c_pending = cluster(vec![pending]);
    let c_failed = cluster(vec![promotion(PROMO, "test", Some("Failed"))]);
    let c_aborted = cluster(vec![promotion(PROMO, "test", Some("Aborted"))]);
    let c_errored = cluster(vec![promotion(PROMO, "test", Some("Errored"))]);
    let c_none = cluster(vec![]);
    let mut c_sar_error = cluster(vec![running.clone()]);
    c_sar_error.promoters = None;
    let promote = |ann: Option<&str>| -> (Value, Value) {
        let old = app(ann);
        let new = with_op(old.clone(), client_op(PROMO));
        (old, new)
    };
    struct Case {
        name: &'static str,
        cluster: StaticCluster,
        old: Option<Value>,
        new: Value,
        user: &'static str,
        operation: &'static str,
        want: Expect,
    }
    let case = |name, ann: Option<&'static str>, want| {
        let (old, new) = promote(ann);
        Case {
            name,
            cluster: c.clone(),
            old: Some(old),
            new,
            user: "alice",
            operation: "UPDATE",
            want,
        }
    };
    let mut cases = vec![
        case("exact entry", Some("kargo-demo:test"), Ok(())),
        case(
            "missing annotation",
            None,
            Err((403, "does not permit mutation by Kargo Stage \"test\"")),
        ),
        case(
            "empty annotation",
            Some(""),
            Err((403, "no authorized Stages")),
        ),
        case(
            "blank annotation",
            Some("   "),
            Err((403, "no authorized Stages")),
        ),
        case(
            "only commas",
            Some(" , ,"),
            Err((403, "no authorized Stages")),
        ),
        case(
            "whitespace around parts",
            Some(" kargo-demo : test "),
            Ok(()),
        ),
        case("list", Some("kargo-demo:prod,kargo-demo:test"), Ok(())),
        case(
            "list with blanks and trailing comma",
            Some("kargo-demo:prod, ,kargo-demo:test,"),
            Ok(()),
        ),
        case(
            "other project",
            Some("other:test"),
            Err((403, "kargo.akuity.io/authorized-stage: \"kargo-demo:test\"")),
        ),
        case(
            "other stage",
            Some("kargo-demo:prod"),
            Err((403, "does not permit")),
        ),
        case(
            "stage name prefix only",
            Some("kargo-demo:tes"),
            Err((403, "does not permit")),
        ),
        case(
            "case differs",
            Some("kargo-demo:Test"),
            Err((403, "does not permit")),
        ),
        case(
            "glob stage",
            Some("kargo-demo:*"),
            Err((403, "glob expressions are no longer supported")),
        ),
        case("glob project", Some("*:test"), Err((403, "glob"))),
        case("partial glob", Some("kargo-demo:te*"), Err((403, "glob"))),
        case(
            "no colon",
            Some("kargo-demo"),
            Err((403, "expected format")),
        ),
        case(
            "empty stage",
            Some("kargo-demo:"),
            Err((403, "expected format")),
        ),
        case(
            "empty project",
            Some(":test"),
            Err((403, "expected format")),
        ),
        case(
            "one malformed entry spoils the list",
            Some("kargo-demo:test,broken"),
            Err((403, "expected format")),
        ),
    ];
    // The annotation as it was before the request decides.
    let old = app(None);
    let new = with_op(app(Some("kargo-demo:test")), client_op(PROMO));
    cases.push(Case {
        name: "annotation added in the same request",
        cluster: c.clone(),
        old: Some(old),
        new,
        user: "alice",
        operation: "UPDATE",
        want: Err((403, "a request cannot authorize itself")),
    });
    let old = app(Some("kargo-demo:test"));
    let new = with_op(app(None), client_op(PROMO));
    cases.push(Case {
        name: "annotation removed in the same request",
        cluster: c.clone(),
        old: Some(old),
        new,
        user: "alice",
        operation: "UPDATE",
        // A promotion write changes nothing but its sources, operation and refresh annotation.
        want: Err((403, "may change only its sources, its sync operation")),
    });
    // The Promotion.
    for (name, cl, want) in [
        (
            "Promotion absent",
            c_none.clone(),
            Err((403, "does not exist in project(s) \"kargo-demo\"")),
        ),
        ("Promotion pending", c_pending.clone(), Ok(())),
        (
            "Promotion failed",
            c_failed,
            Err((403, "is already Failed")),
        ),
        (
            "Promotion aborted",
            c_aborted,
            Err((403, "is already Aborted")),
        ),
        (
            "Promotion errored",
            c_errored,
            Err((403, "is already Errored")),
        ),
    ] {
        let (old, new) = promote(Some("kargo-demo:test"));
        cases.push(Case {
            name,
            cluster: cl,
            old: Some(old),
            new,
            user: "alice",
            operation: "UPDATE",
            want,
        });
    }
    let old = app(Some("kargo-demo:test"));
    let new = with_op(old.clone(), client_op(OLD_PROMO));
    cases.push(Case {
        name: "replayed old promotion",
        cluster: c.clone(),
        old: Some(old),
        new,
        user: "alice",
        operation: "UPDATE",
        want: Err((403, "is already Succeeded")),
    });
    // Without the project info the Promotion is found through the annotation's projects.
    let old = app(Some("kargo-demo:test"));
    let mut op = client_op(PROMO);
    op["info"].as_array_mut().unwrap().pop();
    let new = with_op(old.clone(), op);
    cases.push(Case {
        name: "project found through the annotation",
        cluster: c.clone(),
        old: Some(old),
        new,
        user: "alice",
        operation: "UPDATE",
        want: Ok(()),
    });
    // The user.
    let (old, new) = promote(Some("kargo-demo:test"));
    cases.push(Case {
        name: "user without promote",
        cluster: c.clone(),
        old: Some(old.clone()),
        new: new.clone(),
        user: "bob",
        operation: "UPDATE",
        want: Err((403, "user \"bob\" is not permitted")),
    });
    cases.push(Case {
        name: "access review fails",
        cluster: c_sar_error,
        old: Some(old),
        new,
        user: "alice",
        operation: "UPDATE",
        want: Err((403, "refusing to sync")),
    });
    // Argo CD's own rule: one operation at a time.
    for (name, phase) in [
        ("operation running", "Running"),
        ("operation terminating", "Terminating"),
    ] {
        let mut old = app(Some("kargo-demo:test"));
        old["status"]["operationState"]["phase"] = json!(phase);
        let new = with_op(old.clone(), client_op(PROMO));
        cases.push(Case {
            name,
            cluster: c.clone(),
            old: Some(old),
            new,
            user: "alice",
            operation: "UPDATE",
            want: Err((409, "already in progress")),
        });
    }
    let old = with_op(
        app(Some("kargo-demo:test")),
        json!({ "initiatedBy": { "username": "carol" }, "sync": { "revision": "cccc" } }),
    );
    let new = with_op(old.clone(), client_op(PROMO));
    cases.push(Case {
        name: "operation pending",
        cluster: c.clone(),
        old: Some(old),
        new,
        user: "alice",
        operation: "UPDATE",
        want: Err((409, "pending operation initiated by \"carol\"")),
    });
    // Argo CD's writes pass.
    let (_, promoted) = admit(
        &c,
        "Application",
        "UPDATE",
        Some(&app(Some("kargo-demo:test"))),
        Some(&with_op(app(Some("kargo-demo:test")), client_op(PROMO))),
        "alice",
    );
    let promoted = promoted.unwrap();
    let mut cleared = promoted.clone();
    cleared.as_object_mut().unwrap().remove("operation");
    cleared["status"]["operationState"] =
        json!({ "phase": "Succeeded", "operation": promoted["operation"].clone() });
    cases.push(Case {
        name: "Argo CD clears the operation",
        cluster: c.clone(),
        old: Some(promoted.clone()),
        new: cleared.clone(),
        user: CONTROLLER,
        operation: "UPDATE",
        want: Ok(()),
    });
    let mut status = promoted.clone();
    status["status"]["reconciledAt"] = json!("2026-11-24T12:00:05Z");
    cases.push(Case {
        name: "Argo CD writes status",
        cluster: c.clone(),
        old: Some(promoted.clone()),
        new: status,
        user: CONTROLLER,
        operation: "UPDATE",
        want: Ok(()),
    });
    let mut tampered = promoted.clone();
    tampered["operation"]["sync"]["revision"] = json!("evil");
    cases.push(Case {
        name: "authorized operation tampered with",
        cluster: c.clone(),
        old: Some(promoted.clone()),
        new: tampered,
        user: "alice",
        operation: "UPDATE",
        want: Err((403, "cannot be changed")),
    });
    // Lockdown.
    let locked = |mut a: Value| {
        a["metadata"]["labels"] = json!({ "promote.dev/lockdown": "true" });
        a
    };
    let manual_op =
        json!({ "initiatedBy": { "username": "carol" }, "sync": { "revision": "HEAD" } });
    let old = locked(app(Some("kargo-demo:test")));
    cases.push(Case {
        name: "lockdown: manual sync denied",
        cluster: c.clone(),
        old: Some(old.clone()),
        new: with_op(old.clone(), manual_op.clone()),
        user: "carol",
        operation: "UPDATE",
        want: Err((403, "is locked down")),
    });
    cases.push(Case {
        name: "lockdown: Argo CD server may sync",
        cluster: c.clone(),
        old: Some(old.clone()),
        new: with_op(old.clone(), manual_op.clone()),
        user: "system:serviceaccount:argocd:argocd-server",
        operation: "UPDATE",
        want: Ok(()),
    });
    let mut retarget = old.clone();
    retarget["spec"]["source"]["targetRevision"] = json!("feature");
    cases.push(Case {
        name: "lockdown: source change denied",
        cluster: c.clone(),
        old: Some(old.clone()),
        new: retarget,
        user: "carol",
        operation: "UPDATE",
        want: Err((403, "its sources may change only through a promotion")),
    });
    let mut relabel = old.clone();
    relabel["metadata"]["labels"]["team"] = json!("web");
    cases.push(Case {
        name: "lockdown: other labels are covered too",
        cluster: c.clone(),
        old: Some(old.clone()),
        new: relabel,
        user: "carol",
        operation: "UPDATE",
        want: Err((403, "its labels, annotations or finalizers may change only")),
    });
    // Lockdown covers the whole Application (issue 16): its own label, destination, project,
    // automated sync and status; a refresh request stays anyone's.
    let mut unlock = old.clone();
    unlock["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("promote.dev/lockdown");
    let mut redirect = old.clone();
    redirect["spec"]["destination"]["namespace"] = json!("elsewhere");
    let mut reproject = old.clone();
    reproject["spec"]["project"] = json!("other");
    let mut automate = old.clone();
    automate["spec"]["syncPolicy"]["automated"] = json!({ "prune": true });
    let mut forged = old.clone();
    forged["status"]["health"]["status"] = json!("Degraded");
    let mut refresh = old.clone();
    refresh["metadata"]["annotations"]["argocd.argoproj.io/refresh"] = json!("hard");
    for (name, new, want) in [
        (
            "lockdown: removing its own label",
            unlock,
            Err((403, "its labels, annotations or finalizers")),
        ),
        (
            "lockdown: destination",
            redirect,
            Err((403, "its spec may change only")),
        ),
        (
            "lockdown: project",
            reproject,
            Err((403, "its spec may change only")),
        ),
        (
            "lockdown: automated sync",
            automate,
            Err((403, "its spec may change only")),
        ),
        (
            "lockdown: status",
            forged,
            Err((403, "its status may change only")),
        ),
        ("lockdown: refresh passes", refresh, Ok(())),
    ] {
        cases.push(Case {
            name,
            cluster: c.clone(),
            old: Some(old.clone()),
            new,
            user: "carol",
            operation: "UPDATE",
            want,
        });
    }
    // Application status of an Application that authorizes a Stage: Argo CD's alone.
    let open = app(Some("kargo-demo:test"));
    let mut faked = open.clone();
    faked["status"]["operationState"]["phase"] = json!("Succeeded");
    faked["status"]["sync"]["revision"] = json!("cccc");
    faked["status"]["reconciledAt"] = json!("2026-12-01T00:00:00Z");
    for (name, who, want) in [
        (
            "status forged by a user",
            "bob",
            Err((
                403,
                "its status (sync, health, history, reconciledAt, operationState) is written only by Argo CD",
            )),
        ),
        ("status written by Argo CD", CONTROLLER, Ok(())),
    ] {
        cases.push(Case {
            name,
            cluster: c.clone(),
            old: Some(open.clone()),
            new: faked.clone(),
            user: who,
            operation: "UPDATE",
            want,
        });
    }
    // The authorized-stage annotation changes only with the authorize verb.
    let mut widened = open.clone();
    widened["metadata"]["annotations"]["kargo.akuity.io/authorized-stage"] =
        json!("kargo-demo:test,kargo-demo:dev");
    let mut malformed = open.clone();
    malformed["metadata"]["annotations"]["kargo.akuity.io/authorized-stage"] =
        json!("kargo-demo:*");
    for (name, who, new, want) in [
        (
            "annotation widened without the verb",
            "bob",
            widened.clone(),
            Err((403, "needs the \"authorize\" verb on stages/dev")),
        ),
        (
            "annotation widened by an authorizer",
            "alice",
            widened.clone(),
            Ok(()),
        ),
        (
            "annotation widened by Argo CD",
            CONTROLLER,
            widened,
            Err((403, "needs the \"authorize\" verb")),
        ),
        (
            "annotation malformed",
            "alice",
            malformed,
            Err((422, "authorized-stage")),
        ),
        (
            "annotation added at creation without the verb",
            "bob",
            app(Some("kargo-demo:test")),
            Err((403, "needs the \"authorize\" verb on stages/test")),
        ),
    ] {
        let create = name.contains("creation");
        cases.push(Case {
            name,
            cluster: c.clone(),
            old: (!create).then(|| open.clone()),
            new,
            user: who,
            operation: if create { "CREATE" } else { "UPDATE" },
            want,
        });
    }
    // A promotion write is exactly the Promotion's recorded plan, written by its runner.
    let mut repath = with_op(open.clone(), client_op(PROMO));
    repath["spec"]["source"]["path"] = json!("env/prod");
    let mut other_rev = client_op(PROMO);
    other_rev["sync"]["revision"] = json!("evil");
    let mut p_bob = promotion(PROMO, "test", Some("Running"));
    p_bob["metadata"]["annotations"]["promote.dev/lease-holder"] = json!("bob@laptop/7");
    let mut p_noplan = promotion(PROMO, "test", Some("Running"));
    p_noplan["status"].as_object_mut().unwrap().remove("state");
    let mut redest = with_op(open.clone(), client_op(PROMO));
    redest["spec"]["destination"]["namespace"] = json!("elsewhere");
    for (name, cl, new, want) in [
        (
            "promotion write changing source.path",
            c.clone(),
            repath,
            Err((403, "are not the ones Promotion")),
        ),
        (
            "promotion write changing destination",
            c.clone(),
            redest,
            Err((403, "also changes its spec")),
        ),
        (
            "promotion write asking another revision",
            c.clone(),
            with_op(open.clone(), other_rev),
            Ok(()),
        ),
        (
            "someone else's Promotion",
            cluster(vec![p_bob]),
            with_op(open.clone(), client_op(PROMO)),
            Err((403, "is run by user \"bob\"")),
        ),
        (
            "Promotion without a plan",
            cluster(vec![p_noplan]),
            with_op(open.clone(), client_op(PROMO)),
            Err((403, "has not recorded a sync plan")),
        ),
    ] {
        cases.push(Case {
            name,
            cluster: cl,
            old: Some(open.clone()),
            new,
            user: "alice",
            operation: "UPDATE",
            want,
        });
    }
    cases.push(Case {
        name: "lockdown: promotion passes",
        cluster: c.clone(),
        old: Some(old.clone()),
        new: with_op(old.clone(), client_op(PROMO)),
        user: "alice",
        operation: "UPDATE",
        want: Ok(()),
    });
    let open = app(Some("kargo-demo:test"));
    cases.push(Case {
        name: "no lockdown: manual sync passes",
        cluster: c.clone(),
        old: Some(open.clone()),
        new: with_op(open.clone(), manual_op),
        user: "carol",
        operation: "UPDATE",
        want: Ok(()),
    });
    // Creation cannot carry a promotion.
    cases.push(Case {
        name: "create with a promotion operation",
        cluster: c.clone(),
        old: None,
        new: with_op(app(Some("kargo-demo:test")), client_op(PROMO)),
        user: "alice",
        operation: "CREATE",
        want: Err((403, "cannot be created with the sync operation")),
    });
    cases.push(Case {
        name: "create without operation",
        cluster: c.clone(),
        old: None,
        new: app(Some("kargo-demo:test")),
        user: "alice",
        operation: "CREATE",
        want: Ok(()),
    });

    assert!(cases.len() >= 30, "{} cases", cases.len());
    for case in &cases {
        let (got, _) = admit(
            &case.cluster,
            "Application",
            case.operation,
            case.old.as_ref(),
            Some(&case.new),
            case.user,
        );
        check(case.name, &got, &case.want);
    }
    let delete = validate_only(&c, "Application", "DELETE", Some(&app(None)), None, "carol");
    check("delete", &delete, &Ok(()));
}

#[test]
fn application_mutation_injects_the_authoritative_operation_idempotently() {
    let c = cluster(vec![promotion(PROMO, "test", Some("Running"))]);
    let old = app(Some("kargo-demo:test"));
    let mut sent = client_op(PROMO);
    // What a client may try to slip in is replaced.
    sent["initiatedBy"] = json!({ "username": "mallory" });
    sent["sync"]["prune"] = json!(true);
    sent["sync"]["source"] = json!({ "repoURL": "https://evil.example.com/x.git" });
    let new = with_op(old.clone(), sent);
    let (v, stored) = admit(&c, "Application", "UPDATE", Some(&old), Some(&new), "alice");
    assert!(v.allowed, "{}", v.message);
    let stored = stored.unwrap();
    assert_eq!(
        stored["operation"],
        json!({
            "initiatedBy": { "username": "alice" },
            "info": [
                { "name": "Reason", "value": promote_api::argocd::REASON },
                { "name": "kargo.akuity.io/promotion", "value": PROMO },
                { "name": "kargo.akuity.io/project", "value": PROJECT }
            ],
            "sync": { "revision": "bbbb", "syncOptions": ["CreateNamespace=true"] }
        })
    );
    assert_eq!(
        stored["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        json!("hard")
    );
    assert!(stored["status"].get("operationState").is_none());
    // Applying the hook to its own output changes nothing.
    let again = request("Application", "UPDATE", Some(&old), Some(&stored), "alice");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt.block_on(review(Hook::MutateApplication, &again, &c, &policy()));
    assert!(v.patch.is_empty(), "{:?}", v.patch);
    // Without the mutating hook, a spoofed operation is refused by the validating one.
    let spoofed = with_op(old.clone(), {
        let mut op = stored["operation"].clone();
        op["initiatedBy"]["username"] = json!("mallory");
        op
    });
    let v = validate_only(
        &c,
        "Application",
        "UPDATE",
        Some(&old),
        Some(&spoofed),
        "alice",
    );
    check(
        "spoofed initiatedBy",
        &v,
        &Err((403, "is not the one promote derives")),
    );
    // ... and the operation the plugin builds itself passes as is.
    let v = validate_only(
        &c,
        "Application",
        "UPDATE",
        Some(&old),
        Some(&stored),
        "alice",
    );
    check("authoritative operation", &v, &Ok(()));
}

#[test]
fn application_mutation_multi_source() {
    let mut p = promotion(PROMO, "test", Some("Running"));
    p["status"]["state"]["promote.dev/argocd-update"]["argocd/guestbook-test"] = json!({
        "sources": [
            { "repoURL": "https://charts.example.com", "chart": "guestbook", "targetRevision": "1.2.0" },
            { "repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main", "ref": "values" }
        ],
        "revisions": ["1.3.0", ""]
    });
    let c = cluster(vec![p]);
    let mut old = app(Some("kargo-demo:test"));
    let spec = old["spec"].as_object_mut().unwrap();
    spec.remove("source");
    spec.insert("sources".into(), json!([
        { "repoURL": "https://charts.example.com", "chart": "guestbook", "targetRevision": "1.2.0" },
        { "repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main", "ref": "values" }
    ]));
    spec.remove("syncPolicy");
    spec.insert("syncPolicy".into(), json!({ "retry": { "limit": 3 } }));
    let mut op = client_op(PROMO);
    op["sync"] = json!({ "revisions": ["1.3.0", ""] });
    let new = with_op(old.clone(), op);
    let (v, stored) = admit(&c, "Application", "UPDATE", Some(&old), Some(&new), "alice");
    assert!(v.allowed, "{}", v.message);
    let stored = stored.unwrap();
    assert_eq!(
        stored["operation"]["sync"],
        json!({ "revisions": ["1.3.0", "main"] })
    );
    assert_eq!(stored["operation"]["retry"], json!({ "limit": 3 }));
}

fn promotion_request(name: &str, stage_name: &str) -> Value {
    json!({
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Promotion",
        "metadata": { "name": name, "namespace": PROJECT, "annotations": { "kargo.akuity.io/create-actor": "kubernetes:mallory" } },
        "spec": { "stage": stage_name, "freight": FREIGHT, "steps": [{ "uses": "git-push", "config": { "path": "./out" } }] }
    })
}

#[test]
fn promotion_create_derives_steps_and_checks_everything() {
    let c = cluster(vec![]);
    let (v, stored) = admit(
        &c,
        "Promotion",
        "CREATE",
        None,
        Some(&promotion_request("whatever", "test")),
        "alice",
    );
    assert!(v.allowed, "{}", v.message);
    let p = stored.unwrap();
    let expected_name =
        promote_api::naming::promotion_name("test", FREIGHT, policy().ulid).unwrap();
    assert_eq!(p["metadata"]["name"], json!(expected_name));
    assert_eq!(
        p["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        json!("kubernetes:alice")
    );
    assert_eq!(
        p["metadata"]["labels"]["kargo.akuity.io/stage"],
        json!("test")
    );
    assert_eq!(
        p["metadata"]["ownerReferences"][0]["uid"],
        json!("uid-test")
    );
    assert_eq!(p["spec"]["steps"].as_array().unwrap().len(), 2);
    assert_eq!(p["spec"]["steps"][0]["uses"], json!("git-clone"));
    assert_eq!(p["spec"]["vars"][0]["name"], json!("gitRepo"));
    // A valid Kargo name is kept (idempotent on reinvocation).
    let (_, again) = admit(&c, "Promotion", "CREATE", None, Some(&p), "alice");
    assert_eq!(again.unwrap()["metadata"]["name"], json!(expected_name));

    let mut missing_freight = promotion_request("x", "test");
    missing_freight["spec"]["freight"] = json!("0000000");
    let table: Vec<(&str, Value, &str, Expect)> = vec![
        (
            "no promote verb",
            promotion_request("x", "test"),
            "bob",
            Err((
                403,
                "user \"bob\" is not permitted to create Promotions for Stage \"test\"",
            )),
        ),
        (
            "missing Stage",
            promotion_request("x", "nope"),
            "alice",
            Err((422, "Stage \"nope\" does not exist")),
        ),
        (
            "Stage without steps",
            promotion_request("x", "empty"),
            "alice",
            Err((422, "defines no promotion steps")),
        ),
        (
            "Freight verified upstream",
            promotion_request("x", "test"),
            "alice",
            Ok(()),
        ),
        (
            "missing Freight",
            missing_freight,
            "alice",
            Err((422, "Freight \"0000000\" does not exist")),
        ),
        (
            "no stage",
            promotion_request("x", ""),
            "alice",
            Err((422, "spec.stage: Required value")),
        ),
    ];
    for (name, obj, who, want) in table {
        let (v, _) = admit(&c, "Promotion", "CREATE", None, Some(&obj), who);
        check(name, &v, &want);
    }
    // Freight verified only in dev is not available to a Stage downstream of test.
    let mut c2 = c.clone();
    let mut prod = stage("prod", true);
    prod["spec"]["requestedFreight"][0]["sources"] = json!({ "stages": ["test"] });
    c2.add(prod).unwrap();
    let (v, _) = admit(
        &c2,
        "Promotion",
        "CREATE",
        None,
        Some(&promotion_request("x", "prod")),
        "alice",
    );
    check(
        "unavailable Freight",
        &v,
        &Err((
            422,
            "is not available to Stage \"prod\": it must first be verified in \"test\"",
        )),
    );
    // Without the mutating hook, client-chosen steps are refused.
    let v = validate_only(
        &c,
        "Promotion",
        "CREATE",
        None,
        Some(&promotion_request("x", "test")),
        "alice",
    );
    check(
        "client steps",
        &v,
        &Err((422, "must be exactly those of Stage \"test\"")),
    );
}

#[test]
fn promotion_update_and_delete() {
    let c = cluster(vec![]);
    let (_, stored) = admit(
        &c,
        "Promotion",
        "CREATE",
        None,
        Some(&promotion_request("x", "test")),
        "alice",
    );
    let old = stored.unwrap();
    let mut abort = old.clone();
    abort["metadata"]["annotations"]["kargo.akuity.io/abort"] = json!("terminate");
    abort["metadata"]["annotations"]["kargo.akuity.io/create-actor"] = json!("kubernetes:mallory");
    let (v, after) = admit(&c, "Promotion", "UPDATE", Some(&old), Some(&abort), "alice");
    assert!(v.allowed, "{}", v.message);
    assert_eq!(
        after.unwrap()["metadata"]["annotations"]["kargo.akuity.io/create-actor"],
        json!("kubernetes:alice")
    );
    let mut respec = old.clone();
    respec["spec"]["freight"] = json!("ffffffffffffffffffffffffffffffffffffffff");
    let (v, _) = admit(
        &c,
        "Promotion",
        "UPDATE",
        Some(&old),
        Some(&respec),
        "alice",
    );
    check("spec change", &v, &Err((422, "spec is immutable")));
    let (v, _) = admit(&c, "Promotion", "UPDATE", Some(&old), Some(&abort), "bob");
    check(
        "update by bob",
        &v,
        &Err((403, "not permitted to update Promotions")),
    );
    let v = validate_only(&c, "Promotion", "DELETE", Some(&old), None, "bob");
    check(
        "delete by bob",
        &v,
        &Err((403, "not permitted to delete Promotions")),
    );
    let v = validate_only(&c, "Promotion", "DELETE", Some(&old), None, "alice");
    check("delete by alice", &v, &Ok(()));
    let v = validate_only(
        &c,
        "Promotion",
        "DELETE",
        Some(&old),
        None,
        "system:serviceaccount:kube-system:generic-garbage-collector",
    );
    check("garbage collector", &v, &Ok(()));
}

#[test]
fn freight_rules() {
    let mut c = cluster(vec![]);
    let mut new = freight(&[]);
    new["metadata"]["name"] = json!("made-up");
    new.as_object_mut().unwrap().remove("status");
    new["alias"] = json!("calm-cat");
    let (v, stored) = admit(&c, "Freight", "CREATE", None, Some(&new), "alice");
    assert!(v.allowed, "{}", v.message);
    let stored = stored.unwrap();
    assert_eq!(stored["metadata"]["name"], json!(FREIGHT));
    assert_eq!(
        stored["metadata"]["labels"]["kargo.akuity.io/alias"],
        json!("calm-cat")
    );
    let v = validate_only(&c, "Freight", "CREATE", None, Some(&new), "alice");
    check(
        "name is not the hash",
        &v,
        &Err((422, "a Freight's name is the hash of its contents")),
    );
    let mut taken = stored.clone();
    taken["alias"] = json!("frozen-fox");
    taken["metadata"]["name"] = json!("other");
    taken["images"][0]["tag"] = json!("1.26.0");
    let (v, _) = admit(&c, "Freight", "CREATE", None, Some(&taken), "alice");
    check(
        "alias taken",
        &v,
        &Err((409, "alias \"frozen-fox\" is already used")),
    );
    let old = freight(&[]);
    let mut changed = old.clone();
    changed["images"][0]["tag"] = json!("1.26.0");
    let (v, _) = admit(&c, "Freight", "UPDATE", Some(&old), Some(&changed), "alice");
    check(
        "immutable",
        &v,
        &Err((422, "Freight is immutable (images changed)")),
    );
    let mut realias = old.clone();
    realias["alias"] = json!("bold-bee");
    let (v, _) = admit(&c, "Freight", "UPDATE", Some(&old), Some(&realias), "alice");
    check("new alias", &v, &Ok(()));
    let mut test = stage("test", true);
    test["status"] = json!({ "freightHistory": [{ "items": { "Warehouse/my-warehouse": { "name": FREIGHT, "origin": { "kind": "Warehouse", "name": "my-warehouse" } } } }] });
    c.stages.retain(|s| s.name() != "test");
    c.add(test).unwrap();
    let v = validate_only(&c, "Freight", "DELETE", Some(&old), None, "alice");
    check("in use", &v, &Err((403, "is in use by Stage(s) \"test\"")));
    let v = validate_only(
        &c,
        "Freight",
        "DELETE",
        Some(&old),
        None,
        "system:serviceaccount:kube-system:namespace-controller",
    );
    check("namespace controller", &v, &Ok(()));
}

#[test]
fn stage_rules() {
    let c = cluster(vec![]);
    let v = validate_only(
        &c,
        "Stage",
        "CREATE",
        None,
        Some(&stage("test", true)),
        "alice",
    );
    check("valid", &v, &Ok(()));
    let mut dup = stage("test", true);
    dup["spec"]["requestedFreight"] = json!([
        { "origin": { "kind": "Warehouse", "name": "a" }, "sources": { "direct": true } },
        { "origin": { "kind": "Warehouse", "name": "a" }, "sources": { "direct": true } }
    ]);
    dup["spec"]["promotionTemplate"]["spec"]["steps"][1]["as"] = json!("step-0");
    let v = validate_only(&c, "Stage", "CREATE", None, Some(&dup), "alice");
    check("invalid", &v, &Err((422, "spec.requestedFreight[1]")));
    let v = validate_only(
        &c,
        "Stage",
        "CREATE",
        None,
        Some(
            &json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage", "metadata": {"name": "x"}, "spec": {"requestedFreight": "nope"}}),
        ),
        "alice",
    );
    check("unreadable", &v, &Err((422, "cannot be read")));
}

#[test]
fn malformed_reviews() {
    assert!(matches!(
        parse_review(b"not json"),
        Err(ReviewError::NotJson(_))
    ));
    assert!(matches!(
        parse_review(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
        Err(ReviewError::WrongType { .. })
    ));
    assert!(matches!(
        parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
        Err(ReviewError::NoRequest)
    ));
    assert!(matches!(parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","operation":"CREATE"}}"#), Err(ReviewError::NoUid)));
    assert!(matches!(parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"PATCH"}}"#), Err(ReviewError::BadRequest(_))));
    // A review for another kind on a hook is denied, not mis-decided.
    let c = cluster(vec![]);
    let req = request("Stage", "CREATE", None, Some(&stage("x", true)), "alice");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt.block_on(review(Hook::ValidateApplication, &req, &c, &policy()));
    check("wrong kind", &v, &Err((422, "handles Application objects")));
}

#[test]
fn response_snapshots() {
    let c = cluster(vec![promotion(PROMO, "test", Some("Running"))]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let old = app(Some("kargo-demo:prod"));
    let new = with_op(old.clone(), client_op(PROMO));
    let req = request("Application", "UPDATE", Some(&old), Some(&new), "alice");
    let denied = rt.block_on(review(Hook::ValidateApplication, &req, &c, &policy()));
    insta::assert_json_snapshot!("application_denied", denied.to_review(&req.uid));
    let old = app(Some("kargo-demo:test"));
    let new = with_op(old.clone(), client_op(PROMO));
    let req = request("Application", "UPDATE", Some(&old), Some(&new), "alice");
    let mutated = rt.block_on(review(Hook::MutateApplication, &req, &c, &policy()));
    insta::assert_json_snapshot!("application_mutated", mutated.to_review(&req.uid));
    let patch: Value = serde_json::to_value(&mutated.patch).unwrap();
    insta::assert_json_snapshot!("application_mutated_patch", patch);
}

#[test]
fn request_objects_keep_only_the_operation_state_of_status_and_no_managed_fields() {
    let mut p = promotion(PROMO, "test", Some("Running"));
    p["status"]["freight"] = json!({ "name": FREIGHT });
    p["status"]["operationState"] = json!({ "phase": "x" });
    p["metadata"]["managedFields"] =
        json!([{ "manager": "kargo", "fieldsV1": { "f:status": {} } }]);
    let req = request("Promotion", "UPDATE", Some(&p), Some(&p), "alice");
    let obj = req.object.unwrap();
    assert!(obj["metadata"].get("managedFields").is_none());
    assert_eq!(obj["metadata"]["annotations"], p["metadata"]["annotations"]);
    assert_eq!(
        obj["status"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["operationState"]
    );
    assert_eq!(obj["spec"], p["spec"]);
    let mut b = promotion(PROMO, "test", None);
    b["status"] = Value::Null;
    let req = request("Promotion", "UPDATE", Some(&b), Some(&b), "alice");
    assert_eq!(req.object.unwrap()["status"], Value::Null);
    let req = request("Promotion", "DELETE", Some(&b), None, "alice");
    assert!(req.object.is_none());
}

#[test]
fn application_requests_carry_views_of_their_objects() {
    let mut a = app(Some("kargo-demo:test"));
    a["status"]["resources"] = json!([{ "kind": "Deployment", "name": "x" }]);
    a["metadata"]["labels"] = json!({ "promote.dev/lockdown": "true" });
    let new = with_op(a.clone(), client_op(PROMO));
    let req = request("Application", "UPDATE", Some(&a), Some(&new), "alice");
    assert_eq!((req.object.as_ref(), req.old_object.as_ref()), (None, None));
    let (view, old) = (req.app.as_deref().unwrap(), req.old_app.as_deref().unwrap());
    assert_eq!(view, &super::view::AppView::from_value(&new));
    assert_eq!(old, &super::view::AppView::from_value(&a));
    assert_eq!(req.object_name(), "guestbook-test");
    assert_eq!(view.authorized_stage(), Some("kargo-demo:test"));
    assert!(view.locked() && !view.multi_source && !view.operation_in_progress());
    assert_eq!(view.promotion(), Some(PROMO));
    assert_eq!(old.promotion(), None);
    assert_eq!(
        old.operation_state.as_ref().unwrap().phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(
        view.source.as_ref().unwrap().value(),
        Some(a["spec"]["source"].clone())
    );
    assert_eq!(view.sync_options, Some(json!(["CreateNamespace=true"])));
    let req = request("Application", "DELETE", Some(&a), None, "alice");
    assert!(req.app.is_none() && req.old_app.is_some());
}

#[test]
fn kargo_objects_outside_projects_are_refused() {
    let stage = json!({ "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Stage",
        "metadata": { "name": "dev", "namespace": "default" }, "spec": {} });
    let req = request("Stage", "CREATE", None, Some(&stage), "alice");
    let v = decide(
        Hook::ValidateProjectNamespace,
        &req,
        &Facts::default(),
        &policy(),
    );
    assert!(!v.allowed);
    assert_eq!(v.code, 403);
    assert!(
        v.message.contains(
            "namespace \"default\" is not a Kargo project, so Stage \"dev\" cannot be created"
        ) && v
            .message
            .contains("kubectl label namespace default kargo.akuity.io/project=true"),
        "{}",
        v.message
    );
    // Existing objects keep working; other kinds are not this hook's.
    let upd = request("Stage", "UPDATE", Some(&stage), Some(&stage), "alice");
    assert!(
        decide(
            Hook::ValidateProjectNamespace,
            &upd,
            &Facts::default(),
            &policy()
        )
        .allowed
    );
    let app = request("Application", "CREATE", None, Some(&app(None)), "alice");
    assert_eq!(
        decide(
            Hook::ValidateProjectNamespace,
            &app,
            &Facts::default(),
            &policy()
        )
        .code,
        422
    );
}

#[test]
fn new_freight_without_alias_gets_a_free_one() {
    let mut fresh = freight(&[]);
    fresh.as_object_mut().unwrap().remove("alias");
    fresh.as_object_mut().unwrap().remove("status");
    fresh["images"][0]["tag"] = json!("1.27.0");
    let id = promote_api::freight_id::freight_id(&serde_json::from_value(fresh.clone()).unwrap());
    let first = promote_api::naming::freight_alias(&id, 0);
    let c = cluster(vec![]);
    let (v, stored) = admit(&c, "Freight", "CREATE", None, Some(&fresh), "alice");
    assert!(v.allowed, "{}", v.message);
    let stored = stored.unwrap();
    assert_eq!(stored["alias"], json!(first));
    assert_eq!(
        stored["metadata"]["labels"]["kargo.akuity.io/alias"],
        json!(first)
    );
    // Taken in the project: the next candidate.
    let mut c = cluster(vec![]);
    let mut other = freight(&[]);
    other["alias"] = json!(first);
    other["metadata"]["name"] = json!("0123456789012345678901234567890123456789");
    other["metadata"]["labels"] = json!({ "kargo.akuity.io/alias": first });
    c.add(other).unwrap();
    let (v, stored) = admit(&c, "Freight", "CREATE", None, Some(&fresh), "alice");
    assert!(v.allowed, "{}", v.message);
    assert_eq!(
        stored.unwrap()["alias"],
        json!(promote_api::naming::freight_alias(&id, 1))
    );
}

#[test]
fn trusted_deleters_cost_no_lookups() {
    let p = promotion(
        "test.01j00000000000000000000000.abcdef0",
        "test",
        Some("Running"),
    );
    let c = cluster(vec![p.clone()]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let gc = "system:serviceaccount:kube-system:generic-garbage-collector";
    let req = request("Promotion", "DELETE", Some(&p), None, gc);
    let facts = rt.block_on(gather(Hook::ValidatePromotion, &req, &c, &policy()));
    assert!(
        facts.access.is_none(),
        "no SubjectAccessReview for the garbage collector"
    );
    let req = request("Promotion", "DELETE", Some(&p), None, "alice");
    let facts = rt.block_on(gather(Hook::ValidatePromotion, &req, &c, &policy()));
    assert!(facts.access.is_some(), "people's deletes are checked");
}

#[test]
fn routine_argocd_writes_are_told_apart_from_promotion_writes() {
    let c = cluster(vec![promotion(PROMO, "test", Some("Running"))]);
    let old = app(Some("kargo-demo:test"));
    let mut status = old.clone();
    status["status"] = json!({ "reconciledAt": "2026-11-24T12:00:00Z" });
    let routine = request(
        "Application",
        "UPDATE",
        Some(&old),
        Some(&status),
        CONTROLLER,
    );
    let (v, _) = admit(
        &c,
        "Application",
        "UPDATE",
        Some(&old),
        Some(&status),
        CONTROLLER,
    );
    assert!(v.allowed);
    assert!(is_routine(Hook::ValidateApplication, &routine, &v));
    assert!(is_routine(Hook::MutateApplication, &routine, &v));

    // An allowed promotion write is not routine (it is logged), nor is a denial.
    let write = with_op(old.clone(), client_op(PROMO));
    let (v, stored) = admit(
        &c,
        "Application",
        "UPDATE",
        Some(&old),
        Some(&write),
        "alice",
    );
    assert!(v.allowed, "{}", v.message);
    let req = request(
        "Application",
        "UPDATE",
        Some(&old),
        stored.as_ref(),
        "alice",
    );
    assert!(!is_routine(Hook::ValidateApplication, &req, &v));
    let (denied, _) = admit(&c, "Application", "UPDATE", Some(&old), Some(&write), "bob");
    assert!(!denied.allowed);
    let req = request("Application", "UPDATE", Some(&old), Some(&write), "bob");
    assert!(!is_routine(Hook::ValidateApplication, &req, &denied));
    // Kargo objects are never routine.
    assert!(!is_routine(
        Hook::ValidateStage,
        &routine,
        &Verdict::allow()
    ));
}

/// The server answers writes that `Review::settled` settles without running the
/// decisions; every such write must be one both Application hooks allow unchanged.
#[test]
fn routine_application_writes_are_exactly_what_both_hooks_allow_unchanged() {
    let c = cluster(vec![
        promotion(PROMO, "test", Some("Running")),
        promotion(OLD_PROMO, "test", Some("Succeeded")),
    ]);
    let ops = [
        None,
        Some(Value::Null),
        Some(client_op(PROMO)),
        Some(client_op(OLD_PROMO)),
        Some(json!({ "sync": { "revision": "cccc" } })),
    ];
    let locks = [
        None,
        Some(json!("true")),
        Some(json!("false")),
        Some(json!(true)),
    ];
    let variant = |op: &Option<Value>, lock: &Option<Value>, status: bool| {
        let mut a = app(Some("kargo-demo:test"));
        if let Some(op) = op {
            a["operation"] = op.clone();
        }
        if let Some(l) = lock {
            a["metadata"]["labels"] = json!({ "promote.dev/lockdown": l, "team": "a" });
        }
        if status {
            a["status"]["reconciledAt"] = json!("2026-11-24T12:00:00Z");
        }
        a
    };
    let (mut routine, mut full) = (0, 0);
    for old_op in &ops {
        for new_op in &ops {
            for lock in &locks {
                for (who, retarget) in [
                    (CONTROLLER, false),
                    ("alice", false),
                    ("bob", false),
                    ("bob", true),
                ] {
                    let old = variant(old_op, lock, false);
                    let mut new = variant(new_op, lock, true);
                    if retarget {
                        new["spec"]["source"]["targetRevision"] = json!("feature");
                    }
                    for (operation, old, new) in [
                        ("UPDATE", Some(&old), Some(&new)),
                        ("CREATE", None, Some(&new)),
                        ("DELETE", Some(&old), None),
                    ] {
                        let body = json!({
                            "apiVersion": "admission.k8s.io/v1",
                            "kind": "AdmissionReview",
                            "request": {
                                "uid": "u", "kind": { "group": "argoproj.io", "version": "v1alpha1", "kind": "Application" },
                                "name": "guestbook-test", "namespace": "argocd", "operation": operation,
                                "userInfo": user(who), "object": new, "oldObject": old,
                            }
                        })
                        .to_string();
                        let review = read_review(body.as_bytes()).unwrap();
                        let quick = settled(&review, Hook::ValidateApplication, &Policy::default());
                        assert_eq!(
                            quick,
                            settled(&review, Hook::MutateApplication, &Policy::default())
                        );
                        if quick.is_none() {
                            full += 1;
                            continue;
                        }
                        routine += 1;
                        let (v, stored) = admit(&c, "Application", operation, old, new, who);
                        let case = format!(
                            "{operation} by {who}, ops {old_op:?} -> {new_op:?}, lock {lock:?}"
                        );
                        assert!(v.allowed && v.patch.is_empty(), "{case}: {}", v.message);
                        assert_eq!(stored.as_ref(), new, "{case}: the mutating hook changed it");
                        let req = request("Application", operation, old, new, who);
                        assert!(is_routine(Hook::ValidateApplication, &req, &v), "{case}");
                    }
                }
            }
        }
    }
    // Both kinds occur: status writes without operations are routine, the rest is decided
    // (users' writes to Applications under promotion control are always decided).
    assert!(
        routine >= 30 && full >= 500,
        "routine {routine}, full {full}"
    );
    // Argo CD's plain status write is routine.
    let old = app(Some("kargo-demo:test"));
    let new = variant(&None, &None, true);
    let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": { "group": "argoproj.io", "version": "v1alpha1", "kind": "Application" },
        "operation": "UPDATE", "userInfo": user(CONTROLLER), "object": new, "oldObject": old }})
    .to_string();
    let review = read_review(body.as_bytes()).unwrap();
    assert_eq!(
        settled(&review, Hook::ValidateApplication, &Policy::default()),
        Some(Verdict::allow())
    );
    // Only the Application hooks settle it; any other hook decides (and refuses the kind).
    assert_eq!(
        settled(&review, Hook::ValidatePromotion, &Policy::default()),
        None
    );
    assert_eq!(
        settled(&review, Hook::ValidateProjectNamespace, &Policy::default()),
        None
    );
}

/// A value with its object keys sorted at every level, as Go's `encoding/json` writes maps.
fn sorted_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted_keys(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

#[test]
fn promotion_writes_as_the_api_server_sends_them_match_by_their_bytes() {
    let c = cluster(vec![promotion(PROMO, "test", Some("Running"))]);
    let old = app(Some("kargo-demo:test"));
    // What the mutating hook leaves, stored and sent back by the API server: keys sorted, compact.
    let (_, stored) = admit(
        &c,
        "Application",
        "UPDATE",
        Some(&old),
        Some(&with_op(old.clone(), client_op(PROMO))),
        "alice",
    );
    let stored = sorted_keys(&stored.unwrap());
    let body = serde_json::to_string(&sorted_keys(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": { "group": "argoproj.io", "version": "v1alpha1", "kind": "Application" },
            "name": "guestbook-test",
            "namespace": "argocd",
            "operation": "UPDATE",
            "userInfo": user("alice"),
            "object": stored,
            "oldObject": sorted_keys(&old),
        }
    })))
    .unwrap();
    let req = parse_review(body.as_bytes()).unwrap();
    let sent = req.app.as_deref().unwrap().operation.as_ref().unwrap();
    // The text kept is the body's own, and it is exactly what promote writes.
    assert!(body.contains(sent.raw.text()));
    let sources = [];
    let desired = ["bbbb".to_owned()];
    let expected = promote_api::argocd::sync_operation(
        promote_api::argocd::OperationBasis::of(&stored),
        &sources,
        &desired,
        &promote_api::argocd::SyncRequest {
            promotion: PROMO,
            project: PROJECT,
            actor: Some("alice"),
        },
    );
    assert!(
        expected.is_api_json(sent.raw.text().as_bytes()),
        "{}",
        sent.raw.text()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt.block_on(review(Hook::ValidateApplication, &req, &c, &policy()));
    check("sorted, compact", &v, &Ok(()));
    let m = rt.block_on(review(Hook::MutateApplication, &req, &c, &policy()));
    assert!(m.allowed && m.patch.is_empty(), "{:?}", m.patch);
    // One byte of difference falls back to comparing values, and a real difference is refused.
    let spaced = body.replace(r#""username":"alice"}"#, r#""username": "alice"}"#);
    assert_ne!(spaced, body);
    let req = parse_review(spaced.as_bytes()).unwrap();
    check(
        "spaced",
        &rt.block_on(review(Hook::ValidateApplication, &req, &c, &policy())),
        &Ok(()),
    );
    let other = body.replace(
        r#""initiatedBy":{"username":"alice"}"#,
        r#""initiatedBy":{"username":"mallory"}"#,
    );
    // An operation whose text is not JSON (a raw control character in a value no field reads:
    // only a structural check passes it) is never taken for the one promote derives.
    let broken = body.replace(
        r#""initiatedBy":{"username":"alice"}"#,
        "\"initiatedBy\":{\"username\":\"alice\",\"x\":{\"y\":\"\u{1}\"}}",
    );
    assert_ne!(broken, body);
    let req = parse_review(broken.as_bytes()).unwrap();
    assert_eq!(
        req.app
            .as_ref()
            .unwrap()
            .operation
            .as_ref()
            .unwrap()
            .raw
            .value(),
        None
    );
    check(
        "not JSON",
        &rt.block_on(review(Hook::ValidateApplication, &req, &c, &policy())),
        &Err((403, "is not the one promote derives")),
    );
    assert_ne!(other, body);
    let req = parse_review(other.as_bytes()).unwrap();
    check(
        "spoofed",
        &rt.block_on(review(Hook::ValidateApplication, &req, &c, &policy())),
        &Err((403, "is not the one promote derives")),
    );
}

#[test]
fn hooks_that_do_not_read_the_clock_decide_the_same_at_any_time() {
    let c = cluster(vec![promotion(PROMO, "test", Some("Running"))]);
    let old = app(Some("kargo-demo:test"));
    let requests = [
        request(
            "Application",
            "UPDATE",
            Some(&old),
            Some(&with_op(old.clone(), client_op(PROMO))),
            "alice",
        ),
        request("Application", "UPDATE", Some(&old), Some(&old), CONTROLLER),
        request("Stage", "CREATE", None, Some(&stage("x", true)), "alice"),
        // Not a Kargo-style name: the mutating hook names it with a fresh ULID.
        request(
            "Promotion",
            "CREATE",
            None,
            Some(&promotion_request("mine", "test")),
            "alice",
        ),
        request("Freight", "CREATE", None, Some(&freight(&[])), "alice"),
    ];
    let later = Policy {
        now: "2126-01-01T00:00:00Z".parse().unwrap(),
        ulid: ulid::Ulid::from_parts(4_000_000_000_000, 99),
        ..policy()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut differ = 0;
    for hook in Hook::ALL {
        for req in &requests {
            let a = rt.block_on(review(hook, req, &c, &policy()));
            let b = rt.block_on(review(hook, req, &c, &later));
            if a != b {
                differ += 1;
                assert!(
                    hook.reads_clock(),
                    "{hook:?} read the clock for {}",
                    req.kind.kind
                );
            }
        }
    }
    // The clock does change some Promotion and Freight decisions (else this test proves nothing).
    assert!(differ > 0);
}

/// A `<kind>/status` UPDATE through the validating hook.
fn validate_status(c: &StaticCluster, kind: &str, old: &Value, new: &Value, who: &str) -> Verdict {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let review_json = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": { "group": "kargo.akuity.io", "version": "v1alpha1", "kind": kind },
            "subResource": "status",
            "name": new["metadata"]["name"], "namespace": PROJECT, "operation": "UPDATE",
            "userInfo": user(who), "object": new, "oldObject": old,
        }
    });
    let req = parse_review(review_json.to_string().as_bytes()).unwrap();
    rt.block_on(review(
        Hook::for_kind(kind, false).unwrap(),
        &req,
        c,
        &policy(),
    ))
}

#[test]
fn promotion_status_and_lease_rules() {
    let mut running = promotion(PROMO, "test", Some("Running"));
    running["metadata"]["annotations"]["promote.dev/lease-holder"] = json!("alice@laptop/1");
    running["metadata"]["annotations"]["promote.dev/lease-expires"] = json!("2999-01-01T00:00:00Z");
    running["spec"]["steps"] = json!([{ "uses": "git-push", "as": "push" }]);
    running["status"]["stepExecutionMetadata"] =
        json!([{ "alias": "push", "status": "Succeeded" }]);
    running["status"]["state"]["push"] = json!({ "commit": "aaaa" });
    let mut c = cluster(vec![running.clone()]);
    c.promoters = Some(vec![("*".into(), PROJECT.into(), "*".into())]);
    let with_status = |f: &dyn Fn(&mut Value)| {
        let mut v = running.clone();
        f(&mut v);
        v
    };
    let progress = with_status(&|v| v["status"]["currentStep"] = json!(1));
    let rewrite = with_status(&|v| v["status"]["state"]["push"] = json!({ "commit": "evil" }));
    let abort = with_status(&|v| v["status"]["phase"] = json!("Aborted"));
    let abort_rewrite = with_status(&|v| {
        v["status"]["phase"] = json!("Aborted");
        v["status"]["state"]["push"] = json!({ "commit": "evil" });
    });
    for (name, new, who, want) in [
        ("runner records progress", &progress, "alice", Ok(())),
        (
            "another promoter records progress",
            &progress,
            "carol",
            Err((403, "only its runner records its progress")),
        ),
        (
            "runner rewrites a recorded push",
            &rewrite,
            "alice",
            Err((403, "is recorded as Succeeded")),
        ),
        ("another promoter aborts", &abort, "carol", Ok(())),
        (
            "an abort that rewrites",
            &abort_rewrite,
            "carol",
            Err((403, "only its runner")),
        ),
    ] {
        check(
            name,
            &validate_status(&c, "Promotion", &running, new, who),
            &want,
        );
    }
    let finished = with_status(&|v| v["status"]["phase"] = json!("Succeeded"));
    let rewound = with_status(&|v| v["status"]["phase"] = json!("Running"));
    check(
        "finished is final",
        &validate_status(&c, "Promotion", &finished, &rewound, "alice"),
        &Err((403, "status is final")),
    );
    // The lease: taken in the writer's own name, over only once expired.
    let mut steal = running.clone();
    steal["metadata"]["annotations"]["promote.dev/lease-holder"] = json!("carol@box/2");
    let v = validate_only(
        &c,
        "Promotion",
        "UPDATE",
        Some(&running),
        Some(&steal),
        "carol",
    );
    check(
        "takeover of a live lease",
        &v,
        &Err((409, "may take it over only once that lease has expired")),
    );
    let mut expired = running.clone();
    expired["metadata"]["annotations"]["promote.dev/lease-expires"] = json!("2000-01-01T00:00:00Z");
    let v = validate_only(
        &c,
        "Promotion",
        "UPDATE",
        Some(&expired),
        Some(&steal),
        "carol",
    );
    check("takeover of an expired lease", &v, &Ok(()));
    let v = validate_only(
        &c,
        "Promotion",
        "UPDATE",
        Some(&expired),
        Some(&steal),
        "alice",
    );
    check(
        "a lease in someone else's name",
        &v,
        &Err((403, "a lease is taken in the writer's own name")),
    );
}

#[test]
fn stage_status_rules() {
    let mut running = promotion(PROMO, "test", Some("Running"));
    running["metadata"]["annotations"]["promote.dev/lease-holder"] = json!("alice@laptop/1");
    let mut done = promotion(OLD_PROMO, "test", Some("Succeeded"));
    done["metadata"]["annotations"]["promote.dev/lease-holder"] = json!("alice@laptop/1");
    let mut c = cluster(vec![running, done]);
    c.promoters = Some(vec![("*".into(), PROJECT.into(), "*".into())]);
    let old = stage("test", true);
    let with = |status: Value| {
        let mut s = old.clone();
        s["status"] = status;
        s
    };
    let item = json!({ "items": { "Warehouse/my-warehouse": { "name": FREIGHT } } });
    let other = json!({ "items": { "Warehouse/my-warehouse": { "name": "0000000000000000000000000000000000000000" } } });
    for (name, health) in [("healthy", "Healthy"), ("degraded", "Degraded")] {
        c.add(
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "status": {"health": {"status": health}, "sync": {"status": "Synced"}}}),
        )
        .unwrap();
    }
    let healthy_app = json!({ "status": "Healthy", "output": { "applicationStatuses": [{ "name": "healthy", "namespace": "argocd" }] } });
    for (name, new, who, want) in [
        (
            "claim by the runner",
            with(json!({ "currentPromotion": { "name": PROMO } })),
            "alice",
            Ok(()),
        ),
        (
            "claim for someone else's Promotion",
            with(json!({ "currentPromotion": { "name": PROMO } })),
            "carol",
            Err((403, "is run by user \"alice\"")),
        ),
        (
            "claim for a finished Promotion",
            with(json!({ "currentPromotion": { "name": OLD_PROMO } })),
            "alice",
            Err((403, "is Succeeded")),
        ),
        (
            "record by the runner",
            with(
                json!({ "lastPromotion": { "name": OLD_PROMO, "status": { "phase": "Succeeded" } }, "freightHistory": [item.clone()], "health": { "status": "Healthy" } }),
            ),
            "alice",
            Ok(()),
        ),
        (
            "record with the wrong phase",
            with(
                json!({ "lastPromotion": { "name": OLD_PROMO, "status": { "phase": "Failed" } } }),
            ),
            "alice",
            Err((403, "but it is Succeeded")),
        ),
        (
            "history of other Freight",
            with(json!({ "lastPromotion": { "name": OLD_PROMO }, "freightHistory": [other] })),
            "alice",
            Err((403, "changes freightHistory")),
        ),
        (
            "health alone, Healthy with no Application behind it",
            with(json!({ "health": { "status": "Healthy" } })),
            "alice",
            Err((403, "it lists no Application whose health it reports")),
        ),
        (
            "a refresh: Healthy as the Application shows it",
            with(json!({ "health": healthy_app.clone(), "conditions": [
                { "type": "Healthy", "status": "True", "reason": "Healthy", "message": "m", "lastTransitionTime": "2026-12-02T00:00:00Z" }
            ] })),
            "alice",
            Ok(()),
        ),
        (
            "a refresh: Healthy, but the Application is Degraded",
            with(
                json!({ "health": { "status": "Healthy", "output": { "applicationStatuses": [{ "name": "degraded", "namespace": "argocd" }] } } }),
            ),
            "alice",
            Err((403, "is Degraded and Synced, not Healthy and Synced")),
        ),
        (
            "a refresh: Unhealthy needs no evidence",
            with(
                json!({ "health": { "status": "Unhealthy", "issues": ["x"] }, "conditions": [
                { "type": "Ready", "status": "False", "reason": "Unhealthy", "message": "m", "lastTransitionTime": "2026-12-02T00:00:00Z" }
            ] }),
            ),
            "alice",
            Ok(()),
        ),
        (
            "a refresh that also changes another condition",
            with(json!({ "health": { "status": "Unhealthy" }, "conditions": [
                { "type": "Verified", "status": "True", "reason": "Verified", "message": "m", "lastTransitionTime": "2026-12-02T00:00:00Z" }
            ] })),
            "alice",
            Err((403, "without claiming the Stage")),
        ),
        (
            "a refresh by a non-promoter",
            with(json!({ "health": { "status": "Unhealthy" } })),
            "bob",
            Err((403, "is not permitted to write the status of the Stage")),
        ),
        (
            "a non-promoter",
            with(json!({ "currentPromotion": { "name": PROMO } })),
            "bob",
            Err((403, "is not permitted to write the status of the Stage")),
        ),
    ] {
        c.promoters = Some(vec![
            ("alice".into(), PROJECT.into(), "*".into()),
            ("carol".into(), PROJECT.into(), "*".into()),
        ]);
        check(name, &validate_status(&c, "Stage", &old, &new, who), &want);
    }
}

#[test]
fn a_project_creates_its_namespace_labelled_once_admitted() {
    let c = StaticCluster::default();
    let project = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "kargo-demo"}});
    let v = validate_only(&c, "Project", "CREATE", None, Some(&project), "admin");
    assert!(v.allowed, "{v:?}");
    let made = c.namespaces.lock().unwrap().clone();
    assert_eq!(made.len(), 1);
    assert_eq!(
        made[0]["metadata"]["labels"]["kargo.akuity.io/project"],
        "true"
    );
    // Again (a retried request): the labelled namespace exists and is kept as it is.
    assert!(validate_only(&c, "Project", "CREATE", None, Some(&project), "admin").allowed);
    assert_eq!(c.namespaces.lock().unwrap().len(), 1);
    // A dry run creates nothing (sideEffects: NoneOnDryRun).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let other = json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": "other"}});
    let mut req = request("Project", "CREATE", None, Some(&other), "admin");
    req.dry_run = true;
    assert!(
        rt.block_on(review(Hook::ValidateProject, &req, &c, &policy()))
            .allowed
    );
    assert_eq!(c.namespaces.lock().unwrap().len(), 1);
}

#[test]
fn a_project_refuses_a_namespace_that_is_not_a_projects() {
    let c = StaticCluster::default();
    c.namespaces
        .lock()
        .unwrap()
        .push(json!({"metadata": {"name": "taken"}}));
    c.namespaces.lock().unwrap().push(json!({"metadata": {"name": "going", "labels": {"kargo.akuity.io/project": "true"}, "deletionTimestamp": "2026-12-01T00:00:00Z"}}));
    let project = |n: &str| json!({"apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Project", "metadata": {"name": n}});
    let v = validate_only(
        &c,
        "Project",
        "CREATE",
        None,
        Some(&project("taken")),
        "admin",
    );
    assert!(!v.allowed && v.code == 409, "{v:?}");
    assert!(
        v.message
            .contains("already exists and is not labeled as a Project namespace"),
        "{}",
        v.message
    );
    let v = validate_only(
        &c,
        "Project",
        "CREATE",
        None,
        Some(&project("going")),
        "admin",
    );
    assert!(
        !v.allowed && v.message.contains("still being terminated"),
        "{v:?}"
    );
    assert_eq!(c.namespaces.lock().unwrap().len(), 2, "nothing created");
}

/// `status.metadata` of a Stage or Freight changes only while its writer runs a Promotion whose
/// steps hold a `set-metadata` update of that object (by name, or by an expression); the Stage
/// written need not be one the writer may promote (the Stage's template, which its admins wrote,
/// decided the write).
#[test]
fn metadata_is_written_only_by_a_running_set_metadata_step() {
    let updates = json!([
        { "kind": "Stage", "name": "prod", "values": { "approved-by": "${{ ctx.stage }}" } },
        { "kind": "Freight", "name": "${{ ctx.targetFreight.name }}", "values": { "tested": true } }
    ]);
    let running = metadata_promotion(PROMO, "Running", "alice@laptop/1", updates.clone());
    let done = metadata_promotion(OLD_PROMO, "Succeeded", "carol@laptop/1", updates);
    let mut c = cluster(vec![running, done]);
    c.promoters = Some(vec![("alice".into(), PROJECT.into(), "test".into())]);
    let prod = stage("prod", true);
    let mut written = prod.clone();
    written["status"]["metadata"] = json!({ "approved-by": "test" });
    check(
        "the running step's own write",
        &validate_status(&c, "Stage", &prod, &written, "alice"),
        &Ok(()),
    );
    check(
        "a finished Promotion's step",
        &validate_status(&c, "Stage", &prod, &written, "carol"),
        &Err((403, "has a set-metadata step for Stage \"prod\"")),
    );
    let uat = stage("uat", true);
    let mut other = uat.clone();
    other["status"]["metadata"] = json!({ "approved-by": "test" });
    check(
        "a Stage the step does not name",
        &validate_status(&c, "Stage", &uat, &other, "alice"),
        &Err((403, "may not change status.metadata of Stage \"uat\"")),
    );
    let mut both = written.clone();
    both["status"]["health"] = json!({ "status": "Healthy" });
    check(
        "metadata does not carry other fields along",
        &validate_status(&c, "Stage", &prod, &both, "alice"),
        &Err((403, "is not permitted to write the status of the Stage")),
    );
    tested_freight_written_by_alice_only(&c, "Freight named by an expression");
}

/// A Promotion of Stage test in `phase` whose runner is `holder`, with one set-metadata step.
fn metadata_promotion(name: &str, phase: &str, holder: &str, updates: Value) -> Value {
    let mut p = promotion(name, "test", Some(phase));
    p["metadata"]["annotations"]["promote.dev/lease-holder"] = json!(holder);
    p["spec"]["steps"] = json!([{ "uses": "set-metadata", "config": { "updates": updates } }]);
    p
}

/// Alice (running the set-metadata step) may tag the Freight `tested`; bob (running nothing)
/// may not.
fn tested_freight_written_by_alice_only(c: &StaticCluster, case: &str) {
    let f = freight(&[]);
    let mut tagged = f.clone();
    tagged["status"]["metadata"] = json!({ "tested": true });
    check(
        case,
        &validate_status(c, "Freight", &f, &tagged, "alice"),
        &Ok(()),
    );
    check(
        "Freight metadata by someone running nothing",
        &validate_status(c, "Freight", &f, &tagged, "bob"),
        &Err((403, "may not change status.metadata of Freight")),
    );
}

/// A Stage that asks for verification (`spec.verification`) is never recorded as having
/// verified Freight by a promoter's status write, evidence or not: promote runs no AnalysisRuns.
#[test]
fn freight_is_not_verified_in_a_stage_that_asks_for_verification() {
    let mut c = cluster(vec![]);
    let mut gated = stage("gated", true);
    gated["spec"]["verification"] = json!({ "analysisTemplates": [{ "name": "smoke" }] });
    c.add(gated).unwrap();
    let f = freight(&[]);
    let mut verified = f.clone();
    verified["status"]["verifiedIn"] = json!({ "gated": {} });
    check(
        "verifiedIn for a Stage with verification",
        &validate_status(&c, "Freight", &f, &verified, "alice"),
        &Err((403, "asks for verification (spec.verification)")),
    );
    let mut approved = f.clone();
    approved["status"]["approvedFor"] = json!({ "gated": {} });
    check(
        "approval still works",
        &validate_status(&c, "Freight", &f, &approved, "alice"),
        &Ok(()),
    );
}

/// New Freight is checked against its origin Warehouse as Kargo checks it: the Warehouse exists,
/// each artifact belongs to one of its subscriptions, each subscription has exactly one artifact.
#[test]
fn new_freight_matches_its_warehouse() {
    let c = cluster(vec![]);
    let mut fresh = freight(&[]);
    fresh.as_object_mut().unwrap().remove("status");
    fresh["alias"] = json!("new-newt");
    fresh["images"][0]["tag"] = json!("1.27.0");
    let named = |mut f: Value| {
        let id = promote_api::freight_id::freight_id(&serde_json::from_value(f.clone()).unwrap());
        f["metadata"]["name"] = json!(id);
        f
    };
    let (v, _) = admit(
        &c,
        "Freight",
        "CREATE",
        None,
        Some(&named(fresh.clone())),
        "alice",
    );
    assert!(v.allowed, "{}", v.message);
    let mut elsewhere = fresh.clone();
    elsewhere["origin"]["name"] = json!("nowhere");
    let mut stranger = fresh.clone();
    stranger["images"][0]["repoURL"] = json!("ghcr.io/acme/other");
    let mut twice = fresh.clone();
    twice["images"] =
        json!([{ "repoURL": "nginx", "tag": "1" }, { "repoURL": "nginx", "tag": "2" }]);
    let mut extra = fresh.clone();
    extra["commits"] = json!([{ "repoURL": "https://git.example.com/x.git", "id": "abc" }]);
    for (case, f, want) in [
        (
            "no such Warehouse",
            elsewhere,
            "origin.name: Invalid value: \"nowhere\": warehouse does not exist",
        ),
        (
            "an image of no subscription",
            stranger,
            "images[0]: Invalid value: no subscription found for image repository in Warehouse \"my-warehouse\"",
        ),
        (
            "two images of one subscription",
            twice,
            "multiple artifacts found for subscription \"nginx\"",
        ),
        (
            "a commit of no subscription",
            extra,
            "commits[0]: Invalid value: no subscription found for Git repository",
        ),
    ] {
        let (v, _) = admit(&c, "Freight", "CREATE", None, Some(&named(f)), "alice");
        assert!(!v.allowed, "{case}");
        assert!(v.message.contains(want), "{case}: {}", v.message);
    }
}

/// Freight is recorded as verified in (or current in) a Stage only on evidence, a Succeeded
/// Promotion of it into that Stage; the runner writes that phase a moment before the Freight
/// status, so a watch cache that has not seen it yet is not the last word (the flake the real
/// API server showed while four promotions ran at once).
#[test]
fn freight_evidence_newer_than_the_watch_cache_is_read_from_the_api_server() {
    let done = promotion(PROMO, "test", Some("Succeeded"));
    let mut c = cluster(vec![done]);
    let f = freight(&["dev"]);
    let mut verified = f.clone();
    verified["status"]["verifiedIn"]["test"] = json!({});
    let mut current = f.clone();
    current["status"]["currentlyIn"] = json!({ "test": {} });
    for (what, new) in [("verifiedIn", &verified), ("currentlyIn", &current)] {
        c.cached_promotions = None;
        check(
            &format!("{what} with the Succeeded Promotion in the cache"),
            &validate_status(&c, "Freight", &f, new, "alice"),
            &Ok(()),
        );
        c.cached_promotions = Some(vec![
            serde_json::from_value(promotion(PROMO, "test", Some("Running"))).unwrap(),
        ]);
        check(
            &format!("{what} while the cache still shows it Running"),
            &validate_status(&c, "Freight", &f, new, "alice"),
            &Ok(()),
        );
        c.cached_promotions = Some(Vec::new());
        check(
            &format!("{what} before the cache has seen the Promotion at all"),
            &validate_status(&c, "Freight", &f, new, "alice"),
            &Ok(()),
        );
    }
    // Without a Succeeded Promotion anywhere, the refusal stands.
    let mut c = cluster(vec![promotion(PROMO, "test", Some("Running"))]);
    c.cached_promotions = Some(Vec::new());
    check(
        "no evidence in the cache nor the API server",
        &validate_status(&c, "Freight", &f, &verified, "alice"),
        &Err((
            403,
            "no Succeeded Promotion of Freight \"be79d3d863f2323dd406cff7a99de434892f8740\" into Stage \"test\" exists",
        )),
    );
}

/// A running set-metadata step's writes are accepted even while the watch cache lags.
#[test]
fn metadata_writer_newer_than_the_watch_cache_is_read_from_the_api_server() {
    let updates = json!([{ "kind": "Freight", "name": FREIGHT, "values": { "tested": true } }]);
    let running = metadata_promotion(PROMO, "Running", "alice@laptop/1", updates);
    let mut c = cluster(vec![running]);
    c.cached_promotions = Some(Vec::new());
    tested_freight_written_by_alice_only(
        &c,
        "the step's write before the cache has seen its Promotion",
    );
}
