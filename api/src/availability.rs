//! Whether a Freight is available to a Stage, as Kargo v1.11 decides it
//! (`api/v1alpha1/stage_types.go` `IsFreightAvailable`), with an explanation when it is not, so
//! the plugin and the webhook can say what must happen first.
//!
//! Rules: same namespace; some `requestedFreight` entry with the Freight's origin, and then any of
//! (1) approved for the Stage, (2) `sources.direct`, (3) verified in upstream Stages — all of them
//! under `availabilityStrategy: All`, at least one otherwise — each having soaked for
//! `requiredSoakTime` (soak = max(longest completed soak, now − currentlyIn.since)).

use std::time::Duration;

use jiff::Timestamp;

use crate::duration;
use crate::types::{Freight, Stage};

/// Why a Freight is, or is not, available to a Stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Manually approved for the Stage.
    Approved,
    /// The Stage takes Freight directly from its Warehouse.
    Direct,
    /// Verified (and soaked) upstream.
    VerifiedUpstream,
    /// Not available; the reason says what is missing.
    Unavailable(Unavailable),
}

impl Availability {
    /// Whether the Freight may be promoted to the Stage.
    pub fn is_available(&self) -> bool {
        !matches!(self, Self::Unavailable(_))
    }
}

/// What is missing for a Freight to be available to a Stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The Freight lives in another project.
    OtherProject {
        freight_project: String,
        stage_project: String,
    },
    /// The Stage does not request Freight from this origin.
    OriginNotRequested { origin: String },
    /// Upstream verification (or soak) is missing.
    NeedsUpstream {
        /// `All` or `OneOf`.
        all: bool,
        /// Upstream Stages where the Freight is not verified yet.
        unverified: Vec<String>,
        /// Upstream Stages where it is verified but has not soaked long enough: (stage, remaining).
        soaking: Vec<(String, Duration)>,
    },
    /// The Stage names no upstream Stages and does not take Freight directly.
    NoSources,
    /// `requiredSoakTime` is not a valid duration.
    BadSoakTime(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherProject {
                freight_project,
                stage_project,
            } => write!(
                f,
                "the Freight is in project \"{freight_project}\" but the Stage is in project \"{stage_project}\""
            ),
            Self::OriginNotRequested { origin } => {
                write!(
                    f,
                    "the Stage does not request Freight from origin \"{origin}\""
                )
            }
            Self::NeedsUpstream {
                all,
                unverified,
                soaking,
            } => {
                let mut parts = Vec::new();
                if !unverified.is_empty() {
                    let list = unverified
                        .iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(", ");
                    parts.push(if *all || unverified.len() == 1 {
                        format!("it must first be verified in {list}")
                    } else {
                        format!("it must first be verified in one of {list}")
                    });
                }
                for (stage, left) in soaking {
                    parts.push(format!(
                        "it must soak in \"{stage}\" for another {}",
                        duration::format(Duration::from_secs(left.as_secs().max(1)))
                    ));
                }
                write!(f, "{}", parts.join("; "))
            }
            Self::NoSources => write!(
                f,
                "the Stage takes this origin neither directly nor from upstream Stages; approve the Freight for it"
            ),
            Self::BadSoakTime(e) => write!(f, "the Stage's requiredSoakTime is invalid: {e}"),
        }
    }
}

/// How long the Freight has soaked in `stage` at `now` (zero unless verified there).
pub fn longest_soak(freight: &Freight, stage: &str, now: Timestamp) -> Duration {
    let Some(verified) = freight.status.verified_in.get(stage) else {
        return Duration::ZERO;
    };
    let completed = verified
        .longest_completed_soak
        .as_deref()
        .and_then(|d| duration::parse(d).ok())
        .unwrap_or_default();
    let current = freight
        .status
        .currently_in
        .get(stage)
        .and_then(|c| c.since.as_ref())
        .and_then(|since| {
            let secs = now.as_second() - since.0.as_second();
            u64::try_from(secs).ok().map(Duration::from_secs)
        })
        .unwrap_or_default();
    completed.max(current)
}

