//! Stages: structural validation (every problem at once, as field paths), with the legacy
//! `promotionMechanisms` format checked through its translation into steps.

use promote_api::types::Stage;
use promote_api::{legacy, validation};

use super::{Operation, Request, Verdict, parse_object};

/// Validating: CREATE and UPDATE must leave a valid Stage.
pub fn validate(req: &Request) -> Verdict {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Verdict::allow();
    }
    let Some(obj) = &req.object else {
        return Verdict::allow();
    };
    let name = req.object_name();
    let ns = req.namespace.as_str();
    let stage: Stage = match parse_object("Stage", obj) {
        Ok(s) => s,
        Err(v) => return v,
    };
    if let Err(e) = validation::validate_stage(&stage) {
        return Verdict::invalid(format!("Stage \"{name}\" in namespace \"{ns}\": {e}"));
    }
    if legacy::is_legacy(&stage)
        && let Err(e) = legacy::translate(&stage, |_| None)
        && !matches!(&e, promote_api::Error::Legacy { reason, .. } if reason.contains("upstream"))
    {
        return Verdict::invalid(format!("Stage \"{name}\" in namespace \"{ns}\": {e}"));
    }
    Verdict::allow()
}
