//! What `/proc` says about local runtimes: whether a pid is still the process we started
//! (start time, not a zombie), and which `catty exec` processes serve this daemon's sessions.

use std::io;
use std::path::{Path, PathBuf};

/// The fields of `/proc/<pid>/stat` we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    /// `R`, `S`, `T`, `Z`, …
    pub state: char,
    /// In clock ticks since boot: with the pid, it names one process for good.
    pub start_time: u64,
}

pub(super) fn stat(pid: i32) -> io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat: {text:?}"),
        )
    })
}

/// `pid (comm) state ppid … starttime …`; `comm` may hold spaces and parentheses, so the
/// fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        // Field 22 of stat(5); `state` is field 3.
        start_time: fields.get(22 - 3)?.parse().ok()?,
    })
}

/// Whether `pid` is still the process that started at `start_time` and has not exited.
pub(super) fn is_alive(pid: i32, start_time: u64) -> io::Result<bool> {
    match stat(pid) {
        Ok(stat) => Ok(stat.start_time == start_time && stat.state != 'Z' && stat.state != 'X'),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

pub(super) fn cmdline(pid: i32) -> io::Result<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect())
}

/// A `catty exec` process serving a session of this daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Runtime {
    pub pid: i32,
    pub start_time: u64,
    pub session_id: String,
}

/// Every live `catty exec … --workspace <sessions_dir>/<id>/workspace` process. The
/// workspace path is what ties a runtime to this daemon, with or without a record.
pub(super) fn runtimes(sessions_dir: &Path) -> io::Result<Vec<Runtime>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // Processes come and go during the scan; one that vanished is simply not listed.
        let Ok(argv) = cmdline(pid) else { continue };
        let Some(session_id) = session_of(&argv, sessions_dir) else {
            continue;
        };
        match stat(pid) {
            Ok(stat) if stat.state != 'Z' && stat.state != 'X' => found.push(Runtime {
                pid,
                start_time: stat.start_time,
                session_id,
            }),
            _ => {}
        }
    }
    Ok(found)
}

/// The session id when `argv` is `<exe> exec … --workspace <sessions_dir>/<id>/workspace`.
/// bubblewrap's own command line carries the same words after `--`, but not as `argv[1]`.
fn session_of(argv: &[String], sessions_dir: &Path) -> Option<String> {
    if argv.get(1).map(String::as_str) != Some("exec") {
        return None;
    }
    let at = argv.iter().position(|a| a == "--workspace")?;
    let workspace = PathBuf::from(argv.get(at + 1)?);
    let session_dir = workspace.strip_prefix(sessions_dir).ok()?;
    let mut parts = session_dir.components();
    let id = parts.next()?.as_os_str().to_str()?.to_string();
    let tail: Vec<_> = parts.collect();
    (tail.len() == 1 && tail[0].as_os_str() == "workspace").then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_comm() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let stat = stat(me).unwrap();
        assert!(is_alive(me, stat.start_time).unwrap());
        assert!(!is_alive(me, stat.start_time + 1).unwrap());
    }

    #[test]
    fn runtime_command_lines() {
        let dir = Path::new("/state/catty/sessions");
        let argv = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let ours = argv(
            "/bin/catty exec --addr 127.0.0.1:0 --workspace /state/catty/sessions/s-1/workspace",
        );
        assert_eq!(session_of(&ours, dir).as_deref(), Some("s-1"));
        let bwrap = argv(
            "bwrap --ro-bind / / -- /bin/catty exec --workspace /state/catty/sessions/s-1/workspace",
        );
        assert_eq!(session_of(&bwrap, dir), None);
        let other = argv("/bin/catty exec --workspace /elsewhere/s-1/workspace");
        assert_eq!(session_of(&other, dir), None);
        let deeper = argv("/bin/catty exec --workspace /state/catty/sessions/s-1/workspace/x");
        assert_eq!(session_of(&deeper, dir), None);
    }
}
