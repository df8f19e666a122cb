//! `kubectl promote get KIND [NAME]`: Kargo's kinds as kubectl-style tables, with Kargo's columns.

use promote_api::keys::ALIAS;
use promote_api::types::{Freight, PromotionPhase};
use serde_json::Value;

use super::{
    Ctx, age, keys, list_raw, list_typed, or_none, phase_of, print, print_objects, render, s,
};
use crate::cli::GetArgs;
use crate::error::{Error, context};
use crate::kube::{Api, kargo_path};
use crate::output::Format;
use crate::promotion::lease::Lease;

/// The kinds `get` knows: (plural, accepted names, kind).
pub(crate) const KINDS: &[(&str, &[&str], &str)] = &[
    (
        "stages",
        &["stage", "stages", "stage.kargo.akuity.io"],
        "Stage",
    ),
    (
        "freights",
        &["freight", "freights", "freight.kargo.akuity.io"],
        "Freight",
    ),
    (
        "promotions",
        &["promotion", "promotions", "promo", "promos"],
        "Promotion",
    ),
    ("warehouses", &["warehouse", "warehouses"], "Warehouse"),
];

/// What a Freight holds, briefly: `repo:tag` (or `repo@digest`) of each image, `repo@<commit[:7]>`
/// of each commit, `chart:version` of each chart.
fn artifacts(o: &Value) -> String {
    let list = |ptr: &str| {
        o.pointer(ptr)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for i in list("/images") {
        let (repo, tag, digest) = (s(&i, "/repoURL"), s(&i, "/tag"), s(&i, "/digest"));
        out.push(if tag.is_empty() {
            format!("{repo}@{}", digest.chars().take(19).collect::<String>())
        } else {
            format!("{repo}:{tag}")
        });
    }
    for c in list("/commits") {
        let id = s(&c, "/id");
        out.push(format!("{}@{}", s(&c, "/repoURL"), &id[..id.len().min(7)]));
    }
    for c in list("/charts") {
        let name = match s(&c, "/name") {
            "" => s(&c, "/repoURL"),
            n => n,
        };
        out.push(format!("{name}:{}", s(&c, "/version")));
    }
    out.join(",")
}

/// Rows for a kind: (headers, wide-only headers count, rows).
fn rows(
    plural: &str,
    items: &[Value],
    all_ns: bool,
) -> (Vec<&'static str>, usize, Vec<Vec<String>>) {
    let (headers, wide): (Vec<&'static str>, usize) = match plural {
        "stages" => (
            vec![
                "NAME",
                "SHARD",
                "CURRENT FREIGHT",
                "HEALTH",
                "LAST PROMOTION",
                "PHASE",
                "AGE",
                "CURRENT PROMOTION",
                "HEALTH CHECKED",
            ],
            2,
        ),
        "freights" => (
            vec![
                "NAME",
                "ALIAS",
                "ORIGIN",
                "CURRENTLY IN",
                "AGE",
                "VERIFIED IN",
                "APPROVED FOR",
                "ARTIFACTS",
            ],
            3,
        ),
        "promotions" => (
            vec![
                "NAME", "STAGE", "FREIGHT", "PHASE", "AGE", "ACTOR", "MESSAGE",
            ],
            2,
        ),
        // Kargo's columns, and with -o wide what the last discovery found.
        _ => (
            vec![
                "NAME",
                "SHARD",
                "AGE",
                "READY",
                "LAST FREIGHT",
                "DISCOVERED",
            ],
            3,
        ),
    };
    let mut out = Vec::new();
    for o in items {
        let mut row = Vec::new();
        if all_ns {
            row.push(s(o, "/metadata/namespace").to_owned());
        }
        row.push(s(o, "/metadata/name").to_owned());
        match plural {
            "stages" => {
                let current = o
                    .pointer("/status/freightHistory/0/items")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.values()
                            .map(|f| promote_api::naming::short_name(s(f, "/name")).to_owned())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                row.push(s(o, "/spec/shard").to_owned());
                row.push(current);
                row.push(s(o, "/status/health/status").to_owned());
                row.push(s(o, "/status/lastPromotion/name").to_owned());
                row.push(s(o, "/status/lastPromotion/status/phase").to_owned());
                row.push(age(o));
                row.push(or_none(s(o, "/status/currentPromotion/name").to_owned()));
                // When the HEALTH column was checked: now (live), or when it was recorded.
                row.push(match s(o, "/status/health/output/checkedAt") {
                    "" => "<recorded>".to_owned(),
                    t if o.pointer("/status/health/output/live") == Some(&Value::Bool(true)) => {
                        format!("{t} (live)")
                    }
                    t => t.to_owned(),
                });
            }
            "freights" => {
                let alias = match s(o, "/alias") {
                    "" => s(o, &format!("/metadata/labels/{}", ALIAS.replace('/', "~1"))),
                    a => a,
                };
                row.push(alias.to_owned());
                row.push(format!("{}/{}", s(o, "/origin/kind"), s(o, "/origin/name")));
                row.push(keys(o, "/status/currentlyIn"));
                row.push(age(o));
                row.push(keys(o, "/status/verifiedIn"));
                row.push(keys(o, "/status/approvedFor"));
                row.push(artifacts(o));
            }
            "promotions" => {
                row.push(s(o, "/spec/stage").to_owned());
                row.push(promote_api::naming::short_name(s(o, "/spec/freight")).to_owned());
                let lease_over = Lease::of_json(o).lapsed(jiff::Timestamp::now());
                let phase = phase_of(o);
                row.push(match phase {
                    // Nobody runs it any more: resume or abort a Running one; abort a Pending one
                    // (its runner stopped before it claimed the Stage).
                    PromotionPhase::Pending | PromotionPhase::Running if lease_over => {
                        format!("{phase} (stale)")
                    }
                    p => p.to_string(),
                });
                row.push(age(o));
                row.push(
                    s(o, "/metadata/annotations/kargo.akuity.io~1create-actor")
                        .trim_start_matches("kubernetes:")
                        .to_owned(),
                );
                row.push(
                    s(o, "/status/message")
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
            _ => {
                row.push(s(o, "/spec/shard").to_owned());
                row.push(age(o));
                let ready = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
                    .map(|c| format!("{} ({})", s(c, "/status"), s(c, "/reason")))
                    .unwrap_or_default();
                row.push(or_none(ready));
                row.push(or_none(
                    promote_api::naming::short_name(s(o, "/status/lastFreightID")).to_owned(),
                ));
                row.push(or_none(
                    s(o, "/status/discoveredArtifacts/discoveredAt").to_owned(),
                ));
            }
        }
        out.push(row);
    }
    (headers, wide, out)
}

/// Stages with the health their Applications show now (as `refresh` would record it): the
/// table never shows a Healthy that was true only when the last promotion ended. A Stage whose
/// Applications cannot be read (no access, API errors) keeps its recorded health.
fn with_live_health(kube: &dyn Api, items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let busy = !s(&o, "/status/currentPromotion/name").is_empty();
            if !busy && let Ok(Some(mut health)) = super::refresh::live_health(kube, &o) {
                health["output"]["live"] = Value::Bool(true);
                o["status"]["health"] = health;
            }
            o
        })
        .collect()
}

/// Run `get`.
pub fn run(c: &Ctx<'_>, args: &GetArgs) -> Result<(), Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let (all, no_headers) = (args.all_namespaces, args.no_headers);
    let (kind, name) = match (args.kind.split_once('/'), args.name.as_deref()) {
        (Some((k, n)), None) => (k, Some(n)),
        _ => (args.kind.as_str(), args.name.as_deref()),
    };
    let Some((plural, _, kind_name)) = KINDS
        .iter()
        .find(|(_, names, _)| names.contains(&kind.to_lowercase().as_str()))
    else {
        return Err(Error::Usage(format!(
            "unknown kind {kind:?}: kubectl promote get stages|freight|promotions|warehouses"
        )));
    };
    let fetch = || -> Result<Vec<Value>, Error> {
        Ok(match name {
            // Freight by a unique prefix or an alias too, as promoting takes it.
            Some(n) if *plural == "freights" => vec![freight_json(kube, ns, n)?],
            Some(n) => match kube
                .get(&kargo_path(plural, ns, n))
                .map_err(context(format!("reading {kind_name} {n}")))?
            {
                Some(v) => vec![v],
                None => {
                    return Err(Error::NotFound {
                        kind: kind_name,
                        name: n.to_owned(),
                        project: ns.to_owned(),
                    });
                }
            },
            None => list_raw(kube, plural, (!all).then_some(ns), args.selector.as_deref())?,
        })
    };
    let items = fetch()?;
    let show = |items: &[Value], no_headers: bool| -> Result<(), Error> {
        match c.global.output {
            Format::Table | Format::Wide => {
                let live;
                let items = if *plural == "stages" {
                    live = with_live_health(kube, items);
                    &live[..]
                } else {
                    items
                };
                let (mut headers, wide, rows) = rows(plural, items, all);
                let keep = if c.global.output == Format::Wide {
                    headers.len()
                } else {
                    headers.len() - wide
                };
                headers.truncate(keep);
                if all {
                    headers.insert(0, "NAMESPACE");
                }
                let n = headers.len();
                let rows: Vec<Vec<String>> = rows
                    .into_iter()
                    .map(|mut r| {
                        r.truncate(n);
                        r
                    })
                    .collect();
                print(&render(&headers, &rows, no_headers))
            }
            f => print_objects(items, name.is_some() || args.watch, f, kind_name),
        }
    };
    if items.is_empty() && matches!(c.global.output, Format::Table | Format::Wide) {
        eprintln!(
            "No {plural} found{}.",
            if all {
                String::new()
            } else {
                format!(" in project \"{ns}\"")
            }
        );
    } else if args.watch && !matches!(c.global.output, Format::Table | Format::Wide) {
        for item in &items {
            show(std::slice::from_ref(item), true)?;
        }
    } else {
        show(&items, no_headers)?;
    }
    if !args.watch {
        return Ok(());
    }
    // kubectl's -w prints each object again when it changes; here the list is asked for again
    // every second and an object is printed when its resourceVersion moved.
    let version = |o: &Value| {
        let f = |p: &str| {
            o.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        (
            (f("/metadata/namespace"), f("/metadata/name")),
            f("/metadata/resourceVersion"),
        )
    };
    let mut seen: std::collections::BTreeMap<(String, String), String> =
        items.iter().map(version).collect();
    let mut headers_shown = !items.is_empty();
    loop {
        if super::STDOUT_CLOSED.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = match fetch() {
            Ok(now) => now,
            // The object may be gone for a moment (or for good): keep watching.
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let changed: Vec<Value> = now
            .into_iter()
            .filter(|o| {
                let (key, rv) = version(o);
                seen.insert(key, rv.clone()).as_ref() != Some(&rv)
            })
            .collect();
        if changed.is_empty() {
            continue;
        }
        if matches!(c.global.output, Format::Table | Format::Wide) {
            show(&changed, no_headers || headers_shown)?;
            headers_shown = true;
        } else {
            for item in &changed {
                show(std::slice::from_ref(item), true)?;
            }
        }
    }
}

/// Find Freight by name, prefix or alias in `ns`.
pub(crate) fn resolve_freight(kube: &dyn Api, ns: &str, wanted: &str) -> Result<Freight, Error> {
    let all: Vec<Freight> = list_typed(kube, "freights", Some(ns))?;
    crate::promotion::plan::resolve_freight(&all, ns, Some(wanted), None).cloned()
}

/// Freight by full name (one GET), else by unique prefix or alias, as open JSON.
fn freight_json(kube: &dyn Api, ns: &str, wanted: &str) -> Result<Value, Error> {
    if let Some(v) = kube
        .get(&kargo_path("freights", ns, wanted))
        .map_err(context(format!("reading Freight {wanted}")))?
    {
        return Ok(v);
    }
    let f = resolve_freight(kube, ns, wanted)?;
    kube.get(&kargo_path("freights", ns, f.name()))
        .map_err(context(format!("reading Freight {}", f.name())))?
        .ok_or_else(|| Error::NotFound {
            kind: "Freight",
            name: wanted.to_owned(),
            project: ns.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn warehouses_show_their_last_discovery_when_wide() {
        let w = json!({"metadata": {"name": "web"}, "spec": {},
            "status": {"lastFreightID": "0123456789abcdef", "conditions": [{"type": "Ready", "status": "True", "reason": "ArtifactsDiscovered"}],
                       "discoveredArtifacts": {"discoveredAt": "2026-12-02T10:00:00Z"}}});
        let (headers, wide, rows) = rows(
            "warehouses",
            &[w, json!({"metadata": {"name": "new"}})],
            false,
        );
        assert_eq!(headers.len() - wide, 3, "Kargo's columns without -o wide");
        assert_eq!(
            rows[0][3..],
            [
                "True (ArtifactsDiscovered)",
                "0123456",
                "2026-12-02T10:00:00Z"
            ]
        );
        assert_eq!(rows[1][3..], ["<none>", "<none>", "<none>"]);
    }

    #[test]
    fn stale_promotions_say_so() {
        let promo = |phase: &str, expires: &str| {
            json!({"metadata": {"name": "p", "annotations": {promote_api::keys::LEASE_EXPIRES: expires}},
                   "spec": {"stage": "dev", "freight": "abcdef0123"}, "status": {"phase": phase}})
        };
        let past = "2020-01-01T00:00:00Z";
        let future =
            crate::kube::timestamp(jiff::Timestamp::now() + std::time::Duration::from_secs(60));
        let items = [
            promo("Running", past),
            promo("Running", &future),
            promo("", past),
            promo("Succeeded", past),
        ];
        let (_, _, rows) = rows("promotions", &items, false);
        let phases: Vec<&str> = rows.iter().map(|r| r[3].as_str()).collect();
        assert_eq!(
            phases,
            ["Running (stale)", "Running", "Pending (stale)", "Succeeded"]
        );
    }
}
