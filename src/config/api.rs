//! `catty api`'s configuration: where to listen, the state directory, the provider (local,
//! with or without the sandbox, or Fly.io), the few variables local sessions inherit, and the
//! gateway sessions go through when there is one. No provider credential: those come with each
//! request (protocol::api), or, with a gateway, never reach a session at all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{api_addr, current_exe, state_dir};
use super::session_gateway::SessionGateway;
use super::{Allowances, BillingConfig, Env, FlyConfig, Logging, UsageError, parse_duration};
use crate::cli::ApiArgs;

/// Where machines run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    Local,
    Fly,
}

/// Everything `catty api` needs.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    /// Token file, session store, logs and local workspaces live here.
    pub state_dir: PathBuf,
    pub provider: ProviderKind,
    /// Run local sessions under bubblewrap when it is installed.
    pub sandbox: bool,
    /// This binary, started as `catty exec` for local sessions.
    pub exe: PathBuf,
    /// The variables of ours a local session's environment starts from ([`SESSION_VARS`]).
    pub session_env: Vec<(String, String)>,
    /// Live sessions at most (`CATTY_MAX_SESSIONS`, default [`DEFAULT_MAX_SESSIONS`]).
    pub max_sessions: usize,
    /// How long ended sessions stay in the list (`--keep-ended`, `CATTY_KEEP_ENDED`, default
    /// [`DEFAULT_KEEP_ENDED`]).
    pub keep_ended: Duration,
    /// Set when the provider is Fly.io.
    pub fly: Option<FlyConfig>,
    /// Set in hosted mode (`--database-url`): many users, many instances, one database.
    pub hosted: Option<HostedConfig>,
    /// Set when sessions reach their providers through a gateway (hosted or not).
    pub gateway: Option<SessionGateway>,
    pub log: Logging,
}

/// The hosted API's settings: its database and the secret its connect tokens derive from.
/// Both are secrets: `Debug` shows neither.
#[derive(Clone)]
pub struct HostedConfig {
    /// `--database-url` or `CATTY_DATABASE_URL`.
    pub database_url: String,
    /// `CATTY_CONNECT_KEY`: the same on every instance (a session created by one is opened
    /// through another), at least [`CONNECT_KEY_MIN_BYTES`].
    pub connect_key: Vec<u8>,
    /// What a session may have at most.
    pub limits: Limits,
    /// Where users log in (`catty login`); without it the login endpoints answer 503.
    pub oidc: Option<OidcConfig>,
    /// Stripe (`CATTY_STRIPE_*`, `CATTY_PUBLIC_URL`); without it billing's routes answer 404.
    pub billing: Option<BillingConfig>,
    /// Each plan's monthly budget, shown by `GET /v1/usage` (`config/plans.rs`).
    pub allowances: Allowances,
}

/// What the hosted API offers a session, whatever the request asks: more CPUs, memory or time
/// is clamped down to these; a region it does not offer is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `CATTY_MAX_CPUS` (default 2).
    pub max_cpus: u32,
    /// `CATTY_MAX_MEMORY_MB` (default 4096).
    pub max_memory_mb: u32,
    /// `CATTY_MAX_TTL`, a duration (default 8h).
    pub max_ttl_sec: u64,
    /// `CATTY_REGIONS`, comma-separated (default: any region the provider has).
    pub regions: Vec<String>,
}

impl Limits {
    fn new(env: &Env) -> Result<Limits, UsageError> {
        let number = |name: &str, default: u32| match env.non_empty(name) {
            None => Ok(default),
            Some(text) => match text.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(UsageError(format!(
                    "{name} must be a whole number above 0, got {text:?}"
                ))),
            },
        };
        let max_ttl = match env.non_empty("CATTY_MAX_TTL") {
            None => 8 * 3600,
            Some(text) => parse_duration(&text)
                .map_err(|e| UsageError(format!("CATTY_MAX_TTL: {}", e.0)))?
                .as_secs()
                .max(1),
        };
        let regions = env.non_empty("CATTY_REGIONS").unwrap_or_default();
        Ok(Limits {
            max_cpus: number("CATTY_MAX_CPUS", 2)?,
            max_memory_mb: number("CATTY_MAX_MEMORY_MB", 4096)?,
            max_ttl_sec: max_ttl,
            regions: regions
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl std::fmt::Debug for HostedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedConfig")
            .field("database_url", &"<secret>")
            .field("connect_key", &"<secret>")
            .field("limits", &self.limits)
            .field("oidc", &self.oidc)
            .field("billing", &self.billing)
            .field("allowances", &self.allowances)
            .finish()
    }
}

/// The OpenID Connect issuer whose device flow the API brokers (RFC 8628): WorkOS in
/// production (README, "Deployment"), any issuer with device flow in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// `CATTY_OIDC_ISSUER`: its discovery is `<issuer>/.well-known/openid-configuration`, and
    /// ID tokens must name it as `iss`. HTTPS, or plain HTTP on loopback (tests).
    pub issuer: String,
    /// `CATTY_OIDC_CLIENT_ID`: the public client the device flow runs as; ID tokens must name
    /// it as `aud`.
    pub client_id: String,
}

