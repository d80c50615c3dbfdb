//! A sandbox's own network: slirp4netns gives the namespace bwrap made a tap device with
//! outbound NAT and a DNS forwarder (10.0.2.3), and no way to the host's loopback. In order:
//! bwrap makes the namespaces, reports the sandbox's pid (`--info-fd`) and waits
//! (`--block-fd`); slirp4netns attaches and says it is ready (`--ready-fd`); we release bwrap.
//! slirp4netns exits when bwrap's `--sync-fd` closes, that is when the sandbox ends.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};

use super::spawn_detached;

/// From bwrap's start to slirp4netns ready: both take milliseconds.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
/// Between two looks at the sandbox's loopback, which bwrap brings up in microseconds.
const LOOPBACK_POLL: Duration = Duration::from_millis(1);
/// bwrap's `--info-fd` JSON is about 250 bytes; more is not bwrap talking.
const INFO_MAX_BYTES: usize = 4096;
/// slirp4netns's built-in resolver, which forwards to the host's.
const RESOLV_CONF: &str = "nameserver 10.0.2.3\n";

/// Whether slirp4netns is installed and runs; if so, writes the sandboxes' resolver file
/// under `state` and returns its path.
pub(super) async fn available(state: &Path) -> Result<PathBuf, String> {
    match Command::new("slirp4netns").arg("--version").output().await {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "slirp4netns --version failed ({})",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("slirp4netns not found".into());
        }
        Err(e) => return Err(format!("slirp4netns cannot be started ({e})")),
    }
    let path = state.join("resolv.conf");
    std::fs::write(&path, RESOLV_CONF)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// bwrap's ends of the three pipes.
pub(in crate::api::provider) struct BwrapFds {
    info: OwnedFd,
    block: OwnedFd,
    sync: OwnedFd,
}

impl BwrapFds {
    pub(super) fn all(&self) -> [BorrowedFd<'_>; 3] {
        [self.info.as_fd(), self.block.as_fd(), self.sync.as_fd()]
    }

    pub(super) fn add_args(&self, cmd: &mut Command) {
        for (flag, fd) in [
            ("--info-fd", &self.info),
            ("--block-fd", &self.block),
            ("--sync-fd", &self.sync),
        ] {
            cmd.arg(flag).arg(fd.as_raw_fd().to_string());
        }
    }
}

/// Our ends of the pipes, until the network is attached.
pub(super) struct Setup {
    info: pipe::Receiver,
    block: pipe::Sender,
    /// The read end of the sync pipe: slirp4netns's `--exit-fd`.
    exit: OwnedFd,
}

impl Setup {
    pub(super) fn new() -> std::io::Result<(Setup, BwrapFds)> {
        let (info_w, info_r) = pipe::pipe()?;
        let (block_w, block_r) = pipe::pipe()?;
        let (sync_w, sync_r) = pipe::pipe()?;
        let setup = Setup {
            info: info_r,
            block: block_w,
            exit: sync_r.into_blocking_fd()?,
        };
        let fds = BwrapFds {
            info: info_w.into_blocking_fd()?,
            block: block_r.into_blocking_fd()?,
            sync: sync_w.into_blocking_fd()?,
        };
        Ok((setup, fds))
    }

    /// Attaches slirp4netns to the sandbox `bwrap` is making and lets the sandbox go on.
    /// slirp4netns's messages go to `log`.
    pub(super) async fn attach(
        self,
        bwrap: &mut Child,
        log: std::fs::File,
    ) -> anyhow::Result<Child> {
        tokio::time::timeout(ATTACH_TIMEOUT, self.attach_within(bwrap, log))
            .await
            .with_context(|| {
                format!(
                    "the sandbox's network was not up within {} s",
                    ATTACH_TIMEOUT.as_secs()
                )
            })?
    }

    async fn attach_within(
        mut self,
        bwrap: &mut Child,
        log: std::fs::File,
    ) -> anyhow::Result<Child> {
        let pid = tokio::select! {
            pid = sandbox_pid(&mut self.info) => pid?,
            status = bwrap.wait() => bail!("bwrap exited at start ({})", status?),
        };
        // Never this computer's own network: slirp4netns would add its device there.
        if namespace(pid, "net") == namespace(std::process::id() as i32, "net") {
            bail!("the sandbox {pid} has no network namespace of its own");
        }
        // bwrap adds 127.0.0.1 to `lo` after it reports the pid, and dies if the address is
        // already there, which it is once slirp4netns has brought `lo` up: wait for bwrap.
        tokio::select! {
            up = loopback_up(pid) => up?,
            status = bwrap.wait() => bail!("bwrap exited at start ({})", status?),
        }
        let (ready_w, mut ready_r) = pipe::pipe()?;
        let ready_w = ready_w.into_blocking_fd()?;
        let mut cmd = Command::new("slirp4netns");
        cmd.args(["--configure", "--mtu=65520", "--disable-host-loopback"])
            // slirp4netns in a mount namespace of its own, with a seccomp filter.
            .args(["--enable-sandbox", "--enable-seccomp"]);
        if let Some(userns) = user_namespace(pid) {
            cmd.arg(format!("--userns-path={userns}"));
        }
        cmd.arg(format!("--exit-fd={}", self.exit.as_raw_fd()))
            .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
            .arg(pid.to_string())
            .arg("tap0")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(false);
        let mut slirp = spawn_detached(&mut cmd, &[self.exit.as_fd(), ready_w.as_fd()])
            .context("cannot start slirp4netns")?;
        drop(ready_w);
        let mut ready = [0u8; 1];
        if !matches!(ready_r.read(&mut ready).await, Ok(1)) {
            let _ = slirp.start_kill();
            let status = slirp.wait().await?;
            bail!("slirp4netns did not start ({status})");
        }
        self.block.write_all(b"1").await?;
        Ok(slirp)
    }
}

/// The sandbox's pid, from bwrap's `--info-fd` JSON (`{"child-pid": N, …}`).
async fn sandbox_pid(info: &mut pipe::Receiver) -> anyhow::Result<i32> {
    let mut json = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = info.read(&mut chunk).await?;
        json.extend_from_slice(&chunk[..n]);
        if let Ok(info) = serde_json::from_slice::<serde_json::Value>(&json) {
            return info["child-pid"]
                .as_i64()
                .and_then(|pid| i32::try_from(pid).ok())
                .context("bwrap's info has no child-pid");
        }
        if n == 0 || json.len() > INFO_MAX_BYTES {
            bail!(
                "bwrap's info is not JSON: {:?}",
                String::from_utf8_lossy(&json)
            );
        }
    }
}

/// Returns once the sandbox `pid`'s loopback is up: its address has a local route.
async fn loopback_up(pid: i32) -> anyhow::Result<()> {
    let routes = PathBuf::from(format!("/proc/{pid}/net/fib_trie"));
    loop {
        match tokio::fs::read_to_string(&routes).await {
            Ok(table) if table.contains("127.0.0.1") => return Ok(()),
            Ok(_) => tokio::time::sleep(LOOPBACK_POLL).await,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", routes.display())),
        }
    }
}

/// The sandbox's user namespace when it has one of its own (bwrap run by a user without
/// privileges makes one): slirp4netns must join it to join the network namespace.
fn user_namespace(pid: i32) -> Option<String> {
    let own = namespace(pid, "user")? != namespace(std::process::id() as i32, "user")?;
    own.then(|| format!("/proc/{pid}/ns/user"))
}

/// The namespace of kind `kind` (`net`, `user`) that `pid` is in, as `/proc` names it.
fn namespace(pid: i32, kind: &str) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}")).ok()
}
