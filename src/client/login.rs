//! `catty login`, `catty logout` and `catty whoami` against a hosted API. Login is RFC 8628's
//! device flow through the API: print the code and the URL (and open a browser when there is
//! a display), poll with the RFC's whole error table, then keep the token the API mints in the
//! login file (config/login_file.rs).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hyper::{Method, StatusCode};

use super::daemon_client::{DaemonClient, DaemonError, Unanswered};
use crate::config::{ClientConfig, LoginFile, api_url};
use crate::protocol::api::{
    ACCESS_DENIED, AUTH_DEVICE_PATH, AUTH_LOGOUT_PATH, AUTH_TOKEN_PATH, AUTH_WHOAMI_PATH,
    AUTHORIZATION_PENDING, DeviceAuthorization, DeviceError, EXPIRED_TOKEN, LoggedIn, LoggedOut,
    Logout, SLOW_DOWN, SLOW_DOWN_STEP, TokenRequest, WhoAmI,
};

/// `catty login [--api URL]`: the flag's API, else `CATTY_API_URL`'s or the remembered one.
pub async fn login(config: &ClientConfig, api: Option<&str>) -> anyhow::Result<i32> {
    let url = match (api, &config.hosted) {
        (Some(url), _) => api_url(url)?,
        (None, Some(hosted)) => hosted.url.clone(),
        (None, None) => bail!(crate::config::UsageError(
            "which API? catty login --api https://… (or set CATTY_API_URL)".into()
        )),
    };
    let path = (config.login_file.as_ref()).context("no HOME: nowhere to keep the login")?;
    let api = DaemonClient::hosted(&url, "");
    let auth: DeviceAuthorization = api.post(AUTH_DEVICE_PATH, &serde_json::json!({})).await?;
    out!(
        "To log in to {url}, open {} and enter the code {}",
        auth.verification_uri,
        auth.user_code
    );
    let link = (auth.verification_uri_complete.as_ref()).unwrap_or(&auth.verification_uri);
    if config.display && open_browser(link) {
        out!("(a browser was opened on {link})");
    }
    out!("Waiting for the approval…");
    let done = match poll(&api, &auth).await? {
        Ok(done) => done,
        Err(why) => {
            say!("catty: {why}");
            return Ok(1);
        }
    };
    let login = LoginFile {
        api_url: url.clone(),
        token: done.token,
        email: done.email.clone(),
    };
    login.write(path)?;
    let who = done.email.unwrap_or(done.subject);
    out!("Logged in to {url} as {who}.");
    Ok(0)
}

/// Polls in a row the API may leave unanswered before the login gives up.
const UNANSWERED_MAX: u32 = 5;

