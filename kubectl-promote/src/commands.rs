//! The commands besides promoting: `get`, `approve`, `abort`, `history`, `freight create`,
//! `completion`. Output follows kubectl: tables on stdout (`--no-headers`, `-o wide`), `-o json|yaml`
//! print the object (a `List` for several), `-o name` prints `kind.group/name`.

use std::io::Write;
use std::time::{Duration, Instant};

use promote_api::keys::{ABORT, ALIAS};
use promote_api::types::{Chart, Freight, FreightOrigin, GitCommit, Image, Promotion, Stage};
use serde_json::{Value, json};

use crate::cli::{Cli, Command, FreightCommand, stage_name};
use crate::error::Error;
use crate::kube::{Kube, kargo_path};
use crate::output::Format;

/// The kinds `get` knows: (plural, accepted names, kind).
const KINDS: &[(&str, &[&str], &str)] = &[
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

/// LIST a Kargo kind in one namespace (or all with `None`), typed.
pub fn list_typed<T: serde::de::DeserializeOwned>(
    kube: &Kube,
    plural: &str,
    ns: Option<&str>,
) -> Result<Vec<T>, Error> {
    list_raw(kube, plural, ns, None)?
        .into_iter()
        .map(|v| {
            serde_json::from_value(v)
                .map_err(|e| Error::Cluster(format!("cannot read {plural}: {e}")))
        })
        .collect()
}

fn list_raw(
    kube: &Kube,
    plural: &str,
    ns: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>, Error> {
    let path = match ns {
        Some(ns) => kargo_path(plural, ns, ""),
        None => format!("{}/{plural}", crate::kube::KARGO),
    };
    kube.list(&path, selector)
        .map_err(crate::kube::context(format!("listing {plural}")))
}

/// kubectl's short ages: 45s, 12m, 3h, 5d.
fn age(obj: &Value) -> String {
    let Some(t) = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    else {
        return "<unknown>".into();
    };
    let s = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

fn keys(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default()
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
            ],
            1,
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
            ],
            2,
        ),
        "promotions" => (
            vec![
                "NAME", "STAGE", "FREIGHT", "PHASE", "AGE", "ACTOR", "MESSAGE",
            ],
            2,
        ),
        _ => (vec!["NAME", "SHARD", "AGE"], 0),
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
            }
            "promotions" => {
                row.push(s(o, "/spec/stage").to_owned());
                row.push(promote_api::naming::short_name(s(o, "/spec/freight")).to_owned());
                let lease_over =
                    crate::kube::lease_expiry(o).is_some_and(|t| t <= jiff::Timestamp::now());
                row.push(match s(o, "/status/phase") {
                    // Nobody runs it any more: resume or abort a Running one; abort a Pending one
                    // (its runner stopped before it claimed the Stage).
                    "" | "Pending" if lease_over => "Pending (stale)".to_owned(),
                    "" => "Pending".to_owned(),
                    "Running" if lease_over => "Running (stale)".to_owned(),
                    p => p.to_owned(),
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
            }
        }
        out.push(row);
    }
    (headers, wide, out)
}

/// Align columns, kubectl style (three spaces between columns).
pub fn render(headers: &[&str], rows: &[Vec<String>], no_headers: bool) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.len());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    if !no_headers {
        line(headers.to_vec());
    }
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e.to_string())),
        _ => Ok(()),
    }
}

fn print_objects(items: &[Value], single: bool, format: Format, kind: &str) -> Result<(), Error> {
    let doc = if single {
        items.first().cloned().unwrap_or(Value::Null)
    } else {
        json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
    };
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(&doc).map_err(|e| Error::Output(e.to_string()))? + "\n"
        }
        Format::Yaml => serde_yaml::to_string(&doc).map_err(|e| Error::Output(e.to_string()))?,
        _ => items
            .iter()
            .map(|o| {
                format!(
                    "{}.kargo.akuity.io/{}\n",
                    kind.to_lowercase(),
                    s(o, "/metadata/name")
                )
            })
            .collect(),
    };
    print(&text)
}

fn namespace(cli: &Cli, kube: &Kube) -> String {
    cli.global
        .namespace
        .clone()
        .unwrap_or_else(|| kube.namespace.clone())
}

