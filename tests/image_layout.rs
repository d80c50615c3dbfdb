//! The machine image without Docker: docker/image-layout.sh lays out the image's files in a
//! directory exactly as the Dockerfile's build step does, and starts the runtime from there
//! through the `catty-exec-runtime` name with the Dockerfile's environment. A session on it
//! works end to end: an upload lands in the image's workspace, a client attaches and types.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, Client, Runtime, TOKEN, http_send, sized, succeeded};
use bytes::Bytes;
use catty::client::upload;
use catty::protocol::api::UploadDone;
use http_body_util::Full;
use hyper::{Request, StatusCode};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/image-layout.sh");
const HOME_FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/home");

/// The image's files under a fresh directory.
fn assemble() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .args([SCRIPT, "assemble"])
        .arg(root.path())
        .arg(env!("CARGO_BIN_EXE_catty"))
        .output()
        .unwrap();
    succeeded(out);
    root
}

/// `image-layout.sh run ROOT [ARGS]` with the daemon's share of the environment.
fn start(root: tempfile::TempDir, env: &[(&str, &str)], args: &[&str]) -> Runtime {
    let transcript = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("bash");
    cmd.args([SCRIPT, "run"])
        .env("CATTY_TRANSCRIPT", transcript.path())
        .arg(root.path())
        .args(args)
        .env_remove("CATTY_CMD")
        .env_remove("CATTY_WORKSPACE")
        .env("CONNECT_TOKEN", TOKEN)
        .env("CATTY_EXEC_ADDR", "127.0.0.1:0")
        .env("CATTY_GRACE_SEC", "5")
        .env("PS1", "$ ")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(common::runtime_log());
    let mut child = cmd.spawn().unwrap();
    let addr = common::listening_addr(&mut child);
    Runtime {
        child,
        addr,
        workspace: root,
        transcript,
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_script_parses() {
    let status = Command::new("bash").args(["-n", SCRIPT]).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_dockerfile_that_disagrees_with_the_layout_is_refused() {
    let root = assemble();
    let docker = tempfile::tempdir().unwrap();
    let script = docker.path().join("image-layout.sh");
    std::fs::copy(SCRIPT, &script).unwrap();
    let dockerfile = std::fs::read_to_string(Path::new(SCRIPT).with_file_name("Dockerfile"))
        .unwrap()
        .replace(
            "ENV CATTY_WORKSPACE=/workspace",
            "ENV CATTY_WORKSPACE=/srv/work",
        );
    std::fs::write(docker.path().join("Dockerfile"), dockerfile).unwrap();
    let out = Command::new("bash")
        .arg(&script)
        .arg("run")
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("docker/Dockerfile has CATTY_WORKSPACE /srv/work, the layout /workspace"),
        "{err}"
    );
}

#[test]
fn the_layout_has_the_binary_its_link_the_home_and_the_workspace() {
    let root = assemble();
    let bin = root.path().join("usr/local/bin");
    let link = bin.join("catty-exec-runtime");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("catty"));
    let mode = std::fs::metadata(bin.join("catty"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let home_files = files_under(Path::new(HOME_FILES));
    assert!(home_files.len() >= 4, "{home_files:?}");
    for file in home_files {
        let relative = file.strip_prefix(HOME_FILES).unwrap();
        let copy = root.path().join("root").join(relative);
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&file).unwrap());
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", copy.display());
        if file.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&file).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
    }
    assert!(root.path().join("workspace").is_dir());
}

/// A small workspace, zipped the way `catty new` zips.
async fn zipped_workspace() -> Bytes {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "uploaded into the image\n").unwrap();
    let ws = upload::scan(dir.path()).unwrap();
    let mut zip = Vec::new();
    upload::write_zip(&ws, dir.path(), &mut zip, |_| {})
        .await
        .unwrap();
    Bytes::from(zip)
}

#[tokio::test]
async fn the_runtime_starts_through_its_link_and_a_session_works() {
    let root = assemble();
    let prefix = root.path().to_path_buf();
    let mut runtime = start(root, &[("CATTY_AGENT", "shell")], &[]);

    // The script execs the runtime: this pid is catty, called by the link's name.
    let proc = PathBuf::from(format!("/proc/{}", runtime.pid()));
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap();
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap();
    assert_eq!(
        argv0,
        prefix
            .join("usr/local/bin/catty-exec-runtime")
            .as_os_str()
            .as_encoded_bytes()
    );
    assert_eq!(
        std::fs::read_link(proc.join("exe")).unwrap(),
        prefix.join("usr/local/bin/catty")
    );

    let request = Request::post("/upload")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/zip")
        .body(Full::new(zipped_workspace().await))
        .unwrap();
    let done: UploadDone = http_send(runtime.addr, request).await.json(StatusCode::OK);
    assert_eq!(done.files, 1);
    let workspace = prefix.join("workspace");
    assert!(
        workspace.join("hello.txt").is_file(),
        "the upload lands in the image's /workspace"
    );

    let mut client = Client::connect(runtime.addr, &sized(100, 30))
        .await
        .unwrap();
    client
        .send(b"cat hello.txt; echo \"home=$HOME cwd=$(pwd)\"; exit 7\r")
        .await;
    client.read_until("the exit", |c| c.exit.is_some()).await;
    let text = client.text();
    assert!(text.contains("uploaded into the image"), "{text}");
    let home = prefix.join("root");
    assert!(
        text.contains(&format!(
            "home={} cwd={}",
            home.display(),
            workspace.display()
        )),
        "{text}"
    );
    assert_eq!(client.exit.as_ref().unwrap().code, 7);
    assert_eq!(
        runtime.wait_exit(common::DEADLINE),
        Some(0),
        "the runtime ends after the grace"
    );
}

