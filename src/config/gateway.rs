//! `catty gateway`'s configuration: where it listens, the hosted API's database, the gateway
//! key that checks session tokens, and per provider its upstream and its pool of keys. Every
//! secret comes from the environment only, and `Debug` shows none of them.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Allowances, Env, Logging, UsageError, parse_duration};
use crate::cli::GatewayArgs;

/// Where the gateway listens unless told: every interface, IPv6 included, as Fly's private
/// network (Flycast) reaches an app over `fdaa:` addresses.
pub const DEFAULT_GATEWAY_LISTEN: &str = "[::]:8080";

/// How long an upstream may say nothing before its answer is cut: Codex's own stream idle
/// timeout. Never a total: a long answer that keeps coming is never cut.
const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// How often the holds of gateway instances that died are given back: a crashed instance's
/// holds keep its users' budgets down this long at most (plus its lock's own release).
const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Everything `catty gateway` needs.
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// `CATTY_DATABASE_URL`: the hosted API's database (sessions, quota, usage).
    pub database_url: String,
    /// `CATTY_GATEWAY_KEY`: session tokens are checked with it, upgrade links signed.
    pub gateway_key: Vec<u8>,
    pub anthropic: UpstreamConfig,
    pub openai: UpstreamConfig,
    pub gemini: UpstreamConfig,
    /// `CATTY_PUBLIC_URL`: the hosted API's URL, for the upgrade link of a 402.
    pub public_url: Option<String>,
    /// `CATTY_GATEWAY_IDLE`: the longest silence of a client or an upstream.
    pub idle: Duration,
    /// `CATTY_GATEWAY_SWEEP_EVERY` (hidden, for tests): how often dead instances' holds are
    /// given back.
    pub sweep_every: Duration,
    /// Each plan's monthly budget (`config/plans.rs`), what the quota holds requests against.
    pub allowances: Allowances,
    pub log: Logging,
}

/// One provider's upstream and its keys.
#[derive(Clone)]
pub struct UpstreamConfig {
    /// `http(s)://host[:port][/prefix]`, without a trailing `/`.
    pub base: String,
    /// The pool (`CATTY_<PROVIDER>_KEYS`, comma-separated); empty: the provider answers 503.
    pub keys: Vec<String>,
}

impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("base", &self.base)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("listen", &self.listen)
            .field("database_url", &"<secret>")
            .field("gateway_key", &"<secret>")
            .field("anthropic", &self.anthropic)
            .field("openai", &self.openai)
            .field("gemini", &self.gemini)
            .field("public_url", &self.public_url)
            .field("idle", &self.idle)
            .field("sweep_every", &self.sweep_every)
            .field("allowances", &self.allowances)
            .finish()
    }
}

impl GatewayConfig {
    pub fn new(args: GatewayArgs, env: &Env) -> Result<GatewayConfig, UsageError> {
        let listen = args
            .listen
            .or_else(|| env.non_empty("CATTY_GATEWAY_LISTEN"))
            .unwrap_or_else(|| DEFAULT_GATEWAY_LISTEN.into());
        let listen = listen.parse().map_err(|_| {
            UsageError(format!(
                "--listen / CATTY_GATEWAY_LISTEN: {listen:?} is not HOST:PORT"
            ))
        })?;
        let database_url = env.non_empty("CATTY_DATABASE_URL").ok_or_else(|| {
            UsageError("catty gateway needs CATTY_DATABASE_URL (the hosted API's database)".into())
        })?;
        let duration = |name: &str, default: Duration| match env.non_empty(name) {
            None => Ok(default),
            Some(text) => parse_duration(&text).map_err(|e| UsageError(format!("{name}: {}", e.0))),
        };
        let idle = duration("CATTY_GATEWAY_IDLE", DEFAULT_IDLE)?;
        let sweep_every = duration("CATTY_GATEWAY_SWEEP_EVERY", DEFAULT_SWEEP_EVERY)?;
        Ok(GatewayConfig {
            listen,
            database_url,
            gateway_key: gateway_key(env)?,
            anthropic: upstream(env, "ANTHROPIC", "https://api.anthropic.com")?,
            openai: upstream(env, "OPENAI", "https://api.openai.com")?,
            gemini: upstream(env, "GEMINI", "https://generativelanguage.googleapis.com")?,
            public_url: env
                .non_empty("CATTY_PUBLIC_URL")
                .map(|url| url.trim_end_matches('/').to_string()),
            idle,
            sweep_every,
            allowances: Allowances::new(env)?,
            log: Logging::new(env),
        })
    }
}

fn gateway_key(env: &Env) -> Result<Vec<u8>, UsageError> {
    let min = crate::llm_token::MIN_KEY_LEN;
    let key = env.non_empty("CATTY_GATEWAY_KEY").ok_or_else(|| {
        UsageError(format!(
            "catty gateway needs CATTY_GATEWAY_KEY, the secret the hosted API mints session \
             tokens with (at least {min} characters)"
        ))
    })?;
    super::session_gateway::long_enough(key)
}