/// Decide availability of `freight` to `stage` at `now`.
pub fn check(stage: &Stage, freight: &Freight, now: Timestamp) -> Availability {
    let stage_project = stage.project();
    let freight_project = freight.metadata.namespace.as_deref().unwrap_or_default();
    if stage_project != freight_project {
        return Availability::Unavailable(Unavailable::OtherProject {
            freight_project: freight_project.to_owned(),
            stage_project: stage_project.to_owned(),
        });
    }
    let mut last = Unavailable::OriginNotRequested {
        origin: freight.origin.to_string(),
    };
    for req in stage
        .spec
        .requested_freight
        .iter()
        .filter(|r| r.origin == freight.origin)
    {
        if freight.is_approved_for(stage.name()) {
            return Availability::Approved;
        }
        if req.sources.direct {
            return Availability::Direct;
        }
        let soak = match req
            .sources
            .required_soak_time
            .as_deref()
            .map(duration::parse)
        {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                return Availability::Unavailable(Unavailable::BadSoakTime(e.to_string()));
            }
        };
        let all = req.sources.availability_strategy == "All";
        let mut unverified = Vec::new();
        let mut soaking = Vec::new();
        let mut satisfied = 0usize;
        for upstream in &req.sources.stages {
            if !freight.is_verified_in(upstream) {
                unverified.push(upstream.clone());
                continue;
            }
            let soaked = longest_soak(freight, upstream, now);
            match soak {
                Some(need) if soaked < need => soaking.push((upstream.clone(), need - soaked)),
                _ => satisfied += 1,
            }
        }
        // Kargo: `All` with no upstream Stages is vacuously satisfied.
        let ok = if all {
            unverified.is_empty() && soaking.is_empty()
        } else {
            satisfied > 0
        };
        if ok {
            return Availability::VerifiedUpstream;
        }
        last = if req.sources.stages.is_empty() {
            Unavailable::NoSources
        } else {
            Unavailable::NeedsUpstream {
                all,
                unverified,
                soaking,
            }
        };
    }
    Availability::Unavailable(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn stage(sources: FreightSources) -> Stage {
        let mut s = Stage::new(
            "prod",
            StageSpec {
                requested_freight: vec![FreightRequest {
                    origin: FreightOrigin::warehouse("w"),
                    sources,
                }],
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("demo".into());
        s
    }

    fn freight() -> Freight {
        let mut f = Freight::new("demo", FreightOrigin::warehouse("w"));
        f.metadata.name = Some("abc".into());
        f
    }

    fn verified(f: &mut Freight, stage: &str, longest: Option<&str>) {
        f.status.verified_in.insert(
            stage.into(),
            VerifiedStage {
                verified_at: None,
                longest_completed_soak: longest.map(str::to_owned),
            },
        );
    }

    fn upstream(stages: &[&str], all: bool, soak: Option<&str>) -> FreightSources {
        FreightSources {
            stages: stages.iter().map(|s| s.to_string()).collect(),
            availability_strategy: if all { "All".into() } else { String::new() },
            required_soak_time: soak.map(str::to_owned),
            ..Default::default()
        }
    }

    const NOW: &str = "2026-01-01T12:00:00Z";

    #[test]
    fn direct_and_approved() {
        let f = freight();
        let s = stage(FreightSources {
            direct: true,
            ..Default::default()
        });
        assert_eq!(check(&s, &f, ts(NOW)), Availability::Direct);
        let s = stage(upstream(&["test"], false, None));
        assert!(!check(&s, &f, ts(NOW)).is_available());
        let mut f = freight();
        f.status
            .approved_for
            .insert("prod".into(), ApprovedStage::default());
        assert_eq!(check(&s, &f, ts(NOW)), Availability::Approved);
    }

    #[test]
    fn other_project_or_origin_is_unavailable() {
        let s = stage(FreightSources {
            direct: true,
            ..Default::default()
        });
        let mut f = freight();
        f.metadata.namespace = Some("other".into());
        assert!(!check(&s, &f, ts(NOW)).is_available());
        let mut f = freight();
        f.origin = FreightOrigin::warehouse("w2");
        assert!(matches!(
            check(&s, &f, ts(NOW)),
            Availability::Unavailable(Unavailable::OriginNotRequested { .. })
        ));
    }

    #[test]
    fn one_of_and_all() {
        let mut f = freight();
        verified(&mut f, "test-a", None);
        let one_of = stage(upstream(&["test-a", "test-b"], false, None));
        let all = stage(upstream(&["test-a", "test-b"], true, None));
        assert_eq!(check(&one_of, &f, ts(NOW)), Availability::VerifiedUpstream);
        match check(&all, &f, ts(NOW)) {
            Availability::Unavailable(u @ Unavailable::NeedsUpstream { .. }) => {
                assert_eq!(u.to_string(), "it must first be verified in \"test-b\"");
            }
            other => panic!("unexpected {other:?}"),
        }
        verified(&mut f, "test-b", None);
        assert_eq!(check(&all, &f, ts(NOW)), Availability::VerifiedUpstream);
    }

    #[test]
    fn unverified_message_names_upstreams() {
        let f = freight();
        let s = stage(upstream(&["test-a", "test-b"], false, None));
        let Availability::Unavailable(u) = check(&s, &f, ts(NOW)) else {
            panic!("available")
        };
        assert_eq!(
            u.to_string(),
            "it must first be verified in one of \"test-a\", \"test-b\""
        );
    }

    #[test]
    fn soak_time_counts_current_and_completed() {
        let s = stage(upstream(&["test"], false, Some("1h")));
        let mut f = freight();
        verified(&mut f, "test", Some("30m0s"));
        let Availability::Unavailable(u) = check(&s, &f, ts(NOW)) else {
            panic!("available")
        };
        assert_eq!(u.to_string(), "it must soak in \"test\" for another 30m0s");
        f.status.currently_in.insert(
            "test".into(),
            CurrentStage {
                since: Some(Time(ts("2026-01-01T10:30:00Z"))),
            },
        );
        assert_eq!(check(&s, &f, ts(NOW)), Availability::VerifiedUpstream);
        let mut f = freight();
        verified(&mut f, "test", Some("1h0m0s"));
        assert_eq!(check(&s, &f, ts(NOW)), Availability::VerifiedUpstream);
    }

    #[test]
    fn all_with_soak_requires_every_upstream_soaked() {
        let s = stage(upstream(&["a", "b"], true, Some("10m")));
        let mut f = freight();
        verified(&mut f, "a", Some("1h0m0s"));
        verified(&mut f, "b", Some("5m0s"));
        assert!(!check(&s, &f, ts(NOW)).is_available());
        verified(&mut f, "b", Some("10m0s"));
        assert!(check(&s, &f, ts(NOW)).is_available());
    }

    #[test]
    fn bad_soak_time_is_reported() {
        let s = stage(upstream(&["a"], false, Some("1 day")));
        let mut f = freight();
        verified(&mut f, "a", None);
        assert!(matches!(
            check(&s, &f, ts(NOW)),
            Availability::Unavailable(Unavailable::BadSoakTime(_))
        ));
    }
}