/// Run a subcommand.
pub fn run(cli: &Cli, cmd: &Command) -> Result<(), Error> {
    if let Command::Completion { shell } = cmd {
        let mut c = <Cli as clap::CommandFactory>::command();
        let mut buf = Vec::new();
        clap_complete::generate(*shell, &mut c, "kubectl-promote", &mut buf);
        return print(&String::from_utf8_lossy(&buf));
    }
    let kube = Kube::connect(
        cli.global.kubeconfig.as_deref(),
        cli.global.context.as_deref(),
    )?;
    let ns = namespace(cli, &kube);
    match cmd {
        Command::Get {
            kind,
            name,
            all_namespaces,
            no_headers,
        } => get(
            cli,
            &kube,
            &ns,
            kind,
            name.as_deref(),
            *all_namespaces,
            *no_headers,
        ),
        Command::Approve {
            freight,
            stage,
            dry_run,
        } => approve(cli, &kube, &ns, freight, stage, *dry_run),
        Command::Abort { promotion, dry_run } => abort(cli, &kube, &ns, promotion, *dry_run),
        Command::History { target } => history(cli, &kube, &ns, target),
        Command::Freight(FreightCommand::Create {
            warehouse,
            images,
            commits,
            charts,
            alias,
            dry_run,
        }) => freight_create(
            cli,
            &kube,
            &ns,
            warehouse,
            images,
            commits,
            charts,
            alias.as_deref(),
            *dry_run,
        ),
        Command::Resume { .. } | Command::Completion { .. } => Ok(()),
    }
}

