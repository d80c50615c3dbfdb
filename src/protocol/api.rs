//! HTTP bodies of the runtime (and, later, the daemon): JSON only, no I/O.

use serde::{Deserialize, Serialize};

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
