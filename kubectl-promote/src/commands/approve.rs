//! `kubectl promote approve --freight F --stage S`: Freight becomes available to a Stage without
//! upstream verification (`status.approvedFor`).

use super::get::resolve_freight;
use super::{Ctx, print_done, print_patch};
use crate::cli::{ApproveArgs, stage_name};
use crate::error::{Error, context};
use crate::kube::{Api, kargo_path};
use crate::promotion::record;

/// Run `approve`.
pub fn run(c: &Ctx<'_>, args: &ApproveArgs) -> Result<(), Error> {
    let (kube, ns) = (&c.kube, c.ns.as_str());
    let stage = stage_name(&args.stage).map_err(Error::Usage)?;
    if kube
        .get(&kargo_path("stages", ns, stage))
        .map_err(context(format!("reading Stage {stage}")))?
        .is_none()
    {
        return Err(Error::StageNotFound {
            stage: stage.to_owned(),
            project: ns.to_owned(),
            available: vec![],
        });
    }
    let f = resolve_freight(kube, ns, &args.freight)?;
    if args.dry_run {
        return print_patch(
            c.global,
            &record::approval(stage),
            &format!(
                "freight.kargo.akuity.io/{} approved for {stage} (dry run)",
                f.name()
            ),
        );
    }
    record::approved(kube, ns, f.name(), stage).map_err(context(format!(
        "approving Freight {} for Stage {stage}",
        f.name()
    )))?;
    print_done(
        c.global,
        &format!("freight.kargo.akuity.io/{}", f.name()),
        &format!("approved for Stage {stage}"),
    )
}
