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
//! Credentials reach git through `GIT_CONFIG_*` environment variables, never through
//! command-line arguments (visible in `ps`) or files: a credential helper scoped to the remote's
//! `scheme://host[:port]` (`credential.<url>.helper`), so git sends them only when that server
//! challenges it (HTTP 401), and never to another host a redirect points at. Credentials are never
//! sent over plain `http://` except to loopback addresses. Every secret is registered with the
//! redactor (with its base64 forms) so it cannot leak into output, errors or logs (SECURITY.md).

use crate::git::MirrorOptions;

/// Environment variable names read for HTTP(S) credentials.
pub const ENV_USERNAME: &str = "PROMOTE_GIT_USERNAME";
/// See [`ENV_USERNAME`].
pub const ENV_PASSWORD: &str = "PROMOTE_GIT_PASSWORD";
/// A token used as the password (username defaults to `promote`).
pub const ENV_TOKEN: &str = "PROMOTE_GIT_TOKEN";
/// Hosts (`host` or `host:port`, comma-separated) beyond a provider's public ones that may receive
/// tokens taken from the environment: self-hosted GitHub Enterprise, GitLab or Gitea, and the
/// `PROMOTE_GIT_*` credentials.
pub const ENV_TOKEN_HOSTS: &str = "PROMOTE_TOKEN_HOSTS";
/// Environment variables the credential helper reads (set on git's process only).
const HELPER_USERNAME: &str = "PROMOTE_CREDENTIAL_USERNAME";
const HELPER_PASSWORD: &str = "PROMOTE_CREDENTIAL_PASSWORD";

/// `scheme://authority` and the authority (`host[:port]`) of an http(s) URL.
pub fn origin(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!authority.is_empty()).then(|| (format!("{scheme}://{authority}"), authority.to_owned()))
}

/// Whether an authority (`host[:port]`) is a loopback address, where plain http crosses no network.
pub fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a credential may not go to `url`, if it may not: plain http to a host that is not
/// loopback.
pub fn insecure_transport(url: &str) -> Option<String> {
    let (_, authority) = origin(url)?;
    (url.starts_with("http://") && !is_loopback(&authority))
        .then(|| format!("refusing to send credentials over plain http to {authority}; use https"))
}

/// Whether `authority` is one of the hosts listed in `PROMOTE_TOKEN_HOSTS`.
pub fn opted_in(authority: &str) -> bool {
    std::env::var(ENV_TOKEN_HOSTS).is_ok_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|h| !h.is_empty() && (h == authority || authority.split(':').next() == Some(h)))
    })
}

/// Register a secret and the forms it travels in (base64, alone and as `user:secret`).
pub fn redact_all(redactor: &mut crate::git::Redactor, user: &str, secret: &str) {
    use ::base64::Engine;
    redactor.add(secret);
    for text in [secret.to_owned(), format!("{user}:{secret}")] {
        for engine in [
            &::base64::engine::general_purpose::STANDARD,
            &::base64::engine::general_purpose::STANDARD_NO_PAD,
            &::base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            redactor.add(&engine.encode(text.as_bytes()));
        }
    }
}

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

/// The URL to use (without userinfo) and mirror options carrying the credentials for it, from
/// the URL itself, the project's credential Secrets (`project`), the environment and git's own.
pub fn for_url(
    url: &str,
    base: &MirrorOptions,
    project: &[ProjectCredential],
) -> (String, MirrorOptions) {
    let (clean, from_url) = split_userinfo(url);
    let mut opts = base.clone();
    let project = project_credential(&clean, project);
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
    let from_env = || {
        let pass = std::env::var(ENV_PASSWORD)
            .ok()
            .or_else(|| std::env::var(ENV_TOKEN).ok())?;
        let user = std::env::var(ENV_USERNAME).unwrap_or_else(|_| "promote".to_owned());
        Some((user, pass))
    };
    // Credentials from the environment belong to no particular host: only to those the user
    // listed. The URL's own userinfo and a matching project Secret are bound to this remote.
    let bound = from_url.or(from_secret);
    let creds = match bound {
        Some(c) => Some(c),
        None => match origin(&clean) {
            Some((_, authority)) if opted_in(&authority) => from_env(),
            Some((_, authority)) if from_env().is_some() => {
                opts.unsent = Some(format!(
                    "{ENV_USERNAME}/{ENV_PASSWORD} (or {ENV_TOKEN}) are not sent to {authority}: list it in {ENV_TOKEN_HOSTS}={authority} if they belong to it"
                ));
                None
            }
            _ => None,
        },
    };
    if let Some((user, pass)) = creds
        && let Some((origin, _)) = origin(&clean)
    {
        redact_all(&mut opts.redactor, &user, &pass);
        if let Some(why) = insecure_transport(&clean) {
            opts.refused = Some(why);
        } else {
            add_helper(&mut opts, &origin, &user, &pass);
        }
    }
    (clean, opts)
}

