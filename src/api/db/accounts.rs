//! Users and the tokens catty mints for them. A token is `cat_` and 64 hex digits (32 random
//! bytes), shown once to the client that logged in and kept here as its SHA-256 only. It
//! expires [`TOKEN_LIFETIME`] after its last use, and a revoked one is refused by every
//! instance at once: each request looks it up, nothing is cached.

use std::time::Duration;

use anyhow::Context;

use super::Db;
use crate::db::digest;
use crate::random;

/// A token unused this long stops working.
pub(in crate::api) const TOKEN_LIFETIME: Duration = Duration::from_secs(90 * 86400);
/// The expiry slides at most once in this long, so a busy client does not write on every
/// request.
const SLIDE_EVERY: Duration = Duration::from_secs(3600);
/// What every token starts with: recognisable in a leak report, and never a Fly or provider
/// key's shape.
pub(in crate::api) const TOKEN_PREFIX: &str = "cat_";

/// A user, as a request's token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::api) struct User {
    pub id: String,
    pub email: Option<String>,
    pub subject: String,
}

impl Db {
    /// The user `issuer` knows as `subject`, made on first sight. One statement, so two
    /// first logins at once make one row.
    pub(in crate::api) async fn upsert_user(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
    ) -> anyhow::Result<User> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO users (issuer, subject, email) VALUES ($1, $2, $3)
                 ON CONFLICT (issuer, subject)
                 DO UPDATE SET email = COALESCE(EXCLUDED.email, users.email)
                 RETURNING id, email",
                &[&issuer, &subject, &email],
            )
            .await
            .context("cannot record the user")?;
        Ok(User {
            id: row.get(0),
            email: row.get(1),
            subject: subject.to_string(),
        })
    }

    /// A new token for `user`, named after the computer it is for.
    pub(in crate::api) async fn mint_token(
        &self,
        user: &User,
        name: &str,
    ) -> anyhow::Result<String> {
        let token = format!("{TOKEN_PREFIX}{}", random::hex(32));
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO cli_tokens (user_id, token_sha256, name, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
                &[&user.id, &digest(&token), &name, &lifetime_secs()],
            )
            .await
            .context("cannot record the token")?;
        Ok(token)
    }

    /// The user whose live token this is (not revoked, not expired), sliding its expiry.
    pub(in crate::api) async fn user_for_token(&self, token: &str) -> anyhow::Result<Option<User>> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT t.id, u.id, u.email, u.subject,
                        t.last_used_at < now() - make_interval(secs => $2)
                 FROM cli_tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.token_sha256 = $1 AND t.revoked_at IS NULL AND t.expires_at > now()",
                &[&digest(token), &(SLIDE_EVERY.as_secs() as f64)],
            )
            .await
            .context("cannot look the token up")?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (token_id, stale): (String, bool) = (row.get(0), row.get(4));
        if stale {
            client
                .execute(
                    "UPDATE cli_tokens
                     SET last_used_at = now(), expires_at = now() + make_interval(secs => $2)
                     WHERE id = $1",
                    &[&token_id, &lifetime_secs()],
                )
                .await
                .context("cannot slide the token's expiry")?;
        }
        Ok(Some(User {
            id: row.get(1),
            email: row.get(2),
            subject: row.get(3),
        }))
    }

    /// The user `id`, if there is one (an upgrade link names its user by id).
    pub(in crate::api) async fn user_by_id(&self, id: &str) -> anyhow::Result<Option<User>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT id, email, subject FROM users WHERE id = $1", &[&id])
            .await
            .context("cannot look the user up")?;
        Ok(row.map(|row| User {
            id: row.get(0),
            email: row.get(1),
            subject: row.get(2),
        }))
    }

    /// Revokes this token (`catty logout`); false when it was not live.
    pub(in crate::api) async fn revoke_token(&self, token: &str) -> anyhow::Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE cli_tokens SET revoked_at = now()
                 WHERE token_sha256 = $1 AND revoked_at IS NULL",
                &[&digest(token)],
            )
            .await
            .context("cannot revoke the token")?;
        Ok(n > 0)
    }

    /// Revokes every token of `user` (`catty logout --all`); how many were live.
    pub(in crate::api) async fn revoke_all_tokens(&self, user: &User) -> anyhow::Result<u64> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE cli_tokens SET revoked_at = now()
                 WHERE user_id = $1 AND revoked_at IS NULL",
                &[&user.id],
            )
            .await
            .context("cannot revoke the tokens")
    }
}

fn lifetime_secs() -> f64 {
    TOKEN_LIFETIME.as_secs() as f64
}
