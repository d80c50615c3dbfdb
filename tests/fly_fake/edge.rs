//! The edge: routing by `fly-force-instance-id`, autostart, and WebSockets through it.

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::Full;
use serde_json::json;

use crate::common::fly::FakeFly;
use crate::common::{DEADLINE, HttpReply, http_send, sized};

use super::{
    CONNECT_TOKEN, call, create, edit, expect, fake, machine_path, session_body, started, wait,
};

/// A request to the edge with `headers`, on a fresh connection.
async fn edge_get(fake: &FakeFly, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    let mut req = hyper::Request::get(path);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    http_send(fake.edge_addr(), req.body(Full::new(Bytes::new())).unwrap()).await
}

#[tokio::test]
async fn edge_routes_by_forced_instance() {
    let fake = fake();
    let a = started(&fake, "a").await;
    let b = started(&fake, "b").await;
    for id in [&a, &b] {
        let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", id)]).await;
        assert_eq!(reply.status.as_u16(), 200);
        assert_eq!(&reply.body[..], b"ok");
    }
    let routed: Vec<_> = fake
        .edge_requests()
        .iter()
        .map(|r| r.routed_to.clone())
        .collect();
    assert_eq!(routed, [Some(a.clone()), Some(b.clone())]);

    // No fallback for a machine that is not there (reference §6).
    let unknown = edge_get(
        &fake,
        "/healthz",
        &[("fly-force-instance-id", "0123456789abcd")],
    );
    assert_eq!(unknown.await.status.as_u16(), 503);
    let stop = format!("{}/stop", machine_path(&fake, &b));
    expect(&call(&fake, "POST", &stop, None).await, 200);
    expect(&wait(&fake, &b, "state=destroyed&timeout=20").await, 200);
    let destroyed = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &b)]).await;
    assert_eq!(destroyed.status.as_u16(), 503);
    // Without the header: any started machine.
    let any = edge_get(&fake, "/healthz", &[]).await;
    assert_eq!(any.status.as_u16(), 200);
    assert_eq!(
        fake.edge_requests().last().unwrap().routed_to.as_deref(),
        Some(a.as_str())
    );
}

#[tokio::test]
async fn edge_starts_a_stopped_machine_only_with_autostart() {
    let fake = fake();
    let body = edit(session_body("auto"), "/skip_launch", Some(json!(true)));
    let off = create(&fake, body.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &off)]).await;
    assert_eq!(reply.status.as_u16(), 503);
    let on = edit(body, "/config/services/0/autostart", Some(json!(true)));
    let on = create(&fake, on).await["id"].as_str().unwrap().to_string();
    let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &on)]).await;
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(fake.machine(&on).unwrap().state, "started");
    // A service aimed at a port the runtime does not listen on refuses the connection.
    let body = edit(
        session_body("port"),
        "/config/services/0/internal_port",
        Some(json!(3000)),
    );
    let id = create(&fake, body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    expect(&wait(&fake, &id, "timeout=30").await, 200);
    let reply = edge_get(&fake, "/healthz", &[("fly-force-instance-id", &id)]).await;
    assert_eq!(reply.status.as_u16(), 502);
}

#[tokio::test]
async fn websocket_through_the_edge_until_the_link_is_cut() {
    let fake = fake();
    let id = started(&fake, "ws").await;
    let url = format!(
        "ws://{}/connect?{}",
        fake.edge_addr(),
        sized(80, 24).to_query()
    );
    let auth = format!("Bearer {CONNECT_TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("fly-force-instance-id", id.as_str()),
    ];
    let mut ws = catty::net::dial(&url, &headers)
        .await
        .expect("upgrade through the edge");
    ws.set_auto_pong(true);
    let edge = fake.edge_requests();
    let head = edge.last().unwrap();
    assert!(
        head.headers
            .iter()
            .any(|(n, v)| n == "authorization" && *v == auth)
    );

    ws.write_frame(Frame::binary(Payload::Owned(
        b"echo fly-$((6*7))\n".to_vec(),
    )))
    .await
    .unwrap();
    let mut output = Vec::new();
    let seen = tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&output).contains("fly-42") {
            let frame = ws.read_frame().await.expect("a frame");
            if frame.opcode == OpCode::Binary {
                output.extend_from_slice(&frame.payload);
            }
        }
    });
    seen.await.expect("the shell's output through the edge");

    fake.cut_links();
    let after = tokio::time::timeout(DEADLINE, async {
        loop {
            match ws.read_frame().await {
                Ok(frame) if frame.opcode == OpCode::Close => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    after.await.expect("the cut link ends the WebSocket");
    assert!(
        fake.machine(&id).unwrap().runtime_alive,
        "the machine outlives the link"
    );
}
