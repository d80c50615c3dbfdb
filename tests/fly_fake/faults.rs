//! The fault switches, rate limits, leases and metadata edits.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;

use crate::common::fly::{Endpoint, FakeFly, FakeFlyOptions};
use crate::common::http_send;

use super::{
    call, create, edit, error, expect, fake, list, machine_path, machines_path, session_body,
    started, wait,
};

#[tokio::test]
async fn timeout_after_create_leaves_a_machine() {
    let fake = fake();
    fake.faults().timeout_after_create(1);
    let reply = call(
        &fake,
        "POST",
        &machines_path(&fake),
        Some(session_body("dup")),
    )
    .await;
    assert!(error(&reply, 408).starts_with("deadline_exceeded"));
    let found = list(&fake, "metadata.catty_session=dup").await;
    assert_eq!(found.len(), 1, "the 408 came after the machine was made");
    let id = found[0]["id"].as_str().unwrap();
    expect(&wait(&fake, id, "timeout=30").await, 200);
    // A naive retry makes a duplicate.
    create(&fake, session_body("dup")).await;
    assert_eq!(list(&fake, "metadata.catty_session=dup").await.len(), 2);
}

#[tokio::test]
async fn injected_faults_fire_then_clear() {
    let fake = fake();
    let path = machines_path(&fake);
    fake.faults().throttle(Endpoint::Create, 2, Some(3));
    for _ in 0..2 {
        let reply = call(&fake, "POST", &path, Some(session_body("t"))).await;
        error(&reply, 429);
        assert_eq!(reply.header("retry-after"), Some("3"));
    }
    expect(&call(&fake, "GET", &path, None).await, 200);
    fake.faults().throttle(Endpoint::Any, 1, None);
    let reply = call(&fake, "GET", &path, None).await;
    error(&reply, 429);
    assert_eq!(reply.header("retry-after"), None);
    fake.faults().server_error(Endpoint::List, 1, 503);
    error(&call(&fake, "GET", &path, None).await, 503);
    expect(&call(&fake, "GET", &path, None).await, 200);

    fake.faults().no_capacity("ams", true);
    let body = edit(session_body("c"), "/region", Some(json!("ams")));
    let full = call(&fake, "POST", &path, Some(body.clone())).await;
    assert_eq!(expect(&full, 422)["status"], "insufficient_capacity");
    fake.faults().no_capacity("ams", false);
    create(&fake, body).await;
    assert!(fake.machines().iter().all(|m| m.region == "ams"));
    assert_eq!(fake.machines().len(), 1);
}

#[tokio::test]
async fn documented_rate_limits_when_switched_on() {
    let fake = FakeFly::start(FakeFlyOptions {
        rate_limits: true,
        ..FakeFlyOptions::default()
    });
    let body = edit(session_body("r"), "/skip_launch", Some(json!(true)));
    // Creates: 1 req/s per app with bursts of 3 (reference §1).
    for _ in 0..3 {
        create(&fake, body.clone()).await;
    }
    error(
        &call(&fake, "POST", &machines_path(&fake), Some(body)).await,
        429,
    );
    assert_eq!(list(&fake, "").await.len(), 3);
}

#[tokio::test]
async fn leases_guard_mutations() {
    let fake = fake();
    let id = started(&fake, "l").await;
    let lease_path = format!("{}/lease", machine_path(&fake, &id));
    let lease = expect(
        &call(&fake, "POST", &lease_path, Some(json!({"ttl": 60}))).await,
        201,
    );
    assert_eq!(lease["status"], "success");
    let nonce = lease["data"]["nonce"].as_str().unwrap().to_string();
    error(&call(&fake, "POST", &lease_path, None).await, 409);
    let stop = format!("{}/stop", machine_path(&fake, &id));
    let held = error(&call(&fake, "POST", &stop, None).await, 409);
    assert!(held.contains("lease currently held by"), "{held}");
    error(&call(&fake, "DELETE", &lease_path, None).await, 400);

    let with_nonce = hyper::Request::post(&stop)
        .header("authorization", fake.auth_header())
        .header("fly-machine-lease-nonce", &nonce)
        .body(Full::new(Bytes::new()))
        .unwrap();
    expect(&http_send(fake.api_addr(), with_nonce).await, 200);
}

#[tokio::test]
async fn metadata_edits_keep_the_version() {
    let fake = fake();
    let m = create(
        &fake,
        edit(session_body("m"), "/skip_launch", Some(json!(true))),
    )
    .await;
    let id = m["id"].as_str().unwrap();
    let key = format!("{}/metadata/catty_expires_at", machine_path(&fake, id));
    let set = call(
        &fake,
        "POST",
        &key,
        Some(json!({"value": "2030-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(set.status.as_u16(), 204);
    error(
        &call(&fake, "POST", &key, Some(json!({"value": 5}))).await,
        400,
    );
    let metadata = format!("{}/metadata", machine_path(&fake, id));
    let got = expect(&call(&fake, "GET", &metadata, None).await, 200);
    assert_eq!(got["catty_expires_at"], "2030-01-01T00:00:00Z");
    let after = expect(
        &call(&fake, "GET", &machine_path(&fake, id), None).await,
        200,
    );
    assert_eq!(after["instance_id"], m["instance_id"]);
    assert_eq!(call(&fake, "DELETE", &key, None).await.status.as_u16(), 204);
    let metadata = fake.machine(id).unwrap().metadata;
    assert!(!metadata.contains_key("catty_expires_at"));
}

/// Reference §1, §2.9: an unknown machine is 404 `not_found`, and a value must be a string.
#[tokio::test]
async fn metadata_edits_want_a_known_machine_and_a_string() {
    let fake = fake();
    let unknown = format!(
        "{}/metadata/expires_at",
        machine_path(&fake, "3d8d9e7fa24e89")
    );
    let value = json!({"value": "2030-01-01T00:00:00Z"});
    let said = error(&call(&fake, "POST", &unknown, Some(value)).await, 404);
    assert!(said.starts_with("not_found"), "{said}");
    let m = create(
        &fake,
        edit(session_body("m"), "/skip_launch", Some(json!(true))),
    )
    .await;
    let key = format!(
        "{}/metadata/expires_at",
        machine_path(&fake, m["id"].as_str().unwrap())
    );
    for body in [None, Some(json!({})), Some(json!({"value": null}))] {
        error(&call(&fake, "POST", &key, body.clone()).await, 400);
    }
    assert!(
        !(fake.machine(m["id"].as_str().unwrap()).unwrap().metadata).contains_key("expires_at")
    );
}
