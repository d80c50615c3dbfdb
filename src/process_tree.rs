//! Who descends from whom, from `/proc`: what the daemon reads to find a runtime's program
//! and the runtime to find everything its program left behind.

use std::collections::BTreeSet;

/// No session needs more processes than this; a bound on the walk.
const MAX_PROCESSES: usize = 100_000;

/// Every process below `root`, from the `children` lists of `/proc` (zombies included).
pub fn descendants(root: i32) -> BTreeSet<i32> {
    let mut found = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for child in children(pid) {
            if found.len() < MAX_PROCESSES && found.insert(child) {
                todo.push(child);
            }
        }
    }
    found
}

/// Direct children of `pid`, all its threads'.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::{self, Signal};
    use nix::unistd::Pid;

    #[test]
    fn descendants_are_found_through_generations() {
        // sh → sh → sleep: a grandchild, found through its parent.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sh -c 'sleep 30' & wait"])
            .spawn()
            .unwrap();
        let root = child.id() as i32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let found = loop {
            let found = descendants(root);
            let sleeping = found.iter().any(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            });
            if sleeping || std::time::Instant::now() > deadline {
                break found;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        // The inner sh (or the sleep it became) and the sleep.
        assert!(!found.is_empty() && !found.contains(&root), "{found:?}");
        for pid in found.iter().chain([&root]) {
            let _ = signal::kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        child.wait().unwrap();
    }
}
