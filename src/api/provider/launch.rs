//! Where a local session's program is, and what the sandbox must show for it to start: the
//! program the user's shell would run (the first on the `PATH` the request brought), its real
//! file behind any links, its install tree (the npm package, or the directory of a native
//! binary), and the same again for the interpreter its `#!` line names (the Node it runs
//! on). Found before any session exists, so a missing program is one line and nothing made.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::protocol::Agent;

/// How many interpreters deep a program may go (`claude` → `env` → `node`).
const MAX_HOPS: usize = 4;
/// What the standard directories are, appended inside when the user's `PATH` has none.
const STANDARD_PATH: [&str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];

/// What the sandbox needs for one program.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Launch {
    /// Trees shown read-only at their own paths (none when already shown).
    pub binds: Vec<PathBuf>,
    /// Links made inside (`path` → `target`), so the program is where the `PATH` says when
    /// the directory holding it is not shown (`~/.local/bin/claude`).
    pub links: Vec<(PathBuf, PathBuf)>,
    /// The `PATH` inside: the user's, less the directories the sandbox does not show.
    pub path: String,
}

/// What the sandbox shows of this computer whatever the program: a path is shown when it is
/// under one of these (`None`: no sandbox, everything is shown).
pub(super) struct Shown<'a> {
    pub system: Option<&'a [&'a str]>,
    /// The user's home: never bound whole, nor any directory above it.
    pub home: Option<&'a Path>,
}

impl Shown<'_> {
    fn shows(&self, path: &Path) -> bool {
        match self.system {
            None => true,
            Some(dirs) => dirs.iter().any(|d| path.starts_with(d)),
        }
    }
}

/// The launch of `program` (argv[0]) for `agent`, found on `path` (the user's `PATH`).
/// The error is the line for the user.
pub(super) fn plan(
    program: &str,
    agent: Agent,
    path: &str,
    shown: &Shown,
) -> Result<Launch, String> {
    let mut launch = Launch::default();
    // A relative path names a file of the workspace, which is not uploaded yet: the runtime
    // reports it.
    if program.contains('/') && !program.starts_with('/') {
        launch.path = inside_path(path, shown, &launch);
        return Ok(launch);
    }
    let found = locate(program, path).ok_or_else(|| not_installed(program, agent))?;
    let mut next = Some(found);
    for _ in 0..MAX_HOPS {
        let Some(found) = next.take() else { break };
        let real = std::fs::canonicalize(&found)
            .map_err(|e| format!("cannot start {program}: {}: {e}", found.display()))?;
        if !shown.shows(&real) && !launch.covers(&real) {
            launch.add_bind(install_tree(&real, shown.home));
        }
        if found != real {
            launch.links.push((found, real.clone()));
        }
        next = match interpreter(&real) {
            None => None,
            Some(Interpreter::Path(p)) if p.is_file() => Some(p),
            Some(Interpreter::Path(p)) => {
                return Err(format!(
                    "cannot start {program}: its interpreter {} is not installed",
                    p.display()
                ));
            }
            Some(Interpreter::Env(name)) => Some(locate(&name, path).ok_or_else(|| {
                format!("cannot start {program}: its interpreter {name} is not on your PATH")
            })?),
        };
    }
    // A link whose directory is shown is there already, as on this computer.
    let links = std::mem::take(&mut launch.links);
    launch.links = links
        .into_iter()
        .filter(|(link, _)| {
            let dir = link.parent().unwrap_or(Path::new("/"));
            !shown.shows(dir) && !launch.covers(dir)
        })
        .collect();
    launch.path = inside_path(path, shown, &launch);
    Ok(launch)
}

impl Launch {
    fn covers(&self, path: &Path) -> bool {
        self.binds.iter().any(|b| path.starts_with(b))
    }

    /// Adds `tree`, dropping binds it contains.
    fn add_bind(&mut self, tree: PathBuf) {
        self.binds.retain(|b| !b.starts_with(&tree));
        self.binds.push(tree);
    }
}

/// The line for a program not on the user's `PATH`.
fn not_installed(program: &str, agent: Agent) -> String {
    match (agent.program(), agent.npm_package()) {
        (Some(own), Some(npm)) if own == program => format!(
            "{} is not installed here ({program} is not on your PATH): \
             install it with `npm install -g {npm}`",
            agent.title()
        ),
        _ if program.starts_with('/') => format!("{program} does not exist or cannot run"),
        _ => format!("{program} is not on your PATH"),
    }
}

