//! Resolving what a promotion will do, before anything is written: the Stage, the Freight (full
//! name, unique prefix or alias) and its availability, the steps and vars (legacy format
//! translated, task references inflated, every config checked), the Promotion's name and the
//! Freight collection the Stage will have. The same for `--local` and the cluster; a resumed
//! Promotion brings its own steps.

use promote_api::availability::{self, Availability};
use promote_api::types::{
    ExpressionVariable, Freight, FreightCollection, Promotion, PromotionStep, PromotionTask, Stage,
};
use promote_api::{naming, template, validation};

use super::lease;
use super::source::Source;
use crate::error::Error;
use crate::runner;

/// Everything one promotion will do, resolved and checked.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The project (namespace).
    pub project: String,
    /// The Stage, as read.
    pub stage: Stage,
    /// The Freight to promote.
    pub freight: Freight,
    /// The collection the Stage will have: the Freight plus other origins' current Freight.
    pub collection: FreightCollection,
    /// The steps (checked) and the promotion-level vars.
    pub steps: Vec<PromotionStep>,
    /// Stage vars, then template vars.
    pub vars: Vec<ExpressionVariable>,
    /// The Promotion's name (new: generated; resumed: its own).
    pub name: String,
    /// The interrupted Promotion being resumed.
    pub resumed: Option<Promotion>,
}

/// Resolve a new promotion of `freight` (or `alias`) into `stage_name`.
pub fn resolve(
    source: &dyn Source,
    stage_name: &str,
    freight: Option<&str>,
    alias: Option<&str>,
    now: jiff::Timestamp,
) -> Result<Plan, Error> {
    let project = source.project().to_owned();
    let stage = source.stage(stage_name)?;
    validation::validate_stage(&stage).map_err(|source| Error::Invalid {
        kind: "Stage",
        name: stage_name.to_owned(),
        source: Box::new(source),
    })?;
    let candidates = source.freight(freight, alias)?;
    let (mut stages, tasks) = source.template_inputs(&stage)?;
    if !stages.iter().any(|s| s.name() == stage.name()) {
        stages.push(stage.clone());
    }
    let f = resolve_freight(&candidates, &project, freight, alias)?.clone();
    validation::validate_freight(&f).map_err(|source| Error::Invalid {
        kind: "Freight",
        name: f.name().to_owned(),
        source: Box::new(source),
    })?;
    let effective = template::effective_stage(&stage, &stages)?;
    if let Availability::Unavailable(reason) = availability::check(&effective, &f, now) {
        return Err(Error::Unavailable {
            freight: f.name().to_owned(),
            stage: stage_name.to_owned(),
            reason,
        });
    }
    let (steps, vars) = stage_steps(&stage, &stages, &tasks)?;
    runner::check_steps(stage_name, &steps)?;
    let name = promotion_name(stage_name, f.name())?;
    Ok(Plan {
        project,
        collection: collection(&stage, &f),
        stage,
        freight: f,
        steps,
        vars,
        name,
        resumed: None,
    })
}

/// Resolve the resume of Promotion `name`: it must be unfinished and nobody may be running it.
pub fn resumed(source: &dyn Source, name: &str, now: jiff::Timestamp) -> Result<Plan, Error> {
    let Some(promotion) = source.promotion(name)? else {
        return Err(Error::PromotionState {
            promotion: name.to_owned(),
            problem: format!("not found in project \"{}\"", source.project()),
            hint: "list them with kubectl promote get promotions".into(),
        });
    };
    lease::resumable(&promotion, now)?;
    let stage = source.stage(&promotion.spec.stage)?;
    let freight = source
        .freight(Some(&promotion.spec.freight), None)?
        .into_iter()
        .find(|f| f.name() == promotion.spec.freight)
        .ok_or_else(|| Error::FreightNotFound {
            what: format!("named \"{}\"", promotion.spec.freight),
            project: source.project().to_owned(),
            available: vec![],
        })?;
    // A Promotion created as plain data (`kubectl create`) where promote's mutating webhook is
    // not installed carries no steps: derive them from the Stage as the webhook would (Kargo's
    // webhook does the same), checked before anything runs. One that names steps runs those.
    let (steps, vars) = if promotion.spec.steps.is_empty() {
        let (mut stages, tasks) = source.template_inputs(&stage)?;
        if !stages.iter().any(|s| s.name() == stage.name()) {
            stages.push(stage.clone());
        }
        let effective = template::effective_stage(&stage, &stages)?;
        if let Availability::Unavailable(reason) = availability::check(&effective, &freight, now) {
            return Err(Error::Unavailable {
                freight: freight.name().to_owned(),
                stage: stage.name().to_owned(),
                reason,
            });
        }
        let derived = stage_steps(&stage, &stages, &tasks)?;
        runner::check_steps(stage.name(), &derived.0)?;
        derived
    } else {
        (promotion.spec.steps.clone(), promotion.spec.vars.clone())
    };
    Ok(Plan {
        project: source.project().to_owned(),
        collection: collection(&stage, &freight),
        steps,
        vars,
        name: name.to_owned(),
        stage,
        freight,
        resumed: Some(promotion),
    })
}