/// Configure git (through `GIT_CONFIG_*`) to answer `origin`'s challenges, and only its, with
/// `user` and `pass`. The values travel in the environment of git's process, read by the helper.
fn add_helper(opts: &mut MirrorOptions, origin: &str, user: &str, pass: &str) {
    // Append after any GIT_CONFIG_* entries the user already has (e.g. signing settings).
    let inherited = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let mut n = inherited
        + opts
            .env
            .iter()
            .filter(|(k, _)| k.starts_with("GIT_CONFIG_KEY_"))
            .count();
    opts.env.retain(|(k, _)| k != "GIT_CONFIG_COUNT");
    let key = format!("credential.{origin}.helper");
    // The empty helper resets the list, so these credentials come before the user's own helpers
    // for this remote (they were given for it on purpose).
    let helper = format!(
        "!f() {{ test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' \"${HELPER_USERNAME}\" \"${HELPER_PASSWORD}\"; }}; f"
    );
    for value in [String::new(), helper] {
        opts.env.push((format!("GIT_CONFIG_KEY_{n}"), key.clone()));
        opts.env.push((format!("GIT_CONFIG_VALUE_{n}"), value));
        n += 1;
    }
    opts.env
        .push(("GIT_CONFIG_COUNT".to_owned(), n.to_string()));
    opts.env
        .retain(|(k, _)| k != HELPER_USERNAME && k != HELPER_PASSWORD);
    opts.env.push((HELPER_USERNAME.to_owned(), user.to_owned()));
    opts.env.push((HELPER_PASSWORD.to_owned(), pass.to_owned()));
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
        let (_, opts) = for_url("https://h/x.git", &MirrorOptions::default(), &[c]);
        assert!(
            opts.env
                .iter()
                .any(|(k, v)| k == "GIT_CONFIG_VALUE_1" && v.starts_with("!f()"))
                && opts
                    .env
                    .iter()
                    .any(|(k, v)| k == "GIT_CONFIG_KEY_1" && v == "credential.https://h.helper")
                && opts
                    .env
                    .iter()
                    .any(|(k, v)| k == HELPER_PASSWORD && v == "tok3n-secret")
        );
        assert_eq!(opts.redactor.clean("tok3n-secret"), "***");
        assert_eq!(opts.redactor.clean(&base64(b"bot:tok3n-secret")), "***");
        assert_eq!(opts.redactor.clean(&base64(b"tok3n-secret")), "***");
    }

    #[test]
    fn credentials_go_to_env_and_redactor() {
        let (url, opts) = for_url(
            "https://u:CANARY-token-9@h.example/r.git",
            &MirrorOptions::default(),
            &[],
        );
        assert_eq!(url, "https://h.example/r.git");
        assert!(
            opts.env
                .iter()
                .any(|(k, v)| k == "GIT_CONFIG_KEY_0" && v == "credential.https://h.example.helper")
        );
        assert_eq!(opts.redactor.clean("x CANARY-token-9 y"), "x *** y");
        // Never over plain http to another machine; loopback crosses no network.
        let (_, opts) = for_url(
            "http://u:CANARY@git.example.com/r.git",
            &MirrorOptions::default(),
            &[],
        );
        assert!(
            opts.refused
                .as_deref()
                .is_some_and(|r| r.contains("plain http to git.example.com"))
        );
        assert!(!opts.env.iter().any(|(_, v)| v.contains("CANARY")));
        let (_, opts) = for_url(
            "http://u:CANARY@127.0.0.1:8080/r.git",
            &MirrorOptions::default(),
            &[],
        );
        assert!(opts.refused.is_none());
        assert!(is_loopback("[::1]:80") && is_loopback("localhost") && !is_loopback("10.0.0.1:80"));
    }

    #[test]
    fn origins_name_scheme_host_and_port() {
        // Environment credentials are bound to PROMOTE_TOKEN_HOSTS entries by this authority
        // (the end-to-end tests set the variable on the plugin's process).
        assert_eq!(
            origin("https://u:p@git.example.com:8443/x.git"),
            Some((
                "https://git.example.com:8443".to_owned(),
                "git.example.com:8443".to_owned()
            ))
        );
        assert_eq!(origin("ssh://git@host/x"), None);
    }
}
