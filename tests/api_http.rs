//! The daemon's HTTP surface: the bearer token, the browser checks (Host, Origin), the token
//! and state directory on disk, and the answers to bad requests.

use std::os::unix::fs::PermissionsExt;

use hyper::StatusCode;

use crate::common::api::{Answer, Daemon};

/// `GET path` with exactly `headers`.
async fn get(d: &Daemon, path: &str, headers: &[(&str, &str)]) -> Answer {
    d.raw("GET", path, headers, "").await.unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A token of the right shape that is not the daemon's.
fn wrong_token() -> String {
    bearer(&"0".repeat(64))
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let d = Daemon::start(false);
    let health = get(&d, "/healthz", &[("host", &d.addr.to_string())]).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );
}

#[tokio::test]
async fn a_request_without_the_token_is_401() {
    let d = Daemon::start(false);
    let none = get(&d, "/v1/sessions", &[("host", &d.addr.to_string())]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "unauthorized");
}

#[tokio::test]
async fn a_wrong_token_is_401_for_a_read_and_a_create() {
    let d = Daemon::start(false);
    let (host, wrong) = (d.addr.to_string(), wrong_token());
    let headers = [("host", host.as_str()), ("authorization", &wrong)];
    let read = get(&d, "/v1/sessions", &headers).await;
    assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    let create = d.raw("POST", "/v1/sessions", &headers, r#"{"agent":"shell"}"#);
    assert_eq!(create.await.unwrap().status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_token_is_accepted() {
    let d = Daemon::start(false);
    let (host, good) = (d.addr.to_string(), bearer(&d.token));
    let ok = get(
        &d,
        "/v1/sessions",
        &[("host", &host), ("authorization", &good)],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

/// DNS rebinding: a browser sends the attacker's host name, with the token or not.
#[tokio::test]
async fn a_host_name_that_is_not_loopback_is_403() {
    let d = Daemon::start(false);
    let good = bearer(&d.token);
    for evil in [
        "evil.example",
        &format!("evil.example:{}", d.addr.port()),
        "127.0.0.1.nip.io",
    ] {
        for path in ["/v1/sessions", "/healthz"] {
            let answer = get(&d, path, &[("host", evil), ("authorization", &good)]).await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{evil} {path}");
            assert_eq!(answer.code(), "forbidden");
        }
    }
}

#[tokio::test]
async fn every_loopback_host_name_is_accepted() {
    let d = Daemon::start(false);
    let good = bearer(&d.token);
    for loopback in [
        "localhost",
        &format!("localhost:{}", d.addr.port()),
        "[::1]",
        "127.0.0.1",
    ] {
        let headers = [("host", loopback), ("authorization", &good)];
        let answer = get(&d, "/v1/sessions", &headers).await;
        assert_eq!(answer.status, StatusCode::OK, "{loopback}");
    }
}

/// Cross-site: any Origin is refused, even a local one and with the right token, and nothing
/// is created.
#[tokio::test]
async fn any_origin_is_403_and_creates_nothing() {
    let d = Daemon::start(false);
    let (host, good) = (d.addr.to_string(), bearer(&d.token));
    for origin in ["http://localhost:3000", "null", &format!("http://{host}")] {
        let headers = [
            ("host", host.as_str()),
            ("authorization", &good),
            ("origin", origin),
        ];
        let create = d.raw("POST", "/v1/sessions", &headers, r#"{"agent":"shell"}"#);
        assert_eq!(
            create.await.unwrap().status,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
        let stop_all = d.raw("POST", "/v1/sessions/stop-all", &headers, "");
        assert_eq!(
            stop_all.await.unwrap().status,
            StatusCode::FORBIDDEN,
            "{origin}"
        );
    }
    assert!(
        d.list().await.is_empty(),
        "a refused request created a session"
    );
}

#[tokio::test]
async fn the_state_directory_and_the_token_file_are_private() {
    let d = Daemon::start(false);
    let token_file = d.state_dir().join("api.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let dir_mode = std::fs::metadata(d.state_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{dir_mode:o}");
}

#[tokio::test]
async fn the_token_is_32_bytes_in_hex() {
    let d = Daemon::start(false);
    assert_eq!(d.token.len(), 64);
    assert!(d.token.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[tokio::test]
async fn the_token_is_kept_across_restarts() {
    let mut d = Daemon::start(false);
    let before = d.token.clone();
    d.terminate();
    d.spawn();
    assert_eq!(d.token, before);
    let headers = [
        ("host", &*d.addr.to_string()),
        ("authorization", &bearer(&before)),
    ];
    let ok = get(&d, "/v1/sessions", &headers).await;
    assert_eq!(ok.status, StatusCode::OK);
}

/// Neither a record nor a runtime came of the requests so far.
async fn assert_nothing_created(d: &Daemon) {
    assert!(d.list().await.is_empty(), "a bad request created a session");
    let mut runtimes = d.state_dir().join("sessions").read_dir().unwrap();
    assert!(runtimes.next().is_none(), "a bad request started a runtime");
}

#[tokio::test]
async fn bad_create_requests_are_400_and_create_nothing() {
    let d = Daemon::start(false);
    let cases = [
        ("{\"agent\":", "malformed JSON"),
        ("", "empty body"),
        ("[1,2]", "not an object"),
        (r#"{"agent":"vim"}"#, "unknown agent"),
        (r#"{"cmd":["bash"]}"#, "missing agent"),
        (r#"{"agent":"shell","ttl_sec":0}"#, "ttl 0"),
        (r#"{"agent":"shell","ttl_sec":604801}"#, "ttl over 7 days"),
        (r#"{"agent":"shell","ttl_sec":-5}"#, "negative ttl"),
        (r#"{"agent":"shell","cmd":[]}"#, "empty cmd"),
        (r#"{"agent":"shell","cmd":[""]}"#, "empty program"),
    ];
    for (body, what) in cases {
        let answer = d.call("POST", "/v1/sessions", body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "bad_request", "{what}");
    }
    assert_nothing_created(&d).await;
}

#[tokio::test]
async fn an_unknown_agent_is_named_in_the_refusal() {
    let d = Daemon::start(false);
    let vim = d.call("POST", "/v1/sessions", r#"{"agent":"vim"}"#).await;
    let message = vim.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("vim"), "{message}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_creates_nothing() {
    let d = Daemon::start(false);
    // Past the 1 MiB that leaves room for the largest credentials.
    let huge = format!(r#"{{"agent":"shell","cmd":["{}"]}}"#, "x".repeat(1 << 20));
    let answer = d.call("POST", "/v1/sessions", &huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_nothing_created(&d).await;
}

#[tokio::test]
async fn an_unknown_session_is_404_naming_it() {
    let d = Daemon::start(false);
    let missing = d.call("GET", "/v1/sessions/brave-tiger-1234", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "not_found");
    assert_eq!(
        missing.json()["error"]["message"],
        "no session \"brave-tiger-1234\""
    );
    let stop = d.call("POST", "/v1/sessions/brave-tiger-1234/stop", "");
    assert_eq!(stop.await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unknown_path_is_404_and_a_wrong_method_405() {
    let d = Daemon::start(false);
    let nothing = d.call("GET", "/v2/nothing", "").await;
    assert_eq!(nothing.status, StatusCode::NOT_FOUND);
    let wrong_method = d.call("DELETE", "/v1/sessions", "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}
