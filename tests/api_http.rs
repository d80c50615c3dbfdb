//! The daemon's HTTP surface: the bearer token, the browser checks (Host, Origin), the token
//! and state directory on disk, and the answers to bad requests.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::api::Daemon;
use hyper::StatusCode;

#[tokio::test]
async fn token_host_and_origin_checks() {
    let mut d = Daemon::start(false);
    let host = d.addr.to_string();
    let good = format!("Bearer {}", d.token);
    let wrong = format!("Bearer {}", "0".repeat(64));

    let health = d
        .raw("GET", "/healthz", &[("host", &host)], "")
        .await
        .unwrap();
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok")
    );

    let none = d
        .raw("GET", "/v1/sessions", &[("host", &host)], "")
        .await
        .unwrap();
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "unauthorized");
    let bad = d
        .raw(
            "GET",
            "/v1/sessions",
            &[("host", &host), ("authorization", &wrong)],
            "",
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let create = r#"{"agent":"shell"}"#;
    let bad = d
        .raw(
            "POST",
            "/v1/sessions",
            &[("host", &host), ("authorization", &wrong)],
            create,
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let ok = d
        .raw(
            "GET",
            "/v1/sessions",
            &[("host", &host), ("authorization", &good)],
            "",
        )
        .await
        .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // DNS rebinding: a browser sends the attacker's host name, token or not.
    for evil in [
        "evil.example",
        &format!("evil.example:{}", d.addr.port()),
        "127.0.0.1.nip.io",
    ] {
        for path in ["/v1/sessions", "/healthz"] {
            let answer = d
                .raw("GET", path, &[("host", evil), ("authorization", &good)], "")
                .await
                .unwrap();
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{evil} {path}");
            assert_eq!(answer.code(), "forbidden");
        }
    }
    for loopback in [
        "localhost",
        &format!("localhost:{}", d.addr.port()),
        "[::1]",
        "127.0.0.1",
    ] {
        let answer = d
            .raw(
                "GET",
                "/v1/sessions",
                &[("host", loopback), ("authorization", &good)],
                "",
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{loopback}");
    }
    // Cross-site: any Origin is refused, even a local one and with the right token, and
    // nothing is created.
    for origin in ["http://localhost:3000", "null", &format!("http://{host}")] {
        let headers = [
            ("host", host.as_str()),
            ("authorization", &good),
            ("origin", origin),
        ];
        let answer = d
            .raw("POST", "/v1/sessions", &headers, create)
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{origin}");
        let stop_all = d
            .raw("POST", "/v1/sessions/stop-all", &headers, "")
            .await
            .unwrap();
        assert_eq!(stop_all.status, StatusCode::FORBIDDEN, "{origin}");
    }
    assert!(
        d.list().await.is_empty(),
        "a refused request created a session"
    );

    // On disk: the state directory is private, the token file 0600 and 32 random bytes.
    let token_file = d.state_dir().join("api.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let dir_mode = std::fs::metadata(d.state_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700, "{dir_mode:o}");
    assert_eq!(d.token.len(), 64);
    assert!(d.token.bytes().all(|b| b.is_ascii_hexdigit()));

    // The token is kept across restarts.
    let before = d.token.clone();
    d.terminate();
    d.spawn();
    assert_eq!(d.token, before);
    let ok = d
        .raw(
            "GET",
            "/v1/sessions",
            &[("host", &host), ("authorization", &good)],
            "",
        )
        .await
        .unwrap();
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_requests_are_400_and_create_nothing() {
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
    let vim = d.call("POST", "/v1/sessions", r#"{"agent":"vim"}"#).await;
    assert!(
        vim.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("vim")
    );
    let huge = format!(r#"{{"agent":"shell","cmd":["{}"]}}"#, "x".repeat(100_000));
    let answer = d.call("POST", "/v1/sessions", &huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(d.list().await.is_empty(), "a bad request created a session");
    assert!(
        !d.state_dir()
            .join("sessions")
            .read_dir()
            .unwrap()
            .any(|_| true),
        "a bad request started a runtime"
    );

    let missing = d.call("GET", "/v1/sessions/brave-tiger-1234", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "not_found");
    assert_eq!(
        missing.json()["error"]["message"],
        "no session \"brave-tiger-1234\""
    );
    let stop = d
        .call("POST", "/v1/sessions/brave-tiger-1234/stop", "")
        .await;
    assert_eq!(stop.status, StatusCode::NOT_FOUND);
    assert_eq!(
        d.call("GET", "/v2/nothing", "").await.status,
        StatusCode::NOT_FOUND
    );
    let wrong_method = d.call("DELETE", "/v1/sessions", "").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}
