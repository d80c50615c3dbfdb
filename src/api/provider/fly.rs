//! The Fly.io provider: one Fly Machine per session in the app `CATTY_EXEC_APP`, made through
//! the Machines API (reference/fly-machines.md) and reached through Fly's edge at the exec URL
//! with `fly-force-instance-id`. A create is never repeated blindly (after an ambiguous answer
//! the machine is looked up by its `catty_session` metadata first), no "none exist" is
//! concluded from one empty list, and a reaper destroys machines past their `expires_at`.

mod deadline;
mod error;
mod guest;
mod machine_config;
mod machines_api;
mod reaper;
mod start;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{InFlight, Liveness, Machine, MachineSpec, Provider};
use crate::config::FlyConfig;
use crate::locks;
use crate::protocol::api::Ttl;
use machine_config::META_SESSION;
use machines_api::{FlyError, FlyMachine, MachinesApi};

/// Makes Fly's edge route a request to one machine, with no fallback to another.
pub(super) const FORCE_INSTANCE_HEADER: &str = "fly-force-instance-id";
/// Lists (or lookups) in a row before "none" is believed: the API once answered empty lists
/// for apps full of machines.
const CONFIRM_TRIES: u32 = 3;
const CONFIRM_PAUSE: Duration = Duration::from_secs(1);
/// How long a stopped machine gets to wind down before it is destroyed by force.
const STOP_WAIT_SEC: u64 = 15;
/// States from which a machine will not start any more.
const ENDED: [&str; 5] = [
    "stopped",
    "failed",
    "destroying",
    "destroyed",
    "launch_failed",
];

pub struct Fly {
    inner: Arc<Inner>,
    stop_reaper: watch::Sender<bool>,
    reaper: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    api: MachinesApi,
    app: String,
    exec_url: String,
    image: Option<String>,
    start_timeout: Duration,
    /// Sessions this daemon is creating a machine for: the reaper leaves them alone.
    creating: Mutex<HashSet<String>>,
}

/// What the store keeps about a Fly machine.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FlyPrivate {
    #[serde(default)]
    instance_id: String,
}

impl Fly {
    /// The provider, with its reaper running (until [`Provider::shutdown`]).
    pub fn new(config: FlyConfig) -> anyhow::Result<Fly> {
        let api = MachinesApi::new(&config.api_base, &config.app, &config.token)?;
        tracing::info!(app = %config.app, api = %config.api_base, exec_url = %config.exec_url, "fly provider");
        let inner = Arc::new(Inner {
            api,
            app: config.app,
            exec_url: config.exec_url,
            image: config.image,
            start_timeout: config.start_timeout,
            creating: Mutex::new(HashSet::new()),
        });
        let (stop_reaper, stopped) = watch::channel(false);
        let reaper = tokio::spawn(reaper::reap_loop(inner.clone(), stopped));
        Ok(Fly {
            inner,
            stop_reaper,
            reaper: Mutex::new(Some(reaper)),
        })
    }
}

impl Provider for Fly {
    const NAME: &'static str = "fly";
    const AUTHORITATIVE: bool = false;

    async fn create(&self, spec: &MachineSpec) -> anyhow::Result<Machine> {
        let _creating = InFlight::new(&self.inner.creating, &spec.session_id);
        self.inner.create(spec).await
    }

    async fn wait_ready(&self, machine: &Machine, timeout: Duration) -> anyhow::Result<()> {
        self.inner.wait_ready(machine, timeout).await
    }

    async fn destroy(&self, machine: &Machine) -> anyhow::Result<()> {
        let instance_id = private(machine).instance_id;
        self.inner.destroy(&machine.id, &instance_id).await
    }

    async fn list(&self) -> anyhow::Result<Vec<Machine>> {
        let listed = self.inner.list_sessions(&[]).await;
        let listed = listed.map_err(|e| self.inner.app_error(e))?;
        Ok(listed.iter().map(|m| self.inner.machine(m)).collect())
    }

    async fn alive(&self, machine: &Machine) -> anyhow::Result<Liveness> {
        for tries in 1.. {
            match self.inner.api.get(&machine.id).await {
                // A started machine's runtime says whether its program exited.
                Ok(m) if m.state == "started" => {
                    return Ok(match self.inner.exit_code(machine).await {
                        Some(code) => Liveness::Exited(code),
                        None => Liveness::Alive,
                    });
                }
                Ok(m) => return Ok(liveness(&m.state)),
                Err(e) if e.is_not_found() && tries < CONFIRM_TRIES => {
                    tokio::time::sleep(CONFIRM_PAUSE).await
                }
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(self.inner.app_error(e)),
            }
        }
        Ok(Liveness::Dead)
    }

    async fn extend(&self, machine: &Machine, token: &str, expires_at: u64) -> anyhow::Result<Ttl> {
        self.inner.extend(machine, token, expires_at).await
    }

    async fn forget(&self, _session_id: &str) {}

    async fn shutdown(&self) {
        let _ = self.stop_reaper.send(true);
        let reaper = locks::lock(&self.reaper).take();
        if let Some(reaper) = reaper {
            let _ = reaper.await;
        }
    }
}

