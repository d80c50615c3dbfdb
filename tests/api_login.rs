//! Login to the hosted API (RFC 8628 brokered by `catty api --database-url`) against the real
//! OIDC provider (`common::oidc`), on real PostgreSQL, with two instances on one database.

use hyper::StatusCode;

use crate::common::hosted::Hosted;
use crate::common::pg;

/// `GET /v1/auth/whoami` with `token` on instance `i`.
async fn whoami(h: &Hosted, i: usize, token: &str) -> crate::common::api::Answer {
    h.client(i, token).call("GET", "/v1/auth/whoami", "").await
}

#[tokio::test]
async fn an_approved_device_login_mints_a_token_that_every_instance_takes() {
    let h = Hosted::start(2, &[]).await;
    let done = h.login(0, "alice").await;
    assert!(done.token.starts_with("cat_"), "{}", done.token);
    assert_eq!(done.email.as_deref(), Some("alice@example.com"));
    assert_eq!(done.subject, "alice");
    for i in [0, 1] {
        let me = whoami(&h, i, &done.token).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        assert_eq!(me.json()["email"], "alice@example.com");
    }
    let sql = pg::cluster().connect(&h.db.name).await;
    let issuer: String = (sql.query_one("SELECT issuer FROM users WHERE subject = 'alice'", &[]))
        .await
        .unwrap()
        .get(0);
    assert_eq!(issuer, h.oidc.issuer);
    // The provider's tokens are not kept: only catty's, as a hash.
    let stored = sql
        .query_one(
            "SELECT count(*) FROM cli_tokens WHERE token_sha256 = sha256($1::text::bytea)",
            &[&done.token],
        )
        .await
        .unwrap();
    assert_eq!(stored.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn a_poll_sooner_than_the_interval_gets_slow_down_from_the_api_on_any_instance() {
    let h = Hosted::start(2, &[]).await;
    let auth = h.device(0).await;
    assert_eq!(auth.interval, 1, "the provider's interval, relayed");
    let first = h.poll(0, &auth.device_code).await;
    assert_eq!(
        first.json()["error"],
        "authorization_pending",
        "{}",
        first.body
    );
    // At once, through the other instance: the API answers without asking the provider.
    let again = h.poll(1, &auth.device_code).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert_eq!(again.json()["error"], "slow_down", "{}", again.body);
    assert_eq!(
        h.oidc.token_polls().await,
        1,
        "one poll reached the provider"
    );
    // The interval grew by 5 s: a poll after it is relayed again.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let later = h.poll(1, &auth.device_code).await;
    assert_eq!(
        later.json()["error"],
        "authorization_pending",
        "{}",
        later.body
    );
    assert_eq!(h.oidc.token_polls().await, 2);
}

#[tokio::test]
async fn a_refused_login_is_access_denied() {
    let h = Hosted::start(1, &[]).await;
    let auth = h.device(0).await;
    h.oidc.deny(&auth.user_code).await;
    let answer = h.poll(0, &auth.device_code).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "access_denied", "{}", answer.body);
}

#[tokio::test]
async fn an_unknown_device_code_is_refused_without_asking_the_provider() {
    let h = Hosted::start(1, &[]).await;
    let answer = h.poll(0, "made-up").await;
    assert_eq!(answer.json()["error"], "invalid_grant", "{}", answer.body);
    assert_eq!(h.oidc.token_polls().await, 0);
}

#[tokio::test]
async fn concurrent_first_logins_of_one_user_make_one_user_row() {
    let h = Hosted::start(2, &[]).await;
    let mut codes = Vec::new();
    for i in 0..6 {
        let auth = h.device(i % 2).await;
        h.oidc.approve(&auth.user_code, "carol").await;
        codes.push(auth.device_code);
    }
    // Every approved code polled at once, half through each instance: the first login of
    // one user, six times at the same moment.
    let polls = codes
        .iter()
        .enumerate()
        .map(|(i, code)| h.poll(i % 2, code));
    let answers = futures_util::future::join_all(polls).await;
    let mut tokens = std::collections::HashSet::new();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        tokens.insert(answer.json()["token"].as_str().unwrap().to_string());
    }
    assert_eq!(tokens.len(), 6, "a token per login");
    let sql = pg::cluster().connect(&h.db.name).await;
    let users = sql
        .query_one("SELECT count(*) FROM users WHERE subject = 'carol'", &[])
        .await
        .unwrap();
    assert_eq!(users.get::<_, i64>(0), 1);
}

#[tokio::test]
async fn logout_revokes_the_token_on_every_instance_at_once_and_all_revokes_every_device() {
    let h = Hosted::start(2, &[]).await;
    let laptop = h.login(0, "dave").await.token;
    let desktop = h.login(1, "dave").await.token;
    let server = h.login(0, "dave").await.token;
    let other_user = h.login(1, "erin").await.token;

    let out = (h.client(0, &laptop))
        .call("POST", "/v1/auth/logout", r#"{"all":false}"#)
        .await;
    assert_eq!(out.json()["revoked"], 1, "{}", out.body);
    for i in [0, 1] {
        assert_eq!(
            whoami(&h, i, &laptop).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(whoami(&h, i, &desktop).await.status, StatusCode::OK);
    }

    let out = (h.client(1, &desktop))
        .call("POST", "/v1/auth/logout", r#"{"all":true}"#)
        .await;
    assert_eq!(out.json()["revoked"], 2, "{}", out.body);
    for i in [0, 1] {
        for token in [&desktop, &server] {
            let answer = h.client(i, token).call("GET", "/v1/sessions", "").await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
        }
        assert_eq!(whoami(&h, i, &other_user).await.status, StatusCode::OK);
    }
}
