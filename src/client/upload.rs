//! `catty new`'s workspace upload: list the directory as git would ([`scan`]), zip it as a
//! stream ([`write_zip`]), check the size before a session exists ([`check_size`]), POST the
//! archive to the runtime's `/upload` while it is being written ([`upload`]), then the git
//! history to `/git` ([`History`], [`upload_with_history`]).

mod archive;
mod archive_error;
mod bundle;
mod git;
mod history;
mod link;
mod pack;
mod size;
mod walk;

pub use archive::write_zip;
pub use archive_error::ArchiveError;
pub use history::{History, HistoryOutcome};
pub use pack::DEFLATE_LEVEL;
pub use size::{SizeError, TooLarge, check_size};
pub(crate) use walk::scan_counting;
pub use walk::{Entry, Kind, ScanError, Workspace, always_skipped, scan};

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio_util::io::ReaderStream;

use super::progress::Stage;
use crate::net::RuntimeUrl;
use crate::protocol::UPLOAD_LIMIT_BYTES;
use crate::protocol::api::{ErrorBody, UploadDone};

/// Archive bytes buffered between the zip writer and the socket: keeps the socket busy while
/// the next file is read, and bounds memory.
const PIPE_BYTES: usize = 256 * 1024;
/// How much of a non-JSON error answer (a proxy's page, say) goes into the message.
const ANSWER_SNIPPET_CHARS: usize = 200;

type UploadBody = BoxBody<Bytes, io::Error>;
/// The connection to the runtime, plain or TLS.
type RuntimeIo = TokioIo<crate::net::Stream>;

/// Why an upload failed.
#[derive(Debug)]
pub enum UploadError {
    BadUrl(String),
    /// A header (named, value withheld) cannot be sent: the token or one from the daemon.
    BadHeader(String),
    Connect {
        url: String,
        err: io::Error,
    },
    Http {
        url: String,
        err: hyper::Error,
    },
    /// The runtime answered with an error status; `message` is its explanation.
    Refused {
        status: StatusCode,
        message: String,
    },
    /// A 200 whose body is not an [`UploadDone`].
    BadAnswer(String),
    Archive(ArchiveError),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::BadUrl(url) => {
                write!(f, "bad runtime URL {url:?} (http:// or https:// expected)")
            }
            UploadError::BadHeader(name) => {
                write!(f, "the header {name:?} has a value that cannot be sent")
            }
            UploadError::Connect { url, err } => write!(f, "cannot connect to {url}: {err}"),
            UploadError::Http { url, err } => write!(f, "uploading to {url} failed: {err}"),
            UploadError::Refused { status, message } => match status.as_u16() {
                401 => write!(f, "the runtime refused the token"),
                409 => write!(f, "the runtime refused the upload: {message}"),
                413 => write!(f, "the runtime refused the upload as too large: {message}"),
                400 => write!(f, "the runtime rejected the archive: {message}"),
                _ => write!(f, "the runtime answered {status}: {message}"),
            },
            UploadError::BadAnswer(body) => write!(f, "unexpected answer to the upload: {body}"),
            UploadError::Archive(err) => err.fmt(f),
        }
    }
}

// No source(): each message already includes its cause.
impl std::error::Error for UploadError {}

/// What [`upload_with_history`] did.
#[derive(Debug)]
pub struct Uploaded {
    pub done: UploadDone,
    /// The zip's size: what it took of the upload budget.
    pub archive_bytes: u64,
    pub history: HistoryOutcome,
}

/// Uploads `ws` ([`upload`]), then the git history `history` prepared (in what the zip left
/// of the upload budget). Only the workspace's upload can fail: a history that cannot be
/// sent is a [`HistoryOutcome::Failed`] for the caller to report.
pub async fn upload_with_history(
    ws: &Workspace,
    history: History,
    root: &Path,
    connect_url: &str,
    token: &str,
    headers: &BTreeMap<String, String>,
    progress: bool,
) -> Result<Uploaded, UploadError> {
    let (done, archive_bytes) = send_zip(ws, root, connect_url, token, headers, progress).await?;
    let budget = UPLOAD_LIMIT_BYTES.saturating_sub(archive_bytes);
    let history = history
        .send(connect_url, token, headers, budget, progress)
        .await;
    Ok(Uploaded {
        done,
        archive_bytes,
        history,
    })
}

/// Uploads `ws` (paths relative to `root`) to the runtime at `connect_url` (`http://host:port`,
/// or `https://…` over TLS) as one chunked `POST /upload`, zipping while sending. With
/// `progress` (stderr is a terminal), a progress bar on stderr counts the bytes read; it is
/// cleared at the end.
pub async fn upload(
    ws: &Workspace,
    root: &Path,
    connect_url: &str,
    token: &str,
    headers: &BTreeMap<String, String>,
    progress: bool,
) -> Result<UploadDone, UploadError> {
    let sent = send_zip(ws, root, connect_url, token, headers, progress).await;
    sent.map(|(done, _)| done)
}

