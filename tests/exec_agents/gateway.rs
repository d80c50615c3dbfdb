//! The agents through catty's gateway: the runtime has only the gateway's URL and the
//! session's token (`CATTY_LLM_URL`, `CATTY_LLM_TOKEN`), a stand-in for the gateway on
//! loopback takes the requests. Each agent opens at its main prompt with no dialog and sends
//! a prompt to its route with the token where a key would be; and Claude Code shows the
//! gateway's over-quota answer (a 402 it does not retry) to the user.

use catty::llm_token::LlmKey;
use serde_json::json;

use super::mock_api::{MockApi, Reply, Seen};
use super::screens::{self, Classify, Verdict};
use super::session::AgentSession;
use super::{Installed, assert_verdict, installed, session_path};
use crate::common::{Client, sized};

/// Between the prompt and its Enter, as a person types.
const PASTE_GAP: std::time::Duration = std::time::Duration::from_millis(500);

/// A token as the API mints it, for a session of this test.
fn session_token() -> String {
    LlmKey::new(b"exec-agents-gateway-key-0123456789abcdef").mint("s-00112233aabbccdd")
}

/// `agent` from `copy`, pointed at `gateway`, settled at its main prompt; then a prompt typed
/// through a second terminal, and the request it made to `route`.
async fn prompt_through(
    agent: &str,
    copy: &Installed,
    gateway: &mut MockApi,
    token: &str,
    classify: Classify,
    route: &str,
) -> (AgentSession, Seen) {
    let path = session_path(&copy.dir);
    let url = gateway.url();
    let env = [
        ("CATTY_AGENT", agent),
        ("CATTY_LLM_URL", url.as_str()),
        ("CATTY_LLM_TOKEN", token),
    ];
    let mut session = AgentSession::start(&path, &env, &[]).await;
    let seen = session.settle(classify).await;
    let what = format!("{} through the gateway", copy.version);
    report!("{what}: {:?}", seen.0);
    assert_verdict(&what, &seen, Verdict::Main);
    let mut typist = Client::connect(session.runtime.addr, &sized(120, 40))
        .await
        .unwrap();
    typist.send(b"hello").await;
    typist.read_until_contains("hello").await;
    // Gemini CLI takes keys that come at once for a paste, where Enter is a new line.
    tokio::time::sleep(PASTE_GAP).await;
    typist.send(b"\r").await;
    let request = gateway.next(route).await;
    report!("{what}: {}", request.target);
    (session, request)
}

fn anthropic_error() -> Reply {
    Reply::bad_request(json!({"type": "error",
        "error": {"type": "invalid_request_error", "message": "stand-in"}}))
}

#[tokio::test]
async fn claude_goes_through_the_gateway_with_its_bearer_token() {
    for claude in installed("claude", "@anthropic-ai/claude-code") {
        let token = session_token();
        let mut gateway = MockApi::always(anthropic_error()).await;
        let route = "POST /anthropic/v1/messages?beta=true";
        let (session, request) = prompt_through(
            "claude",
            &claude,
            &mut gateway,
            &token,
            screens::claude,
            route,
        )
        .await;
        assert_eq!(
            request.authorization,
            Some(format!("Bearer {token}")),
            "{request:?}"
        );
        assert_eq!(request.api_key, None, "{request:?}");
        session.end();
    }
}

#[tokio::test]
async fn codex_goes_through_the_gateway_with_no_login() {
    for codex in installed("codex", "@openai/codex") {
        let token = session_token();
        let error = json!({"error": {"type": "invalid_request_error", "message": "stand-in",
            "code": null, "param": null}});
        let mut gateway = MockApi::always(Reply::bad_request(error)).await;
        let route = "POST /openai/v1/responses";
        let (session, request) =
            prompt_through("codex", &codex, &mut gateway, &token, screens::codex, route).await;
        assert_eq!(
            request.authorization,
            Some(format!("Bearer {token}")),
            "{request:?}"
        );
        assert!(
            !session.home.path().join(".codex/auth.json").exists(),
            "a login was written"
        );
        session.end();
    }
}

#[tokio::test]
async fn gemini_goes_through_the_gateway_with_the_token_as_its_key() {
    for gemini in installed("gemini", "@google/gemini-cli") {
        let token = session_token();
        let error = json!({"error": {"code": 400, "message": "stand-in",
            "status": "INVALID_ARGUMENT"}});
        let mut gateway = MockApi::always(Reply::bad_request(error)).await;
        let route = "POST /gemini/v1beta/models/";
        let (session, request) = prompt_through(
            "gemini",
            &gemini,
            &mut gateway,
            &token,
            screens::gemini,
            route,
        )
        .await;
        assert_eq!(request.goog_api_key.as_deref(), Some(token.as_str()));
        assert!(
            request.target.contains(":streamGenerateContent")
                || request.target.contains(":generateContent"),
            "{request:?}"
        );
        session.end();
    }
}

/// What the gateway answers over quota: Anthropic's error shape, `billing_error`, and
/// `x-should-retry: false` (Stainless SDKs retry 408, 409, 429 and 5xx otherwise).
const OVER_QUOTA: &str = "catty: this month's quota is used ($5.00 of $5.00); upgrade at \
                          https://api.example/billing/upgrade?t=abc123";

/// The screen once Claude Code shows the gateway's 402.
fn shows_402(screen: &str) -> Verdict {
    match screen.contains("API Error: 402") {
        true => Verdict::Main,
        false => Verdict::Unknown,
    }
}

#[tokio::test]
async fn claude_shows_the_gateways_402_and_does_not_retry() {
    for claude in installed("claude", "@anthropic-ai/claude-code") {
        let body = json!({"type": "error",
            "error": {"type": "billing_error", "message": OVER_QUOTA}});
        let quota = Reply {
            status: 402,
            headers: vec![("x-should-retry", "false")],
            body: body.to_string(),
        };
        let route = "POST /anthropic/v1/messages";
        let mut gateway = MockApi::start(route, quota, anthropic_error()).await;
        let token = session_token();
        let (mut session, _) = prompt_through(
            "claude",
            &claude,
            &mut gateway,
            &token,
            screens::claude,
            route,
        )
        .await;
        let (verdict, screen) = session.settle(shows_402).await;
        let flat = screen.split_whitespace().collect::<Vec<_>>().join(" ");
        report!("claude {}: {flat}", claude.version);
        assert_eq!(verdict, Verdict::Main, "{screen}");
        assert!(
            flat.contains(&format!("API Error: 402 {OVER_QUOTA}")),
            "{screen}"
        );
        // The verdict held for seconds: no retry came meanwhile.
        assert_eq!(gateway.count(route), 1, "{:?}", gateway.taken);
        session.end();
    }
}
