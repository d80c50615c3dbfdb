//! `GET /transcript`: the output from an offset as raw bytes, from the transcript on disk,
//! then the ring, up to the end at the time of the answer; with `wait`, after waiting for
//! output past `since`. One chunk of at most a frame in memory per answer.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::session::{Found, Session, Span};
use crate::net::http::{Body, error};
use crate::protocol::FRAME_MAX_BYTES;
use crate::protocol::transcript::{
    END_HEADER, ENDED_HEADER, EXIT_HEADER, START_HEADER, TRANSCRIPT_WAIT, TranscriptParams,
};

pub(super) async fn answer(session: &Arc<Session>, query: Option<&str>) -> Response<Body> {
    let params = match TranscriptParams::parse(query.unwrap_or("")) {
        Ok(params) => params,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_query", message),
    };
    let span = match params.wait {
        true => wait_for_output(session, params.since).await,
        false => session.span(params.since),
    };
    let mut resp = Response::new(body(session.clone(), span.start, span.end));
    let headers = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(span.end - span.start));
    headers.insert(START_HEADER, HeaderValue::from(span.start));
    headers.insert(END_HEADER, HeaderValue::from(span.end));
    if let Some(status) = &span.exited {
        headers.insert(EXIT_HEADER, HeaderValue::from(status.code));
    } else if span.ended {
        headers.insert(ENDED_HEADER, HeaderValue::from_static("1"));
    }
    resp
}

/// The span once there is output past `since`, the program has exited or the session
/// ends, or after [`TRANSCRIPT_WAIT`].
async fn wait_for_output(session: &Session, since: u64) -> Span {
    let mut changed = session.subscribe();
    let deadline = tokio::time::Instant::now() + TRANSCRIPT_WAIT;
    loop {
        changed.borrow_and_update();
        let span = session.span(since);
        if span.start < span.end || span.exited.is_some() || span.ended {
            return span;
        }
        match tokio::time::timeout_at(deadline, changed.changed()).await {
            Ok(Ok(())) => {}
            _ => return session.span(since),
        }
    }
}

/// The bytes `[start, end)` as a stream; cut with an error if they stop being kept meanwhile
/// (the client sees a cut answer, not a short one).
fn body(session: Arc<Session>, start: u64, end: u64) -> Body {
    let frames = futures_util::stream::unfold(start, move |at| {
        let session = session.clone();
        async move {
            if at >= end {
                return None;
            }
            let max = FRAME_MAX_BYTES.min((end - at) as usize);
            let chunk = match chunk(&session, at, max).await {
                Ok(bytes) => bytes,
                Err(e) => return Some((Err(e), end)),
            };
            let next = at + chunk.len() as u64;
            Some((Ok(Frame::data(Bytes::from(chunk))), next))
        }
    });
    StreamBody::new(frames).boxed_unsync()
}

async fn chunk(session: &Session, at: u64, max: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(max);
    let found = session.read_output(at, max, &mut out);
    let bytes = match found {
        Found::Copied => Some(out),
        Found::OnDisk => session.read_transcript(at, max).await,
        Found::End | Found::Gone => None,
    };
    bytes
        .filter(|b| !b.is_empty())
        .ok_or_else(|| std::io::Error::other(format!("output at {at} is no longer kept")))
}
