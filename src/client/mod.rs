//! The client commands: `new`, `connect`, `list` (and `list --labels` for completions), `rm`,
//! `logs`, `pull`, `diff`, `stop`, `extend`, `stop-all-sessions-dangerously`, and `login`,
//! `logout`, `whoami`, `upgrade`, `usage` for a hosted API.
//! They talk to the daemon (starting it when nothing answers), or to the hosted API the
//! configuration names, and attach to runtimes. Each
//! returns the process's exit code; errors go up to `main`.

#[macro_use]
mod say;

mod attach;
mod daemon_client;
mod deadline;
mod escape;
mod extend;
mod login;
mod logs;
mod progress;
mod stop;
mod strip;
pub mod sync;
mod tty;
mod unacked;
mod upgrade;
pub mod upload;
mod usage;

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::config::{ClientConfig, NewOptions, UsageError};
use crate::protocol::UPLOAD_LIMIT_BYTES;
use crate::protocol::api::{
    CODEX_AUTH_VAR, CreateSession, NO_LOCAL_REGIONS, SessionCreated, SessionInfo, SessionList,
};
use attach::{Outcome, Target};
use daemon_client::{DaemonClient, DaemonError, Unanswered};
pub use extend::extend;
pub use login::{login, logout, whoami};
pub use logs::LogsOptions;
pub use stop::{stop, stop_all};
pub use upgrade::upgrade;
pub use usage::usage;

pub async fn new(config: &ClientConfig, options: NewOptions) -> anyhow::Result<i32> {
    // Before anything is scanned or started. The daemon's provider is this one: `ensure`
    // refuses a daemon of the other (its /healthz says which), and the daemon refuses too.
    if config.provider == "local" && options.create.region.is_some() {
        return Err(UsageError(NO_LOCAL_REGIONS.to_string()).into());
    }
    let cwd = options.dir;
    let workspace = match options.upload {
        true => Some(scan_workspace(&cwd).await?),
        false => None,
    };
    // The git history is found and bundled while the session is being created.
    let history = workspace.as_ref().map(|_| upload::History::start(&cwd));
    let remembering = sync::Remembering::start(&cwd, workspace.as_ref());
    let mut daemon = DaemonClient::ensure(config).await?;
    let mut request = options.create;
    if !daemon.takes_credentials {
        // Sessions go through the gateway: no key of the user's leaves this computer.
        request.credentials = Default::default();
    } else if let Some(note) = credential_note(&request, &options.unused_credentials) {
        say!("catty: {note}");
    }
    let created = create(config, &mut daemon, &request).await?;
    let label = created.label.clone();
    say!("catty: session {label} (reattach with: catty connect {label})");
    let (state_dir, id) = (&config.state_dir, &created.session_id);
    let remembered = remembering.save(state_dir, id, &label, options.sync).await;
    if let Err(e) = &remembered {
        say!("catty: warning: {e:#}; changes come back only by catty pull {label}");
    }
    let uploaded = workspace.is_some();
    if let (Some(workspace), Some(history)) = (workspace, history) {
        let progress = std::io::stderr().is_terminal();
        let (url, token) = (&created.connect_url, &created.connect_token);
        let sent = upload::upload_with_history(
            &workspace,
            history,
            &cwd,
            url,
            token,
            &created.headers,
            progress,
        )
        .await;
        if let Some(note) = sent.as_ref().ok().and_then(|sent| sent.history.note()) {
            say!("catty: {note}");
        }
        if let Err(e) = sent {
            // Leave nothing behind for an upload that failed.
            let stop = format!("/v1/sessions/{}/stop", created.session_id);
            let _ = daemon.post::<SessionInfo>(&stop, &()).await;
            return Err(anyhow::Error::new(e)
                .context("uploading the workspace failed; the session was stopped"));
        }
    }
    if uploaded && remembered.is_ok() {
        // Before the attach starts the program, so a file it deletes is never taken for one
        // the session ignores. Quiet when it fails: the live sync or `catty pull` says why.
        let say: sync::Say = Arc::new(|line| say!("{line}"));
        let confirmed = sync::confirm(&sync::Link::from(&created), state_dir, &cwd, say).await;
        if let Err(e) = confirmed {
            tracing::info!(session = %label, "the upload is not confirmed yet: {e:#}");
        }
    }
    let live = match options.sync && remembered.is_ok() {
        true => {
            // The expiry comes from the daemon's record: live sync pulls once more before it.
            let mut link = sync::Link::from(&created);
            let info = find(&daemon, &created.session_id).await;
            link.expires_at = info.ok().map(|info| info.expires_at);
            follow(config, link, &cwd)
        }
        false => None,
    };
    let target = Target {
        label,
        connect_url: created.connect_url,
        token: created.connect_token,
        headers: created.headers,
    };
    attach_and_report(
        config,
        &daemon,
        &created.session_id,
        &target,
        false,
        true,
        live,
    )
    .await
}

