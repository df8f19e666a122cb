//! Prometheus metrics in the text exposition format, kept in memory (no exporter crate: three
//! families do not need one).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    // Keys are the hooks' static paths and operations: recording a review allocates nothing.
    requests: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    bad_requests: BTreeMap<&'static str, u64>,
    reloads: BTreeMap<&'static str, u64>,
}

/// The webhook's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    /// Record one answered review.
    pub fn review(
        &self,
        path: &'static str,
        operation: &'static str,
        allowed: bool,
        took: Duration,
    ) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        *m.requests
            .entry((path, operation, if allowed { "true" } else { "false" }))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let h = m.latency.entry(path).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Record a body that was not a usable AdmissionReview.
    pub fn bad_request(&self, path: &'static str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.bad_requests.entry(path).or_default() += 1;
        }
    }

    /// Record a certificate reload attempt (`ok` or `error`).
    pub fn reload(&self, ok: bool) {
        if let Ok(mut m) = self.inner.lock() {
            *m.reloads
                .entry(if ok { "ok" } else { "error" })
                .or_default() += 1;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(m) = self.inner.lock() else {
            return out;
        };
        out.push_str("# HELP promote_webhook_requests_total Admission reviews answered, by path, operation and verdict.\n# TYPE promote_webhook_requests_total counter\n");
        for ((path, op, allowed), n) in &m.requests {
            let _ = writeln!(
                out,
                "promote_webhook_requests_total{{path=\"{path}\",operation=\"{op}\",allowed=\"{allowed}\"}} {n}"
            );
        }
        out.push_str("# HELP promote_webhook_request_duration_seconds Time to answer an admission review.\n# TYPE promote_webhook_request_duration_seconds histogram\n");
        for (path, h) in &m.latency {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "promote_webhook_request_duration_seconds_bucket{{path=\"{path}\",le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "promote_webhook_request_duration_seconds_bucket{{path=\"{path}\",le=\"+Inf\"}} {}\npromote_webhook_request_duration_seconds_sum{{path=\"{path}\"}} {}\npromote_webhook_request_duration_seconds_count{{path=\"{path}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        out.push_str("# HELP promote_webhook_bad_requests_total Bodies that were not usable AdmissionReviews (answered 400).\n# TYPE promote_webhook_bad_requests_total counter\n");
        for (path, n) in &m.bad_requests {
            let _ = writeln!(
                out,
                "promote_webhook_bad_requests_total{{path=\"{path}\"}} {n}"
            );
        }
        out.push_str("# HELP promote_webhook_certificate_reloads_total Serving certificate reloads, by result.\n# TYPE promote_webhook_certificate_reloads_total counter\n");
        for (result, n) in &m.reloads {
            let _ = writeln!(
                out,
                "promote_webhook_certificate_reloads_total{{result=\"{result}\"}} {n}"
            );
        }
        out
    }
}
