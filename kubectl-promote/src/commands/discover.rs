//! `kubectl promote discover warehouse/<name>`: one pass of Kargo's Warehouse controller, on
//! demand. Discovery itself is `crate::discovery`; this file reads the Warehouse and the
//! project's credential Secrets, creates the Freight (or writes it into `--local DIR`) and
//! records the result in the Warehouse's status.

use std::path::Path;

use promote_api::types::{Freight, Warehouse};
use serde_json::{Value, json};

use super::freight::{free_alias, set_alias};
use super::{Ctx, list_typed, print, print_objects, render};
use crate::cli::{DiscoverArgs, Global, default_cache_dir};
use crate::credentials::ProjectCredential;
use crate::discovery::{self, Created, Credentials, Env};
use crate::error::{Error, context};
use crate::git::MirrorOptions;
use crate::kube::{Api, kargo_path};
use crate::output::{Format, Summary};

/// What one Warehouse's discovery produced, for the report.
struct Report {
    warehouse: String,
    freight: Option<Freight>,
    result: String,
}

fn warehouse_name(target: &str) -> Result<&str, Error> {
    let name = target
        .strip_prefix("warehouse/")
        .or_else(|| target.strip_prefix("warehouses/"))
        .unwrap_or(target);
    if name.is_empty() || name.contains('/') {
        return Err(Error::Usage(format!(
            "{target:?} is not a Warehouse: expected warehouse/<name>"
        )));
    }
    Ok(name)
}

fn env(args: &DiscoverArgs, creds: Credentials) -> Env {
    Env {
        mirror_opts: MirrorOptions {
            cache_root: args.cache_dir.clone().unwrap_or_else(default_cache_dir),
            ..Default::default()
        },
        creds,
    }
}

/// What Kargo's `freightCreationCriteria` expression sees: `commitFrom`, `imageFrom` and
/// `chartFrom` over the newest discovered artifacts (Kargo's `DiscoveredArtifactsOperations`),
/// with the fields of Kargo's Go types.
struct Discovered<'a>(&'a promote_api::types::DiscoveredArtifacts);

impl crate::expr::Functions for Discovered<'_> {
    fn commit_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
        let repo = promote_api::urls::normalize_git(repo);
        Ok(self
            .0
            .git
            .iter()
            .filter(|g| promote_api::urls::normalize_git(&g.repo_url) == repo)
            .find_map(|g| g.commits.first())
            .map_or(Value::Null, |c| {
                serde_json::json!({ "ID": c.id, "Branch": c.branch, "Tag": c.tag, "Subject": c.subject, "Author": c.author, "Committer": c.committer, "CreatorDate": c.creator_date })
            }))
    }
    fn image_from(&self, repo: &str, _: Option<&Value>) -> Result<Value, String> {
        Ok(self
            .0
            .images
            .iter()
            .filter(|i| i.repo_url == repo)
            .find_map(|i| i.references.first())
            .map_or(Value::Null, |r| {
                serde_json::json!({ "Tag": r.tag, "Digest": r.digest, "Annotations": r.annotations, "CreatedAt": r.created_at })
            }))
    }
    fn chart_from(
        &self,
        repo: &str,
        name: Option<&str>,
        _: Option<&Value>,
    ) -> Result<Value, String> {
        let repo = promote_api::urls::normalize_chart(repo);
        Ok(self
            .0
            .charts
            .iter()
            .filter(|c| {
                promote_api::urls::normalize_chart(&c.repo_url) == repo
                    && name.is_none_or(|n| n.is_empty() || n == c.name)
            })
            .find_map(|c| c.versions.first().map(|v| (c, v)))
            .map_or(
                Value::Null,
                |(c, v)| serde_json::json!({ "RepoURL": repo, "Name": c.name, "Version": v }),
            ))
    }
}

