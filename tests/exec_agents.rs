//! Agent profiles, end to end: the runtime prepares the agent's configuration in HOME before
//! the program starts, so the real agent (installed by .ci/run) opens at its main prompt with
//! no first-run dialog, in a git repository, with a fake key of the right shape and no way to
//! reach its vendor. Each pass is checked against a control that must show a dialog. An agent
//! that is not installed is reported as SKIPPED with the reason, never as passed.

/// Like `eprintln!`, but shown even when the test passes: the harness captures the macros'
/// output, not writes to the stderr handle. Skips and versions must be seen in CI.
macro_rules! report {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod credentials;
mod gateway;
mod layouts;
mod mock_api;
pub mod screens;
mod session;

use std::path::{Path, PathBuf};
use std::process::Command;

use screens::Verdict;
use serde_json::Value;
use session::AgentSession;

/// Random characters of an API key's alphabet.
fn random_chars(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % 64] as char)
        .collect()
}

/// An installed copy of an agent: the directory to put first on the session's PATH.
pub struct Installed {
    pub dir: PathBuf,
    pub version: String,
}

/// The copies of `program` to test: the directories in `CATTY_TEST_<PROGRAM>_DIRS` (colon
/// separated; .ci/run sets it to test more than one version), else the one on the PATH.
/// Prints the skip reason when there is none.
pub fn installed(program: &str, npm: &str) -> Vec<Installed> {
    let var = format!("CATTY_TEST_{}_DIRS", program.to_uppercase());
    let dirs: Vec<PathBuf> = match std::env::var_os(&var) {
        Some(dirs) => std::env::split_paths(&dirs).collect(),
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .filter(|d| d.join(program).is_file())
            .take(1)
            .collect(),
    };
    let mut found = Vec::new();
    for dir in dirs {
        let out = Command::new(dir.join(program)).arg("--version").output();
        match out {
            Ok(out) if out.status.success() => found.push(Installed {
                version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
                dir,
            }),
            Ok(out) => report!(
                "SKIPPED: {program} in {} does not run: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => report!("SKIPPED: {program} in {}: {e}", dir.display()),
        }
    }
    if found.is_empty() {
        let log = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("target/agent-installs/{program}.failed.log"));
        let why = std::fs::read_to_string(&log)
            .map(|l| format!("its install failed ({}):\n{}", log.display(), tail(&l, 15)))
            .unwrap_or_else(|_| format!("it is not installed (npm install -g {npm})"));
        report!("SKIPPED: {program}: {why}");
    }
    found
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn session_path(dir: &Path) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", dir.display())
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The control: `program` with the same copy, HOME and `key`, but without the profile (as a
/// plain command), must show a dialog on this machine, or the pass before it proves nothing.
async fn assert_dialog_without_profile(
    path: &str,
    key: (&str, &str),
    program: &str,
    classify: screens::Classify,
    what: &str,
) {
    let env = [("CATTY_AGENT", "shell"), key];
    let mut control = AgentSession::start(path, &env, &[program]).await;
    let seen = control.settle(classify).await;
    report!("{what} without the profile: {:?}", seen.0);
    assert!(
        matches!(seen.0, Verdict::Dialog(_)),
        "no dialog:\n{}",
        seen.1
    );
    control.end();
}

#[track_caller]
fn assert_verdict(what: &str, got: &(Verdict, String), want: Verdict) {
    if std::env::var_os("CATTY_TEST_SCREENS").is_some() {
        report!("{what}: {:?}\n{}", got.0, got.1);
    }
    assert_eq!(got.0, want, "{what}; the screen was:\n{}", got.1);
}

#[tokio::test]
async fn claude_opens_at_its_prompt_with_no_dialog() {
    let copies = installed("claude", "@anthropic-ai/claude-code");
    for (i, claude) in copies.iter().enumerate() {
        let key = format!("sk-ant-api03-{}AA", random_chars(92));
        let path = session_path(&claude.dir);
        let env = [
            ("CATTY_AGENT", "claude"),
            ("ANTHROPIC_API_KEY", key.as_str()),
        ];
        let mut session = AgentSession::start(&path, &env, &[]).await;
        let seen = session.settle(screens::claude).await;
        report!("claude {}: {:?}", claude.version, seen.0);
        assert_verdict(&format!("claude {}", claude.version), &seen, Verdict::Main);
        let home = session.home.path().to_path_buf();
        let workspace = std::fs::canonicalize(session.runtime.workspace.path()).unwrap();
        let state = read_json(home.join(".claude.json"));
        let suffix = &key[key.len() - 20..];
        assert!(
            state["customApiKeyResponses"]["approved"]
                .as_array()
                .unwrap()
                .contains(&suffix.into()),
            "{state:#}"
        );
        let project = &state["projects"][workspace.to_str().unwrap()];
        assert_eq!(project["hasTrustDialogAccepted"], true, "{state:#}");
        // The auto-updater would have run npm (and reinstalled Claude Code globally).
        assert!(!home.join(".npm").exists(), "the auto-updater ran");
        session.end();

        // The control, for the first copy.
        if i == 0 {
            let what = format!("claude {}", claude.version);
            let key = ("ANTHROPIC_API_KEY", key.as_str());
            assert_dialog_without_profile(&path, key, "claude", screens::claude, &what).await;
        }
    }
}

#[tokio::test]
async fn codex_opens_at_its_prompt_with_no_dialog() {
    for codex in installed("codex", "@openai/codex") {
        let key = format!("sk-proj-{}", random_chars(156));
        let path = session_path(&codex.dir);
        let env = [("CATTY_AGENT", "codex"), ("OPENAI_API_KEY", key.as_str())];
        let mut session = AgentSession::start(&path, &env, &[]).await;
        let seen = session.settle(screens::codex).await;
        report!("{}: {:?}", codex.version, seen.0);
        assert_verdict(&codex.version, &seen, Verdict::Main);
        let auth = read_json(session.home.path().join(".codex/auth.json"));
        assert_eq!(auth["OPENAI_API_KEY"], key.as_str());
        session.end();

        let key = ("OPENAI_API_KEY", key.as_str());
        assert_dialog_without_profile(&path, key, "codex", screens::codex, &codex.version).await;
    }
}

#[tokio::test]
async fn gemini_opens_at_its_prompt_with_no_dialog() {
    for gemini in installed("gemini", "@google/gemini-cli") {
        let key = format!("AIza{}", random_chars(35));
        let path = session_path(&gemini.dir);
        let env = [("CATTY_AGENT", "gemini"), ("GEMINI_API_KEY", key.as_str())];
        let mut session = AgentSession::start(&path, &env, &[]).await;
        let seen = session.settle(screens::gemini).await;
        report!("gemini {}: {:?}", gemini.version, seen.0);
        assert_verdict(&format!("gemini {}", gemini.version), &seen, Verdict::Main);
        session.end();

        let what = format!("gemini {}", gemini.version);
        let key = ("GEMINI_API_KEY", key.as_str());
        assert_dialog_without_profile(&path, key, "gemini", screens::gemini, &what).await;
    }
}

#[tokio::test]
async fn a_missing_agent_says_how_to_install_it() {
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().to_str().unwrap();
    let mut session = AgentSession::start(path, &[("CATTY_AGENT", "claude")], &[]).await;
    let (output, status) = session.until_exit().await;
    assert_eq!(
        output,
        "catty: cannot start claude: Claude Code is not installed on this machine \
         (install it with `npm install -g @anthropic-ai/claude-code`)\r\n"
    );
    assert_eq!(status.code, 127);
    session.end();
}

/// `sh` stands in for Claude Code: what it prints is what Claude Code would find at start.
const SHOW_CLAUDE_CONFIG: &str =
    "cat \"$HOME/.claude.json\"; echo; echo \"updater=$DISABLE_AUTOUPDATER\"";

#[tokio::test]
async fn the_profile_is_merged_into_home_before_the_program_starts() {
    let home = tempfile::tempdir().unwrap();
    let state =
        r#"{"numStartups": 3, "projects": {"/elsewhere": {"hasTrustDialogAccepted": false}}}"#;
    std::fs::write(home.path().join(".claude.json"), state).unwrap();
    let key = format!("sk-ant-api03-{}AA", random_chars(92));
    let env = [
        ("CATTY_AGENT", "claude"),
        ("ANTHROPIC_API_KEY", key.as_str()),
    ];
    let path = std::env::var("PATH").unwrap();
    let argv = ["/bin/sh", "-c", SHOW_CLAUDE_CONFIG];
    let mut session = AgentSession::start_in(home, &path, &env, &argv).await;
    let (output, status) = session.until_exit().await;
    assert_eq!(status.code, 0, "{output}");
    let workspace = std::fs::canonicalize(session.runtime.workspace.path()).unwrap();
    let seen: Value = serde_json::from_str(output.split("updater=").next().unwrap()).unwrap();
    assert_eq!(seen["numStartups"], 3);
    assert_eq!(
        seen["projects"]["/elsewhere"]["hasTrustDialogAccepted"],
        false
    );
    assert_eq!(
        seen["projects"][workspace.to_str().unwrap()]["hasTrustDialogAccepted"],
        true
    );
    assert_eq!(seen["hasCompletedOnboarding"], true);
    assert_eq!(
        seen["customApiKeyResponses"]["approved"],
        serde_json::json!([&key[key.len() - 20..]])
    );
    assert!(output.contains("updater=1\r\n"), "{output}");
    session.end();
}

#[tokio::test]
async fn a_profile_that_cannot_be_written_is_a_warning_and_the_program_runs() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join(".claude.json"), "{broken").unwrap();
    let path = std::env::var("PATH").unwrap();
    let argv = ["/bin/sh", "-c", SHOW_CLAUDE_CONFIG];
    let mut session =
        AgentSession::start_in(home, &path, &[("CATTY_AGENT", "claude")], &argv).await;
    let (output, status) = session.until_exit().await;
    let file = session.home.path().join(".claude.json");
    assert!(
        output.starts_with(&format!(
            "catty: cannot prepare Claude Code's configuration: {}: not valid JSON",
            file.display()
        )),
        "{output}"
    );
    assert!(
        output.contains("it may ask its first-run questions\r\n{broken"),
        "{output}"
    );
    assert_eq!(status.code, 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{broken");
    session.end();
}
