//! Making a machine: a create that never makes a twin (after an answer that may hide a
//! machine, the session's machine is looked up before the next try), the wait until it is
//! `started` (in waits of at most 60 s, destroyed when it misses our deadline), and the
//! probe of its runtime through the edge.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use hyper::StatusCode;

use super::machines_api::{Backoff, FlyError, FlyMachine};
use super::{ENDED, FORCE_INSTANCE_HEADER, Inner, guest, machine_config, private};
use crate::api::provider::{Machine, MachineSpec};
use crate::clock::unix_now;
use crate::net::RuntimeUrl;
use crate::protocol::transcript::EXIT_HEADER;

/// One wait for `started`, under Fly's limit of 60 s: short enough that a machine that
/// stopped or failed instead is noticed soon.
const WAIT_CHUNK_SEC: u64 = 20;
/// One `/healthz` probe through the edge, and the pause between two.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const PROBE_PAUSE: Duration = Duration::from_millis(250);

/// Why a machine is not started.
enum NotStarted {
    Late,
    Ended(String),
    Gone,
    Api(FlyError),
}

impl Inner {
    pub(super) async fn create(&self, spec: &MachineSpec) -> anyhow::Result<Machine> {
        let guest = guest::choose(spec.cpus, spec.memory_mb).map_err(|e| anyhow!(e))?;
        let image = self.image().await?;
        let expires_at = unix_now() + spec.ttl_sec;
        let body = machine_config::create_body(spec, &image, guest, expires_at);
        let created = self.create_machine(spec, &body).await?;
        tracing::info!(machine = %created.id, region = %created.region, %image, "machine created");
        let deadline = Instant::now() + self.start_timeout;
        match self
            .wait_started(&created.id, &created.instance_id, deadline)
            .await
        {
            Ok(()) => Ok(self.machine(&created)),
            Err(why) => {
                let why = self.describe(&created, why, self.start_timeout).await;
                Err(
                    match self.destroy(&created.id, &created.instance_id).await {
                        Ok(()) => anyhow!("{why}; catty destroyed it"),
                        Err(e) => anyhow!("{why}; destroying it failed too ({e:#}); catty retries"),
                    },
                )
            }
        }
    }

    /// `POST /machines` until it answers, never making a second machine: after an answer
    /// that may hide a created machine (408, 5xx, no answer), the session's machine is looked
    /// up before the next try.
    async fn create_machine(
        &self,
        spec: &MachineSpec,
        body: &serde_json::Value,
    ) -> anyhow::Result<FlyMachine> {
        let mut backoff = Backoff::new();
        let mut ambiguous = false;
        loop {
            if ambiguous && let Some(found) = self.find_session(&spec.session_id).await? {
                tracing::info!(machine = %found.id, "the create went through after all");
                return Ok(found);
            }
            let err = match self.api.create(body).await {
                Ok(created) => return Ok(created),
                Err(err) => err,
            };
            if err.is_capacity() {
                return Err(capacity_error(spec, &err));
            }
            let retry = match err.status() {
                None | Some(408) | Some(500..) => {
                    ambiguous = true;
                    true
                }
                Some(429) => true,
                // The unique name is taken: by our own earlier try.
                Some(409 | 422) => ambiguous,
                Some(_) => false,
            };
            if !retry {
                return Err(self.app_error(err));
            }
            tracing::warn!(ambiguous, "creating a machine: {err}; trying again");
            if !backoff.wait(None).await {
                self.abandon(&spec.session_id, ambiguous).await;
                return Err(anyhow!(err).context("gave up creating a machine"));
            }
        }
    }

    /// After a create that may have worked: destroy what came of it.
    async fn abandon(&self, session_id: &str, ambiguous: bool) {
        if !ambiguous {
            return;
        }
        if let Ok(Some(found)) = self.find_session(session_id).await
            && let Err(e) = self.destroy(&found.id, &found.instance_id).await
        {
            tracing::warn!(
                "cannot destroy machine {} of a failed create: {e:#}",
                found.id
            );
        }
    }