/// Kargo's `freightCreationCriteria`: satisfied with no expression or nothing discovered, else
/// the expression's result read as a boolean (Go's `ParseBool` for a non-boolean); `Err` when it
/// cannot be evaluated.
fn criteria(
    w: &Warehouse,
    found: &promote_api::types::DiscoveredArtifacts,
) -> Result<bool, String> {
    let Some(expression) = w
        .spec
        .freight_creation_criteria
        .as_ref()
        .map(|c| c.expression.trim())
        .filter(|e| !e.is_empty())
    else {
        return Ok(true);
    };
    if found.git.is_empty() && found.images.is_empty() && found.charts.is_empty() {
        return Ok(true);
    }
    let value = crate::expr::eval_expr(expression, &serde_json::Map::new(), &Discovered(found))
        .map_err(|e| e.message)?;
    match value {
        Value::Bool(b) => Ok(b),
        other => {
            let text = match &other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            match text.as_str() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
                _ => Err(format!(
                    "failed to parse freight creation criteria expression result {text:?} as bool"
                )),
            }
        }
    }
}

fn manual(w: &Warehouse) -> bool {
    w.spec.freight_creation_policy.as_deref() == Some("Manual")
}

fn print_reports(global: &Global, reports: &[Report]) -> Result<(), Error> {
    match global.output {
        f if f.is_data() || f == Format::Name => {
            let items: Vec<Value> = reports
                .iter()
                .filter_map(|r| r.freight.as_ref())
                .filter_map(|f| serde_json::to_value(f).ok())
                .collect();
            print_objects(&items, items.len() == 1, global.output, "Freight")
        }
        _ => {
            let rows: Vec<Vec<String>> = reports
                .iter()
                .map(|r| {
                    let f = r.freight.as_ref();
                    vec![
                        r.warehouse.clone(),
                        f.map(|f| f.name().to_owned())
                            .unwrap_or_else(|| "<none>".into()),
                        f.and_then(|f| f.alias().map(str::to_owned))
                            .unwrap_or_else(|| "<none>".into()),
                        f.map(artifacts).unwrap_or_default(),
                        r.result.clone(),
                    ]
                })
                .collect();
            print(&render(
                &["WAREHOUSE", "FREIGHT", "ALIAS", "ARTIFACTS", "RESULT"],
                &rows,
                false,
            ))
        }
    }
}

/// `repo:tag`, `repo@sha[:7]`, `chart:version`, comma-separated.
fn artifacts(f: &Freight) -> String {
    let images = f.images.iter().map(|i| format!("{}:{}", i.repo_url, i.tag));
    let commits = f.commits.iter().map(|c| {
        let id = c.id.get(..7).unwrap_or(&c.id);
        if c.tag.is_empty() {
            format!("{}@{id}", c.repo_url)
        } else {
            format!("{}@{}", c.repo_url, c.tag)
        }
    });
    let charts = f.charts.iter().map(|c| {
        if c.name.is_empty() {
            format!("{}:{}", c.repo_url, c.version)
        } else {
            format!("{}/{}:{}", c.repo_url, c.name, c.version)
        }
    });
    images
        .chain(commits)
        .chain(charts)
        .collect::<Vec<_>>()
        .join(",")
}

fn secrets(kube: &dyn Api, ns: &str, kind: &str, quiet: bool) -> Vec<ProjectCredential> {
    let selector = format!("{}={kind}", promote_api::keys::CRED_TYPE);
    match kube.list(&format!("/api/v1/namespaces/{ns}/secrets"), Some(&selector)) {
        Ok(items) => items
            .iter()
            .filter_map(ProjectCredential::from_secret)
            .collect(),
        Err(e) if e.code == 403 || e.code == 404 => Vec::new(),
        Err(e) => {
            if !quiet {
                eprintln!(
                    "warning: cannot read the project's {kind} credential Secrets ({e}); your own credentials apply"
                );
            }
            Vec::new()
        }
    }
}