/// How many times `catty new` sends its create when the daemon does not answer.
const CREATE_TRIES: usize = 3;

/// `POST /v1/sessions`, tried again (the daemon restarted if need be) when the daemon does not
/// answer: the request's id makes every try get the one session the first made, if it did.
async fn create(
    config: &ClientConfig,
    daemon: &mut DaemonClient,
    create: &CreateSession,
) -> anyhow::Result<SessionCreated> {
    let _creating = progress::Stage::spinner("creating and starting the machine");
    let mut tries = 1;
    loop {
        match daemon.post("/v1/sessions", create).await {
            Err(e) if e.downcast_ref::<Unanswered>().is_some() && tries < CREATE_TRIES => {
                tracing::warn!("creating the session: {e:#}; trying again");
                tries += 1;
                *daemon = DaemonClient::ensure(config).await?;
            }
            answer => return answer,
        }
    }
}

/// When more than one of the agent's credentials is set here, which one the session uses
/// (the one sent): the first of [`crate::protocol::Agent::credential_vars`], for Claude Code
/// the API key over the subscription token, as it does itself. Names only, never a value.
fn credential_note(create: &CreateSession, unused: &[&str]) -> Option<String> {
    let vars = create.agent.credential_vars();
    let used = *vars.iter().find(|name| create.credentials.contains(name))?;
    let other = *unused.first()?;
    let name = |var: &str| match var {
        CODEX_AUTH_VAR => "your Codex login (auth.json)".to_string(),
        _ => var.to_string(),
    };
    let mut note = format!(
        "{} and {} are both set; {} uses {}",
        name(used),
        name(other),
        create.agent,
        name(used)
    );
    if used != CODEX_AUTH_VAR {
        note.push_str(&format!(" (unset it to use {other})"));
    }
    Some(note)
}

/// Follows the session's changes into `dir` while attached; lines go through the attach
/// loop's note, the one way to write while the terminal is raw.
fn follow(config: &ClientConfig, link: sync::Link, dir: &std::path::Path) -> Option<sync::Live> {
    let say: sync::Say = Arc::new(tty::note);
    let live = sync::Live::start(&link, &config.state_dir, dir, say);
    live.inspect_err(|e| say!("catty: warning: no live sync: {e:#}"))
        .ok()
}

/// Scans the current directory and refuses, before any session exists, what is too big.
async fn scan_workspace(cwd: &std::path::Path) -> anyhow::Result<upload::Workspace> {
    let scanning = progress::Stage::counting("scanning the directory", "files");
    let workspace = upload::scan_counting(cwd, &|| scanning.inc(1))?;
    drop(scanning);
    for warning in &workspace.warnings {
        say!("catty: warning: {warning}");
    }
    let checking = progress::Stage::spinner("checking the upload's size");
    upload::check_size(&workspace, cwd, UPLOAD_LIMIT_BYTES).await?;
    drop(checking);
    Ok(workspace)
}

pub async fn connect(config: &ClientConfig, session: &str, watch: bool) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, session).await?;
    if !info.state.is_live() {
        bail!(
            "session {} is {}; start a new one with: catty new",
            info.label,
            info.state.as_str()
        );
    }
    // Only on the machine that has the session's base (elsewhere nothing says where to), and
    // not for a session started with --no-sync.
    let live = match sync::Base::load(&config.state_dir, &info.session_id) {
        Ok(Some(base)) if base.live => follow(config, sync::Link::from(info.clone()), &base.dir),
        _ => None,
    };
    let target = Target {
        label: info.label.clone(),
        connect_url: info.connect_url,
        token: info.connect_token,
        headers: info.headers,
    };
    attach_and_report(
        config,
        &daemon,
        &info.session_id,
        &target,
        watch,
        false,
        live,
    )
    .await
}

