//! HTTP bodies of the daemon (`catty api`) and of the runtime: JSON only, no I/O.
//!
//! Daemon endpoints (all but `/healthz` need `Authorization: Bearer <token from the state
//! directory's token file>`; a non-loopback `Host` or any `Origin` is 403):
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /healthz` | | `200 ok` |
//! | `POST /v1/sessions` | [`CreateSession`] | [`SessionCreated`] |
//! | `GET /v1/sessions` | | [`SessionList`] |
//! | `GET /v1/sessions/{id-or-label}` | | [`SessionInfo`] |
//! | `POST /v1/sessions/{id-or-label}/stop` | | [`SessionInfo`] |
//! | `POST /v1/sessions/stop-all` | | [`StopAll`] |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSession {
    /// `claude`, `codex` or `shell`.
    pub agent: String,
    /// A command to run instead of the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_sec: Option<u64>,
}

/// Answer to `POST /v1/sessions`: everything a client needs to upload and attach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session_id: String,
    pub label: String,
    pub machine_id: String,
    /// Base URL of the runtime (`http://…` or `https://…`); `/upload` and `/connect` hang off it.
    pub connect_url: String,
    pub connect_token: String,
    /// Extra headers for every request to the runtime (e.g. `fly-force-instance-id`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// The machine is being created.
    Starting,
    Running,
    /// Stopped by a user (`catty stop`, stop-all).
    Stopped,
    /// Its TTL passed; the machine was destroyed.
    Expired,
    /// The machine is gone for another reason (program exited, machine lost).
    Gone,
}

impl SessionState {
    /// Whether a client can still attach.
    pub fn is_live(self) -> bool {
        matches!(self, SessionState::Starting | SessionState::Running)
    }
}

/// One session as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub label: String,
    pub state: SessionState,
    pub agent: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub machine_id: String,
    /// Unix seconds.
    pub created_at: u64,
    pub expires_at: u64,
    pub connect_url: String,
    pub connect_token: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `GET /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `POST /v1/sessions/stop-all`: how many machines were destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAll {
    pub stopped: u64,
}

/// Every error answer: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `unauthorized`, `bad_archive`, `too_large`, `conflict`, …
    pub code: String,
    /// One line for a human.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message: message.into(),
            },
        }
    }
}

/// `200` answer of `POST /upload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadDone {
    pub files: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden() {
        let err = ErrorBody::new("bad_archive", "entry \"../x\": path leaves the workspace");
        let wire = r#"{"error":{"code":"bad_archive","message":"entry \"../x\": path leaves the workspace"}}"#;
        assert_eq!(serde_json::to_string(&err).unwrap(), wire);
        assert_eq!(serde_json::from_str::<ErrorBody>(wire).unwrap(), err);

        let done = UploadDone {
            files: 3,
            bytes: 10,
        };
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"files":3,"bytes":10}"#
        );
    }
}
