//! A private OpenSSH server on a loopback port: generated host and user keys and a config
//! file in a directory of ours, nothing of the system's read or changed, except that sshd
//! insists on its privilege separation directory `/run/sshd`, created when missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
/// sshd binds a port and reads two keys: seconds would mean something is wrong.
const START_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Sshd {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Sshd {
    /// Starts `sshd -D` with keys and config in `dir`; panics with sshd's own words if it
    /// cannot run here.
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).unwrap();
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: apt-get install -y openssh-server openssh-client"
        );
        std::fs::create_dir_all("/run/sshd").expect("sshd needs /run/sshd");
        for key in ["host_ed25519", "user_key"] {
            keygen(&dir.join(key));
        }
        std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
        let port = free_port();
        std::fs::write(dir.join("sshd_config"), config(dir, port)).unwrap();
        let log = dir.join("sshd.log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start sshd");
        let sshd = Sshd {
            child,
            dir: dir.to_path_buf(),
            port,
        };
        sshd.wait_listening(&log);
        sshd
    }

    fn wait_listening(&self, log: &Path) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("Server listening") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not start; its log: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `ssh -tt … root@127.0.0.1 REMOTE`: a terminal on the server, like a user's `ssh`.
    pub fn tty_argv(&self, remote: &str) -> Vec<String> {
        self.argv("-tt", remote)
    }

    /// `ssh -T … root@127.0.0.1 REMOTE`: a plain byte pipe, for `tar`.
    pub fn pipe_argv(&self, remote: &str) -> Vec<String> {
        self.argv("-T", remote)
    }

    fn argv(&self, tty: &str, remote: &str) -> Vec<String> {
        let key = self.dir.join("user_key");
        let mut argv: Vec<String> = vec!["ssh".into(), tty.into(), "-F".into(), "/dev/null".into()];
        argv.extend(["-i".into(), key.to_str().unwrap().into()]);
        for opt in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
        ] {
            argv.extend(["-o".into(), opt.into()]);
        }
        argv.extend(["-p".into(), self.port.to_string()]);
        argv.extend(["root@127.0.0.1".into(), remote.into()]);
        argv
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen");
    assert!(status.success(), "ssh-keygen failed for {}", path.display());
}

fn config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {d}/host_ed25519\n\
         PidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\n\
         PermitRootLogin yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         PrintMotd no\n\
         PrintLastLog no\n\
         UseDNS no\n"
    )
}

/// A port nothing listens on now (the usual race with other users of the machine is fine).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
