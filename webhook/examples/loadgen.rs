//! Load generator for `bench/webhook.py`: POSTs one AdmissionReview body over TLS with keep-alive
//! from N connections, closed loop (as fast as answers come) or open loop at a fixed rate (latency
//! measured from each request's scheduled time, so a stalled server is not hidden). Prints one
//! JSON line: requests, errors, rps, p50/p99/max in milliseconds.
//!
//! Every connection is opened (TLS handshake included) before the clock starts, and the open loop
//! is paced by a thread of its own sleeping to each scheduled time: tokio's timer ticks once per
//! millisecond, so pacing with it added up to a millisecond of the load generator's own lag to
//! every latency at 2,000 requests/s (the no-op server measured 2.1 ms p99 that way).
//!
//! usage: loadgen --url URL --ca FILE --body FILE[,FILE...] [--resolve HOST=IP:PORT]
//!        [--connections 64] [--rate 0] [--seconds 10]
//!
//! With several bodies (a mixed load), requests take them in turn. `--url` may be a
//! comma-separated list in the same order (each body's webhook path).
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The one request this load generator sends.
fn review(client: &reqwest::Client, url: &str, body: &bytes::Bytes) -> reqwest::RequestBuilder {
    client
        .post(url)
        .header("Content-Type", "application/json")
        .body(body.clone())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let ca = std::fs::read(arg(&args, "--ca", "")).map_err(|e| format!("--ca FILE: {e}"))?;
    let mut bodies = Vec::new();
    for file in arg(&args, "--body", "").split(',') {
        bodies.push(bytes::Bytes::from(
            std::fs::read(file).map_err(|e| format!("--body {file}: {e}"))?,
        ));
    }
    let urls: Vec<String> = arg(&args, "--url", "")
        .split(',')
        .map(str::to_owned)
        .collect();
    // (url, body) pairs, taken in turn by every request.
    let mix: Arc<Vec<(String, bytes::Bytes)>> = Arc::new(
        bodies
            .iter()
            .enumerate()
            .map(|(i, b)| (urls[i.min(urls.len() - 1)].clone(), b.clone()))
            .collect(),
    );
    let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (url, body) = mix[0].clone();
    let conns: usize = arg(&args, "--connections", "64").parse()?;
    let rate: f64 = arg(&args, "--rate", "0").parse()?;
    let seconds: f64 = arg(&args, "--seconds", "10").parse()?;
    let resolve = arg(&args, "--resolve", "");

    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .http1_only()
        .pool_max_idle_per_host(conns)
        .timeout(Duration::from_secs(10));
    if let Some((host, addr)) = resolve.split_once('=') {
        b = b.resolve(host, addr.parse()?);
    }
    let client = b.build()?;

    // Open every connection first, so handshakes are not measured as latency.
    let warm: Vec<_> = (0..conns)
        .map(|_| review(&client, &url, &body).send())
        .collect();
    for r in futures::future::join_all(warm).await {
        r?.bytes().await?;
    }

    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let (tx, rx) = tokio::sync::mpsc::channel::<Instant>(conns * 4);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (client, rx, mix, turn) = (client.clone(), rx.clone(), mix.clone(), turn.clone());
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            loop {
                let scheduled = if rate > 0.0 {
                    match rx.lock().await.recv().await {
                        Some(t) => t,
                        None => break,
                    }
                } else {
                    if Instant::now() >= end {
                        break;
                    }
                    Instant::now()
                };
                let (url, body) =
                    &mix[turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % mix.len()];
                let r = review(&client, url, body).send().await;
                let ok = match r {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    lat.push(scheduled.elapsed());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    if rate > 0.0 {
        let interval = Duration::from_secs_f64(1.0 / rate);
        std::thread::spawn(move || {
            let mut next = Instant::now();
            while next < end {
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if tx.blocking_send(next).is_err() {
                    break;
                }
                next += interval;
            }
        });
    } else {
        drop(tx);
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        all[i].as_secs_f64() * 1e3
    };
    println!(
        "{{\"requests\":{},\"errors\":{},\"rps\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"max_ms\":{:.3}}}",
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