/// Find Freight by full name, unique name prefix, or alias.
pub fn resolve_freight<'a>(
    all: &'a [Freight],
    project: &str,
    name: Option<&str>,
    alias: Option<&str>,
) -> Result<&'a Freight, Error> {
    let in_project: Vec<&Freight> = all
        .iter()
        .filter(|f| f.metadata.namespace.as_deref() == Some(project))
        .collect();
    let available = || {
        in_project
            .iter()
            .take(10)
            .map(|f| match f.alias() {
                Some(a) => format!("{} ({a})", naming::short_name(f.name())),
                None => naming::short_name(f.name()).to_owned(),
            })
            .collect::<Vec<_>>()
    };
    if let Some(alias) = alias {
        return in_project
            .iter()
            .copied()
            .find(|f| f.alias() == Some(alias))
            .ok_or_else(|| Error::FreightNotFound {
                what: format!("with alias \"{alias}\""),
                project: project.to_owned(),
                available: available(),
            });
    }
    let Some(name) = name else {
        return Err(Error::Usage(
            "name the Freight: --freight NAME|PREFIX or --freight-alias ALIAS".into(),
        ));
    };
    if let Some(f) = in_project.iter().find(|f| f.name() == name) {
        return Ok(f);
    }
    let matches: Vec<&&Freight> = in_project
        .iter()
        .filter(|f| f.name().starts_with(name))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            // An alias passed to --freight is a common slip: accept it when unambiguous.
            if let Some(f) = in_project.iter().find(|f| f.alias() == Some(name)) {
                return Ok(f);
            }
            Err(Error::FreightNotFound {
                what: format!("named \"{name}\""),
                project: project.to_owned(),
                available: available(),
            })
        }
        many => Err(Error::FreightAmbiguous {
            prefix: name.to_owned(),
            candidates: many.iter().map(|f| f.name().to_owned()).collect(),
        }),
    }
}

/// The Stage's steps and vars, legacy format translated and task references inflated.
fn stage_steps(
    stage: &Stage,
    stages: &[Stage],
    tasks: &[PromotionTask],
) -> Result<(Vec<PromotionStep>, Vec<ExpressionVariable>), Error> {
    template::promotion_steps(stage, stages, tasks).map_err(|e| match e {
        promote_api::Error::Template { problem, .. } => Error::Steps {
            stage: stage.name().to_owned(),
            problems: vec![problem],
        },
        other => other.into(),
    })
}

/// The Freight collection the Stage will have: the target Freight plus, for other origins, what
/// the Stage's newest history entry holds.
pub fn collection(stage: &Stage, target: &Freight) -> FreightCollection {
    let mut c = FreightCollection::default();
    if let Some(latest) = stage
        .status
        .as_ref()
        .and_then(|s| s.freight_history.first())
    {
        for (origin, f) in &latest.freight {
            if stage.requests_origin(&f.origin) {
                c.freight.insert(origin.clone(), f.clone());
            }
        }
    }
    c.freight
        .insert(target.origin.to_string(), target.reference());
    c.id = c.compute_id();
    c
}

/// A new Promotion name for this Stage and Freight.
fn promotion_name(stage: &str, freight: &str) -> Result<String, Error> {
    Ok(naming::promotion_name(stage, freight, ulid::Ulid::new())?)
}
