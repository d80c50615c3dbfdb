//! Credentials through the daemon with the local provider: a request brings the agent's own
//! and nothing else (checked before any session exists), they reach the runtime's environment,
//! the daemon adds none of its own and keeps them nowhere (store, log).

use catty::protocol::api::CREDENTIAL_LIMIT_BYTES;
use hyper::StatusCode;
use serde_json::json;

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
