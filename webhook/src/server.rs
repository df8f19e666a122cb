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
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use serde_json::json;
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

/// Which reviews are logged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogReviews {
    /// Every review.
    All,
    /// Every review except Argo CD's routine Application writes (allowed unchanged and not a
    /// promotion write): denials, patches, promotion writes and every Kargo object review.
    Notable,
}

/// A log field's value, borrowed (a log line allocates one buffer).
#[derive(Clone, Copy, Debug)]
pub enum Field<'a> {
    Str(&'a str),
    Bool(bool),
    Num(f64),
    Int(u64),
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(s: &'a str) -> Self {
        Field::Str(s)
    }
}

impl<'a> From<&'a String> for Field<'a> {
    fn from(s: &'a String) -> Self {
        Field::Str(s)
    }
}

impl From<bool> for Field<'_> {
    fn from(b: bool) -> Self {
        Field::Bool(b)
    }
}

impl From<u64> for Field<'_> {
    fn from(n: u64) -> Self {
        Field::Int(n)
    }
}

impl From<f64> for Field<'_> {
    fn from(n: f64) -> Self {
        Field::Num(n)
    }
}

impl Field<'_> {
    fn write_json(self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = match self {
            Field::Str(s) => serde_json::to_writer(&mut *out, s).map_err(std::io::Error::other),
            Field::Bool(b) => write!(out, "{b}"),
            Field::Num(n) => serde_json::to_writer(&mut *out, &n).map_err(std::io::Error::other),
            Field::Int(n) => write!(out, "{n}"),
        };
    }
}

/// Write one log line to stderr, in one write.
pub fn log(format: LogFormat, level: &str, msg: &str, fields: &[(&str, Field<'_>)]) {
    use std::io::Write as _;
    let line = log_line(format, jiff::Timestamp::now(), level, msg, fields);
    let _ = std::io::stderr().lock().write_all(&line);
}

/// One log line, newline included.
fn log_line(
    format: LogFormat,
    time: jiff::Timestamp,
    level: &str,
    msg: &str,
    fields: &[(&str, Field<'_>)],
) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(256);
    match format {
        LogFormat::Json => {
            let _ = write!(out, "{{\"time\":\"{time}\",\"level\":");
            Field::Str(level).write_json(&mut out);
            out.extend_from_slice(b",\"msg\":");
            Field::Str(msg).write_json(&mut out);
            for (k, v) in fields {
                out.push(b',');
                Field::Str(k).write_json(&mut out);
                out.push(b':');
                v.write_json(&mut out);
            }
            out.push(b'}');
        }
        LogFormat::Text => {
            let _ = write!(out, "{time} {level:<5} {msg}");
            for (k, v) in fields {
                let _ = write!(out, " {k}=");
                match v {
                    Field::Str(t) if !t.contains([' ', '"', '=']) && !t.is_empty() => {
                        out.extend_from_slice(t.as_bytes())
                    }
                    other => other.write_json(&mut out),
                }
            }
        }
    }
    out.push(b'\n');
    out
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
    /// Bytes of request bodies held in memory at once.
    pub body_budget: usize,
    pub header_read_timeout: Duration,
    /// Timeout of one review when the API server does not send `?timeout=`; also the maximum.
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// See `--shutdown-delay`.
    pub shutdown_delay: Duration,
    pub log_format: LogFormat,
    pub log_reviews: LogReviews,
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
    pub log_reviews: LogReviews,
    pub bodies: Arc<BodyBudget>,
}

/// The review router (the HTTPS side).
pub fn router<C: Cluster + 'static>(state: Arc<AppState<C>>) -> Router {
    let mut r = Router::new();
    for hook in Hook::ALL {
        r = r.route(
            hook.path(),
            post(
                move |state: State<Arc<AppState<C>>>,
                      query: Query<HashMap<String, String>>,
                      request: axum::extract::Request| {
                    handle(hook, state, query, request)
                },
            ),
        );
    }
    r.fallback(not_found).with_state(state)
}

/// The same stack (TLS, HTTP/1.1, body limit and budget, body read) with a handler that decides
/// nothing.
pub fn noop_router(bodies: Arc<BodyBudget>, deadline: Duration) -> Router {
    let mut r = Router::new();
    for hook in Hook::ALL {
        let bodies = bodies.clone();
        r = r.route(
            hook.path(),
            post(move |request: axum::extract::Request| {
                let bodies = bodies.clone();
                async move {
                    if let Err(e) = bodies.read(request, deadline).await {
                        return e.into_response();
                    }
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"","allowed":true}}"#,
                    )
                        .into_response()
                }
            }),
        );
    }
    r
}

