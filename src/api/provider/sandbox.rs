//! The bubblewrap sandbox of local sessions: the whole filesystem read-only except the
//! session's workspace, a private home and a fresh `/tmp`; its own pid namespace; no
//! capabilities. The network is shared, so the runtime's loopback port stays reachable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// How long the probe at start may take before bubblewrap counts as broken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How local runtimes are started: bare, or inside bubblewrap.
#[derive(Debug, Clone)]
pub(super) enum Sandbox {
    Off,
    Bwrap {
        /// Where the private home is mounted inside (the user's home, hidden that way).
        home: Option<PathBuf>,
        /// As root, the sandbox must drop its capabilities, or it could remount `/` writable.
        drop_caps: bool,
    },
}

/// The directories of one session that the sandbox makes writable.
pub(super) struct Dirs<'a> {
    pub workspace: &'a Path,
    pub home: &'a Path,
}

impl Sandbox {
    /// Checks once that bubblewrap is installed and works here, by running `exe version`
    /// inside it; without it, local sessions run unsandboxed (with one warning).
    pub(super) async fn detect(wanted: bool, exe: &Path) -> Sandbox {
        if !wanted {
            tracing::info!("sandbox disabled: local sessions run unsandboxed");
            return Sandbox::Off;
        }
        let candidate = Sandbox::Bwrap {
            home: user_home(),
            drop_caps: rustix::process::geteuid().is_root(),
        };
        match candidate.probe(exe).await {
            Ok(()) => {
                tracing::info!("local sessions run in a bubblewrap sandbox");
                candidate
            }
            Err(why) => {
                tracing::warn!("{why}: local sessions run unsandboxed; install bubblewrap");
                Sandbox::Off
            }
        }
    }

    /// Why this sandbox cannot run `exe version`, if it cannot.
    async fn probe(&self, exe: &Path) -> Result<(), String> {
        let mut probe = self.wrap(exe, &[OsString::from("version")], None);
        probe
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let run = async { probe.spawn()?.wait_with_output().await };
        match tokio::time::timeout(PROBE_TIMEOUT, run).await {
            Ok(Ok(out)) if out.status.success() => Ok(()),
            Ok(Ok(out)) => Err(format!(
                "bwrap cannot make a sandbox here ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Err("bwrap not found".to_string())
            }
            Ok(Err(e)) => Err(format!("bwrap cannot be started ({e})")),
            Err(_) => Err("bwrap did not answer".to_string()),
        }
    }

    pub(super) fn is_on(&self) -> bool {
        matches!(self, Sandbox::Bwrap { .. })
    }

    /// The command that runs `exe args…`, inside the sandbox when it is on.
    pub(super) fn command(&self, exe: &Path, args: &[OsString], dirs: &Dirs) -> Command {
        self.wrap(exe, args, Some(dirs))
    }

    fn wrap(&self, exe: &Path, args: &[OsString], dirs: Option<&Dirs>) -> Command {
        let Sandbox::Bwrap { home, drop_caps } = self else {
            let mut cmd = Command::new(exe);
            cmd.args(args);
            return cmd;
        };
        let mut cmd = Command::new("bwrap");
        cmd.args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--tmpfs",
            "/tmp",
        ]);
        // Visible even when it lives under /tmp (tests, `cargo run`).
        cmd.arg("--ro-bind").arg(exe).arg(exe);
        if let Some(dirs) = dirs {
            cmd.arg("--bind").arg(dirs.workspace).arg(dirs.workspace);
            let inside = home.as_deref().unwrap_or(dirs.home);
            cmd.arg("--bind").arg(dirs.home).arg(inside);
            cmd.env("HOME", inside);
        }
        // A session of its own: the runtime cannot reach the daemon's terminal (TIOCSTI).
        cmd.args(["--unshare-pid", "--new-session"]);
        if *drop_caps {
            cmd.args(["--cap-drop", "ALL"]);
        }
        cmd.arg("--").arg(exe).args(args);
        cmd
    }
}

/// The home directory of the user we run as, from `/etc/passwd`: the one to hide behind the
/// private home. `None` when it cannot be mounted over (missing, or `/`).
fn user_home() -> Option<PathBuf> {
    let uid = rustix::process::geteuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let home = home_of(&passwd, uid)?;
    (home.is_absolute() && home != Path::new("/") && home.is_dir()).then_some(home)
}

/// `name:x:uid:gid:gecos:home:shell`.
fn home_of(passwd: &str, uid: u32) -> Option<PathBuf> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[2].parse() == Ok(uid)).then(|| PathBuf::from(fields[5]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nme:x:1000:1000:Me,,,:/home/me:/bin/zsh\n";
        assert_eq!(home_of(passwd, 0), Some(PathBuf::from("/root")));
        assert_eq!(home_of(passwd, 1000), Some(PathBuf::from("/home/me")));
        assert_eq!(home_of(passwd, 7), None);
    }

    #[test]
    fn sandboxed_command_line() {
        let sandbox = Sandbox::Bwrap {
            home: Some("/home/me".into()),
            drop_caps: true,
        };
        let dirs = Dirs {
            workspace: Path::new("/s/ws"),
            home: Path::new("/s/home"),
        };
        let cmd = sandbox.command(Path::new("/bin/catty"), &["exec".into()], &dirs);
        let argv: Vec<_> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_str().unwrap())
            .collect();
        let line = argv.join(" ");
        assert!(
            line.contains("--bind /s/ws /s/ws --bind /s/home /home/me"),
            "{line}"
        );
        assert!(line.contains("--cap-drop ALL"), "{line}");
        assert!(!line.contains("die-with-parent"), "{line}");
        assert!(line.ends_with("-- /bin/catty exec"), "{line}");
        let tmpfs = line.find("--tmpfs /tmp").unwrap();
        assert!(
            tmpfs < line.find("--bind /s/ws").unwrap(),
            "binds come after the tmpfs"
        );
    }
}
