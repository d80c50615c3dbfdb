//! Request bodies spooled to a temporary file under a size limit: uploads are never held in
//! memory, and the read stops at the limit.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;

/// A body on disk, removed when dropped.
pub(super) struct Spooled {
    pub file: tempfile::NamedTempFile,
    pub bytes: u64,
}

/// Streams `body` to a temporary file named `catty-{name}-….{suffix}`. `Ok(None)` once it
/// passes `limit` bytes: the read stops there.
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
    while let Some(frame) = body.frame().await {
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
