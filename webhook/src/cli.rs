//! Command line: `serve` (default), `certs`, `review`. Every flag also reads an environment
//! variable (`PROMOTE_WEBHOOK_<FLAG>`).

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use clap::{Args, Parser, Subcommand};

use crate::admission::{self, Hook, Policy};
use crate::cluster::{ACCESS_TTL, KubeCluster, StaticCluster};
use crate::server::{self, LogFormat, LogReviews};
use crate::tls;

/// Admission webhook for promote: enforces `kargo.akuity.io/authorized-stage` on Argo CD
/// Application writes, injects the sync operation, and guards who may promote.
///
/// Exit codes: 0 success (for `review`: allowed), 1 denied (`review`) or the server failed,
/// 2 usage errors.
#[derive(Parser, Debug)]
#[command(name = "promote-webhook", version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PROMOTE_GIT_COMMIT"), ")"))]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

// Parsed once per process: the size of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the admission webhooks over HTTPS (the default command).
    Serve(ServeArgs),
    /// Write a self-signed CA and a serving certificate for <service>.<namespace>.svc to
    /// DIR/ca.crt, DIR/tls.crt and DIR/tls.key, and print the base64 caBundle.
    Certs(CertsArgs),
    /// Evaluate one AdmissionReview offline and print the AdmissionReview response.
    Review(ReviewArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    promote_api::duration::parse(s).map_err(|e| e.to_string())
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// PEM serving certificate (chain). Reloaded when it changes.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_CERT",
        default_value = "/etc/promote-webhook/tls/tls.crt"
    )]
    pub cert: PathBuf,
    /// PEM private key of the serving certificate.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_KEY",
        default_value = "/etc/promote-webhook/tls/tls.key"
    )]
    pub key: PathBuf,
    /// HTTPS address of the webhooks.
    #[arg(long, env = "PROMOTE_WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    pub listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_METRICS_LISTEN",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_listen: SocketAddr,
    /// Kubeconfig to reach the API server; in-cluster configuration when absent.
    #[arg(long, env = "PROMOTE_WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Log format.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_LOG_FORMAT",
        value_enum,
        default_value = "json"
    )]
    pub log_format: LogFormat,
    /// Which reviews are logged: `notable` leaves out Argo CD's routine Application writes
    /// (allowed unchanged, not a promotion write), which can come thousands a second.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_LOG_REVIEWS",
        value_enum,
        default_value = "notable"
    )]
    pub log_reviews: LogReviews,
    /// Reviews decided at once; more wait (within their timeout).
    #[arg(long, env = "PROMOTE_WEBHOOK_MAX_CONCURRENCY", default_value_t = 256)]
    pub max_concurrency: usize,
    /// Largest request body, in MiB (an UPDATE review holds two Applications of up to 1.5 MiB).
    #[arg(long, env = "PROMOTE_WEBHOOK_BODY_LIMIT_MIB", default_value_t = 16)]
    pub body_limit_mib: usize,
    /// Request bodies held in memory at once, in MiB, charged as their bytes arrive: beyond it,
    /// reviews wait their turn unread (one body at a time may read beyond it).
    #[arg(long, env = "PROMOTE_WEBHOOK_BODY_BUDGET_MIB", default_value_t = 4)]
    pub body_budget_mib: usize,
    /// Time allowed for a client to send request headers.
    #[arg(long, env = "PROMOTE_WEBHOOK_HEADER_READ_TIMEOUT", value_parser = duration, default_value = "5s")]
    pub header_read_timeout: Duration,
    /// Longest time spent on one review (the API server's ?timeout= lowers it).
    #[arg(long, env = "PROMOTE_WEBHOOK_REQUEST_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub request_timeout: Duration,
    /// How often the certificate and key files are checked for changes.
    #[arg(long, env = "PROMOTE_WEBHOOK_RELOAD_INTERVAL", value_parser = duration, default_value = "10s")]
    pub reload_interval: Duration,
    /// How long a SubjectAccessReview answer is reused.
    #[arg(long, env = "PROMOTE_WEBHOOK_ACCESS_CACHE_TTL", value_parser = duration, default_value = "10s")]
    pub access_cache_ttl: Duration,
    /// After SIGTERM, how long the webhook keeps accepting reviews (not ready, each answer
    /// closing its connection) before it stops listening: the time Kubernetes takes to take the
    /// pod out of the Service's endpoints, during which the API server still connects to it.
    #[arg(long, env = "PROMOTE_WEBHOOK_SHUTDOWN_DELAY", value_parser = duration, default_value = "5s")]
    pub shutdown_delay: Duration,
    /// Time in-flight reviews get to finish once the webhook stops listening.
    #[arg(long, env = "PROMOTE_WEBHOOK_SHUTDOWN_GRACE", value_parser = duration, default_value = "25s")]
    pub shutdown_grace: Duration,
    /// Users that may change operation and sources of locked-down Applications (comma-separated).
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_LOCKDOWN_ALLOW",
        value_delimiter = ',',
        default_value = "system:serviceaccount:argocd:argocd-application-controller,system:serviceaccount:argocd:argocd-server"
    )]
    pub lockdown_allow: Vec<String>,
    /// Users whose deletes of Promotions and Freight are not checked (comma-separated).
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_TRUSTED_DELETERS",
        value_delimiter = ',',
        default_value = "system:serviceaccount:kube-system:generic-garbage-collector,system:serviceaccount:kube-system:namespace-controller"
    )]
    pub trusted_deleters: Vec<String>,
    /// Benchmarks only: answer every review "allowed" without deciding (the ceiling of the stack).
    #[arg(long, hide = true)]
    pub bench_noop: bool,
}

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Name of the webhook's Service.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_SERVICE",
        default_value = "promote-webhook"
    )]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(
        long,
        env = "PROMOTE_WEBHOOK_NAMESPACE",
        default_value = "promote-system"
    )]
    pub namespace: String,
    /// Directory to write ca.crt, tls.crt and tls.key to (created if missing).
    #[arg(long, env = "PROMOTE_WEBHOOK_CERTS_OUT")]
    pub out: PathBuf,
    /// Extra DNS names or IP addresses for the serving certificate (repeatable).
    #[arg(
        long = "san",
        env = "PROMOTE_WEBHOOK_EXTRA_SANS",
        value_delimiter = ','
    )]
    pub extra: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// AdmissionReview JSON file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Directory of YAML files with the Kargo objects the decision needs (Promotions, Stages,
    /// Freight, PromotionTasks).
    #[arg(long, conflicts_with = "kubeconfig")]
    pub objects: Option<PathBuf>,
    /// Read the objects from this cluster instead (and ask it SubjectAccessReviews).
    #[arg(long, env = "PROMOTE_WEBHOOK_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Offline: assume the requesting user may `promote` every Stage.
    #[arg(long)]
    pub can_promote: bool,
    /// Offline: assume the requesting user may `authorize` every Stage (change Applications'
    /// `kargo.akuity.io/authorized-stage` annotations).
    #[arg(long)]
    pub can_authorize: bool,
    /// Evaluate the mutating webhook of the object's kind instead of the validating one.
    #[arg(long)]
    pub mutate: bool,
}

