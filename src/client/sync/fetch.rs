//! The files a round needs from the runtime: fetched a few at a time, each streamed into a
//! temp file beside its target on a blocking thread, checked against the manifest's size and
//! SHA-256, and renamed in only if the local file is still what the round decided on.

use std::sync::Arc;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::sync::mpsc;

use super::decision::Local;
use super::disk::Root;
use super::remote::{Remote, RemoteError, Reply};
use crate::protocol::sync::{SHA256_HEADER, SYNC_FILE_PATH, file_query};

/// Files fetched at once: enough to hide the round trips, few enough to stay polite.
pub(super) const PARALLEL_FETCHES: usize = 4;
/// Chunks queued between the connection and the writer thread.
const QUEUED_CHUNKS: usize = 8;

/// A file the round wants, as the manifest lists it.
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub path: String,
    pub executable: bool,
    pub size: u64,
    pub sha256: String,
    pub dest: Dest,
}

#[derive(Debug, Clone)]
pub(super) enum Dest {
    /// Into the project, replacing `before` (what the round saw there).
    Project { before: Local },
    /// Into the conflicts directory, at `at`; `why` says how the local side differs.
    Conflict { why: String, at: std::path::PathBuf },
    /// Into a scratch directory (`catty diff`).
    Scratch,
}

/// How a job ended.
#[derive(Debug)]
pub(super) enum Fetched {
    Written,
    /// Something moved meanwhile (the session's file, the local one, the link): the next
    /// round settles it.
    Retry(String),
    /// Refused or failed for good this round: one line for the user.
    Failed(String),
}

enum Chunk {
    Data(Bytes),
    End,
}

/// Fetches `job` and writes it under `root`.
pub(super) async fn fetch(remote: &Remote, root: Arc<Root>, job: Job) -> Fetched {
    let endpoint = format!("{SYNC_FILE_PATH}?{}", file_query(&job.path));
    let mut reply = match remote
        .get(&endpoint, std::time::Duration::from_secs(30))
        .await
    {
        Ok(reply) => reply,
        // Not a file of the manifest any more: the manifest is asked for again.
        Err(RemoteError::Status(StatusCode::NOT_FOUND, _)) => {
            return Fetched::Retry("gone from the session meanwhile".into());
        }
        Err(e @ RemoteError::Unreachable(_)) => return Fetched::Retry(e.to_string()),
        Err(e) => return Fetched::Failed(format!("cannot fetch {}: {e}", shown(&job.path))),
    };
    if reply
        .header(SHA256_HEADER)
        .is_some_and(|sha| sha != job.sha256)
    {
        return Fetched::Retry("changed in the session meanwhile".into());
    }
    let (tx, rx) = mpsc::channel(QUEUED_CHUNKS);
    let writer = {
        let job = job.clone();
        tokio::task::spawn_blocking(move || write(&root, &job, rx))
    };
    let streamed = stream(&mut reply, &tx, job.size).await;
    drop(tx);
    let written = writer
        .await
        .unwrap_or_else(|e| Err(Fetched::Failed(e.to_string())));
    match (streamed, written) {
        (_, Ok(())) => Fetched::Written,
        (Err(e), _) => Fetched::Retry(e.to_string()),
        (Ok(()), Err(fetched)) => fetched,
    }
}

/// Passes the body on to the writer, stopping past `size` bytes (the writer refuses them).
async fn stream(
    reply: &mut Reply<'_>,
    tx: &mpsc::Sender<Chunk>,
    size: u64,
) -> Result<(), RemoteError> {
    let mut sent = 0u64;
    while let Some(bytes) = reply.chunk().await? {
        sent += bytes.len() as u64;
        let over = sent > size;
        if tx.send(Chunk::Data(bytes)).await.is_err() || over {
            return Ok(());
        }
    }
    let _ = tx.send(Chunk::End).await;
    Ok(())
}

/// Writes what arrives on `rx` into a temp file beside the job's target and renames it in
/// once the bytes match the manifest. Dropped halfway, the temp file is removed.
fn write(root: &Root, job: &Job, mut rx: mpsc::Receiver<Chunk>) -> Result<(), Fetched> {
    let path = shown(&job.path);
    let cannot = |e: std::io::Error| Fetched::Failed(format!("cannot write {path}: {e}"));
    let mut temp = root.temp_file(&job.path).map_err(cannot)?;
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut size = 0u64;
    loop {
        match rx.blocking_recv() {
            Some(Chunk::Data(bytes)) => {
                size += bytes.len() as u64;
                if size > job.size {
                    return Err(mismatch(&path, "more bytes than listed"));
                }
                context.update(&bytes);
                temp.write(&bytes).map_err(cannot)?;
            }
            Some(Chunk::End) => break,
            None => return Err(Fetched::Retry("the transfer broke off".into())),
        }
    }
    if size != job.size {
        return Err(mismatch(&path, "fewer bytes than listed"));
    }
    if crate::hex::encode(context.finish().as_ref()) != job.sha256 {
        return Err(mismatch(
            &path,
            "bytes whose sha256 differs from the listed one",
        ));
    }
    if let Dest::Project { before } = &job.dest {
        // The user may have saved the file while it was fetched: never overwrite that.
        let now = root.local(&job.path).map_err(cannot)?;
        if &now != before {
            return Err(Fetched::Retry("changed here meanwhile".into()));
        }
    }
    temp.commit(job.executable).map_err(cannot)
}

fn mismatch(path: &str, what: &str) -> Fetched {
    Fetched::Failed(format!(
        "refused {path} from the session: it sent {what} (not written; tried again at the next change)"
    ))
}

fn shown(path: &str) -> String {
    super::check::shown(path)
}
