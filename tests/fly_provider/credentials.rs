//! Credentials on Fly.io: the machine's env holds the request's credentials and catty's own
//! variables, nothing of the daemon's environment.

use serde_json::json;

use super::support::{creates, fake};
use crate::common::api::fly::FlyDaemon;

/// The daemon's own keys: none of them may reach a machine.
pub const DAEMON_KEYS: [(&str, &str); 2] = [
    ("ANTHROPIC_API_KEY", "sk-ant-the-daemons-own"),
    ("OPENAI_API_KEY", "sk-oai-the-daemons-own"),
];

/// The machine's env holds exactly the request's credentials (both of Claude Code's here) and
/// catty's own variables: nothing of the daemon's environment, whose keys are decoys.
#[tokio::test]
async fn the_machine_gets_the_requests_credentials_and_none_of_the_daemons() {
    let fake = fake();
    let d = FlyDaemon::start(&fake, &DAEMON_KEYS);
    let credentials = json!({"ANTHROPIC_API_KEY": "sk-ant-a", "CLAUDE_CODE_OAUTH_TOKEN": "oat"});
    d.create(json!({"agent": "claude", "cmd": ["sleep", "600"], "credentials": credentials}))
        .await;
    let [create] = creates(&fake).try_into().unwrap();
    let body = create.body.unwrap();
    let env = body["config"]["env"].as_object().unwrap();
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    let want = [
        "ANTHROPIC_API_KEY",
        "CATTY_AGENT",
        "CATTY_CMD",
        "CATTY_TTL_SEC",
        "CLAUDE_CODE_OAUTH_TOKEN",
        "CONNECT_TOKEN",
    ];
    assert_eq!(names, want);
    assert_eq!(env["ANTHROPIC_API_KEY"], "sk-ant-a");
    assert_eq!(env["CLAUDE_CODE_OAUTH_TOKEN"], "oat");
    assert!(!body.to_string().contains("daemons-own"), "{body}");
    assert!(!d.log().contains("sk-ant-a"), "the daemon logged the key");
}
