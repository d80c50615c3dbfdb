//! A strict in-process fake of the Fly Machines API (`../shared/reference/fly-machines.md`)
//! and of Fly's edge proxy, for the Fly provider's tests. It rejects what the reference says
//! Fly rejects, injects Fly's bad days on demand (`faults()`), runs each started machine as a
//! real `catty exec` process, and records every request. Served by its own runtime on its own
//! thread, so it works under any test runtime; dropping it kills every machine.

mod actions;
mod api;
mod faults;
mod gojson;
mod guard;
mod handlers;
mod lifecycle;
mod machines;
mod proxy;
mod records;
mod validate;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

pub use faults::{Endpoint, Faults};
use machines::{MState, Machine, full_image_ref, image_ref};
pub use records::{EdgeRequest, MachineView, RecordedRequest};

/// The app catty's machines live in (SPEC §3: `CATTY_EXEC_APP`).
pub const APP: &str = "catty-exec";

/// Fly's regions; a create naming another answers 400 (reference §2.1 `region`).
pub const REGIONS: [&str; 35] = [
    "ams", "arn", "atl", "bog", "bom", "bos", "cdg", "den", "dfw", "ewr", "eze", "fra", "gdl",
    "gig", "gru", "hkg", "iad", "jnb", "lax", "lhr", "mad", "mia", "nrt", "ord", "otp", "phx",
    "qro", "scl", "sea", "sin", "sjc", "syd", "waw", "yul", "yyz",
];

/// How a fake is set up. `Default` is strict, app `catty-exec`, a random `fm2_` token.
#[derive(Debug, Clone)]
pub struct FakeFlyOptions {
    pub app: String,
    /// The token without its scheme. A macaroon (`fm1r_`, `fm1a_`, `fm2_`) must come as
    /// `FlyV1 <tok>`, anything else as `Bearer <tok>` (reference §1).
    pub token: String,
    /// Also enforce the rules the reference marks UNVERIFIED (* in §8).
    pub strict: bool,
    /// Seeds the app with one non-catty machine (a `fly deploy` "app" machine, stopped)
    /// running this image, and makes the image known to the registry (reference §7).
    pub seed_image: Option<String>,
    /// More `registry.fly.io/…` images the registry knows (by tag, and by digest as
    /// [`FakeFly::image_ref_of`] makes it up). Images elsewhere are always accepted.
    pub images: Vec<String>,
    /// Where a create without `region` lands.
    pub default_region: String,
    pub regions: Vec<String>,
    /// Environment baked into the image, under `config.env` (e.g. `CATTY_GRACE_SEC`, `PS1`).
    pub image_env: Vec<(String, String)>,
    /// How long GET still shows a destroyed machine before answering 404 (reference §1).
    pub destroyed_linger: Duration,
    /// Enforce the documented rate limits (reference §1; §8.3 "optional").
    pub rate_limits: bool,
    /// The gateway's provider keys: a request whose body holds one anywhere is refused (400)
    /// and fails the test (`guard.rs`).
    pub secrets: Vec<String>,
    /// The deployment has a gateway: a machine's env with a provider-key variable
    /// (`guard::KEY_VARS`) is refused and fails the test too.
    pub no_key_vars: bool,
}

impl Default for FakeFlyOptions {
    fn default() -> Self {
        FakeFlyOptions {
            app: APP.into(),
            token: format!("fm2_{}", wire::hex(&wire::random_bytes::<24>())),
            strict: true,
            seed_image: None,
            images: Vec::new(),
            default_region: "iad".into(),
            regions: REGIONS.iter().map(|r| r.to_string()).collect(),
            image_env: Vec::new(),
            destroyed_linger: Duration::from_secs(2),
            rate_limits: false,
            secrets: Vec::new(),
            no_key_vars: false,
        }
    }
}

