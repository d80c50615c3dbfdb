//! What users of gh and git expect and argh does not do by itself: `-h`, `--version` and
//! `-V`, a short usage for a bare `catty`, aliases, and "did you mean" for a mistyped command
//! or flag. `main` runs [`normalize`] before argh and [`explain`] on argh's refusals.

use argh::FromArgs;

use super::Catty;

/// The commands a user types, as argh names them, and the aliases users reach for.
const ALIASES: [(&str, &str); 3] = [("ls", "list"), ("attach", "connect"), ("-V", "version")];

/// The short usage a bare `catty` prints.
pub const USAGE: &str = "\
usage: catty <command> [<args>]

  new        start a session here: upload this directory, run the agent, attach
  connect    attach to a session again (alias: attach)
  list       the sessions (alias: ls)
  pull       bring a session's work back
  diff       what a session changed
  logs       a session's output, from its start (-f follows)
  stop       stop a session (its work is pulled first)
  rm         forget a session that ended
  extend     give a session more time (catty extend LABEL 1h)
  completions  print a shell's completions (bash, zsh or fish)
  login      log in to a hosted catty API (logout, whoami, usage)
  version    print catty's version (also --version, -V)

Run `catty <command> --help` for a command's flags, `catty --help` for every command.";

/// The arguments after the program name, with the conventions turned into argh's terms:
/// `-h` anywhere before `--` is `--help`, a lone `--version` or `-V` is `version`, and an
/// alias is its command.
pub fn normalize(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(args.len());
    let mut passthrough = false;
    for (i, &arg) in args.iter().enumerate() {
        let arg = match arg {
            _ if passthrough => arg,
            "--" => {
                passthrough = true;
                arg
            }
            "-h" => "--help",
            "--version" if i == 0 => "version",
            _ if i == 0 => ALIASES
                .iter()
                .find(|(alias, _)| *alias == arg)
                .map_or(arg, |(_, command)| command),
            _ => arg,
        };
        out.push(arg.to_string());
    }
    out
}

/// argh's refusal of `args`, made helpful: an unknown command or flag gets the closest known
/// one ("did you mean"), and every refusal says where the help is.
pub fn explain(args: &[String], refusal: &str) -> String {
    let refusal = refusal.trim_end();
    let Some(unknown) = refusal.strip_prefix("Unrecognized argument: ") else {
        return format!("catty: {refusal}\nRun `catty --help` for usage.");
    };
    let command = args.first().map(String::as_str);
    // The first argument not being a command means argh did not get to any command's flags.
    let (known, help) = match command.filter(|c| commands().iter().any(|k| k == c)) {
        Some(command) if unknown != command => (flags(command), format!("catty {command} --help")),
        _ => (commands(), "catty --help".to_string()),
    };
    let closest = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min();
    let what = if unknown.starts_with('-') {
        "flag"
    } else {
        "command"
    };
    match (closest, command) {
        (Some((_, k)), Some(c)) if k.starts_with('-') => {
            format!(
                "catty: unknown {what} {unknown:?}; did you mean `catty {c} {k}`?\nRun `{help}` for usage."
            )
        }
        (Some((_, k)), _) => {
            format!(
                "catty: unknown {what} {unknown:?}; did you mean `catty {k}`?\nRun `{help}` for usage."
            )
        }
        (None, _) => format!("catty: unknown {what} {unknown:?}\nRun `{help}` for usage."),
    }
}

/// The commands, as `catty --help` lists them.
fn commands() -> Vec<String> {
    listed(&help(&["--help"]), |word| !word.starts_with('-'))
}

/// The flags of `command`, as its `--help` lists them.
fn flags(command: &str) -> Vec<String> {
    listed(&help(&[command, "--help"]), |word| word.starts_with("--"))
}

fn help(args: &[&str]) -> String {
    match Catty::from_args(&["catty"], args) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    }
}

/// The first word of each indented line of an argh help text that `keep` keeps.
fn listed(help: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    help.lines()
        .filter(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .map(|word| word.trim_end_matches(','))
        .filter(|word| keep(word))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize(args)
    }

    #[test]
    fn conventions_become_argh_terms() {
        assert_eq!(norm(&["--version"]), ["version"]);
        assert_eq!(norm(&["-V"]), ["version"]);
        assert_eq!(norm(&["-h"]), ["--help"]);
        assert_eq!(norm(&["ls", "--json"]), ["list", "--json"]);
        assert_eq!(norm(&["new", "-h"]), ["new", "--help"]);
        // After `--`, everything is the command's own.
        assert_eq!(norm(&["new", "--", "ls", "-h"]), ["new", "--", "ls", "-h"]);
        assert_eq!(norm(&["new", "--", "attach"]), ["new", "--", "attach"]);
    }

    #[test]
    fn the_help_lists_what_suggestions_come_from() {
        let commands = commands();
        for c in [
            "new", "connect", "list", "pull", "diff", "logs", "stop", "version",
        ] {
            assert!(commands.iter().any(|k| k == c), "{c} in {commands:?}");
        }
        assert!(
            flags("new").iter().any(|f| f == "--agent"),
            "{:?}",
            flags("new")
        );
    }

    #[test]
    fn mistakes_get_the_closest_name() {
        let lsit = explain(&["lsit".into()], "Unrecognized argument: lsit\n");
        assert_eq!(
            lsit,
            "catty: unknown command \"lsit\"; did you mean `catty list`?\n\
             Run `catty --help` for usage."
        );
        let agnet = explain(
            &["new".into(), "--agnet".into(), "codex".into()],
            "Unrecognized argument: --agnet\n",
        );
        assert_eq!(
            agnet,
            "catty: unknown flag \"--agnet\"; did you mean `catty new --agent`?\n\
             Run `catty new --help` for usage."
        );
        let far = explain(&["zzzzzzzz".into()], "Unrecognized argument: zzzzzzzz");
        assert_eq!(
            far,
            "catty: unknown command \"zzzzzzzz\"\nRun `catty --help` for usage."
        );
    }
}
