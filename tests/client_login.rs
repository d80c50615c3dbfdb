//! The real `catty login`, `whoami`, `logout` and `list` against the hosted API (two
//! instances on one PostgreSQL, the real OIDC provider): in tmux for what a person sees, and
//! as plain processes with a private HOME for the rest.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::DEADLINE;
use crate::common::hosted::Hosted;
use crate::common::pg;
use crate::common::tmux::Tmux;
use crate::fly_provider::support::made;

/// A pane whose `catty` talks to nothing local: its only API is the one a command names.
fn pane(h: &Hosted) -> Tmux {
    let state = tempfile::tempdir().unwrap();
    // No daemon listens there: a client that tried the local daemon would fail or start one.
    Tmux::start_with(Path::new("/tmp"), 120, 30, state, h.instances[0].addr)
}

/// Whether the command run with `; echo exit=$?` ended.
fn ended(screen: &str) -> bool {
    (0..10).any(|code| screen.contains(&format!("exit={code}")))
}

/// The user code `catty login` shows.
fn code_on(screen: &str) -> Option<String> {
    let after = screen.split("enter the code ").nth(1)?;
    let code: String = after.chars().take_while(|c| !c.is_whitespace()).collect();
    (code.len() >= 8).then_some(code)
}

fn login_file(home: &Path) -> PathBuf {
    home.join(".config/catty/credentials.json")
}

#[tokio::test]
async fn login_shows_a_code_and_keeps_the_token_private_and_whoami_names_the_user() {
    let h = Hosted::start(2, &[]).await;
    let tmux = pane(&h);
    tmux.run(&format!("catty login --api {}", h.url(0)));
    let screen = tmux.wait_for("the code", |s| code_on(s).is_some());
    assert!(
        screen.contains(&format!("{}/device", h.oidc.issuer)),
        "{screen}"
    );
    h.oidc.approve(&code_on(&screen).unwrap(), "alice").await;
    tmux.wait_for("the login", |s| s.contains("Logged in to"));

    let file = login_file(tmux.dirs.home.path());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        saved["token"].as_str().unwrap().starts_with("cat_"),
        "{saved}"
    );
    assert_eq!(saved["api_url"], h.url(0));
    assert_eq!(saved["email"], "alice@example.com");

    tmux.run("catty whoami");
    tmux.wait_for("whoami", |s| {
        s.contains(&format!("alice@example.com on {}", h.url(0)))
    });
    assert!(
        !tmux.state_dir().join("api.token").exists(),
        "a local daemon was started"
    );
}

#[tokio::test]
async fn new_runs_and_attaches_a_session_on_the_hosted_api_after_login() {
    let h = Hosted::start(1, &[]).await;
    let tmux = pane(&h);
    tmux.run(&format!("catty login --api {}", h.url(0)));
    let screen = tmux.wait_for("the code", |s| code_on(s).is_some());
    h.oidc.approve(&code_on(&screen).unwrap(), "alice").await;
    tmux.wait_for("the login", |s| s.contains("Logged in to"));
    tmux.run("catty new --no-upload -- bash --norc -i");
    tmux.wait_for("the session", |s| s.contains("catty: session "));
    tmux.run("echo hosted-$((6*7))");
    tmux.wait_for("the session's output", |s| s.contains("hosted-42"));
    assert_eq!(
        made(&h.fake).len(),
        1,
        "one machine, made by the hosted API"
    );
    assert!(
        !tmux.state_dir().join("api.token").exists(),
        "a local daemon was started"
    );
}

#[tokio::test]
async fn a_refused_login_ends_with_a_clear_line_and_exit_1() {
    let h = Hosted::start(1, &[]).await;
    let tmux = pane(&h);
    tmux.run(&format!("catty login --api {}; echo exit=$?", h.url(0)));
    let screen = tmux.wait_for("the code", |s| code_on(s).is_some());
    h.oidc.deny(&code_on(&screen).unwrap()).await;
    let screen = tmux.wait_for("the end", ended);
    assert!(
        screen.contains("catty: the login was refused in the browser"),
        "{screen}"
    );
    assert!(screen.contains("exit=1"), "{screen}");
    assert!(!login_file(tmux.dirs.home.path()).exists());
}

