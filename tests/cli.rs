//! The command line as users of gh and git expect it, against the real binary: versions,
//! help, a bare `catty`, "did you mean", exit codes, and a closed pipe.

use std::process::{Command, Output};

fn catty(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(args)
        .env("XDG_STATE_HOME", "/nonexistent/catty-cli-test")
        .output()
        .unwrap()
}

/// Each of `cases` (the arguments, and what stderr must say) is a usage error: exit 2.
fn usage_errors(cases: &[(&[&str], &str)]) {
    for (args, says) in cases {
        let out = catty(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn versions_and_help_answer_as_usual() {
    let want = format!("catty {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-V"], &["version"]] {
        let out = catty(args);
        assert!(out.status.success(), "{args:?}");
        assert_eq!(text(&out.stdout), want, "{args:?}");
    }
    for args in [&["-h"][..], &["--help"], &["new", "-h"], &["ls", "--help"]] {
        let out = catty(args);
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).starts_with("Usage: catty"), "{args:?}");
    }
    let bare = catty(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        text(&bare.stderr).contains("catty <command>"),
        "{}",
        text(&bare.stderr)
    );
    assert!(
        text(&bare.stderr).contains("new "),
        "{}",
        text(&bare.stderr)
    );
}

#[test]
fn mistakes_exit_2_with_the_closest_name() {
    let out = catty(&["lsit"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("catty: unknown command \"lsit\"; did you mean `catty list`?"),
        "{}",
        text(&out.stderr)
    );
    // Values that cannot be right name the flag as typed, and exit 2 before anything starts.
    usage_errors(&[
        (&["new", "--cpus", "0"][..], "'--cpus' with value '0'"),
        (&["new", "--cpus", "-1"], "'--cpus' with value '-1'"),
        (&["new", "--memory-mb", "0"], "'--memory-mb' with value '0'"),
        (&["new", "--ttl", "0s"], "--ttl: \"0s\" is not a duration"),
        (
            &["new", "--ttl", "10"],
            "--ttl 10: which unit? Say 10s, 10m or 10h",
        ),
    ]);
    let out = catty(&["new", "--agnet", "codex"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean `catty new --agent`?"),
        "{}",
        text(&out.stderr)
    );
}

/// The local provider has no regions: `--region` is refused before anything starts, saying
/// why and what to do.
#[test]
fn a_region_without_fly_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_catty"))
        .args(["new", "--region", "ams", "--no-upload", "--", "true"])
        .env("XDG_STATE_HOME", "/nonexistent/catty-cli-test")
        .env_remove("FLY_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "catty: the local provider runs sessions on this computer and has no regions; leave \
         out --region, or set FLY_API_TOKEN to use Fly.io\n"
    );
}

/// Output into a pipe nobody reads any more ends the command quietly, as `ls` does: no
/// panic, no error message.
#[test]
fn a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_catty"))
        .arg("--version")
        .stdout(writer)
        .output()
        .unwrap();
    assert_eq!(text(&out.stderr), "");
    assert!(!out.status.success());
}

#[test]
fn extend_wants_a_duration_with_its_unit() {
    usage_errors(&[
        (
            &["extend", "brave-tiger-1234", "10"][..],
            "catty extend 10: which unit? Say 10s, 10m or 10h",
        ),
        (
            &["extend", "brave-tiger-1234", "soon"],
            "catty extend: \"soon\" is not a duration",
        ),
        (&["extend", "brave-tiger-1234"], "duration"),
    ]);
}
