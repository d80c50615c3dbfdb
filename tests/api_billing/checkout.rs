//! Opening a checkout: from the API (one Stripe customer per user, however many checkouts;
//! refused once paid), from `catty upgrade` (the real binary, no display), and from the
//! gateway's upgrade link in a browser (`303` to Checkout; a tampered or expired link gets a
//! page instead).

use std::process::Command;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;

use super::lifecycle::subscribe;
use super::{Billed, GATEWAY_KEY, PUBLIC_URL, User};
use crate::common::stripe::FakeStripe;
use crate::common::{HttpReply, http_send};

#[tokio::test]
async fn the_customer_is_made_once_across_checkouts() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let first = b.checkout(&alice).await;
    let second = b.checkout(&alice).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_ne!(
        first.json()["url"],
        second.json()["url"],
        "a session per attempt"
    );
    assert_eq!(stripe.customers(), 1);
}

#[tokio::test]
async fn a_paid_user_s_checkout_is_refused_with_409() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    let answer = b.checkout(&alice).await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.body);
    assert_eq!(answer.code(), "already_paid");
}

/// `catty upgrade` as `user` (`None`: logged in nowhere), with no display.
fn upgrade(b: &Billed, user: Option<&User>) -> (Option<i32>, String, String) {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catty"));
    cmd.arg("upgrade")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", home.path())
        .env("CATTY_API_URL", format!("http://{}", b.api.addr));
    if let Some(user) = user {
        cmd.env("CATTY_TOKEN", &user.token);
    }
    let out = cmd.output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn catty_upgrade_prints_the_checkout_url() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (code, out, err) = upgrade(&b, Some(&alice));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("https://checkout.stripe.com/c/pay/cs_test_"),
        "{out}"
    );
    assert!(!out.contains("a browser was opened"), "no display: {out}");
}

#[tokio::test]
async fn catty_upgrade_says_when_already_paid_or_not_logged_in() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    let (code, out, _) = upgrade(&b, Some(&alice));
    assert_eq!(
        (code, out.contains("already on the paid plan")),
        (Some(0), true),
        "{out}"
    );
    let (code, _, err) = upgrade(&b, None);
    assert_eq!(
        (code, err.contains("not logged in")),
        (Some(1), true),
        "{err}"
    );
}

/// `GET path` as a browser sends it (no token).
async fn browse(b: &Billed, path: &str) -> HttpReply {
    let req = hyper::Request::get(path)
        .body(Full::new(Bytes::new()))
        .unwrap();
    http_send(b.api.addr, req).await
}

fn link(user: &str, now: u64) -> String {
    let link = catty::upgrade_link::make(GATEWAY_KEY.as_bytes(), PUBLIC_URL, user, now);
    link.strip_prefix(PUBLIC_URL).unwrap().to_string()
}

#[tokio::test]
async fn the_upgrade_link_sees_the_browser_to_checkout() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let reply = browse(&b, &link(&alice.id, catty::clock::unix_now())).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let location = reply.header("location").unwrap();
    assert!(
        location.starts_with("https://checkout.stripe.com/c/pay/cs_test_"),
        "{location}"
    );
}

#[tokio::test]
async fn a_tampered_or_expired_upgrade_link_gets_a_page_not_a_checkout() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let (alice, bob) = (b.user("alice").await, b.user("bob").await);
    let now = catty::clock::unix_now();
    let tampered = link(&alice.id, now).replace(&alice.id, &bob.id);
    let expired = link(&alice.id, now - catty::upgrade_link::LINK_LIFETIME_SEC - 1);
    for path in [tampered, expired] {
        let reply = browse(&b, &path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(String::from_utf8_lossy(&reply.body).contains("catty upgrade"));
    }
    assert_eq!(stripe.customers(), 0, "no checkout was opened");
}

#[tokio::test]
async fn catty_upgrade_says_when_the_api_has_no_billing() {
    let b = Billed::start_with(&[]).await;
    let alice = b.user("alice").await;
    let (code, _, err) = upgrade(&b, Some(&alice));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("billing is not configured"), "{err}");
}

#[tokio::test]
async fn a_paid_user_s_upgrade_link_says_so_and_opens_no_checkout() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    let alice = b.user("alice").await;
    let (_, completed) = subscribe(&b, &stripe, &alice).await;
    b.deliver(&completed).await;
    let reply = browse(&b, &link(&alice.id, catty::clock::unix_now())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&reply.body).contains("already on the paid plan"));
}

#[tokio::test]
async fn checkout_returns_to_pages_of_the_api() {
    let stripe = FakeStripe::start();
    let b = Billed::start(&stripe).await;
    for (path, says) in [
        ("/billing/success", "paid plan"),
        ("/billing/cancel", "cancelled"),
    ] {
        let reply = browse(&b, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        assert!(
            String::from_utf8_lossy(&reply.body).contains(says),
            "{path}"
        );
    }
}
