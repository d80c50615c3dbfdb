//! The hosted API's login (`/v1/auth/…`): RFC 8628's device authorization grant, brokered by
//! the API against its OpenID Connect issuer, and the token catty mints in exchange.
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `POST /v1/auth/device` (public) | `{}` | [`DeviceAuthorization`] |
//! | `POST /v1/auth/token` (public) | [`TokenRequest`] | [`LoggedIn`], or `400` [`DeviceError`] |
//! | `POST /v1/auth/logout` | [`Logout`] | [`LoggedOut`] |
//! | `GET /v1/auth/whoami` | | [`WhoAmI`] |
//!
//! The API relays at most one poll of the identity provider per `interval` per device code,
//! whichever instance is asked, and answers [`SLOW_DOWN`] itself to a faster client (whose
//! `interval` then grows by [`SLOW_DOWN_STEP`], RFC 8628 §3.5, on the API's side too). The
//! provider's [`AUTHORIZATION_PENDING`], [`ACCESS_DENIED`] and [`EXPIRED_TOKEN`] pass
//! through as RFC JSON (`400 {"error":…}`), not as catty's error shape: a client of the RFC
//! reads them as they are. On success the API verifies the provider's ID token, records the
//! user, and answers a token of its own (`cat_…`); the provider's tokens are discarded.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const AUTH_DEVICE_PATH: &str = "/v1/auth/device";
pub const AUTH_TOKEN_PATH: &str = "/v1/auth/token";
pub const AUTH_LOGOUT_PATH: &str = "/v1/auth/logout";
pub const AUTH_WHOAMI_PATH: &str = "/v1/auth/whoami";

/// Keep polling at the same interval.
pub const AUTHORIZATION_PENDING: &str = "authorization_pending";
/// Polled too soon: keep polling, `interval` longer by [`SLOW_DOWN_STEP`] from now on.
pub const SLOW_DOWN: &str = "slow_down";
/// The user refused: stop.
pub const ACCESS_DENIED: &str = "access_denied";
/// The code expired before the user approved it: stop (`catty login` again).
pub const EXPIRED_TOKEN: &str = "expired_token";

/// What a `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The interval when the provider names none (RFC 8628 §3.2).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// `200` answer of `POST /v1/auth/device`: RFC 8628 §3.2's fields, as the provider gave them
/// (`interval` filled in when it gave none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes live.
    pub expires_in: u64,
    /// Seconds between polls at least.
    pub interval: u64,
}

/// `POST /v1/auth/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub device_code: String,
    /// What the new token is called (the computer's host name), at most [`TOKEN_NAME_MAX`].
    pub name: String,
}

/// The longest [`TokenRequest::name`] kept; longer ones are cut.
pub const TOKEN_NAME_MAX: usize = 100;

/// `200` answer of `POST /v1/auth/token`: catty's token, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedIn {
    pub token: String,
    pub email: Option<String>,
    /// Who the identity provider says this is (the ID token's `sub`).
    pub subject: String,
}

impl std::fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedIn")
            .field("token", &"<secret>")
            .field("email", &self.email)
            .field("subject", &self.subject)
            .finish()
    }
}

/// `400` answer of `POST /v1/auth/token` while there is no token (RFC 6749 §5.2's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceError {
    /// [`AUTHORIZATION_PENDING`], [`SLOW_DOWN`], [`ACCESS_DENIED`], [`EXPIRED_TOKEN`], or
    /// another of RFC 6749's (`invalid_grant`: a code the API never gave out).
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// `POST /v1/auth/logout`: this token, or with `all` every token of its user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logout {
    #[serde(default)]
    pub all: bool,
}

/// `200` answer of `POST /v1/auth/logout`: how many tokens it revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOut {
    pub revoked: u64,
}

/// `200` answer of `GET /v1/auth/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub email: Option<String>,
    pub subject: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_error_shape() {
        let pending = DeviceError {
            error: AUTHORIZATION_PENDING.into(),
            error_description: None,
        };
        let wire = serde_json::to_string(&pending).unwrap();
        assert_eq!(wire, r#"{"error":"authorization_pending"}"#);
    }

    #[test]
    fn the_token_is_not_shown_by_debug() {
        let done = LoggedIn {
            token: "cat_s3cret".into(),
            email: None,
            subject: "alice".into(),
        };
        assert!(!format!("{done:?}").contains("s3cret"));
    }
}
