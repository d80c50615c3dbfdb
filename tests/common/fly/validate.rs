//! What the fake rejects in a create or stop body (reference §4 and §8.2, §8.6), with Go-style
//! messages: wrong JSON types fail as `encoding/json` would, bad values as `invalid_argument`.
//! Rules marked * in §8 (UNVERIFIED) apply only when the fake is strict.

use serde_json::Value;

use super::gojson::{
    Obj, kind, opt_arr, opt_bool, opt_int, opt_obj, opt_str, string_list, string_map, type_error,
};
use super::wire::parse_duration;

/// A create body that passed validation, its config normalised as the API echoes it.
pub struct CreateRequest {
    pub config: Value,
    pub name: Option<String>,
    pub region: Option<String>,
    pub skip_launch: bool,
    pub skip_service_registration: bool,
    pub lease_ttl: Option<u64>,
}

/// The signals a stop (and `stop_config`) may name (reference §2.5).
pub const SIGNALS: [&str; 7] = [
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM",
];

type Checked<T> = Result<T, String>;

/// Validates a `POST /v1/apps/{app}/machines` body (reference §2.1, §4, §8.2).
pub fn create(body: &Value, strict: bool, regions: &[String]) -> Checked<CreateRequest> {
    let Value::Object(top) = body else {
        return Err(type_error(body, "", "api.LaunchMachineInput"));
    };
    let region = opt_str(top, "region", "region")?.filter(|r| !r.is_empty());
    // A region code Fly does not have cannot be placed; the exact answer is UNVERIFIED.
    if let Some(r) = region
        && !regions.iter().any(|known| known == r)
    {
        return Err(format!("invalid_argument: region {r:?} not found"));
    }
    for key in ["skip_launch", "skip_service_registration", "skip_secrets"] {
        opt_bool(top, key, key)?;
    }
    opt_int(top, "min_secrets_version", "min_secrets_version")?;
    let lease_ttl = opt_int(top, "lease_ttl", "lease_ttl")?;
    let config = match top.get("config") {
        None | Some(Value::Null) => return Err("invalid_argument: config is required".into()),
        Some(Value::Object(config)) => machine_config(config, strict)?,
        Some(other) => return Err(type_error(other, "config", "api.MachineConfig")),
    };
    Ok(CreateRequest {
        config,
        name: opt_str(top, "name", "name")?.map(str::to_string),
        region: region.map(str::to_string),
        skip_launch: opt_bool(top, "skip_launch", "skip_launch")?.unwrap_or(false),
        skip_service_registration: opt_bool(
            top,
            "skip_service_registration",
            "skip_service_registration",
        )?
        .unwrap_or(false),
        lease_ttl: lease_ttl.map(|t| t.max(0) as u64),
    })
}

/// `config` (reference §4); returns it normalised: `autostop` `"off"`/`"stop"` as bools and
/// the default guest filled in, as the API echoes it (reference §8.3).
fn machine_config(config: &Obj, strict: bool) -> Checked<Value> {
    let mut out = config.clone();
    match opt_str(config, "image", "config.image")? {
        Some(image) if !image.trim().is_empty() => {}
        _ => return Err("invalid_argument: image is required".into()),
    }
    string_map(config, "env", "config.env")?;
    string_map(config, "metadata", "config.metadata")?;
    if let Some(init) = opt_obj(config, "init", "config.init")? {
        for key in ["exec", "entrypoint", "cmd", "kernel_args"] {
            string_list(init, key, &format!("config.init.{key}"))?;
        }
        opt_bool(init, "tty", "config.init.tty")?;
        opt_int(init, "swap_size_mb", "config.init.swap_size_mb")?;
    }
    let size = opt_str(config, "size", "config.size")?;
    match opt_obj(config, "guest", "config.guest")? {
        Some(_) if strict && size.is_some() => {
            return Err("invalid_argument: size and guest are mutually exclusive".into());
        }
        Some(g) => {
            out.insert("guest".into(), guest(g, strict)?);
        }
        None if size.is_none() => {
            let default = serde_json::json!({"cpu_kind": "shared", "cpus": 1, "memory_mb": 256});
            out.insert("guest".into(), default);
        }
        None => {}
    }
    if let Some(restart) = restart(config, strict)? {
        out.insert("restart".into(), restart);
    }
    opt_bool(config, "auto_destroy", "config.auto_destroy")?;
    if let Some(stop) = opt_obj(config, "stop_config", "config.stop_config")? {
        if let Some(signal) = opt_str(stop, "signal", "config.stop_config.signal")? {
            check_signal(signal, strict)?;
        }
        opt_duration(stop, "timeout")?;
    }
    if let Some(services) = opt_arr(config, "services", "config.services")? {
        let services = services.iter().map(service).collect::<Checked<Vec<_>>>()?;
        out.insert("services".into(), Value::Array(services));
    }
    if let Some(checks) = opt_obj(config, "checks", "config.checks")? {
        for check in checks.values() {
            health_check(check, "config.checks")?;
        }
    }
    Ok(Value::Object(out))
}

