//! Stop, start, delete, leases and metadata (reference §2.5–§2.9, §8.6–§8.9): which state
//! each accepts, what a held lease demands, and what they answer otherwise.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::Shared;
use super::api::Req;
use super::handlers::with_machine;
use super::lifecycle;
use super::machines::{Lease, MState};
use super::validate;
use super::wire::{Reply, query_bool, query_get};

/// Lease length when the request names none (UNVERIFIED).
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

fn ok() -> Reply {
    Reply::json(200, json!({"ok": true}))
}

/// `POST …/{id}/stop` (reference §2.5, §8.6): `started` → `stopping` → `stopped` (or
/// `destroyed` with `auto_destroy`). Stopping a machine that is not running answers 412 when
/// strict (UNVERIFIED), and is a no-op otherwise.
pub fn stop(shared: &Arc<Shared>, id: &str, req: &Req) -> Reply {
    let (signal, timeout) = match validate::stop_body(&req.body) {
        Ok(body) => body,
        Err(message) => return Reply::error(400, message),
    };
    with_machine(shared, id, |m| {
        if let Some(conflict) = m.lease_conflict(req.nonce()) {
            return Reply::error(409, conflict);
        }
        match m.state {
            MState::Started | MState::Starting => {}
            MState::Created if !shared.strict => {}
            other if shared.strict => {
                return Reply::error(
                    412,
                    format!(
                        "failed_precondition: unable to stop machine, not currently started (state {})",
                        other.as_str()
                    ),
                );
            }
            _ => return ok(),
        }
        let (signal, timeout) = m.stop_plan(signal, timeout);
        lifecycle::stop(shared, m, &signal, timeout);
        ok()
    })
}

/// `POST …/{id}/start` (reference §2.7): from `created` or `stopped`. Starting a machine in
/// another state answers 412 when strict (UNVERIFIED), else reports its state and does
/// nothing. A machine stuck by the fault says yes and stays `created`.
pub fn start(shared: &Arc<Shared>, id: &str, req: &Req) -> Reply {
    with_machine(shared, id, |m| {
        if let Some(conflict) = m.lease_conflict(req.nonce()) {
            return Reply::error(409, conflict);
        }
        let previous = m.state;
        match previous {
            MState::Created | MState::Stopped if !m.stuck => lifecycle::launch(shared, m),
            MState::Created | MState::Stopped => {}
            other if shared.strict => {
                return Reply::error(
                    412,
                    format!(
                        "failed_precondition: unable to start machine from current state {}",
                        other.as_str()
                    ),
                );
            }
            _ => {}
        }
        Reply::json(
            200,
            json!({"previous_state": previous.as_str(), "migrated": false, "new_host": ""}),
        )
    })
}

/// `DELETE …/{id}` (reference §2.6, §8.7). Without `force=true` only `stopped` machines go
/// (412 `failed_precondition` otherwise; the code is UNVERIFIED). fly-go's `kill=true` counts
/// as force only when the fake is not strict (the server's reading of it is UNVERIFIED).
pub fn delete(shared: &Arc<Shared>, id: &str, req: &Req) -> Reply {
    let force = match (
        query_bool(&req.query, "force"),
        query_bool(&req.query, "kill"),
    ) {
        (Ok(force), Ok(kill)) => force || (kill && !shared.strict),
        (Err(e), _) | (_, Err(e)) => return Reply::error(400, e),
    };
    with_machine(shared, id, |m| {
        if let Some(conflict) = m.lease_conflict(req.nonce()) {
            return Reply::error(409, conflict);
        }
        match m.state {
            MState::Destroyed => return Reply::machine_not_found(),
            MState::Destroying => return ok(),
            MState::Stopped => {}
            _ if force => {}
            other => {
                return Reply::error(
                    412,
                    format!(
                        "failed_precondition: unable to destroy machine, not currently stopped or suspended (state {}); use force=true",
                        other.as_str()
                    ),
                );
            }
        }
        lifecycle::destroy(m);
        ok()
    })
}

/// `POST …/{id}/lease` (reference §2.8): 201 with the envelope; 409 while another lease is
/// held; the holder's nonce in the header refreshes it.
pub fn lease_acquire(shared: &Shared, id: &str, req: &Req) -> Reply {
    let ttl = query_get(&req.query, "ttl")
        .and_then(|t| t.parse::<u64>().ok())
        .or_else(|| req.json.as_ref()?.get("ttl")?.as_u64())
        .map_or(DEFAULT_LEASE_TTL, Duration::from_secs);
    let description = req
        .json
        .as_ref()
        .and_then(|b| b.get("description")?.as_str())
        .unwrap_or_default()
        .to_string();
    with_machine(shared, id, |m| {
        if let Some(conflict) = m.lease_conflict(req.nonce()) {
            return Reply::error(409, conflict);
        }
        match &mut m.lease {
            Some(lease) if lease.expires > SystemTime::now() => {
                lease.expires = SystemTime::now() + ttl;
            }
            slot => *slot = Some(Lease::new(ttl, description)),
        }
        Reply::json(201, m.lease.as_ref().expect("a lease").envelope())
    })
}

/// `GET …/{id}/lease`: 200 with the envelope, or 404.
pub fn lease_get(shared: &Shared, id: &str) -> Reply {
    with_machine(shared, id, |m| match m.active_lease() {
        Some(lease) => Reply::json(200, lease.envelope()),
        None => Reply::error(404, "not_found: lease not found"),
    })
}

/// `DELETE …/{id}/lease`: the nonce header is required (400), and must be the holder's.
pub fn lease_release(shared: &Shared, id: &str, req: &Req) -> Reply {
    let Some(nonce) = req.nonce() else {
        return Reply::error(
            400,
            "invalid_argument: fly-machine-lease-nonce header is required",
        );
    };
    with_machine(shared, id, |m| {
        if m.active_lease().is_none() {
            return Reply::error(404, "not_found: lease not found");
        }
        if let Some(conflict) = m.lease_conflict(Some(nonce)) {
            return Reply::error(409, conflict);
        }
        m.lease = None;
        ok()
    })
}

/// `GET …/{id}/metadata` (reference §2.9).
pub fn metadata_get(shared: &Shared, id: &str) -> Reply {
    with_machine(shared, id, |m| Reply::json(200, json!(m.metadata())))
}

/// `POST …/{id}/metadata/{key}` with `{"value": "…"}` → 204; the version is unchanged
/// (reference §2.9, §8.9).
pub fn metadata_set(shared: &Shared, id: &str, key: &str, req: &Req) -> Reply {
    let Some(value) = req
        .json
        .as_ref()
        .and_then(|b| b.get("value")?.as_str().map(str::to_string))
    else {
        return Reply::error(400, "invalid_argument: body must be {\"value\": string}");
    };
    with_machine(shared, id, |m| {
        if let Some(conflict) = m.lease_conflict(req.nonce()) {
            return Reply::error(409, conflict);
        }
        if !m.config["metadata"].is_object() {
            m.config["metadata"] = json!({});
        }
        m.config["metadata"][key] = Value::String(value);
        Reply::empty(204)
    })
}

/// `DELETE …/{id}/metadata/{key}` → 204 (reference §2.9).
pub fn metadata_delete(shared: &Shared, id: &str, key: &str, req: &Req) -> Reply {
    with_machine(shared, id, |m| {
        if let Some(conflict) = m.lease_conflict(req.nonce()) {
            return Reply::error(409, conflict);
        }
        if let Some(metadata) = m.config["metadata"].as_object_mut() {
            metadata.remove(key);
        }
        Reply::empty(204)
    })
}