/// Request bodies under one memory budget. A body is charged for the bytes that have arrived,
/// as they arrive (KiB permits of a semaphore), never for the length it declares: a client that
/// declares megabytes and sends ten bytes holds one KiB, so lies and slow bodies cannot starve
/// honest reviews of the budget. Bodies that wait for budget while holding part of it could wait
/// for each other forever; one body at a time may therefore read beyond the budget (the
/// overdraft), so memory stays within `budget + limit` and some body always completes. Every body
/// must arrive within its review's timeout (408 otherwise), which also bounds how long a stalled
/// client holds what it sent.
pub struct BodyBudget {
    limit: usize,
    budget_kib: u32,
    /// The part of the budget kept for small bodies (`SMALL_BODY_KIB`).
    small_kib: u32,
    permits: Arc<Semaphore>,
    small: Arc<Semaphore>,
    overdraft: Arc<Semaphore>,
}
/// Read and discard up to `cap` bytes of a refused body, so that the client, which is still
/// sending it, gets to read the answer (a connection closed under a writing client loses it).
async fn drain(mut body: axum::body::Body, cap: usize) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while seen <= cap {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}

/// A request refused before any decision (a body too large or unreadable, not a review): HTTP
/// status and a JSON `{"error": ...}`.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "error": self.message }))).into_response()
    }
}

/// `bytes` in KiB permits of the budget semaphore (at least 1).
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// A body read under the budget; the budget (and the overdraft, if it took it) is returned when
/// this is dropped.
pub struct Body {
    pub bytes: Bytes,
    _held: Held,
}

/// What a body being read holds of the budget.
#[derive(Default)]
struct Held {
    kib: u32,
    /// Whether `permits` come from the small-body lane.
    small: bool,
    permits: Option<tokio::sync::OwnedSemaphorePermit>,
    overdraft: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Bodies up to this size (AdmissionReviews of ordinary objects are) are charged to a lane of
/// their own, a quarter of the budget: they never queue behind large bodies being read.
const SMALL_BODY_KIB: u32 = 64;

impl BodyBudget {
    /// `limit`: the largest body; `budget`: bytes of bodies held at once (one body more may be
    /// read beyond it, see the type's comment). Budgets of 256 KiB or more keep a quarter for
    /// bodies of up to 64 KiB.
    pub fn new(limit: usize, budget: usize) -> BodyBudget {
        let budget_kib = kib(budget);
        let small_kib = if budget_kib >= 256 { budget_kib / 4 } else { 0 };
        BodyBudget {
            limit,
            budget_kib,
            small_kib,
            permits: Arc::new(Semaphore::new((budget_kib - small_kib) as usize)),
            small: Arc::new(Semaphore::new(small_kib as usize)),
            overdraft: Arc::new(Semaphore::new(1)),
        }
    }

