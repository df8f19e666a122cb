//! Field-path validation of Stage, Freight, Promotion, PromotionTask and Warehouse. Every problem
//! is returned at once, each with the path a user can find in their manifest
//! (`spec.requestedFreight[1].origin.name`), like the API server's `field.ErrorList`.

use std::collections::{BTreeMap, BTreeSet};

use crate::duration;
use crate::freight_id::freight_id;
use crate::types::{
    ExpressionVariable, FREIGHT_ORIGIN_WAREHOUSE, Freight, FreightOrigin, Promotion, PromotionStep,
    PromotionTask, Stage, Subscription, Warehouse,
};
use crate::urls::{normalize_chart, normalize_git, normalize_image};

/// The kind of problem, named as Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// A required field is missing.
    Required,
    /// A value is malformed.
    Invalid,
    /// A value appears twice where it must be unique.
    Duplicate,
    /// A field may not be set (here, or in combination).
    Forbidden,
}

/// One problem at one field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path such as `spec.steps[2].as`.
    pub path: String,
    /// Kind of problem.
    pub kind: ErrorType,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::Forbidden => "Forbidden",
        };
        write!(f, "{}: {kind}: {}", self.path, self.message)
    }
}

/// All problems found in one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        match list.len() {
            0 => f.write_str("no problems"),
            1 => f.write_str(&list[0]),
            _ => write!(f, "[{}]", list.join(", ")),
        }
    }
}

impl FieldErrors {
    fn push(&mut self, path: impl Into<String>, kind: ErrorType, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            kind,
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), crate::Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::Invalid(self))
        }
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// DNS-1123 subdomain (object names): lowercase alphanumerics, `-` and `.`, at most 253.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// DNS-1123 label: a subdomain without dots, at most 63.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns1123_subdomain(s)
}

/// A valid label value: at most 63 of alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric (or empty).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric))
}

