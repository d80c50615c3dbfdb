//! A runtime's base URL, parsed once ([`RuntimeUrl`]): the one place that splits
//! `http(s)://` or `ws(s)://host[:port][/base]` and builds the runtime's endpoints from it
//! (`/upload`, `/git`, `/connect?…`, `/healthz`).

use std::fmt;
use std::net::SocketAddr;

use crate::protocol::{CONNECT_PATH, ConnectParams, GIT_PATH, HEALTHZ_PATH, UPLOAD_PATH};

/// Where a runtime answers: TLS or not, `host[:port]`, and a base path (empty, or starting
/// with `/` and not ending with one). The scheme is only a choice of TLS: `ws` and `http` are
/// one URL, `wss` and `https` another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeUrl {
    tls: bool,
    authority: String,
    base: String,
}

/// A URL that is not a runtime base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUrl(pub String);

impl fmt::Display for BadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad runtime URL {:?} (http(s):// or ws(s)://HOST[:PORT][/PATH] expected)",
            self.0
        )
    }
}

impl std::error::Error for BadUrl {}

impl RuntimeUrl {
    /// Parses `scheme://host[:port][/base]` with a lowercase `http`, `https`, `ws` or `wss`
    /// scheme, a host, and no query, fragment or user info; trailing slashes are dropped. The
    /// port is not checked here: connecting reports a bad one.
    pub fn parse(url: &str) -> Result<RuntimeUrl, BadUrl> {
        let bad = || BadUrl(url.to_string());
        let (scheme, rest) = url
            .trim_end_matches('/')
            .split_once("://")
            .ok_or_else(bad)?;
        let tls = scheme_tls(scheme).ok_or_else(bad)?;
        if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@']) {
            return Err(bad());
        }
        let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        Ok(RuntimeUrl {
            tls,
            authority: authority.to_string(),
            base: base.to_string(),
        })
    }

    /// `url` in its normal form, for configuration: `ws` becomes `http`, `wss` `https`,
    /// trailing slashes go (`wss://e.example/base/` → `https://e.example/base`).
    pub fn normalize(url: &str) -> Result<String, BadUrl> {
        RuntimeUrl::parse(url).map(|url| url.to_string())
    }

    /// Whether the runtime is reached over TLS (`https`, `wss`).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// `host[:port]`, as given.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target of `POST /upload`.
    pub fn upload_path(&self) -> String {
        format!("{}{UPLOAD_PATH}", self.base)
    }

    /// The full `/upload` URL, for messages.
    pub fn upload_url(&self) -> String {
        format!("{self}{UPLOAD_PATH}")
    }

    /// The request target of `POST /git` with `query` (a [`crate::protocol::git::GitParams`]).
    pub fn git_path(&self, query: &str) -> String {
        format!("{}{GIT_PATH}?{query}", self.base)
    }

    /// The full `/git` URL, for messages.
    pub fn git_url(&self) -> String {
        format!("{self}{GIT_PATH}")
    }

    /// The request target of the `GET /connect` upgrade with `params` as its query.
    pub fn connect_path(&self, params: &ConnectParams) -> String {
        format!("{}{CONNECT_PATH}?{}", self.base, params.to_query())
    }

    /// The request target of `endpoint` (a path with its query, like `/sync/file?path=x`).
    pub fn target(&self, endpoint: &str) -> String {
        format!("{}{endpoint}", self.base)
    }

    /// The full `/healthz` URL (`http://` or `https://`), for an HTTP client.
    pub fn healthz_url(&self) -> String {
        format!("{self}{HEALTHZ_PATH}")
    }
}

/// The plain-HTTP URL of a runtime listening on `addr`.
impl From<SocketAddr> for RuntimeUrl {
    fn from(addr: SocketAddr) -> RuntimeUrl {
        RuntimeUrl {
            tls: false,
            authority: addr.to_string(),
            base: String::new(),
        }
    }
}

/// `http://` or `https://`, the authority and the base path: the normal form.
impl fmt::Display for RuntimeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.base)
    }
}

/// Splits a full WebSocket or HTTP URL (`ws://host:port/path?query`) into TLS or not, a
/// non-empty authority and the request target (empty when the URL has no path).
pub(crate) fn split_url(url: &str) -> Option<(bool, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let tls = scheme_tls(scheme)?;
    let (authority, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (!authority.is_empty()).then_some((tls, authority, target))
}

/// Whether a scheme asks for TLS (`https`, `wss`) or not (`http`, `ws`); `None` for others.
fn scheme_tls(scheme: &str) -> Option<bool> {
    match scheme {
        "http" | "ws" => Some(false),
        "https" | "wss" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set `CATTY_EXEC_URL` accepts, with its normal form.
    #[test]
    fn base_urls_accepted_and_normalised() {
        let good = [
            ("https://exec.example.com/", "https://exec.example.com"),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("wss://e.example/base", "https://e.example/base"),
            ("ws://127.0.0.1:1", "http://127.0.0.1:1"),
            ("http://h:1/base//", "http://h:1/base"),
        ];
        for (url, normal) in good {
            assert_eq!(RuntimeUrl::normalize(url).as_deref(), Ok(normal), "{url}");
        }
    }

    #[test]
    fn non_base_urls_refused() {
        let bad = [
            "exec.example.com",
            "https://",
            "https:///x",
            "https://h?x=1",
            "https://h/x#top",
            "https://user@h",
            "ftp://h",
            "HTTPS://h",
            "",
        ];
        for url in bad {
            assert_eq!(
                RuntimeUrl::normalize(url),
                Err(BadUrl(url.to_string())),
                "{url}"
            );
        }
    }

    #[test]
    fn endpoints_follow_the_base_path() {
        let url = RuntimeUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((url.authority(), url.tls()), ("127.0.0.1:8080", false));
        assert_eq!(url.upload_path(), "/upload");
        let url = RuntimeUrl::parse("http://h:1/base/").unwrap();
        assert_eq!(url.upload_path(), "/base/upload");
        assert_eq!(url.upload_url(), "http://h:1/base/upload");
        assert_eq!(url.healthz_url(), "http://h:1/base/healthz");
        assert_eq!(url.target("/sync/file?path=x"), "/base/sync/file?path=x");
        let url = RuntimeUrl::parse("wss://catty-exec.fly.dev").unwrap();
        assert_eq!((url.authority(), url.tls()), ("catty-exec.fly.dev", true));
        assert_eq!(url.upload_url(), "https://catty-exec.fly.dev/upload");
    }

    #[test]
    fn connect_carries_the_query() {
        let url = RuntimeUrl::parse("https://h/base").unwrap();
        let params = ConnectParams {
            since: Some(7),
            watch: true,
            ..ConnectParams::default()
        };
        assert_eq!(
            url.connect_path(&params),
            "/base/connect?since=7&mode=watch"
        );
        let url = RuntimeUrl::from("[::1]:9".parse::<SocketAddr>().unwrap());
        assert_eq!(url.to_string(), "http://[::1]:9");
        assert_eq!(url.connect_path(&ConnectParams::default()), "/connect?");
    }

    #[test]
    fn full_urls_split() {
        let split = split_url("wss://h:1/connect?since=0");
        assert_eq!(split, Some((true, "h:1", "/connect?since=0")));
        assert_eq!(split_url("http://h"), Some((false, "h", "")));
        assert_eq!(split_url("ws:///x"), None);
        assert_eq!(split_url("ftp://h"), None);
        assert_eq!(split_url("h:80"), None);
    }
}
