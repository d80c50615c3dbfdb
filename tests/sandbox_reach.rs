//! What a local session can reach, probed from inside the sandbox by a real program (python3)
//! against real host resources the test sets up: files under the real home, another
//! session's workspace, the state directory (under the home and outside it), a unix socket
//! under /run, an abstract socket, a loopback listener, the daemon's API, the daemon's
//! secrets; and what it must still reach: its workspace, home and /tmp, and the network
//! beyond this computer. Skipped, loudly, where bwrap or slirp4netns is missing.

use std::net::{Ipv4Addr, TcpListener};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::Client;
use crate::common::api::Daemon;
use crate::common::api::proc::wait_until;

/// Why the sandbox with a network of its own cannot be tested here, if it cannot.
fn missing_tools() -> Option<String> {
    for tool in ["bwrap", "slirp4netns", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn random() -> String {
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The home directory of the user running the tests, from /etc/passwd, as the sandbox
/// finds it (not `$HOME`, which tests move).
fn real_home() -> PathBuf {
    let uid = rustix::process::geteuid().as_raw().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2] == uid)
        .map(|f| PathBuf::from(f[5]))
        .unwrap()
}

/// An IPv4 address of this computer that is not loopback: where "the internet" is, for a
/// session (slirp4netns routes to it as to any other host).
fn outside_address() -> Option<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// What the test sets up on the host for the session to try.
struct Targets {
    home_secret: PathBuf,
    other_workspace_file: PathBuf,
    state_dir: PathBuf,
    run_socket: PathBuf,
    _run_listener: UnixListener,
    abstract_name: String,
    _abstract_listener: UnixListener,
    loopback: TcpListener,
    outside: Option<TcpListener>,
}

impl Drop for Targets {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.home_secret);
        let _ = std::fs::remove_file(&self.run_socket);
    }
}

/// The probe: one line `name=reached` or `name=refused` per try.
fn probe_script(t: &Targets, api_port: u16) -> String {
    let outside = match &t.outside {
        Some(l) => {
            let addr = l.local_addr().unwrap();
            format!("tcp('{}', {})", addr.ip(), addr.port())
        }
        None => "'skipped'".into(),
    };
    format!(
        r#"import os, socket, subprocess
def tcp(host, port):
    socket.create_connection((host, port), timeout=3).close()
def unix(path):
    s = socket.socket(socket.AF_UNIX); s.settimeout(3); s.connect(path); s.close()
def read(path):
    open(path, 'rb').read()
def write(path):
    open(path, 'w').write('x')
def probe(name, action):
    try:
        result = action()
        print(f"{{name}}={{'skipped' if result == 'skipped' else 'reached'}}", flush=True)
    except Exception as e:
        print(f"{{name}}=refused ({{type(e).__name__}})", flush=True)
probe('home_file', lambda: read({home:?}))
probe('other_workspace', lambda: read({other:?}))
probe('state_token', lambda: read({token:?}))
probe('state_store', lambda: read({store:?}))
probe('run_socket', lambda: unix({run:?}))
probe('abstract_socket', lambda: unix('\0' + {abstract_name:?}))
probe('loopback_tcp', lambda: tcp('127.0.0.1', {loopback}))
probe('daemon_api', lambda: tcp('127.0.0.1', {api_port}))
for d in ['/etc', '/usr', '/opt', '/', '/var', '/run', {state:?}]:
    probe('write_' + d, lambda: write(os.path.join(d, 'catty-escape')))
probe('write_home', lambda: write(os.path.expanduser('~/ok')))
probe('write_tmp', lambda: write('/tmp/ok'))
probe('write_workspace', lambda: write('ok'))
probe('outside', lambda: {outside})
print('env-begin')
print(subprocess.run(['env'], capture_output=True, text=True).stdout)
for p in ['/proc/1/environ', '/proc/self/environ']:
    print(open(p, 'rb').read().replace(b'\0', b'\n').decode())
print('env-end')
"#,
        home = t.home_secret.display().to_string(),
        other = t.other_workspace_file.display().to_string(),
        token = t.state_dir.join("api.token").display().to_string(),
        store = t.state_dir.join("sessions.json").display().to_string(),
        run = t.run_socket.display().to_string(),
        abstract_name = t.abstract_name,
        loopback = t.loopback.local_addr().unwrap().port(),
        state = t.state_dir.display().to_string(),
    )
}

fn outcome<'a>(out: &'a str, name: &str) -> &'a str {
    let prefix = format!("{name}=");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in the probe's output:\n{out}"))
}

