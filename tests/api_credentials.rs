//! Credentials through the daemon with the local provider: a request brings the agent's own
//! and nothing else (checked before any session exists), they reach the runtime's environment,
//! the daemon adds none of its own and keeps them nowhere (store, log). With a gateway, none
//! at all: the agent gets the gateway and a token of its session's.

use catty::llm_token::LlmKey;
use catty::protocol::api::{CREDENTIAL_LIMIT_BYTES, NO_CREDENTIALS_WITH_GATEWAY};
use hyper::StatusCode;
use serde_json::json;

use crate::common::Client;
use crate::common::api::Daemon;

fn random() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/proc/PID/environ` as `NAME=value` lines.
fn environ(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    String::from_utf8_lossy(&raw).replace('\0', "\n")
}

#[tokio::test]
async fn another_agents_credential_is_refused_and_nothing_is_made() {
    let d = Daemon::start(false);
    let answer = d
        .create_refused(json!({"agent": "claude", "cmd": ["sleep", "600"],
            "credentials": {"OPENAI_API_KEY": "sk-proj-secret"}}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(
        answer.json()["error"]["message"],
        "credential \"OPENAI_API_KEY\" is not one of claude's \
         (ANTHROPIC_API_KEY, CLAUDE_CODE_OAUTH_TOKEN)"
    );
    assert!(!answer.body.contains("sk-proj-secret"), "{}", answer.body);
    assert!(d.list().await.is_empty(), "a session was made");
}

#[tokio::test]
async fn an_oversize_credential_is_refused() {
    let d = Daemon::start(false);
    let big = "k".repeat(CREDENTIAL_LIMIT_BYTES + 1);
    let answer = d
        .create_refused(json!({"agent": "gemini", "cmd": ["sleep", "600"],
            "credentials": {"GEMINI_API_KEY": big}}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "bad_request");
    assert!(d.list().await.is_empty(), "a session was made");
}

/// Two credentials at the limit, every byte one JSON writes as `\u0001`: the body limit
/// leaves room for them.
#[tokio::test]
async fn the_largest_credentials_fit_in_a_request() {
    let d = Daemon::start(false);
    let most = "\u{1}".repeat(CREDENTIAL_LIMIT_BYTES);
    let body = json!({"agent": "claude", "cmd": ["sleep", "600"],
        "credentials": {"ANTHROPIC_API_KEY": most, "CLAUDE_CODE_OAUTH_TOKEN": most}});
    assert!(body.to_string().len() > 12 * CREDENTIAL_LIMIT_BYTES);
    let created = d.create(body).await;
    d.stop(&created.label).await;
}

#[tokio::test]
async fn credentials_reach_the_runtime_and_are_kept_nowhere() {
    let tag = random();
    let decoy = format!("AIza-daemons-own-{tag}");
    let d = Daemon::start_in(
        tempfile::tempdir().unwrap(),
        false,
        &[("GEMINI_API_KEY", &decoy), ("ANTHROPIC_API_KEY", &decoy)],
    );
    let key = format!("AIza-from-the-request-{tag}");
    let created = d
        .create(json!({"agent": "gemini", "cmd": ["sleep", "600"],
            "credentials": {"GEMINI_API_KEY": key}}))
        .await;
    let pid = d
        .runtime_pid(&created.session_id)
        .expect("the runtime runs");
    let env = environ(pid);
    assert!(
        env.lines().any(|l| l == format!("GEMINI_API_KEY={key}")),
        "{env}"
    );
    assert!(
        !env.contains(&decoy),
        "the daemon's own key reached the session:\n{env}"
    );

    let store = std::fs::read_to_string(d.state_dir().join("sessions.json")).unwrap();
    assert!(store.contains(&created.session_id), "{store}");
    assert!(!store.contains(&key), "the store keeps the key:\n{store}");
    let log = d.log();
    assert!(log.contains("creating a session"), "a debug log:\n{log}");
    assert!(!log.contains(&key), "the log shows the key:\n{log}");
    d.stop(&created.label).await;
}

const GATEWAY_KEY: &str = "test-gateway-key-0123456789abcdef-0123456789";

/// A local daemon with a gateway on this computer, and provider keys in its own environment.
fn daemon_with_gateway(decoy: &str) -> Daemon {
    let env = [
        ("CATTY_GATEWAY_URL", "http://127.0.0.1:9"),
        ("CATTY_GATEWAY_KEY", GATEWAY_KEY),
        ("ANTHROPIC_API_KEY", decoy),
        ("ANTHROPIC_AUTH_TOKEN", decoy),
        ("CLAUDE_CODE_OAUTH_TOKEN", decoy),
        ("OPENAI_API_KEY", decoy),
        ("GEMINI_API_KEY", decoy),
    ];
    Daemon::start_in(tempfile::tempdir().unwrap(), false, &env)
}

#[tokio::test]
async fn with_a_gateway_credentials_are_refused() {
    let d = daemon_with_gateway("unused");
    let answer = d
        .create_refused(json!({"agent": "codex", "cmd": ["sleep", "600"],
            "credentials": {"OPENAI_API_KEY": "sk-proj-users-key"}}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(
        answer.json()["error"]["message"],
        NO_CREDENTIALS_WITH_GATEWAY
    );
    assert!(d.list().await.is_empty(), "a session was made");
}

#[tokio::test]
async fn with_a_gateway_a_local_agent_gets_its_token_and_no_key_of_the_daemon() {
    let decoy = format!("sk-daemons-own-{}", random());
    let d = daemon_with_gateway(&decoy);
    // It prints once attached (a line from us), so the listing comes whole, as output, not
    // as the screen a late attach redraws (24 rows of 80 columns, long lines wrapped). The
    // end marker is spelled apart in the command, which the listing shows (`CATTY_CMD`).
    let created = d
        .create(json!({"agent": "claude",
            "cmd": ["sh", "-c", "read go; env; echo END-OF''-ENV; exec sleep 600"]}))
        .await;
    let mut agent = Client::attach(&created.connect_url, &created.connect_token).await;
    agent.run("go", "END-OF-ENV").await;
    let seen = String::from_utf8_lossy(&agent.output).replace("\r\n", "\n");
    let token = seen
        .lines()
        .find_map(|l| l.strip_prefix("ANTHROPIC_AUTH_TOKEN="))
        .unwrap_or_else(|| panic!("Claude Code's token: {seen}"));
    let key = LlmKey::new(GATEWAY_KEY.as_bytes());
    assert_eq!(key.verify(token), Some(created.session_id.as_str()));
    let base_url = "ANTHROPIC_BASE_URL=http://127.0.0.1:9/anthropic\n";
    assert!(seen.contains(base_url), "{seen}");
    for name in [
        "ANTHROPIC_API_KEY=",
        "CLAUDE_CODE_OAUTH_TOKEN=",
        "OPENAI_",
        "GEMINI_",
        "CONNECT_TOKEN=",
    ] {
        assert!(
            !seen.contains(name),
            "{name} in the agent's environment:\n{seen}"
        );
    }
    let runtime = environ(d.runtime_pid(&created.session_id).unwrap());
    assert!(
        !runtime.contains(&decoy) && !seen.contains(&decoy),
        "{runtime}"
    );
    d.stop(&created.label).await;
}