#[tokio::test]
async fn the_images_home_and_the_claude_profile_add_up() {
    let root = assemble();
    let prefix = root.path().to_path_buf();
    let key = "sk-ant-api03-test-key-of-the-image-layout-0123456789AA";
    let show = "cat \"$HOME/.claude.json\"; echo; cat \"$HOME/.claude/settings.json\"";
    let env = [("CATTY_AGENT", "claude"), ("ANTHROPIC_API_KEY", key)];
    let runtime = start(root, &env, &["--", "/bin/sh", "-c", show]);
    let mut client = Client::connect(runtime.addr, &sized(100, 30))
        .await
        .unwrap();
    client.read_until("the exit", |c| c.exit.is_some()).await;
    let text = client.text().replace("\r\n", "\n");
    let mut documents = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let state = documents.next().unwrap().unwrap();
    let settings = documents.next().unwrap().unwrap();
    // The image's trust of /workspace stays; the session's workspace (here under the
    // directory) is added, with the key's suffix.
    let workspace = std::fs::canonicalize(prefix.join("workspace")).unwrap();
    assert_eq!(
        state["projects"]["/workspace"]["hasTrustDialogAccepted"],
        true
    );
    assert_eq!(
        state["projects"][workspace.to_str().unwrap()]["hasTrustDialogAccepted"],
        true
    );
    assert_eq!(
        state["customApiKeyResponses"]["approved"],
        serde_json::json!([&key[key.len() - 20..]])
    );
    assert_eq!(settings["env"]["DISABLE_AUTOUPDATER"], "1");
    assert_eq!(client.exit.as_ref().unwrap().code, 0);
}

/// The hosted API's image (docker/api.Dockerfile, deployed by docker/fly.api.toml): its
/// ENTRYPOINT, run through the link the Dockerfile makes, is `catty api` with the flags it
/// gives, and the port Fly's proxy sends to is the one hosted mode listens on.
#[test]
fn the_api_image_starts_the_hosted_api() {
    let docker = Path::new(SCRIPT).parent().unwrap();
    let help = entrypoint_help("api.Dockerfile", "catty-api");
    assert!(help.contains("--database-url"), "{help}");

    let fly = std::fs::read_to_string(docker.join("fly.api.toml")).unwrap();
    assert!(fly.contains("dockerfile = \"api.Dockerfile\""), "{fly}");
    assert!(fly.contains("internal_port = 8080"), "{fly}");
    assert!(
        help.contains("0.0.0.0:8080"),
        "hosted mode's address: {help}"
    );
}

/// The gateway's image (docker/gateway.Dockerfile, deployed by docker/fly.gateway.toml): its
/// ENTRYPOINT, run through the link the Dockerfile makes, is `catty gateway`, listening where
/// Fly's proxy sends the app's private (Flycast) traffic, with no redirect to HTTPS.
#[test]
fn the_gateway_image_starts_the_gateway() {
    let docker = Path::new(SCRIPT).parent().unwrap();
    let help = entrypoint_help("gateway.Dockerfile", "catty-gateway");
    assert!(help.contains("--listen"), "{help}");
    assert!(help.contains("[::]:8080"), "the gateway's address: {help}");

    let fly = std::fs::read_to_string(docker.join("fly.gateway.toml")).unwrap();
    assert!(fly.contains("dockerfile = \"gateway.Dockerfile\""), "{fly}");
    assert!(fly.contains("internal_port = 8080"), "{fly}");
    assert!(
        fly.contains("force_https = false"),
        "agents speak plain HTTP over Flycast: {fly}"
    );
}

/// The `--help` of the image's ENTRYPOINT (`docker/DOCKERFILE`), run through the link the
/// Dockerfile makes, which must be named `link`.
fn entrypoint_help(dockerfile: &str, link: &str) -> String {
    let docker = Path::new(SCRIPT).parent().unwrap();
    let text = std::fs::read_to_string(docker.join(dockerfile)).unwrap();
    assert!(
        text.contains(&format!("ln -s catty /usr/local/bin/{link}")),
        "{text}"
    );
    let entry = text
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(entry).unwrap();
    assert_eq!(argv[0], link);
    let bin = tempfile::tempdir().unwrap();
    let path = bin.path().join(&argv[0]);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_catty"), &path).unwrap();
    let out = succeeded(
        Command::new(&path)
            .args(&argv[1..])
            .arg("--help")
            .output()
            .unwrap(),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
