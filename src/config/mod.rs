//! Flags plus `CATTY_*` environment into validated configuration: one file per mode (`exec`,
//! `api` with its Fly.io part in `fly`, `gateway`, `client`), the logging settings every mode shares, and
//! the shared parsers. The only place that reads the environment ([`Env`]); precedence is
//! flag, then environment, then default.

mod api;
mod billing;
mod client;
mod env;
mod exec;
mod fly;
mod gateway;
mod logging;
mod login_file;
mod parse;
mod plans;
mod session_gateway;

pub use api::{ApiConfig, HostedConfig, Limits, OidcConfig, ProviderKind};
pub use billing::{BillingConfig, DEFAULT_STRIPE_API_URL};
pub use client::{ClientConfig, ExtendOptions, HostedApi, NewOptions};
pub use env::Env;
pub use exec::{DEFAULT_GRACE, DEFAULT_SHELL, ExecConfig, Listen};
pub use fly::{DEFAULT_EXEC_APP, DEFAULT_FLY_API_BASE, DEFAULT_FLY_START_TIMEOUT, FlyConfig};
pub use gateway::{DEFAULT_GATEWAY_LISTEN, GatewayConfig, UpstreamConfig};
pub use logging::Logging;
pub use login_file::{LoginFile, api_url};
pub use parse::{DEFAULT_API_ADDR, parse_duration};
pub use plans::Allowances;
pub use session_gateway::SessionGateway;

/// A configuration problem: the user's input is wrong (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
