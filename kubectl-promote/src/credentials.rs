//! Credentials for Git remotes. The user's own come first and need nothing from us: ssh-agent,
//! `~/.ssh` keys and `git credential` helpers are used by git itself. On top of that:
//! - userinfo in an `https://user:token@host/...` repoURL is taken out of the URL (so it is never
//!   stored in the mirror's config or printed) and sent as a header instead;
//! - `PROMOTE_GIT_USERNAME` + `PROMOTE_GIT_PASSWORD` (or `PROMOTE_GIT_TOKEN`) supply HTTP(S)
//!   credentials from the environment.
//!
//! - against a cluster, the project's Kargo credential Secrets (label
//!   `kargo.akuity.io/cred-type: git`, keys `repoURL`, `username`, `password`, optional
//!   `repoURLIsRegex: "true"`, `sshPrivateKey`): an exact match on the normalized URL first, then
//!   the first matching pattern, as Kargo's credentials database does.
//!
//! Precedence: userinfo in the URL, then the project's Secret, then the environment, then git's
//! own (ssh-agent, keys, helpers).
//!
//! Credentials reach git through `GIT_CONFIG_*` environment variables (`http.extraHeader`), never
//! through command-line arguments (visible in `ps`) or files. Every secret is registered with the
//! redactor so it cannot leak into output, errors or logs.

use crate::git::MirrorOptions;

/// Environment variable names read for HTTP(S) credentials.
pub const ENV_USERNAME: &str = "PROMOTE_GIT_USERNAME";
/// See [`ENV_USERNAME`].
pub const ENV_PASSWORD: &str = "PROMOTE_GIT_PASSWORD";
/// A token used as the password (username defaults to `promote`).
pub const ENV_TOKEN: &str = "PROMOTE_GIT_TOKEN";

/// Split `https://user:pass@host/path` into the URL without userinfo and the credentials.
pub fn split_userinfo(url: &str) -> (String, Option<(String, String)>) {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            if let Some(at) = rest[..authority_end].rfind('@') {
                let userinfo = &rest[..at];
                let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                return (
                    format!("{scheme}{}", &rest[at + 1..]),
                    Some((percent_decode(user), percent_decode(pass))),
                );
            }
        }
    }
    (url.to_owned(), None)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 (the Basic authorization header).
pub fn base64(data: &[u8]) -> String {
    use ::base64::Engine;
    ::base64::engine::general_purpose::STANDARD.encode(data)
}

/// One Kargo Git credential Secret of the project.
#[derive(Clone, Debug, Default)]
pub struct ProjectCredential {
    /// Secret name (for messages).
    pub secret: String,
    /// `repoURL`: a URL, or a pattern when `is_regex`.
    pub repo_url: String,
    /// `repoURLIsRegex: "true"`.
    pub is_regex: bool,
    /// `username`.
    pub username: String,
    /// `password` (a token, usually).
    pub password: String,
    /// `sshPrivateKey`, PEM.
    pub ssh_private_key: String,
}

impl ProjectCredential {
    /// Read a Secret (as JSON); `None` when it is not a usable Git credential.
    pub fn from_secret(secret: &serde_json::Value) -> Option<Self> {
        let data = secret.get("data")?.as_object()?;
        let field = |k: &str| {
            data.get(k)
                .and_then(serde_json::Value::as_str)
                .and_then(base64_decode)
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default()
        };
        let c = Self {
            secret: secret
                .pointer("/metadata/name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            repo_url: field("repoURL"),
            is_regex: field("repoURLIsRegex") == "true",
            username: field("username"),
            password: field("password"),
            ssh_private_key: field("sshPrivateKey"),
        };
        (!c.repo_url.is_empty()).then_some(c)
    }
}

/// The project credential for `url`: exact (normalized) matches first, then patterns.
pub fn project_credential<'a>(
    url: &str,
    creds: &'a [ProjectCredential],
) -> Option<&'a ProjectCredential> {
    let norm = promote_api::urls::normalize_git(url);
    creds
        .iter()
        .find(|c| !c.is_regex && promote_api::urls::normalize_git(&c.repo_url) == norm)
        .or_else(|| {
            creds.iter().find(|c| {
                c.is_regex
                    && regex::Regex::new(&c.repo_url)
                        .is_ok_and(|re| re.is_match(&norm) || re.is_match(url))
            })
        })
}

/// Standard base64 decoding (Secret data); `None` on malformed input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use ::base64::Engine;
    ::base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// The URL to use (without userinfo) and mirror options carrying the credentials for it.