/// `guest` against the table of reference §4 (*: strict only); types always.
fn guest(g: &Obj, strict: bool) -> Checked<Value> {
    let kind = opt_str(g, "cpu_kind", "config.guest.cpu_kind")?.unwrap_or("shared");
    let cpus = opt_int(g, "cpus", "config.guest.cpus")?.unwrap_or(1);
    let memory = opt_int(g, "memory_mb", "config.guest.memory_mb")?;
    let (valid_cpus, step, per_cpu_min, per_cpu_max): (&[i64], i64, i64, i64) = match kind {
        "shared" => (&[1, 2, 4, 6, 8], 256, 256, 2048),
        "performance" => (
            &[1, 2, 4, 6, 8, 10, 12, 14, 16, 32, 64, 128],
            1024,
            2048,
            8192,
        ),
        other if strict => {
            return Err(format!(
                "invalid_argument: invalid cpu_kind {other:?}: must be shared or performance"
            ));
        }
        _ => (&[], 1, 0, i64::MAX),
    };
    let memory = memory.unwrap_or(per_cpu_min * cpus);
    if strict {
        if !valid_cpus.contains(&cpus) {
            return Err(format!(
                "invalid_argument: invalid number of CPUs for {kind} guest: {cpus}, valid values are {valid_cpus:?}"
            ));
        }
        let (min, max) = (per_cpu_min * cpus, per_cpu_max * cpus);
        if memory % step != 0 {
            return Err(format!(
                "invalid_argument: invalid memory size {memory}MB; must be in {step} MiB increments"
            ));
        }
        if !(min..=max).contains(&memory) {
            return Err(format!(
                "invalid_argument: invalid memory size {memory}MB for {cpus} {kind} CPUs; minimum is {min} MB, maximum is {max} MB"
            ));
        }
    }
    let mut out = g.clone();
    out.insert("cpu_kind".into(), kind.into());
    out.insert("cpus".into(), cpus.into());
    out.insert("memory_mb".into(), memory.into());
    Ok(Value::Object(out))
}

/// `restart.policy` is `no`, `on-failure` or `always` (reference §4); `on-fail` is flyctl's
/// alias, rejected when strict (§8.2 *), read as `on-failure` otherwise.
fn restart(config: &Obj, strict: bool) -> Checked<Option<Value>> {
    let Some(restart) = opt_obj(config, "restart", "config.restart")? else {
        return Ok(None);
    };
    opt_int(restart, "max_retries", "config.restart.max_retries")?;
    let mut out = restart.clone();
    match opt_str(restart, "policy", "config.restart.policy")? {
        None | Some("no" | "on-failure" | "always") => {}
        Some("on-fail") if !strict => {
            out.insert("policy".into(), "on-failure".into());
        }
        Some(other) => {
            return Err(format!(
                "invalid_argument: invalid restart policy {other:?}: must be one of no, on-failure, always"
            ));
        }
    }
    Ok(Some(Value::Object(out)))
}

/// One of `services[]` (reference §4); returns it with `autostop` normalised.
fn service(s: &Value) -> Checked<Value> {
    let Value::Object(s) = s else {
        return Err(type_error(s, "config.services", "api.MachineService"));
    };
    match opt_str(s, "protocol", "config.services.protocol")? {
        Some("tcp" | "udp") => {}
        other => {
            return Err(format!(
                "invalid_argument: service protocol must be tcp or udp, got {:?}",
                other.unwrap_or("")
            ));
        }
    }
    match opt_int(s, "internal_port", "config.services.internal_port")? {
        Some(p) if (1..=65535).contains(&p) => {}
        Some(p) => return Err(format!("invalid_argument: invalid internal_port {p}")),
        None => return Err("invalid_argument: service internal_port is required".into()),
    }
    for port in opt_arr(s, "ports", "config.services.ports")?.unwrap_or(&Vec::new()) {
        service_port(port)?;
    }
    // "autostart must be a JSON bool; the API rejects strings" (reference §4).
    opt_bool(s, "autostart", "config.services.autostart")?;
    opt_int(
        s,
        "min_machines_running",
        "config.services.min_machines_running",
    )?;
    if let Some(c) = opt_obj(s, "concurrency", "config.services.concurrency")? {
        match opt_str(c, "type", "config.services.concurrency.type")? {
            None | Some("connections" | "requests") => {}
            Some(other) => {
                return Err(format!(
                    "invalid_argument: invalid concurrency type {other:?}"
                ));
            }
        }
        opt_int(c, "soft_limit", "config.services.concurrency.soft_limit")?;
        opt_int(c, "hard_limit", "config.services.concurrency.hard_limit")?;
    }
    for check in opt_arr(s, "checks", "config.services.checks")?.unwrap_or(&Vec::new()) {
        health_check(check, "config.services.checks")?;
    }
    let mut out = s.clone();
    // autostop: false/true/"off"/"stop"/"suspend"; off and stop come back as bools (§4).
    match s.get("autostop") {
        None | Some(Value::Null | Value::Bool(_)) => {}
        Some(Value::String(v)) if v == "off" || v == "stop" => {
            out.insert("autostop".into(), (v == "stop").into());
        }
        Some(Value::String(v)) if v == "suspend" => {}
        Some(other) => {
            return Err(format!(
                "invalid_argument: invalid autostop value {other}: must be a bool, \"off\", \"stop\" or \"suspend\""
            ));
        }
    }
    Ok(Value::Object(out))
}

