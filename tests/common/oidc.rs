//! A real OpenID Connect provider with device flow for the login tests: npm's `oidc-provider`
//! (`tests/oidc/provider.mjs`, pinned by its lockfile), started on loopback and killed on
//! drop. The browser's part (confirm the code, log in, consent; or refuse) is played here with
//! plain HTTP and a cookie jar, the seven requests of reference/hosted.md §2.2.

use std::collections::HashMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use bytes::Bytes;
use catty::protocol::percent;
use http_body_util::Full;

use super::DEADLINE;
use super::http::{HttpReply, http_send};

/// The client id `provider.mjs` registers: a public client with the device grant.
pub const CLIENT_ID: &str = "catty-cli";

pub struct Oidc {
    child: Child,
    /// `http://127.0.0.1:PORT`, its issuer and base URL.
    pub issuer: String,
    addr: SocketAddr,
}

impl Drop for Oidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// `npm ci` once per test process when `tests/oidc/node_modules` is missing (CI runs it first).
fn installed() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap();
    if *done || dir().join("node_modules/oidc-provider").is_dir() {
        *done = true;
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-fund", "--no-audit", "--prefix"])
        .arg(dir())
        .output();
    match out {
        Ok(out) if out.status.success() => *done = true,
        Ok(out) => panic!(
            "npm ci --prefix tests/oidc failed; run it by hand: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("the login tests need Node and npm (npm ci --prefix tests/oidc): {e}"),
    }
}

impl Oidc {
    /// The provider (device codes live 10 min; `interval` 1 s), with `CATTY_TEST_OIDC_DEVICE_TTL` (seconds) or `CATTY_TEST_OIDC_INTERVAL` set.
    pub fn start_with(env: &[(&str, &str)]) -> Oidc {
        installed();
        let mut child = Command::new("node")
            .arg(dir().join("provider.mjs"))
            .env("CATTY_TEST_OIDC_INTERVAL", "1")
            .envs(env.iter().copied())
            .current_dir(dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node tests/oidc/provider.mjs (is Node installed?)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads on to the end: the provider writes more (its interactions log), and a closed
        // pipe would kill it.
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            lines.for_each(drop);
        });
        let line = rx
            .recv_timeout(DEADLINE)
            .expect("the provider prints its URL");
        let issuer = line.trim().to_string();
        assert!(issuer.starts_with("http://127.0.0.1:"), "{issuer:?}");
        let addr = issuer.trim_start_matches("http://").parse().unwrap();
        Oidc {
            child,
            issuer,
            addr,
        }
    }

    /// How many requests the provider's token endpoint has had (polls that reached it).
    pub async fn token_polls(&self) -> u64 {
        let reply = Browser::new(self)
            .send("GET", "/test/token-polls", &[])
            .await;
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        body["polls"].as_u64().unwrap()
    }

    /// The user approves `user_code`, logged in as `login` (the `sub`; email
    /// `<login>@example.com`).
    pub async fn approve(&self, user_code: &str, login: &str) {
        let mut browser = Browser::new(self);
        let interaction = browser.confirm(user_code, "confirm").await;
        let reply = browser
            .send(
                "POST",
                &interaction,
                &[("prompt", "login"), ("login", login), ("password", "x")],
            )
            .await;
        let resume = browser.location(&reply);
        let reply = browser.send("GET", &resume, &[]).await;
        let consent = browser.location(&reply);
        let reply = browser
            .send("POST", &consent, &[("prompt", "consent")])
            .await;
        let done = browser.location(&reply);
        let page = browser.send("GET", &done, &[]).await;
        let text = String::from_utf8_lossy(&page.body);
        assert!(text.contains("Sign-in Success"), "{text}");
    }

    /// The user refuses `user_code` on the confirmation page.
    pub async fn deny(&self, user_code: &str) {
        let mut browser = Browser::new(self);
        browser.confirm(user_code, "abort").await;
    }
}

/// One browser: its cookies by name (the provider's paths never need two of one name at once).
struct Browser<'a> {
    oidc: &'a Oidc,
    cookies: HashMap<String, String>,
}

impl<'a> Browser<'a> {
    fn new(oidc: &'a Oidc) -> Browser<'a> {
        Browser {
            oidc,
            cookies: HashMap::new(),
        }
    }

    /// Opens the code's page and answers it with `button` (`confirm` or `abort`); the
    /// interaction it leads to.
    async fn confirm(&mut self, user_code: &str, button: &str) -> String {
        let page = self
            .send("GET", &format!("/device?user_code={user_code}"), &[])
            .await;
        let text = String::from_utf8_lossy(&page.body).into_owned();
        let xsrf = text
            .split("name=\"xsrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no xsrf on the device page: {text}"))
            .to_string();
        let form = [
            ("xsrf", xsrf.as_str()),
            ("user_code", user_code),
            (button, "yes"),
        ];
        let reply = self.send("POST", "/device", &form).await;
        match button {
            "confirm" => self.location(&reply),
            _ => {
                let text = String::from_utf8_lossy(&reply.body);
                assert!(reply.status.is_success(), "{}: {text}", reply.status);
                String::new()
            }
        }
    }

    /// The path a 3xx answer leads to.
    fn location(&self, reply: &HttpReply) -> String {
        let text = String::from_utf8_lossy(&reply.body);
        assert!(reply.status.is_redirection(), "{}: {text}", reply.status);
        let to = reply.header("location").expect("a Location");
        to.strip_prefix(&self.oidc.issuer).unwrap_or(to).to_string()
    }

    async fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> HttpReply {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", percent::encode(k), percent::encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = hyper::Request::builder().method(method).uri(path);
        if !form.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        let reply = http_send(
            self.oidc.addr,
            req.body(Full::new(Bytes::from(body))).unwrap(),
        )
        .await;
        for set in reply.headers.get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies
                    .insert(name.trim().to_string(), value.to_string());
            }
        }
        reply
    }
}