fn get(
    cli: &Cli,
    kube: &Kube,
    ns: &str,
    kind: &str,
    name: Option<&str>,
    all: bool,
    no_headers: bool,
) -> Result<(), Error> {
    let (kind, name) = match (kind.split_once('/'), name) {
        (Some((k, n)), None) => (k, Some(n)),
        _ => (kind, name),
    };
    let Some((plural, _, kind_name)) = KINDS
        .iter()
        .find(|(_, names, _)| names.contains(&kind.to_lowercase().as_str()))
    else {
        return Err(Error::Usage(format!(
            "unknown kind {kind:?}: kubectl promote get stages|freight|promotions|warehouses"
        )));
    };
    let items = match name {
        Some(n) => match kube
            .get(&kargo_path(plural, ns, n))
            .map_err(crate::kube::context(format!("reading {kind_name} {n}")))?
        {
            Some(v) => vec![v],
            None => {
                return Err(Error::Cluster(format!(
                    "{kind_name} \"{n}\" not found in project \"{ns}\""
                )));
            }
        },
        None => list_raw(kube, plural, (!all).then_some(ns), None)?,
    };
    match cli.global.output {
        Format::Table | Format::Wide => {
            if items.is_empty() {
                eprintln!(
                    "No {plural} found{}.",
                    if all {
                        String::new()
                    } else {
                        format!(" in project \"{ns}\"")
                    }
                );
                return Ok(());
            }
            let (mut headers, wide, rows) = rows(plural, &items, all);
            let keep = if cli.global.output == Format::Wide {
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
        f => print_objects(&items, name.is_some(), f, kind_name),
    }
}

/// Find Freight by name, prefix or alias in `ns`.
fn resolve_freight(kube: &Kube, ns: &str, wanted: &str) -> Result<Freight, Error> {
    let all: Vec<Freight> = list_typed(kube, "freights", Some(ns))?;
    crate::local::resolve_freight(&all, ns, Some(wanted), None).cloned()
}

fn approve(
    cli: &Cli,
    kube: &Kube,
    ns: &str,
    freight: &str,
    stage: &str,
    dry_run: bool,
) -> Result<(), Error> {
    let stage = stage_name(stage).map_err(Error::Usage)?;
    if kube
        .get(&kargo_path("stages", ns, stage))
        .map_err(crate::kube::context(format!("reading Stage {stage}")))?
        .is_none()
    {
        return Err(Error::StageNotFound {
            stage: stage.to_owned(),
            project: ns.to_owned(),
            available: vec![],
        });
    }
    let f = resolve_freight(kube, ns, freight)?;
    let patch = json!({"status": {"approvedFor": {stage: {"approvedAt": crate::kube::now()}}}});
    if dry_run {
        return print_patch(
            cli,
            &patch,
            &format!(
                "freight.kargo.akuity.io/{} approved for {stage} (dry run)",
                f.name()
            ),
        );
    }
    kube.merge_patch(
        &format!("{}/status", kargo_path("freights", ns, f.name())),
        &patch,
    )
    .map_err(crate::kube::context(format!(
        "approving Freight {} for Stage {stage}",
        f.name()
    )))?;
    print_done(
        cli,
        &format!("freight.kargo.akuity.io/{}", f.name()),
        &format!("approved for Stage {stage}"),
    )
}

fn print_patch(cli: &Cli, patch: &Value, line: &str) -> Result<(), Error> {
    match cli.global.output {
        Format::Json => print(
            &(serde_json::to_string_pretty(patch).map_err(|e| Error::Output(e.to_string()))?
                + "\n"),
        ),
        Format::Yaml => {
            print(&serde_yaml::to_string(patch).map_err(|e| Error::Output(e.to_string()))?)
        }
        _ => print(&format!("{line}\n")),
    }
}

fn print_done(cli: &Cli, name: &str, what: &str) -> Result<(), Error> {
    match cli.global.output {
        Format::Name => print(&format!("{name}\n")),
        _ => print(&format!("{name} {what}\n")),
    }
}

fn abort(cli: &Cli, kube: &Kube, ns: &str, name: &str, dry_run: bool) -> Result<(), Error> {
    let path = kargo_path("promotions", ns, name);
    let shown = format!("promotion.kargo.akuity.io/{name}");
    let read = |v: Value| -> Result<Promotion, Error> {
        serde_json::from_value(v).map_err(|e| Error::Cluster(format!("cannot read Promotion: {e}")))
    };
    let Some(v) = kube
        .get(&path)
        .map_err(crate::kube::context(format!("reading Promotion {name}")))?
    else {
        return Err(Error::PromotionState {
            promotion: name.to_owned(),
            problem: format!("not found in project \"{ns}\""),
            hint: "list them with kubectl promote get promotions".into(),
        });
    };
    let p = read(v)?;
    if p.phase().is_terminal() {
        return print_done(
            cli,
            &shown,
            &format!("is already {}; nothing to abort", p.phase()),
        );
    }
    let patch = json!({"metadata": {"annotations": {ABORT: "terminate"}}});
    if dry_run {
        return print_patch(cli, &patch, &format!("{shown} would be aborted (dry run)"));
    }
    let actor = kube
        .whoami()
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    // The patch answers with the Promotion as it is now: the first look of the wait below.
    let mut v = Some(
        kube.merge_patch(&path, &patch)
            .map_err(crate::kube::context(format!(
                "requesting abort of Promotion {name}"
            )))?,
    );
    // A live runner notices at its next lease renewal and records the abort itself; wait for it
    // a little, then close the Promotion ourselves when nobody runs it.
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let Some(now) = v.take() else {
            return print_done(cli, &shown, "was deleted");
        };
        // A live runner (its lease still valid) stops itself at its next renewal.
        let running = crate::kube::lease_expiry(&now).is_some_and(|t| t > jiff::Timestamp::now());
        let p = read(now)?;
        if p.phase().is_terminal() {
            let message = p
                .status
                .as_ref()
                .map(|s| s.message.as_str())
                .unwrap_or_default();
            return print_done(cli, &shown, &format!("{} ({message})", p.phase()));
        }
        if !running || Instant::now() >= give_up {
            let msg = format!("Promotion terminated by {actor}");
            kube.merge_patch(
                &format!("{path}/status"),
                &json!({"status": {"phase": "Aborted", "message": msg, "finishedAt": crate::kube::now()}}),
            )
            .map_err(crate::kube::context(format!("aborting Promotion {name}")))?;
            let stage_path = kargo_path("stages", ns, &p.spec.stage);
            if let Some(st) = kube.get(&stage_path).ok().flatten()
                && s(&st, "/status/currentPromotion/name") == name
            {
                kube.merge_patch(
                    &format!("{stage_path}/status"),
                    &json!({"status": {"currentPromotion": null, "lastPromotion": {"name": name, "freight": {"name": p.spec.freight}, "status": {"phase": "Aborted", "message": msg}, "finishedAt": crate::kube::now()}}}),
                )
                .map_err(crate::kube::context(format!("freeing Stage {}", p.spec.stage)))?;
            }
            return print_done(cli, &shown, "aborted");
        }
        std::thread::sleep(Duration::from_millis(500));
        v = kube
            .poll(&path)
            .map_err(crate::kube::context(format!("reading Promotion {name}")))?;
    }
}

fn history(cli: &Cli, kube: &Kube, ns: &str, target: &str) -> Result<(), Error> {
    let stage_name = stage_name(target).map_err(Error::Usage)?;
    let Some(v) = kube
        .get(&kargo_path("stages", ns, stage_name))
        .map_err(crate::kube::context(format!("reading Stage {stage_name}")))?
    else {
        return Err(Error::StageNotFound {
            stage: stage_name.to_owned(),
            project: ns.to_owned(),
            available: vec![],
        });
    };
    let stage: Stage =
        serde_json::from_value(v).map_err(|e| Error::Cluster(format!("cannot read Stage: {e}")))?;
    let label = promote_api::naming::stage_label(stage_name);
    let mut promos = list_raw(
        kube,
        "promotions",
        Some(ns),
        Some(&format!("{}={label}", promote_api::keys::STAGE)),
    )?;
    promos.retain(|p| s(p, "/spec/stage") == stage_name);
    // Newest first: Promotion names embed a ULID, so the name order is the creation order.
    promos.sort_by(|a, b| {
        let key = |p: &Value| promote_api::naming::ulid_of(s(p, "/metadata/name"));
        key(b).cmp(&key(a))
    });
    let history = stage.status.map(|s| s.freight_history).unwrap_or_default();
    match cli.global.output {
        Format::Json | Format::Yaml => {
            let doc = json!({"stage": stage_name, "freightHistory": history, "promotions": promos});
            print_patch(cli, &doc, "")
        }
        _ => {
            let current: Vec<String> = history
                .first()
                .map(|c| c.freight.values().map(|f| f.name.clone()).collect())
                .unwrap_or_default();
            // `*` marks the newest successful Promotion of the Freight the Stage has now.
            let mut marked = false;
            let rows: Vec<Vec<String>> = promos
                .iter()
                .map(|p| {
                    let f = s(p, "/spec/freight");
                    let current_here = !marked
                        && current.iter().any(|c| c == f)
                        && s(p, "/status/phase") == "Succeeded";
                    marked |= current_here;
                    vec![
                        if current_here {
                            "*".to_owned()
                        } else {
                            String::new()
                        },
                        s(p, "/metadata/name").to_owned(),
                        promote_api::naming::short_name(f).to_owned(),
                        match s(p, "/status/phase") {
                            "" => "Pending".to_owned(),
                            x => x.to_owned(),
                        },
                        s(p, "/metadata/annotations/kargo.akuity.io~1create-actor")
                            .trim_start_matches("kubernetes:")
                            .to_owned(),
                        s(p, "/status/finishedAt").to_owned(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("Stage {stage_name} has no Promotions yet.");
                return Ok(());
            }
            print(&render(
                &[
                    "CURRENT",
                    "PROMOTION",
                    "FREIGHT",
                    "PHASE",
                    "ACTOR",
                    "FINISHED",
                ],
                &rows,
                false,
            ))
        }
    }
}

fn parse_image(s: &str) -> Result<Image, Error> {
    let bad = || {
        Error::Usage(format!(
            "--image {s:?}: expected REPO:TAG or REPO@sha256:DIGEST"
        ))
    };
    if let Some((repo, digest)) = s.split_once('@') {
        if repo.is_empty() || !digest.contains(':') {
            return Err(bad());
        }
        return Ok(Image {
            repo_url: repo.into(),
            digest: digest.into(),
            ..Default::default()
        });
    }
    let slash = s.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match s[slash..].rfind(':') {
        Some(i) => (&s[..slash + i], &s[slash + i + 1..]),
        None => return Err(bad()),
    };
    if repo.is_empty() || tag.is_empty() {
        return Err(bad());
    }
    Ok(Image {
        repo_url: repo.into(),
        tag: tag.into(),
        ..Default::default()
    })
}

fn parse_commit(s: &str) -> Result<GitCommit, Error> {
    match s.rsplit_once('@') {
        Some((repo, sha))
            if !repo.is_empty() && sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(GitCommit {
                repo_url: repo.into(),
                id: sha.to_lowercase(),
                ..Default::default()
            })
        }
        _ => Err(Error::Usage(format!(
            "--commit {s:?}: expected REPO_URL@COMMIT_SHA"
        ))),
    }
}

fn parse_chart(s: &str) -> Result<Chart, Error> {
    let bad = || {
        Error::Usage(format!(
            "--chart {s:?}: expected REPO/NAME:VERSION (or oci://REGISTRY/PATH/NAME:VERSION)"
        ))
    };
    let slash = s.rfind('/').ok_or_else(bad)?;
    let colon = s[slash..].rfind(':').map(|i| slash + i).ok_or_else(bad)?;
    let (path, version) = (&s[..colon], &s[colon + 1..]);
    if version.is_empty() {
        return Err(bad());
    }
    if path.starts_with("oci://") {
        return Ok(Chart {
            repo_url: path.into(),
            name: String::new(),
            version: version.into(),
        });
    }
    let (repo, name) = path.rsplit_once('/').ok_or_else(bad)?;
    if repo.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok(Chart {
        repo_url: repo.into(),
        name: name.into(),
        version: version.into(),
    })
}

#[allow(clippy::too_many_arguments)]
fn freight_create(
    cli: &Cli,
    kube: &Kube,
    ns: &str,
    warehouse: &str,
    images: &[String],
    commits: &[String],
    charts: &[String],
    alias: Option<&str>,
    dry_run: bool,
) -> Result<(), Error> {
    if images.is_empty() && commits.is_empty() && charts.is_empty() {
        return Err(Error::Usage(
            "Freight needs at least one --image, --commit or --chart".into(),
        ));
    }
    let mut f = Freight::new(ns, FreightOrigin::warehouse(warehouse));
    f.images = images
        .iter()
        .map(|i| parse_image(i))
        .collect::<Result<_, _>>()?;
    f.commits = commits
        .iter()
        .map(|c| parse_commit(c))
        .collect::<Result<_, _>>()?;
    f.charts = charts
        .iter()
        .map(|c| parse_chart(c))
        .collect::<Result<_, _>>()?;
    let name = promote_api::freight_id::freight_id(&f);
    f.metadata.name = Some(name.clone());
    // Every Freight gets a human alias (Kargo's style); a generated one must be free in the project.
    let alias = match alias {
        Some(a) => a.to_owned(),
        None => {
            let taken: Vec<Freight> = list_typed(kube, "freights", Some(ns))?;
            (0..64)
                .map(|i| promote_api::naming::freight_alias(&name, i))
                .find(|a| !taken.iter().any(|f| f.alias() == Some(a.as_str())))
                .unwrap_or_else(|| promote_api::naming::freight_alias(&name, 64))
        }
    };
    f.alias = alias.clone();
    f.metadata.labels = Some([(ALIAS.to_owned(), alias)].into_iter().collect());
    let obj = serde_json::to_value(&f).map_err(|e| Error::Output(e.to_string()))?;
    if dry_run {
        return match cli.global.output {
            Format::Json | Format::Yaml => {
                print_objects(&[obj], true, cli.global.output, "Freight")
            }
            _ => print(&format!(
                "freight.kargo.akuity.io/{name} created (dry run)\n"
            )),
        };
    }
    let created = kube
        .create(&kargo_path("freights", ns, ""), &obj)
        .map_err(crate::kube::context(format!("creating Freight {name}")))?;
    match cli.global.output {
        Format::Json | Format::Yaml => {
            print_objects(&[created], true, cli.global.output, "Freight")
        }
        _ => print_done(cli, &format!("freight.kargo.akuity.io/{name}"), "created"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_flags_parse() {
        let i = parse_image("registry.local:5000/team/app:1.2.3").unwrap();
        assert_eq!(
            (i.repo_url.as_str(), i.tag.as_str()),
            ("registry.local:5000/team/app", "1.2.3")
        );
        let d = parse_image("nginx@sha256:abcd").unwrap();
        assert_eq!(
            (d.repo_url.as_str(), d.digest.as_str()),
            ("nginx", "sha256:abcd")
        );
        assert!(parse_image("registry.local:5000/team/app").is_err());
        let c = parse_commit("git@github.com:o/r.git@ABCDEF1234").unwrap();
        assert_eq!(
            (c.repo_url.as_str(), c.id.as_str()),
            ("git@github.com:o/r.git", "abcdef1234")
        );
        assert!(parse_commit("https://x/r.git@main").is_err());
        let h = parse_chart("https://charts.example.com/podinfo:6.5.0").unwrap();
        assert_eq!(
            (h.repo_url.as_str(), h.name.as_str(), h.version.as_str()),
            ("https://charts.example.com", "podinfo", "6.5.0")
        );
        let o = parse_chart("oci://ghcr.io/stefanprodan/charts/podinfo:6.5.0").unwrap();
        assert_eq!(
            (o.repo_url.as_str(), o.name.as_str()),
            ("oci://ghcr.io/stefanprodan/charts/podinfo", "")
        );
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

    #[test]
    fn tables_align_like_kubectl() {
        let t = render(
            &["NAME", "AGE"],
            &[
                vec!["dev".into(), "5m".into()],
                vec!["production".into(), "1d".into()],
            ],
            false,
        );
        assert_eq!(t, "NAME         AGE\ndev          5m\nproduction   1d\n");
        assert_eq!(render(&["NAME"], &[vec!["x".into()]], true), "x\n");
    }
}
