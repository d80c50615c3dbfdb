//! The daemon the client talks to: started in a session of its own, replaced when it is of
//! another build, refused (with the fix) when it runs the other provider, and its start-up
//! failure echoed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::sessions;
use crate::common::launch::healthz;
use crate::common::tmux::Tmux;

/// The value of `header` in the daemon's `/healthz` answer.
fn daemon_says(addr: SocketAddr, header: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let prefix = format!("{header}: ");
    reply
        .lines()
        .find_map(|l| Some(l.strip_prefix(&prefix)?.trim().to_string()))
}

#[test]
fn the_daemon_the_client_starts_has_no_controlling_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start_without_daemon(dir.path(), 100, 30);
    t.run("catty list");
    t.wait_for_text("no sessions");
    let pid = daemon_says(t.dirs.api_addr, "x-catty-pid").expect("the daemon says its pid");
    let ps = std::process::Command::new("ps")
        .args(["-o", "tty=", "-p", &pid])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&ps.stdout).trim(), "?");
    let log = std::fs::read_to_string(t.state_dir().join("api.log")).unwrap();
    assert!(log.contains("catty api starting"), "{log}");
    assert!(!log.contains('\x1b'), "colour escapes in api.log: {log:?}");
}

/// Sessions survive it: the old daemon drains on SIGTERM and the new one adopts them.
#[test]
fn a_daemon_of_another_build_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    // The same code installed again: another file, so another build.
    let other = tempfile::tempdir().unwrap();
    let exe = other.path().join("catty");
    std::fs::copy(env!("CARGO_BIN_EXE_catty"), &exe).unwrap();
    let file = std::fs::File::options().write(true).open(&exe).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1))
        .unwrap();
    drop(file);
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg("api").stdin(std::process::Stdio::null());
    let t = Tmux::start_with_daemon(dir.path(), 100, 30, cmd, &[]);
    let addr = t.dirs.api_addr;
    // A session of the old build, detached from.
    let new = format!(
        "{} new --no-upload -- bash --norc --noprofile",
        exe.display()
    );
    let label = t.start_session(&new);
    t.keys(&["Enter"]);
    t.type_text("~.");
    t.wait_for_text("detached");
    let (old_pid, old_build) = (
        daemon_says(addr, "x-catty-pid"),
        daemon_says(addr, "x-catty-version"),
    );

    let out = t.catty(&["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("restarting the catty daemon"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_ne!(daemon_says(addr, "x-catty-pid"), old_pid);
    assert_ne!(daemon_says(addr, "x-catty-version"), old_build);

    let again = t.catty(&["list"]);
    assert!(
        again.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // The session outlived the daemon it was made by.
    let listed = sessions(&t);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["label"].as_str(), Some(label.as_str()));
    assert_eq!(listed[0]["state"].as_str(), Some("running"));
}

#[test]
fn a_daemon_of_the_other_provider_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tmux::start(dir.path(), 100, 30);
    let pid = daemon_says(t.dirs.api_addr, "x-catty-pid").unwrap();
    let fly = [("FLY_API_TOKEN", "fm2_not_a_real_token")];
    let out = t.catty_with_env(&["new", "--no-upload", "--", "true"], &fly);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("uses the local provider, but FLY_API_TOKEN is set here"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("`kill {pid}`")), "{stderr}");
    assert!(!stderr.contains("fm2_not_a_real_token"), "{stderr}");
    assert!(sessions(&t).is_empty(), "a session was created");
    assert!(healthz(t.dirs.api_addr));
}

#[test]
fn a_daemon_that_cannot_start_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // Something that is not a catty daemon holds the daemon's address.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (state, addr) = (tempfile::tempdir().unwrap(), squatter.local_addr().unwrap());
    let t = Tmux::start_with(dir.path(), 100, 30, state, addr);
    let out = t.catty(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    assert!(stderr.contains("api.log"), "{stderr}");
}
