//! Creating machines: what the fake refuses as Fly does, what it answers, where images come
//! from.

use serde_json::json;

use crate::common::fly::{FakeFly, FakeFlyOptions};

use super::{call, create, edit, error, expect, fake, list, machines_path, session_body, wait};

#[tokio::test]
async fn create_rejects_what_fly_rejects() {
    let fake = fake();
    let path = machines_path(&fake);
    let ok = session_body("s");
    // Each bad body with a word its refusal must name, so each fails for its own reason.
    let bad = [
        (json!([ok.clone()]), "cannot unmarshal array"),
        (edit(ok.clone(), "/config", None), "config is required"),
        (edit(ok.clone(), "/config/image", None), "image is required"),
        (
            edit(ok.clone(), "/config/image", Some(json!(""))),
            "image is required",
        ),
        (
            edit(ok.clone(), "/config/env/CATTY_TTL_SEC", Some(json!(600))),
            "config.env",
        ),
        (
            edit(
                ok.clone(),
                "/config/metadata/catty_session",
                Some(json!(true)),
            ),
            "config.metadata",
        ),
        (
            edit(ok.clone(), "/config/restart/policy", Some(json!("on-fail"))),
            "restart policy",
        ),
        (
            edit(
                ok.clone(),
                "/config/restart/policy",
                Some(json!("sometimes")),
            ),
            "restart policy",
        ),
        (
            edit(ok.clone(), "/config/guest/cpus", Some(json!(3))),
            "number of CPUs",
        ),
        (
            edit(ok.clone(), "/config/guest/memory_mb", Some(json!(300))),
            "256 MiB increments",
        ),
        (
            edit(ok.clone(), "/config/guest/memory_mb", Some(json!(4096))),
            "maximum is 2048 MB",
        ),
        (
            edit(ok.clone(), "/config/guest/cpu_kind", Some(json!("turbo"))),
            "cpu_kind",
        ),
        (
            edit(
                ok.clone(),
                "/config/guest",
                Some(json!({"cpu_kind": "performance", "cpus": 1, "memory_mb": 1024})),
            ),
            "minimum is 2048 MB",
        ),
        (
            edit(
                ok.clone(),
                "/config/services/0/autostart",
                Some(json!("true")),
            ),
            "autostart",
        ),
        (
            edit(
                ok.clone(),
                "/config/services/0/autostop",
                Some(json!("maybe")),
            ),
            "autostop",
        ),
        (
            edit(
                ok.clone(),
                "/config/services/0/protocol",
                Some(json!("http")),
            ),
            "protocol",
        ),
        (
            edit(ok.clone(), "/config/services/0/internal_port", None),
            "internal_port",
        ),
        (
            edit(ok.clone(), "/config/stop_config/timeout", Some(json!("30"))),
            "duration",
        ),
        (
            edit(
                ok.clone(),
                "/config/stop_config/signal",
                Some(json!("SIGWHAT")),
            ),
            "signal",
        ),
        (
            edit(ok.clone(), "/config/auto_destroy", Some(json!("yes"))),
            "auto_destroy",
        ),
        (edit(ok.clone(), "/region", Some(json!("mars"))), "region"),
    ];
    for (body, reason) in bad {
        let reply = call(&fake, "POST", &path, Some(body.clone())).await;
        let message = error(&reply, 400);
        assert!(message.contains(reason), "{message:?} for {body}");
    }
    assert!(fake.machines().is_empty(), "nothing was created");

    // The shapes the table allows pass.
    let perf = json!({"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096});
    create(&fake, edit(ok.clone(), "/config/guest", Some(perf))).await;
    let shared = json!({"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096});
    create(&fake, edit(ok.clone(), "/config/guest", Some(shared))).await;

    // Not strict: the UNVERIFIED rules (§8 *) are off.
    let lenient = FakeFly::start(FakeFlyOptions {
        strict: false,
        ..FakeFlyOptions::default()
    });
    let body = edit(ok.clone(), "/config/restart/policy", Some(json!("on-fail")));
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
