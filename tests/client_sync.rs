//! Sync-back from the client's side: the real `catty pull` and `catty diff` (the daemon and
//! the runtime played by `common::sync_server`, as the runtime's endpoints live elsewhere), and
//! the live follower through the library. Git is the judge of the trees; every test works in
//! a parent directory of its own, so a write outside the project shows.

mod branch;
mod conflicts;
mod hostile;
mod live;
mod new;
mod scale;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::DEADLINE;
use crate::common::repo::{git, write_file};
use crate::common::sync_server::{LABEL, SESSION_ID, SyncServer, tree_entries};

/// A project, the session's workspace and the client's state, each in a directory of its own.
struct Fixture {
    parent: tempfile::TempDir,
    remote_dir: tempfile::TempDir,
    state: tempfile::TempDir,
    server: SyncServer,
}

impl Fixture {
    /// An empty project (`parent/project`) and an empty session.
    async fn empty() -> Fixture {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("project")).unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let server = SyncServer::start(remote_dir.path()).await;
        Fixture {
            parent,
            remote_dir,
            state: tempfile::tempdir().unwrap(),
            server,
        }
    }

    /// A git project holding `files` in one commit, and a session that is its clone, with the
    /// base recorded as `catty new` records it.
    async fn repo(files: &[(&str, &[u8])]) -> Fixture {
        Fixture::repo_with(|dir| {
            for (path, bytes) in files {
                write_file(dir, path, bytes);
            }
        })
        .await
    }

    /// Like [`Fixture::repo`], the project's files written by `setup`.
    async fn repo_with(setup: impl FnOnce(&Path)) -> Fixture {
        let f = Fixture::empty().await;
        git(&f.local(), &["init", "-q"]);
        setup(&f.local());
        commit(&f.local(), "uploaded");
        std::fs::remove_dir(f.remote()).unwrap();
        let (from, to) = (f.local(), f.remote());
        git(
            f.parent.path(),
            &["clone", "-q", from.to_str().unwrap(), to.to_str().unwrap()],
        );
        f.record_base();
        f.first_sync().await;
        f
    }

    fn local(&self) -> PathBuf {
        self.parent.path().join("project")
    }

    fn remote(&self) -> PathBuf {
        self.remote_dir.path().to_owned()
    }

    fn state_dir(&self) -> PathBuf {
        self.server.client_state(self.state.path())
    }

    /// What `catty new` records after it uploads the project.
    fn record_base(&self) {
        let ws = catty::client::upload::scan(&self.local()).unwrap();
        let mut base = catty::client::sync::Base::from_workspace(&self.local(), &ws).unwrap();
        base.label = LABEL.into();
        base.save(&self.state_dir(), SESSION_ID).unwrap();
    }

    /// The round live sync runs as the session starts, before the agent does anything: it
    /// confirms the base against the session's first manifest.
    async fn first_sync(&self) {
        let say: catty::client::sync::Say = std::sync::Arc::new(|line: &str| panic!("{line}"));
        let (link, state, local) = (self.server.link(), self.state_dir(), self.local());
        let pulled = catty::client::sync::pull(&link, &state, &local, say);
        let summary = pulled.await.unwrap();
        assert!(summary.counts.is_empty(), "{summary}");
    }

    /// `catty ARGS` run to its end in the project.
    async fn catty(&self, args: &[&str]) -> Output {
        let run = self
            .server
            .catty(self.state.path(), &self.local(), args)
            .output();
        tokio::time::timeout(DEADLINE, run)
            .await
            .expect("catty in time")
            .unwrap()
    }

    /// `catty pull LABEL`, which must succeed; its stdout and stderr.
    async fn pull(&self) -> (String, String) {
        let out = self.catty(&["pull", LABEL]).await;
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "catty pull failed:\n{stdout}{stderr}");
        (stdout, stderr)
    }

    /// The session changes the server reports.
    fn changed(&self) {
        self.server.bump();
    }

    /// Every file and symlink of the project equals the session's, git's view included.
    #[track_caller]
    fn assert_trees_equal(&self) {
        assert_eq!(tree_entries(&self.local()), tree_entries(&self.remote()));
        let status = ["status", "--porcelain", "--untracked-files=all"];
        assert_eq!(git(&self.local(), &status), git(&self.remote(), &status));
        assert_eq!(
            git(&self.local(), &["diff"]),
            git(&self.remote(), &["diff"])
        );
    }

    /// The names in the parent directory: only the project, whatever the session sent.
    #[track_caller]
    fn assert_nothing_outside(&self) {
        let names: Vec<_> = std::fs::read_dir(self.parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            ["project"],
            "something was written beside the project"
        );
    }
}

fn texts(out: &Output) -> (String, String) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr))
}

fn commit(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    let identity = [
        "-c",
        "user.name=catty test",
        "-c",
        "user.email=test@catty.invalid",
    ];
    let mut args = identity.to_vec();
    args.extend(["-c", "commit.gpgsign=false", "commit", "-q", "-m", message]);
    git(dir, &args);
}

