//! The fake's machines: their states (reference §3), their JSON as the API shows it (§2.1),
//! what their config says about restarts, stops and services (§4), and leases (§2.8).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::wire::{hex, now_millis, now_rfc3339, random_bytes, rfc3339, ulid};

/// The states the fake goes through (reference §3). `suspended` and `failed` are never
/// reached: catty does not suspend, and a runtime that fails to boot exits like a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MState {
    Created,
    Starting,
    Started,
    Stopping,
    Stopped,
    Destroying,
    Destroyed,
}

impl MState {
    pub fn as_str(self) -> &'static str {
        match self {
            MState::Created => "created",
            MState::Starting => "starting",
            MState::Started => "started",
            MState::Stopping => "stopping",
            MState::Stopped => "stopped",
            MState::Destroying => "destroying",
            MState::Destroyed => "destroyed",
        }
    }

    /// Persistent and terminal states (reference §3), what a wait for `settled` accepts.
    pub fn settled(self) -> bool {
        matches!(
            self,
            MState::Created | MState::Started | MState::Stopped | MState::Destroyed
        )
    }
}

/// A running `catty exec` behind a started machine.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub pid: u32,
    pub addr: SocketAddr,
}

/// A lease (reference §2.8).
#[derive(Debug, Clone)]
pub struct Lease {
    pub nonce: String,
    pub owner: String,
    pub description: String,
    pub expires: SystemTime,
    pub version: String,
}

/// Who holds leases in this fake: the token's owner.
pub const LEASE_OWNER: &str = "tester@example.com";

impl Lease {
    pub fn new(ttl: Duration, description: String) -> Lease {
        Lease {
            nonce: hex(&random_bytes::<6>()),
            owner: LEASE_OWNER.into(),
            description,
            expires: SystemTime::now() + ttl,
            version: ulid(),
        }
    }

    /// The `{status:"success", data:{…}}` envelope of reference §2.8.
    pub fn envelope(&self) -> Value {
        let expires_at = self
            .expires
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        json!({"status": "success", "data": {
            "nonce": self.nonce, "expires_at": expires_at, "owner": self.owner,
            "description": self.description, "version": self.version,
        }})
    }
}

pub struct Machine {
    pub id: String,
    pub name: String,
    pub region: String,
    pub instance_id: String,
    pub private_ip: String,
    pub state: MState,
    /// The normalised config, `metadata` included (the metadata endpoints edit it in place).
    pub config: Value,
    pub image_ref: Value,
    pub created_at: String,
    pub updated_at: String,
    /// Newest first, as the API lists them.
    pub events: Vec<Value>,
    pub lease: Option<Lease>,
    pub cordoned: bool,
    pub runtime: Option<Runtime>,
    /// Bumped at each launch and whenever a launch in flight must be abandoned, so a late
    /// boot or exit of an older incarnation changes nothing.
    pub generation: u64,
    /// The current incarnation's root (`workspace/`, `home/`, `runtime.log`): fresh at each
    /// start, as a machine's root file system is.
    pub root: Option<tempfile::TempDir>,
    /// Fault: never leaves `created`.
    pub stuck: bool,
    pub starts: u32,
    pub restarts: u32,
    pub destroyed_at: Option<Instant>,
    /// A non-catty machine seeded into the app (`FakeFlyOptions::seed_image`); never runs.
    pub seeded: bool,
}

impl Machine {
    pub fn new(id: String, name: String, region: String, config: Value, image_ref: Value) -> Self {
        let ip = random_bytes::<4>();
        let now = now_rfc3339();
        Machine {
            id,
            name,
            region,
            instance_id: ulid(),
            private_ip: format!("fdaa:0:1:a7b:{:x}:{}:{}:2", ip[0], hex(&ip[1..3]), ip[3]),
            state: MState::Created,
            config,
            image_ref,
            created_at: now.clone(),
            updated_at: now,
            events: Vec::new(),
            lease: None,
            cordoned: false,
            runtime: None,
            generation: 0,
            root: None,
            stuck: false,
            starts: 0,
            restarts: 0,
            destroyed_at: None,
            seeded: false,
        }
    }

    /// The Machine object (reference §2.1); `summary` omits config, checks and events (§2.4).
    pub fn to_json(&self, summary: bool) -> Value {
        let mut m = json!({
            "id": self.id, "name": self.name, "state": self.state.as_str(),
            "region": self.region, "instance_id": self.instance_id,
            "private_ip": self.private_ip, "image_ref": self.image_ref,
            "created_at": self.created_at, "updated_at": self.updated_at,
            "host_status": "ok", "cordoned": self.cordoned,
        });
        if !summary {
            m["config"] = self.config.clone();
            m["events"] = Value::Array(self.events.clone());
            m["checks"] = json!([]);
        }
        m
    }

    /// Moves to `state`, recording an event as flyd would.
    pub fn set_state(&mut self, state: MState, kind: &str, source: &str) {
        self.state = state;
        self.updated_at = now_rfc3339();
        if state == MState::Destroyed {
            self.destroyed_at = Some(Instant::now());
        }
        self.push_event(json!({"type": kind, "status": state.as_str(), "source": source}));
    }

    pub fn push_event(&mut self, mut event: Value) {
        event["id"] = ulid().into();
        event["timestamp"] = now_millis().into();
        self.events.insert(0, event);
    }

    /// Destroyed long enough ago that the API answers 404 (reference §1: "GET shows
    /// destroyed for a while, then 404").
    pub fn gone(&self, linger: Duration) -> bool {
        self.destroyed_at.is_some_and(|t| t.elapsed() >= linger)
    }

    pub fn metadata(&self) -> BTreeMap<String, String> {
        string_map(&self.config["metadata"])
    }

