//! Stopping a running promotion: Ctrl-C (SIGINT/SIGTERM) or `kubectl promote abort` (the
//! `kargo.akuity.io/abort` annotation, noticed when the lease is renewed). Steps that wait check
//! [`requested`] while they wait; the runner checks it between steps.

use std::sync::atomic::{AtomicU8, Ordering};

static STATE: AtomicU8 = AtomicU8::new(0);

/// Why the promotion is asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// `kubectl promote abort` (by someone, maybe elsewhere).
    Aborted,
}

/// Ask the promotion to stop (the first reason wins).
pub fn request(stop: Stop) {
    let v = match stop {
        Stop::Interrupted => 1,
        Stop::Aborted => 2,
    };
    let _ = STATE.compare_exchange(0, v, Ordering::SeqCst, Ordering::SeqCst);
}

/// Whether stopping was asked for, and why.
pub fn requested() -> Option<Stop> {
    match STATE.load(Ordering::SeqCst) {
        1 => Some(Stop::Interrupted),
        2 => Some(Stop::Aborted),
        _ => None,
    }
}

/// Forget an earlier request (tests run several promotions in one process).
pub fn reset() {
    STATE.store(0, Ordering::SeqCst);
}

/// Install the Ctrl-C handler on the API client's runtime: the first Ctrl-C stops the promotion
/// cleanly (recorded), the second exits at once.
pub fn install(kube: &crate::kube::Kube) {
    kube.spawn(async {
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            if requested().is_some() {
                eprintln!("interrupted again: exiting now (the lease expires on its own)");
                std::process::exit(130);
            }
            eprintln!(
                "interrupt: stopping the promotion after recording its state (Ctrl-C again to quit at once)"
            );
            request(Stop::Interrupted);
        }
    });
}
