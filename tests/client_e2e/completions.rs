//! `catty completions`: the bash script completes commands, flags and the labels of live
//! sessions in a real bash; the zsh and fish scripts parse in their shells.

use std::process::Command;

use super::new_session;
use crate::common::tmux::Tmux;

/// What `_catty` puts in `COMPREPLY` for the command line `words` (the last one is the word
/// being completed), in a bash that sourced `catty completions bash`, one a line.
fn complete(t: &Tmux, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <(catty completions bash) || exit 1\n\
         COMP_WORDS=({}); COMP_CWORD={}\n\
         _catty; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        quoted.join(" "),
        words.len() - 1
    );
    let catty = t.catty_command(&[]);
    let env = catty.get_envs().filter_map(|(k, v)| Some((k, v?)));
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_the_label_of_a_live_session() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let label = new_session(&t, "--no-upload -- bash --norc --noprofile");
    assert_eq!(complete(&t, &["catty", "connect", ""]), [label.as_str()]);
    let prefix = &label[..3];
    assert_eq!(complete(&t, &["catty", "stop", prefix]), [label.as_str()]);
    // A session's place is taken: `extend LABEL` goes on with durations, not labels.
    assert!(complete(&t, &["catty", "extend", &label, ""]).contains(&"1h".to_string()));
}

#[test]
fn bash_completes_commands_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    assert_eq!(complete(&t, &["catty", "con"]), ["connect"]);
    assert_eq!(
        complete(&t, &["catty", "new", "--agent", ""]),
        ["claude", "codex", "gemini", "shell"]
    );
    assert_eq!(complete(&t, &["catty", "connect", "--w"]), ["--watch"]);
    // After `new --`, a command of the PATH.
    assert!(complete(&t, &["catty", "new", "--", "bas"]).contains(&"bash".to_string()));
    // No session: no label, and no complaint on the terminal.
    assert!(complete(&t, &["catty", "logs", ""]).is_empty());
}

#[test]
fn completions_for_an_unknown_shell_are_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bash, zsh or fish"),
        "{out:?}"
    );
}

/// Runs `shell -c script` with the pane's environment; `None` where the shell is missing
/// (`.ci/run` installs zsh and fish), after a SKIPPED line.
fn run_in(t: &Tmux, shell: &str, args: &[&str], script: &str) -> Option<String> {
    let catty = t.catty_command(&[]);
    let env = catty.get_envs().filter_map(|(k, v)| Some((k, v?)));
    let out = Command::new(shell)
        .args(args)
        .arg("-c")
        .arg(script)
        .env_clear()
        .envs(env)
        .output();
    let Ok(out) = out else {
        println!("SKIPPED: {shell} is not installed");
        return None;
    };
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The zsh script parses (`zsh -n`), and sourced after `compinit` it is what completes `catty`.
#[test]
fn the_zsh_script_parses_and_registers() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let script = dir.path().join("catty.zsh");
    let load = format!(
        "catty completions zsh > {0} && zsh -n {0} || exit 1; autoload -U compinit; \
         compinit -u; source {0} || exit 1; print $_comps[catty]",
        script.display()
    );
    if let Some(out) = run_in(&t, "zsh", &["-f"], &load) {
        assert_eq!(out.trim(), "_catty");
    }
}

/// In an interactive zsh (a tmux pane), Tab after `catty connect ` writes the live label.
#[test]
fn zsh_completes_the_label_of_a_live_session() {
    if Command::new("zsh").arg("--version").output().is_err() {
        println!("SKIPPED: zsh is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let label = new_session(
        &t.another(dir.path(), 100, 30),
        "--no-upload -- bash --norc --noprofile",
    );
    t.run("PS1='zsh> ' zsh -f");
    t.wait_for_text("zsh> ");
    t.run("autoload -U compinit; compinit -u; source <(catty completions zsh); clear");
    t.wait_for("a clear screen", |s| s.trim() == "zsh>");
    t.type_text("catty connect ");
    t.keys(&["Tab"]);
    t.wait_for_text(&format!("zsh> catty connect {label}"));
}

/// Fish computes completions itself (`complete -C`): commands, and a live session's label
/// as the first argument only.
#[test]
fn fish_completes_the_label_of_a_live_session() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let label = new_session(&t, "--no-upload -- bash --norc --noprofile");
    let script = "catty completions fish | source; complete -C 'catty con'; \
                  complete -C 'catty connect '; complete -C 'catty connect x '";
    let Some(out) = run_in(&t, "fish", &["--no-config"], script) else {
        return;
    };
    let firsts: Vec<&str> = out.lines().filter_map(|l| l.split('\t').next()).collect();
    assert_eq!(firsts, ["connect", label.as_str()], "{out}");
}
