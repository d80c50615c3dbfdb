//! The bubblewrap sandbox of local sessions. Inside: the system directories read-only
//! (`/usr`, `/etc`, `/opt`, the `/bin` and `/lib` links), this binary and the agent's install
//! tree read-only, the session's workspace, a private home in place of the user's, a private
//! `/tmp`; nothing else of the host (no `/home`, `/root`, `/run`, `/var`, no state directory).
//! Its own pid, IPC and UTS namespaces, no capabilities, and a network namespace of its own
//! whose only way out is slirp4netns (`network.rs`): outbound internet, no host loopback, no
//! abstract sockets. The runtime's listening socket is bound outside and inherited.

mod network;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::launch::Shown;

/// How long the probe at start may take before bubblewrap counts as broken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The host directories every sandbox shows read-only, when they exist: what a toolchain
/// needs. On a merged-/usr system the top-level ones are links into /usr, and stay links.
const SYSTEM_DIRS: [&str; 9] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];

/// How local runtimes are started: bare, or inside bubblewrap.
#[derive(Debug, Clone)]
pub(super) enum Sandbox {
    Off,
    Bwrap {
        /// Where the private home is mounted inside (the user's home, hidden that way).
        home: Option<PathBuf>,
        /// As root, the sandbox must drop its capabilities, or it could remount `/` writable.
        drop_caps: bool,
        /// With a network namespace of its own (slirp4netns installed), the resolver file
        /// shown at `/etc/resolv.conf`; without, the sandbox shares the host's network.
        own_network: Option<PathBuf>,
    },
}

/// One session's part of the sandbox.
pub(super) struct Dirs<'a> {
    pub workspace: &'a Path,
    /// The runtime's output transcript, writable, outside the workspace.
    pub transcript: &'a Path,
    pub home: &'a Path,
    /// What the session's program needs beyond the system directories (its install tree),
    /// shown read-only at the same paths.
    pub binds: &'a [PathBuf],
    /// Links made inside (`path` → `target`), where the program's directory is not shown.
    pub links: &'a [(PathBuf, PathBuf)],
}

/// A started runtime: the process we spawned (bwrap, or the runtime itself) and, with a
/// network of its own, the slirp4netns that carries it.
pub(super) struct Spawned {
    pub child: Child,
    pub network: Option<Child>,
}