/// Polls until the login is approved, or why it ended (refused, expired).
async fn poll(
    api: &DaemonClient,
    auth: &DeviceAuthorization,
) -> anyhow::Result<Result<LoggedIn, String>> {
    let mut interval = Duration::from_secs(auth.interval.max(1));
    let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
    let request = TokenRequest {
        device_code: auth.device_code.clone(),
        name: host_name(),
    };
    let mut unanswered = 0;
    loop {
        tokio::time::sleep(interval).await;
        let sent = api.exchange(Method::POST, AUTH_TOKEN_PATH, Some(&request));
        let (status, body) = match sent.await {
            Ok(answer) => answer,
            // An instance redeployed mid-login: the login's state is in the database, so
            // the next poll (maybe another instance) carries on.
            Err(e) if e.downcast_ref::<Unanswered>().is_some() && unanswered < UNANSWERED_MAX => {
                unanswered += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        unanswered = 0;
        if status == StatusCode::OK {
            let done = serde_json::from_slice(&body).context("the API's answer is not a login")?;
            return Ok(Ok(done));
        }
        let Ok(e) = serde_json::from_slice::<DeviceError>(&body) else {
            bail!("the login failed: {}", error_message(status, &body));
        };
        match e.error.as_str() {
            AUTHORIZATION_PENDING if Instant::now() < deadline => {}
            SLOW_DOWN => interval += SLOW_DOWN_STEP,
            ACCESS_DENIED => return Ok(Err("the login was refused in the browser".into())),
            AUTHORIZATION_PENDING | EXPIRED_TOKEN => {
                let why = "the code expired before it was approved: run catty login again";
                return Ok(Err(why.into()));
            }
            other => bail!("the login failed: {other}"),
        }
    }
}

/// The message of an answer that is not RFC JSON (catty's error shape, or anything).
fn error_message(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<crate::protocol::api::ErrorBody>(body) {
        Ok(e) => e.error.message,
        Err(_) => format!("the API answered {status}"),
    }
}

/// `catty logout [--all]`: revokes the token on the server, then removes the login file.
pub async fn logout(config: &ClientConfig, all: bool) -> anyhow::Result<i32> {
    let Some((url, token)) = logged_in(config) else {
        out!("Not logged in.");
        return Ok(0);
    };
    let revoked = DaemonClient::hosted(&url, &token)
        .post::<LoggedOut>(AUTH_LOGOUT_PATH, &Logout { all })
        .await;
    let code = match revoked {
        Ok(done) => {
            out!("Logged out of {url} ({} login(s) revoked).", done.revoked);
            0
        }
        Err(e) if status_of(&e) == Some(StatusCode::UNAUTHORIZED) => {
            out!("Logged out of {url} (the login had already expired or been revoked).");
            0
        }
        // Like `gh auth logout` and deleting an ssh key: logging out of this computer never
        // depends on the server. The file goes; the token stays valid on the server until it
        // expires (unused for 90 days) or `catty logout --all` runs elsewhere, and we say so
        // and fail, so a script notices.
        Err(e) if e.downcast_ref::<Unanswered>().is_some() => {
            say!(
                "catty: {e:#}; logged out here, but the login is not revoked on the server \
                 (catty logout --all from another computer revokes it)"
            );
            1
        }
        Err(e) => return Err(e),
    };
    // The file goes when it held this token (not when CATTY_TOKEN stood in for another).
    if let Some(path) = &config.login_file
        && LoginFile::read(path)
            .ok()
            .flatten()
            .is_some_and(|saved| saved.token == token)
    {
        LoginFile::remove(path)?;
    }
    Ok(code)
}

/// `catty whoami`.
pub async fn whoami(config: &ClientConfig) -> anyhow::Result<i32> {
    let Some((url, token)) = logged_in(config) else {
        match &config.hosted {
            Some(hosted) => say!("catty: not logged in to {}: run catty login", hosted.url),
            None => say!("catty: not logged in (commands use the local daemon)"),
        }
        return Ok(1);
    };
    let api = DaemonClient::hosted(&url, &token);
    let who: WhoAmI = api.get(AUTH_WHOAMI_PATH).await?;
    let name = who.email.as_deref().unwrap_or(&who.subject);
    out!("{name} on {url}");
    Ok(0)
}

/// The hosted API's URL and this computer's token for it, when logged in.
pub(super) fn logged_in(config: &ClientConfig) -> Option<(String, String)> {
    let hosted = config.hosted.as_ref()?;
    Some((hosted.url.clone(), hosted.token.clone()?))
}

pub(super) fn status_of(e: &anyhow::Error) -> Option<StatusCode> {
    e.chain()
        .find_map(|c| c.downcast_ref::<DaemonError>())
        .map(|e| e.status)
}

/// What the token is called on the server: this computer's name.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    match name.trim() {
        "" => "unknown computer".to_string(),
        name => name.to_string(),
    }
}

/// Opens `url` with `xdg-open` if there is one; never fails.
pub(super) fn open_browser(url: &str) -> bool {
    let child = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            // Reaped on a thread of its own: the login does not wait for the browser.
            std::thread::spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}