/// `CATTY_<NAME>_UPSTREAM` (else `default`) and `CATTY_<NAME>_KEYS`.
fn upstream(env: &Env, name: &str, default: &str) -> Result<UpstreamConfig, UsageError> {
    let var = format!("CATTY_{name}_UPSTREAM");
    let base = env.non_empty(&var).unwrap_or_else(|| default.into());
    let base = base.trim_end_matches('/').to_string();
    let parsed = base.parse::<hyper::Uri>().ok();
    let scheme = parsed.as_ref().and_then(|u| u.scheme_str());
    if !matches!(scheme, Some("http" | "https"))
        || parsed.and_then(|u| u.host().map(drop)).is_none()
    {
        return Err(UsageError(format!(
            "{var} {base:?} is not an http:// or https:// URL"
        )));
    }
    let keys_var = format!("CATTY_{name}_KEYS");
    let keys: Vec<String> = (env.get(&keys_var).unwrap_or_default())
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    // Checked here, never named: a key is a secret.
    if let Some(i) = keys
        .iter()
        .position(|k| hyper::header::HeaderValue::from_str(k).is_err())
    {
        return Err(UsageError(format!(
            "{keys_var}: key {} of {} has characters no HTTP header can carry",
            i + 1,
            keys.len()
        )));
    }
    Ok(UpstreamConfig { base, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "gateway-key-0123456789abcdef-0123456789";

    fn config(vars: &[(&str, &str)]) -> Result<GatewayConfig, UsageError> {
        let mut all = vec![
            ("CATTY_DATABASE_URL", "postgres://catty:pw-s3cret@db/catty"),
            ("CATTY_GATEWAY_KEY", KEY),
        ];
        all.extend(vars);
        GatewayConfig::new(GatewayArgs { listen: None }, &Env::from_pairs(&all))
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "[::]:8080");
        assert_eq!(c.anthropic.base, "https://api.anthropic.com");
        assert_eq!(c.openai.base, "https://api.openai.com");
        assert_eq!(c.gemini.base, "https://generativelanguage.googleapis.com");
        assert!(c.anthropic.keys.is_empty());
        assert_eq!(c.idle, Duration::from_secs(300));
        assert_eq!(c.sweep_every, Duration::from_secs(15));
        assert_eq!(c.public_url, None);
    }

    #[test]
    fn the_flag_beats_the_variable() {
        let env = Env::from_pairs(&[
            ("CATTY_DATABASE_URL", "postgres://db/catty"),
            ("CATTY_GATEWAY_KEY", KEY),
            ("CATTY_GATEWAY_LISTEN", "127.0.0.1:9"),
        ]);
        let flag = GatewayArgs {
            listen: Some("127.0.0.1:0".into()),
        };
        assert_eq!(GatewayConfig::new(flag, &env).unwrap().listen.port(), 0);
        let from_env = GatewayConfig::new(GatewayArgs { listen: None }, &env).unwrap();
        assert_eq!(from_env.listen.port(), 9);
    }

    #[test]
    fn key_pools_and_upstreams() {
        let c = config(&[
            ("CATTY_ANTHROPIC_KEYS", " sk-ant-1, sk-ant-2 ,,"),
            ("CATTY_OPENAI_UPSTREAM", "http://127.0.0.1:4000/"),
            ("CATTY_GATEWAY_IDLE", "2s"),
            ("CATTY_GATEWAY_SWEEP_EVERY", "1"),
        ])
        .unwrap();
        assert_eq!(c.sweep_every, Duration::from_secs(1));
        assert_eq!(c.anthropic.keys, ["sk-ant-1", "sk-ant-2"]);
        assert_eq!(c.openai.base, "http://127.0.0.1:4000");
        assert_eq!(c.idle, Duration::from_secs(2));
        let bad = config(&[("CATTY_GEMINI_UPSTREAM", "ftp://x")]).unwrap_err();
        assert!(bad.0.contains("CATTY_GEMINI_UPSTREAM"), "{}", bad.0);
    }

    #[test]
    fn secrets_are_required_and_never_shown() {
        let keys = ("CATTY_ANTHROPIC_KEYS", "sk-ant-very-secret");
        let shown = format!("{:?}", config(&[keys]).unwrap());
        for secret in ["s3cret", KEY, "sk-ant-very-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let no_db = GatewayConfig::new(
            GatewayArgs { listen: None },
            &Env::from_pairs(&[("CATTY_GATEWAY_KEY", KEY)]),
        );
        assert!(no_db.unwrap_err().0.contains("CATTY_DATABASE_URL"));
        let short = config(&[("CATTY_GATEWAY_KEY", "short")]).unwrap_err();
        assert!(short.0.contains("at least 32"), "{}", short.0);
        let bad = config(&[("CATTY_OPENAI_KEYS", "ok,bad\nkey-secret")]).unwrap_err();
        assert!(bad.0.contains("key 2 of 2") && !bad.0.contains("key-secret"));
    }
}