fn service_port(port: &Value) -> Checked<()> {
    let Value::Object(p) = port else {
        return Err(type_error(port, "config.services.ports", "api.MachinePort"));
    };
    for key in ["port", "start_port", "end_port"] {
        if let Some(n) = opt_int(p, key, &format!("config.services.ports.{key}"))?
            && !(1..=65535).contains(&n)
        {
            return Err(format!("invalid_argument: invalid port {n}"));
        }
    }
    string_list(p, "handlers", "config.services.ports.handlers")?;
    opt_bool(p, "force_https", "config.services.ports.force_https")?;
    if let Some(h) = opt_obj(p, "http_options", "config.services.ports.http_options")? {
        opt_int(
            h,
            "idle_timeout",
            "config.services.ports.http_options.idle_timeout",
        )?;
        opt_bool(
            h,
            "h2_backend",
            "config.services.ports.http_options.h2_backend",
        )?;
        if let Some(r) = opt_obj(h, "response", "config.services.ports.http_options.response")? {
            opt_obj(
                r,
                "headers",
                "config.services.ports.http_options.response.headers",
            )?;
            opt_bool(
                r,
                "pristine",
                "config.services.ports.http_options.response.pristine",
            )?;
        }
    }
    opt_obj(p, "tls_options", "config.services.ports.tls_options")?;
    Ok(())
}

/// A health check (reference §4 `checks`): type, kind and Go durations.
fn health_check(check: &Value, path: &str) -> Checked<()> {
    let Value::Object(c) = check else {
        return Err(type_error(check, path, "api.MachineCheck"));
    };
    match opt_str(c, "type", &format!("{path}.type"))? {
        Some("tcp" | "http") => {}
        other => {
            return Err(format!(
                "invalid_argument: check type must be tcp or http, got {:?}",
                other.unwrap_or("")
            ));
        }
    }
    opt_int(c, "port", &format!("{path}.port"))?;
    for key in ["interval", "timeout", "grace_period"] {
        opt_duration(c, key)?;
    }
    for key in ["method", "path", "protocol", "tls_server_name"] {
        opt_str(c, key, &format!("{path}.{key}"))?;
    }
    match opt_str(c, "kind", &format!("{path}.kind"))? {
        None | Some("informational" | "readiness") => {}
        Some(other) => return Err(format!("invalid_argument: invalid check kind {other:?}")),
    }
    for header in opt_arr(c, "headers", &format!("{path}.headers"))?.unwrap_or(&Vec::new()) {
        let Value::Object(h) = header else {
            return Err(type_error(header, path, "api.MachineHTTPHeader"));
        };
        opt_str(h, "name", &format!("{path}.headers.name"))?;
        string_list(h, "values", &format!("{path}.headers.values"))?;
    }
    Ok(())
}

/// The optional body of `POST …/stop` (reference §2.5, §8.6): nothing, or an object with a
/// known `signal` and a duration `timeout`. An array fails as Go's decoder does.
pub fn stop_body(raw: &[u8]) -> Checked<(Option<String>, Option<std::time::Duration>)> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok((None, None));
    }
    let body: Value = serde_json::from_slice(raw)
        .map_err(|e| format!("invalid character in request body: {e}"))?;
    let Value::Object(body) = body else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type main.stopRequest",
            kind(&body)
        ));
    };
    let signal = opt_str(&body, "signal", "signal")?;
    if let Some(signal) = signal {
        check_signal(signal, true)?;
    }
    Ok((signal.map(str::to_string), opt_duration(&body, "timeout")?))
}

fn check_signal(signal: &str, strict: bool) -> Checked<()> {
    if strict && !SIGNALS.contains(&signal) {
        return Err(format!("invalid_argument: invalid signal {signal:?}"));
    }
    Ok(())
}

fn opt_duration(obj: &Obj, key: &str) -> Checked<Option<std::time::Duration>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse_duration(v).map(Some),
    }
}
