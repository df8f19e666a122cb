//! Benchmark helper for `bench/webhook.py`: the in-process cost of one review through the
//! review router (body read, reading the review, deciding, logging, answering), next to the
//! no-op router, without TLS, HTTP parsing or a load generator. The cluster answers from memory
//! as the webhook's watch cache and access cache do when warm: the bench's running Promotion, and
//! `promote` allowed. Logs go to stderr (send them to /dev/null).
//!
//! usage: routecost FILE... (each an AdmissionReview for the Application validating hook)
//! prints: {"FILE": {"real_us": .., "noop_us": ..}, ...}
//!
//! With `ROUTECOST_ITERATIONS=N` and `ROUTECOST_ROUTER=real|noop` it instead sends each body
//! exactly N times through that one router, untimed, and prints nothing: run under
//! `valgrind --tool=callgrind` with two values of N, the difference of the instruction totals
//! divided by the difference of N is the instruction count of one review, which the machine's
//! load does not change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use promote_api::types::{Freight, Promotion, PromotionTask, Stage};
use promote_webhook::admission::{Access, Hook, Policy, UserInfo};
use promote_webhook::cluster::{Cluster, Verb};
use promote_webhook::server::{AppState, BodyBudget, LogFormat, LogReviews, noop_router, router};

/// A warm cache: one Promotion, everyone may promote.
struct Warm(Arc<Promotion>);

impl Cluster for Warm {
    async fn promotion(&self, _: &str, _: &str) -> Result<Option<Arc<Promotion>>, String> {
        Ok(Some(self.0.clone()))
    }
    async fn stage(&self, _: &str, _: &str) -> Result<Option<Stage>, String> {
        Ok(None)
    }
    async fn stages(&self, _: &str) -> Result<Vec<Stage>, String> {
        Ok(Vec::new())
    }
    async fn warehouse(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<promote_api::types::Warehouse>, String> {
        Ok(None)
    }
    async fn tasks(&self, _: &str) -> Result<Vec<PromotionTask>, String> {
        Ok(Vec::new())
    }
    async fn freight(&self, _: &str, _: &str) -> Result<Option<Freight>, String> {
        Ok(None)
    }
    async fn freight_by_alias(&self, _: &str, _: &str) -> Result<Vec<Freight>, String> {
        Ok(Vec::new())
    }
    async fn may(&self, _: &UserInfo, _: &str, _: Verb, _: &str) -> Access {
        Access::Allowed
    }
    async fn fresh_promotion(&self, _: &str, _: &str) -> Result<Option<Arc<Promotion>>, String> {
        Ok(Some(self.0.clone()))
    }
    async fn promotions(&self, _: &str) -> Result<Vec<Arc<Promotion>>, String> {
        Ok(vec![self.0.clone()])
    }
    async fn fresh_promotions(&self, ns: &str) -> Result<Vec<Arc<Promotion>>, String> {
        self.promotions(ns).await
    }
    async fn application(&self, _: &str, _: &str) -> Result<Option<serde_json::Value>, String> {
        Ok(None)
    }
    async fn cluster_tasks(&self) -> Result<Vec<promote_api::types::PromotionTask>, String> {
        Ok(Vec::new())
    }
    async fn namespace(&self, _: &str) -> Result<Option<serde_json::Value>, String> {
        Ok(None)
    }
    async fn create_project_namespace(&self, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// One review through `app`.
async fn one(app: &axum::Router, body: &[u8]) -> Result<(), String> {
    let req = axum::http::Request::post(Hook::ValidateApplication.path())
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(Body::from(body.to_vec()))
        .map_err(|e| e.to_string())?;
    let resp = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(bytes);
    Ok(())
}

/// Microseconds per review through `app`, over at least half a second.
fn per_review(
    rt: &tokio::runtime::Runtime,
    app: &axum::Router,
    body: &[u8],
) -> Result<f64, String> {
    rt.block_on(async {
        for _ in 0..1000 {
            one(app, body).await?;
        }
        let (mut n, start) = (0u64, Instant::now());
        while start.elapsed() < Duration::from_millis(500) {
            for _ in 0..100 {
                one(app, body).await?;
            }
            n += 100;
        }
        Ok(start.elapsed().as_secs_f64() / n as f64 * 1e6)
    })
}

fn main() -> Result<(), String> {
    let promotion: Promotion = serde_json::from_value(serde_json::json!({
        "apiVersion": "kargo.akuity.io/v1alpha1", "kind": "Promotion",
        "metadata": {
            "name": "test.01j00000000000000000000000.be79d3d", "namespace": "kargo-demo",
            "annotations": { "kargo.akuity.io/create-actor": "kubernetes:alice" }
        },
        "spec": { "stage": "test", "freight": "be79d3d863f2323dd406cff7a99de434892f8740", "steps": [{ "uses": "argocd-update" }] },
        // The sync plan its runner recorded (bench/webhook.py records the same).
        "status": { "phase": "Running", "state": { "promote.dev/argocd-update": { "argocd/guestbook": {
            "sources": [{ "repoURL": "https://git.example.com/gitops.git", "path": "env/test", "targetRevision": "main" }],
            "revisions": ["bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
        } } } }
    }))
    .map_err(|e| e.to_string())?;
    let bodies = Arc::new(BodyBudget::new(8 << 20, 4 << 20));
    let state = Arc::new(AppState {
        cluster: Warm(Arc::new(promotion)),
        policy: Policy::default(),
        metrics: Default::default(),
        permits: tokio::sync::Semaphore::new(64),
        request_timeout: Duration::from_secs(10),
        log_format: LogFormat::Json,
        log_reviews: LogReviews::Notable,
        bodies: bodies.clone(),
    });
    let (real, noop) = (router(state), noop_router(bodies, Duration::from_secs(10)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    if let Ok(n) = std::env::var("ROUTECOST_ITERATIONS") {
        let n: u64 = n
            .parse()
            .map_err(|e| format!("ROUTECOST_ITERATIONS={n}: {e}"))?;
        let app = match std::env::var("ROUTECOST_ROUTER").as_deref() {
            Ok("noop") => &noop,
            Ok("real") | Err(_) => &real,
            Ok(other) => return Err(format!("ROUTECOST_ROUTER={other}: use real or noop")),
        };
        for path in std::env::args().skip(1) {
            let body = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
            rt.block_on(async {
                for _ in 0..n {
                    one(app, &body).await?;
                }
                Ok::<(), String>(())
            })
            .map_err(|e| format!("{path}: {e}"))?;
        }
        return Ok(());
    }
    let mut out = serde_json::Map::new();
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let real_us = per_review(&rt, &real, &body).map_err(|e| format!("{path}: {e}"))?;
        let noop_us = per_review(&rt, &noop, &body).map_err(|e| format!("{path}: {e}"))?;
        let round = |us: f64| (us * 100.0).round() / 100.0;
        out.insert(
            path,
            serde_json::json!({ "real_us": round(real_us), "noop_us": round(noop_us) }),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
