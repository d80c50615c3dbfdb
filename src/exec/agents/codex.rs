//! Codex: logged in, with the user's own login (`CATTY_CODEX_AUTH`, their `auth.json`, copied
//! in whole) or else the API key (`auth.json` as `codex login --with-api-key` writes it; Codex
//! does not use `OPENAI_API_KEY` from the environment by itself), the workspace trusted and the
//! update check off in `config.toml` (reference/agents.md §7). `config.toml` is merged.
//! With catty's gateway, no login at all: `config.toml` chooses a `catty` model provider that
//! is the gateway (`gateway.rs`).
//!
//! The login is a copy: when Codex refreshes its tokens in the session, the new ones stay in
//! the session's `auth.json` and never flow back to the user's computer (nothing of the
//! session's home does). The next `catty new` sends whatever the user's file holds then.

use std::path::{Path, PathBuf};

use anyhow::bail;
use serde_json::Value;

use super::files::{self, Object};
use super::gateway::Gateway;
use super::{ChildEnv, toml};
use crate::protocol::api::{CODEX_AUTH_VAR, LLM_TOKEN_VAR};

pub(super) fn prepare(env: &ChildEnv, workspace: &str) -> anyhow::Result<Vec<(String, String)>> {
    let home = match env.get("CODEX_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => env.home()?.join(".codex"),
    };
    // Trust first: a login that cannot be written still leaves that done.
    let gateway = Gateway::of(env);
    files::edit_text(&home.join("config.toml"), |text| {
        let trusted = toml::trust_project(text, workspace)?;
        match &gateway {
            Some(gateway) => toml::use_provider(&trusted, PROVIDER, &provider(gateway)),
            None => Ok(trusted),
        }
    })?;
    if gateway.is_some() {
        // The provider needs no login, and there is no key to log in with.
        return Ok(Vec::new());
    }
    if let Some(login) = env.get(CODEX_AUTH_VAR) {
        write_login(&home.join("auth.json"), login)?;
    } else if let Some(key) = env
        .get("OPENAI_API_KEY")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        files::edit_json(&home.join("auth.json"), |auth| {
            log_in(auth, key);
            Ok(())
        })?;
    }
    Ok(Vec::new())
}

/// The model provider that is catty's gateway, by its id in `config.toml`.
const PROVIDER: &str = "catty";

/// `[model_providers.catty]`: OpenAI's Responses API at the gateway, the session's token as
/// the bearer (read from the environment at each request), and no OpenAI login, so no login
/// screen (verified with Codex 0.169.0: tests/exec_agents/gateway.rs).
fn provider(gateway: &Gateway) -> Vec<(&'static str, String)> {
    vec![
        ("name", toml::quote("catty")),
        ("base_url", toml::quote(&gateway.openai_v1())),
        ("env_key", toml::quote(LLM_TOKEN_VAR)),
        ("wire_api", toml::quote("responses")),
        ("requires_openai_auth", "false".into()),
    ]
}

/// The user's `auth.json` as it is, once it is known to be a JSON object (Codex would not
/// start with anything else); private (0600), like Codex's own.
fn write_login(path: &Path, login: &str) -> anyhow::Result<()> {
    // serde_json's messages give a position, never the text.
    match serde_json::from_str::<Value>(login) {
        Ok(Value::Object(_)) => files::write_private(path, login.as_bytes()),
        Ok(_) => bail!("{CODEX_AUTH_VAR} is not a JSON object (the contents of auth.json)"),
        Err(e) => bail!("{CODEX_AUTH_VAR} is not valid JSON ({e})"),
    }
}

