//! Claude Code: onboarding marked done, the exact workspace trusted, the API key approved by
//! the last 20 characters of the trimmed key (what Claude Code records), and the auto-updater
//! off (reference/agents.md §3–4). `~/.claude.json` and `~/.claude/settings.json` are merged.
//! A subscription token (`CLAUDE_CODE_OAUTH_TOKEN`) needs nothing more: with onboarding done
//! it is used with no login or approval dialog. With both, Claude Code uses the approved key
//! (`Agent::credential_vars`) and shows a banner, not a dialog, saying both are set. Through
//! catty's gateway (`gateway.rs`) it has a bearer token and no key: nothing to approve.

use std::path::PathBuf;

use super::ChildEnv;
use super::files::{self, Object};

/// How many trailing characters of the key Claude Code remembers an approval by.
const KEY_SUFFIX_CHARS: usize = 20;

pub(super) fn prepare(
    env: &ChildEnv,
    workspace: &str,
    argv: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let (state, settings) = paths(env)?;
    let suffix = env.get("ANTHROPIC_API_KEY").and_then(key_suffix);
    files::edit_json(&state, |s| edit_state(s, workspace, suffix.as_deref()))?;
    files::edit_json(&settings, edit_settings)?;
    // Again in the environment, in case the user's settings.json replaces ours later.
    let mut vars = vec![("DISABLE_AUTOUPDATER".to_string(), "1".to_string())];
    // Bypass mode refuses to run as root unless told it is in a sandbox, which a catty
    // machine is; only then, so other modes keep their root checks.
    if bypasses_permissions(argv) && rustix::process::getuid().is_root() {
        vars.push(("IS_SANDBOX".into(), "1".into()));
    }
    Ok(vars)
}

/// The global state file and the user settings: under `CLAUDE_CONFIG_DIR` when it is set.
fn paths(env: &ChildEnv) -> anyhow::Result<(PathBuf, PathBuf)> {
    Ok(match env.get("CLAUDE_CONFIG_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            (dir.join(".claude.json"), dir.join("settings.json"))
        }
        None => {
            let home = env.home()?;
            (
                home.join(".claude.json"),
                home.join(".claude/settings.json"),
            )
        }
    })
}

/// What Claude Code compares approvals with: `key.trim().slice(-20)`.
pub(super) fn key_suffix(key: &str) -> Option<String> {
    let chars: Vec<char> = key.trim().chars().collect();
    let start = chars.len().saturating_sub(KEY_SUFFIX_CHARS);
    (!chars.is_empty()).then(|| chars[start..].iter().collect())
}

/// `~/.claude.json`: what the first-run wizard, the trust dialog and the key dialog record.
pub(super) fn edit_state(
    state: &mut Object,
    workspace: &str,
    suffix: Option<&str>,
) -> anyhow::Result<()> {
    state.insert("hasCompletedOnboarding".into(), true.into());
    // Only hides the "auto mode is now the default" banner.
    files::default(state, "hasSeenAutoDefaultNotice", true);
    let project = files::object(files::object(state, "projects")?, workspace)?;
    project.insert("hasTrustDialogAccepted".into(), true.into());
    files::default(project, "hasClaudeMdExternalIncludesApproved", true);
    let responses = files::object(state, "customApiKeyResponses")?;
    let approved = files::array(responses, "approved")?;
    if let Some(suffix) = suffix
        && !approved.iter().any(|v| v == suffix)
    {
        approved.push(suffix.into());
    }
    // A key the user rejected once would be silently unused ("Not logged in"); the session
    // was given this key to use.
    let rejected = files::array(responses, "rejected")?;
    if let Some(suffix) = suffix {
        rejected.retain(|v| v != suffix);
    }
    Ok(())
}

/// `~/.claude/settings.json`: the auto-updater off (it would reinstall Claude Code globally by
/// itself); project MCP servers and the bypass-mode warning pre-accepted unless the user chose.
pub(super) fn edit_settings(settings: &mut Object) -> anyhow::Result<()> {
    files::object(settings, "env")?.insert("DISABLE_AUTOUPDATER".into(), "1".into());
    files::default(settings, "enableAllProjectMcpServers", true);
    files::default(settings, "skipDangerousModePermissionPrompt", true);
    Ok(())
}