/// Runs the whole probe with the daemon's directories in `root`.
async fn probe_from_inside(root: tempfile::TempDir) {
    if let Some(why) = missing_tools() {
        eprintln!("SKIPPED sandbox_reach: {why} (install bubblewrap, slirp4netns and python3)");
        return;
    }
    let tag = random();
    let decoys = [
        ("AWS_SECRET_ACCESS_KEY", format!("decoy-aws-{tag}")),
        ("GITHUB_TOKEN", format!("decoy-gh-{tag}")),
    ];
    let env: Vec<(&str, &str)> = decoys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start_in(root, true, &env);
    assert!(d.log().contains("own_network=true"), "{}", d.log());

    // Another session, with something in its workspace.
    let other = d
        .create(serde_json::json!({"agent": "shell", "cmd": ["sleep", "600"]}))
        .await;
    let other_workspace_file = d.workspace(&other.session_id).join("other-secret.txt");
    std::fs::write(&other_workspace_file, "the other session's work").unwrap();

    let home_secret = real_home().join(format!(".catty-reach-{tag}"));
    std::fs::write(&home_secret, "a file in the real home").unwrap();
    let run_socket = PathBuf::from(format!("/run/catty-reach-{tag}.sock"));
    let abstract_name = format!("catty-reach-{tag}");
    let targets = Targets {
        home_secret,
        other_workspace_file,
        state_dir: d.state_dir(),
        _run_listener: UnixListener::bind(&run_socket).unwrap(),
        run_socket,
        _abstract_listener: UnixListener::bind_addr(
            &SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap(),
        )
        .unwrap(),
        abstract_name,
        loopback: TcpListener::bind("127.0.0.1:0").unwrap(),
        outside: outside_address().map(|ip| TcpListener::bind((ip, 0)).unwrap()),
    };

    let session = d
        .create(serde_json::json!({"agent": "shell",
            "cmd": ["sh", "-c", "python3 probe.py; echo checks-done; exec sleep 600"]}))
        .await;
    std::fs::write(
        d.workspace(&session.session_id).join("probe.py"),
        probe_script(&targets, d.addr.port()),
    )
    .unwrap();
    let mut c = Client::attach(&session.connect_url, &session.connect_token).await;
    c.read_until_contains("checks-done").await;
    let out = c.text();

    for refused in [
        "home_file",
        "other_workspace",
        "state_token",
        "state_store",
        "run_socket",
        "abstract_socket",
        "loopback_tcp",
        "daemon_api",
    ] {
        assert!(
            outcome(&out, refused).starts_with("refused"),
            "the session reached {refused}:\n{out}"
        );
    }
    for dir in ["/etc", "/usr", "/opt", "/", "/var", "/run"] {
        let name = format!("write_{dir}");
        assert!(
            outcome(&out, &name).starts_with("refused"),
            "the session wrote into {dir}:\n{out}"
        );
        assert!(!Path::new(dir).join("catty-escape").exists());
    }
    // Under the home, the state directory's path exists inside, in the private home: a
    // write there lands in the session's home, never in the state directory itself.
    assert!(
        !targets.state_dir.join("catty-escape").exists(),
        "the session wrote into the state directory:\n{out}"
    );
    for allowed in ["write_home", "write_tmp", "write_workspace"] {
        assert_eq!(outcome(&out, allowed), "reached", "{out}");
    }
    match &targets.outside {
        Some(_) => assert_eq!(
            outcome(&out, "outside"),
            "reached",
            "the session cannot reach the network beyond this computer:\n{out}"
        ),
        None => eprintln!("SKIPPED outbound check: this computer has no non-loopback IPv4 address"),
    }
    for (name, value) in &decoys {
        assert!(
            !out.contains(value.as_str()),
            "the daemon's {name} is visible in the session:\n{out}"
        );
    }
    let env = out.split("env-begin").nth(1).unwrap();
    assert!(
        env.contains("CATTY_AGENT=shell"),
        "the probe read no environment:\n{env}"
    );

    drop(c);
    d.stop(&session.label).await;
    d.stop(&other.label).await;
    wait_until("the sessions to end", || {
        d.runtime_pid(&session.session_id).is_none()
    });
}

#[tokio::test]
async fn a_session_reaches_nothing_of_the_host_state_under_home() {
    probe_from_inside(tempfile::tempdir_in(real_home()).unwrap()).await;
}

#[tokio::test]
async fn a_session_reaches_nothing_of_the_host_state_outside_home() {
    // Neither under the home nor under /tmp: /var/tmp, which the sandbox does not show.
    probe_from_inside(tempfile::tempdir_in("/var/tmp").unwrap()).await;
}
