//! Parsers the modes share: durations, whole seconds, the daemon's address, the state
//! directory and this binary's path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Env, UsageError};

/// Where the daemon listens unless `CATTY_API_ADDR` says otherwise.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:4815";

/// A duration as typed by a user: `90s`, `45m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UsageError> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 && scale > 0 => Ok(Duration::from_secs(n * scale)),
        _ => Err(UsageError(format!(
            "{text:?} is not a duration (like 90s, 45m, 2h)"
        ))),
    }
}

/// Whole seconds from a flag, else from the variable `name`.
pub(super) fn seconds(
    flag: Option<u64>,
    env: &Env,
    name: &str,
) -> Result<Option<Duration>, UsageError> {
    let value = match (flag, env.get(name)) {
        (Some(v), _) => v,
        (None, Some(s)) => s
            .trim()
            .parse()
            .map_err(|_| UsageError(format!("{name} must be whole seconds, got {s:?}")))?,
        (None, None) => return Ok(None),
    };
    Ok(Some(Duration::from_secs(value)))
}

/// The daemon's address: the flag, else `CATTY_API_ADDR`, else [`DEFAULT_API_ADDR`].
pub(super) fn api_addr(flag: Option<String>, env: &Env) -> Result<SocketAddr, UsageError> {
    let addr = flag
        .or_else(|| env.get("CATTY_API_ADDR"))
        .unwrap_or_else(|| DEFAULT_API_ADDR.into());
    addr.parse().map_err(|_| {
        UsageError(format!(
            "CATTY_API_ADDR / --addr: {addr:?} is not HOST:PORT"
        ))
    })
}

/// `$XDG_STATE_HOME/catty`, else `~/.local/state/catty`.
pub(super) fn state_dir(env: &Env) -> Result<PathBuf, UsageError> {
    if let Some(dir) = env.get("XDG_STATE_HOME").filter(|d| d.starts_with('/')) {
        return Ok(PathBuf::from(dir).join("catty"));
    }
    let home = env
        .get("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| UsageError("HOME is not set".into()))?;
    Ok(PathBuf::from(home).join(".local/state/catty"))
}

/// This binary, which the daemon and the client start in other modes.
pub(super) fn current_exe() -> Result<PathBuf, UsageError> {
    std::env::current_exe().map_err(|e| UsageError(format!("cannot find the catty binary: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("45m").unwrap(), Duration::from_secs(2700));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "0", "h", "2w", "1.5h", "-3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_dir_follows_xdg() {
        let env = Env::from_pairs(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(state_dir(&env).unwrap(), PathBuf::from("/x/catty"));
        let env = Env::from_pairs(&[("HOME", "/h")]);
        assert_eq!(
            state_dir(&env).unwrap(),
            PathBuf::from("/h/.local/state/catty")
        );
    }
}
