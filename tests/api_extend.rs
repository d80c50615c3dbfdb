//! `POST /v1/sessions/{key}/extend` with the local provider: the record's deadline and the
//! runtime's move together (the session outlives its first TTL, then ends at the new one), up
//! to the longest TTL, and only for a live session.

use crate::common::api::Daemon;
use crate::common::api::proc::{alive, wait_until};
use catty::clock::unix_now;
use catty::protocol::api::{MAX_TTL_SEC, SessionState};
use hyper::StatusCode;

#[tokio::test]
async fn an_extended_session_outlives_its_first_ttl_and_ends_at_the_new_one() {
    let d = Daemon::start(false);
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"], "ttl_sec": 4}))
        .await;
    let pid = d.runtime_pid(&created.session_id).unwrap();
    let before = d.session(&created.label).await;
    let info = d.extended(&created.label, 8).await;
    assert_eq!(info.expires_at, before.expires_at + 8);
    assert_eq!(info.state, SessionState::Running);
    // Past the first TTL and the daemon's backstop after it (5 s).
    wait_until("the first ttl and its backstop to pass", || {
        unix_now() >= before.expires_at + 6
    });
    assert!(alive(pid), "the runtime ended at its first TTL");
    assert_eq!(d.session(&created.label).await.state, SessionState::Running);
    let ended = d.wait_for_state(&created.label, "expired").await;
    assert!(
        unix_now() + 1 >= info.expires_at,
        "ended before the new deadline"
    );
    assert_eq!(ended.expires_at, info.expires_at);
    wait_until("the runtime to end", || !alive(pid));
}

#[tokio::test]
async fn extend_refuses_unknown_and_ended_sessions_and_bad_bodies() {
    let d = Daemon::start(false);
    let unknown = d.extend("brave-tiger-0000", r#"{"by_sec":60}"#).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    assert_eq!(unknown.code(), "not_found");
    let created = d.create_bash().await;
    for body in [r#"{"by_sec":0}"#, "{}", r#"{"by_sec":"1h"}"#, "nope"] {
        let bad = d.extend(&created.label, body).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}: {}", bad.body);
    }
    d.stop(&created.label).await;
    let ended = d.extend(&created.label, r#"{"by_sec":60}"#).await;
    assert_eq!(ended.status, StatusCode::CONFLICT, "{}", ended.body);
    let message = ended.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("is stopped"), "{message}");
}

#[tokio::test]
async fn extend_stops_at_the_longest_ttl() {
    let d = Daemon::start(false);
    let ttl = MAX_TTL_SEC - 60;
    let created = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"], "ttl_sec": ttl}))
        .await;
    let info = d.extended(&created.label, 3600).await;
    assert_eq!(info.expires_at, info.created_at + MAX_TTL_SEC);
    let again = d.extend(&created.label, r#"{"by_sec":60}"#).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}