/// Discover against the cluster; with `--auto-promote`, the promotions' summaries.
pub fn cluster(c: &Ctx<'_>, args: &DiscoverArgs, quiet: bool) -> Result<Vec<Summary>, Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let warehouses: Vec<Warehouse> = match &args.target {
        Some(t) => {
            let name = warehouse_name(t)?;
            let raw = kube
                .get(&kargo_path("warehouses", ns, name))
                .map_err(context(format!("reading Warehouse {name}")))?
                .ok_or_else(|| Error::NotFound {
                    kind: "Warehouse",
                    name: name.to_owned(),
                    project: ns.to_owned(),
                })?;
            vec![crate::error::decode(raw, "Warehouse")?]
        }
        None => list_typed(kube, "warehouses", Some(ns))?,
    };
    let machine = c.global.output != Format::Table;
    let mut creds = Credentials {
        git: std::sync::Arc::new(secrets(kube, ns, "git", machine || quiet)),
        image: secrets(kube, ns, "image", machine || quiet),
        helm: secrets(kube, ns, "helm", machine || quiet),
        ..Default::default()
    };
    creds.load_user();
    let env = env(args, creds);
    let mut reports = Vec::new();
    let mut first_error = None;
    let now = jiff::Timestamp::now();
    for w in &warehouses {
        let name = w.metadata.name.clone().unwrap_or_default();
        // A Warehouse named on the command line is discovered at once; `--all` (the CronJob's
        // pass) keeps each Warehouse's interval, as Kargo's controller does.
        if args.target.is_none()
            && let Err(why) = due(w, now)
        {
            reports.push(Report {
                warehouse: name,
                freight: None,
                result: why,
            });
            continue;
        }
        match discover_one(kube, ns, w, &env, args) {
            Ok(r) => reports.push(r),
            Err(e) => {
                reports.push(Report {
                    warehouse: name,
                    freight: None,
                    result: "failed".into(),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    print_reports(c.global, &reports)?;
    if let Some(e) = first_error {
        return Err(e);
    }
    if !args.auto_promote {
        return Ok(Vec::new());
    }
    auto_promote(c, args, quiet)
}

/// Kargo's auto-promotion, run to a fixed point: each round looks at every Stage whose policy
/// enables it and promotes each origin's candidate that `auto_promotion::decide` lets through;
/// a promotion can make Freight available downstream (verified in its Stage), so rounds go on
/// until one promotes nothing. A failed promotion is not retried (its newest Promotion did not
/// succeed), so the rounds end.
fn auto_promote(c: &Ctx<'_>, args: &DiscoverArgs, quiet: bool) -> Result<Vec<Summary>, Error> {
    use promote_api::auto_promotion::{Decision, candidates, decide, enabled};
    use promote_api::types::{ProjectConfig, Promotion, Stage};
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let config: Option<ProjectConfig> = kube
        .get(&kargo_path("projectconfigs", ns, ns))
        .map_err(context(format!("reading ProjectConfig {ns}")))?
        .map(|v| crate::error::decode(v, "ProjectConfig"))
        .transpose()?;
    if config.is_none() {
        if !quiet {
            eprintln!(
                "auto-promotion: project {ns:?} has no ProjectConfig {ns:?}, so no Stage auto-promotes"
            );
        }
        return Ok(Vec::new());
    }
    crate::interrupt::install(kube);
    let identity =
        crate::promotion::Identity::ask(kube, super::promote::actor(args.actor.clone()))?;
    let source = crate::promotion::source::Cluster::new(kube, ns.to_owned(), quiet);
    let settings = super::promote::settings_for(
        quiet,
        args.cache_dir.clone().unwrap_or_else(default_cache_dir),
        false,
        args.timeout,
        false,
    );
    let mut out = Vec::new();
    let mut stages: Vec<Stage> = list_typed(kube, "stages", Some(ns))?;
    stages.sort_by(|a, b| a.name().cmp(b.name()));
    for _round in 0..=stages.len() {
        let stages: Vec<Stage> = list_typed(kube, "stages", Some(ns))?;
        let freight: Vec<Freight> = list_typed(kube, "freights", Some(ns))?;
        let promotions: Vec<Promotion> = list_typed(kube, "promotions", Some(ns))?;
        let now = jiff::Timestamp::now();
        let mut promoted = false;
        for stage in &stages {
            let on = enabled(config.as_ref(), stage)
                .map_err(|e| Error::Usage(format!("ProjectConfig {ns:?}: {e}")))?;
            if !on {
                continue;
            }
            for (origin, candidate) in candidates(stage, &freight, now) {
                match decide(stage, &origin, candidate, &promotions) {
                    Decision::Skip(why) => {
                        if !quiet {
                            eprintln!(
                                "auto-promotion: Stage {}, Freight {}: skipped: {why}",
                                stage.name(),
                                candidate.name()
                            );
                        }
                    }
                    Decision::Promote => {
                        if !quiet {
                            eprintln!(
                                "auto-promotion: promoting Freight {} ({origin}) to Stage {}",
                                candidate.name(),
                                stage.name()
                            );
                        }
                        let start = crate::promotion::Start::New {
                            stage: stage.name(),
                            freight: Some(candidate.name()),
                            alias: None,
                        };
                        match super::promote::through_cluster(&source, &identity, &settings, start)
                        {
                            Ok(s) => out.push(s),
                            // Busy or no longer available: the next run looks again.
                            Err(e @ (Error::StageBusy { .. } | Error::Unavailable { .. })) => {
                                eprintln!("auto-promotion: Stage {}: {e}", stage.name());
                            }
                            Err(e) => return Err(e),
                        }
                        promoted = true;
                    }
                }
            }
        }
        if !promoted {
            break;
        }
    }
    Ok(out)
}

/// `--alias`, when no other Freight has it; else a generated one.
fn alias_for(name: &str, given: Option<&str>, taken: &[Freight]) -> Result<String, Error> {
    match given {
        None => Ok(free_alias(name, taken)),
        Some(a) => match taken.iter().find(|f| f.alias() == Some(a)) {
            Some(other) => Err(Error::Usage(format!(
                "--alias {a:?} is taken by Freight {}; choose another",
                promote_api::naming::short_name(other.name())
            ))),
            None => Ok(a.to_owned()),
        },
    }
}

/// Kargo's refresh annotation, its value the token a discovery records as handled.
const REFRESH: &str = "kargo.akuity.io/refresh";

/// A discovery due within this long counts as due: a CronJob on the interval's own schedule
/// (the default, every 5 minutes) starts a little early or late, and would otherwise skip every
/// other run.
const SLACK: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `discover --all` discovers this Warehouse now: Kargo's `shouldDiscoverArtifacts`
/// (never discovered, changed since (`generation`), a refresh token not handled yet, or
/// `spec.interval`, default 5m0s, elapsed since `discoveredAt`), with [`SLACK`]. `Err` says
/// when it is due.
fn due(w: &Warehouse, now: jiff::Timestamp) -> Result<(), String> {
    let status = w.status.as_ref();
    let Some(at) = status
        .and_then(|s| s.discovered_artifacts.as_ref())
        .map(|d| d.discovered_at.as_str())
        .filter(|a| !a.is_empty())
        .and_then(|a| a.parse::<jiff::Timestamp>().ok())
    else {
        return Ok(());
    };
    let observed = status.map_or(0, |s| s.observed_generation);
    if w.metadata.generation.unwrap_or(0) > observed {
        return Ok(());
    }
    let handled = status.map_or("", |s| s.last_handled_refresh.as_str());
    if w.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REFRESH))
        .is_some_and(|token| token != handled)
    {
        return Ok(());
    }
    let interval = w.spec.interval.as_deref().unwrap_or("5m0s");
    let every =
        promote_api::duration::parse(interval).unwrap_or(std::time::Duration::from_secs(300));
    let next = jiff::SignedDuration::try_from(every)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(at);
    let slack = jiff::SignedDuration::try_from(SLACK).unwrap_or_default();
    if next.checked_sub(slack).is_ok_and(|t| t <= now) {
        return Ok(());
    }
    Err(format!(
        "not due (interval {interval}; next at {}; annotate {REFRESH} to discover now)",
        crate::kube::timestamp(next)
    ))
}

fn write_status(kube: &dyn Api, ns: &str, w: &Warehouse, mut status: Value) {
    let name = w.metadata.name.as_deref().unwrap_or_default();
    // Kargo records the refresh token as handled by this reconciliation.
    if let Some(token) = w.metadata.annotations.as_ref().and_then(|a| a.get(REFRESH)) {
        status["lastHandledRefresh"] = json!(token);
    }
    let path = format!("{}/status", kargo_path("warehouses", ns, name));
    if let Err(e) = kube.merge_patch(&path, &json!({ "status": status })) {
        eprintln!(
            "warning: could not record the discovery in Warehouse {name}'s status: {e}{}",
            if e.code == 403 {
                " (bind the promote-discoverer role to record it)"
            } else {
                ""
            }
        );
    }
}

fn discover_one(
    kube: &dyn Api,
    ns: &str,
    w: &Warehouse,
    env: &Env,
    args: &DiscoverArgs,
) -> Result<Report, Error> {
    let dry_run = args.dry_run;
    let name = w.metadata.name.clone().unwrap_or_default();
    let now = crate::kube::now();
    let failed = |reason: String| Error::Discovery {
        warehouse: name.clone(),
        reason,
    };
    let found = match discovery::discover(w, env) {
        Ok(f) => f,
        Err(e) => {
            let reason = e.to_string();
            if !dry_run {
                write_status(kube, ns, w, discovery::status_failed(w, &reason, &now));
            }
            return Err(failed(reason));
        }
    };
    match criteria(w, &found) {
        Err(why) => {
            if !dry_run {
                write_status(
                    kube,
                    ns,
                    w,
                    discovery::status_criteria_failed(w, &why, &now),
                );
            }
            return Err(failed(format!(
                "evaluating freightCreationCriteria.expression: {why}"
            )));
        }
        Ok(false) => {
            if !dry_run {
                let status =
                    discovery::status_after(w, &found, &Ok(Created::CriteriaNotSatisfied), &now);
                write_status(kube, ns, w, status);
            }
            return Ok(Report {
                warehouse: name,
                freight: None,
                result: "discovered (freightCreationCriteria not satisfied: no Freight)".into(),
            });
        }
        Ok(true) => {}
    }
    if manual(w) {
        if !dry_run {
            let status = discovery::status_after(w, &found, &Ok(Created::Manual), &now);
            write_status(kube, ns, w, status);
        }
        return Ok(Report {
            warehouse: name,
            freight: None,
            result: "discovered (freightCreationPolicy: Manual)".into(),
        });
    }
    let mut freight = match discovery::freight_from(ns, &name, &found) {
        Ok(f) => f,
        Err(why) => {
            if !dry_run {
                write_status(
                    kube,
                    ns,
                    w,
                    discovery::status_after(w, &found, &Err(why.clone()), &now),
                );
            }
            return Err(failed(why));
        }
    };
    let fname = freight.name().to_owned();
    let existing = kube
        .get(&kargo_path("freights", ns, &fname))
        .map_err(context(format!("reading Freight {fname}")))?;
    if let Some(existing) = existing {
        let existing: Freight = crate::error::decode(existing, "Freight")?;
        if !dry_run {
            let status = discovery::status_after(w, &found, &Ok(Created::Existing(fname)), &now);
            write_status(kube, ns, w, status);
        }
        return Ok(Report {
            warehouse: name,
            freight: Some(existing),
            result: "exists".into(),
        });
    }
    let taken: Vec<Freight> = list_typed(kube, "freights", Some(ns))?;
    set_alias(
        &mut freight,
        alias_for(&fname, args.alias.as_deref(), &taken)?,
    );
    if dry_run {
        return Ok(Report {
            warehouse: name,
            freight: Some(freight),
            result: "would create (dry run)".into(),
        });
    }
    let body = serde_json::to_value(&freight).map_err(|e| Error::Output(e.to_string()))?;
    let outcome = match kube.create(&kargo_path("freights", ns, ""), &body) {
        Ok(_) => Created::New(fname.clone()),
        // Another discovery created it first: the same content, the same name.
        Err(e) if e.conflict() => Created::Existing(fname.clone()),
        Err(e) => {
            let why = format!("Error creating Freight {fname:?} in namespace {ns:?}: {e}");
            write_status(
                kube,
                ns,
                w,
                discovery::status_after(w, &found, &Err(why.clone()), &now),
            );
            return Err(failed(why));
        }
    };
    let result = match &outcome {
        Created::New(_) => "created",
        _ => "exists",
    };
    write_status(
        kube,
        ns,
        w,
        discovery::status_after(w, &found, &Ok(outcome), &now),
    );
    Ok(Report {
        warehouse: name,
        freight: Some(freight),
        result: result.into(),
    })
}

/// Write a new file whole or not at all, never over an existing one.
fn write_new(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist_noclobber(path).map(|_| ()).map_err(|e| e.error)
}

/// Discover from manifests on disk: Freight is written as `DIR/freight-<alias>.yaml`; the
/// Warehouse's status is not written back (the files are the user's, formatted by hand).
pub fn local(global: &Global, args: &DiscoverArgs) -> Result<(), Error> {
    let dir: &Path = args.local.as_deref().unwrap_or(Path::new("."));
    let m = crate::manifests::Manifests::load(dir, global.namespace.as_deref())?;
    let ns_ok = |w: &&Warehouse| {
        global
            .namespace
            .as_deref()
            .is_none_or(|n| w.metadata.namespace.as_deref().is_none_or(|wn| wn == n))
    };
    let warehouses: Vec<&Warehouse> = match &args.target {
        Some(t) => {
            let name = warehouse_name(t)?;
            let w = m
                .warehouses
                .iter()
                .filter(ns_ok)
                .find(|w| w.metadata.name.as_deref() == Some(name))
                .ok_or_else(|| Error::NotFound {
                    kind: "Warehouse",
                    name: name.to_owned(),
                    project: global
                        .namespace
                        .clone()
                        .unwrap_or_else(|| format!("(any, in {})", dir.display())),
                })?;
            vec![w]
        }
        None => m.warehouses.iter().filter(ns_ok).collect(),
    };
    let mut creds = Credentials::default();
    creds.load_user();
    let env = env(args, creds);
    let mut taken = m.freight.clone();
    let mut reports = Vec::new();
    let mut first_error = None;
    for w in warehouses {
        let name = w.metadata.name.clone().unwrap_or_default();
        let ns = w
            .metadata
            .namespace
            .clone()
            .or_else(|| global.namespace.clone())
            .unwrap_or_default();
        let step = || -> Result<Report, Error> {
            let failed = |reason: String| Error::Discovery {
                warehouse: name.clone(),
                reason,
            };
            let found = discovery::discover(w, &env).map_err(|e| failed(e.to_string()))?;
            match criteria(w, &found) {
                Err(why) => {
                    return Err(failed(format!(
                        "evaluating freightCreationCriteria.expression: {why}"
                    )));
                }
                Ok(false) => {
                    return Ok(Report {
                        warehouse: name.clone(),
                        freight: None,
                        result: "discovered (freightCreationCriteria not satisfied: no Freight)"
                            .into(),
                    });
                }
                Ok(true) => {}
            }
            if manual(w) {
                return Ok(Report {
                    warehouse: name.clone(),
                    freight: None,
                    result: "discovered (freightCreationPolicy: Manual)".into(),
                });
            }
            let mut f = discovery::freight_from(&ns, &name, &found).map_err(failed)?;
            if let Some(existing) = taken.iter().find(|t| t.name() == f.name()) {
                return Ok(Report {
                    warehouse: name.clone(),
                    freight: Some(existing.clone()),
                    result: "exists".into(),
                });
            }
            let alias = alias_for(f.name(), args.alias.as_deref(), &taken)?;
            set_alias(&mut f, alias.clone());
            if args.dry_run {
                return Ok(Report {
                    warehouse: name.clone(),
                    freight: Some(f),
                    result: "would create (dry run)".into(),
                });
            }
            let path = dir.join(format!("freight-{alias}.yaml"));
            let text = serde_yaml::to_string(&f).map_err(|e| Error::Output(e.to_string()))?;
            write_new(dir, &path, text.as_bytes()).map_err(|e| Error::Load {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            Ok(Report {
                warehouse: name.clone(),
                freight: Some(f),
                result: format!("created ({})", path.display()),
            })
        };
        match step() {
            Ok(r) => {
                if let Some(f) = &r.freight {
                    taken.push(f.clone());
                }
                reports.push(r);
            }
            Err(e) => {
                reports.push(Report {
                    warehouse: name.clone(),
                    freight: None,
                    result: "failed".into(),
                });
                first_error.get_or_insert(e);
            }
        }
    }
    print_reports(global, &reports)?;
    first_error.map_or(Ok(()), Err)
}
