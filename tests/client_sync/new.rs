//! `catty new` for real (tmux, the daemon, a local runtime): it records what it uploaded, the
//! base every later sync compares against.

use std::collections::BTreeMap;

use catty::client::sync::Base;

use super::{commit, set_executable};
use crate::common::repo::{git, write_file};
use crate::common::sync_server::tree_entries;
use crate::common::tmux::{Tmux, at_prompt};

#[test]
fn new_records_what_it_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q"]);
    write_file(root, "src/main.rs", "fn main() {}\n");
    write_file(root, "run.sh", "#!/bin/sh\n");
    set_executable(&root.join("run.sh"), true);
    std::os::unix::fs::symlink("src/main.rs", root.join("main")).unwrap();
    commit(root, "first");
    let t = Tmux::start(root, 100, 30);
    t.run("clear; catty new -- bash --norc --noprofile");
    t.wait_for("the session's prompt", |s| {
        s.contains("catty connect") && at_prompt(s)
    });
    let list: serde_json::Value =
        serde_json::from_slice(&t.catty(&["list", "--json"]).stdout).unwrap();
    let session = &list[0];
    let id = session["session_id"].as_str().unwrap();
    let base = Base::load(&t.state_dir(), id).unwrap().expect("a base");
    let uploaded: BTreeMap<_, _> = tree_entries(root)
        .into_iter()
        .map(|e| (e.path, e.kind))
        .collect();
    assert_eq!(base.files, uploaded);
    let head = String::from_utf8(git(root, &["rev-parse", "HEAD"])).unwrap();
    assert_eq!(base.head.as_deref(), Some(head.trim()));
    assert_eq!(base.label, session["label"].as_str().unwrap());
    assert_eq!(base.dir, std::fs::canonicalize(root).unwrap());
}
