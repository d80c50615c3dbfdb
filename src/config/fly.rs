//! The Fly.io provider's part of `catty api`'s configuration (SPEC section 3): the token, the
//! Machines API, the app, where the runtimes answer, the image and the start timeout.

use std::time::Duration;

use super::{Env, UsageError, parse_duration};
use crate::net::RuntimeUrl;

/// The Machines API's address unless `FLY_MACHINES_API_BASE` says otherwise.
pub const DEFAULT_FLY_API_BASE: &str = "https://api.machines.dev";
/// The Machines API from inside Fly's private network (a machine of the operator's
/// organisation, as the hosted API is): plain HTTP over WireGuard, no TLS or public hop.
const FLY_INTERNAL_API_BASE: &str = "http://_api.internal:4280";
/// The Fly app session machines run in unless `CATTY_EXEC_APP` says otherwise.
pub const DEFAULT_EXEC_APP: &str = "catty-exec";
/// How long a new machine may take to reach `started` (pulling a large image onto a fresh
/// host takes a while) unless `CATTY_FLY_START_TIMEOUT` says otherwise.
pub const DEFAULT_FLY_START_TIMEOUT: Duration = Duration::from_secs(180);

/// What the Fly.io provider needs.
#[derive(Clone)]
pub struct FlyConfig {
    /// `FLY_API_TOKEN` as the user gave it; the provider picks the scheme.
    pub token: String,
    /// `FLY_MACHINES_API_BASE`, without a trailing slash.
    pub api_base: String,
    /// `CATTY_EXEC_APP`.
    pub app: String,
    /// Base URL of the runtimes, without a trailing slash: `CATTY_EXEC_URL`, else
    /// `https://` and `CATTY_EXEC_HOST` (default `<app>.fly.dev`).
    pub exec_url: String,
    /// `CATTY_IMAGE`; otherwise the provider finds the image of the app's machines.
    pub image: Option<String>,
    /// `CATTY_FLY_START_TIMEOUT`: a machine not `started` by then is destroyed.
    pub start_timeout: Duration,
}

// By hand: the token must never reach a log.
impl std::fmt::Debug for FlyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyConfig")
            .field("token", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("app", &self.app)
            .field("exec_url", &self.exec_url)
            .field("image", &self.image)
            .field("start_timeout", &self.start_timeout)
            .finish()
    }
}

impl FlyConfig {
    pub fn new(env: &Env) -> Result<Self, UsageError> {
        let token = env.non_empty("FLY_API_TOKEN").ok_or_else(|| {
            UsageError("FLY_API_TOKEN is not set (the fly provider needs it)".into())
        })?;
        // Fly sets FLY_MACHINE_ID in every machine it runs.
        let inside_fly = env.non_empty("FLY_MACHINE_ID").is_some();
        let api_base = env.non_empty("FLY_MACHINES_API_BASE").unwrap_or_else(|| {
            match inside_fly {
                true => FLY_INTERNAL_API_BASE,
                false => DEFAULT_FLY_API_BASE,
            }
            .into()
        });
        if !(api_base.starts_with("https://") || api_base.starts_with("http://")) {
            return Err(UsageError(format!(
                "FLY_MACHINES_API_BASE {api_base:?} is not an http(s):// URL"
            )));
        }
        let app = env
            .non_empty("CATTY_EXEC_APP")
            .unwrap_or_else(|| DEFAULT_EXEC_APP.into());
        let start_timeout = match env.non_empty("CATTY_FLY_START_TIMEOUT") {
            Some(text) => parse_duration(&text)
                .map_err(|e| UsageError(format!("CATTY_FLY_START_TIMEOUT: {e}")))?,
            None => DEFAULT_FLY_START_TIMEOUT,
        };
        let exec_url = exec_url(
            env.non_empty("CATTY_EXEC_URL"),
            env.non_empty("CATTY_EXEC_HOST"),
            &app,
        )?;
        Ok(FlyConfig {
            token,
            api_base: api_base.trim_end_matches('/').to_string(),
            exec_url,
            app,
            image: env.non_empty("CATTY_IMAGE"),
            start_timeout,
        })
    }
}

