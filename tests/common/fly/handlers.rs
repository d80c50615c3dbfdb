//! Create, list, get and wait (reference §2.1–§2.4), and the lookup every machine endpoint
//! shares.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::api::Req;
use super::lifecycle;
use super::machines::{Lease, MState, Machine, image_ref, machine_name};
use super::validate;
use super::wire::{Reply, is_ulid, machine_id, query_bool, query_get, query_list};
use super::{Shared, image_known};

/// Runs `f` on machine `id` under the lock, then wakes waiters; 404 when there is no such
/// machine or it was destroyed long enough ago (reference §1, §2.3).
pub fn with_machine(shared: &Shared, id: &str, f: impl FnOnce(&mut Machine) -> Reply) -> Reply {
    let mut machines = shared.machines.lock().unwrap();
    let linger = shared.destroyed_linger;
    let Some(m) = machines.iter_mut().find(|m| m.id == id && !m.gone(linger)) else {
        return Reply::machine_not_found();
    };
    let reply = f(m);
    drop(machines);
    shared.notify();
    reply
}

/// `POST /v1/apps/{app}/machines` (reference §2.1, §8.2, §8.3).
pub fn create(shared: &Arc<Shared>, req: &Req) -> Reply {
    let Some(body) = &req.json else {
        return Reply::error(400, "invalid_argument: the request body is not JSON");
    };
    let create = match validate::create(body, shared.strict, &shared.regions) {
        Ok(create) => create,
        Err(message) => return Reply::error(400, message),
    };
    let image = create.config["image"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Reference §7: a tag that was never pushed is "manifest unknown". The status is
    // UNVERIFIED; 422 is the API's code for a request it understood but cannot carry out.
    if !image_known(shared, &image) {
        return Reply::error(
            422,
            format!("invalid_argument: unable to resolve image {image}: manifest unknown"),
        );
    }
    let region = create
        .region
        .clone()
        .unwrap_or_else(|| shared.default_region.clone());
    // Reference §2.1 names the status; fly-go's flaps_error.go calls the create case "a
    // proper 422 insufficient_capacity".
    if shared.faults.region_full(&region) {
        return Reply::error_status(
            422,
            format!(
                "insufficient resources available to fulfill request: no capacity available in {region}"
            ),
            "insufficient_capacity",
        );
    }
    let mut machines = shared.machines.lock().unwrap();
    // Reference §2.1: names are unique; §1: 422 for a taken name, status `name_taken`.
    if let Some(name) = &create.name
        && machines
            .iter()
            .any(|m| &m.name == name && m.state != MState::Destroyed)
    {
        return Reply::error_status(
            422,
            format!("invalid_argument: a machine named {name:?} already exists"),
            "name_taken",
        );
    }
    let name = create.name.clone().unwrap_or_else(machine_name);
    let mut m = Machine::new(machine_id(), name, region, create.config, image_ref(&image));
    m.cordoned = create.skip_service_registration;
    m.push_event(json!({"type": "launch", "status": "created", "source": "user"}));
    m.lease = create
        .lease_ttl
        .map(|ttl| Lease::new(Duration::from_secs(ttl), String::new()));
    m.stuck = shared.faults.take_stuck();
    // The answer shows `created` (the docs' example); the start happens after it.
    let mut out = m.to_json(false);
    if let Some(lease) = &m.lease {
        out["nonce"] = lease.nonce.clone().into();
    }
    if !create.skip_launch && !m.stuck {
        lifecycle::launch(shared, &mut m);
    }
    machines.push(m);
    drop(machines);
    shared.notify();
    if shared.faults.take_timeout_after_create() {
        return Reply::error(408, "deadline_exceeded: context deadline exceeded");
    }
    Reply::json(200, out)
}

/// `GET /v1/apps/{app}/machines` (reference §2.4, §8.5): `metadata.k=v` filters ANDed, a
/// comma list of states, `region`, `include_deleted`, `summary`; never `null`.
pub fn list(shared: &Shared, req: &Req) -> Reply {
    let (include_deleted, summary) = match (
        query_bool(&req.query, "include_deleted"),
        query_bool(&req.query, "summary"),
    ) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(e), _) | (_, Err(e)) => return Reply::error(400, e),
    };
    let states = query_list(&req.query, "state");
    let allowed = ["created", "started", "stopped", "suspended"];
    if let Some(bad) = states.iter().find(|s| !allowed.contains(&s.as_str())) {
        return Reply::error(400, format!("invalid_argument: invalid state {bad:?}"));
    }
    let region = query_get(&req.query, "region").filter(|r| !r.is_empty());
    let filters: Vec<(&str, &str)> = req
        .query
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata.")?, v.as_str())))
        .collect();
    if shared.faults.take_empty_list() {
        return Reply::json(200, json!([]));
    }
    let machines = shared.machines.lock().unwrap();
    let found: Vec<Value> = machines
        .iter()
        .filter(|m| include_deleted || m.state != MState::Destroyed)
        .filter(|m| states.is_empty() || states.iter().any(|s| s == m.state.as_str()))
        .filter(|m| region.is_none_or(|r| r == m.region))
        .filter(|m| {
            let metadata = m.metadata();
            filters
                .iter()
                .all(|(k, v)| metadata.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|m| m.to_json(summary))
        .collect();
    Reply::json(200, Value::Array(found))
}

/// `GET …/{id}` (reference §2.3).
pub fn get(shared: &Shared, id: &str) -> Reply {
    with_machine(shared, id, |m| Reply::json(200, m.to_json(false)))
}

/// The states a wait may ask for (reference §2.2).
const WAIT_STATES: [&str; 6] = [
    "started",
    "stopped",
    "suspended",
    "destroyed",
    "failed",
    "settled",
];

/// `GET …/{id}/wait` (reference §2.2, §8.4).
pub async fn wait(shared: &Shared, id: &str, req: &Req) -> Reply {
    let (states, timeout, version) = match wait_params(shared, req) {
        Ok(params) => params,
        Err(reply) => return reply,
    };
    // Subscribe before the first look, so no change between the look and the wait is lost.
    let mut changes = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut first = true;
    loop {
        let current = {
            let machines = shared.machines.lock().unwrap();
            let linger = shared.destroyed_linger;
            let Some(m) = machines.iter().find(|m| m.id == id && !m.gone(linger)) else {
                return Reply::machine_not_found();
            };
            // UNVERIFIED what Fly answers for another version; strict refuses it.
            if first
                && shared.strict
                && let Some(v) = &version
                && *v != m.instance_id
            {
                return Reply::error(
                    400,
                    format!("invalid_argument: machine {id} has no version {v}"),
                );
            }
            m.state
        };
        first = false;
        let reached = states
            .iter()
            .any(|s| s == current.as_str() || (s == "settled" && current.settled()));
        if reached {
            return Reply::json(200, json!({"ok": true, "state": current.as_str()}));
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            let wanted = states.join(",");
            let message = format!(
                "machine failed to reach desired state, {wanted}, currently {}",
                current.as_str()
            );
            return Reply::error(408, message);
        }
    }
}

type WaitParams = (Vec<String>, Duration, Option<String>);

/// `state` (repeated or comma-separated, default `started`), `timeout` (an integer 1–60,
/// default 60), `version`/`instance_id` (a ULID; required for `stopped` when strict, §8.4 *).
fn wait_params(shared: &Shared, req: &Req) -> Result<WaitParams, Reply> {
    let mut states = query_list(&req.query, "state");
    if states.is_empty() {
        states.push("started".into());
    }
    if let Some(bad) = states.iter().find(|s| !WAIT_STATES.contains(&s.as_str())) {
        return Err(Reply::error(
            400,
            format!("invalid_argument: invalid state {bad:?}"),
        ));
    }
    let timeout = match query_get(&req.query, "timeout") {
        None => 60,
        Some(t) => match t.parse::<u64>() {
            Ok(secs) if (1..=60).contains(&secs) => secs,
            _ => {
                return Err(Reply::error(
                    400,
                    format!(
                        "invalid_argument: timeout must be between 1 and 60 seconds, got {t:?}"
                    ),
                ));
            }
        },
    };
    let version = query_get(&req.query, "version")
        .or_else(|| query_get(&req.query, "instance_id"))
        .filter(|v| !v.is_empty());
    if let Some(v) = version
        && !is_ulid(v)
    {
        return Err(Reply::error(
            400,
            format!("invalid_argument: invalid version {v:?}"),
        ));
    }
    if shared.strict && version.is_none() && states.iter().any(|s| s == "stopped") {
        return Err(Reply::error(
            400,
            "instance_id required when waiting for stopped machine",
        ));
    }
    let version = version.map(str::to_string);
    Ok((states, Duration::from_secs(timeout), version))
}
