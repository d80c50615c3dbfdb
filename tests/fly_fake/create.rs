//! Creating machines: what the fake refuses as Fly does, what it answers, where images come
//! from.

use serde_json::{Value, json};

use crate::common::fly::{FakeFly, FakeFlyOptions};

use super::{call, create, edit, error, expect, fake, list, machines_path, session_body, wait};

/// Posts `ok` with each edit (a JSON pointer and its new value, `None` to remove it) and
/// checks that the fake refuses each with a 400 naming `reason`, and creates nothing.
async fn assert_refused(edits: &[(&str, Option<Value>, &str)]) {
    let fake = fake();
    let path = machines_path(&fake);
    for (at, value, reason) in edits {
        let body = edit(session_body("s"), at, value.clone());
        let reply = call(&fake, "POST", &path, Some(body.clone())).await;
        let message = error(&reply, 400);
        assert!(message.contains(reason), "{message:?} for {body}");
    }
    assert!(fake.machines().is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_refused() {
    let fake = fake();
    let body = json!([session_body("s")]);
    let reply = call(&fake, "POST", &machines_path(&fake), Some(body)).await;
    assert!(error(&reply, 400).contains("cannot unmarshal array"));
    assert!(fake.machines().is_empty());
}

#[tokio::test]
async fn a_config_with_an_image_is_required() {
    assert_refused(&[
        ("/config", None, "config is required"),
        ("/config/image", None, "image is required"),
        ("/config/image", Some(json!("")), "image is required"),
    ])
    .await;
}

#[tokio::test]
async fn env_and_metadata_values_must_be_strings() {
    assert_refused(&[
        ("/config/env/CATTY_TTL_SEC", Some(json!(600)), "config.env"),
        (
            "/config/metadata/catty_session",
            Some(json!(true)),
            "config.metadata",
        ),
    ])
    .await;
}

#[tokio::test]
async fn restart_policy_must_be_one_fly_knows() {
    assert_refused(&[
        (
            "/config/restart/policy",
            Some(json!("on-fail")),
            "restart policy",
        ),
        (
            "/config/restart/policy",
            Some(json!("sometimes")),
            "restart policy",
        ),
    ])
    .await;
}

#[tokio::test]
async fn guest_sizes_outside_flys_table_are_refused() {
    let small_performance = json!({"cpu_kind": "performance", "cpus": 1, "memory_mb": 1024});
    assert_refused(&[
        ("/config/guest/cpus", Some(json!(3)), "number of CPUs"),
        (
            "/config/guest/memory_mb",
            Some(json!(300)),
            "256 MiB increments",
        ),
        (
            "/config/guest/memory_mb",
            Some(json!(4096)),
            "maximum is 2048 MB",
        ),
        ("/config/guest/cpu_kind", Some(json!("turbo")), "cpu_kind"),
        (
            "/config/guest",
            Some(small_performance),
            "minimum is 2048 MB",
        ),
    ])
    .await;
}

#[tokio::test]
async fn service_fields_must_have_flys_types_and_values() {
    assert_refused(&[
        (
            "/config/services/0/autostart",
            Some(json!("true")),
            "autostart",
        ),
        (
            "/config/services/0/autostop",
            Some(json!("maybe")),
            "autostop",
        ),
        (
            "/config/services/0/protocol",
            Some(json!("http")),
            "protocol",
        ),
        ("/config/services/0/internal_port", None, "internal_port"),
    ])
    .await;
}

#[tokio::test]
async fn stop_config_and_auto_destroy_are_checked() {
    assert_refused(&[
        ("/config/stop_config/timeout", Some(json!("30")), "duration"),
        (
            "/config/stop_config/signal",
            Some(json!("SIGWHAT")),
            "signal",
        ),
        ("/config/auto_destroy", Some(json!("yes")), "auto_destroy"),
    ])
    .await;
}

#[tokio::test]
async fn an_unknown_region_is_refused() {
    assert_refused(&[("/region", Some(json!("mars")), "region")]).await;
}

#[tokio::test]
async fn guest_sizes_in_flys_table_pass() {
    let fake = fake();
    let perf = json!({"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096});
    create(&fake, edit(session_body("s"), "/config/guest", Some(perf))).await;
    let shared = json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096});
    create(
        &fake,
        edit(session_body("t"), "/config/guest", Some(shared)),
    )
    .await;
    assert_eq!(fake.machines().len(), 2);
}

#[tokio::test]
async fn a_lenient_fake_lets_the_unverified_rules_through() {
    // Not strict: the UNVERIFIED rules (reference §8 *) are off.
    let lenient = FakeFly::start(FakeFlyOptions {
        strict: false,
        ..FakeFlyOptions::default()
    });
    let body = edit(
        session_body("s"),
        "/config/restart/policy",
        Some(json!("on-fail")),
    );
    let created = create(&lenient, edit(body, "/config/guest/cpus", Some(json!(3)))).await;
    assert_eq!(created["config"]["restart"]["policy"], "on-failure");
}

#[tokio::test]
async fn create_answers_a_created_machine() {
    let fake = fake();
    let m = create(
        &fake,
        edit(session_body("s1"), "/skip_launch", Some(json!(true))),
    )
    .await;
    let id = m["id"].as_str().unwrap();
    assert!(
        id.len() == 14 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let instance = m["instance_id"].as_str().unwrap();
    assert_eq!(instance.len(), 26, "a ULID");
    assert_eq!(m["state"], "created");
    assert_eq!(m["region"], "iad");
    assert_eq!(
        m["config"]["services"][0]["autostop"], false,
        "off comes back as false"
    );
    assert_eq!(m["image_ref"]["repository"], "example/catty-exec");
    assert!(m.get("nonce").is_none(), "a nonce only with lease_ttl");
    // skip_launch leaves it created.
    error(&wait(&fake, id, "state=started&timeout=1").await, 408);
    assert_eq!(fake.machine(id).unwrap().state, "created");
    assert!(!fake.machine(id).unwrap().runtime_alive);

    let leased = create(
        &fake,
        edit(session_body("s2"), "/lease_ttl", Some(json!(30))),
    )
    .await;
    assert!(leased["nonce"].as_str().is_some_and(|n| !n.is_empty()));

    let named = edit(session_body("s3"), "/name", Some(json!("catty-one")));
    create(&fake, named.clone()).await;
    let taken = call(&fake, "POST", &machines_path(&fake), Some(named)).await;
    assert_eq!(expect(&taken, 422)["status"], "name_taken");

    // flyctl's fly_* keys are not refused by the API, but they make a machine one that
    // `fly deploy` adopts (reference §4): the view says so.
    let adopted = json!({"fly_platform_version": "v2", "fly_process_group": "app"});
    let body = edit(session_body("s4"), "/config/metadata", Some(adopted));
    let m = create(&fake, body).await;
    let view = fake.machine(m["id"].as_str().unwrap()).unwrap();
    assert!(view.adoptable_by_deploy());
    assert!(!fake.machine(id).unwrap().adoptable_by_deploy());
}

#[tokio::test]
async fn images_come_from_the_registry() {
    let seed = "registry.fly.io/catty-exec:deployment-01J0000000000000000000000";
    let fake = FakeFly::start(FakeFlyOptions {
        seed_image: Some(seed.into()),
        ..FakeFlyOptions::default()
    });
    let listed = list(&fake, "").await;
    assert_eq!(listed.len(), 1, "the seeded app machine");
    let image_ref = &listed[0]["image_ref"];
    assert_eq!(image_ref["registry"], "registry.fly.io");
    assert_eq!(image_ref["tag"], "deployment-01J0000000000000000000000");
    assert!(image_ref["digest"].as_str().unwrap().starts_with("sha256:"));
    let pinned = fake.seed_image_ref().unwrap();
    assert_eq!(pinned, FakeFly::image_ref_of(seed));

    let with_image = |image: &str| edit(session_body("s"), "/config/image", Some(json!(image)));
    create(&fake, with_image(&pinned)).await;
    create(&fake, with_image(seed)).await;
    let never_pushed = call(
        &fake,
        "POST",
        &machines_path(&fake),
        Some(with_image("registry.fly.io/catty-exec:latest")),
    )
    .await;
    assert!(error(&never_pushed, 422).contains("manifest unknown"));
}

#[tokio::test]
async fn a_provider_key_in_a_body_is_refused_and_remembered() {
    let secret = "sk-ant-api03-the-gateways-own-key";
    let fake = FakeFly::start(FakeFlyOptions {
        secrets: vec![secret.into()],
        no_key_vars: true,
        ..FakeFlyOptions::default()
    });
    let path = machines_path(&fake);
    let hidden = edit(
        session_body("s"),
        "/config/metadata/note",
        Some(json!(secret)),
    );
    let named = edit(
        session_body("s"),
        "/config/env/OPENAI_API_KEY",
        Some(json!("x")),
    );
    for (body, why) in [
        (hidden, "carries provider key #0"),
        (named, "puts OPENAI_API_KEY in a machine's env"),
    ] {
        let message = error(&call(&fake, "POST", &path, Some(body)).await, 400);
        assert!(message.contains(why), "{message}");
        assert!(!message.contains(secret));
    }
    assert!(fake.machines().is_empty(), "nothing was created");
    assert_eq!(fake.take_leaks().len(), 2, "each fails the test");
    create(&fake, session_body("s")).await;
}
