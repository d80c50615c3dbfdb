//! Machines as real processes: a start spawns `catty exec` with the machine's env, a stop
//! signals it (reference §2.5, `stop_config`), an exit follows the restart policy and
//! `auto_destroy` (§4, §5), and a destroy kills it (§2.6).

use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::Shared;
use super::machines::{MState, Machine, Runtime, full_image_ref};

/// How long a runtime may take to print `listening on ADDR`.
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// A pause before each restart, growing with the count (flyd backs off too), so a runtime
/// that cannot start does not spin.
const RESTART_BACKOFF: Duration = Duration::from_millis(100);

struct BootSpec {
    root: PathBuf,
    env: Vec<(String, String)>,
    delay: Duration,
}

/// Starts `m` (state `starting`): a fresh root and a `catty exec` spawned by a task of the
/// fake's runtime, which marks the machine `started` once the runtime listens.
pub fn launch(shared: &Arc<Shared>, m: &mut Machine) {
    if shared.closing.load(Ordering::SeqCst) {
        return;
    }
    m.generation += 1;
    m.starts += 1;
    m.set_state(MState::Starting, "start", "user");
    let root = tempfile::Builder::new()
        .prefix("fly-machine-")
        .tempdir()
        .expect("machine root");
    std::fs::create_dir(root.path().join("workspace")).expect("workspace");
    std::fs::create_dir(root.path().join("home")).expect("home");
    let spec = BootSpec {
        env: boot_env(shared, m, &root.path().join("home")),
        root: root.path().to_path_buf(),
        delay: RESTART_BACKOFF * m.restarts.min(20),
    };
    m.root = Some(root);
    tokio::spawn(boot(shared.clone(), m.id.clone(), m.generation, spec));
}

/// What the process sees: PATH from the test, a private HOME, the image's env, what Fly
/// injects (reference §7: `FLY_IMAGE_REF`; runtime-environment docs), then `config.env`.
fn boot_env(shared: &Shared, m: &Machine, home: &std::path::Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
        ("HOME".into(), home.display().to_string()),
    ];
    if let Ok(log) = std::env::var("CATTY_LOG") {
        env.push(("CATTY_LOG".into(), log));
    }
    env.extend(shared.image_env.iter().cloned());
    let fly = [
        ("FLY_APP_NAME", shared.app.clone()),
        ("FLY_MACHINE_ID", m.id.clone()),
        ("FLY_ALLOC_ID", m.id.clone()),
        ("FLY_REGION", m.region.clone()),
        ("FLY_IMAGE_REF", full_image_ref(&m.image_ref)),
        ("FLY_MACHINE_VERSION", m.instance_id.clone()),
        ("FLY_PRIVATE_IP", m.private_ip.clone()),
        ("PRIMARY_REGION", shared.default_region.clone()),
    ];
    env.extend(fly.into_iter().map(|(k, v)| (k.to_string(), v)));
    env.extend(m.env());
    env
}

async fn boot(shared: Arc<Shared>, id: String, generation: u64, spec: BootSpec) {
    tokio::time::sleep(spec.delay).await;
    let mut child = match spawn(&spec) {
        Ok(child) => child,
        Err(e) => {
            eprintln!("fake fly: cannot start catty exec for {id}: {e}");
            return on_exit(&shared, &id, generation, None);
        }
    };
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let read = tokio::time::timeout(BOOT_TIMEOUT, stdout.read_line(&mut line)).await;
    let addr = match read {
        Ok(Ok(n)) if n > 0 => line.trim().strip_prefix("listening on ").map(str::parse),
        _ => None,
    };
    let kept = match (addr, child.id()) {
        (Some(Ok(addr)), Some(pid)) => mark_started(&shared, &id, generation, pid, addr),
        _ => false,
    };
    if !kept {
        // It failed to boot, or a stop or destroy overtook the boot.
        let _ = child.start_kill();
    }
    // Drain stdout so the runtime never blocks on it, and wait for the exit.
    let mut sink = tokio::io::sink();
    let drain = tokio::io::copy(&mut stdout, &mut sink);
    let (_, status) = tokio::join!(drain, child.wait());
    on_exit(&shared, &id, generation, status.ok().and_then(|s| s.code()));
}

