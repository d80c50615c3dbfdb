//! Errors of the Machines API as catty reports them: one line each, with what to do for the
//! ones a user can fix (the token, the app), read from the answer's body as fly-go does.

use hyper::StatusCode;
use serde::Deserialize;

/// How much of an error body goes into a message.
const MESSAGE_CHARS: usize = 200;

/// `text` on one line (white space folded), cut to [`MESSAGE_CHARS`].
pub(super) fn one_line(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(MESSAGE_CHARS).collect()
}

/// Why a call failed.
#[derive(Debug)]
pub(super) enum FlyError {
    /// Fly answered with an error status.
    Status {
        status: StatusCode,
        message: String,
        /// `insufficient_capacity`: no host in the region can take the machine.
        capacity: bool,
    },
    /// No answer (DNS, TCP, TLS, timeout): the request may or may not have been applied.
    Network(String),
    /// A success whose body is not what the API documents.
    BadAnswer(String),
}

impl FlyError {
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            FlyError::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    pub(super) fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub(super) fn is_capacity(&self) -> bool {
        matches!(self, FlyError::Status { capacity: true, .. })
    }

    /// Worth another try after a pause, for a request that is safe to repeat.
    pub(super) fn is_transient(&self) -> bool {
        match self.status() {
            Some(status) => status == 429 || status >= 500,
            None => matches!(self, FlyError::Network(_)),
        }
    }
}

impl std::fmt::Display for FlyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlyError::Status { status, .. } if status.as_u16() == 401 => write!(
                f,
                "Fly.io refused the API token ({status}): check FLY_API_TOKEN"
            ),
            FlyError::Status {
                status, message, ..
            } if status.as_u16() == 403 => write!(
                f,
                "Fly.io refused this token access ({status}: {message}): check FLY_API_TOKEN and CATTY_EXEC_APP"
            ),
            FlyError::Status {
                status, message, ..
            } => write!(f, "Fly.io answered {status}: {message}"),
            FlyError::Network(e) => write!(f, "cannot reach the Fly.io Machines API: {e}"),
            FlyError::BadAnswer(e) => {
                write!(f, "unexpected answer from the Fly.io Machines API: {e}")
            }
        }
    }
}

impl std::error::Error for FlyError {}

#[derive(Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// An error answer as one line: `message`, else `error`, else the raw body (as fly-go).
pub(super) fn api_error(status: StatusCode, body: &[u8]) -> FlyError {
    let parsed = serde_json::from_slice::<ErrorAnswer>(body).ok();
    let (message, kind) = match parsed {
        Some(answer) => {
            let error = match answer.error {
                Some(serde_json::Value::String(s)) => Some(s),
                Some(other) if !other.is_null() => Some(other.to_string()),
                _ => None,
            };
            (
                answer.message.filter(|m| !m.is_empty()).or(error),
                answer.status,
            )
        }
        None => (None, None),
    };
    let message = message
        .or_else(|| Some(String::from_utf8_lossy(body).into_owned()))
        .map(|m| one_line(&m))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_string());
    let capacity = kind.as_deref() == Some("insufficient_capacity")
        || message
            .to_ascii_lowercase()
            .contains("insufficient capacity");
    FlyError::Status {
        status,
        message,
        capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_one_line() {
        let err = |status: u16, body: &str| {
            api_error(StatusCode::from_u16(status).unwrap(), body.as_bytes())
        };
        let e = err(401, r#"{"error":"unauthorized"}"#);
        assert_eq!(
            e.to_string(),
            "Fly.io refused the API token (401 Unauthorized): check FLY_API_TOKEN"
        );
        let e = err(404, r#"{"error":"not_found: machine not found"}"#);
        assert!(e.is_not_found() && !e.is_transient());
        assert_eq!(
            e.to_string(),
            "Fly.io answered 404 Not Found: not_found: machine not found"
        );
        let e = err(
            409,
            r#"{"status":"error","message":"aborted: lease held","error":"x"}"#,
        );
        assert_eq!(
            e.to_string(),
            "Fly.io answered 409 Conflict: aborted: lease held"
        );
        let e = err(
            412,
            r#"{"error":"insufficient resources","status":"insufficient_capacity"}"#,
        );
        assert!(e.is_capacity());
        let e = err(503, "<html>\n  upstream\n  down</html>");
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "Fly.io answered 503 Service Unavailable: <html> upstream down</html>"
        );
        assert_eq!(
            err(400, "").to_string(),
            "Fly.io answered 400 Bad Request: Bad Request"
        );
        assert!(err(429, "{}").is_transient());
        assert!(
            !err(408, "{}").is_transient(),
            "a 408 is the caller's to judge"
        );
        assert!(FlyError::Network("reset".into()).is_transient());
    }
}