impl OidcConfig {
    fn new(env: &Env) -> Result<Option<OidcConfig>, UsageError> {
        let issuer = env.non_empty("CATTY_OIDC_ISSUER");
        let client_id = env.non_empty("CATTY_OIDC_CLIENT_ID");
        let (issuer, client_id) = match (issuer, client_id) {
            (None, None) => return Ok(None),
            (Some(issuer), Some(client_id)) => (issuer, client_id),
            _ => {
                return Err(UsageError(
                    "CATTY_OIDC_ISSUER and CATTY_OIDC_CLIENT_ID go together: set both, or \
                     neither (no catty login)"
                        .into(),
                ));
            }
        };
        let issuer = issuer.trim_end_matches('/').to_string();
        let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"];
        if !issuer.starts_with("https://") && !loopback.iter().any(|p| issuer.starts_with(p)) {
            return Err(UsageError(format!(
                "CATTY_OIDC_ISSUER {issuer:?} must be an https:// URL (its keys sign every login)"
            )));
        }
        Ok(Some(OidcConfig { issuer, client_id }))
    }
}

/// The connect key's least length: 32 bytes, the HMAC-SHA256 key size.
const CONNECT_KEY_MIN_BYTES: usize = 32;

/// Where the hosted API listens unless told: every interface, Fly's usual internal port (TLS
/// ends at Fly's proxy in front of it).
const HOSTED_ADDR: &str = "0.0.0.0:8080";

impl HostedConfig {
    fn new(flag: Option<String>, env: &Env) -> Result<Option<HostedConfig>, UsageError> {
        let Some(database_url) = flag.or_else(|| env.non_empty("CATTY_DATABASE_URL")) else {
            return Ok(None);
        };
        let connect_key = env.non_empty("CATTY_CONNECT_KEY").ok_or_else(|| {
            UsageError(
                "the hosted API (--database-url) needs CATTY_CONNECT_KEY, a secret of at least \
                 32 characters shared by every instance (e.g. openssl rand -hex 32)"
                    .into(),
            )
        })?;
        if connect_key.len() < CONNECT_KEY_MIN_BYTES {
            return Err(UsageError(format!(
                "CATTY_CONNECT_KEY is {} characters; it needs at least {CONNECT_KEY_MIN_BYTES}",
                connect_key.len()
            )));
        }
        Ok(Some(HostedConfig {
            database_url,
            connect_key: connect_key.into_bytes(),
            limits: Limits::new(env)?,
            oidc: OidcConfig::new(env)?,
            billing: BillingConfig::new(env)?,
            allowances: Allowances::new(env)?,
        }))
    }
}

impl ApiConfig {
    pub fn new(args: ApiArgs, env: &Env) -> Result<Self, UsageError> {
        let provider = match args.provider.as_deref() {
            Some("local") => ProviderKind::Local,
            Some("fly") => ProviderKind::Fly,
            Some(other) => {
                return Err(UsageError(format!(
                    "--provider {other:?} is unknown (local or fly)"
                )));
            }
            None if env.get("FLY_API_TOKEN").is_some_and(|t| !t.is_empty()) => ProviderKind::Fly,
            None => ProviderKind::Local,
        };
        let hosted = HostedConfig::new(args.database_url, env)?;
        let addr = match (&hosted, args.addr.or_else(|| env.get("CATTY_API_ADDR"))) {
            (Some(_), None) => Some(HOSTED_ADDR.to_string()),
            (_, addr) => addr,
        };
        Ok(ApiConfig {
            addr: api_addr(addr, env)?,
            state_dir: state_dir(env)?,
            provider,
            sandbox: !args.no_sandbox,
            exe: current_exe()?,
            session_env: SESSION_VARS
                .iter()
                .filter_map(|&k| Some((k.to_string(), env.get(k)?)))
                .collect(),
            max_sessions: max_sessions(env)?,
            keep_ended: keep_ended(args.keep_ended, env)?,
            fly: match provider {
                ProviderKind::Fly => Some(FlyConfig::new(env)?),
                ProviderKind::Local => None,
            },
            hosted,
            gateway: SessionGateway::new(env)?,
            log: Logging::new(env),
        })
    }
}