pub fn for_url(url: &str, base: &MirrorOptions) -> (String, MirrorOptions) {
    let (clean, from_url) = split_userinfo(url);
    let mut opts = base.clone();
    let project = project_credential(&clean, &base.project_credentials);
    if let Some(c) = project.filter(|c| !c.ssh_private_key.is_empty())
        && !clean.starts_with("http")
    {
        ssh_key(c, &mut opts);
    }
    let from_secret = project.filter(|c| !c.password.is_empty()).map(|c| {
        let user = if c.username.is_empty() {
            "promote"
        } else {
            &c.username
        };
        (user.to_owned(), c.password.clone())
    });
    let creds = from_url.or(from_secret).or_else(|| {
        let pass = std::env::var(ENV_PASSWORD)
            .ok()
            .or_else(|| std::env::var(ENV_TOKEN).ok())?;
        let user = std::env::var(ENV_USERNAME).unwrap_or_else(|_| "promote".to_owned());
        Some((user, pass))
    });
    if let Some((user, pass)) = creds
        && (clean.starts_with("https://") || clean.starts_with("http://"))
    {
        let token = base64(format!("{user}:{pass}").as_bytes());
        opts.redactor.add(&pass);
        opts.redactor.add(&token);
        // Append after any GIT_CONFIG_* entries the user already has (e.g. signing settings).
        let inherited = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(0);
        let n = inherited
            + opts
                .env
                .iter()
                .filter(|(k, _)| k.starts_with("GIT_CONFIG_KEY_"))
                .count();
        opts.env.retain(|(k, _)| k != "GIT_CONFIG_COUNT");
        opts.env
            .push((format!("GIT_CONFIG_KEY_{n}"), "http.extraHeader".to_owned()));
        opts.env.push((
            format!("GIT_CONFIG_VALUE_{n}"),
            format!("Authorization: Basic {token}"),
        ));
        opts.env
            .push(("GIT_CONFIG_COUNT".to_owned(), (n + 1).to_string()));
    }
    (clean, opts)
}

/// Use a Secret's SSH key for git over SSH: written once per process to a private temporary
/// file (0600), handed to ssh with `-i` and `IdentitiesOnly` through `GIT_SSH_COMMAND`.
fn ssh_key(c: &ProjectCredential, opts: &mut MirrorOptions) {
    use std::io::Write;
    let Ok(mut f) = tempfile::Builder::new().prefix("promote-key-").tempfile() else {
        return;
    };
    let mut key = c.ssh_private_key.clone();
    if !key.ends_with('\n') {
        key.push('\n');
    }
    if f.write_all(key.as_bytes()).is_err() {
        return;
    }
    // tempfile creates it 0600; it is deleted when the last copy of the options is dropped
    // (the end of the promotion).
    let path = f.into_temp_path();
    // On top of the user's own ssh command when there is one (their port, known_hosts, ...).
    let base = opts
        .env
        .iter()
        .find(|(k, _)| k == "GIT_SSH_COMMAND")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("GIT_SSH_COMMAND").ok())
        .unwrap_or_else(|| "ssh -o BatchMode=yes".to_owned());
    opts.env.retain(|(k, _)| k != "GIT_SSH_COMMAND");
    opts.env.push((
        "GIT_SSH_COMMAND".to_owned(),
        format!("{base} -i '{}' -o IdentitiesOnly=yes", path.display()),
    ));
    opts.key_files.push(std::sync::Arc::new(path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_out() {
        assert_eq!(
            split_userinfo("https://bob:s%40cret@git.example.com/x.git"),
            (
                "https://git.example.com/x.git".to_owned(),
                Some(("bob".to_owned(), "s@cret".to_owned()))
            )
        );
        assert_eq!(
            split_userinfo("git@github.com:x/y.git"),
            ("git@github.com:x/y.git".to_owned(), None)
        );
    }

    #[test]
    fn project_credentials_match_exactly_then_by_pattern() {
        let creds = vec![
            ProjectCredential {
                secret: "any".into(),
                repo_url: "^https://git\\.example\\.com/.*$".into(),
                is_regex: true,
                password: "p1".into(),
                ..Default::default()
            },
            ProjectCredential {
                secret: "exact".into(),
                repo_url: "https://git.example.com/team/gitops".into(),
                password: "p2".into(),
                ..Default::default()
            },
        ];
        let pick = |u: &str| project_credential(u, &creds).map(|c| c.secret.as_str());
        assert_eq!(
            pick("https://git.example.com/team/gitops.git"),
            Some("exact")
        );
        assert_eq!(pick("https://git.example.com/other.git"), Some("any"));
        assert_eq!(pick("https://elsewhere.example/x.git"), None);
        let secret = serde_json::json!({"metadata": {"name": "s"}, "data": {
            "repoURL": base64(b"https://h/x.git"), "username": base64(b"bot"), "password": base64(b"tok3n-secret")}});
        let c = ProjectCredential::from_secret(&secret).unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bot", "tok3n-secret")
        );
        assert_eq!(base64_decode(&base64(b"foobar")).unwrap(), b"foobar");
        let (_, opts) = for_url(
            "https://h/x.git",
            &MirrorOptions {
                project_credentials: std::sync::Arc::new(vec![c]),
                ..Default::default()
            },
        );
        assert!(opts.env.iter().any(|(_, v)| v == &format!("Authorization: Basic {}", base64(b"bot:tok3n-secret"))));
        assert_eq!(opts.redactor.clean("tok3n-secret"), "***");
    }

    #[test]
    fn credentials_go_to_env_and_redactor() {
        let (url, opts) = for_url(
            "https://u:CANARY-token-9@h.example/r.git",
            &MirrorOptions::default(),
        );
        assert_eq!(url, "https://h.example/r.git");
        assert!(
            opts.env
                .iter()
                .any(|(k, v)| k == "GIT_CONFIG_KEY_0" && v == "http.extraHeader")
        );
        assert_eq!(opts.redactor.clean("x CANARY-token-9 y"), "x *** y");
    }
}