/// Run the command line.
pub fn run(cli: Cli) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Some(Command::Certs(a)) => certs(a),
        Some(Command::Review(a)) => runtime_then(|| review(a)),
        Some(Command::Serve(a)) => runtime_then(|| serve(a)),
        None => runtime_then(|| serve(cli.serve)),
    }
}

fn runtime_then<F, Fut>(f: F) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, String>>,
{
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(f()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::incluster()
            .map_err(|e| format!("not running in a cluster ({e}); hint: pass --kubeconfig FILE"))?,
    };
    kube::Client::try_from(config).map_err(|e| format!("cannot build a Kubernetes client: {e}"))
}

async fn serve(a: ServeArgs) -> Result<ExitCode, String> {
    let client = kube_client(a.kubeconfig.as_ref()).await?;
    let policy = Policy {
        lockdown_allow: a
            .lockdown_allow
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        trusted_deleters: a
            .trusted_deleters
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        ..Policy::default()
    };
    let opts = server::Options {
        listen: a.listen,
        metrics_listen: a.metrics_listen,
        cert: a.cert,
        key: a.key,
        reload_interval: a.reload_interval.max(Duration::from_millis(100)),
        max_concurrency: a.max_concurrency,
        body_limit: a.body_limit_mib.max(1) * 1024 * 1024,
        body_budget: a.body_budget_mib.max(1) * 1024 * 1024,
        header_read_timeout: a.header_read_timeout,
        request_timeout: a.request_timeout,
        shutdown_grace: a.shutdown_grace,
        shutdown_delay: a.shutdown_delay,
        log_format: a.log_format,
        log_reviews: a.log_reviews,
        policy,
        noop: a.bench_noop,
    };
    let ttl = if a.access_cache_ttl.is_zero() {
        ACCESS_TTL
    } else {
        a.access_cache_ttl
    };
    let (cluster, feed) = KubeCluster::new(client, ttl).with_promotion_cache();
    tokio::spawn(feed);
    server::serve(opts, cluster)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}