fn spawn(spec: &BootSpec) -> std::io::Result<tokio::process::Child> {
    let stderr = if std::env::var_os("CATTY_TEST_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::from(std::fs::File::create(spec.root.join("runtime.log"))?)
    };
    tokio::process::Command::new(env!("CARGO_BIN_EXE_catty"))
        .arg("exec")
        .args(["--addr", "127.0.0.1:0", "--workspace"])
        .arg(spec.root.join("workspace"))
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
}

fn mark_started(
    shared: &Shared,
    id: &str,
    generation: u64,
    pid: u32,
    addr: std::net::SocketAddr,
) -> bool {
    let mut machines = shared.machines.lock().unwrap();
    let Some(m) = machines.iter_mut().find(|m| m.id == id) else {
        return false;
    };
    if m.generation != generation || m.state != MState::Starting {
        return false;
    }
    m.runtime = Some(Runtime { pid, addr });
    m.set_state(MState::Started, "start", "flyd");
    drop(machines);
    shared.notify();
    true
}

/// The runtime of incarnation `generation` exited with `code` (None: killed by a signal or
/// never spawned). An exit nobody asked for follows the restart policy (reference §4).
fn on_exit(shared: &Arc<Shared>, id: &str, generation: u64, code: Option<i32>) {
    let mut machines = shared.machines.lock().unwrap();
    let Some(m) = machines.iter_mut().find(|m| m.id == id) else {
        return;
    };
    if m.generation != generation {
        return;
    }
    m.runtime = None;
    let requested = matches!(m.state, MState::Stopping | MState::Destroying);
    m.push_event(
        json!({"type": "exit", "status": "stopped", "source": "flyd",
        "request": {"exit_event": {"exit_code": code.unwrap_or(-1), "requested_stop": requested}}}),
    );
    match m.state {
        MState::Stopping => finish_stop(m),
        MState::Destroying => m.set_state(MState::Destroyed, "destroy", "flyd"),
        MState::Starting | MState::Started => {
            let again = !shared.closing.load(Ordering::SeqCst)
                && match m.restart_policy() {
                    "always" => true,
                    "no" => false,
                    _ => code != Some(0) && m.restarts < m.max_retries(),
                };
            if again {
                m.restarts += 1;
                launch(shared, m);
            } else {
                finish_stop(m);
            }
        }
        _ => {}
    }
    drop(machines);
    shared.notify();
}

/// A stopped machine with `auto_destroy` and restart `no` is destroyed (reference §5).
fn finish_stop(m: &mut Machine) {
    if m.destroys_when_done() {
        m.set_state(MState::Destroyed, "destroy", "flyd");
    } else {
        m.set_state(MState::Stopped, "stop", "flyd");
    }
}

/// Stops `m`: `signal` to the runtime, SIGKILL after `timeout` (reference §2.5, §4
/// `stop_config`). A machine with no process yet stops at once. The caller notifies.
pub fn stop(shared: &Arc<Shared>, m: &mut Machine, signal: &str, timeout: Duration) {
    let Some(rt) = m.runtime.clone() else {
        m.generation += 1;
        return finish_stop(m);
    };
    m.set_state(MState::Stopping, "stop", "user");
    send(rt.pid, signal);
    let (shared, id, generation) = (shared.clone(), m.id.clone(), m.generation);
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        let machines = shared.machines.lock().unwrap();
        if let Some(m) = machines.iter().find(|m| m.id == id)
            && m.generation == generation
            && m.state == MState::Stopping
            && let Some(rt) = &m.runtime
        {
            send(rt.pid, "SIGKILL");
        }
    });
}

/// Destroys `m`, killing its runtime first if it has one (reference §2.6). The caller
/// notifies.
pub fn destroy(m: &mut Machine) {
    m.lease = None;
    match m.runtime.clone() {
        Some(rt) => {
            m.set_state(MState::Destroying, "destroy", "user");
            send(rt.pid, "SIGKILL");
        }
        None => {
            m.generation += 1;
            m.set_state(MState::Destroyed, "destroy", "user");
        }
    }
}

pub fn send(pid: u32, signal: &str) {
    let signal = Signal::from_str(signal).unwrap_or(Signal::SIGKILL);
    let _ = kill(Pid::from_raw(pid as i32), signal);
}
