//! The HTTPS server: axum on rustls (TLS 1.2/1.3, HTTP/1.1 keep-alive), bounded concurrency,
//! `?timeout=` honoured, certificate hot reload, graceful shutdown on SIGTERM, and a plain-HTTP
//! port for `/healthz`, `/readyz` and `/metrics`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::admission::{self, Hook, Policy, Verdict};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::tls::CertFiles;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Write one log line to stderr. `fields` are key/value pairs (values are JSON).
pub fn log(format: LogFormat, level: &str, msg: &str, fields: &[(&str, Value)]) {
    let time = jiff::Timestamp::now().to_string();
    let line = match format {
        LogFormat::Json => {
            let mut obj = serde_json::Map::new();
            obj.insert("time".into(), json!(time));
            obj.insert("level".into(), json!(level));
            obj.insert("msg".into(), json!(msg));
            for (k, v) in fields {
                obj.insert((*k).to_owned(), v.clone());
            }
            Value::Object(obj).to_string()
        }
        LogFormat::Text => {
            let mut s = format!("{time} {level:<5} {msg}");
            for (k, v) in fields {
                match v {
                    Value::String(t) if !t.contains([' ', '"']) && !t.is_empty() => {
                        s.push_str(&format!(" {k}={t}"))
                    }
                    other => s.push_str(&format!(" {k}={other}")),
                }
            }
            s
        }
    };
    eprintln!("{line}");
}

/// Settings of the server.
#[derive(Clone, Debug)]
pub struct Options {
    pub listen: SocketAddr,
    pub metrics_listen: SocketAddr,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub reload_interval: Duration,
    pub max_concurrency: usize,
    pub body_limit: usize,
    pub header_read_timeout: Duration,
    /// Timeout of one review when the API server does not send `?timeout=`; also the maximum.
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub policy: Policy,
    /// Answer every review "allowed" without reading it: the ceiling benchmarks compare against.
    pub noop: bool,
}

/// Shared state of the review handlers.
pub struct AppState<C> {
    pub cluster: C,
    pub policy: Policy,
    pub metrics: Arc<Metrics>,
    pub permits: Semaphore,
    pub request_timeout: Duration,
    pub log_format: LogFormat,
}

/// The review router (the HTTPS side), with the body limit applied.
pub fn router<C: Cluster + 'static>(state: Arc<AppState<C>>, body_limit: usize) -> Router {
    let mut r = Router::new();
    for hook in Hook::ALL {
        r = r.route(
            hook.path(),
            post(
                move |state: State<Arc<AppState<C>>>,
                      query: Query<HashMap<String, String>>,
                      body: Bytes| handle(hook, state, query, body),
            ),
        );
    }
    r.fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// The same stack (TLS, HTTP/1.1, body limit, body read) with a handler that decides nothing.
pub fn noop_router(body_limit: usize) -> Router {
    let mut r = Router::new();
    for hook in Hook::ALL {
        r = r.route(
            hook.path(),
            post(|_body: Bytes| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#,
                )
            }),
        );
    }
    r.layer(DefaultBodyLimit::max(body_limit))
}

async fn not_found(uri: Uri) -> Response {
    let paths: Vec<&str> = Hook::ALL.iter().map(|h| h.path()).collect();
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({
            "error": format!("no webhook at {}; this server answers POST on {}", uri.path(), paths.join(", "))
        })),
    )
        .into_response()
}

/// Parse the API server's `timeout` query value (`10s`, `1m`, ...).
fn query_timeout(q: &HashMap<String, String>, max: Duration) -> Duration {
    q.get("timeout")
        .and_then(|t| promote_api::duration::parse(t).ok())
        .filter(|d| !d.is_zero())
        .map_or(max, |d| d.min(max))
}

