//! The pace of the login broker's polls (RFC 8628 §3.5), shared by every instance: a device
//! code is recorded when the API hands it out, and each poll takes its turn in one
//! transaction, so two instances asked at once relay at most one poll to the provider.

use std::time::Duration;

use anyhow::Context;

use super::Db;
use crate::db::digest;
use crate::protocol::api::SLOW_DOWN_STEP;

/// How long after its expiry a code's row is kept: a late poll still hears `expired_token`.
const KEEP_EXPIRED_SECS: f64 = 3600.0;

/// What a poll may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::api) enum Turn {
    /// Ask the provider now.
    Poll,
    /// Too soon: answer `slow_down` (the interval grew by [`SLOW_DOWN_STEP`]).
    SlowDown,
    /// The code expired.
    Expired,
    /// A code this API never gave out (or long forgotten).
    Unknown,
}

impl Db {
    /// Records a code the provider gave out, and forgets codes long expired.
    pub(in crate::api) async fn device_issued(
        &self,
        device_code: &str,
        interval: Duration,
        expires_in: Duration,
    ) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM device_polls WHERE expires_at < now() - make_interval(secs => $1)",
                &[&KEEP_EXPIRED_SECS],
            )
            .await
            .context("cannot forget old device codes")?;
        client
            .execute(
                "INSERT INTO device_polls (device_code_sha256, interval_sec, next_poll_at, expires_at)
                 VALUES ($1, $2, now(), now() + make_interval(secs => $3))
                 ON CONFLICT (device_code_sha256) DO NOTHING",
                &[
                    &digest(device_code),
                    &secs(interval),
                    &(expires_in.as_secs() as f64),
                ],
            )
            .await
            .context("cannot record the device code")?;
        Ok(())
    }

    /// This poll's turn: a poll of the provider, and the next no sooner than an interval from
    /// now; or, too soon, `slow_down`, and the interval grows from now on.
    pub(in crate::api) async fn device_turn(&self, device_code: &str) -> anyhow::Result<Turn> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.context("cannot start a poll")?;
        let key = digest(device_code);
        let row = tx
            .query_opt(
                "SELECT expires_at <= now(), next_poll_at > now(), interval_sec
                 FROM device_polls WHERE device_code_sha256 = $1 FOR UPDATE",
                &[&key],
            )
            .await
            .context("cannot look the device code up")?;
        let Some(row) = row else {
            return Ok(Turn::Unknown);
        };
        let (expired, too_soon, interval): (bool, bool, i32) = (row.get(0), row.get(1), row.get(2));
        if expired {
            return Ok(Turn::Expired);
        }
        let interval = match too_soon {
            true => interval + secs(SLOW_DOWN_STEP),
            false => interval,
        };
        tx.execute(
            "UPDATE device_polls
             SET interval_sec = $2, next_poll_at = now() + make_interval(secs => $3)
             WHERE device_code_sha256 = $1",
            &[&key, &interval, &f64::from(interval)],
        )
        .await
        .context("cannot record the poll")?;
        tx.commit().await.context("cannot record the poll")?;
        Ok(match too_soon {
            true => Turn::SlowDown,
            false => Turn::Poll,
        })
    }

    /// Forgets a code that is done with (approved, refused or expired at the provider).
    pub(in crate::api) async fn device_done(&self, device_code: &str) -> anyhow::Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM device_polls WHERE device_code_sha256 = $1",
                &[&digest(device_code)],
            )
            .await
            .context("cannot forget the device code")?;
        Ok(())
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}
