//! Reading an agent's screen: a vt100 model of the session's output, and per agent the
//! markers of its first-run dialogs and of its main prompt (reference/agents.md §6–8).

/// What a screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The main input box, with a credential in use.
    Main,
    /// The main input box, but the agent says it is not logged in.
    MainNoAuth,
    /// A first-run dialog, by name.
    Dialog(Vec<&'static str>),
    Unknown,
}

pub type Classify = fn(&str) -> Verdict;

/// Names every dialog whose marker is on the screen.
fn dialogs(screen: &str, markers: &[(&str, &'static str)]) -> Vec<&'static str> {
    let mut found: Vec<&'static str> = markers
        .iter()
        .filter(|(text, _)| screen.contains(text))
        .map(|(_, name)| *name)
        .collect();
    found.dedup();
    found
}

const CLAUDE_DIALOGS: &[(&str, &str)] = &[
    ("Unable to connect to Anthropic services", "preflight"),
    ("Choose the text style that looks best", "theme"),
    ("Select login method:", "login"),
    ("Detected a custom API key in your environment", "api-key"),
    ("Do you want to use this API key?", "api-key"),
    ("Security notes:", "security-notes"),
    ("Use Claude Code's terminal setup?", "terminal-setup"),
    ("Accessing workspace:", "trust"),
    ("Yes, I trust this folder", "trust"),
    ("New MCP server found in this project", "mcp"),
    (
        "Allow external CLAUDE.md file imports?",
        "claude-md-imports",
    ),
    ("Claude Code running in Bypass Permissions mode", "bypass"),
    ("cannot be used with root/sudo privileges", "root-refused"),
    ("Enter to confirm · Esc to cancel", "other-dialog"),
];

/// Claude Code's main prompt: a line starting with `❯` between two horizontal rules (menu
/// items in dialogs are indented and not framed that way).
pub fn claude(screen: &str) -> Verdict {
    let found = dialogs(screen, CLAUDE_DIALOGS);
    if !found.is_empty() {
        return Verdict::Dialog(found);
    }
    let lines: Vec<&str> = screen.lines().collect();
    let rule = |i: usize| lines.get(i).is_some_and(|l| l.starts_with(&"─".repeat(20)));
    let prompt = (1..lines.len()).any(|i| lines[i].starts_with('❯') && rule(i - 1) && rule(i + 1));
    match (prompt, screen.contains("Not logged in")) {
        (true, false) => Verdict::Main,
        (true, true) => Verdict::MainNoAuth,
        _ => Verdict::Unknown,
    }
}

const CODEX_DIALOGS: &[(&str, &str)] = &[
    ("Welcome to Codex", "login"),
    ("Sign in with ChatGPT", "login"),
    ("Sign in another way", "login"),
    ("Use your own OpenAI API key", "api-key"),
    ("Trust this folder?", "trust"),
    ("Enable full access?", "full-access"),
    ("Update available", "update"),
    ("Continue anyway?", "dumb-terminal"),
];

/// Codex's main prompt: a line starting with `› ` and the `? for shortcuts` hint.
pub fn codex(screen: &str) -> Verdict {
    let found = dialogs(screen, CODEX_DIALOGS);
    if !found.is_empty() {
        return Verdict::Dialog(found);
    }
    let prompt = screen.lines().any(|l| l.starts_with("› "));
    match (
        prompt && screen.contains("for shortcuts"),
        screen.contains("Not logged in"),
    ) {
        (true, false) => Verdict::Main,
        (true, true) => Verdict::MainNoAuth,
        _ => Verdict::Unknown,
    }
}

const GEMINI_DIALOGS: &[(&str, &str)] = &[
    ("Do you trust the files in this folder?", "trust"),
    ("Trust parent folder", "trust"),
    ("Sign in with Google", "auth"),
    ("How would you like to authenticate", "auth"),
    ("Please enter your Gemini API key", "api-key"),
];

/// Gemini CLI's main prompt: its input box placeholder.
pub fn gemini(screen: &str) -> Verdict {
    let found = dialogs(screen, GEMINI_DIALOGS);
    if !found.is_empty() {
        return Verdict::Dialog(found);
    }
    if screen.contains("Type your message or @path/to/file") {
        Verdict::Main
    } else {
        Verdict::Unknown
    }
}

#[test]
fn the_classifiers_tell_prompts_from_dialogs() {
    let rule = "─".repeat(40);
    let main = format!("Claude Code\n{rule}\n❯ \n{rule}\n  ? for shortcuts\n");
    assert_eq!(claude(&main), Verdict::Main);
    assert_eq!(
        claude(&format!("{main}Not logged in · run /login")),
        Verdict::MainNoAuth
    );
    let trust = format!("Accessing workspace:\n/w\n{rule}\n  ❯ No, exit\n{rule}\n");
    assert_eq!(claude(&trust), Verdict::Dialog(vec!["trust"]));
    assert_eq!(
        claude(&format!("{rule}\n  ❯ item\n{rule}\n")),
        Verdict::Unknown
    );
    assert_eq!(
        codex("› Ask Codex to do anything\n  ? for shortcuts"),
        Verdict::Main
    );
    assert_eq!(
        codex("> 1. Sign in with ChatGPT"),
        Verdict::Dialog(vec!["login"])
    );
    assert_eq!(
        gemini(">   Type your message or @path/to/file"),
        Verdict::Main
    );
}
