//! Request bodies spooled to a temporary file under a size limit: uploads are never held in
//! memory, and the read stops at the limit.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

use crate::protocol::BODY_STALL_TIMEOUT;

/// A body on disk, removed when dropped.
pub(super) struct Spooled {
    pub file: tempfile::NamedTempFile,
    pub bytes: u64,
}

/// Streams `body` to a temporary file named `catty-{name}-….{suffix}`. `Ok(None)` once it
/// passes `limit` bytes: the read stops there. A body that brings nothing for
/// [`BODY_STALL_TIMEOUT`] is an error of kind `TimedOut`.
pub(super) async fn spool(
    mut body: Incoming,
    limit: u64,
    name: &str,
    suffix: &str,
) -> std::io::Result<Option<Spooled>> {
    let spool = tempfile::Builder::new()
        .prefix(&format!("catty-{name}-"))
        .suffix(suffix)
        .tempfile()?;
    let mut file = tokio::fs::File::from_std(spool.reopen()?);
    let mut total = 0u64;
    loop {
        let Ok(next) = tokio::time::timeout(BODY_STALL_TIMEOUT, body.frame()).await else {
            let secs = BODY_STALL_TIMEOUT.as_secs();
            let why = format!("the body brought nothing for {secs} s");
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, why));
        };
        let Some(frame) = next else { break };
        let frame = frame.map_err(std::io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len() as u64;
        if total > limit {
            return Ok(None);
        }
        file.write_all(&data).await?;
    }
    file.flush().await?;
    Ok(Some(Spooled {
        file: spool,
        bytes: total,
    }))
}
