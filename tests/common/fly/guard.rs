//! What no request to the fake may carry (issue 18: no provider key in any machine): the
//! gateway's provider keys, anywhere in a body, and, when the fake is told the deployment has
//! a gateway, any provider-key variable in a machine's `config.env`. Such a request is
//! answered 400 and remembered; the fake fails the test when it is dropped.

use super::api::Req;

/// Variables that sign an agent in to its provider: with a gateway, a machine has none.
pub const KEY_VARS: [&str; 8] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "CATTY_CODEX_AUTH",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
];

/// Why `req` must not reach a machine, naming what leaked (never the secret itself).
pub fn leak(secrets: &[String], key_vars: bool, req: &Req) -> Option<String> {
    if let Some(i) = secrets
        .iter()
        .position(|s| !s.is_empty() && contains(&req.body, s.as_bytes()))
    {
        return Some(format!(
            "invalid_argument: {} {} carries provider key #{i}",
            req.method, req.path
        ));
    }
    let env = req.json.as_ref()?.pointer("/config/env")?.as_object()?;
    let name = env
        .keys()
        .find(|name| key_vars && KEY_VARS.contains(&name.as_str()))?;
    Some(format!(
        "invalid_argument: {} {} puts {name} in a machine's env",
        req.method, req.path
    ))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
