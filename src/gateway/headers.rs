//! What crosses the gateway of a request's and an answer's head: the session token taken from
//! wherever the provider's clients send their key (and every such place emptied), hop-by-hop
//! headers dropped both ways, and the upstream's key set where the provider expects it.

use hyper::HeaderMap;
use hyper::header::{
    ACCEPT_ENCODING, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use super::usage::Provider;

const X_API_KEY: &str = "x-api-key";
const X_GOOG_API_KEY: &str = "x-goog-api-key";

/// The session token the request carries where `provider`'s clients put their key: Anthropic
/// `Authorization: Bearer` (Claude Code's `ANTHROPIC_AUTH_TOKEN`) or `x-api-key`; OpenAI
/// `Authorization: Bearer`; Gemini `x-goog-api-key`, `?key=` or `Authorization: Bearer`.
pub(super) fn session_token(
    provider: Provider,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Option<String> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::to_string);
    let bearer = || {
        header(AUTHORIZATION.as_str())?
            .strip_prefix("Bearer ")
            .map(str::to_string)
    };
    match provider {
        Provider::Anthropic => bearer().or_else(|| header(X_API_KEY)),
        Provider::OpenAi => bearer(),
        Provider::Gemini => header(X_GOOG_API_KEY)
            .or_else(|| query_key(query?))
            .or_else(bearer),
    }
}

fn query_key(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("key="))
        .map(|key| crate::protocol::percent::decode(key).unwrap_or_else(|| key.to_string()))
}

/// `query` without its `key=` parameters (Gemini's key in the URL); the rest byte for byte.
pub(super) fn without_key(query: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| *pair != "key" && !pair.starts_with("key="))
        .collect();
    kept.join("&")
}

/// Headers that concern one connection only (RFC 9110 §7.6.1), never forwarded.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names = vec![CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE];
    names.extend([PROXY_AUTHORIZATION, PROXY_AUTHENTICATE]);
    names.extend(["keep-alive", "proxy-connection"].map(HeaderName::from_static));
    // And whatever `Connection` names.
    for value in headers.get_all(CONNECTION) {
        let listed = value.to_str().unwrap_or("").split(',');
        names.extend(listed.filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()));
    }
    names
}

/// The request's headers as the upstream gets them: provider headers (`anthropic-version`,
/// `anthropic-beta`, …) kept; hop-by-hop, `host` and `content-length` (the client sets
/// them for its own connection) dropped; every place a key can travel emptied; and no
/// `accept-encoding`, so the answer comes uncompressed and the meter can read it.
pub(super) fn for_upstream(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in hop_by_hop(headers) {
        out.remove(name);
    }
    for name in [HOST, CONTENT_LENGTH, ACCEPT_ENCODING, AUTHORIZATION] {
        out.remove(name);
    }
    out.remove(X_API_KEY);
    out.remove(X_GOOG_API_KEY);
    out
}

/// Sets `key` where `provider` expects it, marked sensitive (never shown by hyper's `Debug`).
pub(super) fn set_key(provider: Provider, headers: &mut HeaderMap, key: &str) {
    let (name, value) = match provider {
        Provider::Anthropic => (HeaderName::from_static(X_API_KEY), key.to_string()),
        Provider::OpenAi => (AUTHORIZATION, format!("Bearer {key}")),
        Provider::Gemini => (HeaderName::from_static(X_GOOG_API_KEY), key.to_string()),
    };
    // Checked by the configuration: a key is a valid header value.
    if let Ok(mut value) = HeaderValue::from_str(&value) {
        value.set_sensitive(true);
        headers.insert(name, value);
    }
}

/// The answer's headers as the client gets them: all but the hop-by-hop ones.
pub(super) fn for_client(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in hop_by_hop(headers) {
        out.remove(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn each_provider_takes_the_token_where_its_clients_send_it() {
        let bearer = headers(&[("authorization", "Bearer cst_a")]);
        let x_api = headers(&[("x-api-key", "cst_b")]);
        let goog = headers(&[("x-goog-api-key", "cst_c")]);
        let token = |p, h: &HeaderMap, q| session_token(p, h, q);
        assert_eq!(token(Provider::Anthropic, &bearer, None).unwrap(), "cst_a");
        assert_eq!(token(Provider::Anthropic, &x_api, None).unwrap(), "cst_b");
        assert_eq!(token(Provider::OpenAi, &bearer, None).unwrap(), "cst_a");
        assert_eq!(token(Provider::OpenAi, &x_api, None), None);
        assert_eq!(token(Provider::Gemini, &goog, None).unwrap(), "cst_c");
        let none = HeaderMap::new();
        let query = Some("alt=sse&key=cst_d");
        assert_eq!(token(Provider::Gemini, &none, query).unwrap(), "cst_d");
        assert_eq!(token(Provider::Gemini, &bearer, None).unwrap(), "cst_a");
        assert_eq!(token(Provider::Anthropic, &none, query), None);
    }

    #[test]
    fn the_key_parameter_goes_and_the_rest_stays() {
        assert_eq!(without_key("alt=sse&key=cst_d"), "alt=sse");
        assert_eq!(without_key("key=x&beta=true&keys=1"), "beta=true&keys=1");
        assert_eq!(without_key("beta=true"), "beta=true");
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_never_reach_the_upstream() {
        let given = headers(&[
            ("authorization", "Bearer cst_a"),
            ("x-api-key", "cst_b"),
            ("x-goog-api-key", "cst_c"),
            ("host", "gateway"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("accept-encoding", "gzip"),
            ("content-length", "10"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "a,b"),
        ]);
        let mut out = for_upstream(&given);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["anthropic-beta", "anthropic-version"]);
        set_key(Provider::Anthropic, &mut out, "sk-ant-1");
        assert_eq!(out["x-api-key"], "sk-ant-1");
        assert!(out["x-api-key"].is_sensitive());
        set_key(Provider::OpenAi, &mut out, "sk-2");
        assert_eq!(out["authorization"], "Bearer sk-2");
        let back = for_client(&headers(&[
            ("transfer-encoding", "chunked"),
            ("request-id", "r"),
        ]));
        assert_eq!(back.len(), 1);
    }
}