async fn attach_and_report(
    config: &ClientConfig,
    daemon: &DaemonClient,
    session_id: &str,
    target: &Target,
    watch: bool,
    from_start: bool,
    following: Option<sync::Live>,
) -> anyhow::Result<i32> {
    let live = Live { daemon, session_id };
    let label = &target.label;
    let expiry = following.as_ref().map(sync::Live::expiry);
    let attached = attach::run(
        target,
        watch,
        from_start,
        config.replay_max_bytes,
        &live,
        expiry,
    );
    match attached.await? {
        Outcome::Exited(status) => {
            match &status.signal {
                Some(signal) => say!("catty: session {label} ended: killed by {signal}"),
                None => say!(
                    "catty: session {label} ended with exit code {}",
                    status.code
                ),
            }
            if let Some(following) = following {
                last_pull(following, label).await;
            }
            Ok(status.code)
        }
        Outcome::Detached => {
            // The cursor is wherever the session left it: start a line of our own.
            say!(
                "\ncatty: detached from {label}; it keeps running. Reattach with: catty connect {label}"
            );
            Ok(0)
        }
        Outcome::Gone(why) => {
            // main prints the error; the cursor is wherever the session left it (a prompt).
            say!("");
            bail!(
                "session {label} is not reachable: {why}; if it still runs: catty connect {label}"
            )
        }
        Outcome::Terminated => {
            say!("catty: terminated; session {label} keeps running (catty connect {label})");
            Ok(1)
        }
    }
}

/// The program has exited: what it left comes back once more, and the session's summary.
async fn last_pull(following: sync::Live, label: &str) {
    match following.finish().await {
        Ok(Some(summary)) if summary.is_news() => say!("catty: {summary}"),
        Ok(_) => {}
        Err(e) => say!("catty: the last pull failed: {e:#}; run: catty pull {label}"),
    }
}

/// Tells the attach loop whether reconnecting still makes sense.
struct Live<'a> {
    daemon: &'a DaemonClient,
    session_id: &'a str,
}

impl attach::Attachable for Live<'_> {
    async fn check(&self) -> Result<(), String> {
        match self
            .daemon
            .get::<SessionInfo>(&format!("/v1/sessions/{}", self.session_id))
            .await
        {
            Ok(info) if info.state.is_live() => Ok(()),
            Ok(info) => Err(format!("the session is {}", info.state.as_str())),
            Err(e)
                if e.downcast_ref::<DaemonError>()
                    .is_some_and(|e| e.status == 404) =>
            {
                Err("the daemon no longer knows this session".into())
            }
            // The daemon itself is unreachable: that says nothing about the session.
            Err(_) => Ok(()),
        }
    }
}

async fn find(daemon: &DaemonClient, session: &str) -> anyhow::Result<SessionInfo> {
    daemon
        .get(&format!("/v1/sessions/{session}"))
        .await
        .map_err(|e| match e.downcast_ref::<DaemonError>() {
            Some(api) if api.status == 404 => {
                anyhow::anyhow!("no session {session:?} (see: catty list)")
            }
            _ => e,
        })
}

pub async fn list(config: &ClientConfig, json: bool, all: bool) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let list: SessionList = daemon.get("/v1/sessions").await?;
    let shown: Vec<&SessionInfo> = (list.sessions.iter())
        .filter(|s| all || s.state.is_live())
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        let listed: Vec<Listed> = shown.into_iter().map(Listed::from).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
        return Ok(0);
    }
    if shown.is_empty() {
        let ended = list.sessions.len();
        match (all, ended) {
            (false, 1..) => writeln!(out, "no live sessions ({ended} ended: catty list --all)")?,
            _ => writeln!(out, "no sessions; start one with: catty new")?,
        }
        return Ok(0);
    }
    let now = crate::clock::unix_now();
    writeln!(
        out,
        "{:<28} {:<17} {:<20} {:>5}  {:<8} REGION",
        "LABEL", "STATE", "AGENT", "AGE", "PROVIDER"
    )?;
    for s in shown {
        let age = human_age(now.saturating_sub(s.created_at));
        let region = s.region.as_deref().unwrap_or("-");
        writeln!(
            out,
            "{:<28} {:<17} {:<20} {:>5}  {:<8} {region}",
            s.label,
            s.state_text(),
            clip(&s.program_text(), 20),
            age,
            s.provider
        )?;
    }
    Ok(0)
}

/// How long `catty list --labels` may take: a user pressed Tab and waits.
const LABELS_TIMEOUT: Duration = Duration::from_secs(3);

/// `catty list --labels`: the live sessions' labels (`all`: the ended ones too) one a line,
/// for shell completion. No daemon is started for it, and nothing is printed on failure.
pub async fn labels(config: &ClientConfig, all: bool) -> anyhow::Result<i32> {
    let asked = tokio::time::timeout(LABELS_TIMEOUT, async {
        let daemon = DaemonClient::running(config).await?;
        daemon.get::<SessionList>("/v1/sessions").await.ok()
    });
    if let Ok(Some(list)) = asked.await {
        let shown = list.sessions.iter().filter(|s| all || s.state.is_live());
        let labels: Vec<&str> = shown.map(|s| s.label.as_str()).collect();
        if !labels.is_empty() {
            out!("{}", labels.join("\n"));
        }
    }
    Ok(0)
}

