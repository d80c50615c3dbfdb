//! Signing in without an API key: Claude Code with only a subscription token, Codex with a
//! ChatGPT login (the user's `auth.json` in `CATTY_CODEX_AUTH`), each at its main prompt with
//! no login or onboarding dialog; and which credential Claude Code sends when it has both (the
//! line `catty new` prints says so), seen by a stand-in for Anthropic's API on loopback.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::screens::{self, Verdict};
use super::session::AgentSession;
use super::{
    assert_dialog_without_profile, assert_verdict, installed, random_chars, read_json, session_path,
};
use crate::common::{Client, DEADLINE, sized};

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
        let mut api = FakeAnthropic::start().await;
        let base_url = format!("http://{}", api.addr);
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
        let request = api.next_message().await;
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

/// The credential headers of one request that reached the stand-in.
#[derive(Debug)]
struct Seen {
    target: String,
    api_key: Option<String>,
    authorization: Option<String>,
}

/// A stand-in for Anthropic's API on loopback: records each request's credential headers and
/// answers every one with a 400 error, so Claude Code shows "API Error" and waits.
struct FakeAnthropic {
    addr: std::net::SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAnthropic {
    async fn start() -> FakeAnthropic {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, tx.clone()));
            }
        });
        FakeAnthropic { addr, seen, task }
    }

    /// The next `POST /v1/messages…`.
    async fn next_message(&mut self) -> Seen {
        let wait = tokio::time::timeout(DEADLINE + Duration::from_secs(30), async {
            loop {
                let seen = self.seen.recv().await.expect("the stand-in runs");
                if seen.target.starts_with("POST /v1/messages") {
                    return seen;
                }
            }
        });
        wait.await
            .expect("Claude Code sent the prompt to the stand-in")
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(mut stream: tokio::net::TcpStream, tx: mpsc::UnboundedSender<Seen>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let target = lines.next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf.len() - head_end - 4;
    while body < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body += n,
        }
    }
    let _ = tx.send(Seen {
        target,
        api_key: header("x-api-key"),
        authorization: header("authorization"),
    });
    let error = r#"{"type":"error","error":{"type":"invalid_request_error","message":"stand-in"}}"#;
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{error}",
        error.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
}
