//! The gateway (`catty gateway`): the real binary in front of a strict fake upstream
//! (`common::upstream`), sessions in a real PostgreSQL (`common::gateway`). What reaches the
//! upstream (`forward`), which tokens pass (`auth`), the command (`command`), the key pool
//! (`pool`), how answers end (`ends`), what each answer writes in the books (`metering`),
//! the quota under concurrent requests, past its end and after a crash (`quota`), its cost in
//! time to first byte (`overhead`, ignored: a benchmark).

mod auth;
mod command;
mod ends;
mod fixtures;
mod forward;
mod metering;
mod overhead;
mod pool;
mod quota;

use crate::common::gateway::Gateway;
use crate::common::upstream::{FakeUpstream, Reply};

const KEY_1: &str = "sk-test-key-one";
const KEY_2: &str = "sk-test-key-two";

/// A fake upstream answering `default` with one key, the gateway in front of it.
async fn one_key(default: Reply, env: &[(&str, &str)]) -> (FakeUpstream, Gateway) {
    let upstream = FakeUpstream::start(&[KEY_1], default).await;
    let gateway = Gateway::start(&upstream, &[KEY_1], env).await;
    (upstream, gateway)
}

/// Claude Code's headers with `token` as `ANTHROPIC_AUTH_TOKEN` sends it.
fn claude_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("anthropic-version", "2023-06-01".into()),
        (
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14".into(),
        ),
        ("content-type", "application/json".into()),
    ]
}

fn pairs<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
}
