//! Credentials for Git remotes. The user's own come first and need nothing from us: ssh-agent,
//! `~/.ssh` keys and `git credential` helpers are used by git itself. On top of that:
//! - userinfo in an `https://user:token@host/...` repoURL is taken out of the URL (so it is never
//!   stored in the mirror's config or printed) and sent as a header instead;
//! - `PROMOTE_GIT_USERNAME` + `PROMOTE_GIT_PASSWORD` (or `PROMOTE_GIT_TOKEN`) supply HTTP(S)
//!   credentials from the environment.
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

/// Standard base64 (for the Basic authorization header).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The URL to use (without userinfo) and mirror options carrying the credentials for it.
pub fn for_url(url: &str, base: &MirrorOptions) -> (String, MirrorOptions) {
    let (clean, from_url) = split_userinfo(url);
    let mut opts = base.clone();
    let creds = from_url.or_else(|| {
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
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
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
