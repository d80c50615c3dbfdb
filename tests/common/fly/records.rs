//! What a test reads back from the fake: the requests the API and the edge received, and
//! machines as plain values.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde_json::Value;

use super::machines::Machine;
use super::wire;

/// One request the API received, as sent.
#[allow(
    dead_code,
    reason = "a record: some fields only show in failure messages ({:?})"
)]
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// The body as JSON, when it parsed.
    pub body: Option<Value>,
    pub raw_body: String,
    /// What the fake answered.
    pub status: u16,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        wire::query_get(&self.query, key)
    }
}

/// One request the edge received.
#[allow(
    dead_code,
    reason = "a record: some fields only show in failure messages ({:?})"
)]
#[derive(Debug, Clone)]
pub struct EdgeRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// Its `fly-force-instance-id`.
    pub forced: Option<String>,
    /// The machine it went to.
    pub routed_to: Option<String>,
    /// The edge's own answer when it did not forward (503/502).
    pub status: Option<u16>,
}

/// A machine as a test sees it.
#[allow(
    dead_code,
    reason = "a record: some fields only show in failure messages ({:?})"
)]
#[derive(Debug, Clone)]
pub struct MachineView {
    pub id: String,
    pub name: String,
    /// `created`, `starting`, `started`, `stopping`, `stopped`, `destroying`, `destroyed`.
    pub state: String,
    pub region: String,
    pub instance_id: String,
    /// The config as the API echoes it (normalised).
    pub config: Value,
    pub metadata: BTreeMap<String, String>,
    pub env: BTreeMap<String, String>,
    /// The runtime's process lives.
    pub runtime_alive: bool,
    pub runtime_pid: Option<u32>,
    pub runtime_addr: Option<SocketAddr>,
    /// The current (or last) incarnation's root: `workspace/`, `home/`, `runtime.log`.
    pub root: Option<PathBuf>,
    /// Launches so far, restarts included.
    pub starts: u32,
    pub seeded: bool,
    /// A lease is in force.
    pub leased: bool,
}

impl MachineView {
    /// `fly deploy` would adopt it: `fly_platform_version` and `fly_process_group` are set
    /// (reference §4 `metadata`: API machines must stay "detached").
    pub fn adoptable_by_deploy(&self) -> bool {
        self.metadata.contains_key("fly_platform_version")
            && self.metadata.contains_key("fly_process_group")
    }

    /// The runtime's workspace directory.
    pub fn workspace(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join("workspace"))
    }
}

pub fn view(m: &Machine) -> MachineView {
    let alive = m.runtime.as_ref().is_some_and(|rt| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(rt.pid as i32), None).is_ok()
    });
    MachineView {
        id: m.id.clone(),
        name: m.name.clone(),
        state: m.state.as_str().into(),
        region: m.region.clone(),
        instance_id: m.instance_id.clone(),
        config: m.config.clone(),
        metadata: m.metadata(),
        env: m.env(),
        runtime_alive: alive,
        runtime_pid: m.runtime.as_ref().map(|rt| rt.pid),
        runtime_addr: m.runtime.as_ref().map(|rt| rt.addr),
        root: m.root_path(),
        starts: m.starts,
        seeded: m.seeded,
        leased: m.active_lease().is_some(),
    }
}
