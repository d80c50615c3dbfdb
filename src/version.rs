//! This binary's version as the daemon and its client compare it: the package version plus
//! a build id (the executable's size and modification time), so a rebuilt or reinstalled
//! binary of the same version counts as another one. Computed once per process.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::OnceLock;

/// `0.1.0+1a2b3c4d5e6f7a8b`, or the bare package version when the executable cannot be read.
pub fn this_build() -> &'static str {
    static BUILD: OnceLock<String> = OnceLock::new();
    BUILD.get_or_init(|| {
        // `/proc/self/exe` is the file this process runs, even when a newer one has been
        // installed over its path since.
        let exe = std::env::current_exe().ok();
        build_of(Path::new("/proc/self/exe"))
            .or_else(|| build_of(exe.as_deref()?))
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
    })
}

/// What [`this_build`] would say in a process of the executable `exe` (built from this same
/// source): stand-ins for the daemon in tests answer with it.
pub fn build_of(exe: &Path) -> Option<String> {
    let meta = std::fs::metadata(exe).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    meta.len().hash(&mut h);
    meta.modified().ok().hash(&mut h);
    Some(format!("{}+{:016x}", env!("CARGO_PKG_VERSION"), h.finish()))
}

/// Whether the package version of build `a` is above `b`'s (`1.2.10+…` > `1.2.9+…`); two
/// builds of one version are neither.
pub fn is_newer(a: &str, b: &str) -> bool {
    let numbers = |v: &str| -> Vec<u64> {
        let pkg = v.split(['+', '-']).next().unwrap_or_default();
        pkg.split('.').map(|n| n.parse().unwrap_or(0)).collect()
    };
    numbers(a) > numbers(b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_package_version_comes_first() {
        let build = super::this_build();
        assert!(
            build.starts_with(concat!(env!("CARGO_PKG_VERSION"), "+")),
            "{build}"
        );
        assert_eq!(build, super::this_build());
    }

    #[test]
    fn versions_compare_as_numbers_and_builds_of_one_version_as_equal() {
        assert!(super::is_newer("1.2.10+aa", "1.2.9+bb"));
        assert!(!super::is_newer("1.2.9+aa", "1.2.10"));
        assert!(!super::is_newer("0.1.0+aa", "0.1.0+bb"));
        assert!(!super::is_newer("an older catty", "0.1.0+bb"));
    }
}
