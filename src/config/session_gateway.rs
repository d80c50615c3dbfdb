//! `CATTY_GATEWAY_URL` and `CATTY_GATEWAY_KEY`: the gateway a daemon's sessions reach their
//! providers through (`catty api`, hosted or local), read here so `api.rs` only holds it.

use super::{Env, UsageError};
use crate::llm_token::MIN_KEY_LEN;

/// The gateway every session's agent reaches its provider through, and the key its tokens are
/// made with: `CATTY_GATEWAY_URL` and `CATTY_GATEWAY_KEY`, both or neither. With it, a session's
/// machine gets the URL and a token of its own (`crate::llm_token`), never a provider key, and
/// a request that brings credentials is refused. The key is a secret: `Debug` hides it.
#[derive(Clone)]
pub struct SessionGateway {
    /// The gateway's URL as machines reach it, without a trailing `/`.
    pub url: String,
    /// The gateway's own `CATTY_GATEWAY_KEY`, at least [`MIN_KEY_LEN`] characters.
    pub gateway_key: Vec<u8>,
}

impl std::fmt::Debug for SessionGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionGateway")
            .field("url", &self.url)
            .field("gateway_key", &"<secret>")
            .finish()
    }
}

impl SessionGateway {
    pub(super) fn new(env: &Env) -> Result<Option<SessionGateway>, UsageError> {
        let (url, key) = match (
            env.non_empty("CATTY_GATEWAY_URL"),
            env.non_empty("CATTY_GATEWAY_KEY"),
        ) {
            (None, None) => return Ok(None),
            (Some(url), Some(key)) => (url, key),
            _ => {
                return Err(UsageError(
                    "CATTY_GATEWAY_URL and CATTY_GATEWAY_KEY go together: set both (sessions \
                     reach their providers through that gateway), or neither"
                        .into(),
                ));
            }
        };
        let url = url.trim_end_matches('/').to_string();
        let host = ["http://", "https://"]
            .iter()
            .find_map(|scheme| url.strip_prefix(scheme));
        if host.is_none_or(|h| h.is_empty() || h.contains(['?', '#', ' '])) {
            return Err(UsageError(format!(
                "CATTY_GATEWAY_URL {url:?} must be an http:// or https:// URL without a query \
                 (how session machines reach the gateway, e.g. http://catty-gateway.flycast)"
            )));
        }
        Ok(Some(SessionGateway {
            url,
            gateway_key: long_enough(key)?,
        }))
    }
}

/// `CATTY_GATEWAY_KEY`'s value, refused when shorter than [`MIN_KEY_LEN`]: the one check of
/// the key, for the API (which mints session tokens) and the gateway (which checks them).
pub(super) fn long_enough(key: String) -> Result<Vec<u8>, UsageError> {
    if key.len() < MIN_KEY_LEN {
        return Err(UsageError(format!(
            "CATTY_GATEWAY_KEY is {} characters; it needs at least {MIN_KEY_LEN}",
            key.len()
        )));
    }
    Ok(key.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(vars: &[(&str, &str)]) -> Result<Option<SessionGateway>, UsageError> {
        SessionGateway::new(&Env::from_pairs(vars))
    }

    #[test]
    fn the_gateway_comes_with_its_key_and_hides_it() {
        let key = "g".repeat(MIN_KEY_LEN);
        let url = ("CATTY_GATEWAY_URL", "http://catty-gateway.flycast/");
        assert!(gateway(&[]).unwrap().is_none());
        for alone in [url, ("CATTY_GATEWAY_KEY", key.as_str())] {
            let err = gateway(&[alone]).unwrap_err();
            assert!(err.0.contains("go together"), "{}", err.0);
        }
        let found = gateway(&[url, ("CATTY_GATEWAY_KEY", key.as_str())])
            .unwrap()
            .unwrap();
        assert_eq!(found.url, "http://catty-gateway.flycast");
        assert_eq!(found.gateway_key, key.as_bytes());
        assert!(!format!("{found:?}").contains(&key), "{found:?}");
        let short = "g".repeat(MIN_KEY_LEN - 1);
        let err = gateway(&[url, ("CATTY_GATEWAY_KEY", short.as_str())]).unwrap_err();
        assert!(err.0.contains("at least 32"), "{}", err.0);
        for bad in [
            "catty-gateway.flycast",
            "ftp://x",
            "http://",
            "http://x/?a=b",
        ] {
            let vars = [
                ("CATTY_GATEWAY_URL", bad),
                ("CATTY_GATEWAY_KEY", key.as_str()),
            ];
            assert!(gateway(&vars).is_err(), "{bad}");
        }
    }
}