fn certs(a: CertsArgs) -> ExitCode {
    let mut names = tls::service_names(&a.service, &a.namespace);
    names.extend(a.extra.into_iter().filter(|s| !s.is_empty()));
    let result = tls::generate(&format!("promote-webhook-ca.{}", a.namespace), &names)
        .and_then(|pki| write_certs(&a.out, &pki).map(|()| pki));
    match result {
        Ok(pki) => {
            println!(
                "{}",
                base64::engine::general_purpose::STANDARD.encode(pki.ca_pem.as_bytes())
            );
            eprintln!(
                "wrote {0}/ca.crt, {0}/tls.crt and {0}/tls.key for {1}\nnext: kubectl create secret tls promote-webhook-tls -n {2} --cert={0}/tls.crt --key={0}/tls.key, and set the printed caBundle on the webhook configurations",
                a.out.display(),
                names[0],
                a.namespace
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn write_certs(dir: &std::path::Path, pki: &tls::Pki) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let write = |name: &str, text: &str, private: bool| -> Result<(), String> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if private { 0o600 } else { 0o644 });
        }
        #[cfg(not(unix))]
        let _ = private;
        let mut f = opts
            .open(&tmp)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("ca.crt", &pki.ca_pem, false)?;
    write("tls.key", &pki.key_pem, true)?;
    write("tls.crt", &pki.cert_pem, false)
}

async fn review(a: ReviewArgs) -> Result<ExitCode, String> {
    let mut body = Vec::new();
    if a.file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        body =
            std::fs::read(&a.file).map_err(|e| format!("cannot read {}: {e}", a.file.display()))?;
    }
    let req = admission::parse_review(&body).map_err(|e| e.to_string())?;
    let Some(hook) = Hook::for_kind(&req.kind.kind, a.mutate) else {
        return Err(format!(
            "promote-webhook has no {} webhook for kind {:?}",
            if a.mutate { "mutating" } else { "validating" },
            req.kind.kind
        ));
    };
    let policy = Policy::default();
    let verdict = match (&a.objects, &a.kubeconfig) {
        (_, Some(kc)) => {
            let client = kube_client(Some(kc)).await?;
            admission::review(hook, &req, &KubeCluster::new(client, ACCESS_TTL), &policy).await
        }
        (dir, None) => {
            let mut cluster = match dir {
                Some(d) => StaticCluster::load(d)?,
                None => StaticCluster::default(),
            };
            if a.can_promote {
                cluster.promoters = Some(vec![("*".into(), "*".into(), "*".into())]);
            }
            if a.can_authorize {
                cluster.authorizers = Some(vec![("*".into(), "*".into(), "*".into())]);
            }
            admission::review(hook, &req, &cluster, &policy).await
        }
    };
    let out =
        serde_json::to_string_pretty(&verdict.to_review(&req.uid)).map_err(|e| e.to_string())?;
    println!("{out}");
    Ok(if verdict.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
