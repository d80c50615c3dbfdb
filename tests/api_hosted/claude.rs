//! Real Claude Code in a hosted session, everything real but the provider and Fly: the hosted
//! API and `catty gateway` on one PostgreSQL, the Fly fake running the real runtime, the
//! gateway in front of a strict fake upstream. Claude Code opens with no dialog, its prompt
//! reaches the upstream with the gateway's key for the session's token, its answer is shown,
//! metered and charged; once the session is stopped its token is refused.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

use super::{Hosted, instance_with};
use crate::common::fly::{FakeFly, FakeFlyOptions};
use crate::common::gateway::{GATEWAY_KEY, Gateway, send};
use crate::common::pg::{self, TestDb};
use crate::common::upstream::{FakeUpstream, Reply, Seen};
use crate::common::{Client, DEADLINE, sized};
use crate::exec_agents::screens::{self, Classify, Verdict};
use crate::exec_agents::{Installed, installed, session_path};
use crate::fly_provider::support::{SEED_IMAGE, creates, made};

/// The gateway's one Anthropic key: the upstream takes nothing else, and the Fly fake fails
/// the test if it sees it in any request (the API's environment holds it as a decoy).
const UPSTREAM_KEY: &str = "sk-ant-api03-fake-upstream-key-0123456789abcdefAA";
const REPLY_TEXT: &str = "hello from the fake";
/// The fixture's counters: input, cache write, cache read, output (the last `message_delta`).
const COUNTERS: [i64; 4] = [12, 345, 6789, 42];

