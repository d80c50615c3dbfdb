//! `catty completions SHELL`: completion scripts written by hand (argh generates none, and
//! the labels of live sessions come from `catty list --labels` when the user presses Tab).
//! Each completes the commands, each command's flags, `--agent`'s values and session labels.

/// The shells there is a script for, as a usage error names them.
pub const SHELLS: &str = "bash, zsh or fish";

/// The completion script for `shell`, if there is one.
pub fn script(shell: &str) -> Option<&'static str> {
    match shell {
        "bash" => Some(include_str!("completions/catty.bash")),
        "zsh" => Some(include_str!("completions/catty.zsh")),
        "fish" => Some(include_str!("completions/catty.fish")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Catty;
    use argh::FromArgs;

    /// Every command argh knows (but the two a machine runs) is in every script.
    #[test]
    fn every_script_names_every_command() {
        let help = Catty::from_args(&["catty"], &["--help"])
            .unwrap_err()
            .output;
        let commands: Vec<&str> = help
            .split("Commands:")
            .nth(1)
            .unwrap()
            .lines()
            // A command's line; its description's wrapped lines are indented further.
            .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| !["api", "exec", "gateway"].contains(name))
            .collect();
        assert!(
            commands.contains(&"connect") && commands.contains(&"completions"),
            "{help}"
        );
        for shell in ["bash", "zsh", "fish"] {
            let script = script(shell).unwrap();
            for command in &commands {
                assert!(script.contains(command), "{shell} lacks {command}");
            }
        }
        assert_eq!(script("tcsh"), None);
    }
}
