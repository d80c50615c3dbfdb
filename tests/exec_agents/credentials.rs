//! Signing in without an API key: Claude Code with only a subscription token, Codex with a
//! ChatGPT login (the user's `auth.json` in `CATTY_CODEX_AUTH`), each at its main prompt with
//! no login or onboarding dialog; and which credential Claude Code sends when it has both (the
//! line `catty new` prints says so), seen by a stand-in for Anthropic's API on loopback.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::json;

use super::mock_api::{MockApi, Reply};
use super::screens::{self, Verdict};
use super::session::AgentSession;
use super::{
    assert_dialog_without_profile, assert_verdict, installed, random_chars, read_json, session_path,
};
use crate::common::{Client, sized};

/// What `claude setup-token` prints for a Pro/Max subscription: `sk-ant-oat01-…`.
fn oauth_token() -> String {
    format!("sk-ant-oat01-{}AA", random_chars(93))
}

#[tokio::test]
async fn claude_with_only_a_subscription_token_opens_at_its_prompt() {
    let copies = installed("claude", "@anthropic-ai/claude-code");
    for (i, claude) in copies.iter().enumerate() {
        let token = oauth_token();
        let path = session_path(&claude.dir);
        let env = [
            ("CATTY_AGENT", "claude"),
            ("CLAUDE_CODE_OAUTH_TOKEN", token.as_str()),
        ];
        let mut session = AgentSession::start(&path, &env, &[]).await;
        let seen = session.settle(screens::claude).await;
        let what = format!("claude {} with a subscription token", claude.version);
        report!("{what}: {:?}", seen.0);
        assert_verdict(&what, &seen, Verdict::Main);
        session.end();

        if i == 0 {
            let token = ("CLAUDE_CODE_OAUTH_TOKEN", token.as_str());
            assert_dialog_without_profile(&path, token, "claude", screens::claude, &what).await;
        }
    }
}

#[tokio::test]
async fn claude_with_a_key_and_a_subscription_token_uses_the_key() {
    for claude in installed("claude", "@anthropic-ai/claude-code") {
        let (key, token) = (
            format!("sk-ant-api03-{}AA", random_chars(92)),
            oauth_token(),
        );
        let error = json!({"type": "error",
            "error": {"type": "invalid_request_error", "message": "stand-in"}});
        let mut api = MockApi::always(Reply::bad_request(error)).await;
        let base_url = api.url();
        let path = session_path(&claude.dir);
        let env = [
            ("CATTY_AGENT", "claude"),
            ("ANTHROPIC_API_KEY", key.as_str()),
            ("CLAUDE_CODE_OAUTH_TOKEN", token.as_str()),
            ("ANTHROPIC_BASE_URL", base_url.as_str()),
        ];
        let mut session = AgentSession::start(&path, &env, &[]).await;
        let seen = session.settle(screens::claude).await;
        let what = format!("claude {} with both", claude.version);
        assert_verdict(&what, &seen, Verdict::Main);

        // A second terminal types a prompt; Claude Code sends it to the stand-in.
        let mut typist = Client::connect(session.runtime.addr, &sized(120, 40))
            .await
            .unwrap();
        typist.send(b"hello").await;
        typist.read_until_contains("hello").await;
        typist.send(b"\r").await;
        let request = api.next("POST /v1/messages").await;
        report!("{what}: x-api-key {}", request.api_key.is_some());
        assert_eq!(
            request.api_key.as_deref(),
            Some(key.as_str()),
            "{request:?}"
        );
        assert!(
            !request.authorization.unwrap_or_default().contains(&token),
            "the token was sent"
        );
        drop(typist);
        session.end();
    }
}

#[tokio::test]
async fn codex_with_a_chatgpt_login_opens_at_its_prompt() {
    for codex in installed("codex", "@openai/codex") {
        let login = chatgpt_login();
        let path = session_path(&codex.dir);
        let env = [
            ("CATTY_AGENT", "codex"),
            ("CATTY_CODEX_AUTH", login.as_str()),
        ];
        let mut session = AgentSession::start(&path, &env, &[]).await;
        let seen = session.settle(screens::codex).await;
        let what = format!("{} with a ChatGPT login", codex.version);
        report!("{what}: {:?}", seen.0);
        assert_verdict(&what, &seen, Verdict::Main);
        let auth_path = session.home.path().join(".codex/auth.json");
        let mode = std::fs::metadata(&auth_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let written = read_json(auth_path);
        let sent: serde_json::Value = serde_json::from_str(&login).unwrap();
        assert_eq!(
            written["tokens"], sent["tokens"],
            "the login is copied as it is"
        );
        session.end();

        let login = ("CATTY_CODEX_AUTH", login.as_str());
        assert_dialog_without_profile(&path, login, "codex", screens::codex, &what).await;
    }
}

/// An `auth.json` as `codex login` writes it for a ChatGPT account (codex-rs/login's
/// `AuthDotJson`: the ID token is a JWT whose claims Codex parses; the signature is not
/// checked locally). Refreshed just now, tokens valid for days: Codex has no reason to refresh
/// at start. No `chatgpt_account_id` and no `account_id`: with one, Codex 0.169 asks the
/// network for the workspace's routing before its first screen and, with no internet here,
/// exits with "workspace routing discovery failed".
fn chatgpt_login() -> String {
    let now = unix_now();
    let auth = json!({"chatgpt_plan_type": "plus", "chatgpt_user_id": "user-catty-test"});
    let id_token = jwt(
        &json!({"iss": "https://auth.openai.com", "sub": "auth0|catty-test",
        "email": "dev@example.com", "iat": now, "exp": now + 3600,
        "https://api.openai.com/auth": auth}),
    );
    let access_token = jwt(&json!({"iss": "https://auth.openai.com",
        "sub": "auth0|catty-test", "iat": now, "exp": now + 10 * 86400,
        "https://api.openai.com/auth": auth}));
    json!({
        "OPENAI_API_KEY": null,
        "tokens": {
            "id_token": id_token,
            "access_token": access_token,
            "refresh_token": format!("rt_{}", random_chars(40)),
            "account_id": null,
        },
        "last_refresh": rfc3339_now(),
    })
    .to_string()
}

/// An unsigned JWT (`alg: none`) with these claims; the signature part is not empty, as
/// Codex's parser requires.
fn jwt(claims: &serde_json::Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    let part = |v: &serde_json::Value| base64url(v.to_string().as_bytes());
    format!(
        "{}.{}.{}",
        part(&header),
        part(claims),
        base64url(b"unsigned")
    )
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let get = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = get(0) << 16 | get(1) << 8 | get(2);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn unix_now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.unwrap().as_secs()
}

fn rfc3339_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
