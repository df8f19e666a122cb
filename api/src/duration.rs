//! Go `time.ParseDuration` for the `metav1.Duration` fields Kargo uses (`requiredSoakTime`,
//! `longestSoak`, step `retry.timeout`, Warehouse `interval`): `1h30m`, `90s`, `1.5h`, `300ms`.

use std::time::Duration;

use crate::Error;

/// Parse a Go duration string. Negative durations are rejected (no Kargo field allows them).
pub fn parse(s: &str) -> Result<Duration, Error> {
    let err = || Error::ParseDuration(s.to_owned());
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(err());
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let num: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total_nanos += num * scale;
    }
    if !total_nanos.is_finite() || total_nanos > u64::MAX as f64 {
        return Err(err());
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

/// Format like Go's `Duration.String()` for whole seconds and above (`1h30m0s`, `45s`), which is
/// how Kubernetes serializes `metav1.Duration`.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let sec = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{:09}", frac);
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => {
            if secs == 0 && frac == 0 {
                "0s".to_owned()
            } else {
                sec
            }
        }
        (0, m) => format!("{m}m{sec}"),
        (h, m) => format!("{h}h{m}m{sec}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("1h30m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse("90s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse("1.5h").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse("300ms").ok(), Some(Duration::from_millis(300)));
        assert_eq!(parse("5m0s").ok(), Some(Duration::from_secs(300)));
        assert_eq!(parse("0").ok(), Some(Duration::ZERO));
        for bad in ["", "1", "h", "1d", "-1h", "1h x", "1..5h"] {
            assert!(parse(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format(Duration::from_secs(45)), "45s");
        assert_eq!(format(Duration::from_secs(300)), "5m0s");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
    }
}