impl Inner {
    /// Stops the machine (SIGTERM, a moment to wind down), then deletes it by force. A machine
    /// that is already gone is fine.
    async fn destroy(&self, id: &str, instance_id: &str) -> anyhow::Result<()> {
        let stop = json!({"signal": "SIGTERM", "timeout": "30s"});
        match self.api.stop(id, &stop).await {
            Err(e) if e.is_not_found() => return Ok(()),
            // A machine that never started cannot be stopped; the delete kills it anyway.
            Err(e) => tracing::debug!(machine = id, "stop: {e}"),
            Ok(()) if instance_id.is_empty() => {}
            Ok(()) => {
                // With auto_destroy, a stopped machine goes on to destroyed at once.
                let states = ["stopped", "destroyed"];
                let stopped = self.api.wait(id, &states, instance_id, STOP_WAIT_SEC).await;
                if stopped.is_err_and(|e| e.is_not_found()) {
                    return Ok(());
                }
            }
        }
        let e = match self.api.delete(id).await {
            Err(e) if !e.is_not_found() => e,
            _ => return Ok(()),
        };
        // Destroyed meanwhile (auto_destroy)? GET shows `destroyed` for a while, then 404.
        match self.api.get(id).await {
            Err(g) if g.is_not_found() => Ok(()),
            Ok(m) if m.state == "destroyed" => Ok(()),
            _ => Err(self
                .app_error(e)
                .context(format!("cannot destroy machine {id}"))),
        }
    }

    /// The session machines that `filters` select, not destroyed, looked for again when none
    /// is found.
    async fn list_sessions(&self, filters: &[(&str, &str)]) -> Result<Vec<FlyMachine>, FlyError> {
        let mut tries = 1;
        loop {
            let found: Vec<FlyMachine> = (self.api.list(filters).await?.into_iter())
                .filter(|m| m.meta(META_SESSION).is_some() && !is_gone(&m.state))
                .filter(|m| filters.iter().all(|(k, v)| m.meta(k) == Some(v)))
                .collect();
            if !found.is_empty() || tries >= CONFIRM_TRIES {
                return Ok(found);
            }
            tries += 1;
            tokio::time::sleep(CONFIRM_PAUSE).await;
        }
    }

    async fn find_session(&self, session_id: &str) -> anyhow::Result<Option<FlyMachine>> {
        let found = self.list_sessions(&[(META_SESSION, session_id)]).await;
        let found = found.map_err(|e| self.app_error(e))?;
        Ok(found.into_iter().next())
    }

    /// `CATTY_IMAGE`, else a digest-pinned image of one of the app's machines.
    async fn image(&self) -> anyhow::Result<String> {
        if let Some(image) = &self.image {
            return Ok(image.clone());
        }
        let mut machines = Vec::new();
        for _ in 0..CONFIRM_TRIES {
            machines = self.api.list(&[]).await.map_err(|e| self.app_error(e))?;
            if !machines.is_empty() {
                break;
            }
            tokio::time::sleep(CONFIRM_PAUSE).await;
        }
        let app = &self.app;
        machine_config::discover_image(&machines).with_context(|| {
            format!(
                "no image to run: set CATTY_IMAGE (e.g. registry.fly.io/{app}:<label> after \
                 `fly deploy --build-only --push --image-label <label>`); no machine of the app \
                 {app} has a digest-pinned image to copy"
            )
        })
    }

    /// The daemon's view of a machine.
    fn machine(&self, m: &FlyMachine) -> Machine {
        let private = FlyPrivate {
            instance_id: m.instance_id.clone(),
        };
        Machine {
            id: m.id.clone(),
            session_id: m.meta(META_SESSION).unwrap_or_default().to_string(),
            connect_url: self.exec_url.clone(),
            headers: BTreeMap::from([(FORCE_INSTANCE_HEADER.to_string(), m.id.clone())]),
            region: (!m.region.is_empty()).then(|| m.region.clone()),
            private: serde_json::to_value(private).expect("a plain struct"),
        }
    }

    /// A 404 on the app's own paths means the app is not there (or not for this token).
    fn app_error(&self, e: FlyError) -> anyhow::Error {
        match e.status() {
            Some(404) => anyhow!("{e}: is CATTY_EXEC_APP ({}) right?", self.app),
            _ => anyhow!(e),
        }
    }
}

/// What a machine's state says about its session.
fn liveness(state: &str) -> Liveness {
    match state {
        "created" | "starting" | "started" => Liveness::Alive,
        s if ENDED.contains(&s) => Liveness::Dead,
        // stopping (soon stopped), suspending, replacing, or a state newer than this code.
        _ => Liveness::Unknown,
    }
}

fn is_gone(state: &str) -> bool {
    matches!(state, "destroying" | "destroyed")
}

fn private(machine: &Machine) -> FlyPrivate {
    serde_json::from_value(machine.private.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_to_liveness() {
        for alive in ["created", "starting", "started"] {
            assert_eq!(liveness(alive), Liveness::Alive, "{alive}");
        }
        for dead in ["stopped", "failed", "destroying", "destroyed"] {
            assert_eq!(liveness(dead), Liveness::Dead, "{dead}");
        }
        for unknown in ["stopping", "suspended", "replacing", "hibernating"] {
            assert_eq!(liveness(unknown), Liveness::Unknown, "{unknown}");
        }
    }
}
