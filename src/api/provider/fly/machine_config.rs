//! What catty asks Fly.io for: the body of a create (`config` per reference/fly-machines.md
//! section 4), the metadata that names a machine as a catty session's, and the image to run
//! when `CATTY_IMAGE` is not set.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::guest::Guest;
use super::machines_api::{FlyMachine, ImageRef};
use crate::api::provider::MachineSpec;
use crate::clock::rfc3339;

/// Metadata keys. Never Fly's own `fly_*` keys: a machine carrying `fly_platform_version` and
/// a process group would be adopted (and replaced) by `fly deploy`.
pub(super) const META_SESSION: &str = "catty_session";
pub(super) const META_LABEL: &str = "label";
pub(super) const META_AGENT: &str = "agent";
/// RFC 3339, UTC: when the daemon's backstop destroys the machine if it still runs.
pub(super) const META_EXPIRES_AT: &str = "expires_at";

/// The runtime's port inside the machine (`catty exec`'s default `0.0.0.0:8080`).
const INTERNAL_PORT: u16 = 8080;
/// SIGTERM ends the session at once (the runtime hangs up its program, then SIGKILL after
/// 5 s); 30 s leaves room for an agent to flush.
const STOP_SIGNAL: &str = "SIGTERM";
const STOP_TIMEOUT: &str = "30s";

/// The body of `POST /v1/apps/<app>/machines` for one session.
pub(super) fn create_body(spec: &MachineSpec, image: &str, guest: Guest, expires_at: u64) -> Value {
    let mut body = json!({
        // Unique per session: a second create of the same session (after an ambiguous
        // answer) collides on the name instead of making a twin.
        "name": spec.session_id,
        "config": {
            "image": image,
            "env": env(spec),
            "guest": guest,
            "services": [{
                "protocol": "tcp",
                "internal_port": INTERNAL_PORT,
                "ports": [
                    {"port": 443, "handlers": ["tls", "http"]},
                    {"port": 80, "handlers": ["http"]},
                ],
                // The proxy must never stop an idle session (auto_destroy would then destroy
                // it) nor start one that ended.
                "autostop": "off",
                "autostart": false,
            }],
            // `auto_destroy` only fires with restart policy `no`: the runtime's exit (program
            // done and grace over, TTL, SIGTERM) is the end of the machine.
            "restart": {"policy": "no"},
            "auto_destroy": true,
            "stop_config": {"signal": STOP_SIGNAL, "timeout": STOP_TIMEOUT},
            "metadata": metadata(spec, expires_at),
        },
    });
    if let Some(region) = &spec.region {
        body["region"] = json!(region);
    }
    body
}

/// catty's own variables and the credentials the request brought, or the gateway's URL and
/// the session's token: nothing of the daemon's environment.
fn env(spec: &MachineSpec) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("CONNECT_TOKEN".to_string(), spec.connect_token.clone()),
        ("CATTY_AGENT".to_string(), spec.agent.to_string()),
        ("CATTY_TTL_SEC".to_string(), spec.ttl_sec.to_string()),
    ]);
    if let Some(argv) = &spec.cmd {
        let argv = serde_json::to_string(argv).expect("strings serialize");
        env.insert("CATTY_CMD".to_string(), argv);
    }
    env.extend(spec.credentials.iter().map(|(k, v)| (k.into(), v.into())));
    env.extend(spec.llm.iter().flat_map(|llm| llm.env()));
    env
}

fn metadata(spec: &MachineSpec, expires_at: u64) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        (META_SESSION, spec.session_id.clone()),
        (META_LABEL, spec.label.clone()),
        (META_AGENT, spec.agent.to_string()),
        (META_EXPIRES_AT, rfc3339(expires_at)),
    ])
}

/// A digest-pinned reference to run from the app's machines: the newest one that is not a
/// session's (what `fly deploy` left), else the newest session's. `None` when none has a
/// digest.
pub(super) fn discover_image(machines: &[FlyMachine]) -> Option<String> {
    let mut candidates: Vec<&FlyMachine> = machines.iter().collect();
    candidates.sort_by(|a, b| {
        let (a_ours, b_ours) = (
            a.meta(META_SESSION).is_some(),
            b.meta(META_SESSION).is_some(),
        );
        let newest =
            |m: &FlyMachine| std::cmp::Reverse(std::cmp::max(&m.updated_at, &m.created_at).clone());
        (a_ours, newest(a)).cmp(&(b_ours, newest(b)))
    });
    candidates
        .into_iter()
        .find_map(|m| image_ref(m.image_ref.as_ref()?))
}

