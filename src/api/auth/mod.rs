//! Login to the hosted API: RFC 8628 brokered against the configured OpenID Connect issuer
//! (`idp.rs`), paced across instances in the database (`db/device_polls.rs`), the ID token
//! checked once (`id_token.rs`), then a token of catty's own (`db/accounts.rs`); the
//! provider's tokens are dropped. Logout revokes, whoami reads. The wire: protocol::api's
//! `auth` part.

mod id_token;
mod idp;

use hyper::{Response, StatusCode};

use super::db::Db;
use super::db::accounts::User;
use super::db::device_polls::Turn;
use super::error::ApiError;
use crate::config::OidcConfig;
use crate::net::http::{self, Body};
use crate::protocol::api::{
    AUTHORIZATION_PENDING, DeviceError, EXPIRED_TOKEN, LoggedIn, LoggedOut, Logout, SLOW_DOWN,
    TOKEN_NAME_MAX, TokenRequest, WhoAmI,
};
use id_token::Refused;
use idp::{Idp, Poll};

/// The login broker of one issuer.
pub(super) struct Login {
    idp: Idp,
}

impl Login {
    pub(super) fn new(config: OidcConfig) -> Login {
        Login {
            idp: Idp::new(config),
        }
    }
}

/// `POST /v1/auth/device`.
pub(super) async fn device(db: &Db, login: Option<&Login>) -> Result<Response<Body>, ApiError> {
    let login = login.ok_or_else(not_configured)?;
    let auth = login.idp.device_authorization().await.map_err(idp_failed)?;
    let interval = std::time::Duration::from_secs(auth.interval);
    let expires_in = std::time::Duration::from_secs(auth.expires_in);
    (db.device_issued(&auth.device_code, interval, expires_in))
        .await
        .map_err(ApiError::unavailable)?;
    Ok(http::json(StatusCode::OK, &auth))
}

/// `POST /v1/auth/token`: this poll's turn, then at most one poll of the provider.
pub(super) async fn token(
    db: &Db,
    login: Option<&Login>,
    req: TokenRequest,
) -> Result<Response<Body>, ApiError> {
    let login = login.ok_or_else(not_configured)?;
    let code = req.device_code.as_str();
    match db.device_turn(code).await.map_err(ApiError::unavailable)? {
        Turn::Unknown => return Ok(rfc_error("invalid_grant", "this device code is unknown")),
        Turn::Expired => return Ok(rfc_error(EXPIRED_TOKEN, "the code expired")),
        Turn::SlowDown => return Ok(rfc_error(SLOW_DOWN, "polled too soon")),
        Turn::Poll => {}
    }
    let id_token = match login.idp.poll(code).await.map_err(idp_failed)? {
        Poll::Approved { id_token } => id_token,
        Poll::NotYet(e) => {
            if e.error != AUTHORIZATION_PENDING && e.error != SLOW_DOWN {
                // Refused, expired or consumed: the code is done with.
                let _ = db.device_done(code).await;
            }
            return Ok(http::json(StatusCode::BAD_REQUEST, &e));
        }
    };
    let _ = db.device_done(code).await;
    let who = identity(&login.idp, &id_token).await?;
    let issuer = login.idp.config.issuer.as_str();
    let user = (db.upsert_user(issuer, &who.subject, who.email.as_deref()))
        .await
        .map_err(ApiError::unavailable)?;
    let name: String = req.name.chars().take(TOKEN_NAME_MAX).collect();
    let token = db
        .mint_token(&user, &name)
        .await
        .map_err(ApiError::unavailable)?;
    tracing::info!(user = %user.id, "logged in");
    let done = LoggedIn {
        token,
        email: user.email,
        subject: user.subject,
    };
    let mut answer = http::json(StatusCode::OK, &done);
    // A token is never cached on its way (RFC 6749 §5.1).
    let no_store = hyper::header::HeaderValue::from_static("no-store");
    (answer.headers_mut()).insert(hyper::header::CACHE_CONTROL, no_store);
    Ok(answer)
}

/// The ID token's identity, its keys fetched again once if it names a new one.
async fn identity(idp: &Idp, token: &str) -> Result<id_token::Identity, ApiError> {
    let (issuer, client) = (&idp.config.issuer, &idp.config.client_id);
    let now = crate::clock::unix_now();
    let mut stale = false;
    loop {
        let keys = idp.keys(stale).await.map_err(idp_failed)?;
        match id_token::verify(token, &keys, issuer, client, now) {
            Ok(who) => return Ok(who),
            Err(Refused::UnknownKey) if !stale => stale = true,
            Err(Refused::UnknownKey) => return Err(refused("signed by a key the issuer lacks")),
            Err(Refused::Bad(why)) => return Err(refused(&why)),
        }
    }
}

/// `POST /v1/auth/logout`: this token, or every token of its user.
pub(super) async fn logout(
    db: &Db,
    user: &User,
    token: &str,
    req: Logout,
) -> Result<Response<Body>, ApiError> {
    let revoked = match req.all {
        true => db.revoke_all_tokens(user).await,
        false => db.revoke_token(token).await.map(u64::from),
    };
    let revoked = revoked.map_err(ApiError::unavailable)?;
    Ok(http::json(StatusCode::OK, &LoggedOut { revoked }))
}

/// `GET /v1/auth/whoami`.
pub(super) fn whoami(user: &User) -> Response<Body> {
    let who = WhoAmI {
        email: user.email.clone(),
        subject: user.subject.clone(),
    };
    http::json(StatusCode::OK, &who)
}

/// RFC 6749 §5.2's error answer, as RFC 8628 clients read it.
fn rfc_error(error: &str, description: &str) -> Response<Body> {
    let body = DeviceError {
        error: error.to_string(),
        error_description: Some(description.to_string()),
    };
    http::json(StatusCode::BAD_REQUEST, &body)
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "login_not_configured",
        "this API has no identity provider (CATTY_OIDC_ISSUER and CATTY_OIDC_CLIENT_ID)",
    )
}

fn idp_failed(e: anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "idp_failed",
        format!("the identity provider failed: {e:#}"),
    )
}

fn refused(why: &str) -> ApiError {
    tracing::warn!("an ID token was refused: {why}");
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "idp_failed",
        format!("the identity provider's ID token was refused: {why}"),
    )
}
