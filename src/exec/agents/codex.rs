//! Codex: logged in with the API key (`auth.json` as `codex login --with-api-key` writes it;
//! Codex does not use `OPENAI_API_KEY` from the environment by itself), the workspace trusted
//! and the update check off in `config.toml` (reference/agents.md §7). Both files are merged.

use std::path::PathBuf;

use super::files::{self, Object};
use super::{ChildEnv, toml};

pub(super) fn prepare(env: &ChildEnv, workspace: &str) -> anyhow::Result<Vec<(String, String)>> {
    let home = match env.get("CODEX_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => env.home()?.join(".codex"),
    };
    if let Some(key) = env
        .get("OPENAI_API_KEY")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        files::edit_json(&home.join("auth.json"), |auth| {
            log_in(auth, key);
            Ok(())
        })?;
    }
    files::edit_text(&home.join("config.toml"), |text| {
        toml::trust_project(text, workspace)
    })?;
    Ok(Vec::new())
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
    fn without_a_key_only_trust_is_written_under_codex_home() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("CODEX_HOME".to_string(), dir.path().display().to_string())];
        prepare(&ChildEnv(&env), "/w").unwrap();
        assert!(!dir.path().join("auth.json").exists());
        assert!(dir.path().join("config.toml").is_file());
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
