//! The daemon's error answer: an HTTP status, a stable code and a message. `routes.rs`
//! turns it into JSON in one place.

use hyper::StatusCode;

/// An answer that is not a success.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(super) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// The provider or the machine failed.
    pub(super) fn machine(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "machine_failed", message)
    }

    /// The daemon itself failed (its store, usually).
    pub(super) fn internal(e: anyhow::Error) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{e:#}"),
        )
    }

    /// What the daemon depends on (its database) does not answer: try again later.
    pub(super) fn unavailable(e: anyhow::Error) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{e:#}"),
        )
    }
}