/// `registry/repository[:tag]@digest` (flyctl's `FullImageRef`), only with a digest.
fn image_ref(r: &ImageRef) -> Option<String> {
    if r.digest.is_empty() || r.repository.is_empty() {
        return None;
    }
    let mut image = match r.registry.is_empty() {
        true => r.repository.clone(),
        false => format!("{}/{}", r.registry, r.repository),
    };
    if !r.tag.is_empty() {
        image = format!("{image}:{}", r.tag);
    }
    Some(format!("{image}@{}", r.digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::provider::fly::guest;
    use crate::protocol::Agent;

    fn spec(
        cmd: Option<&[&str]>,
        region: Option<&str>,
        credentials: &[(&str, &str)],
    ) -> MachineSpec {
        MachineSpec {
            session_id: "s-0123456789abcdef".into(),
            label: "brave-tiger-1234".into(),
            agent: Agent::Claude,
            cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
            region: region.map(str::to_string),
            cpus: None,
            memory_mb: None,
            ttl_sec: 7200,
            connect_token: "tok".into(),
            // This computer's PATH means nothing on a machine: never sent.
            path: Some("/home/me/.local/bin:/usr/bin".into()),
            credentials: credentials.iter().copied().collect(),
            llm: None,
        }
    }

    #[test]
    fn a_gateway_session_gets_the_url_and_its_token() {
        let mut spec = spec(None, None, &[]);
        spec.llm = Some(crate::api::provider::LlmAccess {
            url: "http://catty-gateway.flycast".into(),
            token: "cst_s-0123456789abcdef.00".into(),
        });
        let body = create_body(&spec, "img", guest::choose(None, None).unwrap(), 0);
        let env = body["config"]["env"].as_object().unwrap();
        assert_eq!(env["CATTY_LLM_URL"], "http://catty-gateway.flycast");
        assert_eq!(env["CATTY_LLM_TOKEN"], "cst_s-0123456789abcdef.00");
        assert_eq!(env.len(), 5, "{env:?}");
    }

    /// The whole body, field by field as reference/fly-machines.md sections 2.1, 4 and 5 say.
    #[test]
    fn create_body_golden() {
        let credentials = [
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01"),
        ];
        let guest = guest::choose(Some(2), Some(2048)).unwrap();
        let body = create_body(
            &spec(Some(&["bash", "-l"]), Some("ams"), &credentials),
            "registry.fly.io/catty-exec:v1@sha256:ab",
            guest,
            1_700_000_000,
        );
        let want = json!({
            "name": "s-0123456789abcdef",
            "region": "ams",
            "config": {
                "image": "registry.fly.io/catty-exec:v1@sha256:ab",
                "env": {
                    "ANTHROPIC_API_KEY": "sk-ant",
                    "CATTY_AGENT": "claude",
                    "CATTY_CMD": "[\"bash\",\"-l\"]",
                    "CATTY_TTL_SEC": "7200",
                    "CLAUDE_CODE_OAUTH_TOKEN": "sk-ant-oat01",
                    "CONNECT_TOKEN": "tok",
                },
                "guest": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048},
                "services": [{
                    "protocol": "tcp",
                    "internal_port": 8080,
                    "ports": [
                        {"port": 443, "handlers": ["tls", "http"]},
                        {"port": 80, "handlers": ["http"]},
                    ],
                    "autostop": "off",
                    "autostart": false,
                }],
                "restart": {"policy": "no"},
                "auto_destroy": true,
                "stop_config": {"signal": "SIGTERM", "timeout": "30s"},
                "metadata": {
                    "catty_session": "s-0123456789abcdef",
                    "label": "brave-tiger-1234",
                    "agent": "claude",
                    "expires_at": "2023-11-14T22:13:20Z",
                },
            },
        });
        assert_eq!(body, want);
    }

    #[test]
    fn only_what_the_session_needs() {
        let body = create_body(
            &spec(None, None, &[]),
            "img",
            guest::choose(None, None).unwrap(),
            0,
        );
        assert!(
            body.get("region").is_none(),
            "Fly picks when no region is given"
        );
        let env = body["config"]["env"].as_object().unwrap();
        let names: Vec<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(names, ["CATTY_AGENT", "CATTY_TTL_SEC", "CONNECT_TOKEN"]);
        let meta = body["config"]["metadata"].as_object().unwrap();
        assert!(meta.keys().all(|k| !k.starts_with("fly_")));
        assert!(
            meta.values().all(Value::is_string),
            "metadata is map<string,string>"
        );
        assert!(
            env.values().all(Value::is_string),
            "env is map<string,string>"
        );
    }

    fn machine(json: Value) -> FlyMachine {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn image_discovery_prefers_deployed_machines_and_digests() {
        let image = |tag: &str, digest: &str| json!({"registry": "registry.fly.io", "repository": "catty-exec", "tag": tag, "digest": digest});
        let app = machine(json!({"id": "a", "updated_at": "2026-01-01T00:00:00Z",
            "image_ref": image("deployment-01", "sha256:aa"), "config": {"metadata": {}}}));
        let newer_app = machine(json!({"id": "b", "updated_at": "2026-02-01T00:00:00Z",
            "image_ref": image("deployment-02", "sha256:bb")}));
        let session = machine(json!({"id": "c", "updated_at": "2026-03-01T00:00:00Z",
            "image_ref": image("", "sha256:cc"), "config": {"metadata": {"catty_session": "s-1"}}}));
        let no_digest = machine(json!({"id": "d", "updated_at": "2026-04-01T00:00:00Z",
            "image_ref": image("latest", "")}));
        let all = [app.clone(), newer_app, session.clone(), no_digest.clone()];
        assert_eq!(
            discover_image(&all).as_deref(),
            Some("registry.fly.io/catty-exec:deployment-02@sha256:bb")
        );
        assert_eq!(
            discover_image(&[session, no_digest.clone()]).as_deref(),
            Some("registry.fly.io/catty-exec@sha256:cc")
        );
        assert_eq!(discover_image(&[no_digest]), None);
        assert_eq!(discover_image(&[]), None);
    }
}