/// What the API server, the edge and the machine tasks share.
pub(crate) struct Shared {
    app: String,
    token: String,
    strict: bool,
    default_region: String,
    regions: Vec<String>,
    /// `image_ref`s of the `registry.fly.io` images that exist.
    images: Vec<Value>,
    image_env: Vec<(String, String)>,
    destroyed_linger: Duration,
    rate_limits: bool,
    machines: Mutex<Vec<Machine>>,
    buckets: Mutex<HashMap<(Endpoint, String), (f64, Instant)>>,
    /// Bumped at every state change; waits and the edge watch it.
    changed: watch::Sender<u64>,
    faults: Faults,
    requests: Mutex<Vec<RecordedRequest>>,
    edge_requests: Mutex<Vec<EdgeRequest>>,
    links: Mutex<JoinSet<()>>,
    round_robin: AtomicUsize,
    /// Set when the fake is dropped: no more launches or restarts.
    closing: AtomicBool,
    secrets: Vec<String>,
    no_key_vars: bool,
    /// What `guard.rs` refused: the fake fails the test with it when dropped.
    leaks: Mutex<Vec<String>>,
}

impl Shared {
    fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Reference §1: fly-go's macaroon prefixes.
fn is_macaroon(token: &str) -> bool {
    ["fm1r_", "fm1a_", "fm2_"]
        .iter()
        .any(|p| token.starts_with(p))
}

/// Reference §7: a `registry.fly.io` image exists only if pushed (here: seeded or listed),
/// matched by digest when the reference pins one, else by tag. Other registries: yes.
fn image_known(shared: &Shared, image: &str) -> bool {
    if !image.starts_with("registry.fly.io/") {
        return true;
    }
    let wanted = image_ref(image);
    let pinned = image.contains('@');
    shared.images.iter().any(|known| {
        known["repository"] == wanted["repository"]
            && if pinned {
                known["digest"] == wanted["digest"]
            } else {
                known["tag"] == wanted["tag"]
            }
    })
}

/// The fake: an API server and an edge on loopback ports, served by a private runtime.
pub struct FakeFly {
    shared: Arc<Shared>,
    api_addr: SocketAddr,
    edge_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeFly {
    /// Binds the API and the edge on `127.0.0.1:0` and starts serving. Callable from sync or
    /// async code.
    pub fn start(options: FakeFlyOptions) -> FakeFly {
        let api = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API");
        let edge = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake edge");
        let (api_addr, edge_addr) = (api.local_addr().unwrap(), edge.local_addr().unwrap());
        api.set_nonblocking(true).unwrap();
        edge.set_nonblocking(true).unwrap();
        let shared = Arc::new(Shared::new(&options));
        let (stop, stopped) = oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-fly".into())
            .spawn(move || run(serving, api, edge, stopped))
            .expect("fake fly thread");
        FakeFly {
            shared,
            api_addr,
            edge_addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// What `FLY_MACHINES_API_BASE` should be: `http://127.0.0.1:PORT`.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The edge (`CATTY_EXEC_URL`): `http://127.0.0.1:PORT`.
    pub fn edge_url(&self) -> String {
        format!("http://{}", self.edge_addr)
    }

    pub fn edge_addr(&self) -> SocketAddr {
        self.edge_addr
    }

    pub fn app(&self) -> &str {
        &self.shared.app
    }

    /// The token without a scheme.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The `Authorization` value fly-go would send: `FlyV1 <macaroon>` or `Bearer <tok>`.
    pub fn auth_header(&self) -> String {
        let scheme = if is_macaroon(&self.shared.token) {
            "FlyV1"
        } else {
            "Bearer"
        };
        format!("{scheme} {}", self.shared.token)
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every API request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests refused for carrying a provider key (`FakeFlyOptions::secrets`,
    /// `no_key_vars`), each as a line that names it, forgotten once taken; the fake's drop
    /// fails the test on any left.
    pub fn take_leaks(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.leaks.lock().unwrap())
    }

    /// Every request head the edge saw, oldest first.
    pub fn edge_requests(&self) -> Vec<EdgeRequest> {
        self.shared.edge_requests.lock().unwrap().clone()
    }

    /// Every machine, destroyed ones included, in creation order.
    pub fn machines(&self) -> Vec<MachineView> {
        let machines = self.shared.machines.lock().unwrap();
        machines.iter().map(records::view).collect()
    }

    pub fn machine(&self, id: &str) -> Option<MachineView> {
        self.machines().into_iter().find(|m| m.id == id)
    }

    /// The seeded machine's image as flyctl names it (`registry/repository:tag@digest`).
    pub fn seed_image_ref(&self) -> Option<String> {
        let machines = self.shared.machines.lock().unwrap();
        let seeded = machines.iter().find(|m| m.seeded)?;
        Some(full_image_ref(&seeded.image_ref))
    }

    /// `image` as the API would pin it: `registry/repository:tag@digest`.
    pub fn image_ref_of(image: &str) -> String {
        full_image_ref(&image_ref(image))
    }

    /// Drops every open edge link at once, as a network failure would.
    pub fn cut_links(&self) {
        self.shared.links.lock().unwrap().abort_all();
    }

    /// Kills machine `id`'s runtime with SIGKILL, as a crash would: the restart policy and
    /// `auto_destroy` decide what follows. False when it has no runtime.
    pub fn crash(&self, id: &str) -> bool {
        let machines = self.shared.machines.lock().unwrap();
        let Some(rt) = machines
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.runtime.clone())
        else {
            return false;
        };
        lifecycle::send(rt.pid, "SIGKILL");
        true
    }

    /// Waits (blocking, polling) until machine `id` is in `state`; false at `within`.
    pub fn wait_for_state(&self, id: &str, state: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.machine(id).is_some_and(|m| m.state == state) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Shared {
    fn new(options: &FakeFlyOptions) -> Shared {
        let mut images: Vec<Value> = options.images.iter().map(|i| image_ref(i)).collect();
        let mut machines = Vec::new();
        if let Some(seed) = &options.seed_image {
            images.push(image_ref(seed));
            machines.push(seeded_machine(seed, &options.default_region));
        }
        Shared {
            app: options.app.clone(),
            token: options.token.clone(),
            strict: options.strict,
            default_region: options.default_region.clone(),
            regions: options.regions.clone(),
            images,
            image_env: options.image_env.clone(),
            destroyed_linger: options.destroyed_linger,
            rate_limits: options.rate_limits,
            machines: Mutex::new(machines),
            buckets: Mutex::default(),
            changed: watch::Sender::new(0),
            faults: Faults::default(),
            requests: Mutex::default(),
            edge_requests: Mutex::default(),
            links: Mutex::new(JoinSet::new()),
            round_robin: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            secrets: options.secrets.clone(),
            no_key_vars: options.no_key_vars,
            leaks: Mutex::default(),
        }
    }
}

/// A machine `fly deploy` made for the `app` process group (reference §7), stopped: it has
/// the image and flyctl's metadata, and never runs here.
fn seeded_machine(image: &str, region: &str) -> Machine {
    let metadata = serde_json::json!({
        "fly_platform_version": "v2", "fly_process_group": "app",
        "fly_release_id": "release-1", "fly_release_version": "1",
        "fly_flyctl_version": "0.4.0",
    });
    let config = serde_json::json!({
        "image": image, "metadata": metadata, "restart": {"policy": "on-failure"},
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
    });
    let mut m = Machine::new(
        wire::machine_id(),
        machines::machine_name(),
        region.into(),
        config,
        image_ref(image),
    );
    m.seeded = true;
    m.set_state(MState::Stopped, "stop", "flyd");
    m
}

/// The fake's thread: a multi-thread runtime serving the API and the edge until `stopped`.
/// Dropping the runtime ends every task it owns (connections, boots, links).
fn run(
    shared: Arc<Shared>,
    api: std::net::TcpListener,
    edge: std::net::TcpListener,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("fake fly runtime");
    runtime.block_on(async move {
        let api = tokio::net::TcpListener::from_std(api).expect("api listener");
        let edge = tokio::net::TcpListener::from_std(edge).expect("edge listener");
        tokio::select! {
            _ = api::serve(api, shared.clone()) => {}
            _ = proxy::serve(edge, shared.clone()) => {}
            _ = stopped => {}
        }
        shared.links.lock().unwrap().abort_all();
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
}

impl Drop for FakeFly {
    /// Kills every runtime, lets their tasks reap them, then stops the fake's runtime.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        let pids: Vec<u32> = {
            let machines = self.shared.machines.lock().unwrap();
            machines
                .iter()
                .filter_map(|m| m.runtime.as_ref().map(|rt| rt.pid))
                .collect()
        };
        for pid in pids {
            lifecycle::send(pid, "SIGKILL");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.machines().iter().any(|m| m.runtime_pid.is_some()) {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let leaks = self.take_leaks();
        if !leaks.is_empty() && !std::thread::panicking() {
            panic!("a provider key was sent to Fly.io:\n{}", leaks.join("\n"));
        }
    }
}
