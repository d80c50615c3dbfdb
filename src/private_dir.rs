//! Directories for this user only: the daemon's state directory and what it keeps there.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Creates `dir` and its missing parents with mode 0700, and narrows `dir` to 0700 if it
/// already existed with a wider mode (tokens and logs live there).
pub fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {} to this user", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_parents_and_narrows_an_existing_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }
}