/// [`upload`], which also says how long the archive was.
async fn send_zip(
    ws: &Workspace,
    root: &Path,
    connect_url: &str,
    token: &str,
    headers: &BTreeMap<String, String>,
    progress: bool,
) -> Result<(UploadDone, u64), UploadError> {
    let runtime = RuntimeUrl::parse(connect_url).map_err(|bad| UploadError::BadUrl(bad.0))?;
    let (pipe_out, pipe_in) = tokio::io::duplex(PIPE_BYTES);
    let (zipped_tx, zipped_rx) = oneshot::channel();
    let target = runtime.upload_path();
    let body = body(pipe_out, zipped_rx);
    let req = request(&runtime, target, "application/zip", token, headers, body)?;
    let conn = open_connection(&runtime).await?;
    let files = ws.entries.iter().filter(|e| e.kind != Kind::Dir).count();
    let label = format!("compressing and uploading {files} files");
    let bar = Stage::bytes_if(&label, ws.total_bytes(), progress);
    let zip = async {
        let zipped = write_zip(ws, root, pipe_in, |n| bar.inc(n)).await;
        let _ = zipped_tx.send(zipped.is_ok());
        zipped
    };
    // One task: the zip writer fills the pipe, the connection drains it; when the runtime
    // answers early (401, 409, 413) the body is dropped and the writer stops on a closed pipe.
    let (answer, zipped) = tokio::join!(exchange(conn, req), zip);
    drop(bar);
    verdict(&runtime, answer, zipped)
}

/// Opens the connection to the runtime: the one place that knows the transport.
async fn open_connection(runtime: &RuntimeUrl) -> Result<RuntimeIo, UploadError> {
    // It sets TCP_NODELAY: the last chunk and the terminator must not wait for Nagle.
    let stream = crate::net::connect(runtime.authority(), runtime.tls()).await;
    let stream = stream.map_err(|err| UploadError::Connect {
        url: runtime.upload_url(),
        err,
    })?;
    Ok(TokioIo::new(stream))
}

/// A `POST` of `body` to `target` (a request target of `runtime`) with the token and the
/// daemon's headers.
fn request(
    runtime: &RuntimeUrl,
    target: String,
    content_type: &str,
    token: &str,
    headers: &BTreeMap<String, String>,
    body: UploadBody,
) -> Result<Request<UploadBody>, UploadError> {
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"));
    let bearer = bearer.map_err(|_| UploadError::BadHeader(AUTHORIZATION.to_string()))?;
    let mut req = Request::post(target)
        .header(HOST, runtime.authority())
        .header(AUTHORIZATION, bearer)
        .header(CONTENT_TYPE, content_type);
    for (name, value) in headers {
        let bad = || UploadError::BadHeader(name.clone());
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        req = req.header(name, HeaderValue::from_str(value).map_err(|_| bad())?);
    }
    req.body(body)
        .map_err(|_| UploadError::BadUrl(runtime.upload_url()))
}

/// The archive as a chunked body. A failed zip must not end the body cleanly (the runtime
/// would get a complete, if broken, archive): it ends with an error, which aborts the request.
fn body(pipe: DuplexStream, zipped: oneshot::Receiver<bool>) -> UploadBody {
    let data = ReaderStream::with_capacity(pipe, PIPE_BYTES).map_ok(Frame::data);
    let end = futures_util::stream::once(zipped).filter_map(|ok| {
        let failed = io::Error::other("the archive could not be written");
        std::future::ready((ok != Ok(true)).then_some(Err(failed)))
    });
    BodyExt::boxed(StreamBody::new(data.chain(end)))
}

/// Sends `req` and reads the whole (small) answer.
async fn exchange(
    conn: RuntimeIo,
    req: Request<UploadBody>,
) -> Result<(StatusCode, Bytes), hyper::Error> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(conn).await?;
    let talk = async move {
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    };
    // The connection future moves the bytes; it ends once `talk` is done and drops the sender.
    tokio::join!(talk, connection).0
}

fn verdict(
    runtime: &RuntimeUrl,
    answer: Result<(StatusCode, Bytes), hyper::Error>,
    zipped: Result<u64, ArchiveError>,
) -> Result<(UploadDone, u64), UploadError> {
    // A file we could not read is the cause, whatever became of the aborted request. A write
    // error only echoes the connection's fate, which the answer tells better.
    if let Err(err @ ArchiveError::Read { .. }) = zipped {
        return Err(UploadError::Archive(err));
    }
    let body = answer_body(&runtime.upload_url(), answer)?;
    let archive_bytes = zipped.map_err(UploadError::Archive)?;
    Ok((parse_answer(&body)?, archive_bytes))
}

/// The body of a successful answer from `url`, or why there is none.
fn answer_body(
    url: &str,
    answer: Result<(StatusCode, Bytes), hyper::Error>,
) -> Result<Bytes, UploadError> {
    let (status, body) = answer.map_err(|err| UploadError::Http {
        url: url.to_string(),
        err,
    })?;
    if !status.is_success() {
        let message = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(err) => err.error.message,
            Err(_) => snippet(&body).unwrap_or_else(|| status.to_string()),
        };
        return Err(UploadError::Refused { status, message });
    }
    Ok(body)
}

/// A 200's JSON body.
fn parse_answer<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, UploadError> {
    serde_json::from_slice(body)
        .map_err(|_| UploadError::BadAnswer(snippet(body).unwrap_or_default()))
}

fn snippet(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(ANSWER_SNIPPET_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_clearly() {
        let answer = |status: u16, body: &str| {
            let status = StatusCode::from_u16(status).unwrap();
            let t = RuntimeUrl::parse("http://h:1").unwrap();
            verdict(&t, Ok((status, Bytes::from(body.to_string()))), Ok(0))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            answer(401, r#"{"error":{"code":"unauthorized","message":"x"}}"#),
            "the runtime refused the token"
        );
        let conflict =
            r#"{"error":{"code":"conflict","message":"the workspace was already uploaded"}}"#;
        assert_eq!(
            answer(409, conflict),
            "the runtime refused the upload: the workspace was already uploaded"
        );
        assert_eq!(
            answer(502, "  <html>bad gateway</html>\n"),
            "the runtime answered 502 Bad Gateway: <html>bad gateway</html>"
        );
        assert_eq!(
            answer(500, ""),
            "the runtime answered 500 Internal Server Error: 500 Internal Server Error"
        );
    }
}