impl Sandbox {
    /// Checks once that bubblewrap is installed and works here, by running `exe version`
    /// inside it; without it, local sessions run unsandboxed (with one warning). Without
    /// slirp4netns, sandboxes share the host's network (with one warning).
    /// `state` is where the resolver file goes.
    pub(super) async fn detect(wanted: bool, exe: &Path, state: &Path) -> Sandbox {
        if !wanted {
            tracing::info!("sandbox disabled: local sessions run unsandboxed");
            return Sandbox::Off;
        }
        let own_network = match network::available(state).await {
            Ok(resolv_conf) => Some(resolv_conf),
            Err(why) => {
                tracing::warn!(
                    "{why}: local sessions share this computer's network (their programs \
                     can reach its loopback services); install slirp4netns"
                );
                None
            }
        };
        let networked = own_network.is_some();
        let candidate = Sandbox::Bwrap {
            home: user_home(),
            drop_caps: rustix::process::geteuid().is_root(),
            own_network,
        };
        match candidate.probe(exe).await {
            Ok(()) => {
                tracing::info!(
                    own_network = networked,
                    "local sessions run in a bubblewrap sandbox"
                );
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
        let mut probe = self.command(exe, &[OsString::from("version")], None, None);
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

    /// What every sandbox shows, for [`launch::plan`](super::launch::plan).
    pub(super) fn shown(&self) -> Shown<'_> {
        match self {
            Sandbox::Off => Shown {
                system: None,
                home: None,
            },
            Sandbox::Bwrap { home, .. } => Shown {
                system: Some(&SYSTEM_DIRS[..]),
                home: home.as_deref(),
            },
        }
    }

    pub(super) fn is_on(&self) -> bool {
        matches!(self, Sandbox::Bwrap { .. })
    }

    /// Whether sessions have a network of their own, where this computer's loopback is out of
    /// reach.
    pub(super) fn own_network(&self) -> bool {
        matches!(
            self,
            Sandbox::Bwrap {
                own_network: Some(_),
                ..
            }
        )
    }

    /// Starts `exe args…` for one session, inside the sandbox when it is on, in a session of
    /// its own (the daemon's Ctrl-C or exit must not reach it), with exactly the environment
    /// `env` and the listening socket `listener` inherited at its own number. Returns once
    /// the sandbox's network (if any) is up and the runtime is free to start.
    pub(super) async fn spawn(
        &self,
        exe: &Path,
        args: &[OsString],
        dirs: &Dirs<'_>,
        env: &[(String, String)],
        listener: BorrowedFd<'_>,
        (stdout, stderr): (std::fs::File, std::fs::File),
    ) -> anyhow::Result<Spawned> {
        let network = match self {
            Sandbox::Bwrap {
                own_network: Some(_),
                ..
            } => Some(network::Setup::new()?),
            _ => None,
        };
        let bwrap_fds = network.as_ref().map(|(_, fds)| fds);
        let mut cmd = self.command(exe, args, Some(dirs), bwrap_fds);
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("HOME", self.home(dirs))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr.try_clone()?)
            .kill_on_drop(false);
        let Some((setup, fds)) = network else {
            let child = spawn_detached(&mut cmd, &[listener])?;
            return Ok(Spawned {
                child,
                network: None,
            });
        };
        let mut inherited = vec![listener];
        inherited.extend(fds.all());
        let mut child = spawn_detached(&mut cmd, &inherited)?;
        // Only bwrap holds its ends now: its exit closes them.
        drop(fds);
        match setup.attach(&mut child, stderr).await {
            Ok(network) => Ok(Spawned {
                child,
                network: Some(network),
            }),
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(e)
            }
        }
    }

    /// The session's home as its programs see it: the private home, which the sandbox shows
    /// in place of the user's.
    fn home<'a>(&'a self, dirs: &Dirs<'a>) -> &'a Path {
        match self {
            Sandbox::Bwrap {
                home: Some(home), ..
            } => home,
            _ => dirs.home,
        }
    }

