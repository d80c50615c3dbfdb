//! What a workspace is made of on both sides of the wire: the names never uploaded (SPEC
//! section 6) and never synced back (section 9), with `.gitignore` semantics.

/// Directory names skipped at any depth (a `.gitignore` line `name/`).
pub const SKIPPED_DIRS: &[&str] = &["node_modules", "__pycache__", ".venv", "venv"];
/// Names skipped at any depth, whatever their kind (a `.gitignore` line without `/`).
pub const SKIPPED_NAMES: &[&str] = &[".git", ".env", ".DS_Store"];
/// Name endings skipped at any depth (`*.pyc`).
pub const SKIPPED_SUFFIXES: &[&str] = &[".pyc", ".log"];

/// Whether the defaults skip an entry named `name` (one path component, as bytes):
/// `node_modules/` is a directory only (not a symlink to one), `*.log` matches any kind.
pub fn always_skipped(name: &[u8], is_dir: bool) -> bool {
    let is = |list: &[&str]| list.iter().any(|n| name == n.as_bytes());
    (is_dir && is(SKIPPED_DIRS))
        || is(SKIPPED_NAMES)
        || SKIPPED_SUFFIXES
            .iter()
            .any(|s| name.ends_with(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_gitignore_semantics() {
        assert!(always_skipped(b"node_modules", true));
        assert!(!always_skipped(b"node_modules", false), "a file or symlink");
        assert!(always_skipped(b".git", false));
        assert!(always_skipped(b"debug.log", true));
        assert!(always_skipped(b"x.pyc", false));
        assert!(!always_skipped(b"src", true));
    }
}