/// Ended sessions stay listed (`catty list --all`) this long: a day is enough to look back on
/// yesterday's work without the list growing forever.
const DEFAULT_KEEP_ENDED: Duration = Duration::from_secs(24 * 3600);

fn keep_ended(flag: Option<String>, env: &Env) -> Result<Duration, UsageError> {
    match flag.or_else(|| env.non_empty("CATTY_KEEP_ENDED")) {
        None => Ok(DEFAULT_KEEP_ENDED),
        Some(text) => parse_duration(&text)
            .map_err(|e| UsageError(format!("--keep-ended / CATTY_KEEP_ENDED: {}", e.0))),
    }
}

/// Live sessions a daemon runs at most unless `CATTY_MAX_SESSIONS` says otherwise: each is an
/// agent of a few hundred MiB on this computer, or a machine that costs money on Fly.io.
const DEFAULT_MAX_SESSIONS: usize = 32;

fn max_sessions(env: &Env) -> Result<usize, UsageError> {
    match env.non_empty("CATTY_MAX_SESSIONS") {
        None => Ok(DEFAULT_MAX_SESSIONS),
        Some(text) => match text.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(UsageError(format!(
                "CATTY_MAX_SESSIONS must be a whole number above 0, got {text:?}"
            ))),
        },
    }
}

