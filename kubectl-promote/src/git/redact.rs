//! Keeps credentials out of everything we print: URL userinfo and any secret value we were given.

/// Removes secrets from text before it reaches output, errors or logs.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Register a secret value (tokens, passwords); empty and very short values are ignored
    /// because masking them would garble ordinary text.
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_owned());
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Text with registered secrets masked and `scheme://user:pass@` userinfo removed.
    pub fn clean(&self, text: &str) -> String {
        let mut out = strip_userinfo(text);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// Remove `user[:password]@` from every `scheme://user:password@host` in the text.
pub fn strip_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => out.push_str(&authority[at + 1..]),
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_userinfo_and_secrets() {
        let mut r = Redactor::default();
        r.add("tok-CANARY-1234");
        assert_eq!(
            r.clean("fatal: unable to access 'https://bob:tok-CANARY-1234@git.example.com/x.git/': 403 tok-CANARY-1234"),
            "fatal: unable to access 'https://git.example.com/x.git/': 403 ***"
        );
        assert_eq!(
            strip_userinfo("ssh://git@host/x and http://h/y"),
            "ssh://host/x and http://h/y"
        );
    }
}
