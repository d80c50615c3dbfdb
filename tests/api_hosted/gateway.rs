//! The hosted API with a gateway: a session's machine gets the gateway's URL and a token bound
//! to that session, never a provider key, even when the API's own environment holds some
//! (the Fly fake refuses, and fails the test on, any create that carries one or names a key
//! variable); a request that brings credentials is refused.

use catty::llm_token::LlmKey;
use catty::protocol::api::NO_CREDENTIALS_WITH_GATEWAY;
use hyper::StatusCode;
use serde_json::json;

use super::Hosted;
use crate::common::fly::{FakeFly, FakeFlyOptions};
use crate::fly_provider::support::{SEED_IMAGE, Terminal, creates, made};

const GATEWAY_URL: &str = "http://catty-gateway.flycast";
const GATEWAY_KEY: &str = "test-gateway-key-0123456789abcdef-0123456789";

/// Provider keys an operator might have left in the API's environment: none may reach Fly.
const DECOYS: [(&str, &str); 4] = [
    ("ANTHROPIC_API_KEY", "sk-ant-api03-operators-own-key-AAAA"),
    (
        "CLAUDE_CODE_OAUTH_TOKEN",
        "sk-ant-oat01-operators-own-token",
    ),
    ("OPENAI_API_KEY", "sk-proj-operators-own-key"),
    ("GEMINI_API_KEY", "AIza-operators-own-key"),
];

async fn hosted_with_gateway() -> Hosted {
    let fake = FakeFly::start(FakeFlyOptions {
        seed_image: Some(SEED_IMAGE.into()),
        image_env: vec![("PS1".into(), "$ ".into())],
        secrets: DECOYS.iter().map(|(_, key)| key.to_string()).collect(),
        no_key_vars: true,
        ..Default::default()
    });
    let mut env = vec![
        ("CATTY_GATEWAY_URL", GATEWAY_URL),
        ("CATTY_GATEWAY_KEY", GATEWAY_KEY),
    ];
    env.extend(DECOYS);
    Hosted::on(fake, 1, &env).await
}

#[tokio::test]
async fn a_hosted_machine_gets_the_gateway_and_its_own_token_and_no_provider_key() {
    let h = hosted_with_gateway().await;
    let alice = h.as_user(0, &h.user("alice").await);
    let created = alice
        .create(json!({"agent": "claude", "cmd": ["bash", "--norc", "-i"]}))
        .await;

    let create = creates(&h.fake).pop().expect("a create");
    let env = &create.body.as_ref().unwrap()["config"]["env"];
    assert_eq!(env["CATTY_LLM_URL"], GATEWAY_URL, "{env}");
    let token = env["CATTY_LLM_TOKEN"].as_str().expect("a token");
    let key = LlmKey::new(GATEWAY_KEY.as_bytes());
    assert_eq!(key.verify(token), Some(created.session_id.as_str()));

    // In the machine, Claude Code's variables point at the gateway with that token.
    let mut terminal = Terminal::attach(&created).await;
    let gateway = format!("ANTHROPIC_BASE_URL={GATEWAY_URL}/anthropic");
    terminal
        .run("env | sort | grep ^ANTHROPIC_", &gateway)
        .await;
    let env = std::fs::read(format!(
        "/proc/{}/environ",
        made(&h.fake)[0].runtime_pid.unwrap()
    ));
    let env = String::from_utf8_lossy(&env.unwrap()).into_owned();
    assert!(env.contains(&format!("CATTY_LLM_TOKEN={token}\0")));
    assert!(h.fake.take_leaks().is_empty());
}

#[tokio::test]
async fn a_hosted_create_with_credentials_is_refused() {
    let h = hosted_with_gateway().await;
    let alice = h.as_user(0, &h.user("alice").await);
    let answer = alice
        .create_refused(json!({"agent": "claude", "cmd": ["bash"],
            "credentials": {"ANTHROPIC_API_KEY": "sk-ant-api03-users-key"}}))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(
        answer.json()["error"]["message"],
        NO_CREDENTIALS_WITH_GATEWAY
    );
    assert!(made(&h.fake).is_empty(), "a machine was made");
}
