//! Step kinds and the shapes of their configs, shared by the plugin (checked before a promotion
//! runs) and the webhook (checked when a Stage, PromotionTask or ClusterPromotionTask is applied,
//! so a typo fails at `kubectl apply`): required keys present, no unknown keys, literal paths
//! confined to the work directory, literal values of the right type. Strings holding expressions
//! pass any type check here; the plugin checks their values when the step runs.

use serde_json::Value;

/// The shape of a config value.
#[derive(Debug)]
pub enum Shape {
    Any,
    Str,
    Bool,
    Int,
    /// A path that must stay inside the work directory.
    Path,
    Arr(&'static Shape),
    Obj(&'static [(&'static str, bool, Shape)]),
}

use Shape::*;

impl Shape {
    /// An object shape's top-level fields for the README (`name`, optional ones `name?`).
    pub fn fields(&self) -> String {
        match self {
            Obj(fields) => fields
                .iter()
                .map(|(n, required, _)| {
                    if *required {
                        format!("`{n}`")
                    } else {
                        format!("`{n}?`")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
            Any => "(any keys: the outputs)".into(),
            _ => String::new(),
        }
    }
}

/// Whether a string holds a `${{ }}` or `${% %}` expression.
pub fn has_expression(s: &str) -> bool {
    s.contains("${{") || s.contains("${%")
}

/// A work-directory path normalized (no empty or `.` parts), or why it may not be used: absolute,
/// `..`, or `.git`.
pub fn clean_path(path: &str) -> Result<String, String> {
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(
            "absolute paths are not allowed; use a path relative to the work directory".into(),
        );
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("\"..\" would escape the work tree".into()),
            ".git" => return Err("\".git\" is not part of the work tree".into()),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn check(v: &Value, shape: &Shape, path: &str, errs: &mut Vec<String>) {
    if v.as_str().is_some_and(has_expression) && !matches!(shape, Path) {
        return;
    }
    match (shape, v) {
        (Any, _) | (Str, Value::String(_)) | (Bool, Value::Bool(_)) => {}
        (Int, Value::Number(n)) if n.is_i64() => {}
        (Path, Value::String(s)) => {
            if !has_expression(s)
                && let Err(e) = clean_path(s)
            {
                errs.push(format!("{path}: invalid path {s:?}: {e}"));
            }
        }
        (Arr(item), Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                check(x, item, &format!("{path}[{i}]"), errs);
            }
        }
        (Obj(fields), Value::Object(o)) => {
            for (name, required, _) in fields.iter() {
                if *required && !o.contains_key(*name) {
                    errs.push(format!("{path}.{name}: required"));
                }
            }
            for (k, x) in o {
                match fields.iter().find(|(n, ..)| n == k) {
                    Some((_, _, s)) => check(x, s, &format!("{path}.{k}"), errs),
                    None => {
                        let known: Vec<&str> = fields.iter().map(|(n, ..)| *n).collect();
                        errs.push(format!(
                            "{path}.{k}: unknown field (known: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
        }
        (s, v) => {
            let want = match s {
                Str | Path => "a string",
                Bool => "a boolean",
                Int => "an integer",
                Arr(_) => "a list",
                Obj(_) => "an object",
                Any => "anything",
            };
            errs.push(format!("{path}: must be {want}, got {v}"));
        }
    }
}

/// The step kinds promote runs, with their config shapes, in the order the README lists them.
pub const STEPS: &[(&str, &Shape)] = &[
    ("git-clone", &GIT_CLONE),
    ("git-clear", &GIT_CLEAR),
    ("copy", &COPY),
    ("delete", &DELETE),
    ("file-write", &FILE_WRITE),
    ("tar", &TAR),
    ("untar", &UNTAR),
    ("kustomize-set-image", &KUSTOMIZE_SET_IMAGE),
    ("kustomize-build", &KUSTOMIZE_BUILD),
    ("yaml-update", &YAML_UPDATE),
    ("yaml-merge", &YAML_MERGE),
    ("helm-update-image", &HELM_UPDATE_IMAGE),
    ("helm-template", &HELM_TEMPLATE),
    ("helm-update-chart", &HELM_UPDATE_CHART),
    ("git-commit", &GIT_COMMIT),
    ("git-tag", &GIT_TAG),
    ("git-push", &GIT_PUSH),
    ("github-push", &GITHUB_PUSH),
    ("git-open-pr", &GIT_OPEN_PR),
    ("git-wait-for-pr", &GIT_WAIT_FOR_PR),
    ("git-merge-pr", &GIT_MERGE_PR),
    ("argocd-update", &ARGOCD_UPDATE),
    ("argocd-wait", &ARGOCD_WAIT),
    ("set-freight-alias", &SET_FREIGHT_ALIAS),
    ("set-metadata", &SET_METADATA),
    ("http-download", &HTTP_DOWNLOAD),
    ("oci-push", &OCI_PUSH),
    ("oci-download", &OCI_DOWNLOAD),
    ("json-update", &STRUCTURED_UPDATE),
    ("toml-update", &STRUCTURED_UPDATE),
    ("json-parse", &PARSE),
    ("yaml-parse", &PARSE),
    ("toml-parse", &PARSE),
    ("http", &HTTP),
    ("compose-output", &Any),
    ("fail", &FAIL),
];

/// The step kinds, comma-separated (for messages).
pub fn known() -> String {
    STEPS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The shape of step kind `uses`.
pub fn shape(uses: &str) -> Option<&'static Shape> {
    STEPS.iter().find(|(n, _)| *n == uses).map(|(_, s)| *s)
}

/// Check a step's config shape; every problem is listed with its path (`config.checkout[0].path`).
pub fn validate_config(uses: &str, config: Option<&Value>) -> Result<(), Vec<String>> {
    let Some(shape) = shape(uses) else {
        return Err(vec![format!(
            "uses: unknown step kind {uses:?}; promote runs: {}",
            known()
        )]);
    };
    let mut errs = Vec::new();
    // A step without a config is checked as one with an empty config (its required keys).
    let empty = Value::Object(Default::default());
    check(config.unwrap_or(&empty), shape, "config", &mut errs);
    if uses == "kustomize-set-image" {
        tag_or_digest(config.unwrap_or(&empty), &mut errs);
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

/// Kargo v1.11's schema for a `kustomize-set-image` image (`oneOf`): exactly one of a non-empty
/// `tag` and a non-empty `digest`. Neither is taken from the Freight any more (that was Kargo
/// before v1.8, with `useDigest` and `fromOrigin`); only a step without `images` reads the Freight.
fn tag_or_digest(config: &Value, errs: &mut Vec<String>) {
    let Some(images) = config.get("images").and_then(Value::as_array) else {
        return;
    };
    for (i, img) in images.iter().enumerate() {
        let given = |k: &str| {
            img.get(k)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
        };
        let image = img.get("image").and_then(Value::as_str).unwrap_or("IMAGE");
        match (given("tag"), given("digest")) {
            (true, false) | (false, true) => {}
            (true, true) => errs.push(format!(
                "config.images[{i}]: tag and digest are mutually exclusive (Kargo's schema): give one"
            )),
            (false, false) => errs.push(format!(
                "config.images[{i}]: tag or digest required (Kargo v1.11 takes neither from the Freight): write tag: ${{{{ imageFrom({image:?}).Tag }}}} for the Freight's, or leave out images to set every image of the Freight"
            )),
        }
    }
}

const AUTHOR: Shape = Obj(&[
    ("name", false, Str),
    ("email", false, Str),
    ("signingKey", false, Str),
]);
const SELECTOR: Shape = Obj(&[
    ("matchLabels", false, Any),
    ("matchExpressions", false, Any),
]);

/// `argocd-update`
pub const ARGO_SOURCE: Shape = Obj(&[
    ("repoURL", true, Str),
    ("chart", false, Str),
    ("desiredRevision", false, Str),
    ("updateTargetRevision", false, Bool),
    (
        "kustomize",
        false,
        Obj(&[(
            "images",
            true,
            Arr(&Obj(&[
                ("repoURL", true, Str),
                ("newName", false, Str),
                ("tag", false, Str),
                ("digest", false, Str),
            ])),
        )]),
    ),
    (
        "helm",
        false,
        Obj(&[(
            "images",
            true,
            Arr(&Obj(&[("key", true, Str), ("value", true, Str)])),
        )]),
    ),
]);

/// `argocd-update`
pub const ARGOCD_UPDATE: Shape = Obj(&[(
    "apps",
    true,
    Arr(&Obj(&[
        ("name", false, Str),
        ("namespace", false, Str),
        ("selector", false, SELECTOR),
        ("sources", false, Arr(&ARGO_SOURCE)),
    ])),
)]);

/// `argocd-wait`
pub const ARGOCD_WAIT: Shape = Obj(&[(
    "apps",
    true,
    Arr(&Obj(&[
        ("name", false, Str),
        ("namespace", false, Str),
        ("selector", false, SELECTOR),
        ("waitFor", false, Arr(&Str)),
    ])),
)]);

/// `copy`
pub const COPY: Shape = Obj(&[
    ("inPath", true, Path),
    ("outPath", true, Path),
    ("ignore", false, Str),
]);

/// `delete`
pub const DELETE: Shape = Obj(&[
    ("path", false, Path),
    ("paths", false, Arr(&Path)),
    ("pathsAreGlobs", false, Bool),
    ("strict", false, Bool),
]);

/// `fail`
pub const FAIL: Shape = Obj(&[("message", false, Str)]);

/// `file-write`
pub const FILE_WRITE: Shape = Obj(&[
    ("path", true, Path),
    ("contents", true, Str),
    ("permissions", false, Str),
    ("overwrite", false, Bool),
]);

/// `git-clear`
pub const GIT_CLEAR: Shape = Obj(&[("path", true, Path)]);

/// `git-clone`
pub const CHECKOUT: Shape = Obj(&[
    ("path", true, Path),
    ("branch", false, Str),
    ("commit", false, Str),
    ("tag", false, Str),
    ("create", false, Bool),
    ("sparse", false, Arr(&Str)),
    ("as", false, Str),
]);

/// `git-clone`
pub const GIT_CLONE: Shape = Obj(&[
    ("repoURL", true, Str),
    ("checkout", true, Arr(&CHECKOUT)),
    ("author", false, AUTHOR),
    ("insecureSkipTLSVerify", false, Bool),
    ("blobless", false, Bool),
    ("recurseSubmodules", false, Bool),
]);

/// `git-commit`
pub const GIT_COMMIT: Shape = Obj(&[
    ("path", true, Path),
    ("message", true, Str),
    ("messageFromSteps", false, Arr(&Str)),
    ("author", false, AUTHOR),
]);

/// `git-merge-pr`
pub const GIT_MERGE_PR: Shape = Obj(&[
    ("repoURL", true, Str),
    ("prNumber", true, Int),
    ("provider", false, Str),
    ("insecureSkipTLSVerify", false, Bool),
    ("wait", false, Bool),
    ("pollInterval", false, Str),
    ("mergeMethod", false, Str),
]);

/// `git-open-pr`
pub const GIT_OPEN_PR: Shape = Obj(&[
    ("repoURL", true, Str),
    ("sourceBranch", true, Str),
    ("targetBranch", true, Str),
    ("title", false, Str),
    ("description", false, Str),
    ("labels", false, Arr(&Str)),
    ("provider", false, Str),
    ("insecureSkipTLSVerify", false, Bool),
    ("createTargetBranch", false, Bool),
]);

/// `git-open-pr`
pub const GIT_WAIT_FOR_PR: Shape = Obj(&[
    ("repoURL", true, Str),
    ("prNumber", true, Int),
    ("provider", false, Str),
    ("insecureSkipTLSVerify", false, Bool),
    ("pollInterval", false, Str),
]);

/// `git-push`
pub const GIT_PUSH: Shape = Obj(&[
    ("path", true, Path),
    ("targetBranch", false, Str),
    ("generateTargetBranch", false, Bool),
    ("tag", false, Str),
    ("force", false, Bool),
    ("maxAttempts", false, Int),
    ("provider", false, Str),
]);

/// `git-tag`
pub const GIT_TAG: Shape = Obj(&[
    ("path", true, Path),
    ("tag", true, Str),
    ("message", true, Str),
    ("force", false, Bool),
]);

/// `github-push`
pub const GITHUB_PUSH: Shape = Obj(&[
    ("path", true, Path),
    ("targetBranch", false, Str),
    ("generateTargetBranch", false, Bool),
    ("force", false, Bool),
    ("maxAttempts", false, Int),
    ("insecureSkipTLSVerify", false, Bool),
]);

/// `helm-template`
pub const SET_VALUE: Shape = Obj(&[
    ("key", true, Str),
    ("value", true, Str),
    ("literal", false, Bool),
]);

/// `helm-template`
pub const HELM_TEMPLATE: Shape = Obj(&[
    ("path", true, Path),
    ("outPath", true, Path),
    ("outLayout", false, Str),
    ("releaseName", true, Str),
    ("useReleaseName", false, Bool),
    ("namespace", false, Str),
    ("valuesFiles", false, Arr(&Path)),
    ("ignoreMissingValueFiles", false, Bool),
    ("setValues", false, Arr(&SET_VALUE)),
    ("buildDependencies", false, Bool),
    ("includeCRDs", false, Bool),
    ("disableHooks", false, Bool),
    ("skipTests", false, Bool),
    ("kubeVersion", false, Str),
    ("apiVersions", false, Arr(&Str)),
]);

/// `helm-update-chart`
pub const CHART_UPDATE: Shape = Obj(&[
    ("repository", true, Str),
    ("name", true, Str),
    ("version", true, Str),
]);

/// `helm-update-chart`
pub const HELM_UPDATE_CHART: Shape =
    Obj(&[("path", true, Path), ("charts", false, Arr(&CHART_UPDATE))]);

/// `helm-update-image`
pub const HELM_IMAGE: Shape = Obj(&[
    ("image", true, Str),
    ("key", true, Str),
    ("value", true, Str),
    ("fromOrigin", false, Any),
]);

/// `helm-update-image`
pub const HELM_UPDATE_IMAGE: Shape =
    Obj(&[("path", true, Path), ("images", true, Arr(&HELM_IMAGE))]);

/// `http`
pub const NAME_VALUE: Shape = Obj(&[("name", true, Str), ("value", true, Str)]);

/// `http`
pub const HTTP: Shape = Obj(&[
    ("method", false, Str),
    ("url", true, Str),
    ("headers", false, Arr(&NAME_VALUE)),
    ("queryParams", false, Arr(&NAME_VALUE)),
    ("body", false, Str),
    ("insecureSkipTLSVerify", false, Bool),
    ("proxy", false, Str),
    ("timeout", false, Str),
    ("pollInterval", false, Str),
    ("responseContentType", false, Str),
    ("outputs", false, Arr(&OUTPUT)),
    ("successExpression", false, Str),
    ("failureExpression", false, Str),
    ("errorExpression", false, Str),
]);

/// `http-download`
pub const HTTP_DOWNLOAD: Shape = Obj(&[
    ("url", true, Str),
    ("outPath", true, Path),
    ("allowOverwrite", false, Bool),
    ("headers", false, Arr(&NAME_VALUE)),
    ("queryParams", false, Arr(&NAME_VALUE)),
    ("insecureSkipTLSVerify", false, Bool),
    ("timeout", false, Str),
]);

/// `kustomize-build`
pub const KUSTOMIZE_BUILD: Shape = Obj(&[
    ("path", true, Path),
    ("outPath", true, Path),
    ("outputFormat", false, Str),
    (
        "plugin",
        false,
        Obj(&[(
            "helm",
            false,
            Obj(&[
                ("apiVersions", false, Arr(&Str)),
                ("kubeVersion", false, Str),
            ]),
        )]),
    ),
]);

/// `kustomize-set-image`
pub const KUSTOMIZE_IMAGE: Shape = Obj(&[
    ("image", true, Str),
    ("name", false, Str),
    ("newName", false, Str),
    ("tag", false, Str),
    ("digest", false, Str),
]);

/// `kustomize-set-image`
pub const KUSTOMIZE_SET_IMAGE: Shape = Obj(&[
    ("path", true, Path),
    ("images", false, Arr(&KUSTOMIZE_IMAGE)),
]);

/// `oci-download`
pub const OCI_DOWNLOAD: Shape = Obj(&[
    ("imageRef", true, Str),
    ("outPath", true, Path),
    ("allowOverwrite", false, Bool),
    ("mediaType", false, Str),
    ("insecureSkipTLSVerify", false, Bool),
]);

/// `oci-push`
pub const OCI_PUSH: Shape = Obj(&[
    ("srcRef", true, Str),
    ("destRef", true, Str),
    ("annotations", false, Any),
    ("insecureSkipTLSVerify", false, Bool),
]);

/// `parse`
pub const OUTPUT: Shape = Obj(&[("name", true, Str), ("fromExpression", true, Str)]);

/// `parse`
pub const PARSE: Shape = Obj(&[("path", true, Path), ("outputs", true, Arr(&OUTPUT))]);

/// `set-freight-alias`
pub const SET_FREIGHT_ALIAS: Shape = Obj(&[("name", true, Str), ("alias", true, Str)]);

/// `set-metadata`
pub const SET_METADATA: Shape = Obj(&[(
    "updates",
    true,
    Arr(&Obj(&[
        ("kind", true, Str),
        ("name", true, Str),
        ("values", true, Any),
    ])),
)]);

/// `structured-update`
pub const KEY_VALUE: Shape = Obj(&[("key", true, Str), ("value", true, Any)]);

/// `structured-update`
pub const STRUCTURED_UPDATE: Shape =
    Obj(&[("path", true, Path), ("updates", true, Arr(&KEY_VALUE))]);

/// `untar`
pub const UNTAR: Shape = Obj(&[
    ("inPath", true, Path),
    ("outPath", true, Path),
    ("stripComponents", false, Int),
    ("ignore", false, Str),
]);

/// `yaml-merge`
pub const YAML_MERGE: Shape = Obj(&[
    ("inFiles", true, Arr(&Path)),
    ("outFile", true, Path),
    ("ignoreMissingFiles", false, Bool),
]);

/// `yaml-update`
pub const YAML_UPDATE: Shape = Obj(&[
    ("path", true, Path),
    (
        "updates",
        true,
        Arr(&Obj(&[("key", true, Str), ("value", true, Any)])),
    ),
]);
/// `tar` (Kargo after v1.11)
pub const TAR: Shape = Obj(&[
    ("inPath", true, Path),
    ("outPath", true, Path),
    ("ignore", false, Str),
    ("gzip", false, Bool),
]);