fn set_executable(path: &Path, executable: bool) {
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A project with a text file, a script, a symlink, a file to delete and a directory to empty.
async fn project() -> Fixture {
    Fixture::repo_with(|dir| {
        write_file(dir, "a.txt", "one\n");
        write_file(dir, "src/lib.rs", "pub fn a() {}\n");
        write_file(dir, "old.txt", "old\n");
        write_file(dir, "gone/deep/x.txt", "x\n");
        write_file(dir, "bin/run.sh", "#!/bin/sh\necho run\n");
        set_executable(&dir.join("bin/run.sh"), true);
        std::os::unix::fs::symlink("a.txt", dir.join("link")).unwrap();
    })
    .await
}

/// What an agent does in the session: edits, adds of every kind, deletes, a mode change.
fn agent_works(remote: &Path) {
    write_file(remote, "a.txt", "one\ntwo\n");
    write_file(remote, "src/lib.rs", "pub fn a() -> u8 { 1 }\n");
    write_file(remote, "docs/new/notes.md", "# notes\n");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    write_file(remote, "assets/blob.bin", &binary);
    write_file(remote, "tools/gen.sh", "#!/bin/sh\necho gen\n");
    set_executable(&remote.join("tools/gen.sh"), true);
    std::os::unix::fs::symlink("../docs/new/notes.md", remote.join("src/notes")).unwrap();
    set_executable(&remote.join("bin/run.sh"), false);
    std::fs::remove_file(remote.join("link")).unwrap();
    std::os::unix::fs::symlink("src/lib.rs", remote.join("link")).unwrap();
    std::fs::remove_file(remote.join("old.txt")).unwrap();
    std::fs::remove_file(remote.join("gone/deep/x.txt")).unwrap();
    std::fs::remove_dir_all(remote.join("gone")).unwrap();
}

#[tokio::test]
async fn pull_makes_the_project_equal_to_the_session() {
    let f = project().await;
    agent_works(&f.remote());
    f.changed();
    f.pull().await;
    f.assert_trees_equal();
}

#[tokio::test]
async fn pull_removes_a_directory_the_session_emptied() {
    let f = project().await;
    agent_works(&f.remote());
    f.pull().await;
    assert!(!f.local().join("gone").exists());
}

#[tokio::test]
async fn pull_summarises_what_it_did() {
    let f = project().await;
    agent_works(&f.remote());
    let (stdout, _) = f.pull().await;
    let expected = "4 changed, 4 added, 2 deleted, 0 conflicts; no new commits";
    assert!(stdout.contains(expected), "{stdout}");
    assert!(
        stdout.contains(&f.local().display().to_string()),
        "{stdout}"
    );
}

#[tokio::test]
async fn pull_without_a_base_writes_only_what_is_missing_here() {
    let f = Fixture::empty().await;
    write_file(&f.remote(), "new.txt", "from the session\n");
    write_file(&f.remote(), "same.txt", "same\n");
    write_file(&f.local(), "same.txt", "same\n");
    let (stdout, stderr) = f.pull().await;
    assert_eq!(
        std::fs::read(f.local().join("new.txt")).unwrap(),
        b"from the session\n"
    );
    assert!(
        stdout.contains("0 changed, 1 added, 0 deleted, 0 conflicts"),
        "{stdout}"
    );
    assert!(stderr.is_empty(), "{stderr}");
}

#[tokio::test]
async fn an_upload_the_first_manifest_does_not_list_is_kept() {
    let f = Fixture::empty().await;
    write_file(&f.local(), "a.txt", "a\n");
    write_file(&f.local(), "ignored-there.txt", "kept\n");
    write_file(&f.remote(), "a.txt", "a\n");
    f.record_base();
    let (stdout, stderr) = f.pull().await;
    assert!(f.local().join("ignored-there.txt").exists());
    assert!(stdout.contains("0 deleted"), "{stdout}");
    let line = "catty: kept 1 uploaded file(s) the session does not list (ignored there, or deleted before the first sync), e.g. ignored-there.txt";
    assert!(stderr.contains(line), "{stderr}");
}

#[tokio::test]
async fn a_manifest_refused_whole_deletes_nothing() {
    let f = Fixture::repo(&[("a.txt", b"a\n")]).await;
    let entry = catty::protocol::sync::ManifestEntry {
        path: "x".into(),
        kind: catty::protocol::sync::EntryKind::Symlink {
            target: "a.txt".into(),
        },
    };
    let too_many = vec![entry; catty::protocol::sync::MANIFEST_MAX_ENTRIES + 1];
    std::fs::remove_file(f.remote().join("a.txt")).unwrap();
    f.server.with(|s| s.extra = too_many);
    let (_, stderr) = f.pull().await;
    assert!(stderr.contains("over the limit of 200000"), "{stderr}");
    assert!(f.local().join("a.txt").exists());
}

#[tokio::test]
async fn diff_shows_the_session_changes_and_applies_nothing() {
    let f = project().await;
    write_file(&f.remote(), "a.txt", "one\ntwo\n");
    let out = f.catty(&["diff", LABEL]).await;
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("--- a/a.txt\n+++ b/a.txt\n"), "{stdout}");
    assert!(stdout.contains("\n one\n+two\n"), "{stdout}");
    assert_eq!(std::fs::read(f.local().join("a.txt")).unwrap(), b"one\n");
}

#[tokio::test]
async fn diff_stat_lists_the_changed_files() {
    let f = project().await;
    agent_works(&f.remote());
    let out = f.catty(&["diff", LABEL, "--stat"]).await;
    let (stdout, _) = texts(&out);
    assert!(stdout.contains(" old.txt "), "{stdout}");
    assert!(stdout.contains("10 files changed"), "{stdout}");
}

/// The project's paths that hold a sync temp file.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dent in std::fs::read_dir(dir).unwrap() {
        let path = dent.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with(".catty-sync-") {
            found.push(path);
        } else if path.is_dir() && !path.is_symlink() {
            found.extend(temp_files(&path));
        }
    }
    found
}