/// The only variables of the daemon's environment a local session sees: the terminal's and
/// the locale's, who the user is, and how the runtime logs; `PATH` only for a request that
/// brings none (`catty new` sends its own). Secrets never: the agent's credential comes with
/// the request that creates the session.
const SESSION_VARS: [&str; 17] = [
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "LC_COLLATE",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_MONETARY",
    "TZ",
    "COLORTERM",
    "USER",
    "LOGNAME",
    "SHELL",
    "CATTY_LOG",
    "CATTY_DEBUG",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn api_config(provider: Option<&str>, vars: &[(&str, &str)]) -> Result<ApiConfig, UsageError> {
        let mut all = vec![("HOME", "/h")];
        all.extend(vars.iter().filter(|(_, v)| !v.is_empty()));
        let args = ApiArgs {
            provider: provider.map(str::to_string),
            addr: None,
            no_sandbox: false,
            keep_ended: None,
            database_url: None,
        };
        ApiConfig::new(args, &Env::from_pairs(&all))
    }

    #[test]
    fn local_without_a_fly_token() {
        let c = api_config(None, &[]).unwrap();
        assert_eq!((c.provider, c.fly.is_none()), (ProviderKind::Local, true));
    }

    #[test]
    fn fly_is_chosen_by_its_token() {
        let c = api_config(None, &[("FLY_API_TOKEN", "fm2_abc")]).unwrap();
        assert_eq!(c.provider, ProviderKind::Fly);
        assert_eq!(c.fly.unwrap().token, "fm2_abc");
    }

    #[test]
    fn the_flag_beats_the_token() {
        let c = api_config(Some("local"), &[("FLY_API_TOKEN", "t")]).unwrap();
        assert_eq!(c.provider, ProviderKind::Local);
        let err = api_config(Some("fly"), &[]).unwrap_err();
        assert!(err.0.contains("FLY_API_TOKEN"), "{}", err.0);
    }

    #[test]
    fn ended_sessions_are_kept_a_day_unless_told() {
        assert_eq!(api_config(None, &[]).unwrap().keep_ended.as_secs(), 86400);
        let c = api_config(None, &[("CATTY_KEEP_ENDED", "90m")]).unwrap();
        assert_eq!(c.keep_ended.as_secs(), 5400);
        assert!(api_config(None, &[("CATTY_KEEP_ENDED", "soon")]).is_err());
    }

    #[test]
    fn hosted_mode_needs_a_connect_key_and_shows_no_secret() {
        let url = [("CATTY_DATABASE_URL", "postgres://catty:pw-s3cret@db/catty")];
        let err = api_config(None, &url).unwrap_err();
        assert!(err.0.contains("CATTY_CONNECT_KEY"), "{}", err.0);
        let short = [url[0], ("CATTY_CONNECT_KEY", "short")];
        assert!(
            api_config(None, &short)
                .unwrap_err()
                .0
                .contains("at least 32")
        );
        let key = "k".repeat(40);
        let good = [url[0], ("CATTY_CONNECT_KEY", key.as_str())];
        let c = api_config(None, &good).unwrap();
        assert_eq!(c.addr.to_string(), "0.0.0.0:8080");
        let hosted = c.hosted.as_ref().unwrap();
        assert_eq!(hosted.database_url, url[0].1);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains(&key),
            "{shown}"
        );
        assert!(api_config(None, &[]).unwrap().hosted.is_none());
        assert_eq!(hosted.limits.max_cpus, 2);
        let limited = [
            good[0],
            good[1],
            ("CATTY_MAX_TTL", "90m"),
            ("CATTY_REGIONS", "ams, fra,"),
        ];
        let limits = api_config(None, &limited).unwrap().hosted.unwrap().limits;
        assert_eq!(
            (limits.max_ttl_sec, limits.regions),
            (5400, vec!["ams".into(), "fra".into()])
        );
        let bad = [good[0], good[1], ("CATTY_MAX_CPUS", "0")];
        assert!(
            api_config(None, &bad)
                .unwrap_err()
                .0
                .contains("CATTY_MAX_CPUS")
        );
    }

    #[test]
    fn the_oidc_issuer_comes_with_its_client_and_over_https() {
        let key = "k".repeat(40);
        let hosted = |vars: &[(&str, &str)]| {
            let mut all = vec![("CATTY_DATABASE_URL", "postgres://db/catty")];
            all.push(("CATTY_CONNECT_KEY", key.as_str()));
            all.extend(vars);
            api_config(None, &all).map(|c| c.hosted.unwrap().oidc)
        };
        assert_eq!(hosted(&[]).unwrap(), None);
        let issuer = ("CATTY_OIDC_ISSUER", "https://auth.example.com/");
        assert!(
            hosted(&[issuer])
                .unwrap_err()
                .0
                .contains("CATTY_OIDC_CLIENT_ID")
        );
        let both = hosted(&[issuer, ("CATTY_OIDC_CLIENT_ID", "client_1")]).unwrap();
        let both = both.unwrap();
        assert_eq!(
            (both.issuer.as_str(), both.client_id.as_str()),
            ("https://auth.example.com", "client_1")
        );
        let plain = ("CATTY_OIDC_ISSUER", "http://auth.example.com");
        let err = hosted(&[plain, ("CATTY_OIDC_CLIENT_ID", "c")]).unwrap_err();
        assert!(err.0.contains("https://"), "{}", err.0);
        let test = ("CATTY_OIDC_ISSUER", "http://127.0.0.1:4444");
        assert!(
            hosted(&[test, ("CATTY_OIDC_CLIENT_ID", "c")])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn no_provider_key_variable_can_reach_a_local_session() {
        let keys = [
            "ANTHROPIC_",
            "OPENAI_",
            "GEMINI_",
            "GOOGLE_",
            "CLAUDE_CODE_",
            "CODEX_",
        ];
        let keys = keys
            .iter()
            .chain(&["CATTY_LLM_", "CATTY_GATEWAY_", "CATTY_CODEX_"]);
        for prefix in keys {
            assert!(
                SESSION_VARS.iter().all(|name| !name.starts_with(prefix)),
                "{prefix}"
            );
        }
    }

    #[test]
    fn no_credential_of_the_daemons_environment_is_kept() {
        let vars = [("ANTHROPIC_API_KEY", "sk-ant"), ("LANG", "C.UTF-8")];
        let c = api_config(None, &vars).unwrap();
        assert_eq!(c.session_env, [("LANG".into(), "C.UTF-8".into())]);
        assert!(!format!("{c:?}").contains("sk-ant"));
    }
}