    /// Charge `held` for a body of `len` bytes so far: more permits of its lane, or the
    /// overdraft when the lane has none to spare. A small body that outgrows its lane moves to
    /// the large one (keeping what it holds until the large lane has paid for all of it).
    async fn charge(&self, held: &mut Held, len: usize) -> Result<(), Refusal> {
        let need = kib(len);
        if held.overdraft.is_some() || need <= held.kib {
            return Ok(());
        }
        let closed = |_| Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the webhook is shutting down".into(),
        };
        let moving = held.small && need > SMALL_BODY_KIB.min(self.small_kib);
        let large_kib = self.budget_kib - self.small_kib;
        let (lane, lane_kib, have) = if moving {
            (&self.permits, large_kib, 0)
        } else if held.small {
            (&self.small, self.small_kib, held.kib)
        } else {
            (&self.permits, large_kib, held.kib)
        };
        let extra = need - have;
        let got = if need > lane_kib {
            // Larger than the whole lane: only the overdraft can hold it.
            None
        } else {
            match lane.clone().try_acquire_many_owned(extra) {
                Ok(p) => Some(p),
                Err(tokio::sync::TryAcquireError::Closed) => return Err(closed(())),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    tokio::select! {
                        p = lane.clone().acquire_many_owned(extra) => Some(p.map_err(|_| closed(()))?),
                        o = self.overdraft.clone().acquire_owned() => {
                            held.overdraft = Some(o.map_err(|_| closed(()))?);
                            return Ok(());
                        }
                    }
                }
            }
        };
        match got {
            Some(p) => {
                held.kib = need;
                if moving {
                    held.small = false;
                    held.permits = Some(p);
                } else {
                    match &mut held.permits {
                        Some(mine) => mine.merge(p),
                        None => held.permits = Some(p),
                    }
                }
            }
            None => {
                let o = self
                    .overdraft
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| closed(()))?;
                held.overdraft = Some(o);
            }
        }
        Ok(())
    }

    /// Read the body of `request`, which must arrive within `deadline`.
    pub async fn read(
        &self,
        request: axum::extract::Request,
        deadline: Duration,
    ) -> Result<Body, Refusal> {
        use http_body_util::BodyExt;
        let too_large = |len: usize| Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the request body ({len} bytes or more) is larger than this webhook accepts ({} bytes); hint: raise --body-limit-mib",
                self.limit
            ),
        };
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if let Some(len) = declared.filter(|len| *len > self.limit) {
            drain(request.into_body(), self.limit.saturating_mul(4)).await;
            return Err(too_large(len));
        }
        let mut body = request.into_body();
        let mut held = Held {
            small: self.small_kib > 0 && declared.is_none_or(|d| kib(d) <= SMALL_BODY_KIB),
            ..Held::default()
        };
        // Grown as bytes arrive (never sized by the declared length, which may be a lie): its
        // capacity stays within twice what has been charged.
        let mut buf: Vec<u8> = Vec::new();
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| Refusal {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("cannot read the request body: {e}"),
                })?;
                if let Ok(data) = frame.into_data() {
                    let len = buf.len() + data.len();
                    if len > self.limit {
                        return Err(too_large(len));
                    }
                    self.charge(&mut held, len).await?;
                    buf.extend_from_slice(&data);
                }
            }
            Ok(())
        };
        match tokio::time::timeout(deadline, read).await {
            Ok(Ok(())) => {}
            Ok(Err(r)) => {
                drop(buf);
                drop(held);
                if r.status == StatusCode::PAYLOAD_TOO_LARGE {
                    drain(body, self.limit.saturating_mul(4)).await;
                }
                return Err(r);
            }
            Err(_) => {
                return Err(Refusal {
                    status: StatusCode::REQUEST_TIMEOUT,
                    message: format!(
                        "the request body did not arrive within {:?} (received {} bytes{}); the client sends too slowly or stopped",
                        deadline,
                        buf.len(),
                        declared.map_or(String::new(), |d| format!(" of {d} declared")),
                    ),
                });
            }
        }
        Ok(Body {
            bytes: Bytes::from(buf),
            _held: held,
        })
    }
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
    request: axum::extract::Request,
) -> Response {
    let start = Instant::now();
    let path = hook.path();
    // Refused before any decision: counted, logged and answered with a JSON error.
    let refuse = |r: Refusal| {
        state.metrics.bad_request(path);
        log(
            state.log_format,
            "warn",
            "bad request",
            &[
                ("path", path.into()),
                ("status", u64::from(r.status.as_u16()).into()),
                ("error", r.message.as_str().into()),
            ],
        );
        r.into_response()
    };
    let not_a_review = |e: admission::ReviewError| Refusal {
        status: StatusCode::BAD_REQUEST,
        message: e.to_string(),
    };
    // The body must arrive within the review's own timeout: after it, the API server has given up.
    let timeout = query_timeout(&query, state.request_timeout);
    let body = match state.bodies.read(request, timeout).await {
        Ok(b) => b,
        Err(r) => return refuse(r),
    };
    let review = match admission::read_review(&body.bytes) {
        Ok(r) => r,
        Err(e) => return refuse(not_a_review(e)),
    };
    if let Some(verdict) = admission::settled(&review, hook, &state.policy) {
        return answer(&state, hook, review.head(), &verdict, start);
    }
    let req = match review.into_request() {
        Ok(r) => r,
        Err(e) => return refuse(not_a_review(e)),
    };
    // Leave a little of the API server's budget for the answer to travel back.
    let budget = timeout
        .saturating_sub(start.elapsed() + Duration::from_millis(100))
        .max(Duration::from_millis(100));
    // The clock and a fresh ULID only for the hooks that read them; the others decide with the
    // shared policy as it is (no per-review copy).
    let fresh;
    let policy = if hook.reads_clock() {
        fresh = Policy {
            now: jiff::Timestamp::now(),
            ulid: ulid::Ulid::new(),
            ..state.policy.clone()
        };
        &fresh
    } else {
        &state.policy
    };
    let decided = tokio::time::timeout(budget, async {
        let _permit = state.permits.acquire().await;
        admission::review(hook, &req, &state.cluster, policy).await
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
    answer(&state, hook, &req, &verdict, start)
}

/// Record, log and send the answer to one review.
fn answer<C: Cluster>(
    state: &AppState<C>,
    hook: Hook,
    req: &admission::Request,
    verdict: &Verdict,
    start: Instant,
) -> Response {
    let path = hook.path();
    let took = start.elapsed();
    state
        .metrics
        .review(path, req.operation.as_str(), verdict.allowed, took);
    if state.log_reviews == LogReviews::All || !admission::is_routine(hook, req, verdict) {
        let duration_ms = (took.as_secs_f64() * 1e6).round() / 1e3;
        let mut fields = vec![
            ("uid", (&req.uid).into()),
            ("path", path.into()),
            ("operation", req.operation.as_str().into()),
            ("kind", (&req.kind.kind).into()),
            ("namespace", (&req.namespace).into()),
            ("name", req.object_name().into()),
            ("user", (&req.user_info.username).into()),
            ("allowed", verdict.allowed.into()),
            ("patched", (!verdict.patch.is_empty()).into()),
            ("dryRun", req.dry_run.into()),
            ("durationMs", duration_ms.into()),
        ];
        if !verdict.allowed {
            fields.push(("code", u64::from(verdict.code).into()));
            fields.push(("reason", (&verdict.message).into()));
        }
        log(state.log_format, "info", "review", &fields);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        verdict.to_review_bytes(&req.uid),
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
                        &[("cert", files.cert.display().to_string().as_str().into())],
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
                            &[("error", e.as_str().into())],
                        );
                        last_error = e;
                    }
                }
            }
        }
    });

    let bodies = Arc::new(BodyBudget::new(opts.body_limit, opts.body_budget));
    let state = Arc::new(AppState {
        cluster,
        policy: opts.policy.clone(),
        metrics: metrics.clone(),
        permits: Semaphore::new(opts.max_concurrency.max(1)),
        request_timeout: opts.request_timeout,
        log_format: fmt,
        log_reviews: opts.log_reviews,
        bodies: bodies.clone(),
    });
    let app = if opts.noop {
        noop_router(bodies, opts.request_timeout)
    } else {
        router(state)
    };
    // Draining (after SIGTERM, before the listener closes): every answer closes its connection,
    // so that clients holding keep-alive connections to this replica reconnect, through the
    // Service, to one that is staying. Closing idle connections instead would race with a
    // request being sent on them (a failed review).
    let draining = Arc::new(AtomicBool::new(false));
    let drain_flag = draining.clone();
    let app = app.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let draining = drain_flag.load(Ordering::SeqCst);
            async move {
                if draining {
                    response.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                }
                response
            }
        },
    ));

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
    let delay = opts.shutdown_delay;
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown_ready.store(false, Ordering::SeqCst);
        draining.store(true, Ordering::SeqCst);
        log(
            fmt,
            "info",
            "shutting down: not ready, still answering while the endpoints catch up",
            &[("delaySeconds", delay.as_secs().into())],
        );
        tokio::time::sleep(delay).await;
        log(
            fmt,
            "info",
            "shutting down: finishing in-flight reviews",
            &[("graceSeconds", grace.as_secs().into())],
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
                    ("listen", addr.to_string().as_str().into()),
                    ("metricsListen", ops_addr.to_string().as_str().into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn post(body: Vec<u8>, declare: bool) -> axum::extract::Request {
        let mut b = axum::http::Request::post("/x");
        if declare {
            b = b.header(header::CONTENT_LENGTH, body.len());
        }
        b.body(axum::body::Body::from(body)).unwrap()
    }

    const LONG: Duration = Duration::from_secs(30);

    /// A request whose body arrives frame by frame, as the test sends them.
    fn streamed(
        declared: Option<usize>,
    ) -> (tokio::sync::mpsc::Sender<Bytes>, axum::extract::Request) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        let mut b = axum::http::Request::post("/x");
        if let Some(len) = declared {
            b = b.header(header::CONTENT_LENGTH, len);
        }
        (tx, b.body(axum::body::Body::from_stream(stream)).unwrap())
    }

    #[tokio::test]
    async fn bodies_wait_for_the_budget_and_oversized_ones_get_413() {
        let budget = Arc::new(BodyBudget::new(64 * 1024, 8 * 1024));
        let first = budget
            .read(post(vec![b'a'; 6 * 1024], true), LONG)
            .await
            .unwrap();
        assert_eq!(first.bytes.len(), 6 * 1024);
        // A second 6 KiB body does not fit next to the first: it takes the overdraft.
        let second = budget
            .read(post(vec![b'b'; 6 * 1024], true), LONG)
            .await
            .unwrap();
        assert_eq!(&second.bytes[..2], b"bb");
        // A third waits until one of them is gone.
        let b3 = budget.clone();
        let third =
            tokio::spawn(async move { b3.read(post(vec![b'c'; 6 * 1024], true), LONG).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished());
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&third.bytes[..2], b"cc");
        drop((second, third));
        // A body larger than the budget (but within the limit) is read on the overdraft.
        let alone = budget
            .read(post(vec![b'c'; 20 * 1024], true), LONG)
            .await
            .unwrap();
        assert_eq!(alone.bytes.len(), 20 * 1024);
        drop(alone);
        // Over the limit: declared, or found while reading a body without a length.
        for declare in [true, false] {
            let Err(r) = budget
                .read(post(vec![b'd'; 65 * 1024], declare), LONG)
                .await
            else {
                panic!("an oversized body was accepted (declared: {declare})");
            };
            assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
            assert!(r.message.contains("--body-limit-mib"), "{}", r.message);
        }
        // The budget is whole again.
        assert_eq!(budget.permits.available_permits(), 8);
        assert_eq!(budget.overdraft.available_permits(), 1);
    }

    #[tokio::test]
    async fn a_declared_length_costs_nothing_until_the_bytes_arrive() {
        let budget = Arc::new(BodyBudget::new(64 * 1024, 8 * 1024));
        // Content-Length lies: 60 KiB declared, 10 bytes sent, then silence.
        let mut liars = Vec::new();
        for _ in 0..4 {
            let (tx, req) = streamed(Some(60 * 1024));
            tx.send(Bytes::from_static(b"0123456789")).await.unwrap();
            let b = budget.clone();
            liars.push((
                tx,
                tokio::spawn(async move { b.read(req, Duration::from_millis(300)).await }),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            budget.permits.available_permits(),
            4,
            "each liar holds the one KiB it sent"
        );
        // An honest review is read at once, next to them.
        let honest = tokio::time::timeout(
            Duration::from_millis(200),
            budget.read(post(vec![b'h'; 3 * 1024], true), LONG),
        )
        .await
        .expect("an honest body waited behind Content-Length lies")
        .unwrap();
        assert_eq!(honest.bytes.len(), 3 * 1024);
        drop(honest);
        // The liars run out of time with a 408 that says what arrived, and give the budget back.
        for (_tx, liar) in liars {
            let Err(r) = liar.await.unwrap() else {
                panic!("a stalled body was accepted")
            };
            assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
            assert!(
                r.message.contains("received 10 bytes of 61440 declared"),
                "{}",
                r.message
            );
        }
        assert_eq!(budget.permits.available_permits(), 8);
    }

    #[tokio::test]
    async fn small_bodies_never_queue_behind_large_ones() {
        // 1 MiB: 768 KiB for large bodies, 256 KiB for bodies of up to 64 KiB.
        let budget = Arc::new(BodyBudget::new(16 * 1024 * 1024, 1024 * 1024));
        // Large bodies hold the whole large lane and the overdraft, and more wait.
        let mut large = Vec::new();
        for _ in 0..4 {
            let (tx, req) = streamed(Some(3 * 1024 * 1024));
            tx.send(Bytes::from(vec![b'l'; 700 * 1024])).await.unwrap();
            let b = budget.clone();
            large.push((tx, tokio::spawn(async move { b.read(req, LONG).await })));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // (the 68 KiB left are already assigned to the first large body waiting)
        assert_eq!(budget.permits.available_permits(), 0);
        assert_eq!(budget.overdraft.available_permits(), 0);
        // An honest review is read at once, in its own lane.
        let honest = tokio::time::timeout(
            Duration::from_millis(200),
            budget.read(post(vec![b'h'; 20 * 1024], true), LONG),
        )
        .await
        .expect("a small body queued behind large ones")
        .unwrap();
        assert_eq!(honest.bytes.len(), 20 * 1024);
        drop(honest);
        assert_eq!(budget.small.available_permits(), 256);
        // A body that said it was small and grows is moved to the large lane.
        let (tx, req) = streamed(None);
        let b = budget.clone();
        let grows = tokio::spawn(async move { b.read(req, Duration::from_millis(300)).await });
        tx.send(Bytes::from(vec![b'g'; 32 * 1024])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(budget.small.available_permits(), 256 - 32);
        tx.send(Bytes::from(vec![b'g'; 64 * 1024])).await.unwrap();
        drop(tx);
        // It waits for the large lane (full), keeping its small-lane share, until its deadline.
        let Err(r) = grows.await.unwrap() else {
            panic!("a body beyond a full budget was read")
        };
        assert_eq!(r.status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(budget.small.available_permits(), 256);
        drop(large);
    }

    #[tokio::test]
    async fn bodies_arriving_together_beyond_the_budget_all_complete() {
        // Five 6 KiB bodies, 1 KiB frames interleaved, in an 8 KiB budget: without the overdraft
        // they would each hold part of the budget and wait for each other forever.
        let budget = Arc::new(BodyBudget::new(64 * 1024, 8 * 1024));
        let mut senders = Vec::new();
        let mut readers = Vec::new();
        for i in 0..5u8 {
            let (tx, req) = streamed(Some(6 * 1024));
            senders.push(tx);
            let b = budget.clone();
            readers.push(tokio::spawn(async move {
                let body = b.read(req, LONG).await?;
                assert!(body.bytes.iter().all(|c| *c == b'0' + i));
                // Decided and answered: the budget is given back.
                Ok::<usize, Refusal>(body.bytes.len())
            }));
        }
        let feed = tokio::spawn(async move {
            for _ in 0..6 {
                for (i, tx) in senders.iter().enumerate() {
                    let _ = tx.send(Bytes::from(vec![b'0' + i as u8; 1024])).await;
                }
            }
            // Closing the channels ends the bodies.
        });
        for r in readers {
            let len = tokio::time::timeout(Duration::from_secs(10), r)
                .await
                .expect("bodies deadlocked on the budget")
                .unwrap()
                .unwrap();
            assert_eq!(len, 6 * 1024);
        }
        feed.await.unwrap();
        assert_eq!(budget.permits.available_permits(), 8);
        assert_eq!(budget.overdraft.available_permits(), 1);
    }

    #[test]
    fn log_lines_are_one_json_object_or_one_text_line() {
        let time: jiff::Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
        let fields = [
            ("uid", Field::Str("u-1")),
            ("reason", Field::Str("a \"quoted\"\nmessage")),
            ("allowed", Field::Bool(false)),
            ("code", Field::Int(403)),
            ("durationMs", Field::Num(0.125)),
            ("empty", Field::Str("")),
        ];
        let json = log_line(LogFormat::Json, time, "info", "review", &fields);
        assert_eq!(json.iter().filter(|b| **b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            v,
            json!({"time": "2026-11-24T12:00:00Z", "level": "info", "msg": "review", "uid": "u-1",
                   "reason": "a \"quoted\"\nmessage", "allowed": false, "code": 403,
                   "durationMs": 0.125, "empty": ""})
        );
        let text = String::from_utf8(log_line(
            LogFormat::Text,
            time,
            "warn",
            "bad request",
            &fields,
        ))
        .unwrap();
        assert_eq!(
            text,
            "2026-11-24T12:00:00Z warn  bad request uid=u-1 reason=\"a \\\"quoted\\\"\\nmessage\" allowed=false code=403 durationMs=0.125 empty=\"\"\n"
        );
    }
}
