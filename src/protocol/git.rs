//! `POST /git`, the history that goes with an uploaded workspace: the request's query
//! ([`GitParams`]), its answer ([`GitDone`]) and the bundle's first line. The prose is in
//! `protocol/mod.rs`.

use super::percent;
use serde::{Deserialize, Serialize};

/// The body's content type: a git bundle (`git bundle create - HEAD`), or empty for a
/// repository without commits.
pub const GIT_BUNDLE_TYPE: &str = "application/x-git-bundle";

/// Every bundle starts with one of these lines (git's bundle formats 2 and 3).
pub const BUNDLE_SIGNATURES: [&[u8]; 2] = [b"# v2 git bundle\n", b"# v3 git bundle\n"];

/// The most shallow boundaries one request may name; a history cut in more places than this
/// is not sent.
pub const SHALLOW_MAX: usize = 1000;

/// The query of `POST /git`. Unknown keys are ignored; fields are only ever added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitParams {
    /// The branch `HEAD` is on (`main`, not `refs/heads/main`); `None` for a detached `HEAD`.
    pub branch: Option<String>,
    /// The commits whose parents the bundle leaves out (a shallow history): the session's
    /// `.git/shallow`. Empty for a full history.
    pub shallow: Vec<String>,
    /// The client's `user.name` and `user.email`, a default for a session where `git commit`
    /// would otherwise fail for lack of an identity.
    pub user_name: Option<String>,
    pub user_email: Option<String>,
}

/// The answer to a `POST /git` that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitDone {
    /// The session repository's `HEAD` commit; `None` for a repository without commits.
    pub head: Option<String>,
    /// Whether the history is shallow.
    pub shallow: bool,
}

impl GitParams {
    /// `branch=…&shallow=A,B&name=…&email=…`, the text values percent-encoded.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        let texts = [
            ("branch", &self.branch),
            ("name", &self.user_name),
            ("email", &self.user_email),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                parts.push(format!("{key}={}", percent::encode(value)));
            }
        }
        if !self.shallow.is_empty() {
            parts.push(format!("shallow={}", self.shallow.join(",")));
        }
        parts.join("&")
    }

    /// Parses and checks a query: texts well encoded, UTF-8 and without control characters,
    /// shallow commits as hex object names, at most [`SHALLOW_MAX`] of them.
    pub fn parse(query: &str) -> Result<GitParams, String> {
        let mut params = GitParams::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let text = || {
                percent::decode(value)
                    .filter(|text| !text.is_empty() && !text.chars().any(char::is_control))
                    .ok_or_else(|| format!("{key} is not a well-encoded line of UTF-8"))
            };
            match key {
                "branch" => params.branch = Some(text()?),
                "name" => params.user_name = Some(text()?),
                "email" => params.user_email = Some(text()?),
                "shallow" => params.shallow = parse_shallow(value)?,
                _ => {}
            }
        }
        Ok(params)
    }
}

fn parse_shallow(value: &str) -> Result<Vec<String>, String> {
    let commits: Vec<String> = value.split(',').map(str::to_string).collect();
    if commits.len() > SHALLOW_MAX {
        return Err(format!("more than {SHALLOW_MAX} shallow commits"));
    }
    match commits.iter().find(|c| !is_object_name(c)) {
        Some(bad) => Err(format!("shallow: {bad:?} is not an object name")),
        None => Ok(commits),
    }
}

/// 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
pub fn is_object_name(name: &str) -> bool {
    matches!(name.len(), 40 | 64) && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_full_lowercase_hex() {
        assert!(is_object_name(&"a".repeat(40)));
        assert!(is_object_name(&"0".repeat(64)));
        for bad in [
            "",
            "HEAD",
            "abc",
            &"A".repeat(40),
            &"g".repeat(40),
            &"a".repeat(41),
        ] {
            assert!(!is_object_name(bad), "{bad}");
        }
    }

    const A: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn params_round_trip() {
        let params = GitParams {
            branch: Some("feature/ünï+x".into()),
            shallow: vec![A.into(), "f".repeat(64)],
            user_name: Some("José O'Neil & co".into()),
            user_email: Some("jo@example.com".into()),
        };
        let query = params.to_query();
        assert!(query.starts_with("branch=feature%2F%C3%BCn%C3%AF%2Bx&name=Jos%C3%A9"));
        assert_eq!(GitParams::parse(&query), Ok(params));
        assert_eq!(GitParams::parse(""), Ok(GitParams::default()));
        assert_eq!(GitParams::default().to_query(), "");
    }

    #[test]
    fn bad_queries_are_refused() {
        for bad in [
            "branch=",
            "branch=%zz",
            "branch=a+b",
            "name=%0A",
            "email=%FF",
            "shallow=abc",
            "shallow=0123456789ABCDEF0123456789abcdef01234567",
        ] {
            assert!(GitParams::parse(bad).is_err(), "{bad}");
        }
        let many = vec![A; SHALLOW_MAX + 1].join(",");
        assert!(GitParams::parse(&format!("shallow={many}")).is_err());
        assert!(
            GitParams::parse("later=1").is_ok(),
            "unknown keys are ignored"
        );
    }

    #[test]
    fn done_golden() {
        let done = GitDone {
            head: Some(A.into()),
            shallow: true,
        };
        let wire = format!(r#"{{"head":"{A}","shallow":true}}"#);
        assert_eq!(serde_json::to_string(&done).unwrap(), wire);
    }
}
