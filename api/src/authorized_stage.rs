//! The `kargo.akuity.io/authorized-stage` annotation an Argo CD Application carries to let Stages
//! update it. Rules are Kargo v1.11's (`pkg/api/stage.go` `AuthorizedStages`): a comma-separated
//! list, each entry `<project>:<stage>` with both parts non-empty after trimming whitespace, empty
//! entries skipped, any `*` rejected (globs were removed in v1.0), exact match only.

use crate::Error;

/// One authorized `<project>:<stage>` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizedStage {
    /// The project (namespace) of the Stage.
    pub project: String,
    /// The Stage's name.
    pub stage: String,
}

/// Parse an annotation value into its entries, with Kargo's error texts.
pub fn parse(value: &str) -> Result<Vec<AuthorizedStage>, String> {
    let mut out = Vec::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let (project, stage) = match entry.split_once(':') {
            Some((p, s)) => (p.trim(), s.trim()),
            None => ("", ""),
        };
        if project.is_empty() || stage.is_empty() {
            return Err(format!(
                "invalid authorized Stage {entry:?}: expected format \"<project>:<stage>\""
            ));
        }
        if project.contains('*') || stage.contains('*') {
            return Err(format!(
                "invalid authorized Stage {entry:?}: deprecated glob expressions are no longer supported"
            ));
        }
        out.push(AuthorizedStage {
            project: project.to_owned(),
            stage: stage.to_owned(),
        });
    }
    if out.is_empty() {
        return Err(format!("no authorized Stages found in {value:?}"));
    }
    Ok(out)
}

/// The annotation value that authorizes one Stage.
pub fn expected_value(project: &str, stage: &str) -> String {
    format!("{project}:{stage}")
}

/// Decide whether an Application whose annotations are `annotation` (the value of
/// `kargo.akuity.io/authorized-stage`, if present) permits Stage `project:stage`.
///
/// Errors name the Application and say exactly which annotation value would authorize the Stage.
pub fn authorize(
    annotation: Option<&str>,
    app: &str,
    app_namespace: &str,
    project: &str,
    stage: &str,
) -> Result<(), Error> {
    let not_authorized = || Error::StageNotAuthorized {
        app: app.to_owned(),
        namespace: app_namespace.to_owned(),
        stage: stage.to_owned(),
        project: project.to_owned(),
    };
    let Some(value) = annotation else {
        return Err(not_authorized());
    };
    let entries = parse(value).map_err(|reason| Error::ParseAuthorizedStage {
        value: value.to_owned(),
        app: app.to_owned(),
        namespace: app_namespace.to_owned(),
        reason: format!(
            "{reason}; hint: use a comma-separated list such as \"{}\"",
            expected_value(project, stage)
        ),
    })?;
    if entries
        .iter()
        .any(|e| e.project == project && e.stage == stage)
    {
        Ok(())
    } else {
        Err(not_authorized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: Option<&str>) -> bool {
        authorize(value, "app", "argocd", "kargo-demo", "test").is_ok()
    }

    #[test]
    fn table() {
        let cases: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("   "), false),
            (Some(","), false),
            (Some("kargo-demo:test"), true),
            (Some(" kargo-demo : test "), true),
            (Some("kargo-demo:prod"), false),
            (Some("other:test"), false),
            (Some("kargo-demo:test,kargo-demo:prod"), true),
            (Some("kargo-demo:prod, kargo-demo:test"), true),
            (Some("kargo-demo:prod,,kargo-demo:test,"), true),
            (Some("kargo-demo:uat,kargo-demo:prod"), false),
            (Some("kargo-demo:*"), false),
            (Some("*:test"), false),
            (Some("kargo-demo:te*"), false),
            (Some("kargo-demo"), false),
            (Some(":test"), false),
            (Some("kargo-demo:"), false),
            (Some("kargo-demo:test,garbage"), false),
            (Some("Kargo-Demo:Test"), false),
            (Some("kargo-demo:test:extra"), false),
        ];
        for (value, want) in cases {
            assert_eq!(ok(*value), *want, "annotation {value:?}");
        }
    }

    #[test]
    fn parse_errors_use_kargo_texts() {
        assert_eq!(
            parse("foo").err().as_deref(),
            Some("invalid authorized Stage \"foo\": expected format \"<project>:<stage>\"")
        );
        assert_eq!(
            parse("p:*").err().as_deref(),
            Some(
                "invalid authorized Stage \"p:*\": deprecated glob expressions are no longer supported"
            )
        );
        assert_eq!(
            parse(" , ").err().as_deref(),
            Some("no authorized Stages found in \" , \"")
        );
        assert_eq!(
            parse("a:b, c : d").ok(),
            Some(vec![
                AuthorizedStage {
                    project: "a".into(),
                    stage: "b".into()
                },
                AuthorizedStage {
                    project: "c".into(),
                    stage: "d".into()
                },
            ])
        );
    }

    #[test]
    fn errors_name_the_app_and_the_fix() {
        let e = authorize(
            Some("kargo-demo:prod"),
            "guestbook-test",
            "argocd",
            "kargo-demo",
            "test",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("\"guestbook-test\""), "{e}");
        assert!(
            e.contains("kargo.akuity.io/authorized-stage: \"kargo-demo:test\""),
            "{e}"
        );
        let e = authorize(
            Some("kargo-demo:*"),
            "guestbook-test",
            "argocd",
            "kargo-demo",
            "test",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("guestbook-test") && e.contains("glob") && e.contains("\"kargo-demo:test\""),
            "{e}"
        );
    }
}
