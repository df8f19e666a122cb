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