/// Whether `claude` is asked to skip permission prompts.
fn bypasses_permissions(argv: &[String]) -> bool {
    argv.iter().enumerate().any(|(i, arg)| {
        arg == "--dangerously-skip-permissions"
            || arg == "--permission-mode=bypassPermissions"
            || (arg == "--permission-mode"
                && argv.get(i + 1).is_some_and(|m| m == "bypassPermissions"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const KEY: &str = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789-ABCDEFGHIJKLMNOPQRST";

    fn object(value: Value) -> Object {
        match value {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_suffix_is_the_last_twenty_characters_of_the_trimmed_key() {
        assert_eq!(key_suffix(KEY).unwrap(), "ABCDEFGHIJKLMNOPQRST");
        assert_eq!(
            key_suffix(&format!("  {KEY}\n")).unwrap(),
            "ABCDEFGHIJKLMNOPQRST"
        );
        // Shorter keys are taken whole (bash's ${k: -20} would give nothing).
        assert_eq!(key_suffix(" short-key ").unwrap(), "short-key");
        assert_eq!(
            key_suffix("01234567890123456789").unwrap(),
            "01234567890123456789"
        );
        assert_eq!(key_suffix("  \n"), None);
    }

    #[test]
    fn a_fresh_home_gets_exactly_the_verified_files() {
        let home = tempfile::tempdir().unwrap();
        let env = [
            ("HOME".to_string(), home.path().display().to_string()),
            ("ANTHROPIC_API_KEY".to_string(), format!("{KEY}\n")),
        ];
        let vars = prepare(&ChildEnv(&env), "/workspace", &["claude".into()]).unwrap();
        assert_eq!(vars, [("DISABLE_AUTOUPDATER".into(), "1".into())]);
        let read = |p: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(home.path().join(p)).unwrap()).unwrap()
        };
        assert_eq!(
            read(".claude.json"),
            json!({
                "hasCompletedOnboarding": true,
                "hasSeenAutoDefaultNotice": true,
                "projects": {"/workspace": {
                    "hasTrustDialogAccepted": true,
                    "hasClaudeMdExternalIncludesApproved": true
                }},
                "customApiKeyResponses": {"approved": ["ABCDEFGHIJKLMNOPQRST"], "rejected": []}
            })
        );
        assert_eq!(
            read(".claude/settings.json"),
            json!({
                "env": {"DISABLE_AUTOUPDATER": "1"},
                "enableAllProjectMcpServers": true,
                "skipDangerousModePermissionPrompt": true
            })
        );
    }

    #[test]
    fn existing_state_is_merged_not_replaced() {
        let mut state = object(json!({
            "numStartups": 7,
            "userID": "u",
            "hasSeenAutoDefaultNotice": false,
            "projects": {
                "/elsewhere": {"hasTrustDialogAccepted": false},
                "/workspace": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": false,
                               "hasClaudeMdExternalIncludesApproved": false}
            },
            "customApiKeyResponses": {"approved": ["older-key-suffix-000"],
                                      "rejected": ["ABCDEFGHIJKLMNOPQRST", "other"]}
        }));
        edit_state(&mut state, "/workspace", Some("ABCDEFGHIJKLMNOPQRST")).unwrap();
        edit_state(&mut state, "/workspace", Some("ABCDEFGHIJKLMNOPQRST")).unwrap();
        assert_eq!(
            Value::Object(state),
            json!({
                "numStartups": 7,
                "userID": "u",
                "hasCompletedOnboarding": true,
                "hasSeenAutoDefaultNotice": false,
                "projects": {
                    "/elsewhere": {"hasTrustDialogAccepted": false},
                    "/workspace": {"allowedTools": ["Bash"], "hasTrustDialogAccepted": true,
                                   "hasClaudeMdExternalIncludesApproved": false}
                },
                "customApiKeyResponses": {
                    "approved": ["older-key-suffix-000", "ABCDEFGHIJKLMNOPQRST"],
                    "rejected": ["other"]
                }
            })
        );
    }

    #[test]
    fn only_the_exact_workspace_is_trusted() {
        let mut state = Object::new();
        edit_state(&mut state, "/srv/ws/project", None).unwrap();
        let projects = state["projects"].as_object().unwrap();
        assert_eq!(projects.keys().collect::<Vec<_>>(), ["/srv/ws/project"]);
        assert_eq!(
            state["customApiKeyResponses"],
            json!({"approved": [], "rejected": []})
        );
    }

    #[test]
    fn user_settings_survive_and_the_updater_is_off_anyway() {
        let mut settings = object(json!({
            "theme": "light",
            "env": {"FOO": "bar", "DISABLE_AUTOUPDATER": "0"},
            "enableAllProjectMcpServers": false
        }));
        edit_settings(&mut settings).unwrap();
        assert_eq!(
            Value::Object(settings),
            json!({
                "theme": "light",
                "env": {"FOO": "bar", "DISABLE_AUTOUPDATER": "1"},
                "enableAllProjectMcpServers": false,
                "skipDangerousModePermissionPrompt": true
            })
        );
    }

    #[test]
    fn claude_config_dir_moves_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let env = [(
            "CLAUDE_CONFIG_DIR".to_string(),
            dir.path().display().to_string(),
        )];
        prepare(&ChildEnv(&env), "/w", &[]).unwrap();
        assert!(dir.path().join(".claude.json").is_file());
        assert!(dir.path().join("settings.json").is_file());
        assert!(
            prepare(&ChildEnv(&[]), "/w", &[]).is_err(),
            "no HOME, no config dir"
        );
    }

    #[test]
    fn bypass_mode_is_recognised() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(bypasses_permissions(&argv(&[
            "claude",
            "--dangerously-skip-permissions"
        ])));
        assert!(bypasses_permissions(&argv(&[
            "claude",
            "--permission-mode",
            "bypassPermissions"
        ])));
        assert!(bypasses_permissions(&argv(&[
            "claude",
            "--permission-mode=bypassPermissions"
        ])));
        assert!(!bypasses_permissions(&argv(&[
            "claude",
            "--permission-mode",
            "plan"
        ])));
        assert!(!bypasses_permissions(&argv(&["claude"])));
    }
}
