//! Gemini CLI: the workspace trusted (`trustedFolders.json`) and, with `GEMINI_API_KEY`, the
//! API key chosen as the way to sign in (`settings.json`), so neither the trust question nor
//! the auth picker appears (reference/agents.md §8). Both files are merged. With catty's
//! gateway the key is the session's token and the base URL the gateway's (`gateway.rs`).

use std::path::PathBuf;

use super::ChildEnv;
use super::files::{self, Object};

pub(super) fn prepare(env: &ChildEnv, workspace: &str) -> anyhow::Result<Vec<(String, String)>> {
    // Gemini CLI's own overrides: GEMINI_CLI_HOME for the home, and the trust file's path.
    let dir = match env.get("GEMINI_CLI_HOME") {
        Some(home) => PathBuf::from(home),
        None => env.home()?,
    }
    .join(".gemini");
    if env.get("GEMINI_API_KEY").is_some() {
        files::edit_json(&dir.join("settings.json"), use_api_key)?;
    }
    let trusted = env
        .get("GEMINI_CLI_TRUSTED_FOLDERS_PATH")
        .map_or_else(|| dir.join("trustedFolders.json"), PathBuf::from);
    files::edit_json(&trusted, |folders| {
        folders.insert(workspace.into(), "TRUST_FOLDER".into());
        Ok(())
    })?;
    // Without it Gemini CLI warns that true colour was not detected.
    Ok(vec![("COLORTERM".into(), "truecolor".into())])
}

fn use_api_key(settings: &mut Object) -> anyhow::Result<()> {
    let auth = files::object(files::object(settings, "security")?, "auth")?;
    auth.insert("selectedType".into(), "gemini-api-key".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn read(path: PathBuf) -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_key_is_selected_and_the_workspace_trusted() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".gemini");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("settings.json"),
            r#"{"ui": {"theme": "GitHub"}, "security": {"folderTrust": {"enabled": true}}}"#,
        )
        .unwrap();
        let env = [
            ("HOME".to_string(), home.path().display().to_string()),
            ("GEMINI_API_KEY".to_string(), "AIza-fake".to_string()),
        ];
        let vars = prepare(&ChildEnv(&env), "/workspace").unwrap();
        assert_eq!(vars, [("COLORTERM".into(), "truecolor".into())]);
        assert_eq!(
            read(dir.join("settings.json")),
            json!({"ui": {"theme": "GitHub"}, "security": {
                "folderTrust": {"enabled": true},
                "auth": {"selectedType": "gemini-api-key"}
            }})
        );
        assert_eq!(
            read(dir.join("trustedFolders.json")),
            json!({"/workspace": "TRUST_FOLDER"})
        );
    }

    #[test]
    fn without_a_key_the_sign_in_choice_is_left_to_the_user() {
        let home = tempfile::tempdir().unwrap();
        let env = [(
            "GEMINI_CLI_HOME".to_string(),
            home.path().display().to_string(),
        )];
        prepare(&ChildEnv(&env), "/w").unwrap();
        assert!(!home.path().join(".gemini/settings.json").exists());
        assert_eq!(
            read(home.path().join(".gemini/trustedFolders.json")),
            json!({"/w": "TRUST_FOLDER"})
        );
    }
}
