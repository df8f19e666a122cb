//! Benchmark helper for `bench/webhook.py`: the in-process cost of reading an AdmissionReview
//! body (`promote_webhook::admission::parse_review`), per file given, as JSON microseconds.
//!
//! usage: parsecost FILE...

use std::time::{Duration, Instant};

fn main() -> Result<(), String> {
    let mut out = serde_json::Map::new();
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        promote_webhook::admission::parse_review(&body).map_err(|e| format!("{path}: {e}"))?;
        // Repeat for at least half a second.
        let (mut n, start) = (0u64, Instant::now());
        while start.elapsed() < Duration::from_millis(500) {
            for _ in 0..16 {
                std::hint::black_box(promote_webhook::admission::parse_review(&body).ok());
            }
            n += 16;
        }
        let us = start.elapsed().as_secs_f64() / n as f64 * 1e6;
        out.insert(path, serde_json::json!((us * 100.0).round() / 100.0));
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