#[tokio::test]
async fn an_expired_code_ends_with_a_clear_line_and_exit_1() {
    let h = Hosted::start(1, &[("CATTY_TEST_OIDC_DEVICE_TTL", "3")]).await;
    let tmux = pane(&h);
    tmux.run(&format!("catty login --api {}; echo exit=$?", h.url(0)));
    let screen = tmux.wait_for("the end", ended);
    assert!(
        screen.contains("catty: the code expired before it was approved: run catty login again"),
        "{screen}"
    );
    assert!(screen.contains("exit=1"), "{screen}");
}

/// The interval the API holds for the one device code in the database.
async fn held_interval(sql: &tokio_postgres::Client) -> Option<i32> {
    let row = sql
        .query_opt("SELECT interval_sec FROM device_polls", &[])
        .await
        .unwrap();
    row.map(|r| r.get(0))
}

#[tokio::test]
async fn the_client_backs_off_5_s_after_slow_down() {
    let h = Hosted::start(1, &[]).await;
    let sql = pg::cluster().connect(&h.db.name).await;
    let tmux = pane(&h);
    tmux.run(&format!("catty login --api {}", h.url(0)));
    let screen = tmux.wait_for("the code", |s| code_on(s).is_some());
    // Another instance's poll a moment ago, as far as the API knows: the client's next poll
    // (1 s apart) comes too soon and is told `slow_down`.
    sql.execute(
        "UPDATE device_polls SET next_poll_at = now() + interval '2 s'",
        &[],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    while held_interval(&sql).await != Some(6) {
        assert!(Instant::now() < deadline, "no slow_down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next poll that reaches the provider comes after the longer interval: had the client
    // kept polling every second, the API would have slowed it down again (11 s).
    let polls = h.oidc.token_polls().await;
    while h.oidc.token_polls().await == polls {
        assert!(Instant::now() < deadline, "the client stopped polling");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(held_interval(&sql).await, Some(6));
    h.oidc.approve(&code_on(&screen).unwrap(), "alice").await;
    tmux.wait_for("the login", |s| s.contains("Logged in to"));
}

/// `catty ARGS` as a user whose home is `home`, with `env`; no local daemon reachable.
fn catty(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    command(home, env, args).output().unwrap()
}

fn command(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_catty"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        // Nothing listens here: the local daemon is never the one asked.
        .env("CATTY_API_ADDR", "127.0.0.1:9")
        .envs(env.iter().copied());
    cmd
}

/// The real `catty login` of `login` into `home`, approved as it waits.
async fn client_login(h: &Hosted, i: usize, home: &Path, login: &str) {
    client_login_with(h, i, home, login, &[]).await;
}

/// [`client_login`] with `env`; what it printed.
async fn client_login_with(
    h: &Hosted,
    i: usize,
    home: &Path,
    login: &str,
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut child = command(home, env, &["login", "--api", &h.url(i)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    h.oidc.approve(&code_on(&first).unwrap(), login).await;
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success(), "{first} {rest:?}");
    [vec![first], rest].concat()
}

#[tokio::test]
async fn login_opens_a_browser_only_where_there_is_a_display() {
    let h = Hosted::start(1, &[]).await;
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = home.path().join("opened");
    let script = format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display());
    std::fs::write(bin.join("xdg-open"), script).unwrap();
    std::fs::set_permissions(bin.join("xdg-open"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let said = client_login_with(&h, 0, home.path(), "alice", &[("PATH", &path)]).await;
    assert!(!said.iter().any(|l| l.contains("browser")), "{said:?}");
    assert!(!opened.exists(), "no display, no browser");

    let with_display = [("PATH", path.as_str()), ("DISPLAY", ":0")];
    let said = client_login_with(&h, 0, home.path(), "alice", &with_display).await;
    let line = said.iter().find(|l| l.contains("a browser was opened on"));
    let url = line
        .unwrap()
        .split(" on ")
        .nth(1)
        .unwrap()
        .trim_end_matches(')');
    assert!(url.contains("/device?user_code="), "{url}");
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_to_string(&opened).unwrap_or_default().trim() != url {
        assert!(Instant::now() < deadline, "xdg-open was not run with {url}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn labels(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = list
        .as_array()
        .or_else(|| list["sessions"].as_array())
        .unwrap();
    sessions
        .iter()
        .map(|s| s["label"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn two_users_each_see_only_their_sessions_through_the_real_client() {
    let h = Hosted::start(2, &[]).await;
    assert!(made(&h.fake).is_empty());
    let (alice_home, bob_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    client_login(&h, 0, alice_home.path(), "alice").await;
    client_login(&h, 1, bob_home.path(), "bob").await;
    let token = |home: &Path| {
        let saved: serde_json::Value =
            serde_json::from_slice(&std::fs::read(login_file(home)).unwrap()).unwrap();
        saved["token"].as_str().unwrap().to_string()
    };
    let bash = serde_json::json!({"agent": "shell", "cmd": ["bash", "--norc", "-i"]});
    let alices = h
        .client(1, &token(alice_home.path()))
        .create(bash.clone())
        .await;
    let bobs = h.client(0, &token(bob_home.path())).create(bash).await;

    let alice_list = catty(alice_home.path(), &[], &["list", "--json"]);
    assert_eq!(labels(&alice_list), std::slice::from_ref(&alices.label));
    // Bob's login was made through instance 1; CATTY_API_URL points him at instance 0, and
    // CATTY_TOKEN stands in for his file.
    let url0 = h.url(0);
    let bob_token = token(bob_home.path());
    let bob_env = [
        ("CATTY_API_URL", url0.as_str()),
        ("CATTY_TOKEN", bob_token.as_str()),
    ];
    assert_eq!(
        labels(&catty(bob_home.path(), &bob_env, &["list", "--json"])),
        [bobs.label]
    );

    assert_eq!(made(&h.fake).len(), 2);
    // Through the runtime too (the Fly edge), with the URL and token the hosted API gives.
    let logs = catty(alice_home.path(), &[], &["logs", &alices.label]);
    assert!(
        logs.status.success(),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let logs = catty(bob_home.path(), &[], &["logs", &alices.label]);
    assert!(String::from_utf8_lossy(&logs.stderr).contains("no session"));
    let stop = catty(bob_home.path(), &[], &["stop", "--discard", &alices.label]);
    assert!(!stop.status.success());
    let said = String::from_utf8_lossy(&stop.stderr);
    assert!(said.contains("no session"), "{said}");
    for home in [alice_home.path(), bob_home.path()] {
        assert!(
            !home.join("state/catty/api.token").exists(),
            "a local daemon was started"
        );
    }
}

#[tokio::test]
async fn new_without_a_login_says_to_run_catty_login() {
    let h = Hosted::start(1, &[]).await;
    let home = tempfile::tempdir().unwrap();
    let url = h.url(0);
    let out = catty(
        home.path(),
        &[("CATTY_API_URL", &url)],
        &["new", "--no-upload", "--", "bash"],
    );
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("not logged in to {url}: run catty login")),
        "{said}"
    );
}

#[tokio::test]
async fn logout_revokes_on_the_server_then_forgets_and_all_revokes_every_computer() {
    let h = Hosted::start(2, &[]).await;
    let (laptop, desktop) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    client_login(&h, 0, laptop.path(), "dave").await;
    client_login(&h, 1, desktop.path(), "dave").await;
    let laptop_token = std::fs::read_to_string(login_file(laptop.path())).unwrap();
    let laptop_token: serde_json::Value = serde_json::from_str(&laptop_token).unwrap();
    let laptop_token = laptop_token["token"].as_str().unwrap().to_string();

    let out = catty(laptop.path(), &[], &["logout"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!login_file(laptop.path()).exists());
    for i in [0, 1] {
        let answer = h
            .client(i, &laptop_token)
            .call("GET", "/v1/auth/whoami", "")
            .await;
        assert_eq!(answer.status, hyper::StatusCode::UNAUTHORIZED);
    }
    assert!(catty(desktop.path(), &[], &["whoami"]).status.success());

    client_login(&h, 0, laptop.path(), "dave").await;
    let out = catty(desktop.path(), &[], &["logout", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whoami = catty(laptop.path(), &[], &["whoami"]);
    assert_eq!(
        whoami.status.code(),
        Some(1),
        "the laptop's login was revoked too"
    );
    let said = String::from_utf8_lossy(&whoami.stderr);
    assert!(said.contains("run catty login"), "{said}");
}