    /// Waits until the machine is `started`, in waits of [`WAIT_CHUNK_SEC`] (a 408 means "not
    /// yet"), until `deadline`.
    async fn wait_started(
        &self,
        id: &str,
        instance_id: &str,
        deadline: Instant,
    ) -> Result<(), NotStarted> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now()).as_secs();
            let chunk = left.clamp(1, WAIT_CHUNK_SEC);
            let wait = self.api.wait(id, &["started"], instance_id, chunk);
            match wait.await {
                Ok(()) => return Ok(()),
                Err(e) if e.status() == Some(408) => {}
                Err(e) if e.is_not_found() => return Err(NotStarted::Gone),
                Err(e) => return Err(NotStarted::Api(e)),
            }
            // One that stopped or failed will never start: no need to wait out the deadline.
            if let Ok(m) = self.api.get(id).await
                && ENDED.contains(&m.state.as_str())
            {
                return Err(NotStarted::Ended(m.state));
            }
            if Instant::now() >= deadline {
                return Err(NotStarted::Late);
            }
        }
    }

    /// One line on why machine `m` is not started.
    async fn describe(&self, m: &FlyMachine, why: NotStarted, limit: Duration) -> String {
        let (id, region) = (&m.id, &m.region);
        match why {
            NotStarted::Late => {
                let state = self
                    .api
                    .get(id)
                    .await
                    .map_or_else(|_| m.state.clone(), |m| m.state);
                format!(
                    "machine {id} did not start within {} s (it is {state}, in region {region})",
                    limit.as_secs()
                )
            }
            NotStarted::Ended(state) => {
                format!("machine {id} is {state} instead of started (region {region})")
            }
            NotStarted::Gone => format!("machine {id} disappeared before it started"),
            NotStarted::Api(e) => format!("cannot wait for machine {id} to start: {e}"),
        }
    }

    /// The runtime's `/healthz` through the edge, and the headers that route to it.
    fn healthz(&self, machine: &Machine) -> anyhow::Result<(String, BTreeMap<String, String>)> {
        let base = match machine.connect_url.is_empty() {
            true => &self.exec_url,
            false => &machine.connect_url,
        };
        let url = RuntimeUrl::parse(base)?.healthz_url();
        let mut headers = machine.headers.clone();
        headers.insert(FORCE_INSTANCE_HEADER.to_string(), machine.id.clone());
        Ok((url, headers))
    }

    /// The exit code of the machine's program, if its runtime answers and says it exited.
    pub(super) async fn exit_code(&self, machine: &Machine) -> Option<i32> {
        let (url, headers) = self.healthz(machine).ok()?;
        let (status, said) = self.api.probe_head(&url, &headers, PROBE_TIMEOUT).await?;
        let code = said.get(EXIT_HEADER)?.to_str().ok()?.parse().ok()?;
        (status == StatusCode::OK).then_some(code)
    }

    pub(super) async fn wait_ready(
        &self,
        machine: &Machine,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let instance_id = private(machine).instance_id;
        if let Err(why) = self.wait_started(&machine.id, &instance_id, deadline).await {
            let m = FlyMachine {
                id: machine.id.clone(),
                region: machine.region.clone().unwrap_or_default(),
                ..Default::default()
            };
            anyhow::bail!("{}", self.describe(&m, why, timeout).await);
        }
        let (url, headers) = self.healthz(machine)?;
        loop {
            let status = self.api.probe(&url, &headers, PROBE_TIMEOUT).await;
            if status == Some(StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let answer = status.map_or("no answer".to_string(), |s| format!("last answer {s}"));
                anyhow::bail!(
                    "machine {} started but its runtime did not answer {url} within {} s ({answer})",
                    machine.id,
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(PROBE_PAUSE).await;
        }
    }
}

fn capacity_error(spec: &MachineSpec, err: &FlyError) -> anyhow::Error {
    let region = match &spec.region {
        Some(region) => format!("region {region}"),
        None => "the region Fly.io chose (none was given)".to_string(),
    };
    anyhow!(
        "Fly.io has no capacity for this machine in {region}: try another region with --region, \
         or a smaller size ({err})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_names_the_region() {
        let err = FlyError::Status {
            status: StatusCode::PRECONDITION_FAILED,
            message: "insufficient resources".into(),
            capacity: true,
        };
        let mut spec = MachineSpec {
            session_id: "s-1".into(),
            label: "l".into(),
            agent: crate::protocol::Agent::Shell,
            cmd: None,
            region: Some("syd".into()),
            cpus: None,
            memory_mb: None,
            ttl_sec: 60,
            connect_token: "t".into(),
            path: None,
            credentials: Default::default(),
            llm: None,
        };
        let text = capacity_error(&spec, &err).to_string();
        assert!(text.contains("in region syd: try another region"), "{text}");
        assert!(!text.contains('\n'));
        spec.region = None;
        assert!(
            capacity_error(&spec, &err)
                .to_string()
                .contains("the region Fly.io chose")
        );
    }
}