/// The first executable file named `program` on `path`, or `program` itself when it is a
/// path. Relative `PATH` entries are skipped: they would name directories of the workspace.
fn locate(program: &str, path: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = if program.starts_with('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::split_paths(path)
            .filter(|dir| dir.is_absolute())
            .map(|dir| dir.join(program))
            .collect()
    };
    candidates.into_iter().find(|c| {
        std::fs::metadata(c).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// What a file's `#!` line runs it with.
#[derive(Debug, PartialEq, Eq)]
enum Interpreter {
    Path(PathBuf),
    /// `#!/usr/bin/env NAME`: NAME on the `PATH`.
    Env(String),
}

fn interpreter(file: &Path) -> Option<Interpreter> {
    let mut head = [0u8; 256];
    let n = std::io::Read::read(&mut std::fs::File::open(file).ok()?, &mut head).ok()?;
    let line = head[..n]
        .strip_prefix(b"#!")?
        .split(|&b| b == b'\n')
        .next()?;
    let mut words = std::str::from_utf8(line).ok()?.split_whitespace();
    let first = words.next()?;
    if Path::new(first).file_name().is_some_and(|n| n == "env") {
        // `env -S node --flags`, `env node`.
        let name = words.find(|w| !w.starts_with('-'))?;
        return Some(Interpreter::Env(name.to_string()));
    }
    Some(Interpreter::Path(PathBuf::from(first)))
}

/// What to show for the file `real`: its npm package (`…/node_modules/@scope/name`, whose
/// dependencies are inside it), or the directory it is in, or only itself when that directory
/// is too wide to show (`/tmp`, the home or above).
fn install_tree(real: &Path, home: Option<&Path>) -> PathBuf {
    if let Some(package) = npm_package(real) {
        return package;
    }
    let Some(dir) = real.parent() else {
        return real.to_path_buf();
    };
    let too_wide = dir.components().count() < 3 || home.is_some_and(|home| home.starts_with(dir));
    if too_wide {
        real.to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// The package directory after the first `node_modules` in `path`.
fn npm_package(path: &Path) -> Option<PathBuf> {
    let mut package = PathBuf::new();
    let mut components = path.components();
    for c in components.by_ref() {
        package.push(c);
        if c == Component::Normal("node_modules".as_ref()) {
            break;
        }
    }
    let name = components.next()?;
    package.push(name);
    if name.as_os_str().to_str()?.starts_with('@') {
        package.push(components.next()?);
    }
    // A file directly under `node_modules/` is no package.
    components.next()?;
    Some(package)
}

/// The `PATH` inside the sandbox: the user's absolute entries the sandbox shows (the system
/// ones, the bound trees, the directories of the links made), then the standard ones if
/// missing.
fn inside_path(path: &str, shown: &Shown, launch: &Launch) -> String {
    let inside = |dir: &Path| {
        shown.shows(dir)
            || launch.covers(dir)
            || launch
                .links
                .iter()
                .any(|(link, _)| link.parent() == Some(dir))
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(path) {
        if dir.is_absolute() && inside(&dir) && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in STANDARD_PATH {
        if !dirs.iter().any(|d| d == Path::new(dir)) {
            dirs.push(dir.into());
        }
    }
    std::env::join_paths(dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| STANDARD_PATH.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const SYSTEM: &[&str] = &["/usr", "/bin", "/etc", "/opt"];

    fn executable(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn link(path: &Path, target: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
    }

    #[test]
    fn packages_and_trees() {
        let p = |s: &str| npm_package(Path::new(s));
        assert_eq!(
            p("/h/.nvm/v22/lib/node_modules/@openai/codex/bin/codex.js"),
            Some("/h/.nvm/v22/lib/node_modules/@openai/codex".into())
        );
        assert_eq!(
            p("/g/lib/node_modules/pkg/node_modules/dep/x.js"),
            Some("/g/lib/node_modules/pkg".into())
        );
        assert_eq!(p("/usr/bin/node"), None);
        assert_eq!(p("/g/node_modules/x.js"), None);
        let home = Path::new("/home/me");
        let tree = |s: &str| install_tree(Path::new(s), Some(home));
        assert_eq!(
            tree("/home/me/.local/share/claude/versions/2.1.3"),
            PathBuf::from("/home/me/.local/share/claude/versions")
        );
        assert_eq!(tree("/home/me/claude"), PathBuf::from("/home/me/claude"));
        assert_eq!(tree("/tmp/claude"), PathBuf::from("/tmp/claude"));
        assert_eq!(tree("/tmp/tools/claude"), PathBuf::from("/tmp/tools"));
    }

    #[test]
    fn shebangs() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        executable(&script, "#!/usr/bin/env -S node --no-warnings\n");
        assert_eq!(interpreter(&script), Some(Interpreter::Env("node".into())));
        executable(&script, "#!/bin/sh -e\necho\n");
        assert_eq!(
            interpreter(&script),
            Some(Interpreter::Path("/bin/sh".into()))
        );
        executable(&script, "\x7fELF");
        assert_eq!(interpreter(&script), None);
    }

    /// An npm install under the home (nvm's layout): the package and the Node are shown,
    /// the home's link is made, the PATH keeps the bin directory.
    #[test]
    fn an_npm_agent_under_the_home() {
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let prefix = home.join(".nvm/versions/node/v22");
        let package = prefix.join("lib/node_modules/@openai/codex");
        executable(
            &package.join("bin/codex.js"),
            "#!/usr/bin/env node\nrequire('x')\n",
        );
        link(
            &prefix.join("bin/codex"),
            "../lib/node_modules/@openai/codex/bin/codex.js",
        );
        executable(&prefix.join("bin/node"), "\x7fELF");
        let path = format!("{}:/usr/bin:/bin:relative", prefix.join("bin").display());
        let shown = Shown {
            system: Some(SYSTEM),
            home: Some(home),
        };
        let launch = plan("codex", Agent::Codex, &path, &shown).unwrap();
        assert_eq!(launch.binds, vec![package.clone(), prefix.join("bin")]);
        // The bin directory is bound: its own link is there.
        assert_eq!(launch.links, vec![]);
        assert_eq!(
            launch.path,
            format!(
                "{}:/usr/bin:/bin:/usr/local/bin",
                prefix.join("bin").display()
            )
        );
        // Unsandboxed, nothing is bound and the PATH stays.
        let off = Shown {
            system: None,
            home: None,
        };
        let launch = plan("codex", Agent::Codex, &path, &off).unwrap();
        assert_eq!((launch.binds.len(), launch.links.len()), (0, 0));
    }

    /// Claude Code's own installer: a link in `~/.local/bin` to a versioned native binary.
    #[test]
    fn a_native_agent_behind_a_link() {
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        let binary = home.join(".local/share/claude/versions/2.1.3");
        executable(&binary, "\x7fELF");
        let bin = home.join(".local/bin/claude");
        link(&bin, binary.to_str().unwrap());
        let path = format!("{}:/usr/bin", home.join(".local/bin").display());
        let shown = Shown {
            system: Some(SYSTEM),
            home: Some(home),
        };
        let launch = plan("claude", Agent::Claude, &path, &shown).unwrap();
        assert_eq!(launch.binds, vec![binary.parent().unwrap().to_path_buf()]);
        assert_eq!(launch.links, vec![(bin, binary)]);
        assert!(
            launch
                .path
                .starts_with(&home.join(".local/bin").display().to_string())
        );
    }

    #[test]
    fn what_is_missing_is_said() {
        let shown = Shown {
            system: Some(SYSTEM),
            home: None,
        };
        let err = plan("claude", Agent::Claude, "/nonexistent", &shown).unwrap_err();
        assert!(
            err.contains("npm install -g @anthropic-ai/claude-code"),
            "{err}"
        );
        let err = plan("frobnicate", Agent::Shell, "/usr/bin", &shown).unwrap_err();
        assert_eq!(err, "frobnicate is not on your PATH");
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("tool");
        executable(&script, "#!/usr/bin/env no-such-node\n");
        let err = plan(script.to_str().unwrap(), Agent::Shell, "/usr/bin", &shown).unwrap_err();
        assert!(err.contains("no-such-node is not on your PATH"), "{err}");
        // A file of the workspace is the runtime's to find.
        assert!(plan("./run.sh", Agent::Shell, "/usr/bin", &shown).is_ok());
    }
}
