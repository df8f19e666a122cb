//! Shape checks of step configs before anything runs: the shapes and the check live in
//! `promote_api::step_config`, shared with the webhook, which runs the same check when a Stage or
//! PromotionTask is applied.

pub use promote_api::step_config::{Shape, validate_config};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        assert!(validate_config("git-clone", Some(&json!({ "repoURL": "${{ vars.r }}", "checkout": [{ "branch": "main", "path": "./src" }] }))).is_ok());
        assert_eq!(
            validate_config("git-clone", Some(&json!({ "reopURL": "x", "checkout": [{ "path": "../up" }] }))).unwrap_err(),
            vec![
                "config.repoURL: required".to_owned(),
                "config.reopURL: unknown field (known: repoURL, checkout, author, insecureSkipTLSVerify, blobless, recurseSubmodules)".to_owned(),
                "config.checkout[0].path: invalid path \"../up\": \"..\" would escape the work tree".to_owned(),
            ]
        );
        assert!(
            validate_config(
                "git-push",
                Some(&json!({ "path": "./out", "maxAttempts": "x" }))
            )
            .is_err()
        );
        assert!(
            validate_config(
                "git-push",
                Some(&json!({ "path": "./out", "maxAttempts": "${{ vars.n }}" }))
            )
            .is_ok()
        );
        assert!(validate_config("nope", Some(&json!({}))).is_err());
        assert!(validate_config("yaml-update", None).is_err());
    }
}
