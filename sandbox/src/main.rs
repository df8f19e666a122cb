//! `promote-sandbox`: a Kubernetes-API-compatible test cluster with an Argo CD simulator.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A Kubernetes-API-compatible test cluster with an Argo CD simulator, for tests and demos.
///
/// It serves the Kubernetes REST API over HTTPS on 127.0.0.1 for the kinds promote uses (Kargo's
/// CRDs, Argo CD Applications, Namespaces, Secrets, ConfigMaps, RBAC, webhook configurations,
/// access reviews), with RBAC, admission webhooks and a simulated Argo CD controller. It is not a
/// Kubernetes replacement: no Pods, no controllers besides the Argo CD simulator, nothing persisted.
#[derive(Parser, Debug)]
#[command(name = "promote-sandbox", version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PROMOTE_GIT_COMMIT"), ")"))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the sandbox and serve until interrupted.
    ///
    /// Writes DIR/kubeconfig (contexts admin, alice, bob, promote-webhook; admin is in
    /// system:masters, the others have no permissions until RBAC grants them), DIR/tokens.csv and
    /// DIR/ca.crt, installs the Kargo CRDs and Argo CD's Application CRD, then prints `ready`.
    Up {
        /// Directory for kubeconfig, tokens.csv and ca.crt.
        #[arg(long, env = "PROMOTE_SANDBOX_DIR")]
        dir: PathBuf,
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 0, env = "PROMOTE_SANDBOX_PORT")]
        port: u16,
        /// Where a webhook Service lives: NAME.NAMESPACE=127.0.0.1:PORT (repeatable).
        #[arg(long = "service-endpoint", value_name = "NAME.NAMESPACE=ADDR")]
        service_endpoints: Vec<String>,
        /// Do not run the Argo CD simulator.
        #[arg(long)]
        no_argocd: bool,
    },
    /// Run the Argo CD simulator against another API server (the real tier, scripts/kube), as
    /// Argo CD's application controller: the bearer token comes from PROMOTE_ARGOCD_TOKEN.
    Argocd {
        /// The API server's URL.
        #[arg(long)]
        server: String,
        /// Its CA certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
    },
    /// Run the whole story on this machine: sandbox, Git server, webhook, dev -> test -> prod.
    ///
    /// Needs git and kubectl on PATH, and kubectl-promote and promote-webhook next to this binary
    /// (`cargo build --release --workspace --bins`) or on PATH. Prints every command as a user
    /// would type it, then keeps the sandbox running (Ctrl-C stops it) with DIR/kubeconfig so you
    /// can go on by hand.
    Demo {
        /// Working directory (kubeconfig, certificates, Git repository, manifests, logs); an
        /// earlier demo directory is replaced.
        #[arg(long, default_value = "promote-demo", env = "PROMOTE_DEMO_DIR")]
        dir: PathBuf,
        /// Where kubectl-promote and promote-webhook are (default: next to this binary, then PATH).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Stop when the story is told instead of serving until Ctrl-C.
        #[arg(long)]
        exit: bool,
        /// Create the Freight by hand even when Debian's docker-registry is installed (no
        /// discovery).
        #[arg(long)]
        no_registry: bool,
        /// Tell the story on a cluster that is already running (its kubeconfig, with contexts
        /// admin, alice, bob and promote-webhook, as `scripts/kube up` writes) instead of
        /// starting a sandbox; needs --webhook-port.
        #[arg(long, value_name = "KUBECONFIG", requires = "webhook_port")]
        cluster: Option<PathBuf>,
        /// With --cluster: the local port that cluster maps the Service
        /// promote-webhook.promote-system to (`--service-endpoint
        /// promote-webhook.promote-system=127.0.0.1:PORT`); the webhook runs there.
        #[arg(long, value_name = "PORT", requires = "cluster")]
        webhook_port: Option<u16>,
    },
}

fn parse_endpoints(list: &[String]) -> Result<HashMap<String, SocketAddr>, String> {
    let mut out = HashMap::new();
    for e in list {
        let (svc, addr) = e.split_once('=').ok_or_else(|| {
            format!("--service-endpoint {e:?}: expected NAME.NAMESPACE=127.0.0.1:PORT")
        })?;
        if svc.split('.').count() != 2 {
            return Err(format!(
                "--service-endpoint {e:?}: the service must be NAME.NAMESPACE"
            ));
        }
        let addr: SocketAddr = addr.parse().map_err(|err| {
            format!("--service-endpoint {e:?}: {addr:?} is not an address: {err}")
        })?;
        out.insert(svc.to_owned(), addr);
    }
    Ok(out)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Argocd { server, ca } => {
            let token = std::env::var("PROMOTE_ARGOCD_TOKEN").unwrap_or_default();
            if token.is_empty() {
                eprintln!(
                    "error: set PROMOTE_ARGOCD_TOKEN to the Argo CD controller's bearer token"
                );
                return ExitCode::from(2);
            }
            let client = std::fs::read(&ca)
                .map_err(|e| format!("reading {}: {e}", ca.display()))
                .and_then(|pem| {
                    promote_sandbox::tls::client_config(&pem).map_err(|e| e.to_string())
                })
                .and_then(|tls| {
                    reqwest::Client::builder()
                        .use_preconfigured_tls(tls)
                        .build()
                        .map_err(|e| e.to_string())
                });
            let client = match client {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            };
            let api = promote_sandbox::argocd::Api::Remote {
                client,
                server: server.trim_end_matches('/').to_owned(),
                token,
            };
            rt.block_on(async move {
                println!("ready");
                let _ = promote_sandbox::argocd::spawn_on(std::sync::Arc::new(api)).await;
            });
            ExitCode::SUCCESS
        }
        Command::Demo {
            dir,
            bin_dir,
            exit,
            no_registry,
            cluster,
            webhook_port,
        } => {
            let opts = promote_sandbox::demo::DemoOptions {
                dir,
                bin_dir,
                exit,
                registry: !no_registry,
                cluster: cluster.zip(webhook_port).map(|(kubeconfig, webhook_port)| {
                    promote_sandbox::demo::ExistingCluster {
                        kubeconfig,
                        webhook_port,
                    }
                }),
            };
            match promote_sandbox::demo::run(&rt, &opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Up {
            dir,
            port,
            service_endpoints,
            no_argocd,
        } => {
            let endpoints = match parse_endpoints(&service_endpoints) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            rt.block_on(async move {
                let opts = promote_sandbox::Options {
                    dir: dir.clone(),
                    port,
                    service_endpoints: endpoints,
                    argocd: !no_argocd,
                };
                let sandbox = match promote_sandbox::Sandbox::start(opts).await {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                };
                println!("promote-sandbox serving on {}", sandbox.url());
                println!(
                    "  export KUBECONFIG={}",
                    sandbox.kubeconfig_path().display()
                );
                println!("  kubectl get stages -A          # as admin (system:masters)");
                println!("  kubectl --context alice auth can-i promote stages");
                println!("ready");
                let term = async {
                    #[cfg(unix)]
                    {
                        if let Ok(mut s) = tokio::signal::unix::signal(
                            tokio::signal::unix::SignalKind::terminate(),
                        ) {
                            s.recv().await;
                            return;
                        }
                    }
                    std::future::pending::<()>().await
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term => {}
                }
                sandbox.stop().await;
                ExitCode::SUCCESS
            })
        }
    }
}