fn is_reserved_alias(alias: &str) -> bool {
    ["step-", "task-"].iter().any(|p| {
        alias
            .strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

fn validate_origin(errs: &mut FieldErrors, path: &str, origin: &FreightOrigin) {
    if origin.kind != FREIGHT_ORIGIN_WAREHOUSE {
        errs.push(
            format!("{path}.kind"),
            ErrorType::Invalid,
            format!(
                "{:?}: the only supported kind is \"Warehouse\"",
                origin.kind
            ),
        );
    }
    if origin.name.is_empty() {
        errs.push(
            format!("{path}.name"),
            ErrorType::Required,
            "name the Warehouse the Freight comes from",
        );
    }
}

fn validate_vars(errs: &mut FieldErrors, path: &str, vars: &[ExpressionVariable]) {
    let mut seen = BTreeSet::new();
    for (i, v) in vars.iter().enumerate() {
        let p = format!("{path}[{i}].name");
        let valid = v
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && v.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            errs.push(
                &p,
                ErrorType::Invalid,
                format!("{:?}: a variable name must match ^[a-zA-Z_]\\w*$", v.name),
            );
        } else if !seen.insert(&v.name) {
            errs.push(
                &p,
                ErrorType::Duplicate,
                format!("{:?}: variable defined twice", v.name),
            );
        }
    }
}

/// Checks shared by Stage templates, Promotions and PromotionTasks. `allow_tasks` is false for
/// Promotions (already inflated) and PromotionTasks (no nesting).
fn validate_steps(errs: &mut FieldErrors, path: &str, steps: &[PromotionStep], allow_tasks: bool) {
    let mut aliases = BTreeMap::new();
    for (i, s) in steps.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match (s.uses.is_empty(), s.task.is_some()) {
            (true, false) => errs.push(
                format!("{p}.uses"),
                ErrorType::Required,
                "set the step kind, e.g. uses: git-clone",
            ),
            (false, true) => errs.push(&p, ErrorType::Forbidden, "set exactly one of uses or task"),
            (true, true) if !allow_tasks => errs.push(
                format!("{p}.task"),
                ErrorType::Forbidden,
                "task steps are not allowed here; inflate them first",
            ),
            _ => {}
        }
        if !s.uses.is_empty() && s.task.is_none() {
            // The step's kind and its config's shape: a typo fails when the object is applied.
            if let Err(problems) = crate::step_config::validate_config(&s.uses, s.config.as_ref()) {
                for problem in problems {
                    match problem.strip_prefix("uses: ") {
                        Some(why) => errs.push(format!("{p}.uses"), ErrorType::Invalid, why),
                        None => {
                            let (field, why) =
                                problem.split_once(": ").unwrap_or(("config", &problem));
                            if why == "required" {
                                errs.push(
                                    format!("{p}.{field}"),
                                    ErrorType::Required,
                                    format!("{} needs it", s.uses),
                                );
                            } else {
                                errs.push(format!("{p}.{field}"), ErrorType::Invalid, why);
                            }
                        }
                    }
                }
            }
        }
        if s.task.is_some() {
            for (field, set) in [
                ("if", !s.if_.is_empty()),
                ("config", s.config.is_some()),
                ("continueOnError", s.continue_on_error),
                ("retry", s.retry.is_some()),
            ] {
                if set {
                    errs.push(
                        format!("{p}.{field}"),
                        ErrorType::Forbidden,
                        "not allowed on a step that references a task",
                    );
                }
            }
        }
        if let Some(t) = &s.task
            && t.name.is_empty()
        {
            errs.push(
                format!("{p}.task.name"),
                ErrorType::Required,
                "name the PromotionTask",
            );
        }
        if !s.alias.is_empty() {
            if is_reserved_alias(&s.alias) {
                errs.push(
                    format!("{p}.as"),
                    ErrorType::Invalid,
                    format!(
                        "{:?}: aliases of the form step-<n> and task-<n> are reserved",
                        s.alias
                    ),
                );
            } else if let Some(first) = aliases.insert(s.alias.clone(), i) {
                errs.push(
                    format!("{p}.as"),
                    ErrorType::Duplicate,
                    format!("{:?}: already used by {path}[{first}]", s.alias),
                );
            }
        }
        if let Some(c) = &s.config
            && !c.is_object()
        {
            errs.push(
                format!("{p}.config"),
                ErrorType::Invalid,
                "config must be an object",
            );
        }
        if let Some(t) = s.retry.as_ref().and_then(|r| r.timeout.as_deref())
            && let Err(e) = duration::parse(t)
        {
            errs.push(
                format!("{p}.retry.timeout"),
                ErrorType::Invalid,
                e.to_string(),
            );
        }
        validate_vars(errs, &format!("{p}.vars"), &s.vars);
    }
}

/// Validate a Stage.
pub fn validate_stage(stage: &Stage) -> Result<(), crate::Error> {
    let mut errs = FieldErrors::default();
    let spec = &stage.spec;
    let legacy = spec.subscriptions.is_some();
    if spec.requested_freight.is_empty() && !legacy {
        errs.push("spec.requestedFreight", ErrorType::Required, "list at least one origin, e.g. {origin: {kind: Warehouse, name: my-warehouse}, sources: {direct: true}}");
    }
    let mut origins = BTreeMap::new();
    for (i, r) in spec.requested_freight.iter().enumerate() {
        let p = format!("spec.requestedFreight[{i}]");
        validate_origin(&mut errs, &format!("{p}.origin"), &r.origin);
        if let Some(first) = origins.insert(r.origin.to_string(), i) {
            errs.push(
                format!("{p}.origin"),
                ErrorType::Duplicate,
                format!(
                    "origin \"{}\" is already requested by spec.requestedFreight[{first}]",
                    r.origin
                ),
            );
        }
        let s = &r.sources;
        if !matches!(s.availability_strategy.as_str(), "" | "All" | "OneOf") {
            errs.push(
                format!("{p}.sources.availabilityStrategy"),
                ErrorType::Invalid,
                format!("{:?}: must be All or OneOf", s.availability_strategy),
            );
        }
        if let Some(d) = &s.required_soak_time
            && let Err(e) = duration::parse(d)
        {
            errs.push(
                format!("{p}.sources.requiredSoakTime"),
                ErrorType::Invalid,
                e.to_string(),
            );
        }
        let mut seen = BTreeSet::new();
        for (j, up) in s.stages.iter().enumerate() {
            let sp = format!("{p}.sources.stages[{j}]");
            if !is_dns1123_subdomain(up) {
                errs.push(
                    &sp,
                    ErrorType::Invalid,
                    format!("{up:?}: not a valid Stage name"),
                );
            } else if up == stage.name() {
                errs.push(
                    &sp,
                    ErrorType::Invalid,
                    "a Stage cannot be its own upstream",
                );
            } else if !seen.insert(up) {
                errs.push(&sp, ErrorType::Duplicate, format!("{up:?}: listed twice"));
            }
        }
        if let Some(opts) = &s.auto_promotion_options {
            match opts.selection_policy.as_str() {
                "" | "NewestFreight" => {}
                "MatchUpstream" => {
                    if s.direct {
                        errs.push(
                            format!("{p}.sources.direct"),
                            ErrorType::Forbidden,
                            "MatchUpstream cannot be used with direct",
                        );
                    }
                    if s.stages.len() != 1 {
                        errs.push(
                            format!("{p}.sources.stages"),
                            ErrorType::Invalid,
                            "MatchUpstream needs exactly one upstream Stage",
                        );
                    }
                }
                other => errs.push(
                    format!("{p}.sources.autoPromotionOptions.selectionPolicy"),
                    ErrorType::Invalid,
                    format!("{other:?}: must be NewestFreight or MatchUpstream"),
                ),
            }
        }
    }
    validate_vars(&mut errs, "spec.vars", &spec.vars);
    if let Some(t) = &spec.promotion_template {
        validate_vars(&mut errs, "spec.promotionTemplate.spec.vars", &t.spec.vars);
        validate_steps(
            &mut errs,
            "spec.promotionTemplate.spec.steps",
            &t.spec.steps,
            true,
        );
    }
    errs.into_result()
}

/// Kargo's check of new Freight against its origin Warehouse (`validateFreightArtifacts`): every
/// commit, image and chart belongs to one of the Warehouse's subscriptions (Git URLs and chart
/// repositories compared normalized, image repositories exactly, as Kargo does), and every
/// subscription has exactly one artifact.
pub fn validate_freight_artifacts(
    f: &Freight,
    w: &crate::types::Warehouse,
) -> Result<(), crate::Error> {
    let mut errs = FieldErrors::default();
    let name = w.metadata.name.as_deref().unwrap_or_default();
    let chart_key = |repo: &str, chart: &str| {
        let base = crate::urls::normalize_chart(repo);
        if chart.is_empty() {
            base
        } else {
            format!("{}/{chart}", base.trim_end_matches('/'))
        }
    };
    // (freight path, key) → how many artifacts it has
    let mut subs: Vec<(&'static str, String, usize)> = Vec::new();
    for sub in &w.spec.subscriptions {
        let field = |kind: &str, k: &str| {
            sub.pointer(&format!("/{kind}/{k}"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        if sub.get("git").is_some() {
            subs.push((
                "commits",
                crate::urls::normalize_git(&field("git", "repoURL")),
                0,
            ));
        }
        if sub.get("image").is_some() {
            subs.push(("images", field("image", "repoURL"), 0));
        }
        if sub.get("chart").is_some() {
            subs.push((
                "charts",
                chart_key(&field("chart", "repoURL"), &field("chart", "name")),
                0,
            ));
        }
    }
    let mut mark = |path: &'static str, key: String, i: usize, what: &str| match subs
        .iter_mut()
        .find(|(p, k, _)| *p == path && *k == key)
    {
        Some(s) => s.2 += 1,
        None => errs.push(
            format!("{path}[{i}]"),
            ErrorType::Invalid,
            format!("no subscription found for {what} in Warehouse {name:?}"),
        ),
    };
    for (i, c) in f.commits.iter().enumerate() {
        mark(
            "commits",
            crate::urls::normalize_git(&c.repo_url),
            i,
            "Git repository",
        );
    }
    for (i, im) in f.images.iter().enumerate() {
        mark("images", im.repo_url.clone(), i, "image repository");
    }
    for (i, c) in f.charts.iter().enumerate() {
        mark("charts", chart_key(&c.repo_url, &c.name), i, "Helm chart");
    }
    for (path, key, n) in &subs {
        match n {
            0 => errs.push(
                *path,
                ErrorType::Invalid,
                format!("no artifact found for subscription {key:?} of Warehouse {name:?}"),
            ),
            1 => {}
            _ => errs.push(
                *path,
                ErrorType::Invalid,
                format!("multiple artifacts found for subscription {key:?} of Warehouse {name:?}"),
            ),
        }
    }
    errs.into_result()
}

/// Validate a Freight: origin, at least one artifact, complete artifacts, and (when named) that the
/// name is the content hash.
pub fn validate_freight(f: &Freight) -> Result<(), crate::Error> {
    let mut errs = FieldErrors::default();
    validate_origin(&mut errs, "origin", &f.origin);
    if f.commits.is_empty() && f.images.is_empty() && f.charts.is_empty() && f.artifacts.is_empty()
    {
        errs.push(
            "commits",
            ErrorType::Required,
            "Freight must contain at least one commit, image, chart or artifact",
        );
    }
    for (i, c) in f.commits.iter().enumerate() {
        if c.repo_url.is_empty() {
            errs.push(
                format!("commits[{i}].repoURL"),
                ErrorType::Required,
                "the Git repository URL",
            );
        }
        if c.id.is_empty() {
            errs.push(
                format!("commits[{i}].id"),
                ErrorType::Required,
                "the commit SHA",
            );
        }
    }
    for (i, im) in f.images.iter().enumerate() {
        if im.repo_url.is_empty() {
            errs.push(
                format!("images[{i}].repoURL"),
                ErrorType::Required,
                "the image repository",
            );
        }
        if im.tag.is_empty() && im.digest.is_empty() {
            errs.push(
                format!("images[{i}].tag"),
                ErrorType::Required,
                "a tag or a digest",
            );
        }
    }
    for (i, c) in f.charts.iter().enumerate() {
        if c.repo_url.is_empty() {
            errs.push(
                format!("charts[{i}].repoURL"),
                ErrorType::Required,
                "the chart repository URL",
            );
        }
        if c.version.is_empty() {
            errs.push(
                format!("charts[{i}].version"),
                ErrorType::Required,
                "the chart version",
            );
        }
    }
    if !is_label_value(&f.alias) {
        errs.push("alias", ErrorType::Invalid, format!("{:?}: an alias must be a valid label value (at most 63 alphanumerics, '-', '_' or '.')", f.alias));
    }
    if let Some(name) = f.metadata.name.as_deref() {
        let want = freight_id(f);
        if name != want {
            errs.push(
                "metadata.name",
                ErrorType::Invalid,
                format!(
                    "{name:?}: a Freight's name is the hash of its contents; expected \"{want}\""
                ),
            );
        }
    }
    errs.into_result()
}

/// Validate a Promotion.
pub fn validate_promotion(p: &Promotion) -> Result<(), crate::Error> {
    let mut errs = FieldErrors::default();
    if p.spec.stage.is_empty() {
        errs.push(
            "spec.stage",
            ErrorType::Required,
            "name the Stage to promote to",
        );
    } else if !is_dns1123_subdomain(&p.spec.stage) {
        errs.push(
            "spec.stage",
            ErrorType::Invalid,
            format!("{:?}: not a valid Stage name", p.spec.stage),
        );
    }
    match (p.spec.freight.is_empty(), p.spec.origin.is_some()) {
        (true, false) => errs.push(
            "spec.freight",
            ErrorType::Required,
            "exactly one of freight or origin must be set",
        ),
        (false, true) => errs.push(
            "spec.origin",
            ErrorType::Forbidden,
            "exactly one of freight or origin must be set",
        ),
        _ => {}
    }
    if let Some(o) = &p.spec.origin {
        validate_origin(&mut errs, "spec.origin", o);
    }
    if p.spec.steps.is_empty() {
        errs.push(
            "spec.steps",
            ErrorType::Required,
            "a Promotion needs at least one step (copied from its Stage's promotionTemplate)",
        );
    }
    validate_vars(&mut errs, "spec.vars", &p.spec.vars);
    validate_steps(&mut errs, "spec.steps", &p.spec.steps, false);
    errs.into_result()
}

/// Validate a PromotionTask.
pub fn validate_promotion_task(t: &PromotionTask) -> Result<(), crate::Error> {
    let mut errs = FieldErrors::default();
    if t.spec.steps.is_empty() {
        errs.push(
            "spec.steps",
            ErrorType::Required,
            "a PromotionTask needs at least one step",
        );
    }
    validate_vars(&mut errs, "spec.vars", &t.spec.vars);
    validate_steps(&mut errs, "spec.steps", &t.spec.steps, false);
    errs.into_result()
}

/// Validate a Warehouse: subscriptions well-formed, names unique DNS labels, no repository twice.
pub fn validate_warehouse(w: &Warehouse) -> Result<(), crate::Error> {
    let mut errs = FieldErrors::default();
    let spec = &w.spec;
    if spec.subscriptions.is_empty() {
        errs.push(
            "spec.subscriptions",
            ErrorType::Required,
            "subscribe to at least one Git repository, image or chart",
        );
    }
    if let Some(i) = &spec.interval
        && let Err(e) = duration::parse(i)
    {
        errs.push("spec.interval", ErrorType::Invalid, e.to_string());
    }
    if let Some(p) = &spec.freight_creation_policy
        && !matches!(p.as_str(), "Automatic" | "Manual")
    {
        errs.push(
            "spec.freightCreationPolicy",
            ErrorType::Invalid,
            format!("{p:?}: must be Automatic or Manual"),
        );
    }
    let mut names = BTreeMap::new();
    let mut repos = BTreeMap::new();
    for (i, raw) in spec.subscriptions.iter().enumerate() {
        let p = format!("spec.subscriptions[{i}]");
        let Some(obj) = raw.as_object() else {
            errs.push(&p, ErrorType::Invalid, "a subscription must be an object");
            continue;
        };
        let types: Vec<&str> = ["git", "image", "chart", "subscription"]
            .into_iter()
            .filter(|k| obj.contains_key(*k))
            .collect();
        if types.len() > 1 {
            errs.push(
                &p,
                ErrorType::Forbidden,
                format!(
                    "set exactly one of git, image, chart or subscription (found {})",
                    types.join(", ")
                ),
            );
        }
        if let Some(name) = obj.get("name").and_then(|n| n.as_str()) {
            if !is_dns1123_label(name) {
                errs.push(
                    format!("{p}.name"),
                    ErrorType::Invalid,
                    format!("{name:?}: must be a DNS-1123 label"),
                );
            } else if let Some(first) = names.insert(name.to_owned(), i) {
                errs.push(
                    format!("{p}.name"),
                    ErrorType::Duplicate,
                    format!("{name:?}: already used by spec.subscriptions[{first}]"),
                );
            }
        }
        let key = match Subscription::parse(raw) {
            Subscription::Git(g) => {
                Some(("git", normalize_git(&g.repo_url), g.repo_url.is_empty()))
            }
            Subscription::Image(im) => Some((
                "image",
                normalize_image(&im.repo_url),
                im.repo_url.is_empty(),
            )),
            Subscription::Chart(c) => {
                let key = if c.repo_url.starts_with("oci://") {
                    normalize_chart(&c.repo_url)
                } else {
                    format!("{}/{}", c.repo_url, c.name)
                };
                if !c.repo_url.starts_with("oci://") && c.name.is_empty() {
                    errs.push(
                        format!("{p}.chart.name"),
                        ErrorType::Required,
                        "HTTP chart repositories need the chart name",
                    );
                }
                Some(("chart", key, c.repo_url.is_empty()))
            }
            Subscription::Generic(g) => {
                if obj.get("name").is_none() && g.get("name").is_none() {
                    errs.push(
                        format!("{p}.name"),
                        ErrorType::Required,
                        "generic subscriptions need a name",
                    );
                }
                None
            }
            Subscription::Unknown(_) => None,
        };
        if let Some((kind, repo, missing)) = key {
            if missing {
                errs.push(
                    format!("{p}.{kind}.repoURL"),
                    ErrorType::Required,
                    format!("the {kind} repository URL"),
                );
            } else if let Some(first) = repos.insert((kind, repo.clone()), i) {
                errs.push(
                    format!("{p}.{kind}.repoURL"),
                    ErrorType::Duplicate,
                    format!("{repo:?}: already subscribed by spec.subscriptions[{first}]"),
                );
            }
        }
    }
    errs.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::*;
    use serde_json::json;

    fn errors(r: Result<(), crate::Error>) -> Vec<String> {
        match r {
            Ok(()) => vec![],
            Err(crate::Error::Invalid(e)) => e.0.iter().map(|e| e.path.clone()).collect(),
            Err(other) => panic!("unexpected error {other}"),
        }
    }

    /// A step with a config of the right shape for its kind.
    fn step(uses: &str, alias: &str) -> PromotionStep {
        let config = match uses {
            "git-clone" => {
                json!({ "repoURL": "https://git.example.com/r", "checkout": [{ "branch": "main", "path": "./src" }] })
            }
            "git-commit" => json!({ "path": "./src", "message": "m" }),
            "git-push" => json!({ "path": "./src" }),
            _ => json!({}),
        };
        PromotionStep {
            uses: uses.into(),
            alias: alias.into(),
            config: Some(config),
            ..Default::default()
        }
    }

    #[test]
    fn step_kinds_and_configs_are_checked() {
        let mut bad = step("git-push", "");
        bad.config = Some(json!({ "pth": "./src", "maxAttempts": "many" }));
        let mut unknown = step("git-pushh", "");
        unknown.config = None;
        let mut escaping = step("git-commit", "");
        escaping.config = Some(json!({ "path": "../up", "message": "${{ vars.m }}" }));
        let p = Promotion::new(
            "x",
            PromotionSpec {
                stage: "test".into(),
                freight: "abc".into(),
                steps: vec![bad, unknown, escaping],
                ..Default::default()
            },
        );
        let Err(crate::Error::Invalid(e)) = validate_promotion(&p) else {
            panic!("accepted");
        };
        let got: Vec<String> =
            e.0.iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect();
        assert_eq!(
            got,
            vec![
                "spec.steps[0].config.path: git-push needs it".to_owned(),
                format!(
                    "spec.steps[0].config.pth: unknown field (known: {})",
                    "path, targetBranch, generateTargetBranch, tag, force, maxAttempts, provider"
                ),
                "spec.steps[0].config.maxAttempts: must be an integer, got \"many\"".to_owned(),
                format!(
                    "spec.steps[1].uses: unknown step kind \"git-pushh\"; promote runs: {}",
                    crate::step_config::known()
                ),
                "spec.steps[2].config.path: invalid path \"../up\": \"..\" would escape the work tree".to_owned(),
            ]
        );
    }

    #[test]
    fn stage_reports_every_problem() {
        let mut s = Stage::new(
            "prod",
            StageSpec {
                requested_freight: vec![
                    FreightRequest {
                        origin: FreightOrigin::warehouse("w"),
                        sources: FreightSources {
                            stages: vec!["prod".into()],
                            required_soak_time: Some("1 day".into()),
                            ..Default::default()
                        },
                    },
                    FreightRequest {
                        origin: FreightOrigin::warehouse("w"),
                        sources: FreightSources {
                            availability_strategy: "Most".into(),
                            ..Default::default()
                        },
                    },
                    FreightRequest {
                        origin: FreightOrigin {
                            kind: "Git".into(),
                            name: String::new(),
                        },
                        sources: Default::default(),
                    },
                ],
                promotion_template: Some(PromotionTemplate {
                    spec: PromotionTemplateSpec {
                        steps: vec![
                            step("git-clone", "clone"),
                            step("git-commit", "clone"),
                            step("git-push", "step-3"),
                            PromotionStep {
                                task: Some(PromotionTaskReference {
                                    name: "t".into(),
                                    kind: String::new(),
                                }),
                                if_: "true".into(),
                                ..Default::default()
                            },
                            PromotionStep::default(),
                        ],
                        vars: vec![ExpressionVariable {
                            name: "1bad".into(),
                            value: String::new(),
                        }],
                    },
                }),
                ..Default::default()
            },
        );
        s.metadata.namespace = Some("demo".into());
        assert_eq!(
            errors(validate_stage(&s)),
            vec![
                "spec.requestedFreight[0].sources.requiredSoakTime",
                "spec.requestedFreight[0].sources.stages[0]",
                "spec.requestedFreight[1].origin",
                "spec.requestedFreight[1].sources.availabilityStrategy",
                "spec.requestedFreight[2].origin.kind",
                "spec.requestedFreight[2].origin.name",
                "spec.promotionTemplate.spec.vars[0].name",
                "spec.promotionTemplate.spec.steps[1].as",
                "spec.promotionTemplate.spec.steps[2].as",
                "spec.promotionTemplate.spec.steps[3].if",
                "spec.promotionTemplate.spec.steps[4].uses",
            ]
        );
        let Err(e) = validate_stage(&s) else { panic!() };
        assert!(e.to_string().contains("spec.promotionTemplate.spec.steps[1].as: Duplicate value: \"clone\": already used by spec.promotionTemplate.spec.steps[0]"), "{e}");
    }

    #[test]
    fn stage_ok_and_match_upstream() {
        let mut spec = StageSpec {
            requested_freight: vec![FreightRequest {
                origin: FreightOrigin::warehouse("w"),
                sources: FreightSources {
                    direct: true,
                    ..Default::default()
                },
            }],
            promotion_template: Some(PromotionTemplate {
                spec: PromotionTemplateSpec {
                    steps: vec![step("git-clone", "")],
                    vars: vec![],
                },
            }),
            ..Default::default()
        };
        assert!(validate_stage(&Stage::new("dev", spec.clone())).is_ok());
        spec.requested_freight[0].sources.auto_promotion_options = Some(AutoPromotionOptions {
            selection_policy: "MatchUpstream".into(),
        });
        assert_eq!(
            errors(validate_stage(&Stage::new("dev", spec))),
            vec![
                "spec.requestedFreight[0].sources.direct",
                "spec.requestedFreight[0].sources.stages"
            ]
        );
        assert_eq!(
            errors(validate_stage(&Stage::new("dev", StageSpec::default()))),
            vec!["spec.requestedFreight"]
        );
    }

    #[test]
    fn freight_name_must_be_content_hash() {
        let mut f = Freight::new("demo", FreightOrigin::warehouse("my-warehouse"));
        f.images.push(Image {
            repo_url: "nginx".into(),
            tag: "1.25.0".into(),
            ..Default::default()
        });
        f.metadata.name = Some("be79d3d863f2323dd406cff7a99de434892f8740".into());
        assert!(validate_freight(&f).is_ok());
        f.metadata.name = Some("made-up".into());
        let Err(e) = validate_freight(&f) else {
            panic!()
        };
        assert!(
            e.to_string()
                .contains("expected \"be79d3d863f2323dd406cff7a99de434892f8740\""),
            "{e}"
        );
        let mut empty = Freight::new("demo", FreightOrigin::default());
        empty.alias = "-bad".into();
        empty.commits.push(GitCommit::default());
        empty.images.push(Image {
            repo_url: "x".into(),
            ..Default::default()
        });
        empty.charts.push(Chart::default());
        assert_eq!(
            errors(validate_freight(&empty)),
            vec![
                "origin.kind",
                "origin.name",
                "commits[0].repoURL",
                "commits[0].id",
                "images[0].tag",
                "charts[0].repoURL",
                "charts[0].version",
                "alias"
            ]
        );
    }

    #[test]
    fn promotion_rules() {
        let mut p = Promotion::new(
            "x",
            PromotionSpec {
                stage: "test".into(),
                freight: "abc".into(),
                steps: vec![step("git-clone", "")],
                ..Default::default()
            },
        );
        assert!(validate_promotion(&p).is_ok());
        p.spec.origin = Some(FreightOrigin::warehouse("w"));
        p.spec.stage = "Bad_Stage".into();
        p.spec.steps.push(PromotionStep {
            task: Some(PromotionTaskReference {
                name: "t".into(),
                kind: String::new(),
            }),
            ..Default::default()
        });
        assert_eq!(
            errors(validate_promotion(&p)),
            vec!["spec.stage", "spec.origin", "spec.steps[1].task"]
        );
        let empty = Promotion::new("x", PromotionSpec::default());
        assert_eq!(
            errors(validate_promotion(&empty)),
            vec!["spec.stage", "spec.freight", "spec.steps"]
        );
    }

    #[test]
    fn promotion_task_rules() {
        let t = PromotionTask::new(
            "t",
            PromotionTaskSpec {
                vars: vec![],
                steps: vec![],
            },
        );
        assert_eq!(errors(validate_promotion_task(&t)), vec!["spec.steps"]);
    }

    #[test]
    fn warehouse_rules() {
        let w = Warehouse::new(
            "w",
            WarehouseSpec {
                interval: Some("5 minutes".into()),
                freight_creation_policy: Some("Sometimes".into()),
                subscriptions: vec![
                    json!({ "git": { "repoURL": "https://github.com/example/repo.git" } }),
                    json!({ "git": { "repoURL": "https://GitHub.com/example/repo" } }),
                    json!({ "image": { "repoURL": "nginx" }, "chart": { "repoURL": "oci://x" } }),
                    json!({ "chart": { "repoURL": "https://charts.example.com" }, "name": "Bad Name" }),
                    json!({ "subscription": { "subscriptionType": "s3" } }),
                    json!("nope"),
                    json!({ "futureType": { "anything": true } }),
                ],
                ..Default::default()
            },
        );
        assert_eq!(
            errors(validate_warehouse(&w)),
            vec![
                "spec.interval",
                "spec.freightCreationPolicy",
                "spec.subscriptions[1].git.repoURL",
                "spec.subscriptions[2]",
                "spec.subscriptions[3].name",
                "spec.subscriptions[3].chart.name",
                "spec.subscriptions[4].name",
                "spec.subscriptions[5]",
            ]
        );
    }

    #[test]
    fn names() {
        assert!(is_dns1123_subdomain("test.01h.abc"));
        assert!(!is_dns1123_subdomain("Test"));
        assert!(!is_dns1123_subdomain("-a"));
        assert!(is_dns1123_label("a-b"));
        assert!(!is_dns1123_label("a.b"));
        assert!(is_label_value("wonky-wombat"));
        assert!(!is_label_value("_x"));
        assert!(
            is_reserved_alias("step-12")
                && !is_reserved_alias("step-")
                && !is_reserved_alias("steps-1")
        );
    }
}
