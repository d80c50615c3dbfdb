//! Where a symlink of the workspace leads, judged lexically and on disk: kept as written when
//! it stays inside, rewritten when it only gets there through other links or an absolute path.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// The target to store for the symlink at `rel`, or why it is skipped. A target that resolves
/// inside the workspace both lexically and on disk is kept as written; one that only gets
/// there through other symlinks, or is absolute, is rewritten to the relative path of where it
/// really leads (the runtime refuses links through links and absolute targets).
pub(super) fn link_target(root: &Path, rel: &Path) -> Result<PathBuf, String> {
    let path = root.join(rel);
    let target = std::fs::read_link(&path).map_err(|err| format!("cannot read the link: {err}"))?;
    let dir = rel.parent().unwrap_or(Path::new(""));
    let lexical = resolve(dir, &target);
    match std::fs::canonicalize(&path) {
        Ok(real) => {
            let real = real
                .strip_prefix(root)
                .map_err(|_| format!("its target {} is outside the workspace", target.display()))?;
            let as_written = lexical.as_deref() == Some(real) && !through_link(root, dir, &target);
            if target.is_relative() && as_written {
                Ok(target)
            } else {
                Ok(relative(dir, real))
            }
        }
        // Dangling: kept when it would dangle the same way over there.
        Err(_) => match lexical {
            Some(_) if target.is_relative() && !through_link(root, dir, &target) => Ok(target),
            Some(_) => Err("a dangling link through an absolute path or another link".into()),
            None => Err(format!(
                "its target {} is outside the workspace",
                target.display()
            )),
        },
    }
}

/// `dir/target` with `.` and `..` applied lexically, relative to the root; `None` when it
/// leaves the root (or is absolute).
fn resolve(dir: &Path, target: &Path) -> Option<PathBuf> {
    let mut at: Vec<&OsStr> = dir.iter().collect();
    for part in target.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                at.pop()?;
            }
            Component::Normal(name) => at.push(name),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(at.iter().collect())
}

/// Whether following `target` from `dir` lexically would step on a symlink.
fn through_link(root: &Path, dir: &Path, target: &Path) -> bool {
    let mut at = root.join(dir);
    target.components().any(|part| {
        match part {
            Component::ParentDir => {
                at.pop();
            }
            Component::Normal(name) => at.push(name),
            _ => return false,
        }
        at.symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// The relative path from directory `from` to `to` (both relative to the same root).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let common = from
        .iter()
        .zip(to.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let ups = from.iter().skip(common).map(|_| OsStr::new(".."));
    let path: PathBuf = ups.chain(to.iter().skip(common)).collect();
    if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_resolution() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(resolve(&p("a/b"), &p("../c")), Some(p("a/c")));
        assert_eq!(resolve(&p("a"), &p("./../../c")), None);
        assert_eq!(resolve(&p(""), &p("/etc/passwd")), None);
        assert_eq!(resolve(&p(""), &p(".")), Some(p("")));
    }

    #[test]
    fn relative_paths() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(relative(&p("a/b"), &p("a/c/d")), p("../c/d"));
        assert_eq!(relative(&p(""), &p("x")), p("x"));
        assert_eq!(relative(&p("a"), &p("")), p(".."));
        assert_eq!(relative(&p("a"), &p("a")), p("."));
    }
}