/// What `codex login --with-api-key` records.
pub(super) fn log_in(auth: &mut Object, key: &str) {
    auth.insert("auth_mode".into(), "apikey".into());
    auth.insert("OPENAI_API_KEY".into(), key.into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_fresh_home_is_logged_in_and_trusts_the_workspace() {
        let home = tempfile::tempdir().unwrap();
        let env = [
            ("HOME".to_string(), home.path().display().to_string()),
            ("OPENAI_API_KEY".to_string(), " sk-proj-abc \n".to_string()),
        ];
        prepare(&ChildEnv(&env), "/workspace").unwrap();
        let auth_path = home.path().join(".codex/auth.json");
        let auth: Value =
            serde_json::from_str(&std::fs::read_to_string(&auth_path).unwrap()).unwrap();
        assert_eq!(
            auth,
            json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-proj-abc"})
        );
        let mode = std::fs::metadata(&auth_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(home.path().join(".codex/config.toml")).unwrap(),
            "check_for_update_on_startup = false\n\n[projects.\"/workspace\"]\n\
             trust_level = \"trusted\"\n"
        );
    }

    #[test]
    fn with_the_gateway_codex_uses_the_catty_provider_and_no_login() {
        let home = tempfile::tempdir().unwrap();
        let env = [
            ("HOME".to_string(), home.path().display().to_string()),
            ("CATTY_LLM_URL".to_string(), "http://gw:8080".to_string()),
            ("CATTY_LLM_TOKEN".to_string(), "cst_s-1.ab".to_string()),
        ];
        assert!(prepare(&ChildEnv(&env), "/workspace").unwrap().is_empty());
        assert!(!home.path().join(".codex/auth.json").exists());
        assert_eq!(
            std::fs::read_to_string(home.path().join(".codex/config.toml")).unwrap(),
            "model_provider = \"catty\"\ncheck_for_update_on_startup = false\n\n\
             [projects.\"/workspace\"]\ntrust_level = \"trusted\"\n\n\
             [model_providers.catty]\nname = \"catty\"\n\
             base_url = \"http://gw:8080/openai/v1\"\nenv_key = \"CATTY_LLM_TOKEN\"\n\
             wire_api = \"responses\"\nrequires_openai_auth = false\n"
        );
    }

    #[test]
    fn without_a_key_only_trust_is_written_under_codex_home() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("CODEX_HOME".to_string(), dir.path().display().to_string())];
        prepare(&ChildEnv(&env), "/w").unwrap();
        assert!(!dir.path().join("auth.json").exists());
        assert!(dir.path().join("config.toml").is_file());
    }

    #[test]
    fn the_users_login_is_copied_as_it_is_and_wins_over_the_key() {
        let home = tempfile::tempdir().unwrap();
        let codex_home = home.path().join("codex");
        let login = "{\"OPENAI_API_KEY\": null, \"tokens\": {\"refresh_token\": \"rt\"}}\n";
        let env = [
            ("CODEX_HOME".to_string(), codex_home.display().to_string()),
            (CODEX_AUTH_VAR.to_string(), login.to_string()),
            ("OPENAI_API_KEY".to_string(), "sk-proj-abc".to_string()),
        ];
        prepare(&ChildEnv(&env), "/workspace").unwrap();
        let auth_path = codex_home.join("auth.json");
        assert_eq!(std::fs::read_to_string(&auth_path).unwrap(), login);
        let mode = std::fs::metadata(&auth_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_login_that_is_not_a_json_object_is_refused_without_showing_it() {
        let home = tempfile::tempdir().unwrap();
        for (login, why) in [
            (
                "{\"tokens\": secret",
                "is not valid JSON (expected value at line 1 column 12)",
            ),
            (
                "[\"secret\"]",
                "is not a JSON object (the contents of auth.json)",
            ),
        ] {
            let env = [
                ("HOME".to_string(), home.path().display().to_string()),
                (CODEX_AUTH_VAR.to_string(), login.to_string()),
            ];
            let err = prepare(&ChildEnv(&env), "/w").unwrap_err().to_string();
            assert_eq!(err, format!("CATTY_CODEX_AUTH {why}"));
            assert!(!home.path().join(".codex/auth.json").exists());
        }
    }

    #[test]
    fn other_auth_fields_stay() {
        let mut auth = match json!({"auth_mode": "chatgpt", "tokens": {"id": 1}}) {
            Value::Object(o) => o,
            _ => unreachable!(),
        };
        log_in(&mut auth, "k");
        assert_eq!(
            Value::Object(auth),
            json!({"auth_mode": "apikey", "OPENAI_API_KEY": "k", "tokens": {"id": 1}})
        );
    }
}
