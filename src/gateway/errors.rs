//! The gateway's own answers, shaped as each provider shapes its errors, so the agent shows
//! the message instead of failing to parse it: Anthropic `{"type":"error","error":{"type",
//! "message"}}`, OpenAI `{"error":{"message","type","code"}}`, Gemini `{"error":{"code",
//! "message","status"}}`. Those that retrying cannot fix carry `x-should-retry: false`, which
//! the Stainless-made SDKs (Anthropic's, OpenAI's) honour instead of retrying.

use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::usage::Provider;
use crate::net::http::{Body, json};

/// Why the gateway answers by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No token, a token of another key, or a session that is not live: 401.
    Unauthenticated,
    /// The user's quota cannot hold the request: 402. Anthropic names this `billing_error`
    /// (its own type for a 402: a member of the SDK's `ErrorObject` union, "out of credits or
    /// spend limit reached"), not `rate_limit_error`, which says "wait and retry"; OpenAI
    /// `insufficient_quota`, the code its SDKs and Codex know as "out of credit"; Gemini
    /// `RESOURCE_EXHAUSTED`.
    OverQuota,
    /// The request body is over the bound: 413.
    TooLarge,
    /// This gateway holds no key for the provider: 503, not worth a retry.
    NoKeys,
    /// The quota's database cannot be reached: 503, worth a retry.
    Unavailable,
    /// The upstream cannot be reached: 502.
    Unreachable,
    /// The upstream said nothing for the idle timeout: 504.
    Timeout,
    /// The client was silent (or broke off) mid-body: 408.
    ClientTimeout,
}

impl Failure {
    fn status(self) -> StatusCode {
        match self {
            Failure::Unauthenticated => StatusCode::UNAUTHORIZED,
            Failure::OverQuota => StatusCode::PAYMENT_REQUIRED,
            Failure::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::NoKeys | Failure::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Unreachable => StatusCode::BAD_GATEWAY,
            Failure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Failure::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Whether a retry of the same request could go differently.
    fn retryable(self) -> bool {
        matches!(
            self,
            Failure::Unavailable | Failure::Unreachable | Failure::Timeout | Failure::ClientTimeout
        )
    }

    fn anthropic_type(self) -> &'static str {
        match self {
            Failure::Unauthenticated => "authentication_error",
            Failure::OverQuota => "billing_error",
            Failure::TooLarge => "request_too_large",
            Failure::Timeout => "timeout_error",
            Failure::ClientTimeout => "invalid_request_error",
            Failure::NoKeys | Failure::Unavailable | Failure::Unreachable => "api_error",
        }
    }

    /// OpenAI's `type` and `code`.
    fn openai_type(self) -> (&'static str, Option<&'static str>) {
        match self {
            Failure::Unauthenticated => ("invalid_request_error", Some("invalid_api_key")),
            Failure::OverQuota => ("insufficient_quota", Some("insufficient_quota")),
            Failure::TooLarge | Failure::ClientTimeout => ("invalid_request_error", None),
            _ => ("server_error", None),
        }
    }

    fn gemini_status(self) -> &'static str {
        match self {
            Failure::Unauthenticated => "UNAUTHENTICATED",
            Failure::OverQuota => "RESOURCE_EXHAUSTED",
            Failure::TooLarge | Failure::ClientTimeout => "INVALID_ARGUMENT",
            Failure::NoKeys | Failure::Unavailable | Failure::Unreachable => "UNAVAILABLE",
            Failure::Timeout => "DEADLINE_EXCEEDED",
        }
    }
}

/// The answer for `failure`, in `provider`'s shape, with `message`.
pub(super) fn answer(provider: Provider, failure: Failure, message: &str) -> Response<Body> {
    let status = failure.status();
    let body = match provider {
        Provider::Anthropic => json!({
            "type": "error",
            "error": {"type": failure.anthropic_type(), "message": message},
        }),
        Provider::OpenAi => {
            let (kind, code) = failure.openai_type();
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Provider::Gemini => json!({
            "error": {"code": status.as_u16(), "message": message, "status": failure.gemini_status()},
        }),
    };
    let mut resp = json(status, &body);
    if !failure.retryable() {
        resp.headers_mut()
            .insert("x-should-retry", HeaderValue::from_static("false"));
    }
    resp
}

/// What a 402 says: how much of the quota is used, and where to upgrade: `Some` of the link a
/// browser opens as it is (or of `None`: the command), or `None` on the paid plan, where there
/// is nothing to upgrade to and the budget renews next month.
pub(super) fn quota_message(used: i64, limit: i64, upgrade: Option<Option<&str>>) -> String {
    let upgrade = match upgrade {
        Some(Some(link)) => format!("upgrade at {link}"),
        Some(None) => "upgrade with `catty upgrade`".to_string(),
        None => "it renews on the 1st of next month (UTC)".to_string(),
    };
    format!(
        "catty: this month's quota is used ({} of {}); {upgrade}",
        dollars(used),
        dollars(limit)
    )
}

/// Micro-dollars as `$D.CC`, cents rounded down.
fn dollars(micros: i64) -> String {
    let cents = micros.max(0) / 10_000;
    format!("${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response<Body>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_quota_message_names_use_limit_and_link() {
        let link = "https://api.example/billing/upgrade?user=u&exp=1&sig=ab";
        assert_eq!(
            quota_message(4_981_234, 5_000_000, Some(Some(link))),
            format!("catty: this month's quota is used ($4.98 of $5.00); upgrade at {link}")
        );
        let no_link = quota_message(0, 120_000_000, Some(None));
        assert!(no_link.contains("($0.00 of $120.00); upgrade with"));
        let paid = quota_message(200_000_000, 200_000_000, None);
        assert!(!paid.contains("upgrade"), "{paid}");
        assert!(paid.contains("renews"), "{paid}");
    }

    #[tokio::test]
    async fn a_402_is_shaped_as_each_provider_shapes_it_and_not_retried() {
        let msg = "catty: quota";
        let anthropic = answer(Provider::Anthropic, Failure::OverQuota, msg);
        assert_eq!(anthropic.status(), StatusCode::PAYMENT_REQUIRED);
        assert_eq!(anthropic.headers()["x-should-retry"], "false");
        assert_eq!(
            body_of(anthropic).await,
            json!({"type":"error","error":{"type":"billing_error","message":msg}})
        );
        let openai = body_of(answer(Provider::OpenAi, Failure::OverQuota, msg)).await;
        assert_eq!(openai["error"]["type"], "insufficient_quota");
        assert_eq!(openai["error"]["code"], "insufficient_quota");
        assert_eq!(openai["error"]["message"], msg);
        let gemini = body_of(answer(Provider::Gemini, Failure::OverQuota, msg)).await;
        assert_eq!(
            gemini,
            json!({"error":{"code":402,"message":msg,"status":"RESOURCE_EXHAUSTED"}})
        );
    }

    #[tokio::test]
    async fn a_401_is_not_retried_and_an_unreachable_upstream_is() {
        let denied = answer(Provider::OpenAi, Failure::Unauthenticated, "no");
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(denied.headers()["x-should-retry"], "false");
        assert_eq!(body_of(denied).await["error"]["code"], "invalid_api_key");
        let down = answer(Provider::Anthropic, Failure::Unreachable, "down");
        assert_eq!(down.status(), StatusCode::BAD_GATEWAY);
        assert!(!down.headers().contains_key("x-should-retry"));
    }
}