    /// The command that runs `exe args…`: bubblewrap's arguments (with `dirs`, a session's;
    /// without, the probe's; with `fds`, those that let slirp4netns in), then `--` and the
    /// runtime's.
    fn command(
        &self,
        exe: &Path,
        args: &[OsString],
        dirs: Option<&Dirs>,
        fds: Option<&network::BwrapFds>,
    ) -> Command {
        let Sandbox::Bwrap {
            home: _,
            drop_caps,
            own_network,
        } = self
        else {
            let mut cmd = Command::new(exe);
            cmd.args(args);
            return cmd;
        };
        let mut cmd = Command::new("bwrap");
        for dir in SYSTEM_DIRS {
            show_system_dir(&mut cmd, Path::new(dir));
        }
        cmd.args(["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
        // Visible even when it lives under /tmp or the home (tests, `cargo run`).
        cmd.arg("--ro-bind").arg(exe).arg(exe);
        if let Some(dirs) = dirs {
            cmd.arg("--bind").arg(dirs.home).arg(self.home(dirs));
            cmd.arg("--bind").arg(dirs.workspace).arg(dirs.workspace);
            cmd.arg("--bind").arg(dirs.transcript).arg(dirs.transcript);
            for bind in dirs.binds {
                cmd.arg("--ro-bind").arg(bind).arg(bind);
            }
            for (link, target) in dirs.links {
                cmd.arg("--symlink").arg(target).arg(link);
            }
        }
        if let Some(resolv_conf) = own_network {
            cmd.arg("--unshare-net");
            // slirp4netns's resolver: the host's may be a loopback one (systemd-resolved).
            cmd.arg("--ro-bind")
                .arg(resolv_conf)
                .arg("/etc/resolv.conf");
        }
        if let Some(fds) = fds {
            fds.add_args(&mut cmd);
        }
        // The directories bwrap made for the mount points stay read-only.
        cmd.args(["--remount-ro", "/"]);
        // A session of its own: the runtime cannot reach the daemon's terminal (TIOCSTI).
        cmd.args([
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--new-session",
        ]);
        if *drop_caps {
            cmd.args(["--cap-drop", "ALL"]);
        }
        cmd.arg("--").arg(exe).args(args);
        cmd
    }
}

/// Shows the system directory `dir` as it is on the host: a link stays a link (merged /usr),
/// a directory is bound read-only, anything missing is left out.
fn show_system_dir(cmd: &mut Command, dir: &Path) {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_symlink() => {
            if let Ok(target) = std::fs::read_link(dir) {
                cmd.arg("--symlink").arg(target).arg(dir);
            }
        }
        Ok(m) if m.is_dir() => {
            cmd.arg("--ro-bind").arg(dir).arg(dir);
        }
        _ => {}
    }
}

/// Spawns `cmd` in a session of its own, its child inheriting `fds` at their own numbers
/// (everything else we hold is close-on-exec).
pub(super) fn spawn_detached(cmd: &mut Command, fds: &[BorrowedFd]) -> std::io::Result<Child> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    // SAFETY: between fork and exec the child only calls setsid and fcntl, which are
    // async-signal-safe, on descriptors the parent keeps open until `spawn` returns; the
    // closure allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            for &fd in &raw {
                let fd = BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    cmd.spawn()
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
            own_network: Some("/s/resolv.conf".into()),
        };
        let binds = [PathBuf::from("/home/me/.nvm/versions/node/v22")];
        let links = [(
            PathBuf::from("/home/me/.local/bin/claude"),
            PathBuf::from("/home/me/.local/share/claude/versions/2"),
        )];
        let dirs = Dirs {
            workspace: Path::new("/s/ws"),
            transcript: Path::new("/s/transcript"),
            home: Path::new("/s/home"),
            binds: &binds,
            links: &links,
        };
        let cmd = sandbox.command(Path::new("/x/catty"), &["exec".into()], Some(&dirs), None);
        let argv: Vec<_> = cmd
            .as_std()
            .get_args()
            .map(|a| a.to_str().unwrap())
            .collect();
        let line = argv.join(" ");
        assert!(
            line.contains("--bind /s/home /home/me --bind /s/ws /s/ws"),
            "{line}"
        );
        // The install tree shows through the private home, read-only.
        let home = line.find("--bind /s/home /home/me").unwrap();
        let nvm = line
            .find("--ro-bind /home/me/.nvm/versions/node/v22 /home/me/.nvm/versions/node/v22")
            .unwrap();
        assert!(home < nvm, "{line}");
        let link = line
            .find("--symlink /home/me/.local/share/claude/versions/2 /home/me/.local/bin/claude")
            .unwrap();
        assert!(home < link, "{line}");
        assert!(line.contains("--tmpfs /tmp"), "{line}");
        assert!(line.contains("--unshare-net"), "{line}");
        assert!(
            line.contains("--ro-bind /s/resolv.conf /etc/resolv.conf"),
            "{line}"
        );
        assert!(line.contains("--remount-ro /"), "{line}");
        assert!(line.contains("--cap-drop ALL"), "{line}");
        // Nothing of the host is shown whole.
        assert!(!line.contains("--bind / /") && !line.contains("--ro-bind / /"));
        assert!(!line.contains("/run") && !line.contains("/var"), "{line}");
        assert!(line.ends_with("-- /x/catty exec"), "{line}");
        let tmpfs = line.find("--tmpfs /tmp").unwrap();
        assert!(tmpfs < home, "binds come after the tmpfs");
    }
}
