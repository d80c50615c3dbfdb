//! Agents through catty's gateway: when the runtime's environment has the gateway's URL and
//! the session's token (`CATTY_LLM_URL`, `CATTY_LLM_TOKEN`), each agent is pointed at the
//! gateway's route for its provider, in its own way and for itself only (Gemini CLI switches to
//! another mode when it sees `OPENAI_BASE_URL`, so nothing here is machine-wide):
//!
//! - Claude Code: `ANTHROPIC_BASE_URL` and `ANTHROPIC_AUTH_TOKEN` (a bearer token: no API-key
//!   approval dialog, reference/agents.md §4 case G);
//! - Codex: a `catty` model provider in `config.toml` (`codex.rs`) that reads the token from
//!   `CATTY_LLM_TOKEN` and needs no login;
//! - Gemini CLI: `GOOGLE_GEMINI_BASE_URL` and `GEMINI_API_KEY`, with its API-key sign-in.
//!
//! The gateway's variables replace the agent's own credential variables, whatever set them.

use super::ChildEnv;
use crate::protocol::Agent;
use crate::protocol::api::{
    GATEWAY_ANTHROPIC_ROUTE, GATEWAY_GEMINI_ROUTE, GATEWAY_OPENAI_ROUTE, LLM_TOKEN_VAR, LLM_URL_VAR,
};

/// The gateway as the runtime's environment names it.
pub(super) struct Gateway<'a> {
    /// Without a trailing `/`.
    url: &'a str,
    token: &'a str,
}

impl<'a> Gateway<'a> {
    /// The gateway, when the environment has both of its variables.
    pub(super) fn of(env: &ChildEnv<'a>) -> Option<Gateway<'a>> {
        Some(Gateway {
            url: env.get(LLM_URL_VAR)?.trim_end_matches('/'),
            token: env.get(LLM_TOKEN_VAR)?,
        })
    }

    /// Codex's base URL: the gateway's OpenAI route with the API's version, as OpenAI's own
    /// `https://api.openai.com/v1`.
    pub(super) fn openai_v1(&self) -> String {
        format!("{}{GATEWAY_OPENAI_ROUTE}/v1", self.url)
    }

    /// The variables that point `agent` at the gateway (none for Codex: its config file does).
    pub(super) fn vars(&self, agent: Agent) -> Vec<(String, String)> {
        let pair = |name: &str, value: String| (name.to_string(), value);
        match agent {
            Agent::Claude => vec![
                pair(
                    "ANTHROPIC_BASE_URL",
                    format!("{}{GATEWAY_ANTHROPIC_ROUTE}", self.url),
                ),
                pair("ANTHROPIC_AUTH_TOKEN", self.token.to_string()),
            ],
            Agent::Gemini => vec![
                pair(
                    "GOOGLE_GEMINI_BASE_URL",
                    format!("{}{GATEWAY_GEMINI_ROUTE}", self.url),
                ),
                pair("GEMINI_API_KEY", self.token.to_string()),
            ],
            Agent::Codex | Agent::Shell => Vec::new(),
        }
    }
}

/// Points the program's environment at the gateway when there is one: the agent's credential
/// variables go (a provider key must not win over the gateway, nor be sent to it) and the
/// gateway's are set.
pub(super) fn apply(agent: Agent, env: &mut Vec<(String, String)>) {
    let Some(vars) = Gateway::of(&ChildEnv(env)).map(|g| g.vars(agent)) else {
        return;
    };
    let credentials = agent.credential_vars();
    env.retain(|(name, _)| {
        !credentials.contains(&name.as_str()) && !vars.iter().any(|(set, _)| set == name)
    });
    env.extend(vars);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn get<'e>(env: &'e [(String, String)], name: &str) -> Option<&'e str> {
        ChildEnv(env).get(name)
    }

    const GATEWAY: [(&str, &str); 2] = [
        ("CATTY_LLM_URL", "http://gw.flycast/"),
        ("CATTY_LLM_TOKEN", "cst_s-1.ab"),
    ];

    #[test]
    fn claude_gets_a_base_url_and_a_bearer_token_and_no_key() {
        let mut e = env(&GATEWAY);
        e.extend(env(&[
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01"),
            ("ANTHROPIC_BASE_URL", "http://elsewhere"),
        ]));
        apply(Agent::Claude, &mut e);
        assert_eq!(
            get(&e, "ANTHROPIC_BASE_URL"),
            Some("http://gw.flycast/anthropic")
        );
        assert_eq!(get(&e, "ANTHROPIC_AUTH_TOKEN"), Some("cst_s-1.ab"));
        assert_eq!(get(&e, "ANTHROPIC_API_KEY"), None);
        assert_eq!(get(&e, "CLAUDE_CODE_OAUTH_TOKEN"), None);
        assert_eq!(
            e.iter().filter(|(k, _)| k == "ANTHROPIC_BASE_URL").count(),
            1
        );
        // The session's token may stay: it is good for this session only.
        assert_eq!(get(&e, "CATTY_LLM_TOKEN"), Some("cst_s-1.ab"));
    }

    #[test]
    fn gemini_gets_its_base_url_and_the_token_as_its_key() {
        let mut e = env(&GATEWAY);
        apply(Agent::Gemini, &mut e);
        assert_eq!(
            get(&e, "GOOGLE_GEMINI_BASE_URL"),
            Some("http://gw.flycast/gemini")
        );
        assert_eq!(get(&e, "GEMINI_API_KEY"), Some("cst_s-1.ab"));
        assert_eq!(get(&e, "OPENAI_BASE_URL"), None);
    }

    #[test]
    fn codex_and_the_shell_get_no_variables_and_no_gateway_changes_nothing() {
        for agent in [Agent::Codex, Agent::Shell] {
            let mut e = env(&GATEWAY);
            apply(agent, &mut e);
            assert_eq!(e, env(&GATEWAY), "{agent}");
        }
        let mut e = env(&[
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("CATTY_LLM_URL", "http://gw"),
        ]);
        let before = e.clone();
        apply(Agent::Claude, &mut e);
        assert_eq!(e, before, "a URL without a token is no gateway");
    }
}