/// Anthropic's stream for one answer: usage with cache fields at the start, cumulative
/// `message_delta`s.
const STREAM: &[&str] = &[
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_e2e\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":345,\"cache_read_input_tokens\":6789,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hello from \"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"the fake\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null,\"stop_sequence\":null},\"usage\":{\"output_tokens\":20}}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

/// The upstream, the gateway and the hosted API on one database; machines run `claude`.
struct Stack {
    upstream: FakeUpstream,
    gateway: Gateway,
    hosted: Hosted,
}

async fn stack(claude: &Installed) -> Stack {
    let upstream = FakeUpstream::start(&[UPSTREAM_KEY], Reply::sse(STREAM)).await;
    let counted = Reply::json(200, r#"{"input_tokens":7}"#);
    upstream.route("POST /v1/messages/count_tokens", counted);
    let db = pg::database().await;
    let shared = TestDb {
        name: db.name.clone(),
        url: db.url.clone(),
    };
    let gateway = Gateway::start_on(shared, &upstream, &[UPSTREAM_KEY], &[]).await;
    let fake = FakeFly::start(FakeFlyOptions {
        seed_image: Some(SEED_IMAGE.into()),
        // The image has Claude Code on its PATH.
        image_env: vec![("PATH".into(), session_path(&claude.dir))],
        secrets: vec![UPSTREAM_KEY.into()],
        no_key_vars: true,
        ..Default::default()
    });
    let url = format!("http://{}", gateway.addr);
    let env = [
        ("CATTY_GATEWAY_URL", url.as_str()),
        ("CATTY_GATEWAY_KEY", GATEWAY_KEY),
        ("ANTHROPIC_API_KEY", UPSTREAM_KEY),
    ];
    let instances = vec![instance_with(&fake, &db, &env)];
    Stack {
        upstream,
        gateway,
        hosted: Hosted {
            fake,
            db,
            instances,
        },
    }
}

#[tokio::test]
async fn claude_code_in_a_hosted_session_is_answered_through_the_gateway_and_charged() {
    for claude in installed("claude", "@anthropic-ai/claude-code") {
        one_prompt(&claude).await;
    }
}

async fn one_prompt(claude: &Installed) {
    let s = stack(claude).await;
    let h = &s.hosted;
    let alice = h.user("alice").await;
    let client = h.as_user(0, &alice);
    let created = client.create(json!({"agent": "claude"})).await;
    let create = creates(&h.fake).pop().expect("a create");
    let env = &create.body.as_ref().unwrap()["config"]["env"];
    let token = env["CATTY_LLM_TOKEN"]
        .as_str()
        .expect("a token")
        .to_string();

    let url = format!(
        "{}/connect?{}",
        created.connect_url,
        sized(120, 40).to_query()
    );
    let mut screen = Screen::attach(&url, &created.connect_token).await;
    let seen = screen.settle(screens::claude).await;
    note(&format!("claude {} hosted: {:?}", claude.version, seen.0));
    assert_eq!(seen.0, Verdict::Main, "the screen was:\n{}", seen.1);

    let runtime = made(&h.fake)[0].runtime_pid.expect("a runtime");
    let agent = agent_env(runtime);
    let gateway_url = format!("ANTHROPIC_BASE_URL=http://{}/anthropic", s.gateway.addr);
    assert!(agent.contains(&gateway_url), "{agent:?}");
    assert!(
        agent.contains(&format!("ANTHROPIC_AUTH_TOKEN={token}")),
        "{agent:?}"
    );
    assert!(!agent.iter().any(|v| v.contains(UPSTREAM_KEY)));
    assert!(!agent.iter().any(|v| v.starts_with("ANTHROPIC_API_KEY=")));

    let mut typist = Client::dial(&url, &created.connect_token).await.unwrap();
    typist.send(b"say hello").await;
    screen.until(|s| s.contains("say hello")).await;
    typist.send(b"\r").await;
    let shown = screen.until(|s| s.contains(REPLY_TEXT)).await;
    note(&format!("claude {} answered:\n{shown}", claude.version));

    let seen = s.upstream.seen();
    for request in &seen {
        note(&format!(
            "upstream got {} {}",
            request.method, request.target
        ));
    }
    let messages: Vec<&Seen> = (seen.iter())
        .filter(|r| r.method == "POST" && r.target == "/v1/messages?beta=true")
        .collect();
    note(&format!(
        "anthropic-beta: {:?}",
        messages.first().and_then(|m| m.header("anthropic-beta"))
    ));
    assert!(!messages.is_empty(), "{seen:#?}");
    for request in &seen {
        assert_eq!(
            request.header("x-api-key"),
            Some(UPSTREAM_KEY),
            "{request:?}"
        );
        assert_eq!(request.header("authorization"), None, "{request:?}");
        assert!(
            !request.contains("cst_") && !request.contains(&token),
            "{request:?}"
        );
    }
    assert!(h.fake.take_leaks().is_empty());

    let units = charged(&s, &alice.id, &created.session_id).await;
    note(&format!(
        "charged {units} units for {} answers",
        messages.len()
    ));

    // Live, the token passes (a count costs nothing); stopped, it is refused.
    assert_eq!(count_tokens(&s, &token).await, (200, true));
    client.stop(&created.label).await;
    refused_soon(&s, &token).await;
}

/// Every answer of the upstream so far was recorded for `session` with the fixture's
/// counters and charged to `user`'s quota, with nothing left held. Claude Code may still be
/// asking (a title, a summary): this waits until the records and the quota agree with the
/// upstream's count of answers.
async fn charged(s: &Stack, user: &str, session: &str) -> i64 {
    let sql = pg::cluster().connect(&s.hosted.db.name).await;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answers = (s.upstream.seen().iter())
            .filter(|r| r.target.starts_with("/v1/messages?"))
            .count();
        let rows = sql
            .query(
                "SELECT input_tokens, cache_write_tokens, cache_read_tokens, output_tokens,
                        units, reported, provider
                 FROM usage_events WHERE session_id = $1 AND user_id = $2",
                &[&session, &user],
            )
            .await
            .unwrap();
        let quota = sql
            .query_one(
                "SELECT used, reserved FROM quota WHERE user_id = $1",
                &[&user],
            )
            .await
            .unwrap();
        let (used, reserved): (i64, i64) = (quota.get(0), quota.get(1));
        if rows.len() == answers && reserved == 0 {
            let mut units = 0;
            for row in &rows {
                let counters: [i64; 4] = std::array::from_fn(|i| row.get(i));
                assert_eq!(counters, COUNTERS);
                assert!(row.get::<_, i64>(4) > 0);
                assert!(row.get::<_, bool>(5), "reported by the stream");
                assert_eq!(row.get::<_, String>(6), "anthropic");
                units += row.get::<_, i64>(4);
            }
            assert_eq!(used, units);
            return units;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {answers} recorded, {reserved} still reserved",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /anthropic/v1/messages/count_tokens` with `token`, straight to the gateway: its
/// status, and whether it reached the upstream.
async fn count_tokens(s: &Stack, token: &str) -> (u16, bool) {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    let body = r#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}]}"#;
    let before = s.upstream.seen().len();
    let req = s.gateway.post(
        "/anthropic/v1/messages/count_tokens?beta=true",
        &headers,
        body,
    );
    let status = send(s.gateway.addr, req).await.status().as_u16();
    (status, s.upstream.seen().len() > before)
}

/// The stopped session's token gets the gateway's 401 within its cache time (2 s), and
/// nothing reaches the upstream with it any more.
async fn refused_soon(s: &Stack, token: &str) {
    let stopped = Instant::now();
    loop {
        match count_tokens(s, token).await {
            (401, reached) => {
                assert!(!reached, "the upstream's 401, not the gateway's");
                break;
            }
            (status, _) => assert!(
                stopped.elapsed() < Duration::from_secs(5),
                "still {status} after the stop"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    note(&format!("401 {:?} after the stop", stopped.elapsed()));
}

/// The environment of the runtime's child (Claude Code), one `NAME=value` an entry.
fn agent_env(runtime: u32) -> Vec<String> {
    let ppid = |stat: &str| {
        // `pid (comm) state ppid …`: the command may hold spaces and parentheses.
        let after = &stat[stat.rfind(')')? + 1..];
        after.split_whitespace().nth(1)?.parse::<u32>().ok()
    };
    let child = std::fs::read_dir("/proc").unwrap().flatten().find(|entry| {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        ppid(&stat) == Some(runtime)
    });
    let environ = std::fs::read(child.expect("the agent's process").path().join("environ"));
    let environ = String::from_utf8_lossy(&environ.unwrap()).into_owned();
    environ.split('\0').map(str::to_string).collect()
}

/// Shown even when the test passes (the harness captures `eprintln!`).
fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Claude Code's screen, read through one client of the runtime's terminal.
struct Screen {
    output: mpsc::UnboundedReceiver<Vec<u8>>,
    parser: vt100::Parser,
}

/// Claude Code's first screen may take long offline (the reference saw ~18 s).
const AGENT_DEADLINE: Duration = Duration::from_secs(120);
/// A verdict counts once the screen kept it this long: first-run dialogs come one after another.
const STABLE_FOR: Duration = Duration::from_secs(5);

impl Screen {
    async fn attach(url: &str, token: &str) -> Screen {
        let client = Client::dial(url, token).await.unwrap();
        let (tx, output) = mpsc::unbounded_channel();
        // The reader owns the client: a frame must never be read halfway.
        tokio::spawn(read(client, tx));
        let (rows, cols) = (40.try_into().unwrap(), 120.try_into().unwrap());
        Screen {
            output,
            parser: vt100::Parser::new(rows, cols, 0),
        }
    }

    /// The screen once `classify` gave one verdict (not Unknown) for [`STABLE_FOR`].
    async fn settle(&mut self, classify: Classify) -> (Verdict, String) {
        let mut held: Option<(Verdict, Instant)> = None;
        let deadline = Instant::now() + AGENT_DEADLINE;
        loop {
            self.read_for(Duration::from_millis(500)).await;
            let screen = self.parser.screen().contents();
            let verdict = classify(&screen);
            match &held {
                Some((v, since)) if *v == verdict && verdict != Verdict::Unknown => {
                    if since.elapsed() >= STABLE_FOR {
                        return (verdict, screen);
                    }
                }
                Some((v, _)) if *v == verdict => {}
                _ => held = Some((verdict.clone(), Instant::now())),
            }
            if Instant::now() > deadline {
                return (verdict, screen);
            }
        }
    }

    /// The screen once `test` holds of it.
    async fn until(&mut self, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + AGENT_DEADLINE;
        loop {
            let screen = self.parser.screen().contents();
            if test(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "not on the screen:\n{screen}");
            self.read_for(Duration::from_millis(200)).await;
        }
    }

    /// Takes what comes within `wait`.
    async fn read_for(&mut self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        while let Ok(Some(bytes)) = tokio::time::timeout_at(until, self.output.recv()).await {
            self.parser.process(&bytes);
        }
    }
}

async fn read(mut client: Client, tx: mpsc::UnboundedSender<Vec<u8>>) {
    let mut sent = 0;
    while let Ok(true) = client.step().await {
        if client.output.len() > sent {
            let _ = tx.send(client.output[sent..].to_vec());
            sent = client.output.len();
        }
    }
}