async fn handle<C: Cluster + 'static>(
    hook: Hook,
    State(state): State<Arc<AppState<C>>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let start = Instant::now();
    let path = hook.path();
    let req = match admission::parse_review(&body) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.bad_request(path);
            log(
                state.log_format,
                "warn",
                "bad request",
                &[("path", json!(path)), ("error", json!(e.to_string()))],
            );
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": e.to_string() })),
            )
                .into_response();
        }
    };
    // Leave a little of the API server's budget for the answer to travel back.
    let budget = query_timeout(&query, state.request_timeout)
        .saturating_sub(Duration::from_millis(100))
        .max(Duration::from_millis(100));
    let mut policy = state.policy.clone();
    policy.now = jiff::Timestamp::now();
    policy.ulid = ulid::Ulid::new();
    let decided = tokio::time::timeout(budget, async {
        let _permit = state.permits.acquire().await;
        admission::review(hook, &req, &state.cluster, &policy).await
    })
    .await;
    let mut verdict = decided.unwrap_or_else(|_| {
        Verdict::internal(format!(
            "promote-webhook could not decide within {}ms; hint: check that the webhook can reach the API server",
            budget.as_millis()
        ))
    });
    if !hook.is_mutating() {
        verdict.patch.clear();
    }
    let took = start.elapsed();
    state
        .metrics
        .review(path, req.operation.as_str(), verdict.allowed, took);
    let mut fields = vec![
        ("uid", json!(req.uid)),
        ("path", json!(path)),
        ("operation", json!(req.operation.as_str())),
        ("kind", json!(req.kind.kind)),
        ("namespace", json!(req.namespace)),
        ("name", json!(req.object_name())),
        ("user", json!(req.user_info.username)),
        ("allowed", json!(verdict.allowed)),
        ("patched", json!(!verdict.patch.is_empty())),
        ("dryRun", json!(req.dry_run)),
        (
            "durationMs",
            json!((took.as_secs_f64() * 1e6).round() / 1e3),
        ),
    ];
    if !verdict.allowed {
        fields.push(("code", json!(verdict.code)));
        fields.push(("reason", json!(verdict.message)));
    }
    log(state.log_format, "info", "review", &fields);
    (
        [(header::CONTENT_TYPE, "application/json")],
        verdict.to_review(&req.uid).to_string(),
    )
        .into_response()
}

/// The plain-HTTP router: `/healthz`, `/readyz`, `/metrics`.
pub fn ops_router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ok\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        metrics.render(),
                    )
                }
            }),
        )
}

/// Run the server until SIGTERM or Ctrl-C, then finish in-flight reviews (up to the grace
/// period) and return.
pub async fn serve<C: Cluster + 'static>(opts: Options, cluster: C) -> anyhow::Result<()> {
    let (mut files, cfg) = CertFiles::load(&opts.cert, &opts.key).map_err(|e| {
        anyhow::anyhow!("{e}; hint: pass --cert and --key (promote-webhook certs writes a pair)")
    })?;
    let tls = RustlsConfig::from_config(cfg);
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let fmt = opts.log_format;

    let reload_tls = tls.clone();
    let reload_metrics = metrics.clone();
    let interval = opts.reload_interval;
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            tokio::time::sleep(interval).await;
            match files.poll() {
                Ok(Some(cfg)) => {
                    reload_tls.reload_from_config(cfg);
                    reload_metrics.reload(true);
                    last_error.clear();
                    log(
                        fmt,
                        "info",
                        "reloaded serving certificate",
                        &[("cert", json!(files.cert.display().to_string()))],
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    if e != last_error {
                        reload_metrics.reload(false);
                        log(
                            fmt,
                            "error",
                            "keeping the previous serving certificate",
                            &[("error", json!(e))],
                        );
                        last_error = e;
                    }
                }
            }
        }
    });

    let state = Arc::new(AppState {
        cluster,
        policy: opts.policy.clone(),
        metrics: metrics.clone(),
        permits: Semaphore::new(opts.max_concurrency.max(1)),
        request_timeout: opts.request_timeout,
        log_format: fmt,
    });
    let app = if opts.noop {
        noop_router(opts.body_limit)
    } else {
        router(state, opts.body_limit)
    };

    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let ops = tokio::net::TcpListener::bind(opts.metrics_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.metrics_listen))?;
    let ops_addr = ops.local_addr()?;

    let handle = Handle::new();
    let mut server = axum_server::from_tcp_rustls(listener, tls).handle(handle.clone());
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout)
        .keep_alive(true);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut ops_stop = stop_rx.clone();
    let ops_app = ops_router(metrics, ready.clone());
    let ops_task = tokio::spawn(async move {
        let _ = axum::serve(ops, ops_app)
            .with_graceful_shutdown(async move {
                let _ = ops_stop.wait_for(|s| *s).await;
            })
            .await;
    });

    let shutdown_handle = handle.clone();
    let grace = opts.shutdown_grace;
    let shutdown_ready = ready.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown_ready.store(false, Ordering::SeqCst);
        log(
            fmt,
            "info",
            "shutting down: finishing in-flight reviews",
            &[("graceSeconds", json!(grace.as_secs()))],
        );
        shutdown_handle.graceful_shutdown(Some(grace));
    });

    let ready_handle = handle.clone();
    tokio::spawn(async move {
        if ready_handle.listening().await.is_some() {
            ready.store(true, Ordering::SeqCst);
            log(
                fmt,
                "info",
                "serving",
                &[
                    ("listen", json!(addr.to_string())),
                    ("metricsListen", json!(ops_addr.to_string())),
                ],
            );
        }
    });

    server.serve(app.into_make_service()).await?;
    let _ = stop_tx.send(true);
    let _ = ops_task.await;
    log(fmt, "info", "stopped", &[]);
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