/// The runtimes' base URL: `CATTY_EXEC_URL` as given (custom domains, tests), else
/// `https://<CATTY_EXEC_HOST or <app>.fly.dev>`. Attaches upgrade it to a WebSocket.
fn exec_url(url: Option<String>, host: Option<String>, app: &str) -> Result<String, UsageError> {
    if let Some(url) = url {
        return RuntimeUrl::normalize(&url).map_err(|_| {
            UsageError(format!(
                "CATTY_EXEC_URL {url:?} is not a base URL like https://exec.example.com"
            ))
        });
    }
    let host = host.unwrap_or_else(|| format!("{app}.fly.dev"));
    if host.contains(['/', '?', '#', '@']) || host.is_empty() {
        return Err(UsageError(format!(
            "CATTY_EXEC_HOST {host:?} is not a host name (use CATTY_EXEC_URL for a full URL)"
        )));
    }
    Ok(format!("https://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fly(vars: &[(&str, &str)]) -> Result<FlyConfig, UsageError> {
        let mut all = vec![("FLY_API_TOKEN", "t")];
        all.extend_from_slice(vars);
        FlyConfig::new(&Env::from_pairs(&all))
    }

    #[test]
    fn inside_fly_the_machines_api_is_the_internal_one() {
        assert_eq!(fly(&[]).unwrap().api_base, DEFAULT_FLY_API_BASE);
        let inside = [("FLY_MACHINE_ID", "e286065f969386")];
        assert_eq!(fly(&inside).unwrap().api_base, FLY_INTERNAL_API_BASE);
        let told = [
            inside[0],
            ("FLY_MACHINES_API_BASE", "https://api.machines.dev"),
        ];
        assert_eq!(fly(&told).unwrap().api_base, DEFAULT_FLY_API_BASE);
    }

    #[test]
    fn defaults() {
        let c = fly(&[]).unwrap();
        assert_eq!(c.api_base, "https://api.machines.dev");
        assert_eq!(c.app, "catty-exec");
        assert_eq!(c.exec_url, "https://catty-exec.fly.dev");
        assert_eq!(c.image, None);
        assert_eq!(c.start_timeout, DEFAULT_FLY_START_TIMEOUT);
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let c = fly(&[("FLY_API_TOKEN", "fm2_abc")]).unwrap();
        assert_eq!(c.token, "fm2_abc");
        assert!(!format!("{c:?}").contains("fm2_abc"));
    }

    #[test]
    fn exec_url_from_the_app_or_the_host() {
        let c = fly(&[("CATTY_EXEC_APP", "my-exec")]).unwrap();
        assert_eq!(c.exec_url, "https://my-exec.fly.dev");
        let c = fly(&[("CATTY_EXEC_HOST", "exec.example.com")]).unwrap();
        assert_eq!(c.exec_url, "https://exec.example.com");
        assert!(fly(&[("CATTY_EXEC_HOST", "https://h")]).is_err());
    }

    #[test]
    fn exec_url_as_given_wins_and_is_normalised() {
        let url = [
            ("https://exec.example.com/", "https://exec.example.com"),
            ("http://127.0.0.1:9000", "http://127.0.0.1:9000"),
            ("wss://e.example/base", "https://e.example/base"),
            ("ws://127.0.0.1:1", "http://127.0.0.1:1"),
        ];
        for (given, want) in url {
            let c = fly(&[("CATTY_EXEC_URL", given), ("CATTY_EXEC_HOST", "ignored")]).unwrap();
            assert_eq!(c.exec_url, want);
        }
    }

    #[test]
    fn exec_url_that_is_not_a_base_url_is_refused() {
        for bad in [
            "exec.example.com",
            "https://",
            "https:///x",
            "https://h?x=1",
            "ftp://h",
        ] {
            assert!(fly(&[("CATTY_EXEC_URL", bad)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_base_image_and_start_timeout() {
        let c = fly(&[
            ("FLY_MACHINES_API_BASE", "http://127.0.0.1:4280/"),
            ("CATTY_IMAGE", "registry.fly.io/catty-exec:v1"),
            ("CATTY_FLY_START_TIMEOUT", "3s"),
        ])
        .unwrap();
        assert_eq!(c.api_base, "http://127.0.0.1:4280");
        assert_eq!(c.image.as_deref(), Some("registry.fly.io/catty-exec:v1"));
        assert_eq!(c.start_timeout, Duration::from_secs(3));
        assert!(fly(&[("FLY_MACHINES_API_BASE", "api.machines.dev")]).is_err());
        assert!(fly(&[("CATTY_FLY_START_TIMEOUT", "soon")]).is_err());
    }
}
