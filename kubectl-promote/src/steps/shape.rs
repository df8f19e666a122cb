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
        // kustomize-set-image, as Kargo v1.11's schema has it: each image names exactly one of a
        // tag and a digest (an expression counts); `useDigest` and `fromOrigin` are gone.
        let kus = |images: serde_json::Value| {
            validate_config(
                "kustomize-set-image",
                Some(&json!({ "path": "./src", "images": images })),
            )
        };
        assert!(kus(json!([{ "image": "nginx", "tag": "${{ imageFrom('nginx').Tag }}" }])).is_ok());
        assert!(kus(json!([{ "image": "nginx", "digest": "sha256:abc" }])).is_ok());
        assert!(validate_config("kustomize-set-image", Some(&json!({ "path": "./src" }))).is_ok());
        assert_eq!(
            kus(json!([{ "image": "nginx" }, { "image": "a", "tag": "1", "digest": "sha256:abc" }]))
                .unwrap_err(),
            vec![
                "config.images[0]: tag or digest required (Kargo v1.11 takes neither from the Freight): write tag: ${{ imageFrom(\"nginx\").Tag }} for the Freight's, or leave out images to set every image of the Freight".to_owned(),
                "config.images[1]: tag and digest are mutually exclusive (Kargo's schema): give one".to_owned(),
            ]
        );
        assert!(
            kus(json!([{ "image": "nginx", "tag": "1", "useDigest": true }])).unwrap_err()[0]
                .starts_with("config.images[0].useDigest: unknown field")
        );
        assert!(validate_config("nope", Some(&json!({}))).is_err());
        assert!(validate_config("yaml-update", None).is_err());
    }
}