    pub fn env(&self) -> BTreeMap<String, String> {
        string_map(&self.config["env"])
    }

    /// `restart.policy`; `on-failure` when unset (reference §4).
    pub fn restart_policy(&self) -> &str {
        self.config["restart"]["policy"]
            .as_str()
            .unwrap_or("on-failure")
    }

    /// `restart.max_retries`, default 10 (reference §4).
    pub fn max_retries(&self) -> u32 {
        self.config["restart"]["max_retries"]
            .as_u64()
            .map_or(10, |n| n as u32)
    }

    /// `auto_destroy` fires only with `restart.policy: "no"` (reference §4, §5).
    pub fn destroys_when_done(&self) -> bool {
        self.config["auto_destroy"].as_bool() == Some(true) && self.restart_policy() == "no"
    }

    /// The signal and grace of a stop: the request's, else `stop_config`'s, else SIGINT (the
    /// documented default, reference §2.5) and 5 s (UNVERIFIED: Fly's kill timeout default).
    pub fn stop_plan(
        &self,
        signal: Option<String>,
        timeout: Option<Duration>,
    ) -> (String, Duration) {
        let config = &self.config["stop_config"];
        let signal = signal
            .or_else(|| config["signal"].as_str().map(str::to_string))
            .unwrap_or_else(|| "SIGINT".into());
        let timeout = timeout
            .or_else(|| super::wire::parse_duration(&config["timeout"]).ok())
            .unwrap_or(Duration::from_secs(5));
        (signal, timeout)
    }

    /// The lease that is still in force, if any.
    pub fn active_lease(&self) -> Option<&Lease> {
        self.lease
            .as_ref()
            .filter(|l| l.expires > SystemTime::now())
    }

    /// Reference §2.8: with a lease held, a mutation needs its nonce, else 409.
    pub fn lease_conflict(&self, nonce: Option<&str>) -> Option<String> {
        let lease = self.active_lease()?;
        (nonce != Some(lease.nonce.as_str())).then(|| {
            format!(
                "aborted: machine ID {} lease currently held by {}, expires at {}",
                self.id,
                lease.owner,
                rfc3339(lease.expires)
            )
        })
    }

    /// The service the edge reaches over HTTP on 443, with the port it forwards to (reference
    /// §6: WebSockets through the `http` handler; strict also wants `tls`, as the app's
    /// public hostname is HTTPS).
    pub fn http_service_port(&self, strict: bool) -> Option<u16> {
        let services = self.config["services"].as_array()?;
        services.iter().find_map(|s| {
            let serves = s["protocol"] == "tcp"
                && s["ports"].as_array()?.iter().any(|p| {
                    let handlers: Vec<&str> = p["handlers"]
                        .as_array()
                        .map(|h| h.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let tls_ok = !strict || handlers.contains(&"tls");
                    (p["port"] == 443 || (!strict && p["port"] == 80))
                        && handlers.contains(&"http")
                        && tls_ok
                });
            serves.then(|| s["internal_port"].as_u64().map(|p| p as u16))?
        })
    }

    /// Whether some service has `autostart: true` (reference §6: the edge may start it).
    pub fn autostart(&self) -> bool {
        self.config["services"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["autostart"] == true))
    }

    /// The port `catty exec` listens on inside the machine: `CATTY_EXEC_ADDR`'s, or 8080
    /// (SPEC §4).
    pub fn runtime_port(&self) -> u16 {
        self.config["env"]["CATTY_EXEC_ADDR"]
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(8080)
    }

    pub fn root_path(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.path().to_path_buf())
    }
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// A Fly-style machine name, `adjective-noun-NNNN`.
pub fn machine_name() -> String {
    const ADJ: [&str; 8] = [
        "late", "quiet", "bold", "wispy", "green", "young", "odd", "small",
    ];
    const NOUN: [&str; 8] = [
        "wave", "sun", "field", "river", "snow", "dust", "fire", "moon",
    ];
    let r = random_bytes::<4>();
    let n = u16::from_be_bytes([r[2], r[3]]) % 9000 + 1000;
    format!("{}-{}-{n}", ADJ[r[0] as usize % 8], NOUN[r[1] as usize % 8])
}

/// `image_ref` of an image reference (reference §2.1, §7): `registry/repository:tag@digest`,
/// the digest made up (stable per reference) when the reference has none.
pub fn image_ref(image: &str) -> Value {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest.to_string())),
        None => (image, None),
    };
    let (name, tag) = match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, t),
        _ if digest.is_some() => (name, ""),
        _ => (name, "latest"),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((r, rest)) if r.contains('.') || r.contains(':') => (r, rest.to_string()),
        _ => ("docker-hub-mirror.fly.io", name.to_string()),
    };
    let digest =
        digest.unwrap_or_else(|| made_up_digest(&format!("{registry}/{repository}:{tag}")));
    json!({"registry": registry, "repository": repository, "tag": tag, "digest": digest,
           "labels": {}})
}

/// A `sha256:` digest derived from the reference (FNV, repeated): not a real hash, only
/// stable and well-formed.
pub fn made_up_digest(image: &str) -> String {
    let mut out = String::from("sha256:");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..4u8 {
        for b in image.bytes().chain([round]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// The full reference of an `image_ref`, `registry/repository:tag@digest` (flyctl's
/// `FullImageRef`, reference §7).
pub fn full_image_ref(image_ref: &Value) -> String {
    format!(
        "{}/{}:{}@{}",
        image_ref["registry"].as_str().unwrap_or_default(),
        image_ref["repository"].as_str().unwrap_or_default(),
        image_ref["tag"].as_str().unwrap_or_default(),
        image_ref["digest"].as_str().unwrap_or_default()
    )
}