/// `text` cut to `max` characters, the cut marked with `…`.
fn clip(text: &str, max: usize) -> String {
    match text.chars().count() > max {
        true => text.chars().take(max - 1).chain(['…']).collect(),
        false => text.to_string(),
    }
}

/// `catty rm`: forgets an ended session.
pub async fn rm(config: &ClientConfig, session: &str) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, session).await?;
    let path = format!("/v1/sessions/{}", info.session_id);
    let gone: SessionInfo = daemon.delete(&path).await?;
    writeln!(std::io::stdout(), "forgot {}", gone.label)?;
    Ok(0)
}

/// A session as `catty list --json` shows it: what a script needs, times in RFC 3339, and no
/// secret (the connect token and the routing headers stay between catty and the daemon).
#[derive(serde::Serialize)]
struct Listed<'a> {
    session_id: &'a str,
    label: &'a str,
    state: &'static str,
    /// How its program exited, once it did (`exited` then, even while its runtime stays for
    /// the grace).
    exit_code: Option<i32>,
    agent: &'static str,
    /// The command it runs instead of an agent.
    cmd: Option<&'a [String]>,
    provider: &'a str,
    region: Option<&'a str>,
    machine_id: &'a str,
    created_at: String,
    expires_at: String,
    ended_at: Option<String>,
    connect_url: &'a str,
}

impl<'a> From<&'a SessionInfo> for Listed<'a> {
    fn from(s: &'a SessionInfo) -> Listed<'a> {
        Listed {
            session_id: &s.session_id,
            label: &s.label,
            state: s.shown_state().as_str(),
            exit_code: s.exit_code,
            agent: s.agent.as_str(),
            cmd: s.cmd.as_deref(),
            provider: &s.provider,
            region: s.region.as_deref(),
            machine_id: &s.machine_id,
            created_at: crate::clock::rfc3339(s.created_at),
            expires_at: crate::clock::rfc3339(s.expires_at),
            ended_at: s.ended_at.map(crate::clock::rfc3339),
            connect_url: &s.connect_url,
        }
    }
}

pub async fn logs(
    config: &ClientConfig,
    session: &str,
    options: LogsOptions,
) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, session).await?;
    let (label, state) = (&info.label, info.state.as_str());
    logs::print(
        &info.connect_url,
        &info.connect_token,
        &info.headers,
        &options,
    )
    .await
    .with_context(|| format!("cannot read the output of {label} (the session is {state})"))?;
    Ok(0)
}

pub async fn pull(config: &ClientConfig, session: &str) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, session).await?;
    let (label, state) = (info.label.clone(), info.state.as_str());
    let here = std::env::current_dir().context("cannot read the current directory")?;
    let say: sync::Say = Arc::new(|line| say!("{line}"));
    let summary = sync::pull(&sync::Link::from(info), &config.state_dir, &here, say)
        .await
        .with_context(|| format!("cannot pull {label} (the session is {state})"))?;
    out!("{summary}");
    Ok(if summary.complete() { 0 } else { 1 })
}

pub async fn diff(config: &ClientConfig, session: &str, stat: bool) -> anyhow::Result<i32> {
    let daemon = DaemonClient::ensure(config).await?;
    let info = find(&daemon, session).await?;
    let (label, state) = (info.label.clone(), info.state.as_str());
    let here = std::env::current_dir().context("cannot read the current directory")?;
    sync::diff(&sync::Link::from(info), &config.state_dir, &here, stat)
        .await
        .with_context(|| format!("cannot diff {label} (the session is {state})"))
}

fn human_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Agent;

    fn create(agent: Agent, names: &[&str]) -> CreateSession {
        CreateSession {
            agent,
            credentials: names.iter().map(|n| (*n, "secret")).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn two_credentials_are_worth_a_line_naming_the_one_in_use() {
        let oauth = ["CLAUDE_CODE_OAUTH_TOKEN"];
        assert_eq!(
            credential_note(&create(Agent::Claude, &["ANTHROPIC_API_KEY"]), &oauth).unwrap(),
            "ANTHROPIC_API_KEY and CLAUDE_CODE_OAUTH_TOKEN are both set; claude uses \
             ANTHROPIC_API_KEY (unset it to use CLAUDE_CODE_OAUTH_TOKEN)"
        );
        assert_eq!(
            credential_note(
                &create(Agent::Codex, &["CATTY_CODEX_AUTH"]),
                &["OPENAI_API_KEY"]
            )
            .unwrap(),
            "your Codex login (auth.json) and OPENAI_API_KEY are both set; codex uses your \
             Codex login (auth.json)"
        );
        assert_eq!(credential_note(&create(Agent::Claude, &oauth), &[]), None);
        assert_eq!(credential_note(&create(Agent::Shell, &[]), &[]), None);
    }
}
