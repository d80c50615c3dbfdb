//! Signing the agent in, as a user meets it: `catty new` in a real terminal sends the chosen
//! agent's credentials from its own environment (Codex's login from its file), the session
//! gets exactly those and none of the daemon's, and no secret shows on the screen or in a log.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::common::tmux::Tmux;

fn random() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exports `vars` into the pane's shell from a file, so that no value is typed on the screen.
fn export(t: &Tmux, scratch: &Path, vars: &[(&str, &str)]) {
    let file = scratch.join("secrets.sh");
    let lines: Vec<String> = vars.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    std::fs::write(&file, lines.concat()).unwrap();
    t.run(&format!("set -a; . {}; set +a", file.display()));
}

/// The one session of the terminal's daemon: its directory under the state directory.
fn session_dir(t: &Tmux) -> PathBuf {
    let out = t.catty(&["list", "--json"]);
    let sessions: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let [session] = &sessions[..] else {
        panic!("not one session: {sessions:?}")
    };
    let id = session["session_id"].as_str().unwrap();
    t.state_dir().join("sessions").join(id)
}

/// What the session's program found in its environment (`env > session-env.txt`).
fn session_env(t: &Tmux) -> String {
    let file = session_dir(t).join("workspace/session-env.txt");
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

const SHOW_ENV: &str = "-- sh -c 'env > session-env.txt; exec bash --norc --noprofile'";

#[test]
fn catty_new_sends_its_credentials_and_the_daemon_adds_none_of_its_own() {
    let (dir, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let decoy = format!("sk-ant-api03-the-daemons-own-{}", random());
    let daemon_env = [
        ("ANTHROPIC_API_KEY", decoy.as_str()),
        ("GEMINI_API_KEY", &decoy),
    ];
    let t = Tmux::start_with_daemon_env(dir.path(), 100, 30, &daemon_env);
    let token = format!("sk-ant-oat01-{}", random());
    export(&t, scratch.path(), &[("CLAUDE_CODE_OAUTH_TOKEN", &token)]);
    t.start_session(&format!("catty new --agent claude {SHOW_ENV}"));
    let env = session_env(&t);
    let line = format!("CLAUDE_CODE_OAUTH_TOKEN={token}");
    assert!(env.lines().any(|l| l == line), "{env}");
    assert!(
        !env.contains(&decoy),
        "the daemon's key reached the session:\n{env}"
    );
}

#[test]
fn a_daemon_with_a_gateway_is_sent_no_key_and_its_session_gets_a_token() {
    let (dir, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let daemon_env = [
        ("CATTY_GATEWAY_URL", "http://127.0.0.1:9"),
        (
            "CATTY_GATEWAY_KEY",
            "client-test-gateway-key-0123456789abcdef",
        ),
    ];
    let t = Tmux::start_with_daemon_env(dir.path(), 100, 30, &daemon_env);
    let key = format!("sk-ant-api03-the-users-own-{}", random());
    export(&t, scratch.path(), &[("ANTHROPIC_API_KEY", &key)]);
    t.start_session(&format!("catty new --agent claude {SHOW_ENV}"));
    let env = session_env(&t);
    assert!(env.contains("\nANTHROPIC_AUTH_TOKEN=cst_s-"), "{env}");
    let daemon_log = std::fs::read_to_string(t.state_dir().join("api.log")).unwrap();
    assert!(!env.contains(&key) && !daemon_log.contains(&key), "{env}");
}

#[test]
fn two_claude_credentials_get_one_line_and_no_secret_is_shown_or_logged() {
    let (dir, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = Tmux::start(dir.path(), 120, 30);
    let (key, token) = (
        format!("sk-ant-api03-{}", random()),
        format!("sk-ant-oat01-{}", random()),
    );
    let client_log = scratch.path().join("client.log");
    export(
        &t,
        scratch.path(),
        &[
            ("ANTHROPIC_API_KEY", &key),
            ("CLAUDE_CODE_OAUTH_TOKEN", &token),
            ("CATTY_LOG", "trace"),
            ("CATTY_LOG_FILE", client_log.to_str().unwrap()),
        ],
    );
    t.start_session("catty new --agent claude -- bash --norc --noprofile");
    let screen = t.history();
    let note = "catty: ANTHROPIC_API_KEY and CLAUDE_CODE_OAUTH_TOKEN are both set; claude uses \
                ANTHROPIC_API_KEY (unset it to use CLAUDE_CODE_OAUTH_TOKEN)";
    assert_eq!(screen.matches(note).count(), 1, "{screen}");
    let log = std::fs::read_to_string(&client_log).unwrap_or_default();
    let daemon_log = std::fs::read_to_string(t.state_dir().join("api.log")).unwrap();
    assert!(daemon_log.contains("creating a session"), "{daemon_log}");
    for secret in [&key, &token] {
        assert!(
            !screen.contains(secret.as_str()),
            "on the screen:\n{screen}"
        );
        assert!(
            !log.contains(secret.as_str()),
            "in the client's log:\n{log}"
        );
        assert!(!daemon_log.contains(secret.as_str()), "in the daemon's log");
    }
}

#[test]
fn codex_gets_a_private_copy_of_the_login_file_and_never_the_variable() {
    let (dir, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t = Tmux::start(dir.path(), 100, 30);
    let refresh = format!("rt_{}", random());
    let login = json!({"OPENAI_API_KEY": null, "tokens": {"id_token": "e30.e30.c2ln",
        "access_token": "e30.e30.c2ln", "refresh_token": refresh, "account_id": null},
        "last_refresh": "2026-01-01T00:00:00Z"})
    .to_string();
    let codex_home = t.dirs.home.path().join(".codex");
    std::fs::create_dir_all(&codex_home).unwrap();
    std::fs::write(codex_home.join("auth.json"), &login).unwrap();
    export(
        &t,
        scratch.path(),
        &[("CODEX_HOME", codex_home.to_str().unwrap())],
    );
    t.start_session(&format!("catty new --agent codex {SHOW_ENV}"));
    let copy = session_dir(&t).join("home/.codex/auth.json");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), login);
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let env = session_env(&t);
    assert!(!env.contains("CATTY_CODEX_AUTH"), "{env}");
    assert!(!env.contains(&refresh), "{env}");
}

#[test]
fn an_unreadable_codex_login_stops_catty_new_before_anything() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let file = t.dirs.home.path().join(".codex/auth.json");
    std::fs::create_dir_all(&file).unwrap();
    let out = t.catty(&["new", "--agent", "codex", "--no-upload"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "catty: cannot read your Codex login {}: Is a directory (os error 21)\n",
            file.display()
        )
    );
    let list = t.catty(&["list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "[]");
}
